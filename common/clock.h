// An injectable clock, so time-dependent logic (heartbeat deadlines, later
// schedules) is tested with a fake clock instead of sleeps.
#ifndef ECLIPTIX_COMMON_CLOCK_H_
#define ECLIPTIX_COMMON_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ecliptix {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The process-wide real clock.
  static Clock* Real();
};

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mutex_);
    return now_;
  }
  void Advance(absl::Duration delta) {
    absl::MutexLock lock(&mutex_);
    now_ += delta;
  }

 private:
  mutable absl::Mutex mutex_;
  absl::Time now_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_CLOCK_H_
