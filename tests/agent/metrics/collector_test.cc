// MetricsCollector on databases where the executor deployed the reference
// bundle (SQLite; PostgreSQL through libpq and through ODBC when
// ECLIPTIX_TEST_POSTGRES_URL is set), with rows written by the workload
// driver: the samples match what the rows say, incremental collectors count
// each row once across cycles and across a restart (the cursor is stored in
// the database), a first collection starts after the existing rows,
// Monitoring.EnableMetrics = 0 stops collection, and the bundle collected is
// the one applied. Cycles are driven directly on a fake clock.
#include "agent/metrics/collector.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "agent/executor/executor.h"
#include "agent/executor/history.h"
#include "agent/metrics/operation_calls.h"
#include "agent/target/open_target.h"
#include "common/clock.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/reference_database.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tools/workload/workload_driver.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::Contains;
using ::testing::ElementsAre;
using testing::Engine;
using ::testing::IsEmpty;
using testing::QueryInt;
using testing::Table;
using ::testing::UnorderedElementsAre;

// Serves the bundles it was given, counting fetches.
class FakeBundles : public BundleSource {
 public:
  void Add(std::shared_ptr<const bundle::Bundle> bundle) {
    absl::MutexLock lock(&mutex_);
    bundles_[bundle->id()] = std::move(bundle);
  }
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) override {
    absl::MutexLock lock(&mutex_);
    ++fetches_;
    auto it = bundles_.find(bundle_id);
    if (it == bundles_.end()) {
      return absl::NotFoundError(absl::StrCat("no bundle ", bundle_id));
    }
    return it->second;
  }
  int fetches() {
    absl::MutexLock lock(&mutex_);
    return fetches_;
  }

 private:
  absl::Mutex mutex_;
  std::map<std::string, std::shared_ptr<const bundle::Bundle>> bundles_
      ABSL_GUARDED_BY(mutex_);
  int fetches_ ABSL_GUARDED_BY(mutex_) = 0;
};

