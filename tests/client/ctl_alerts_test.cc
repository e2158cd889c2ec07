// The renderers of `ecliptixctl alerts` and the ALERTS column of `fleet list`,
// without a server.
#include "client/ctl_alerts.h"

#include "client/ctl_format.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::Pair;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

v1::Alert MakeAlert(const std::string& id, const std::string& database_id,
                    v1::AlertRule rule, bool resolved) {
  v1::Alert alert;
  alert.set_alert_id(id);
  alert.set_database_id(database_id);
  alert.set_rule(rule);
  alert.set_state(resolved ? v1::ALERT_STATE_RESOLVED : v1::ALERT_STATE_ACTIVE);
  *alert.mutable_fired_time() = ToProtoTimestamp(kNow - absl::Minutes(3));
  if (resolved) {
    *alert.mutable_resolved_time() = ToProtoTimestamp(kNow - absl::Seconds(5));
  }
  alert.set_message("a message");
  return alert;
}

TEST(CtlAlertsTest, RuleNames) {
  EXPECT_EQ(AlertRuleText(v1::ALERT_RULE_FAILED_LOGINS), "failed_logins");
  EXPECT_EQ(AlertRuleText(v1::ALERT_RULE_SUSPICIOUS_ACTIVITY),
            "suspicious_activity");
  EXPECT_EQ(AlertRuleText(v1::ALERT_RULE_ERROR_RATE), "error_rate");
  EXPECT_EQ(AlertRuleText(v1::ALERT_RULE_SLOW_PROCEDURES), "slow_procedures");
}

TEST(CtlAlertsTest, TableAndActiveNames) {
  v1::ListAlertsResponse response;
  *response.add_alerts() =
      MakeAlert("al-1", "db-3", v1::ALERT_RULE_FAILED_LOGINS, false);
  *response.add_alerts() =
      MakeAlert("al-2", "db-3", v1::ALERT_RULE_SUSPICIOUS_ACTIVITY, false);
  *response.add_alerts() =
      MakeAlert("al-0", "db-4", v1::ALERT_RULE_ERROR_RATE, true);
  EXPECT_EQ(AlertTable(response, kNow),
            "ALERT   DATABASE   RULE                  STATE      FIRED    "
            "RESOLVED   MESSAGE\n"
            "al-1    db-3       failed_logins         active     3m ago   -"
            "          a message\n"
            "al-2    db-3       suspicious_activity   active     3m ago   -"
            "          a message\n"
            "al-0    db-4       error_rate            resolved   3m ago   "
            "5s ago     a message\n");
  const auto names = ActiveAlertNames(response);
  EXPECT_THAT(
      names, ElementsAre(Pair(
                 "db-3", ElementsAre("failed_logins", "suspicious_activity"))));

  std::vector<v1::Database> databases(2);
  databases[0].set_database_id("db-3");
  databases[1].set_database_id("db-4");
  const std::string table = DatabaseTable(databases, kNow, &names);
  EXPECT_THAT(table, ::testing::HasSubstr("ALERTS\n"));
  EXPECT_THAT(table,
              ::testing::HasSubstr("2 (failed_logins, suspicious_activity)\n"));
  EXPECT_THAT(table, ::testing::EndsWith("   -\n"));
}

TEST(CtlAlertsTest, EventLines) {
  v1::AlertEvent event;
  event.set_type(v1::AlertEvent::TYPE_FIRED);
  *event.mutable_event_time() = ToProtoTimestamp(kNow);
  *event.mutable_alert() =
      MakeAlert("al-1", "db-3", v1::ALERT_RULE_FAILED_LOGINS, false);
  event.set_message("12 failed logins/min on db-3 (threshold 5)");
  EXPECT_THAT(AlertEventLine(event),
              ::testing::MatchesRegex(
                  ".*FIRED +al-1 +db-3 +failed_logins +12 failed logins/min "
                  "on db-3 \\(threshold 5\\)"));
  v1::AlertEvent complete;
  complete.set_type(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE);
  EXPECT_THAT(AlertEventLine(complete),
              ::testing::HasSubstr("SNAPSHOT_COMPLETE"));
}

}  // namespace
}  // namespace ecliptix::client::ctl
