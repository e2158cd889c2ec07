#include "common/proto_status.h"

#include <string>

namespace ecliptix {

ecliptix::fleet::v1::Status ToProtoStatus(const absl::Status& status) {
  ecliptix::fleet::v1::Status proto;
  proto.set_code(static_cast<int>(status.code()));
  proto.set_message(std::string(status.message()));
  return proto;
}

absl::Status FromProtoStatus(const ecliptix::fleet::v1::Status& status) {
  if (status.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()),
                      status.message());
}

}  // namespace ecliptix