class RecordingSink : public MetricSink {
 public:
  void Add(std::vector<v1::MetricSample> samples) override {
    absl::MutexLock lock(&mutex_);
    samples_.insert(samples_.end(), samples.begin(), samples.end());
  }
  std::vector<v1::MetricSample> samples() {
    absl::MutexLock lock(&mutex_);
    return samples_;
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::MetricSample> samples_ ABSL_GUARDED_BY(mutex_);
};

// The samples of `metric`, summed by the value of `label` ("" when none).
std::map<std::string, double> ByLabel(
    const std::vector<v1::MetricSample>& samples, const std::string& metric,
    const std::string& label) {
  std::map<std::string, double> result;
  for (const v1::MetricSample& sample : samples) {
    if (sample.metric() != metric) continue;
    auto it = sample.labels().find(label);
    result[it == sample.labels().end() ? "" : it->second] += sample.value();
  }
  return result;
}

double Total(const std::vector<v1::MetricSample>& samples,
             const std::string& metric) {
  double total = 0;
  for (const auto& [label, value] : ByLabel(samples, metric, "")) {
    (void)label;
    total += value;
  }
  return total;
}

std::set<std::string> Metrics(const std::vector<v1::MetricSample>& samples) {
  std::set<std::string> metrics;
  for (const v1::MetricSample& sample : samples)
    metrics.insert(sample.metric());
  return metrics;
}

// A directory of the current test's own (its SQLite file, backups).
std::string TestDir() {
  const ::testing::TestInfo* test =
      ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/",
                   absl::StrReplaceAll(
                       absl::StrCat(test->test_suite_name(), "-", test->name()),
                       {{"/", "-"}}));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

constexpr char kAuthTypes[] =
    "('LOGIN_SUCCESS', 'LOGIN_FAILED', 'LOGIN_BLOCKED', 'SUSPICIOUS_ACTIVITY')";

class CollectorTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() != Engine::kSqlite &&
        !::ecliptix::testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
    }
    dir_ = TestDir();
    absl::StatusOr<std::string> url =
        testing::DeployedDatabase(GetParam(), dir_);
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    bundle_ = testing::TestBundle();
    ASSERT_NE(bundle_, nullptr);
    bundles_.Add(bundle_);
    absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
  }

  std::unique_ptr<MetricsCollector> NewCollector(
      bool count_existing_rows = false) {
    MetricsCollectorOptions options;
    options.database_url = url_;
    options.bundles = &bundles_;
    options.sink = &sink_;
    options.clock = &clock_;
    options.count_existing_rows = count_existing_rows;
    absl::StatusOr<std::unique_ptr<MetricsCollector>> collector =
        MetricsCollector::Create(std::move(options));
    EXPECT_TRUE(collector.ok()) << collector.status();
    return collector.ok() ? *std::move(collector) : nullptr;
  }

  // `calls` calls of the workload driver, as fast as they go, some failing
  // on purpose (ErrorLog rows) and some logins failing (lockouts).
  workload::WorkloadReport Workload(int calls) {
    workload::WorkloadOptions options;
    options.database_urls = {url_};
    options.bundle_dir = ::ecliptix::testing::PlainRunfilesCopy(
        "bundles/ecliptix", "bundle-ecliptix-metrics");
    options.rate = 0;
    options.max_calls = calls;
    options.seed = ++seed_;
    options.pool_size = 5;
    options.error_percent = 10;
    options.failed_login_percent = 40;
    auto driver = workload::WorkloadDriver::Create(std::move(options));
    EXPECT_TRUE(driver.ok()) << driver.status();
    if (!driver.ok()) return {};
    workload::WorkloadReport report = (*driver)->Run(nullptr);
    EXPECT_THAT(report.unexpected_errors, IsEmpty());
    return report;
  }

  int64_t MaxId(const std::string& table) {
    return QueryInt(*database_,
                    absl::StrCat("SELECT COALESCE(MAX(Id), 0) FROM ",
                                 Table(GetParam(), table)));
  }

  // name -> the first columns' values as numbers, for rows of `sql` keyed by
  // their first column.
  std::map<std::string, std::vector<double>> Grouped(const std::string& sql,
                                                     int64_t after) {
    std::map<std::string, std::vector<double>> result;
    absl::StatusOr<QueryResult> rows =
        database_->Query(sql, {SqlParam::Int("after", after)});
    EXPECT_TRUE(rows.ok()) << sql << ": " << rows.status();
    if (!rows.ok()) return result;
    for (const SqlRow& row : rows->rows) {
      std::vector<double>& values = result[row.values[0]];
      for (size_t i = 1; i < row.values.size(); ++i)
        values.push_back(std::stod(row.values[i]));
    }
    return result;
  }

  // PerformanceMetrics past `after` per procedure: calls, total ms, max ms.
  std::map<std::string, std::vector<double>> Performance(int64_t after) {
    return Grouped(
        absl::StrCat(
            "SELECT ProcedureName, COUNT(*), SUM(ExecutionTimeMs), "
            "MAX(ExecutionTimeMs) FROM ",
            Table(GetParam(), "PerformanceMetrics"),
            " WHERE Id > CAST(:after AS bigint) GROUP BY ProcedureName"),
        after);
  }
  std::map<std::string, std::vector<double>> Errors(int64_t after) {
    return Grouped(absl::StrCat("SELECT ProcedureName, COUNT(*) FROM ",
                                Table(GetParam(), "ErrorLog"),
                                " WHERE Id > CAST(:after AS bigint) GROUP BY "
                                "ProcedureName"),
                   after);
  }
  std::map<std::string, std::vector<double>> AuthEvents(int64_t after) {
    return Grouped(absl::StrCat("SELECT OperationType, COUNT(*) FROM ",
                                Table(GetParam(), "AuditLog"),
                                " WHERE Id > CAST(:after AS bigint) AND "
                                "OperationType IN ",
                                kAuthTypes, " GROUP BY OperationType"),
                   after);
  }

  void SetEnableMetrics(const std::string& value) {
    ExecutorOptions options;
    options.backup_dir = absl::StrCat(dir_, "/backups");
    Executor executor(database_.get(), options);
    absl::StatusOr<OperationResult> result = executor.CallOperation(
        *bundle_, "SetConfigValue",
        {{"ConfigKey", kEnableMetricsKey}, {"ConfigValue", value}});
    ASSERT_TRUE(result.ok()) << result.status();
  }

  std::string dir_;
  std::string url_;
  std::shared_ptr<const bundle::Bundle> bundle_;
  std::unique_ptr<Target> database_;
  FakeBundles bundles_;
  RecordingSink sink_;
  FakeClock clock_;
  uint64_t seed_ = 0;
};

