// The metric store on a real database: SQLite files, and PostgreSQL when
// ECLIPTIX_TEST_POSTGRES_URL is set (each test on a scratch database).
// Batches stored once per agent process and sequence, rollups, points and
// totals at each resolution, retention, the latest values.
#include "server/metrics/metric_store.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/state_store.h"
#include "tests/testing/postgres.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A minute boundary, so tests know which minute and hour a sample falls in.
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'040);  // 22:14:00 UTC

v1::MetricSample Sample(const std::string& metric, double value,
                        absl::Time time, Labels labels = {}) {
  v1::MetricSample sample;
  sample.set_metric(metric);
  sample.set_value(value);
  *sample.mutable_time() = ToProtoTimestamp(time);
  sample.mutable_labels()->insert(labels.begin(), labels.end());
  return sample;
}

IncomingBatch Batch(const std::string& database_id, const std::string& instance,
                    uint64_t sequence, std::vector<v1::MetricSample> samples) {
  IncomingBatch batch;
  batch.database_id = database_id;
  batch.batch.set_agent_instance(instance);
  batch.batch.set_sequence(sequence);
  for (auto& sample : samples) *batch.batch.add_samples() = std::move(sample);
  return batch;
}

class MetricStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      if (!testing::PostgresAdminUrl()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
      }
      auto scratch = testing::CreateScratchDatabase("metrics");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url_ = scratch->url;
    } else {
      url_ = absl::StrCat(
          "sqlite://", std::getenv("TEST_TMPDIR"), "/",
          absl::StrReplaceAll(
              ::testing::UnitTest::GetInstance()->current_test_info()->name(),
              {{"/", "_"}}),
          ".db");
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::remove(absl::StrCat(url_.substr(9), suffix).c_str());
      }
    }
    auto state = StateStore::Open(url_);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *std::move(state);
    Reopen(kT0);
  }

  void Reopen(absl::Time now) {
    store_.reset();
    auto store = MetricStore::Open(url_, now);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  WriteSummary Write(std::vector<IncomingBatch> batches,
                     absl::Time now = kT0 + absl::Minutes(5)) {
    auto summary = store_->Write(batches, now);
    EXPECT_TRUE(summary.ok()) << summary.status();
    return summary.ok() ? *summary : WriteSummary();
  }

  // The sum of every raw sample of `metric` (one point over a wide range).
  double RawSum(const std::string& metric) {
    SeriesFilter filter;
    filter.metric = metric;
    auto points = store_->QueryPoints(
        filter, kT0 - absl::Hours(24), kT0 + absl::Hours(24 * 60),
        absl::Hours(24 * 61), false, Resolution::kRaw);
    EXPECT_TRUE(points.ok()) << points.status();
    double sum = 0;
    if (!points.ok()) return sum;
    for (const SeriesPoints& series : *points) {
      for (const Point& point : series.points) sum += point.value;
    }
    return sum;
  }

  std::string url_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<MetricStore> store_;
};

TEST(LabelKeyTest, RoundTripsAnyText) {
  const Labels labels = {{"procedure", "dbo.Login,Member=x"},
                         {"a.b", "back\\slash"},
                         {"empty", ""}};
  const std::string key = LabelKey(labels);
  EXPECT_EQ(key, "a.b=back\\\\slash,empty=,procedure=dbo.Login\\,Member\\=x");
  auto parsed = ParseLabelKey(key);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, labels);
  EXPECT_TRUE(ParseLabelKey("")->empty());
  EXPECT_FALSE(ParseLabelKey("novalue").ok());
  EXPECT_FALSE(ParseLabelKey("a=1,b").ok());
}

