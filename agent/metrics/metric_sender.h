// MetricSender: the agent's side of exactly-once metric delivery. It turns
// collected samples into MetricBatches numbered 1, 2, 3, ... within a random
// agent_instance chosen when it is made, keeps every batch until the server
// acknowledges it (MetricAck: all batches up to a sequence are stored), and
// after a reconnect sends every unacknowledged batch again, in order, before
// anything newer. The server stores a batch once per (agent_instance,
// sequence), so a batch sent twice is counted once.
//
// Memory is bounded: when the unacknowledged batches exceed
// max_buffered_samples or max_buffered_bytes (the server away for long), the
// oldest are dropped first, and the samples lost are reported in
// dropped_samples of the next batch sent. A batch gets its sequence number when
// it is first written, so batches dropped before ever being sent leave no gap
// in the numbering.
//
// It is the control stream's StreamListener (capability "metrics"): the stream
// hands it a writer per session and passes it metric acks. Writes happen on
// Flush(), which Start()'s thread calls whenever there is something to send
// and a session to send it on; tests call Flush() themselves.
#ifndef ECLIPTIX_AGENT_METRICS_METRIC_SENDER_H_
#define ECLIPTIX_AGENT_METRICS_METRIC_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/stream_listener.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "ecliptix/fleet/v1/metrics.pb.h"

namespace ecliptix::agent {

// Where collectors put their samples.
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void Add(std::vector<fleet::v1::MetricSample> samples) = 0;
};

struct MetricSenderOptions {
  // Samples per batch at most.
  size_t max_batch_samples = 500;
  // Bounds of the unacknowledged batches (samples, and their encoded size).
  size_t max_buffered_samples = 100'000;
  size_t max_buffered_bytes = 32 << 20;
  // Empty: a random one (tests set it).
  std::string agent_instance;
};

class MetricSender : public MetricSink, public StreamListener {
 public:
  explicit MetricSender(MetricSenderOptions options = {});
  // Stops the thread if it runs.
  ~MetricSender() override;

  MetricSender(const MetricSender&) = delete;
  MetricSender& operator=(const MetricSender&) = delete;

  // Starts the thread that flushes; Stop() ends it. Optional.
  void Start();
  void Stop();

  // Queues `samples` as batches of at most max_batch_samples, dropping the
  // oldest batches when over the bounds. Any thread.
  void Add(std::vector<fleet::v1::MetricSample> samples) override;
  // Writes, in order, every batch not yet written on the current session,
  // until one write fails (the session is then treated as gone until the next
  // SessionStarted). Returns how many batches were written. One flush at a
  // time; any thread.
  size_t Flush();

  // StreamListener.
  std::vector<std::string> Capabilities() const override;
  void SessionStarted(Writer writer) override;
  void SessionEnded() override;
  // Takes metric_ack: drops the batches it covers (an ack for another
  // agent_instance is ignored).
  void Received(const fleet::v1::ServerMessage& message) override;
  // The same, for an ack on its own.
  void Acknowledged(const fleet::v1::MetricAck& ack);

  // Observers, for callers and tests.
  const std::string& agent_instance() const { return agent_instance_; }
  // Batches kept (sent or not) until acknowledged, and their samples.
  size_t pending_batches() const;
  size_t pending_samples() const;
  // Samples dropped because of the bounds, in total.
  uint64_t dropped_samples() const;
  // The highest sequence acknowledged.
  uint64_t acknowledged() const;

 private:
  struct Pending {
    fleet::v1::MetricBatch batch;  // Sequence 0 until first written.
    size_t bytes = 0;
  };

  // Drops the oldest batches until within the bounds.
  void Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Whether Flush() has something to write now.
  bool Due() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Loop();

  const MetricSenderOptions options_;
  const std::string agent_instance_;

  // Held for a whole Flush, so batches leave in order.
  absl::Mutex flush_mutex_;

  mutable absl::Mutex mutex_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mutex_);
  size_t pending_samples_ ABSL_GUARDED_BY(mutex_) = 0;
  size_t pending_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mutex_) = 1;
  uint64_t acknowledged_ ABSL_GUARDED_BY(mutex_) = 0;
  // Dropped since the last batch that got a sequence: reported by the next.
  uint64_t dropped_unreported_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t dropped_total_ ABSL_GUARDED_BY(mutex_) = 0;
  // The current session's writer (empty without one), its generation, and
  // the highest sequence written on it.
  Writer writer_ ABSL_GUARDED_BY(mutex_);
  uint64_t generation_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t written_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_METRICS_METRIC_SENDER_H_