// Every value of `expected` (name -> its values) is the sample of the metric
// with that label, and no other label has one.
void ExpectSamples(const std::vector<v1::MetricSample>& samples,
                   const std::string& metric, const std::string& label,
                   const std::map<std::string, std::vector<double>>& expected,
                   size_t column) {
  std::map<std::string, double> want;
  for (const auto& [name, values] : expected) want[name] = values.at(column);
  EXPECT_EQ(ByLabel(samples, metric, label), want) << metric;
}

TEST_P(CollectorTest, SamplesAreWhatTheRowsSay) {
  // Activity before the agent's first collection is history: not counted.
  Workload(40);
  std::unique_ptr<MetricsCollector> collector = NewCollector();
  const CycleReport first = collector->CollectAll();
  EXPECT_THAT(first.errors, IsEmpty());
  EXPECT_EQ(first.bundle_id, bundle_->id());
  EXPECT_TRUE(first.enabled);
  EXPECT_THAT(
      first.collectors_run,
      UnorderedElementsAre("procedure_performance", "procedure_errors",
                           "auth_events", "table_rows", "database_size",
                           "blocked_sessions", kOperationCallsCollector));
  // The calls the agent counted itself were never reported: they are.
  EXPECT_THAT(Metrics(first.samples),
              UnorderedElementsAre("table_rows", "database_size_bytes",
                                   "blocked_sessions", "operation_calls",
                                   "operation_failures"));

  const int64_t performance = MaxId("PerformanceMetrics");
  const int64_t errors = MaxId("ErrorLog");
  const int64_t audit = MaxId("AuditLog");
  clock_.Advance(absl::Minutes(1));
  Workload(80);
  const CycleReport second = collector->CollectAll();
  EXPECT_THAT(second.errors, IsEmpty());
  const std::vector<v1::MetricSample>& samples = second.samples;

  const auto calls = Performance(performance);
  ASSERT_EQ(calls.count("LoginMembership"), 1u);
  EXPECT_GT(calls.at("LoginMembership")[0], 0);
  EXPECT_EQ(ByLabel(samples, "procedure_calls", "procedure")["LoginMembership"],
            calls.at("LoginMembership")[0]);
  ExpectSamples(samples, "procedure_calls", "procedure", calls, 0);
  ExpectSamples(samples, "procedure_execution_ms", "procedure", calls, 1);
  ExpectSamples(samples, "procedure_max_ms", "procedure", calls, 2);
  const auto failed = Errors(errors);
  EXPECT_FALSE(failed.empty());
  ExpectSamples(samples, "procedure_errors", "procedure", failed, 0);
  const auto auth = AuthEvents(audit);
  EXPECT_GT(auth.count("LOGIN_FAILED"), 0u);
  ExpectSamples(samples, "auth_events", "event", auth, 0);

  // Gauges: the tables as they are now, and the database's size.
  const std::map<std::string, double> tables =
      ByLabel(samples, "table_rows", "table");
  EXPECT_EQ(tables.size(), 8u);
  for (const char* table : {"AuditLog", "PerformanceMetrics", "Memberships",
                            "LoginAttempts", "SystemConfiguration"}) {
    EXPECT_EQ(tables.at(table),
              QueryInt(*database_, absl::StrCat("SELECT COUNT(*) FROM ",
                                                Table(GetParam(), table))))
        << table;
  }
  EXPECT_GT(Total(samples, "database_size_bytes"), 0);
  for (const v1::MetricSample& sample : samples)
    EXPECT_EQ(FromProtoTimestamp(sample.time()), clock_.Now());
  // What the report lists is what the sink got.
  EXPECT_EQ(sink_.samples().size(), first.samples.size() + samples.size());
}

