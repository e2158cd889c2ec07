#include "client/ctl_alerts.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/ctl_format.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

std::string StateText(v1::AlertState state) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::AlertState_Name(state), "ALERT_STATE_"));
}

std::string EventTypeText(v1::AlertEvent::Type type) {
  return std::string(
      absl::StripPrefix(v1::AlertEvent::Type_Name(type), "TYPE_"));
}

absl::Status AlertsList(const Invocation& invocation, CommandRuntime& runtime) {
  v1::ListAlertsRequest request;
  request.set_selector(invocation.Flag("selector"));
  request.set_include_resolved(invocation.BoolFlag("all"));
  request.set_limit(static_cast<int32_t>(invocation.CountFlag("limit", 0)));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::ListAlertsResponse response,
                   client->ListAlerts(request));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(response));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  if (response.alerts().empty()) {
    // On stderr, so stdout stays empty for scripts that count lines.
    runtime.err() << (request.include_resolved() ? "No alerts.\n"
                                                 : "No active alerts.\n");
    return absl::OkStatus();
  }
  runtime.out() << AlertTable(response, runtime.Now());
  return absl::OkStatus();
}

absl::Status AlertsWatch(const Invocation& invocation,
                         CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::WatchAlertsRequest request;
  request.set_selector(invocation.Flag("selector"));
  return PrintWatchedEvents<v1::AlertEvent>(
      invocation, runtime, client,
      [&](std::function<bool(const v1::AlertEvent&)> on_event) {
        return client->WatchAlerts(request, std::move(on_event));
      },
      AlertEventLine);
}

}  // namespace

std::string AlertRuleText(v1::AlertRule rule) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::AlertRule_Name(rule), "ALERT_RULE_"));
}

std::map<std::string, std::vector<std::string>> ActiveAlertNames(
    const v1::ListAlertsResponse& response) {
  std::map<std::string, std::vector<std::string>> names;
  for (const v1::Alert& alert : response.alerts()) {
    if (alert.state() != v1::ALERT_STATE_ACTIVE) continue;
    names[alert.database_id()].push_back(AlertRuleText(alert.rule()));
  }
  return names;
}

std::string AlertTable(const v1::ListAlertsResponse& response, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"ALERT", "DATABASE", "RULE", "STATE", "FIRED", "RESOLVED", "MESSAGE"}};
  for (const v1::Alert& alert : response.alerts()) {
    const bool resolved = alert.state() == v1::ALERT_STATE_RESOLVED;
    rows.push_back(
        {alert.alert_id(), alert.database_id(), AlertRuleText(alert.rule()),
         StateText(alert.state()),
         RelativeTime(FromProtoTimestamp(alert.fired_time()), now),
         resolved ? RelativeTime(FromProtoTimestamp(alert.resolved_time()), now)
                  : std::string("-"),
         alert.message()});
  }
  return AlignedTable(rows);
}

std::string AlertEventLine(const v1::AlertEvent& event) {
  if (!event.has_alert()) {
    return absl::StrFormat("%-24s  %-17s", TimestampText(event.event_time()),
                           EventTypeText(event.type()));
  }
  return absl::StrFormat("%-24s  %-17s  %-8s  %-20s  %-19s  %s",
                         TimestampText(event.event_time()),
                         EventTypeText(event.type()), event.alert().alert_id(),
                         event.alert().database_id(),
                         AlertRuleText(event.alert().rule()), event.message());
}

NounSpec AlertsNoun() {
  return {
      "alerts",
      "Alerts the server raises from the fleet's metrics: failed logins, "
      "suspicious activity,\nerror rate and average procedure time above "
      "the thresholds of ecliptix-server's --alert_* flags.",
      {
          {"list",
           {},
           "The active alerts (with --all, resolved ones too)",
           "Columns: ALERT, DATABASE, RULE (failed_logins, "
           "suspicious_activity, error_rate,\nslow_procedures), STATE (active "
           "or resolved), FIRED, RESOLVED, MESSAGE.\nActive alerts by "
           "database and rule, then resolved ones newest first.\n"
           "With -o json: the ListAlertsResponse.\n"
           "Example: ecliptixctl alerts list --selector=env=prod --all\n",
           {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
            {"all", Kind::kBool, "", "resolved alerts too"},
            {"limit", Kind::kCount, "N", "at most N resolved alerts (0: 100)"}},
           AlertsList},
          {"watch",
           {},
           "Print the active alerts, then every alert that fires or resolves",
           "One line per event: time, event type, alert, database, rule, "
           "message.\nFirst a SNAPSHOT event per active alert and "
           "SNAPSHOT_COMPLETE, then FIRED and\nRESOLVED events as they "
           "happen.\nRuns until Ctrl-C or SIGTERM (exit 0), or until --count "
           "events.\nWith -o json: one AlertEvent object per line.\n",
           {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
            {"count", Kind::kCount, "N",
             "exit after N events, snapshot events included (0: never)"}},
           AlertsWatch},
      }};
}

}  // namespace ecliptix::client::ctl
