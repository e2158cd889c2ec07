#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace ecliptix {
namespace {

TEST(GrpcStatusTest, OkBothWays) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(ToProtoStatus(absl::OkStatus()).code(), 0);
  EXPECT_EQ(ToProtoStatus(absl::OkStatus()).message(), "");
  EXPECT_TRUE(FromProtoStatus(fleet::v1::Status()).ok());
}

// absl and gRPC codes share the values of google.rpc.Code; check each one
// rather than trust it.
TEST(GrpcStatusTest, EveryCodeRoundTrips) {
  const std::pair<absl::StatusCode, grpc::StatusCode> codes[] = {
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded,
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied,
       grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted,
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition,
       grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [absl_code, grpc_code] : codes) {
    const absl::Status status(absl_code, "what went wrong: \"x\"");
    const grpc::Status wire = ToGrpcStatus(status);
    EXPECT_EQ(wire.error_code(), grpc_code) << status;
    EXPECT_EQ(wire.error_message(), "what went wrong: \"x\"");
    EXPECT_EQ(FromGrpcStatus(wire), status);
    EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc_code, "m")),
              absl::Status(absl_code, "m"));

    const fleet::v1::Status proto = ToProtoStatus(status);
    EXPECT_EQ(proto.code(), static_cast<int>(grpc_code));
    EXPECT_EQ(proto.message(), "what went wrong: \"x\"");
    EXPECT_EQ(FromProtoStatus(proto), status);
  }
}

TEST(GrpcStatusTest, EmptyMessageSurvives) {
  const absl::Status status(absl::StatusCode::kNotFound, "");
  EXPECT_EQ(FromGrpcStatus(ToGrpcStatus(status)), status);
  EXPECT_EQ(FromProtoStatus(ToProtoStatus(status)), status);
}

}  // namespace
}  // namespace ecliptix
