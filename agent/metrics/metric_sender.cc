#include "agent/metrics/metric_sender.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

std::shared_ptr<spdlog::logger> Log() {
  static auto* logger =
      new std::shared_ptr<spdlog::logger>(Logger("agent.metrics"));
  return *logger;
}

// 128 random bits: two agent processes never share an instance.
std::string RandomInstance() {
  absl::BitGen gen;
  return absl::StrFormat("ai-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

}  // namespace

MetricSender::MetricSender(MetricSenderOptions options)
    : options_(std::move(options)),
      agent_instance_(options_.agent_instance.empty()
                          ? RandomInstance()
                          : options_.agent_instance) {}

MetricSender::~MetricSender() { Stop(); }

void MetricSender::Start() {
  absl::MutexLock lock(&mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void MetricSender::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> MetricSender::Capabilities() const {
  return {"metrics"};
}

void MetricSender::Add(std::vector<v1::MetricSample> samples) {
  if (samples.empty()) return;
  absl::MutexLock lock(&mutex_);
  const size_t per_batch = std::max<size_t>(1, options_.max_batch_samples);
  for (size_t start = 0; start < samples.size(); start += per_batch) {
    Pending& pending = pending_.emplace_back();
    pending.batch.set_agent_instance(agent_instance_);
    const size_t end = std::min(samples.size(), start + per_batch);
    for (size_t i = start; i < end; ++i)
      *pending.batch.add_samples() = std::move(samples[i]);
    pending.bytes = pending.batch.ByteSizeLong();
    pending_samples_ += end - start;
    pending_bytes_ += pending.bytes;
  }
  Trim();
}

void MetricSender::Trim() {
  uint64_t dropped = 0;
  while (!pending_.empty() &&
         (pending_samples_ > options_.max_buffered_samples ||
          pending_bytes_ > options_.max_buffered_bytes)) {
    const Pending& oldest = pending_.front();
    // A batch written but not acknowledged may have been stored: its samples
    // are counted as dropped all the same, since nobody can tell.
    dropped += oldest.batch.samples_size();
    pending_samples_ -= oldest.batch.samples_size();
    pending_bytes_ -= oldest.bytes;
    pending_.pop_front();
  }
  if (dropped == 0) return;
  // Said once per stretch of drops (until a batch reports them), not on every
  // collection while the server stays away.
  if (dropped_unreported_ == 0) {
    Log()->warn(
        "metric buffer full ({} samples, {} bytes at most) while the server "
        "does not acknowledge: dropping the oldest samples (counted in the "
        "next batch sent)",
        options_.max_buffered_samples, options_.max_buffered_bytes);
  }
  dropped_unreported_ += dropped;
  dropped_total_ += dropped;
}

bool MetricSender::Due() const {
  if (!writer_) return false;
  for (const Pending& pending : pending_) {
    const uint64_t sequence = pending.batch.sequence();
    if (sequence == 0 || sequence > written_) return true;
  }
  return false;
}

size_t MetricSender::Flush() {
  absl::MutexLock flush_lock(&flush_mutex_);
  size_t written = 0;
  while (true) {
    Writer writer;
    uint64_t generation = 0;
    uint64_t sequence = 0;
    v1::AgentMessage message;
    {
      absl::MutexLock lock(&mutex_);
      if (!writer_) return written;
      // Sequenced batches come first in the queue (a batch gets its number
      // when first written, in queue order): the first one not written on
      // this session is next.
      Pending* next = nullptr;
      for (Pending& pending : pending_) {
        const uint64_t candidate = pending.batch.sequence();
        if (candidate == 0 || candidate > written_) {
          next = &pending;
          break;
        }
      }
      if (next == nullptr) return written;
      if (next->batch.sequence() == 0) {
        next->batch.set_sequence(next_sequence_++);
        next->batch.set_dropped_samples(dropped_unreported_);
        dropped_unreported_ = 0;
      }
      sequence = next->batch.sequence();
      *message.mutable_metric_batch() = next->batch;
      writer = writer_;
      generation = generation_;
    }
    const bool sent = writer(std::move(message));
    absl::MutexLock lock(&mutex_);
    // A new session began meanwhile: it starts over from the oldest batch.
    if (generation != generation_) continue;
    if (!sent) {
      // The session is gone; the next one sends this batch again.
      writer_ = nullptr;
      return written;
    }
    written_ = std::max(written_, sequence);
    ++written;
  }
}

void MetricSender::SessionStarted(Writer writer) {
  absl::MutexLock lock(&mutex_);
  writer_ = std::move(writer);
  ++generation_;
  written_ = 0;
}

void MetricSender::SessionEnded() {
  absl::MutexLock lock(&mutex_);
  writer_ = nullptr;
  ++generation_;
  written_ = 0;
}

void MetricSender::Received(const v1::ServerMessage& message) {
  if (message.has_metric_ack()) Acknowledged(message.metric_ack());
}

void MetricSender::Acknowledged(const v1::MetricAck& ack) {
  if (ack.agent_instance() != agent_instance_) {
    Log()->debug("ignoring a metric ack for agent instance {}",
                 ack.agent_instance());
    return;
  }
  absl::MutexLock lock(&mutex_);
  acknowledged_ = std::max(acknowledged_, ack.sequence());
  while (!pending_.empty() && pending_.front().batch.sequence() != 0 &&
         pending_.front().batch.sequence() <= acknowledged_) {
    pending_samples_ -= pending_.front().batch.samples_size();
    pending_bytes_ -= pending_.front().bytes;
    pending_.pop_front();
  }
}

size_t MetricSender::pending_batches() const {
  absl::MutexLock lock(&mutex_);
  return pending_.size();
}

size_t MetricSender::pending_samples() const {
  absl::MutexLock lock(&mutex_);
  return pending_samples_;
}

uint64_t MetricSender::dropped_samples() const {
  absl::MutexLock lock(&mutex_);
  return dropped_total_;
}

uint64_t MetricSender::acknowledged() const {
  absl::MutexLock lock(&mutex_);
  return acknowledged_;
}

void MetricSender::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || Due();
      };
      mutex_.Await(absl::Condition(&ready));
      if (stopping_) return;
    }
    Flush();
  }
}

}  // namespace ecliptix::agent
