// How a rollout event changes a rollout: the one function the server applies
// to its own copy of every rollout as it emits each event, and ecliptixctl
// applies to the copy it watches (`rollout watch`), so both always show the
// same states, step counters, failures against the budget and current wave.
//
// What the event carries decides; nothing is inferred:
// - state_changed: the state; waiting_reason is the event's reason, except
//   for a rollout that is pending or simply running (running with no
//   resume_time), which shows none; finish_time is set on entering a final
//   state and cleared when a final rollout becomes active again (retry,
//   rollback).
// - wave: a started wave becomes current_wave (wave_start_time = the event's
//   time, resume_time cleared); its databases are placed in it.
// - target: state and error; RUNNING (from any other state) starts the
//   target's clock, a final state stops it and forgets the command; PENDING
//   (a retry) clears finished_time and resets failures to 0, as a retry
//   starts the budget anew; counts_against_budget adds one failure.
// - deployment: the step; while the target is RUNNING, an APPLIED step counts
//   in steps_applied and marks its phase touched, a SKIPPED one counts in
//   steps_skipped (revert steps of a rollback count in neither); a finished
//   backup is remembered (backup_id).
// - operation_batch: the target's batches, rows_done and rows_left.
// - config_value (configuration changes only, while the target is RUNNING):
//   the first value reported for a key is remembered in config_previous (or
//   config_missing_before); a value that changed marks the unit touched.
// - query_rows: adds to the target's rows_returned.
// - gate: replaces the gate of its kind.
// - snapshot: replaces the rollout.
// last_event_sequence becomes the event's sequence when that is later.
#ifndef ECLIPTIX_COMMON_ROLLOUT_EVENTS_H_
#define ECLIPTIX_COMMON_ROLLOUT_EVENTS_H_

#include <functional>
#include <string>

#include "ecliptix/fleet/v1/rollout.pb.h"

namespace ecliptix {

void ApplyRolloutEvent(const fleet::v1::RolloutEvent& event,
                       fleet::v1::Rollout* rollout);

// Finds a rollout's target by database id; null when it has none.
using RolloutTargetLookup =
    std::function<fleet::v1::RolloutTarget*(const std::string& database_id)>;
// The same, finding the event's targets with `lookup` (then FindOrAddTarget
// when it finds none): a holder of a rollout of many targets that indexes
// them applies an event in O(1), not O(targets).
void ApplyRolloutEvent(const fleet::v1::RolloutEvent& event,
                       fleet::v1::Rollout* rollout,
                       const RolloutTargetLookup& lookup);

// PENDING, WAITING_FOR_GATE, RUNNING, PAUSED, ROLLING_BACK: the rollout still
// changes.
bool IsActiveRolloutState(fleet::v1::RolloutState state);
// SUCCEEDED, FAILED, SKIPPED, ROLLED_BACK, UNKNOWN: nothing runs on the target.
bool IsFinalTargetState(fleet::v1::TargetState state);

// The waiting_reason a rollout shows on entering `state` for `reason`: none
// when it is pending or simply running (running with no resume_time).
std::string ShownWaitingReason(const fleet::v1::Rollout& rollout,
                               fleet::v1::RolloutState state,
                               const std::string& reason);

// The target of `database_id`; one is added (PENDING) when the rollout has
// none, as a watcher may hear of a database before its snapshot has it.
fleet::v1::RolloutTarget& FindOrAddTarget(fleet::v1::Rollout* rollout,
                                          const std::string& database_id);

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_ROLLOUT_EVENTS_H_
