// The day-2 TargetActions of the wave engine: a maintenance job's run (a
// bundle operation, in batches until done), a configuration change (undone by
// storing the previous values again), a configuration read and a fleet query
// (nothing to undo). Each target runs one unit; what the agent reports is
// published as the rollout's events (ApplyRolloutEvent keeps the counters).
#ifndef ECLIPTIX_SERVER_OPERATIONS_DAY2_ACTIONS_H_
#define ECLIPTIX_SERVER_OPERATIONS_DAY2_ACTIONS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "server/operations/target_action.h"

namespace ecliptix::server::operations {

// The unit every target of each kind runs (RolloutTarget.phase).
inline constexpr char kJobUnit[] = "run";
inline constexpr char kConfigChangeUnit[] = "set";
inline constexpr char kConfigReadUnit[] = "read";
inline constexpr char kQueryUnit[] = "query";

// The units of a rollout's operation kind: its phases for a deployment
// (rollout.phases), one unit otherwise.
std::vector<std::string> UnitsOf(const fleet::v1::Rollout& rollout);

// The action of the rollout's operation kind. `manifest` is the rollout's
// bundle (empty when no longer in the catalog).
std::unique_ptr<TargetAction> MakeAction(const fleet::v1::Rollout& rollout,
                                         fleet::v1::BundleManifest manifest);

// Whether the operation changes databases (deployments, job runs,
// configuration changes): such operations never share a database with one
// another. Reads (configuration reads, queries) run beside anything.
bool ChangesDatabases(const fleet::v1::FleetOperation& operation);

// What a request asks of each database, against its bundle: the operation
// and its arguments exist and fit (INVALID_ARGUMENT, NOT_FOUND for an
// operation or query the bundle lacks, PERMISSION_DENIED for a query that is
// not declared read-only), configuration keys and values fit the bundle's
// schema (FAILED_PRECONDITION when it has none), and the strategy asks
// nothing of a deployment (backups, adoption, phases). OK for deployments.
absl::Status CheckOperation(const fleet::v1::FleetOperation& operation,
                            const fleet::v1::Strategy& strategy,
                            const fleet::v1::BundleManifest& manifest);

// The agent capability an operation needs ("operations", "config", "query");
// empty for deployments.
std::string RequiredCapability(const fleet::v1::FleetOperation& operation);

// "deploy", "job", "config", "config-read", "query".
std::string OperationKindName(const fleet::v1::FleetOperation& operation);

}  // namespace ecliptix::server::operations

#endif  // ECLIPTIX_SERVER_OPERATIONS_DAY2_ACTIONS_H_
