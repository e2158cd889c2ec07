#include "agent/backoff.h"

#include <vector>

#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

Backoff::Options Options(Backoff::Jitter jitter) {
  Backoff::Options options;
  options.initial = absl::Seconds(1);
  options.max = absl::Seconds(10);
  options.jitter = jitter;
  return options;
}

Backoff::RandomSource Fixed(double value) {
  return [value] { return value; };
}

TEST(BackoffTest, GrowsByTwoUpToTheCap) {
  Backoff backoff(Options(Backoff::Jitter::kNone));
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(backoff.Next());
  EXPECT_EQ(delays, (std::vector<absl::Duration>{
                        absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                        absl::Seconds(8), absl::Seconds(10), absl::Seconds(10),
                        absl::Seconds(10)}));
}

TEST(BackoffTest, ResetStartsOver) {
  Backoff backoff(Options(Backoff::Jitter::kNone));
  backoff.Next();
  backoff.Next();
  backoff.Next();
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), absl::Seconds(1));
  EXPECT_EQ(backoff.Next(), absl::Seconds(2));
}

TEST(BackoffTest, PlusMinusHalfJitterBounds) {
  Backoff low(Options(Backoff::Jitter::kPlusMinusHalf), Fixed(0.0));
  Backoff high(Options(Backoff::Jitter::kPlusMinusHalf), Fixed(0.999999));
  EXPECT_EQ(low.Next(), absl::Milliseconds(500));
  EXPECT_EQ(low.Next(), absl::Seconds(1));
  EXPECT_NEAR(absl::ToDoubleSeconds(high.Next()), 1.5, 1e-3);
  EXPECT_NEAR(absl::ToDoubleSeconds(high.Next()), 3.0, 1e-3);
  // At the cap, +50% would exceed max: the delay is clamped to it.
  for (int i = 0; i < 5; ++i) high.Next();
  EXPECT_EQ(high.Next(), absl::Seconds(10));
  for (int i = 0; i < 5; ++i) low.Next();
  EXPECT_EQ(low.Next(), absl::Seconds(5));
}

TEST(BackoffTest, FullJitterBounds) {
  Backoff zero(Options(Backoff::Jitter::kFull), Fixed(0.0));
  Backoff half(Options(Backoff::Jitter::kFull), Fixed(0.5));
  EXPECT_EQ(zero.Next(), absl::ZeroDuration());
  EXPECT_EQ(half.Next(), absl::Milliseconds(500));
  EXPECT_EQ(half.Next(), absl::Seconds(1));
}

TEST(BackoffTest, RealRandomnessStaysWithinBounds) {
  Backoff backoff(Options(Backoff::Jitter::kPlusMinusHalf));
  absl::Duration base = absl::Seconds(1);
  for (int i = 0; i < 100; ++i) {
    const absl::Duration delay = backoff.Next();
    EXPECT_GE(delay, base / 2) << "attempt " << i;
    EXPECT_LE(delay, std::min(base * 1.5, absl::Seconds(10)))
        << "attempt " << i;
    base = std::min(base * 2, absl::Seconds(10));
  }
}

TEST(BackoffTest, NonsenseOptionsAreRepaired) {
  Backoff::Options options;
  options.initial = absl::ZeroDuration();
  options.max = absl::ZeroDuration();
  options.jitter = Backoff::Jitter::kNone;
  Backoff backoff(options);
  EXPECT_GT(backoff.Next(), absl::ZeroDuration());
}

}  // namespace
}  // namespace ecliptix::agent
