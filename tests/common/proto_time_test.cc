#include "common/proto_time.h"

#include "gtest/gtest.h"

namespace ecliptix {
namespace {

TEST(ProtoTimeTest, TimestampRoundTripsToTheNanosecond) {
  const absl::Time time =
      absl::FromUnixSeconds(1'700'000'000) + absl::Nanoseconds(123'456'789);
  const google::protobuf::Timestamp proto = ToProtoTimestamp(time);
  EXPECT_EQ(proto.seconds(), 1'700'000'000);
  EXPECT_EQ(proto.nanos(), 123'456'789);
  EXPECT_EQ(FromProtoTimestamp(proto), time);
}

TEST(ProtoTimeTest, TimestampBeforeTheEpochHasPositiveNanos) {
  const absl::Time time = absl::UnixEpoch() - absl::Milliseconds(1500);
  const google::protobuf::Timestamp proto = ToProtoTimestamp(time);
  EXPECT_EQ(proto.seconds(), -2);
  EXPECT_EQ(proto.nanos(), 500'000'000);
  EXPECT_EQ(FromProtoTimestamp(proto), time);
}

TEST(ProtoTimeTest, UnsetTimestampIsTheEpoch) {
  EXPECT_EQ(FromProtoTimestamp(google::protobuf::Timestamp()),
            absl::UnixEpoch());
}

TEST(ProtoTimeTest, DurationRoundTripsWithOneSign) {
  const absl::Duration positive = absl::Seconds(90) + absl::Nanoseconds(7);
  google::protobuf::Duration proto = ToProtoDuration(positive);
  EXPECT_EQ(proto.seconds(), 90);
  EXPECT_EQ(proto.nanos(), 7);
  EXPECT_EQ(FromProtoDuration(proto), positive);

  const absl::Duration negative = -absl::Milliseconds(1500);
  proto = ToProtoDuration(negative);
  EXPECT_EQ(proto.seconds(), -1);
  EXPECT_EQ(proto.nanos(), -500'000'000);
  EXPECT_EQ(FromProtoDuration(proto), negative);

  EXPECT_EQ(FromProtoDuration(ToProtoDuration(absl::ZeroDuration())),
            absl::ZeroDuration());
}

}  // namespace
}  // namespace ecliptix
