// `ecliptixctl health` without a server: the table of a report and when the
// command fails; the flags parse.
#include "client/ctl_health.h"

#include <sstream>
#include <string>
#include <vector>

#include "client/ctl_commands.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

v1::HealthCriterion Criterion(const std::string& name,
                              v1::HealthVerdict verdict, double value,
                              double threshold, const std::string& unit) {
  v1::HealthCriterion criterion;
  criterion.set_name(name);
  criterion.set_verdict(verdict);
  criterion.set_value(value);
  criterion.set_threshold(threshold);
  criterion.set_unit(unit);
  criterion.set_message("why");
  return criterion;
}

v1::HealthReport Report(v1::HealthVerdict time_verdict) {
  v1::HealthReport report;
  *report.mutable_start_time() = ToProtoTimestamp(absl::FromUnixSeconds(0));
  *report.mutable_end_time() = ToProtoTimestamp(absl::FromUnixSeconds(3600));
  v1::HealthRow* db = report.add_databases();
  db->set_database_id("db-1");
  *db->add_criteria() =
      Criterion("avg_procedure_time", time_verdict, 182.44, 100, "ms");
  *db->add_criteria() = Criterion("error_rate", v1::HEALTH_VERDICT_PASS, 0.0005,
                                  0.001, "failed calls per call");
  *db->add_criteria() =
      Criterion("lockout", v1::HEALTH_VERDICT_NO_DATA, 0, 5, "events");
  *report.mutable_fleet()->add_criteria() =
      Criterion("blocking_queries", v1::HEALTH_VERDICT_PASS, 0, 0, "sessions");
  return report;
}

TEST(HealthTableTest, ARowPerCriterionThenTheFleetAndTheCounts) {
  const std::string table = HealthTable(Report(v1::HEALTH_VERDICT_FAIL));
  EXPECT_THAT(table, HasSubstr("DATABASE"));
  EXPECT_THAT(table, HasSubstr("182.4 ms"));
  EXPECT_THAT(table, HasSubstr("< 100.0 ms"));
  EXPECT_THAT(table, HasSubstr("0.050%"));
  EXPECT_THAT(table, HasSubstr("< 0.100%"));
  EXPECT_THAT(table, HasSubstr("(fleet)"));
  EXPECT_THAT(table, HasSubstr("NO_DATA"));
  EXPECT_THAT(table, HasSubstr("UNHEALTHY: 2 passed, 1 failed, 1 without "
                               "data, over the last 1h, 1 database"));
  EXPECT_TRUE(HealthFailed(Report(v1::HEALTH_VERDICT_FAIL)));
  EXPECT_FALSE(HealthFailed(Report(v1::HEALTH_VERDICT_PASS)));
  EXPECT_THAT(HealthTable(Report(v1::HEALTH_VERDICT_PASS)),
              HasSubstr("healthy: 3 passed, 0 failed"));
}

TEST(HealthCommandTest, FlagsParseAndABadRangeIsAUsageError) {
  auto invocation = ParseCommandLine(
      Commands(),
      {"health", "--selector=env=prod", "--range=24h", "-o", "json"}, "");
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->Flag("selector"), "env=prod");
  EXPECT_EQ(invocation->output, OutputFormat::kJson);

  std::ostringstream out, err;
  CtlContext context;
  context.out = &out;
  context.err = &err;
  EXPECT_EQ(RunCtl({"health", "--range=soon", "--server=127.0.0.1:1"}, context),
            kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("--range"));
}

}  // namespace
}  // namespace ecliptix::client::ctl
