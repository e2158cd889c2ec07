// ecliptixctl's `rollout` noun: create or plan a rollout from strategy flags,
// list, show, watch live, pause / resume / abort / retry, roll back, and
// attest gates. The flag parsers are exposed so they are tested without a
// server; rendering lives in ctl_rollout_view.
#ifndef ECLIPTIX_CLIENT_CTL_ROLLOUT_H_
#define ECLIPTIX_CLIENT_CTL_ROLLOUT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/rollout.pb.h"

namespace ecliptix::client::ctl {

// The CreateRolloutRequest that `rollout create|plan` sends: BUNDLE from the
// first argument, the strategy, gates and description from the flags, and
// `requested_by`. Values that cannot be right (--auto_rollback=maybe,
// --gate=unknown, --waves=0%, a malformed --window) are usage errors
// (CommandUsageError) naming the flag and what it accepts.
absl::StatusOr<fleet::v1::CreateRolloutRequest> CreateRequestFromFlags(
    const Invocation& invocation, const std::string& requested_by);

// The strategy of the flags the verb declares (waves, max_parallel,
// failure_budget, pause, approval, auto_rollback, offline_deadline, offline,
// order_by, order_values, backup, adopt, phases); flags left out keep the
// Strategy's defaults. Values that cannot be right are usage errors, as in
// CreateRequestFromFlags.
absl::StatusOr<fleet::v1::Strategy> StrategyFromFlags(
    const Invocation& invocation);

// "[ZONE,]HH:MM-HH:MM[,DAYS]" where DAYS is a comma list of days and day
// ranges ("mon-fri", "sat,sun", "fri-mon"). A usage error otherwise.
absl::StatusOr<fleet::v1::MaintenanceWindow> ParseWindowFlag(
    absl::string_view text);

// "running,paused": rollout states by name (see RolloutStateName), or
// "active" for every state that is not final. A usage error otherwise.
absl::StatusOr<std::vector<fleet::v1::RolloutState>> ParseStatesFlag(
    absl::string_view text);

// Follows an operation (a rollout of any kind: a job run, a configuration
// change) as `rollout watch` does, until it ends or the user interrupts; the
// exit code follows its outcome. For the other nouns' --watch.
absl::Status WatchRolloutUntilEnd(const std::string& rollout_id,
                                  const Invocation& invocation,
                                  CommandRuntime& runtime);

// The noun's entry in the command table.
NounSpec RolloutNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_ROLLOUT_H_
