// ecliptixctl's `alerts` noun: the active alerts of the fleet (and resolved
// ones with --all) as a table (list), and every alert that fires or resolves
// as it happens, after the active ones (watch). The renderers are exposed so
// that they are tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_ALERTS_H_
#define ECLIPTIX_CLIENT_CTL_ALERTS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/alerts.pb.h"

namespace ecliptix::client::ctl {

// "failed_logins", "suspicious_activity", "error_rate", "slow_procedures".
std::string AlertRuleText(fleet::v1::AlertRule rule);

// The rule names of the active alerts by database id, for `fleet list`.
std::map<std::string, std::vector<std::string>> ActiveAlertNames(
    const fleet::v1::ListAlertsResponse& response);

// `alerts list`: ALERT, DATABASE, RULE, STATE, FIRED, RESOLVED, MESSAGE.
std::string AlertTable(const fleet::v1::ListAlertsResponse& response,
                       absl::Time now);
// `alerts watch`: time, event type, alert id, database, rule, message; no
// trailing newline.
std::string AlertEventLine(const fleet::v1::AlertEvent& event);

// The noun's entry in the command table.
NounSpec AlertsNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_ALERTS_H_
