// The agent registry: every database the server has seen, which agent session
// serves it, heartbeat deadlines, and the feed of fleet events. Knows nothing
// of gRPC: stream adapters implement AgentSession and FleetEventSink. Changes
// are persisted through the StateStore on a writer thread, so no caller (a gRPC
// reaction in particular) ever waits on the database.
#ifndef ECLIPTIX_SERVER_FLEET_REGISTRY_H_
#define ECLIPTIX_SERVER_FLEET_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/labels.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "ecliptix/fleet/v1/fleet_service.pb.h"
#include "server/storage/state_store.h"
#include "server/streams/event_sink.h"

namespace ecliptix::server {

// The registry's handle on one agent's stream. Calls must not block:
// implementations queue. The registry never calls a session while it holds its
// lock, so a session may call back into the registry.
class AgentSession {
 public:
  virtual ~AgentSession() = default;
  // Queues a message to the agent (the session assigns its sequence number).
  virtual void Send(fleet::v1::ServerMessage message) = 0;
  // Ends the stream with `status` once queued messages are written.
  virtual void Close(const absl::Status& status) = 0;
};

// A watcher of fleet events. Deliver must not block. It is called outside the
// registry's lock, one event at a time and in the order of the changes, so it
// may call back into the registry. The registry never calls End.
using FleetEventSink = EventSink<fleet::v1::FleetEvent>;

struct RegistryOptions {
  // Sent to agents in Welcome.
  absl::Duration heartbeat_interval = absl::Seconds(10);
  // Without any message for this long, an agent is marked lost and its stream
  // closed. The silence counts from the last message read, and only while the
  // server reads the stream: a stream held back by flow control (see
  // OnCommandMessage) is not lost for that.
  absl::Duration heartbeat_timeout = absl::Seconds(30);
};

// What Register tells the adapter.
struct Registration {
  uint64_t session_id;
  fleet::v1::Welcome welcome;
};

// Observes agents connecting (true) and going away (false: disconnected or
// lost).
using ConnectionObserver =
    std::function<void(const std::string& database_id, bool connected)>;

// Observes command acknowledgements and events (later issues route them to
// rollouts and jobs).
using CommandObserver = std::function<void(
    const std::string& database_id, const fleet::v1::AgentMessage& message)>;

// Observes command acknowledgements and events with flow control: it takes
// the message, and returns false when it cannot take more yet; it then calls
// `resume` once (from any thread) when it can, and the stream is not read
// until then.
using PacedCommandObserver = std::function<bool(
    const std::string& database_id, const fleet::v1::AgentMessage& message,
    std::function<void()> resume)>;

// Takes an agent's metric batch, with flow control as PacedCommandObserver:
// returns false when it cannot take more yet, then calls `resume` once (from
// any thread) when it can. Metric batches go to this observer only, never to
// the command observers (the rollout orchestrator's queue is not theirs).
using MetricBatchObserver = std::function<bool(
    const std::string& database_id, const fleet::v1::MetricBatch& batch,
    std::function<void()> resume)>;

class Registry {
 public:
  // `store` may be null (nothing persisted; for unit tests). Neither pointer is
  // owned.
  Registry(StateStore* store, Clock* clock, RegistryOptions options);
  ~Registry();

  // Loads the persisted registry; every database starts disconnected until its
  // agent comes back.
  absl::Status Load();
  // Writes what is pending and stops the writer thread. Later changes are not
  // persisted.
  void Stop();

  // Validates a Hello and registers the session, queueing its Welcome before
  // anything else can be sent to it. A previous live session for the same
  // database is closed with ABORTED (the agent restarted, or its old
  // connection is half-open). INVALID_ARGUMENT names the field at fault.
  absl::StatusOr<Registration> Register(const fleet::v1::Hello& hello,
                                        const std::string& peer,
                                        std::shared_ptr<AgentSession> session);
  // Any message from the agent proves it alive.
  void Touch(uint64_t session_id);
  // Routes a command ack or event to the observers. Returns true when the
  // caller may read the stream's next message now; false when a paced
  // observer cannot take more yet: the caller reads no more of the stream
  // until `resume` is called (once, from any thread). Meanwhile the session's
  // heartbeat deadline is suspended, and it starts again when reading
  // resumes: the agent is silent because the server does not read it.
  bool OnCommandMessage(uint64_t session_id,
                        const fleet::v1::AgentMessage& message,
                        std::function<void()> resume = nullptr);
  // Routes a metric batch (message.metric_batch) to the metric batch observer,
  // with the same flow control as OnCommandMessage. Without an observer the
  // batch is dropped unacknowledged (the agent keeps it and sends it again).
  bool OnMetricBatch(uint64_t session_id,
                     const fleet::v1::AgentMessage& message,
                     std::function<void()> resume = nullptr);
  // The session's stream ended.
  void Unregister(uint64_t session_id, const std::string& reason);
  // Marks lost, and closes, every session whose agent has been silent past the
  // heartbeat timeout. Returns how many were marked.
  int CheckHeartbeats();