TEST_P(CollectorTest, EachRowCountsOnceAcrossCyclesAndARestart) {
  std::unique_ptr<MetricsCollector> collector = NewCollector();
  ASSERT_THAT(collector->CollectAll().errors, IsEmpty());
  const int64_t start = MaxId("PerformanceMetrics");
  const int64_t audit_start = MaxId("AuditLog");

  Workload(30);
  const CycleReport one = collector->CollectAll();
  EXPECT_THAT(one.errors, IsEmpty());
  const int64_t after_one = MaxId("PerformanceMetrics");
  EXPECT_EQ(Total(one.samples, "procedure_calls"), after_one - start);
  // Nothing new: no delta at all.
  const CycleReport again = collector->CollectAll();
  EXPECT_THAT(again.collectors_run, Contains("procedure_performance"));
  EXPECT_EQ(ByLabel(again.samples, "procedure_calls", "procedure").size(), 0u);
  EXPECT_EQ(ByLabel(again.samples, "auth_events", "event").size(), 0u);

  // The agent restarts: the new collector reads the stored cursors.
  collector.reset();
  Workload(30);
  collector = NewCollector();
  const CycleReport restarted = collector->CollectAll();
  EXPECT_THAT(restarted.errors, IsEmpty());
  const int64_t after_restart = MaxId("PerformanceMetrics");
  EXPECT_GT(after_restart, after_one);
  EXPECT_EQ(Total(restarted.samples, "procedure_calls"),
            after_restart - after_one);

  // Over the three cycles, each row once.
  std::vector<v1::MetricSample> all = one.samples;
  all.insert(all.end(), again.samples.begin(), again.samples.end());
  all.insert(all.end(), restarted.samples.begin(), restarted.samples.end());
  ExpectSamples(all, "procedure_calls", "procedure", Performance(start), 0);
  ExpectSamples(all, "auth_events", "event", AuthEvents(audit_start), 0);
  EXPECT_EQ(
      QueryInt(*database_,
               absl::StrCat("SELECT cursor_value FROM ", kMetricCursorTable,
                            " WHERE collector = 'procedure_performance'")),
      after_restart);
}

TEST_P(CollectorTest, CountingExistingRowsOnRequest) {
  Workload(20);
  std::unique_ptr<MetricsCollector> collector =
      NewCollector(/*count_existing_rows=*/true);
  const CycleReport first = collector->CollectAll();
  EXPECT_THAT(first.errors, IsEmpty());
  ExpectSamples(first.samples, "procedure_calls", "procedure", Performance(0),
                0);
  ExpectSamples(first.samples, "procedure_errors", "procedure", Errors(0), 0);
}

// Operation calls come from the agent's own table (ecliptix_operation_calls,
// written by the executor): each call once, its failure too, across cycles,
// collectors and restarts.
TEST_P(CollectorTest, OperationCallsAreCountedOnceEach) {
  std::unique_ptr<MetricsCollector> collector = NewCollector();
  const CycleReport first = collector->CollectAll();
  ASSERT_THAT(first.errors, IsEmpty());
  const workload::WorkloadReport report = Workload(60);
  ASSERT_FALSE(report.operations.empty());
  clock_.Advance(absl::Minutes(1));
  const CycleReport second = collector->CollectAll();
  ASSERT_THAT(second.errors, IsEmpty());
  EXPECT_THAT(second.collectors_run, Contains(kOperationCallsCollector));
  std::map<std::string, double> calls =
      ByLabel(second.samples, "operation_calls", "operation");
  std::map<std::string, double> failures =
      ByLabel(second.samples, "operation_failures", "operation");
  // The driver's own reads of its settings are calls too.
  EXPECT_GT(calls["GetConfigValue"], 0);
  calls.erase("GetConfigValue");
  failures.erase("GetConfigValue");
  std::map<std::string, double> want_calls, want_failures;
  int64_t failed = 0;
  for (const auto& [operation, stats] : report.operations) {
    want_calls[operation] = stats.calls;
    want_failures[operation] =
        stats.failed_on_purpose + stats.failed_unexpectedly;
    failed += stats.failed_on_purpose;
  }
  EXPECT_GT(failed, 0);
  EXPECT_EQ(calls, want_calls);
  EXPECT_EQ(failures, want_failures);

  // Nothing new: nothing counted.
  const CycleReport third = collector->CollectAll();
  EXPECT_THAT(third.errors, IsEmpty());
  EXPECT_EQ(Total(third.samples, "operation_calls"), 0);
  EXPECT_EQ(Total(third.samples, "operation_failures"), 0);

  // One refused call, then a second collector (a restarted agent) and the
  // first: it is counted once, by whichever comes first.
  {
    Executor executor(database_.get(), ExecutorOptions{});
    EXPECT_FALSE(executor
                     .CallOperation(*bundle_, "LoginMembership",
                                    {{"PhoneNumber", "not-a-number"},
                                     {"SecureKey", "0123456789abcdef"}})
                     .ok());
  }
  std::unique_ptr<MetricsCollector> restarted = NewCollector();
  const CycleReport after = restarted->CollectAll();
  EXPECT_THAT(after.errors, IsEmpty());
  EXPECT_EQ(ByLabel(after.samples, "operation_calls", "operation"),
            (std::map<std::string, double>{{"LoginMembership", 1}}));
  EXPECT_EQ(ByLabel(after.samples, "operation_failures", "operation"),
            (std::map<std::string, double>{{"LoginMembership", 1}}));
  EXPECT_EQ(Total(collector->CollectAll().samples, "operation_calls"), 0);

  // Everything the table counted was reported exactly once.
  double reported = 0;
  for (const v1::MetricSample& sample : sink_.samples()) {
    if (sample.metric() == "operation_calls") reported += sample.value();
  }
  EXPECT_EQ(
      reported,
      QueryInt(*database_, "SELECT SUM(calls) FROM ecliptix_operation_calls"));
  EXPECT_EQ(
      QueryInt(*database_,
               "SELECT COUNT(*) FROM ecliptix_operation_calls WHERE "
               "calls <> reported_calls OR failures <> reported_failures"),
      0);
}

