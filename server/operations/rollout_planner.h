// The pure parts of rollout planning: validating a strategy, ordering targets
// and cutting them into waves, the failure budget, maintenance windows and the
// gates that need no live state. No I/O, no clock of its own: everything here
// is a function of its arguments.
#ifndef ECLIPTIX_SERVER_OPERATIONS_ROLLOUT_PLANNER_H_
#define ECLIPTIX_SERVER_OPERATIONS_ROLLOUT_PLANNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "ecliptix/fleet/v1/types.pb.h"

namespace ecliptix::server {

// INVALID_ARGUMENT, saying how to fix it, for waves, budget, parallelism,
// durations, ordering, gates and windows that make no sense.
absl::Status ValidateStrategy(const fleet::v1::Strategy& strategy);
absl::Status ValidateGates(const std::vector<fleet::v1::GateSpec>& gates);

// Sorts databases by the strategy's label order, then by id, and assigns
// 1-based waves from the cumulative wave sizes (the last wave takes whatever
// remains; empty waves are dropped). Returns the targets in order, each with
// database_id, wave, labels and state PENDING.
absl::StatusOr<std::vector<fleet::v1::RolloutTarget>> AssignWaves(
    const fleet::v1::Strategy& strategy,
    const std::vector<fleet::v1::Database>& databases);

// The failure budget in databases for `target_count` targets ("0", "2", "10%";
// empty is 0).
absl::StatusOr<int> FailureBudget(const std::string& budget, int target_count);

// The phases to deploy: strategy.phases in bundle order, or every phase.
// INVALID_ARGUMENT names an unknown phase.
absl::StatusOr<std::vector<std::string>> PhasesToDeploy(
    const fleet::v1::Strategy& strategy,
    const fleet::v1::BundleManifest& manifest);

// Whether `now` is inside the window; the detail says why or when it opens.
struct WindowCheck {
  bool inside = false;
  std::string detail;
};
absl::StatusOr<WindowCheck> CheckWindow(
    const fleet::v1::MaintenanceWindow& window, absl::Time now);

// Steps of the deployed phases that have no revert script for some dialect of
// the bundle, as "phase/step" names (empty: the rollback plan is complete).
std::vector<std::string> StepsWithoutRevert(
    const fleet::v1::BundleManifest& manifest,
    const std::vector<std::string>& phases);

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_OPERATIONS_ROLLOUT_PLANNER_H_
