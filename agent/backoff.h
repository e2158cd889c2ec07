// Backoff: the delays between reconnect attempts of the agent's control stream.
// Exponential growth (multiplier 2) from an initial delay up to a cap, with
// jitter so that a fleet of agents cut off at once (server restart) does not
// come back in lockstep. Not thread-safe: one owner.
#ifndef ECLIPTIX_AGENT_BACKOFF_H_
#define ECLIPTIX_AGENT_BACKOFF_H_

#include <functional>

#include "absl/time/time.h"

namespace ecliptix::agent {

class Backoff {
 public:
  enum class Jitter {
    // Exactly the exponential sequence (tests, tools).
    kNone,
    // Uniform in [0, base]: spreads a herd best, may retry at once.
    kFull,
    // Uniform in [base/2, base*3/2]: keeps the order of magnitude.
    kPlusMinusHalf,
  };

  struct Options {
    absl::Duration initial = absl::Seconds(1);
    absl::Duration max = absl::Seconds(30);
    double multiplier = 2.0;
    Jitter jitter = Jitter::kPlusMinusHalf;
  };

  // Returns a number uniformly distributed in [0, 1).
  using RandomSource = std::function<double()>;

  // `random` defaults to a process-seeded generator; tests inject a fixed one.
  explicit Backoff(Options options, RandomSource random = nullptr);

  // The delay before the next attempt; each call grows the base delay until it
  // reaches the cap. The jittered delay never exceeds `max`.
  absl::Duration Next();
  // Back to `initial`, after an attempt that succeeded.
  void Reset();

  const Options& options() const { return options_; }

 private:
  Options options_;
  RandomSource random_;
  absl::Duration current_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_BACKOFF_H_