TEST_P(CollectorTest, EnableMetricsZeroStopsCollection) {
  std::unique_ptr<MetricsCollector> collector = NewCollector();
  ASSERT_THAT(collector->CollectAll().errors, IsEmpty());
  const int64_t audit = MaxId("AuditLog");

  SetEnableMetrics("0");
  Workload(20);
  const CycleReport off = collector->CollectAll();
  EXPECT_THAT(off.errors, IsEmpty());
  EXPECT_EQ(off.bundle_id, bundle_->id());
  EXPECT_FALSE(off.enabled);
  EXPECT_THAT(off.collectors_run, IsEmpty());
  EXPECT_THAT(off.samples, IsEmpty());
  const size_t sent = sink_.samples().size();

  // Collection resumes where it stopped: the logins made meanwhile are
  // counted once.
  SetEnableMetrics("1");
  const CycleReport on = collector->CollectAll();
  EXPECT_TRUE(on.enabled);
  EXPECT_THAT(on.errors, IsEmpty());
  ExpectSamples(on.samples, "auth_events", "event", AuthEvents(audit), 0);
  EXPECT_GT(Total(on.samples, "auth_events"), 0);
  EXPECT_EQ(sink_.samples().size(), sent + on.samples.size());
}

TEST_P(CollectorTest, CollectorsRunOnTheirIntervals) {
  std::unique_ptr<MetricsCollector> collector = NewCollector();
  const CycleReport first = collector->CollectDue();
  EXPECT_EQ(first.collectors_run.size(), 7u);
  // The 60 s collectors are due a minute later, the 300 s ones later still.
  EXPECT_EQ(first.next_due, clock_.Now() + absl::Seconds(60));
  const CycleReport early = collector->CollectDue();
  EXPECT_THAT(early.collectors_run, IsEmpty());
  clock_.Advance(absl::Seconds(60));
  const CycleReport minute = collector->CollectDue();
  EXPECT_THAT(minute.collectors_run,
              UnorderedElementsAre("procedure_performance", "procedure_errors",
                                   "auth_events", "blocked_sessions",
                                   kOperationCallsCollector));
  clock_.Advance(absl::Seconds(240));
  EXPECT_EQ(collector->CollectDue().collectors_run.size(), 7u);
}

INSTANTIATE_TEST_SUITE_P(Engines, CollectorTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kPostgresqlOdbc),
                         testing::EngineParamName);