TEST_P(MetricStoreTest, StoresABatchOnceAndAcknowledgesTheHighest) {
  WriteSummary first =
      Write({Batch("db-1", "i-1", 1, {Sample("procedure_calls", 5, kT0)})});
  EXPECT_EQ(first.batches_stored, 1);
  EXPECT_EQ(first.samples_stored, 1);
  ASSERT_EQ(first.acks.size(), 1u);
  EXPECT_EQ(first.acks[0].database_id, "db-1");
  EXPECT_EQ(first.acks[0].ack.agent_instance(), "i-1");
  EXPECT_EQ(first.acks[0].ack.sequence(), 1u);

  // Sent again (the ack was lost with the connection), then the next one,
  // and the first again in the same write: stored once each.
  WriteSummary again =
      Write({Batch("db-1", "i-1", 1, {Sample("procedure_calls", 5, kT0)}),
             Batch("db-1", "i-1", 2,
                   {Sample("procedure_calls", 7, kT0 + absl::Seconds(10))}),
             Batch("db-1", "i-1", 2,
                   {Sample("procedure_calls", 7, kT0 + absl::Seconds(10))})});
  EXPECT_EQ(again.batches_repeated, 2);
  EXPECT_EQ(again.batches_stored, 1);
  ASSERT_EQ(again.acks.size(), 1u);
  EXPECT_EQ(again.acks[0].ack.sequence(), 2u);
  EXPECT_EQ(RawSum("procedure_calls"), 12);

  // Another agent process of the same database, and another database using
  // the same instance name, count on their own.
  WriteSummary others =
      Write({Batch("db-1", "i-2", 1, {Sample("procedure_calls", 1, kT0)}),
             Batch("db-2", "i-1", 1, {Sample("procedure_calls", 1, kT0)})});
  EXPECT_EQ(others.batches_stored, 2);
  EXPECT_EQ(RawSum("procedure_calls"), 14);

  // What is stored survives a restart: a repeat is still only acknowledged.
  Reopen(kT0 + absl::Minutes(6));
  WriteSummary after = Write({Batch("db-1", "i-1", 2, {})});
  EXPECT_EQ(after.batches_repeated, 1);
  ASSERT_EQ(after.acks.size(), 1u);
  EXPECT_EQ(after.acks[0].ack.sequence(), 2u);
  EXPECT_EQ(RawSum("procedure_calls"), 14);
}

TEST_P(MetricStoreTest, RefusesBadSamplesAndStoresTheRest) {
  WriteSummary summary = Write(
      {Batch("db-1", "i-1", 1,
             {Sample("procedure_calls", 1, kT0), Sample("bad-name", 1, kT0),
              Sample("procedure_calls", std::nan(""), kT0),
              Sample("procedure_calls", 2, kT0, {{"bad label", "x"}})})});
  EXPECT_EQ(summary.samples_stored, 1);
  EXPECT_EQ(summary.samples_refused, 3);
  EXPECT_THAT(summary.first_refusal, HasSubstr("bad-name"));
  EXPECT_EQ(RawSum("procedure_calls"), 1);
  EXPECT_EQ(summary.acks.size(), 1u);
}

