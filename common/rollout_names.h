// The names people read for rollout states, target states and gates: one table
// each, used by the server's logs and messages and by ecliptixctl alike.
// Lower case with dashes ("waiting-for-gate", "rolled-back"); gates by their
// short command-line names (backup, staging, window, rollback-plan, monitoring,
// team).
#ifndef ECLIPTIX_COMMON_ROLLOUT_NAMES_H_
#define ECLIPTIX_COMMON_ROLLOUT_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "ecliptix/fleet/v1/rollout.pb.h"

namespace ecliptix {

// "running", "waiting-for-gate", "rolled-back"; "unknown" for UNSPECIFIED and
// values this build does not know.
std::string RolloutStateName(fleet::v1::RolloutState state);
std::string TargetStateName(fleet::v1::TargetState state);
// The inverse of RolloutStateName (case, spaces and '_' for '-' forgiven);
// also "waiting" for WAITING_FOR_GATE.
std::optional<fleet::v1::RolloutState> ParseRolloutState(
    absl::string_view name);
// SUCCEEDED, FAILED, ABORTED, ROLLED_BACK: nothing happens to the rollout any
// more, and the server ends watches there.
bool IsFinalState(fleet::v1::RolloutState state);

// The short gate name: backup, staging, window, rollback-plan, monitoring,
// team; "unknown" for anything else.
std::string GateName(fleet::v1::GateKind kind);
// A short name, or the long one of the enum in lower case with dashes
// ("team-notified", "maintenance-window"); nullopt for anything else.
std::optional<fleet::v1::GateKind> ParseGateName(absl::string_view name);
// "backup, staging, window, rollback-plan, monitoring, team".
std::string GateNames();

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_ROLLOUT_NAMES_H_