  // Queues a command for a connected database's agent; assigns command_id when
  // empty and returns it. NOT_FOUND for an unknown database,
  // FAILED_PRECONDITION when its agent is not connected.
  absl::StatusOr<std::string> SendCommand(const std::string& database_id,
                                          fleet::v1::Command command);
  // Queues a MetricAck for a connected database's agent. NOT_FOUND for an
  // unknown database, FAILED_PRECONDITION when its agent is not connected
  // (it sends the batches again after reconnecting, and gets them acknowledged
  // then).
  absl::Status SendMetricAck(const std::string& database_id,
                             fleet::v1::MetricAck ack);
  void AddCommandObserver(CommandObserver observer);
  void AddPacedCommandObserver(PacedCommandObserver observer);
  // Replaces the metric batch observer (the metrics core; one at most).
  void SetMetricBatchObserver(MetricBatchObserver observer);
  // Observers are called outside the registry's lock, after the change.
  void AddConnectionObserver(ConnectionObserver observer);

  // ListDatabases semantics of the API: selector, page size, opaque page token.
  absl::StatusOr<fleet::v1::ListDatabasesResponse> ListDatabases(
      const fleet::v1::ListDatabasesRequest& request) const;
  absl::StatusOr<fleet::v1::Database> GetDatabase(
      const std::string& database_id) const;
  // Every database the selector matches, in id order, copied under one lock:
  // one consistent snapshot of the fleet, however large. An empty selector
  // matches every database. INVALID_ARGUMENT for a bad selector.
  absl::StatusOr<std::vector<fleet::v1::Database>> Select(
      absl::string_view selector) const;
  std::vector<fleet::v1::Database> Select(const LabelSelector& selector) const;

  // Delivers the current matching fleet (SNAPSHOT events, then
  // SNAPSHOT_COMPLETE) and then every matching change to `sink`, until the sink
  // reports itself closed. INVALID_ARGUMENT for a bad selector.
  absl::Status Watch(const std::string& selector,
                     std::shared_ptr<FleetEventSink> sink);

  // For the metrics exporter, on every scrape: one pass under the lock, no
  // database copied.
  // Databases whose agent is connected, by engine.
  std::map<fleet::v1::Engine, int64_t> ConnectedByEngine() const;
  // The labels of those of `database_ids` the registry knows.
  std::map<std::string, Labels> LabelsOf(
      const std::vector<std::string>& database_ids) const;

  const RegistryOptions& options() const { return options_; }

 private:
  struct Entry {
    fleet::v1::Database database;
    uint64_t session_id = 0;  // 0 when no live session.
    std::shared_ptr<AgentSession> session;
    absl::Time last_message_time;
    // The stream is not read until a paced observer has room again: the
    // heartbeat deadline does not run (see OnCommandMessage).
    bool reads_held = false;
  };
  struct Watcher {
    LabelSelector selector;
    std::shared_ptr<FleetEventSink> sink;
  };
  // An event for some watchers, queued in the order of the changes.
  struct Delivery {
    std::shared_ptr<const fleet::v1::FleetEvent> event;
    std::vector<std::shared_ptr<FleetEventSink>> sinks;
  };

  void PublishLocked(fleet::v1::FleetEvent::Type type,
                     const fleet::v1::Database& database,
                     const std::string& reason,
                     const Labels* previous_labels = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void PersistLocked(const fleet::v1::Database& database)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Entry* FindSessionLocked(uint64_t session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The database as queries show it: with a live session, seen at its last
  // message.
  static fleet::v1::Database Shown(const Entry& entry);
  // Delivers the queued events outside the lock. One thread delivers at a
  // time, in queue order; a call while another thread delivers leaves the
  // events to it. Every method that queues events calls this after unlocking.
  void DeliverQueued() ABSL_LOCKS_EXCLUDED(mutex_);
  void WriterLoop();

  StateStore* const store_;
  Clock* const clock_;
  const RegistryOptions options_;

  mutable absl::Mutex mutex_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mutex_);
  std::map<uint64_t, std::string> session_to_database_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_session_id_ ABSL_GUARDED_BY(mutex_) = 1;
  uint64_t next_command_number_ ABSL_GUARDED_BY(mutex_) = 1;
  std::vector<Watcher> watchers_ ABSL_GUARDED_BY(mutex_);
  std::deque<Delivery> deliveries_ ABSL_GUARDED_BY(mutex_);
  // A thread is delivering (DeliverQueued).
  bool delivering_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<CommandObserver> command_observers_ ABSL_GUARDED_BY(mutex_);
  std::vector<PacedCommandObserver> paced_command_observers_
      ABSL_GUARDED_BY(mutex_);
  MetricBatchObserver metric_batch_observer_ ABSL_GUARDED_BY(mutex_);
  // The session's stream is read again: its heartbeat deadline starts now.
  void ReadsResumed(uint64_t session_id);
  std::vector<ConnectionObserver> connection_observers_ ABSL_GUARDED_BY(mutex_);
  void NotifyConnection(const std::string& database_id, bool connected);
  // Returns the database id when a live session ended (empty otherwise).
  std::string UnregisterLocked(uint64_t session_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Databases waiting to be written, coalesced by id.
  absl::Mutex writer_mutex_;
  std::map<std::string, fleet::v1::Database> pending_writes_
      ABSL_GUARDED_BY(writer_mutex_);
  bool writer_stopping_ ABSL_GUARDED_BY(writer_mutex_) = false;
  std::thread writer_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_FLEET_REGISTRY_H_