TEST_P(MetricStoreTest, PointsSumDeltasAndAverageGaugesPerStep) {
  const Labels login = {{"procedure", "Login"}};
  const Labels signup = {{"procedure", "SignUp"}};
  Write({Batch("db-1", "i", 1,
               {Sample("procedure_calls", 1, kT0, login),
                Sample("procedure_calls", 2, kT0 + absl::Seconds(30), login),
                Sample("procedure_calls", 4, kT0 + absl::Seconds(60), login),
                Sample("procedure_calls", 8, kT0, signup)}),
         Batch("db-2", "i", 1, {Sample("procedure_calls", 16, kT0, login)})});
  SeriesFilter filter;
  filter.metric = "procedure_calls";
  filter.labels = login;
  for (Resolution resolution : {Resolution::kRaw, Resolution::kMinute}) {
    SCOPED_TRACE(static_cast<int>(resolution));
    auto points = store_->QueryPoints(filter, kT0, kT0 + absl::Minutes(2),
                                      absl::Minutes(1), false, resolution);
    ASSERT_TRUE(points.ok()) << points.status();
    ASSERT_EQ(points->size(), 2u);
    EXPECT_EQ((*points)[0].database_id, "db-1");
    EXPECT_EQ((*points)[0].labels, login);
    ASSERT_EQ((*points)[0].points.size(), 2u);
    EXPECT_EQ((*points)[0].points[0].time, kT0);
    EXPECT_EQ((*points)[0].points[0].value, 3);
    EXPECT_EQ((*points)[0].points[1].time, kT0 + absl::Minutes(1));
    EXPECT_EQ((*points)[0].points[1].value, 4);
    EXPECT_EQ((*points)[1].database_id, "db-2");
    // Averages: the same samples as a gauge.
    auto averaged = store_->QueryPoints(filter, kT0, kT0 + absl::Minutes(2),
                                        absl::Minutes(2), true, resolution);
    ASSERT_TRUE(averaged.ok()) << averaged.status();
    ASSERT_EQ((*averaged)[0].points.size(), 1u);
    EXPECT_NEAR((*averaged)[0].points[0].value, 7.0 / 3, 1e-9);
  }
  // Hours, and a database filter.
  filter.labels.clear();
  filter.databases = std::set<std::string>{"db-1"};
  auto hourly =
      store_->QueryPoints(filter, kT0 - absl::Hours(1), kT0 + absl::Hours(1),
                          absl::Hours(2), false, Resolution::kHour);
  ASSERT_TRUE(hourly.ok()) << hourly.status();
  ASSERT_EQ(hourly->size(), 2u);  // Login and SignUp of db-1
  EXPECT_EQ((*hourly)[0].points[0].value, 7);
  EXPECT_EQ((*hourly)[1].points[0].value, 8);

  // Steps that rollups cannot give, or too many points.
  EXPECT_THAT(store_
                  ->QueryPoints(filter, kT0, kT0 + absl::Hours(1),
                                absl::Seconds(90), false, Resolution::kMinute)
                  .status()
                  .message(),
              HasSubstr("step"));
  EXPECT_EQ(store_
                ->QueryPoints(filter, kT0, kT0 + absl::Hours(48),
                              absl::Seconds(1), false, Resolution::kRaw)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(MetricStoreTest, RollupsKeepSumCountMinMax) {
  Write({Batch("db-1", "i", 1,
               {Sample("procedure_max_ms", 30, kT0),
                Sample("procedure_max_ms", 10, kT0 + absl::Seconds(20)),
                Sample("procedure_max_ms", 20, kT0 + absl::Seconds(40))})});
  // A second transaction adds to the same minute.
  Write({Batch("db-1", "i", 2,
               {Sample("procedure_max_ms", 50, kT0 + absl::Seconds(50))})});
  auto totals =
      store_->QueryTotals({"procedure_max_ms"}, std::nullopt, kT0,
                          kT0 + absl::Minutes(1), kT0 + absl::Minutes(5));
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_EQ(totals->resolution, Resolution::kMinute);
  ASSERT_EQ(totals->series.size(), 1u);
  EXPECT_EQ(totals->series[0].sum, 110);
  EXPECT_EQ(totals->series[0].max, 50);
  SeriesFilter filter;
  filter.metric = "procedure_max_ms";
  auto average =
      store_->QueryPoints(filter, kT0, kT0 + absl::Minutes(1), absl::Minutes(1),
                          true, Resolution::kMinute);
  ASSERT_TRUE(average.ok());
  EXPECT_EQ((*average)[0].points[0].value, 27.5);
}

TEST_P(MetricStoreTest,
       TotalsOverLongRangesCountWholeHoursFromMemoryOrRollups) {
  // Two hours of one sample per 10 minutes, the last at now - 5 minutes.
  const absl::Time now = kT0 + absl::Hours(30);
  std::vector<v1::MetricSample> samples;
  for (int i = 0; i < 12; ++i) {
    samples.push_back(Sample("procedure_calls", 1,
                             now - absl::Minutes(5) - absl::Minutes(10 * i),
                             {{"procedure", "Login"}}));
  }
  // And one 28 hours ago: beyond what memory holds.
  samples.push_back(Sample("procedure_calls", 100, now - absl::Hours(28),
                           {{"procedure", "Login"}}));
  Write({Batch("db-1", "i", 1, samples)}, now);
  const Totals* seen = nullptr;
  auto day = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                                 now - absl::Hours(24), now, now);
  ASSERT_TRUE(day.ok()) << day.status();
  seen = &*day;
  EXPECT_EQ(seen->resolution, Resolution::kHour);
  EXPECT_EQ(seen->start,
            absl::FromUnixSeconds(absl::ToUnixSeconds(now - absl::Hours(24)) /
                                  3600 * 3600));
  ASSERT_EQ(seen->series.size(), 1u);
  EXPECT_EQ(seen->series[0].sum, 12);
  // Longer than memory: the hour rollups.
  auto two_days = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                                      now - absl::Hours(48), now, now);
  ASSERT_TRUE(two_days.ok()) << two_days.status();
  ASSERT_EQ(two_days->series.size(), 1u);
  EXPECT_EQ(two_days->series[0].sum, 112);
  // After a restart memory is loaded from the hour rollups.
  Reopen(now);
  auto reloaded = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                                      now - absl::Hours(24), now, now);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ASSERT_EQ(reloaded->series.size(), 1u);
  EXPECT_EQ(reloaded->series[0].sum, 12);
  // Hours over are rolled up from their raw samples; a late sample of a
  // rolled hour is added to the rollups; a restart finds where rolling
  // stopped.
  ASSERT_TRUE(store_->RollUpAll(now).ok());
  auto rolled = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                                    now - absl::Hours(48), now, now);
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  EXPECT_EQ(rolled->series[0].sum, 112);
  Write({Batch("db-1", "i", 2,
               {Sample("procedure_calls", 1000, now - absl::Hours(27),
                       {{"procedure", "Login"}})})},
        now);
  Reopen(now);
  ASSERT_TRUE(store_->RollUpAll(now).ok());
  rolled = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                               now - absl::Hours(48), now, now);
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  EXPECT_EQ(rolled->series[0].sum, 1112);
  SeriesFilter filter;
  filter.metric = "procedure_calls";
  auto hourly = store_->QueryPoints(filter, now - absl::Hours(48), now,
                                    absl::Hours(48), false, Resolution::kHour);
  ASSERT_TRUE(hourly.ok()) << hourly.status();
  ASSERT_EQ(hourly->size(), 1u);
  double hourly_sum = 0;
  for (const Point& point : (*hourly)[0].points) hourly_sum += point.value;
  EXPECT_EQ(hourly_sum, 1112);
  // A database filter that matches nothing.
  auto none =
      store_->QueryTotals({"procedure_calls"}, std::set<std::string>{"db-9"},
                          now - absl::Hours(24), now, now);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->series.empty());
}