// The bundle collected is the one the history says is applied.
TEST(CollectorBundleTest, NothingWithoutABundleThenTheAppliedOne) {
  const std::string dir = TestDir();
  const std::string url = absl::StrCat("sqlite://", dir, "/empty.db");
  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url);
  ASSERT_TRUE(database.ok()) << database.status();
  FakeBundles bundles;
  RecordingSink sink;
  FakeClock clock;
  MetricsCollectorOptions options;
  options.database_url = url;
  options.bundles = &bundles;
  options.sink = &sink;
  options.clock = &clock;
  options.interval_scale = 0.05;
  absl::StatusOr<std::unique_ptr<MetricsCollector>> collector =
      MetricsCollector::Create(options);
  ASSERT_TRUE(collector.ok()) << collector.status();

  const CycleReport none = (*collector)->CollectAll();
  EXPECT_THAT(none.errors, IsEmpty());
  EXPECT_EQ(none.bundle_id, "");
  EXPECT_THAT(none.collectors_run, IsEmpty());
  EXPECT_EQ(bundles.fetches(), 0);
  // Looked for again a scaled poll interval later (60 s x 0.05).
  EXPECT_EQ(none.next_due, clock.Now() + absl::Seconds(3));

  // The same bundle with one more collector: another id.
  std::shared_ptr<const bundle::Bundle> reference = testing::TestBundle();
  std::vector<v1::BundleFile> files = reference->files();
  for (v1::BundleFile& file : files) {
    if (file.path() != bundle::kManifestFile) continue;
    file.set_content(absl::StrCat(file.content(), R"pb(
      collectors {
        name: "config_keys"
        query {
          sqlite: "SELECT COUNT(*) AS ConfigKeys FROM SystemConfiguration"
          postgresql: "SELECT COUNT(*) AS ConfigKeys FROM dbo.SystemConfiguration"
          mssql: "SELECT COUNT(*) AS ConfigKeys FROM dbo.SystemConfiguration"
        }
        values { column: "ConfigKeys" metric: "config_keys" }
      }
    )pb"));
  }
  absl::StatusOr<bundle::Bundle> loaded = bundle::Bundle::FromFiles(files);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto newer = std::make_shared<const bundle::Bundle>(*std::move(loaded));
  ASSERT_NE(newer->id(), reference->id());
  bundles.Add(reference);
  bundles.Add(newer);

  // Deployed: its collectors run (every one at once), at 0.05 x their
  // intervals.
  ExecutorOptions executor_options;
  executor_options.backup_dir = absl::StrCat(dir, "/backups");
  Executor executor(database->get(), executor_options);
  for (const v1::Phase& phase : reference->manifest().phases()) {
    ASSERT_TRUE(executor
                    .RunPhase(*reference, phase.name(), false,
                              [](const v1::DeploymentEvent&) {})
                    .ok());
  }
  const CycleReport applied = (*collector)->CollectDue();
  EXPECT_THAT(applied.errors, IsEmpty());
  EXPECT_EQ(applied.bundle_id, reference->id());
  // The bundle's six and the agent's operation_calls.
  EXPECT_EQ(applied.collectors_run.size(), 7u);
  EXPECT_EQ(applied.next_due, clock.Now() + absl::Seconds(3));

  // A step of the newer bundle is recorded: from the next cycle on, its
  // collectors run.
  HistoryRow row;
  row.bundle_name = newer->manifest().name();
  row.bundle_version = newer->manifest().version();
  row.bundle_id = newer->id();
  row.phase = "metrics-test";
  row.step = "marker";
  row.kind = StepKindText(v1::STEP_KIND_VERSIONED);
  row.checksum = "sha256:00";
  row.outcome = kOutcomeApplied;
  row.started_at = row.finished_at = clock.Now();
  row.agent_version = "test";
  ASSERT_TRUE(History(database->get()).InsertCurrent(row).ok());
  clock.Advance(absl::Seconds(3));
  const CycleReport changed = (*collector)->CollectDue();
  EXPECT_THAT(changed.errors, IsEmpty());
  EXPECT_EQ(changed.bundle_id, newer->id());
  EXPECT_THAT(changed.collectors_run, Contains("config_keys"));
  EXPECT_EQ(changed.collectors_run.size(), 8u);
  EXPECT_EQ(Total(changed.samples, "config_keys"),
            QueryInt(**database, "SELECT COUNT(*) FROM SystemConfiguration"));

  // The bundle's cursors are kept across its versions: no collector of the
  // newer one started over.
  EXPECT_EQ(QueryInt(**database,
                     absl::StrCat("SELECT COUNT(*) FROM ", kMetricCursorTable)),
            3);
}

}  // namespace
}  // namespace ecliptix::agent
