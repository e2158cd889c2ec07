// absl::Status <-> the API's in-stream Status message (a failure of one message
// inside a stream). No gRPC here, so domain code can use it.
#ifndef ECLIPTIX_COMMON_PROTO_STATUS_H_
#define ECLIPTIX_COMMON_PROTO_STATUS_H_

#include "absl/status/status.h"
#include "ecliptix/fleet/v1/types.pb.h"

namespace ecliptix {

ecliptix::fleet::v1::Status ToProtoStatus(const absl::Status& status);
absl::Status FromProtoStatus(const ecliptix::fleet::v1::Status& status);

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_PROTO_STATUS_H_
