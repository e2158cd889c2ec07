// The one place that converts between absl::Status (used by every core) and
// grpc::Status (used only by the thin RPC adapters), plus the in-stream Status
// message of the API.
#ifndef ECLIPTIX_COMMON_GRPC_STATUS_H_
#define ECLIPTIX_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "common/proto_status.h"  // The in-stream Status conversions, for adapters.

namespace ecliptix {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_GRPC_STATUS_H_