TEST_P(MetricStoreTest, RollingUpGivesTheFiguresOfTheRawSamples) {
  // Three series over two hours; rolled up one series per step.
  const absl::Time now = kT0 + absl::Hours(3);
  std::vector<v1::MetricSample> samples;
  for (int i = 0; i < 120; ++i) {
    for (const char* procedure : {"A", "B", "C"}) {
      samples.push_back(Sample("procedure_calls", i % 7, kT0 + absl::Minutes(i),
                               {{"procedure", procedure}}));
    }
  }
  Write({Batch("db-1", "i", 1, samples)}, now);
  auto expected = store_->QueryTotals({"procedure_calls"}, std::nullopt, kT0,
                                      kT0 + absl::Hours(2), now);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(expected->series.size(), 3u);
  auto more = store_->RollUp(now, 1);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_TRUE(*more);
  // A late sample for the rolled series (A) and one for a series not rolled
  // yet (C), in the hour being rolled up; and a new series.
  Write({Batch("db-1", "i", 2,
               {Sample("procedure_calls", 100, kT0 + absl::Minutes(1),
                       {{"procedure", "A"}}),
                Sample("procedure_calls", 1000, kT0 + absl::Minutes(2),
                       {{"procedure", "C"}}),
                Sample("procedure_calls", 5, kT0 + absl::Minutes(3),
                       {{"procedure", "D"}})})},
        now);
  ASSERT_TRUE(store_->RollUpAll(now).ok());
  EXPECT_FALSE(*store_->RollUp(now, 1));
  // Minute and hour rollups now, with nothing raw left.
  int64_t cursor = 0;
  for (;;) {
    auto done =
        store_->EnforceRetention(now, kT0 - absl::Hours(1), &cursor, 1000);
    ASSERT_TRUE(done.ok()) << done.status();
    if (*done) break;
  }
  EXPECT_EQ(RawSum("procedure_calls"), 0);
  std::map<std::string, double> want = {{"D", 5}};
  for (const SeriesTotal& total : expected->series) {
    want[total.labels->at("procedure")] = total.sum;
  }
  want["A"] += 100;
  want["C"] += 1000;
  for (absl::Duration range : {absl::Hours(2), absl::Hours(7)}) {
    SCOPED_TRACE(absl::FormatDuration(range));
    // Minutes (2 hours) or hours (7 hours), from the tables only.
    auto rolled = store_->QueryTotals({"procedure_calls"}, std::nullopt, kT0,
                                      kT0 + range, now + absl::Hours(100));
    ASSERT_TRUE(rolled.ok()) << rolled.status();
    std::map<std::string, double> got;
    for (const SeriesTotal& total : rolled->series) {
      got[total.labels->at("procedure")] = total.sum;
    }
    EXPECT_EQ(got, want);
  }
  SeriesFilter filter;
  filter.metric = "procedure_calls";
  filter.labels = {{"procedure", "C"}};
  auto minutes =
      store_->QueryPoints(filter, kT0, kT0 + absl::Minutes(3), absl::Minutes(1),
                          false, Resolution::kMinute);
  ASSERT_TRUE(minutes.ok()) << minutes.status();
  ASSERT_EQ(minutes->size(), 1u);
  ASSERT_EQ((*minutes)[0].points.size(), 3u);
  EXPECT_EQ((*minutes)[0].points[2].value, 1002);
}

