// The agent's built-in collector of operation calls: reads what the executor
// counted in ecliptix_operation_calls (executor/call_log.h) and not reported
// yet, turns it into the delta metrics `operation_calls` and
// `operation_failures` (label `operation`), and marks it reported in the same
// transaction, so that nothing is counted twice, also across restarts.
#ifndef ECLIPTIX_AGENT_METRICS_OPERATION_CALLS_H_
#define ECLIPTIX_AGENT_METRICS_OPERATION_CALLS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target/target.h"
#include "ecliptix/fleet/v1/metrics.pb.h"

namespace ecliptix::agent {

// The collector's name in CycleReport::collectors_run.
inline constexpr char kOperationCallsCollector[] = "operation_calls";
inline constexpr char kOperationCallsMetric[] = "operation_calls";
inline constexpr char kOperationFailuresMetric[] = "operation_failures";

// Reported rows older than this are deleted (the counts live on the server).
inline constexpr absl::Duration kOperationCallRetention = absl::Hours(24);

// One sample of each metric per operation with unreported calls, stamped
// `now`. `database` must be writable and have no transaction open. A row
// whose counts another collector changed meanwhile is left for the next run
// (optimistic: the update names the counts read). Nothing when the table
// does not exist.
absl::StatusOr<std::vector<fleet::v1::MetricSample>> CollectOperationCalls(
    Target& database, absl::Time now);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_METRICS_OPERATION_CALLS_H_
