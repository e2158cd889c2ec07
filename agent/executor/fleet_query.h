// Fleet queries (RunQueryCommand): a bundle operation declared read_only, run
// on a read-only session of its own (read_only_session.h) with a deadline and
// a row limit, its rows streamed as QueryRows events.
#ifndef ECLIPTIX_AGENT_EXECUTOR_FLEET_QUERY_H_
#define ECLIPTIX_AGENT_EXECUTOR_FLEET_QUERY_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/executor/command_events.h"
#include "agent/executor/read_only_session.h"
#include "common/bundle/bundle.h"
#include "ecliptix/fleet/v1/operations.pb.h"

namespace ecliptix::agent {

// RunQueryCommand's defaults for 0.
inline constexpr int kDefaultQueryRowLimit = 1000;
inline constexpr absl::Duration kDefaultQueryTimeout = absl::Seconds(30);
// Rows per QueryRows event: small enough for any stream message.
inline constexpr size_t kQueryRowsPerEvent = 500;

// The checks before a session is opened: NOT_FOUND for an operation the
// bundle does not have; PERMISSION_DENIED for one not declared read_only;
// INVALID_ARGUMENT for its arguments (bundle::CheckArguments), a negative row
// limit or timeout.
absl::Status CheckQuery(const bundle::Bundle& bundle,
                        const fleet::v1::RunQueryCommand& command);

// The command's timeout (kDefaultQueryTimeout for 0).
absl::Duration QueryTimeout(const fleet::v1::RunQueryCommand& command);

// Runs the query on `session` (CheckQuery first) and reports its rows: at
// most the row limit (kDefaultQueryRowLimit for 0), in QueryRows events of at
// most kQueryRowsPerEvent rows, the last with last=true and rows_truncated.
// Nothing is reported when the query fails.
absl::Status RunQuery(ReadOnlySession& session, const bundle::Bundle& bundle,
                      const fleet::v1::RunQueryCommand& command,
                      const CommandEventSink& sink);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_FLEET_QUERY_H_
