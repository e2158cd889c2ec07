// OperationCallLog: the agent's own table `ecliptix_operation_calls` in the
// target, next to the schema history and the metric cursors: how many calls
// of each bundle operation the executor made per minute, and how many of them
// failed. It exists because a refused call is rolled back whole on PostgreSQL
// and SQLite (no autonomous transactions), so the bundle's ErrorLog cannot
// hold its row; the agent counts the outcome itself instead.
//
// A successful call is counted inside the call's own transaction (it is
// counted exactly when its work commits, with no extra commit); a failed one
// in a small transaction of its own after the rollback. The metrics collector
// (agent/metrics/operation_calls.h) reports what was not reported yet and
// marks it reported in the same table.
#ifndef ECLIPTIX_AGENT_EXECUTOR_CALL_LOG_H_
#define ECLIPTIX_AGENT_EXECUTOR_CALL_LOG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target/target.h"

namespace ecliptix::agent {

inline constexpr char kOperationCallTable[] = "ecliptix_operation_calls";

// Columns: operation, minute_start (Unix seconds of the minute the call
// started in), calls, failures, reported_calls, reported_failures; the key is
// (operation, minute_start).
class OperationCallLog {
 public:
  // `database` must outlive the log; its connection must be writable.
  explicit OperationCallLog(Target* database);

  // Whether the table exists (reads create nothing).
  absl::StatusOr<bool> Exists();
  // Creates the table when missing, outside any transaction (concurrent
  // creators are tolerated). Remembered once it succeeds.
  absl::Status Ensure();
  // Adds one call of `operation` started at `at` (failed or not) in whatever
  // transaction the caller has open. Requires Ensure().
  absl::Status Record(const std::string& operation, absl::Time at, bool failed);
  // Record() in a transaction of its own (for a call that was rolled back).
  absl::Status RecordAlone(const std::string& operation, absl::Time at,
                           bool failed);

 private:
  Target* const database_;
  bool ensured_ = false;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_CALL_LOG_H_
