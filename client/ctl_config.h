// ecliptixctl's `config` and `emergency` nouns: desired and actual
// configuration per database (get), changes in waves followed like `rollout
// watch` (set), drift found by reading the databases (diff: exit 1 when there
// is any, for scripts), the history of changes, and the runbook's emergency
// logging switch with a line per database as each one is done. Parsing and
// rendering are exposed so they are tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_CONFIG_H_
#define ECLIPTIX_CLIENT_CTL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/config_service.pb.h"

namespace ecliptix::client::ctl {

// The KEY=VALUE words of `config set`, split at the first '=' (the value may
// hold '=' and be empty). A word without '=', an empty key and a key given
// twice are usage errors (CommandUsageError) naming the word.
absl::StatusOr<std::vector<fleet::v1::ConfigSetting>> ParseSettings(
    const std::vector<std::string>& words);

// The SetConfigRequest of `config set`: the settings, --selector or --all,
// --reason (both required: usage errors), --bundle, and the strategy: canary
// first (--waves=1,100% unless given), --failure_budget (0 unless given),
// --max_parallel, and every changed database put back when the change fails
// unless --no_auto_rollback.
absl::StatusOr<fleet::v1::SetConfigRequest> SetConfigRequestFromFlags(
    const Invocation& invocation, const std::string& requested_by);

// `config get`: DATABASE, KEY, DESIRED ("-" when the control plane never set
// the key there), ACTUAL ("?" when never read, "<missing>" when the database
// lacks the key), DRIFT ("yes" or "-"), UPDATED (when the value was read).
std::string ConfigTable(const fleet::v1::GetConfigResponse& response,
                        absl::Time now);
// `config diff`: DATABASE, KEY, DESIRED, ACTUAL, FINDING (drift, missing,
// unknown).
std::string DriftTable(const fleet::v1::GetConfigResponse& response);
// `config history`: TIME, DATABASE, KEY, CHANGE ("5 -> 3", with "(rollback)"
// for a value stored again by a rollback), ROLLOUT, BY, REASON.
std::string HistoryTable(const fleet::v1::GetConfigHistoryResponse& response);

// A database of an emergency switch once it is done: "db-1 ok 210 ms",
// "db-2 failed: ..."; empty while it is not.
std::string EmergencyLine(const fleet::v1::RolloutTarget& target);

// The nouns' entries in the command table.
NounSpec ConfigNoun();
NounSpec EmergencyNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_CONFIG_H_
