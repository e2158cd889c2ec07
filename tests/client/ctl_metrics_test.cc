// ecliptixctl metrics without a server: durations with days, --label pairs,
// sparklines and the steps they are drawn from, and the tables of top, series
// and rate.
#include "client/ctl_metrics.h"

#include <string>
#include <vector>

#include "client/ctl_commands.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'040);

v1::Series MakeSeries(const std::string& database_id,
                      std::vector<std::pair<int, double>> minutes_values) {
  v1::Series series;
  series.set_database_id(database_id);
  (*series.mutable_labels())["procedure"] = "Login";
  for (const auto& [minute, value] : minutes_values) {
    v1::SeriesPoint* point = series.add_points();
    *point->mutable_time() = ToProtoTimestamp(kStart + absl::Minutes(minute));
    point->set_value(value);
  }
  return series;
}

TEST(MetricsDurationTest, TakesDaysAndAbseilDurations) {
  EXPECT_EQ(*ParseMetricsDuration("range", "7d"), absl::Hours(24 * 7));
  EXPECT_EQ(*ParseMetricsDuration("range", "1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseMetricsDuration("step", "30s"), absl::Seconds(30));
  for (const char* bad : {"", "0s", "-1h", "d", "1.5d", "soon"}) {
    absl::StatusOr<absl::Duration> parsed = ParseMetricsDuration("range", bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(IsCommandUsageError(parsed.status()));
    EXPECT_THAT(parsed.status().message(), HasSubstr("--range"));
  }
}

TEST(MetricsLabelFilterTest, SplitsPairs) {
  EXPECT_THAT(
      *ParseLabelFilter("procedure=Login,event=LOGIN_FAILED"),
      ElementsAre(Pair("event", "LOGIN_FAILED"), Pair("procedure", "Login")));
  EXPECT_THAT(*ParseLabelFilter("table=a=b"),
              ElementsAre(Pair("table", "a=b")));
  EXPECT_TRUE(ParseLabelFilter("")->empty());
  EXPECT_TRUE(IsCommandUsageError(ParseLabelFilter("procedure").status()));
  EXPECT_TRUE(IsCommandUsageError(ParseLabelFilter("=x").status()));
  EXPECT_THAT(ParseLabelFilter("a=1,a=2").status().message(),
              HasSubstr("twice"));
}

TEST(SparklineTest, ScalesBetweenTheSmallestAndLargestValue) {
  EXPECT_EQ(Sparkline({0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}), "▁▂▃▄▅▆▇█");
  EXPECT_EQ(Sparkline({10.0, std::nullopt, 20.0}), "▁ █");
  EXPECT_EQ(Sparkline({5.0, 5.0}), "▁▁");
  EXPECT_EQ(Sparkline({}), "");
}

TEST(StepValuesTest, PlacesPointsOnTheirStepsAndFitsAWidth) {
  const v1::Series series = MakeSeries("db-1", {{0, 1}, {2, 3}, {5, 6}});
  EXPECT_THAT(
      StepValues(series, kStart, kStart + absl::Minutes(6), absl::Minutes(1)),
      ElementsAre(1.0, std::nullopt, 3.0, std::nullopt, std::nullopt, 6.0));
  // Two steps per character: averages of what is there.
  EXPECT_THAT(StepValues(series, kStart, kStart + absl::Minutes(6),
                         absl::Minutes(1), 3),
              ElementsAre(1.0, 3.0, 6.0));
}

TEST(MetricsTablesTest, TopSeriesAndRate) {
  v1::TopProceduresResponse top;
  v1::ProcedureFigures* row = top.add_procedures();
  row->set_database_id("db-1");
  row->set_procedure("SignUp");
  row->set_calls(2);
  row->set_avg_ms(200);
  row->set_max_ms(300);
  row->set_errors(1);
  EXPECT_EQ(TopTable(top, false),
            "PROCEDURE   CALLS   AVG MS   MAX MS   ERRORS\n"
            "SignUp      2       200.0    300.0    1\n");
  EXPECT_THAT(TopTable(top, true), HasSubstr("DATABASE   PROCEDURE"));

  v1::QuerySeriesResponse response;
  *response.mutable_step() = ToProtoDuration(absl::Minutes(1));
  *response.add_series() = MakeSeries("db-1", {{0, 1}, {1, 2.5}});
  EXPECT_EQ(SeriesColumns(response),
            "DATABASE   LABELS            TIME                       VALUE\n"
            "db-1       procedure=Login   2023-11-14T22:14:00.000Z   1\n"
            "db-1       procedure=Login   2023-11-14T22:15:00.000Z   2.5\n");
  const std::string sparklines = SeriesSparklines(
      response, "procedure_calls", kStart, kStart + absl::Minutes(2), 80);
  EXPECT_THAT(sparklines, HasSubstr("procedure_calls: 1 series"));
  EXPECT_THAT(sparklines, HasSubstr("db-1       procedure=Login   1     2.5   "
                                    "2.5    ▁█"));

  v1::GetRateResponse rate;
  (*rate.mutable_by_database())["db-2"] = 0;
  (*rate.mutable_by_database())["db-1"] = 0.0025;
  rate.set_fleet(0.00125);
  rate.set_unit("failed calls per call");
  EXPECT_EQ(RateTable(rate, "errors", absl::Hours(1)),
            "DATABASE   RATE\n"
            "db-1       0.250%\n"
            "db-2       0.000%\n"
            "fleet: 0.125% (failed calls per call) over the last 1h, 2 "
            "databases\n");
  rate.set_unit("per minute");
  rate.set_fleet(0.5);
  EXPECT_THAT(RateTable(rate, "failed_logins", absl::Minutes(15)),
              HasSubstr("fleet: 0.50/min (per minute) over the last 15m"));
}

TEST(MetricsCommandsTest, UsageErrorsExitTwo) {
  std::ostringstream out, err;
  CtlContext context;
  context.out = &out;
  context.err = &err;
  EXPECT_EQ(RunCtl({"metrics", "top", "--range=tomorrow"}, context),
            kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("--range"));
  EXPECT_EQ(RunCtl({"metrics", "series"}, context), kExitUsage);
  EXPECT_EQ(
      RunCtl({"metrics", "series", "procedure_calls", "--label=x"}, context),
      kExitUsage);
  EXPECT_EQ(RunCtl({"metrics", "--help"}, context), kExitOk);
  EXPECT_THAT(out.str(), HasSubstr("metrics series METRIC"));
}

}  // namespace
}  // namespace ecliptix::client::ctl
