#include "common/bundle/manifest_rules.h"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix::bundle {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ConfigKeySpec IntKey() {
  v1::ConfigKeySpec key;
  key.set_key("Authentication.MaxFailedAttempts");
  key.set_type("int");
  key.set_default_value("5");
  key.set_min_value("1");
  key.set_max_value("100");
  return key;
}

TEST(ManifestRulesTest, ReferenceBundleDeclaresConfigJobsAndQueries) {
  absl::StatusOr<Bundle> bundle = Bundle::LoadDirectory(
      testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix"));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  const v1::BundleManifest& manifest = bundle->manifest();
  EXPECT_THAT(DayTwoProblems(manifest), IsEmpty());
  // The runbook's seven keys, with its values as defaults.
  const std::vector<std::pair<std::string, std::string>> runbook = {
      {"Authentication.MaxFailedAttempts", "5"},
      {"Authentication.LockoutDurationMinutes", "15"},
      {"OTP.MaxAttempts", "3"},
      {"Database.CleanupBatchSize", "1000"},
      {"Monitoring.EnableMetrics", "1"},
      {"Audit.RetentionDays", "365"},
      {"Audit.LogValidations", "0"}};
  for (const auto& [key, value] : runbook) {
    const v1::ConfigKeySpec* spec = FindConfigKey(manifest, key);
    ASSERT_NE(spec, nullptr) << key;
    EXPECT_EQ(spec->default_value(), value) << key;
  }
  ASSERT_NE(bundle->FindOperation("CleanupAuditLogs"), nullptr);
  EXPECT_TRUE(bundle->FindOperation("CleanupAuditLogs")->has_batch());
  EXPECT_TRUE(bundle->FindOperation("FailedLogins24h")->read_only());
  EXPECT_FALSE(bundle->FindOperation("SetConfigValue")->read_only());
  EXPECT_EQ(manifest.jobs_size(), 3);
}

TEST(ManifestRulesTest, ConfigValueTypeAndRange) {
  const v1::ConfigKeySpec key = IntKey();
  EXPECT_TRUE(CheckConfigValue(key, "7").ok());
  absl::Status wrong_type = CheckConfigValue(key, "many");
  EXPECT_EQ(wrong_type.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong_type.message(),
            "Authentication.MaxFailedAttempts takes an int; \"many\" is not "
            "one");
  absl::Status out_of_range = CheckConfigValue(key, "500");
  EXPECT_EQ(out_of_range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_of_range.message(),
            "Authentication.MaxFailedAttempts must be between 1 and 100; 500 "
            "is out of range");
  EXPECT_FALSE(CheckConfigValue(key, "0").ok());

  v1::ConfigKeySpec flag;
  flag.set_key("Monitoring.EnableMetrics");
  flag.set_type("bool");
  EXPECT_TRUE(CheckConfigValue(flag, "0").ok());
  EXPECT_TRUE(CheckConfigValue(flag, "1").ok());
  EXPECT_THAT(std::string(CheckConfigValue(flag, "true").message()),
              HasSubstr("written 0 or 1"));
  EXPECT_FALSE(CheckConfigValue(flag, "yes please").ok());

  v1::ConfigKeySpec mode;
  mode.set_key("Mode");
  mode.set_type("text");
  mode.add_allowed_values("fast");
  mode.add_allowed_values("safe");
  EXPECT_TRUE(CheckConfigValue(mode, "safe").ok());
  EXPECT_THAT(std::string(CheckConfigValue(mode, "wild").message()),
              HasSubstr("must be one of fast, safe"));
}

TEST(ManifestRulesTest, Arguments) {
  v1::Operation operation;
  operation.set_name("CleanupAuditLogs");
  v1::OperationParameter* days = operation.add_parameters();
  days->set_name("RetentionDays");
  days->set_type("int");
  v1::OperationParameter* batch = operation.add_parameters();
  batch->set_name("BatchSize");
  batch->set_type("int");
  batch->set_default_value("1000");
  EXPECT_TRUE(CheckArguments(operation, {{"RetentionDays", "30"}}).ok());
  EXPECT_EQ(CheckArguments(operation, {}).message(),
            "operation CleanupAuditLogs needs parameter \"RetentionDays\" "
            "(int)");
  EXPECT_EQ(CheckArguments(operation, {{"RetentionDays", "30"}, {"Days", "1"}})
                .message(),
            "operation CleanupAuditLogs has no parameter \"Days\" (it takes "
            "RetentionDays, BatchSize)");
  const absl::Status typed =
      CheckArguments(operation, {{"RetentionDays", "secret-ish"}});
  EXPECT_EQ(typed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(typed.message()),
              ::testing::Not(HasSubstr("secret")));
}

TEST(ManifestRulesTest, DayTwoProblemsOfABadManifest) {
  v1::BundleManifest manifest;
  manifest.add_dialects(v1::DIALECT_SQLITE);
  v1::Operation* writer = manifest.add_operations();
  writer->set_name("Sneaky");
  writer->set_read_only(true);
  writer->mutable_sql()->set_sqlite("DELETE FROM AuditLog");
  v1::Operation* two = manifest.add_operations();
  two->set_name("Two");
  two->set_read_only(true);
  two->mutable_sql()->set_sqlite("SELECT 1; DELETE FROM AuditLog");
  v1::Operation* quoted = manifest.add_operations();
  quoted->set_name("Quoted");
  quoted->set_read_only(true);
  quoted->mutable_sql()->set_sqlite("SELECT ';' AS x;");
  v1::Operation* cleanup = manifest.add_operations();
  cleanup->set_name("Cleanup");
  cleanup->mutable_batch()->set_rows_done_column("RowsDeleted");
  *manifest.mutable_config()->add_keys() = IntKey();
  v1::ConfigKeySpec* bad_default = manifest.mutable_config()->add_keys();
  bad_default->set_key("Bad");
  bad_default->set_type("int");
  bad_default->set_default_value("0");
  bad_default->set_min_value("1");
  v1::JobTemplate* job = manifest.add_jobs();
  job->set_name("nightly");
  job->set_operation("Missing");

  const std::string problems = absl::StrJoin(DayTwoProblems(manifest), "\n");
  EXPECT_THAT(problems, HasSubstr("operation \"Sneaky\" is read_only but its "
                                  "DIALECT_SQLITE SQL is not one SELECT"));
  EXPECT_THAT(problems, HasSubstr("operation \"Two\" is read_only"));
  EXPECT_THAT(problems, ::testing::Not(HasSubstr("\"Quoted\"")));
  EXPECT_THAT(problems, HasSubstr("operation \"Cleanup\": batch needs"));
  EXPECT_THAT(problems, HasSubstr("config: get_operation \"\" is not an "
                                  "operation of the bundle"));
  EXPECT_THAT(problems, HasSubstr("config key \"Bad\": default_value: Bad "
                                  "must be at least 1"));
  EXPECT_THAT(problems, HasSubstr("job \"nightly\" needs a schedule"));
  EXPECT_THAT(problems, HasSubstr("job \"nightly\": operation \"Missing\""));
}

// A well-formed incremental collector on SQLite and PostgreSQL.
v1::MetricCollector Collector(const std::string& name) {
  v1::MetricCollector collector;
  collector.set_name(name);
  collector.mutable_interval()->set_seconds(60);
  collector.set_cursor_column("LastId");
  collector.mutable_query()->set_sqlite(
      "SELECT ProcedureName, COUNT(*) AS Calls, MAX(Id) AS LastId FROM "
      "PerformanceMetrics WHERE Id > :Cursor GROUP BY ProcedureName");
  collector.mutable_query()->set_postgresql(
      "SELECT ProcedureName, COUNT(*) AS Calls, MAX(Id) AS LastId FROM "
      "dbo.PerformanceMetrics WHERE Id > CAST(:Cursor AS bigint) GROUP BY "
      "ProcedureName");
  v1::MetricColumn* calls = collector.add_values();
  calls->set_column("Calls");
  calls->set_metric("procedure_calls");
  calls->set_kind(v1::METRIC_KIND_DELTA);
  v1::MetricLabel* procedure = collector.add_labels();
  procedure->set_column("ProcedureName");
  procedure->set_label("procedure");
  return collector;
}

v1::BundleManifest WithCollectors(std::vector<v1::MetricCollector> collectors) {
  v1::BundleManifest manifest;
  manifest.add_dialects(v1::DIALECT_SQLITE);
  manifest.add_dialects(v1::DIALECT_POSTGRESQL);
  for (v1::MetricCollector& collector : collectors)
    *manifest.add_collectors() = std::move(collector);
  return manifest;
}

TEST(ManifestRulesTest, ReferenceBundleCollectorsFeedTheServersMetrics) {
  absl::StatusOr<Bundle> bundle = Bundle::LoadDirectory(
      testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix-collectors"));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::map<std::string, v1::MetricKind> metrics;
  std::map<std::string, std::set<std::string>> labels;
  for (const v1::MetricCollector& collector : bundle->manifest().collectors()) {
    for (const v1::MetricColumn& value : collector.values()) {
      metrics[value.metric()] = value.kind();
      for (const v1::MetricLabel& label : collector.labels())
        labels[value.metric()].insert(label.label());
    }
  }
  // Exactly the names and kinds the server's queries use.
  const std::map<std::string, v1::MetricKind> expected = {
      {"procedure_calls", v1::METRIC_KIND_DELTA},
      {"procedure_execution_ms", v1::METRIC_KIND_DELTA},
      {"procedure_max_ms", v1::METRIC_KIND_GAUGE},
      {"procedure_errors", v1::METRIC_KIND_DELTA},
      {"auth_events", v1::METRIC_KIND_DELTA},
      {"table_rows", v1::METRIC_KIND_GAUGE},
      {"database_size_bytes", v1::METRIC_KIND_GAUGE},
      {"blocked_sessions", v1::METRIC_KIND_GAUGE}};
  EXPECT_EQ(metrics, expected);
  const std::set<std::string> procedure = {"procedure"};
  EXPECT_EQ(labels["procedure_calls"], procedure);
  EXPECT_EQ(labels["procedure_execution_ms"], procedure);
  EXPECT_EQ(labels["procedure_max_ms"], procedure);
  EXPECT_EQ(labels["procedure_errors"], procedure);
  EXPECT_EQ(labels["auth_events"], std::set<std::string>{"event"});
  EXPECT_EQ(labels["table_rows"], std::set<std::string>{"table"});
  EXPECT_THAT(labels["database_size_bytes"], IsEmpty());
}

TEST(ManifestRulesTest, GoodCollectorHasNoProblems) {
  EXPECT_THAT(DayTwoProblems(WithCollectors({Collector("performance")})),
              IsEmpty());
  // A gauge collector reads the current state: no cursor.
  v1::MetricCollector size;
  size.set_name("size");
  size.mutable_query()->set_sqlite("SELECT 1 AS SizeBytes");
  size.mutable_query()->set_postgresql(
      "SELECT pg_database_size(current_database())::bigint AS SizeBytes");
  v1::MetricColumn* bytes = size.add_values();
  bytes->set_column("SizeBytes");
  bytes->set_metric("database_size_bytes");
  EXPECT_THAT(DayTwoProblems(WithCollectors({size})), IsEmpty());
}

TEST(ManifestRulesTest, CollectorProblems) {
  v1::MetricCollector twice = Collector("performance");
  v1::MetricCollector bad_name = Collector("per-formance");

  v1::MetricCollector two_statements = Collector("two_statements");
  two_statements.mutable_query()->set_sqlite(
      "SELECT COUNT(*) AS Calls, MAX(Id) AS LastId FROM PerformanceMetrics "
      "WHERE Id > :Cursor; DELETE FROM PerformanceMetrics");
  v1::MetricCollector no_postgresql = Collector("no_postgresql");
  no_postgresql.mutable_query()->clear_postgresql();

  v1::MetricCollector no_cursor = Collector("no_cursor");
  // ::Cursor is a cast, :Cursors another parameter, ':Cursor' text.
  no_cursor.mutable_query()->set_postgresql(
      "SELECT ':Cursor' AS Calls, x::Cursor AS LastId, :Cursors AS y");
  v1::MetricCollector stray_cursor = Collector("stray_cursor");
  stray_cursor.clear_cursor_column();

  v1::MetricCollector no_values = Collector("no_values");
  no_values.clear_values();
  v1::MetricCollector bad_metric = Collector("bad_metric");
  bad_metric.mutable_values(0)->set_metric("procedure-calls");
  v1::MetricCollector other_kind = Collector("other_kind");
  other_kind.mutable_values(0)->set_kind(v1::METRIC_KIND_GAUGE);
  v1::MetricCollector unnamed_column = Collector("unnamed_column");
  unnamed_column.mutable_values(0)->clear_column();
  v1::MetricCollector column_twice = Collector("column_twice");
  column_twice.mutable_labels(0)->set_column("calls");
  v1::MetricCollector bad_label = Collector("bad_label");
  bad_label.mutable_labels(0)->set_label("the procedure");

  v1::MetricCollector fast = Collector("fast");
  fast.mutable_interval()->set_seconds(0);
  fast.mutable_interval()->set_nanos(500'000'000);
  v1::MetricCollector backwards = Collector("backwards");
  backwards.mutable_interval()->set_seconds(-5);

  const std::string problems =
      absl::StrJoin(DayTwoProblems(WithCollectors(
                        {Collector("performance"), twice, bad_name,
                         two_statements, no_postgresql, no_cursor, stray_cursor,
                         no_values, bad_metric, other_kind, unnamed_column,
                         column_twice, bad_label, fast, backwards})),
                    "\n");
  EXPECT_THAT(problems, HasSubstr("collector \"performance\" is declared "
                                  "twice"));
  EXPECT_THAT(problems, HasSubstr("collector \"per-formance\": a name is "
                                  "letters, digits and '_'"));
  EXPECT_THAT(problems,
              HasSubstr("collector \"two_statements\": its DIALECT_SQLITE "
                        "query is not one SELECT statement"));
  EXPECT_THAT(problems, HasSubstr("collector \"no_postgresql\": no "
                                  "DIALECT_POSTGRESQL query"));
  EXPECT_THAT(problems,
              HasSubstr("collector \"no_cursor\" is incremental (cursor_column "
                        "LastId) but its DIALECT_POSTGRESQL query does not "
                        "use :Cursor"));
  EXPECT_THAT(problems, HasSubstr("collector \"stray_cursor\": its "
                                  "DIALECT_SQLITE query uses :Cursor but the "
                                  "collector has no cursor_column"));
  EXPECT_THAT(problems, HasSubstr("collector \"no_values\" declares no value "
                                  "columns"));
  EXPECT_THAT(problems, HasSubstr("collector \"bad_metric\": metric "
                                  "\"procedure-calls\" is not a metric name"));
  EXPECT_THAT(problems,
              HasSubstr("collector \"other_kind\": metric procedure_calls is "
                        "declared gauge here and delta by collector "
                        "\"performance\""));
  EXPECT_THAT(problems, HasSubstr("collector \"unnamed_column\": a value "
                                  "needs its column"));
  EXPECT_THAT(problems, HasSubstr("collector \"column_twice\": column "
                                  "\"calls\" is used twice"));
  EXPECT_THAT(problems, HasSubstr("collector \"bad_label\": label \"the "
                                  "procedure\" is not a label name"));
  EXPECT_THAT(problems, HasSubstr("collector \"fast\": interval must be at "
                                  "least 1 s"));
  EXPECT_THAT(problems, HasSubstr("collector \"backwards\": interval must be "
                                  "at least 1 s"));
  // The well-formed collectors of the list bring no problem of their own.
  EXPECT_THAT(problems, ::testing::Not(HasSubstr("\"performance\":")));
}

}  // namespace
}  // namespace ecliptix::bundle
