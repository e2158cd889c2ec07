#include "agent/executor/fleet_query.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/bundle/manifest_rules.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::agent {

namespace v1 = ::ecliptix::fleet::v1;

absl::Status CheckQuery(const bundle::Bundle& bundle,
                        const v1::RunQueryCommand& command) {
  const v1::Operation* operation = bundle.FindOperation(command.query());
  if (operation == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "bundle ", bundle.manifest().name(), " ", bundle.manifest().version(),
        " has no operation \"", command.query(), "\""));
  }
  if (!operation->read_only()) {
    return absl::PermissionDeniedError(
        absl::StrCat("operation ", command.query(),
                     " is not a declared read-only query (read_only: true in "
                     "the bundle's manifest)"));
  }
  RETURN_IF_ERROR(bundle::CheckArguments(
      *operation, std::map<std::string, std::string>(
                      command.arguments().begin(), command.arguments().end())));
  if (command.row_limit() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("row_limit must be 0 (the default, ",
                     kDefaultQueryRowLimit, ") or more"));
  }
  if (FromProtoDuration(command.timeout()) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout is negative");
  }
  return absl::OkStatus();
}

absl::Duration QueryTimeout(const v1::RunQueryCommand& command) {
  const absl::Duration timeout = FromProtoDuration(command.timeout());
  return timeout > absl::ZeroDuration() ? timeout : kDefaultQueryTimeout;
}

absl::Status RunQuery(ReadOnlySession& session, const bundle::Bundle& bundle,
                      const v1::RunQueryCommand& command,
                      const CommandEventSink& sink) {
  RETURN_IF_ERROR(CheckQuery(bundle, command));
  const size_t limit =
      command.row_limit() > 0 ? command.row_limit() : kDefaultQueryRowLimit;
  absl::StatusOr<OperationResult> result =
      session.Run(bundle, command.query(),
                  std::map<std::string, std::string>(
                      command.arguments().begin(), command.arguments().end()),
                  limit);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("query ", command.query(), ": ",
                                     result.status().message()));
  }
  for (v1::QueryRows& rows : ToQueryRows(*result, kQueryRowsPerEvent)) {
    v1::CommandEvent event;
    *event.mutable_query_rows() = std::move(rows);
    sink(std::move(event));
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
