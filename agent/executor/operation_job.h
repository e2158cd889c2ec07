// Maintenance job runs (RunOperationCommand): a bundle operation called
// through the executor on the agent's main session. A batch operation
// (Operation.batch) is called again and again, one transaction per call
// (Executor::CallOperation commits each), until nothing is left; so a batch is
// either wholly done and reported or rolled back and not, and never applied
// twice.
//
// Events, through the sink:
//  - batch operation: one OperationBatch after each call, with rows_done and
//    rows_left from the BatchSpec's columns (matched ignoring case:
//    PostgreSQL folds unquoted names), the running total, rows per second
//    and the batch's duration; the last one carries the stop_reason ("nothing
//    left" when rows_left is 0 or a call did nothing, "max batches reached",
//    "maintenance window closed" when the next batch would start at or after
//    not_after_time, "cancelled" when a cancel came during that batch). When
//    the window is closed before the first batch, one OperationBatch with
//    batch 0, rows_left -1 and that stop_reason says so.
//  - other operations: one OperationBatch (batch 1; rows_done = rows
//    affected, or rows returned; rows_left -1), and, when the operation
//    returns rows, one QueryRows (at most kMaxJobResultRows rows,
//    rows_truncated, last) so that, say, a weekly analysis job's result is
//    seen.
//
// Cancel: the CancelSignal ends a pause between batches at once and stops the
// run before the next batch; the caller also calls Executor::Cancel(), which
// interrupts the batch running (rolled back). The run then ends CANCELLED,
// the batches done before staying done.
#ifndef ECLIPTIX_AGENT_EXECUTOR_OPERATION_JOB_H_
#define ECLIPTIX_AGENT_EXECUTOR_OPERATION_JOB_H_

#include "absl/status/status.h"
#include "agent/executor/cancel_signal.h"
#include "agent/executor/command_events.h"
#include "agent/executor/executor.h"
#include "common/bundle/bundle.h"
#include "ecliptix/fleet/v1/operations.pb.h"

namespace ecliptix::agent {

// Rows of a non-batch operation's result sent in its QueryRows event.
inline constexpr size_t kMaxJobResultRows = 1000;

// The command's own checks, before anything runs: NOT_FOUND for an operation
// the bundle does not have; INVALID_ARGUMENT for its arguments
// (bundle::CheckArguments), a negative max_batches or pause.
absl::Status CheckRunOperation(const bundle::Bundle& bundle,
                               const fleet::v1::RunOperationCommand& command);

// Runs the command as described at the top (CheckRunOperation first).
// Errors: the checks', CANCELLED, or the failing call's status naming the
// batch and what was done before it. Windows and pauses use the real clock.
absl::Status RunOperationJob(Executor& executor, const bundle::Bundle& bundle,
                             const fleet::v1::RunOperationCommand& command,
                             const CancelSignal& cancel,
                             const CommandEventSink& sink);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_OPERATION_JOB_H_
