// CancelSignal: how a running command learns, from another thread, that it
// was cancelled: checked between units of work (batches, settings) and waited
// on during pauses, so a pause between two batches ends at once on a cancel.
#ifndef ECLIPTIX_AGENT_EXECUTOR_CANCEL_SIGNAL_H_
#define ECLIPTIX_AGENT_EXECUTOR_CANCEL_SIGNAL_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ecliptix::agent {

class CancelSignal {
 public:
  // Any thread. Holds until Reset().
  void Cancel() {
    absl::MutexLock lock(&mutex_);
    cancelled_ = true;
  }
  // Called by whoever owns the next unit of work (one command).
  void Reset() {
    absl::MutexLock lock(&mutex_);
    cancelled_ = false;
  }
  bool cancelled() const {
    absl::MutexLock lock(&mutex_);
    return cancelled_;
  }
  // Waits until `duration` has passed or Cancel() is called; true when
  // cancelled.
  bool WaitFor(absl::Duration duration) const {
    absl::MutexLock lock(&mutex_);
    mutex_.AwaitWithTimeout(absl::Condition(&cancelled_), duration);
    return cancelled_;
  }

 private:
  mutable absl::Mutex mutex_;
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_CANCEL_SIGNAL_H_