TEST_P(MetricStoreTest, RetentionDeletesOldRowsAndForgetsEmptySeries) {
  const absl::Time now = kT0 + absl::Hours(24 * 40);
  Write({Batch("db-1", "old", 1,
               {Sample("table_rows", 1, now - absl::Hours(24 * 35))}),
         Batch("db-1", "new", 1,
               {Sample("procedure_calls", 1, now - absl::Hours(48)),
                Sample("procedure_calls", 2, now - absl::Hours(1))})},
        now - absl::Hours(24 * 35));
  EXPECT_EQ(store_->series_count(), 2);
  // Raw samples go only once their hours are rolled up.
  ASSERT_TRUE(store_->RollUpAll(now).ok());
  int64_t cursor = 0;
  // One series per step: a step per series and expired hour of each table,
  // then the step that ends the round.
  int steps = 0;
  for (;;) {
    auto done = store_->EnforceRetention(
        now - absl::Hours(24), now - absl::Hours(24 * 30), &cursor, 1);
    ASSERT_TRUE(done.ok()) << done.status();
    ++steps;
    if (*done) break;
    ASSERT_LT(steps, 100);
  }
  EXPECT_GT(steps, 3);
  EXPECT_EQ(cursor, 0);
  // The raw sample of 48 hours ago is gone; its rollups stay.
  EXPECT_EQ(RawSum("procedure_calls"), 2);
  auto totals = store_->QueryTotals({"procedure_calls"}, std::nullopt,
                                    now - absl::Hours(72), now, now);
  ASSERT_TRUE(totals.ok());
  ASSERT_EQ(totals->series.size(), 1u);
  EXPECT_EQ(totals->series[0].sum, 3);
  // The 35-day-old series has nothing left: forgotten, with the silent
  // agent process's sequence.
  EXPECT_EQ(store_->series_count(), 1);
  EXPECT_FALSE(store_->HasMetric("table_rows"));
  EXPECT_GE(store_->rows_deleted(), 3);
  Reopen(now);
  EXPECT_EQ(store_->series_count(), 1);
  // Its batch counts as new again (nothing of it is stored any more).
  WriteSummary again =
      Write({Batch("db-1", "old", 1, {Sample("table_rows", 1, now)})}, now);
  EXPECT_EQ(again.batches_stored, 1);
}

