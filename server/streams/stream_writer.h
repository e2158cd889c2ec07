// A write queue for one server stream (bidi or server-streaming reactor),
// following the callback API's rules: one write in flight, StartWrite and
// Finish called outside our own lock, Finish exactly once and only after the
// queue drained, and the reactor kept alive while another thread writes to it
// (Finish, and so OnDone, cannot happen while a write is in flight).
#ifndef ECLIPTIX_SERVER_STREAMS_STREAM_WRITER_H_
#define ECLIPTIX_SERVER_STREAMS_STREAM_WRITER_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ecliptix::server {

template <typename Message>
class StreamWriter {
 public:
  using StartWriteFn = std::function<void(const Message*)>;
  using FinishFn = std::function<void(const grpc::Status&)>;

  // `max_queued` bounds memory for a slow reader: past it the stream is
  // finished with RESOURCE_EXHAUSTED rather than buffering without limit.
  StreamWriter(StartWriteFn start_write, FinishFn finish, size_t max_queued)
      : start_write_(std::move(start_write)),
        finish_(std::move(finish)),
        max_queued_(max_queued) {}

  // Queues a message; false when the stream is finishing and the message was
  // dropped.
  bool Write(Message message) {
    const Message* to_start = nullptr;
    bool overflow = false;
    {
      absl::MutexLock lock(&mutex_);
      if (finishing_) return false;
      if (queue_.size() >= max_queued_) {
        overflow = true;
      } else {
        queue_.push_back(std::move(message));
        if (!write_in_flight_) {
          write_in_flight_ = true;
          to_start = &queue_.front();
        }
      }
    }
    // Touch nothing of `this` after starting a write: it may complete inline.
    // The caller's reference to the owner keeps this object alive, not the
    // reactor.
    if (to_start != nullptr) {
      start_write_(to_start);
    } else if (overflow) {
      Abort(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         "the peer reads too slowly; the stream was closed"));
      return false;
    }
    return true;
  }

  // Finishes the stream with `status` after the queued messages are written.
  // Later calls are ignored.
  void Finish(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mutex_);
      if (finishing_) return;
      finishing_ = true;
      final_status_ = status;
      if (write_in_flight_)
        return;  // OnWriteDone finishes once the queue drains.
      finish_started_ = true;
    }
    finish_(status);
  }

  // Finishes at once, dropping queued messages (the peer is gone).
  void Abort(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mutex_);
      if (!finishing_) final_status_ = status;
      finishing_ = true;
      queue_.erase(queue_.begin() + (write_in_flight_ ? 1 : 0), queue_.end());
      if (write_in_flight_ || finish_started_) return;
      finish_started_ = true;
    }
    finish_(status);
  }

  // To be called from the reactor's OnWriteDone.
  void OnWriteDone(bool ok) {
    const Message* to_start = nullptr;
    bool finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mutex_);
      write_in_flight_ = false;
      if (!queue_.empty()) queue_.pop_front();
      if (!ok) {
        // The stream is broken: nothing more can be written.
        queue_.clear();
        if (!finishing_) {
          finishing_ = true;
          final_status_ =
              grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken");
        }
      }
      if (!queue_.empty()) {
        write_in_flight_ = true;
        to_start = &queue_.front();
      } else if (finishing_ && !finish_started_) {
        finish_started_ = true;
        finish = true;
        status = final_status_;
      }
    }
    if (to_start != nullptr) start_write_(to_start);
    if (finish) finish_(status);
  }

  bool finishing() const {
    absl::MutexLock lock(&mutex_);
    return finishing_;
  }

 private:
  const StartWriteFn start_write_;
  const FinishFn finish_;
  const size_t max_queued_;

  mutable absl::Mutex mutex_;
  // std::deque keeps references to existing elements valid across push_back, so
  // the message being written stays where gRPC reads it.
  std::deque<Message> queue_ ABSL_GUARDED_BY(mutex_);
  bool write_in_flight_ ABSL_GUARDED_BY(mutex_) = false;
  bool finishing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mutex_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_STREAMS_STREAM_WRITER_H_
