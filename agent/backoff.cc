#include "agent/backoff.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/random/random.h"

namespace ecliptix::agent {

Backoff::Backoff(Options options, RandomSource random)
    : options_(options), random_(std::move(random)) {
  // Guard against nonsense so Next() always terminates in sane values.
  if (options_.initial <= absl::ZeroDuration())
    options_.initial = absl::Milliseconds(1);
  if (options_.max < options_.initial) options_.max = options_.initial;
  if (options_.multiplier < 1.0) options_.multiplier = 1.0;
  if (!random_) {
    auto gen = std::make_shared<absl::BitGen>();
    random_ = [gen] { return absl::Uniform<double>(*gen, 0.0, 1.0); };
  }
  current_ = options_.initial;
}

absl::Duration Backoff::Next() {
  const absl::Duration base = current_;
  current_ = std::min(current_ * options_.multiplier, options_.max);
  const double r = std::clamp(random_(), 0.0, 1.0);
  absl::Duration delay = base;
  switch (options_.jitter) {
    case Jitter::kNone:
      break;
    case Jitter::kFull:
      delay = base * r;
      break;
    case Jitter::kPlusMinusHalf:
      delay = base * (0.5 + r);
      break;
  }
  return std::min(delay, options_.max);
}

void Backoff::Reset() { current_ = options_.initial; }

}  // namespace ecliptix::agent