TEST_P(MetricStoreTest, LatestValuesAreTheNewestSampleOfEachSeries) {
  Write({Batch("db-2", "i", 1,
               {Sample("database_size_bytes", 100, kT0),
                Sample("database_size_bytes", 300, kT0 + absl::Seconds(60)),
                Sample("database_size_bytes", 200, kT0 + absl::Seconds(30))}),
         Batch("db-1", "i", 1,
               {Sample("table_rows", 5, kT0, {{"table", "AuditLog"}})})});
  std::vector<LatestSample> latest = store_->Latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].database_id, "db-1");
  EXPECT_EQ(latest[0].metric, "table_rows");
  EXPECT_EQ(latest[0].labels, (Labels{{"table", "AuditLog"}}));
  EXPECT_EQ(latest[0].value, 5);
  EXPECT_EQ(latest[1].database_id, "db-2");
  EXPECT_EQ(latest[1].value, 300);
  EXPECT_EQ(latest[1].time, kT0 + absl::Seconds(60));
  // After a restart: as saved (a new series is saved with its first value).
  Reopen(kT0 + absl::Minutes(10));
  latest = store_->Latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[1].value, 300);
  Write({Batch("db-2", "i", 2,
               {Sample("database_size_bytes", 400, kT0 + absl::Minutes(2))})});
  EXPECT_EQ(store_->Latest()[1].value, 400);
  ASSERT_TRUE(store_->SaveLatestValues().ok());
  Reopen(kT0 + absl::Minutes(10));
  latest = store_->Latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[1].value, 400);
  EXPECT_EQ(latest[1].time, kT0 + absl::Minutes(2));
  EXPECT_THAT(store_->MetricNames(),
              ElementsAre("database_size_bytes", "table_rows"));
}

TEST_P(MetricStoreTest, DeltaSeriesKeepARunningTotalOnceAcrossRestarts) {
  auto delta = [](double value, absl::Time time) {
    v1::MetricSample sample =
        Sample("procedure_calls", value, time, {{"procedure", "SP_Login"}});
    sample.set_kind(v1::METRIC_KIND_DELTA);
    return sample;
  };
  Write({Batch("db-1", "i", 1,
               {delta(5, kT0), delta(7, kT0 + absl::Seconds(30)),
                Sample("table_rows", 9, kT0, {{"table", "AuditLog"}})})});
  // Sent again after a lost ack, then the next batch: counted once each.
  Write({Batch("db-1", "i", 1, {delta(5, kT0)}),
         Batch("db-1", "i", 2, {delta(3, kT0 + absl::Minutes(1))})});
  std::vector<LatestSample> latest = store_->Latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].metric, "procedure_calls");
  EXPECT_TRUE(latest[0].counter);
  EXPECT_EQ(latest[0].total, 15);
  EXPECT_EQ(latest[0].value, 3);
  // A gauge has no total.
  EXPECT_EQ(latest[1].metric, "table_rows");
  EXPECT_FALSE(latest[1].counter);

  // Saved with the latest values: the total goes on after a restart.
  ASSERT_TRUE(store_->SaveLatestValues().ok());
  Reopen(kT0 + absl::Minutes(10));
  latest = store_->Latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_TRUE(latest[0].counter);
  EXPECT_EQ(latest[0].total, 15);
  Write({Batch("db-1", "i", 3, {delta(4, kT0 + absl::Minutes(2))})},
        kT0 + absl::Minutes(10));
  EXPECT_EQ(store_->Latest()[0].total, 19);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetricStoreTest,
                         ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ecliptix::server
