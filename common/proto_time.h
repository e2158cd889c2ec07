// The one conversion between google.protobuf.Timestamp / Duration and
// absl::Time / absl::Duration, for server, agent and client alike.
// Conversions are exact to the nanosecond (the protobuf types' resolution);
// absl's sub-nanosecond part is dropped.
#ifndef ECLIPTIX_COMMON_PROTO_TIME_H_
#define ECLIPTIX_COMMON_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace ecliptix {

// seconds since the Unix epoch, nanos in [0, 1e9) as the protobuf type wants
// (so an instant before 1970 has negative seconds and positive nanos).
google::protobuf::Timestamp ToProtoTimestamp(absl::Time time);

// seconds and nanos carry the same sign, as the protobuf type wants.
google::protobuf::Duration ToProtoDuration(absl::Duration duration);

// An unset Timestamp is the Unix epoch; callers that treat "unset" otherwise
// check for it first.
absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& timestamp);

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_PROTO_TIME_H_
