// The executor against real databases: a fresh SQLite file per test, and a
// scratch PostgreSQL database per test when ECLIPTIX_TEST_POSTGRES_URL is set
// (skipped otherwise). Bundles are written into TEST_TMPDIR by each test and
// loaded with bundle::Bundle::LoadDirectory, as the agent loads them.
#include "agent/executor/executor.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/executor/history.h"
#include "agent/target/open_target.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// kOdbc: PostgreSQL through its ODBC driver, the code path SQL Server takes.
enum class Engine { kSqlite, kPostgresql, kOdbc };

std::string EngineParamName(const ::testing::TestParamInfo<Engine>& info) {
  switch (info.param) {
    case Engine::kSqlite:
      return "Sqlite";
    case Engine::kPostgresql:
      return "Postgresql";
    default:
      return "PostgresqlOdbc";
  }
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// One step of a test bundle. `sql` and `revert` are the files' contents;
// `extra` is more manifest text inside the step's braces.
struct StepSpec {
  std::string name;
  std::string sql;
  std::string kind = "STEP_KIND_VERSIONED";
  std::string revert;
  std::string extra;
};

struct PhaseSpec {
  std::string name;
  std::vector<StepSpec> steps;
};

class ExecutorTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    test_name_ = absl::StrReplaceAll(
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        {{"/", "_"}});
    dir_ = absl::StrCat(TempDir(), "/", test_name_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (GetParam() == Engine::kSqlite) {
      url_ = absl::StrCat("sqlite://", dir_, "/target.db");
    } else {
      if (!testing::PostgresAdminUrl().has_value()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set; pass it with "
                        "--test_env to run the PostgreSQL cases";
      }
      absl::StatusOr<testing::ScratchDatabase> scratch =
          testing::CreateScratchDatabase("executor");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url_ = GetParam() == Engine::kOdbc ? scratch->odbc_url : scratch->url;
    }
    absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
    ExecutorOptions options;
    options.backup_dir = absl::StrCat(dir_, "/backups");
    executor_ = std::make_unique<Executor>(database_.get(), options);
  }

  bool sqlite() const { return GetParam() == Engine::kSqlite; }
  bool odbc() const { return GetParam() == Engine::kOdbc; }
  const char* dialect_field() const {
    return sqlite() ? "sqlite" : "postgresql";
  }

  // Writes a bundle (version `version`) and loads it.
  bundle::Bundle MakeBundle(const std::string& version,
                            const std::vector<PhaseSpec>& phases,
                            const std::string& operations = "") {
    const std::string root = absl::StrCat(dir_, "/bundle-", version);
    fs::remove_all(root);
    fs::create_directories(absl::StrCat(root, "/", dialect_field()));
    std::string manifest = absl::StrCat(
        "name: \"testbundle\"\nversion: \"", version,
        "\"\ndialects: ", sqlite() ? "DIALECT_SQLITE" : "DIALECT_POSTGRESQL",
        "\n");
    for (const PhaseSpec& phase : phases) {
      absl::StrAppend(&manifest, "phases {\n  name: \"", phase.name, "\"\n");
      for (const StepSpec& step : phase.steps) {
        const std::string file = absl::StrCat(dialect_field(), "/", phase.name,
                                              "_", step.name, ".sql");
        Write(root, file, step.sql);
        absl::StrAppend(&manifest, "  steps {\n    name: \"", step.name,
                        "\"\n    kind: ", step.kind, "\n    sql { ",
                        dialect_field(), ": \"", file, "\" }\n");
        if (!step.revert.empty()) {
          const std::string revert = absl::StrCat(
              dialect_field(), "/", phase.name, "_", step.name, "_revert.sql");
          Write(root, revert, step.revert);
          absl::StrAppend(&manifest, "    revert { ", dialect_field(), ": \"",
                          revert, "\" }\n");
        }
        absl::StrAppend(&manifest, "    ", step.extra, "\n  }\n");
      }
      absl::StrAppend(&manifest, "}\n");
    }
    absl::StrAppend(&manifest, operations);
    Write(root, bundle::kManifestFile, manifest);
    absl::StatusOr<bundle::Bundle> bundle = bundle::Bundle::LoadDirectory(root);
    EXPECT_TRUE(bundle.ok()) << bundle.status() << "\n" << manifest;
    bundle_dir_ = root;
    return *std::move(bundle);
  }

  static void Write(const std::string& root, const std::string& path,
                    const std::string& content) {
    std::ofstream(absl::StrCat(root, "/", path)) << content;
  }

  absl::Status Run(const bundle::Bundle& bundle, const std::string& phase,
                   bool backup_first = false) {
    events_.clear();
    return executor_->RunPhase(bundle, phase, backup_first, Sink());
  }

  DeploymentEventSink Sink() {
    return
        [this](const v1::DeploymentEvent& event) { events_.push_back(event); };
  }

  // (step, outcome) of the StepFinished events, in order.
  std::vector<std::pair<std::string, v1::StepOutcome>> Finished() const {
    std::vector<std::pair<std::string, v1::StepOutcome>> finished;
    for (const v1::DeploymentEvent& event : events_) {
      if (event.has_step_finished()) {
        finished.emplace_back(event.step(), event.step_finished().outcome());
      }
    }
    return finished;
  }

  int CountEvents(v1::DeploymentEvent::KindCase kind) const {
    int count = 0;
    for (const v1::DeploymentEvent& event : events_) {
      count += event.kind_case() == kind;
    }
    return count;
  }

  std::optional<v1::StepFailed> Failed() const {
    for (const v1::DeploymentEvent& event : events_) {
      if (event.has_step_failed()) return event.step_failed();
    }
    return std::nullopt;
  }

  bool TableExists(const std::string& table) {
    const std::string query =
        sqlite() ? "SELECT COUNT(*) FROM sqlite_master WHERE type IN "
                   "('table', 'view') AND name = :name"
                 : "SELECT CASE WHEN to_regclass(:name) IS NULL THEN 0 ELSE 1 "
                   "END";
    absl::StatusOr<QueryResult> result =
        database_->Query(query, {SqlParam::Text("name", table)});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() && !result->rows.empty() &&
           result->rows[0].values[0] != "0";
  }

  std::string QueryText(const std::string& query) {
    absl::StatusOr<QueryResult> result = database_->Query(query);
    EXPECT_TRUE(result.ok()) << result.status() << ": " << query;
    if (!result.ok() || result->rows.empty()) return "";
    return result->rows[0].values[0];
  }

  int QueryInt(const std::string& query) {
    long long value = -1;
    absl::StatusOr<QueryResult> result = database_->Query(query);
    EXPECT_TRUE(result.ok()) << result.status() << ": " << query;
    if (result.ok() && !result->rows.empty()) {
      EXPECT_TRUE(absl::SimpleAtoi(result->rows[0].values[0], &value));
    }
    return static_cast<int>(value);
  }

  void Exec(const std::string& statement) {
    const absl::Status status = database_->Execute(statement);
    ASSERT_TRUE(status.ok()) << status << ": " << statement;
  }

  // Every history row of a step, oldest first.
  std::vector<HistoryRow> HistoryOf(const std::string& step) {
    std::vector<HistoryRow> rows;
    absl::StatusOr<std::vector<HistoryRow>> all =
        executor_->history().LoadAll();
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return rows;
    for (const HistoryRow& row : *all) {
      if (row.step == step) rows.push_back(row);
    }
    return rows;
  }

  std::optional<HistoryRow> CurrentOf(const std::string& step) {
    for (const HistoryRow& row : HistoryOf(step)) {
      if (row.is_current) return row;
    }
    return std::nullopt;
  }

  // A statement that keeps the engine busy for a long time (`seconds` on
  // PostgreSQL; far longer than any test on SQLite).
  std::string SlowStatement(int seconds = 60) const {
    if (sqlite()) {
      return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < 1000000000) SELECT count(*) FROM c;\n";
    }
    return absl::StrCat("SELECT pg_sleep(", seconds, ");\n");
  }

  std::string test_name_;
  std::string dir_;
  std::string url_;
  std::string bundle_dir_;
  std::unique_ptr<Target> database_;
  std::unique_ptr<Executor> executor_;
  std::vector<v1::DeploymentEvent> events_;
};

TEST_P(ExecutorTest, ApplyThenReapplyIsANoOp) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"create",
          "CREATE TABLE items (id INTEGER, name TEXT);\n"
          "INSERT INTO items VALUES (1, 'a');\n"
          "INSERT INTO items VALUES (2, 'b');\n"},
         {"view", "CREATE VIEW item_names AS SELECT name FROM items;\n",
          "STEP_KIND_REPEATABLE", "",
          "success_message: \"view created successfully\""}}}});
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_THAT(
      Finished(),
      ::testing::ElementsAre(std::make_pair("create", v1::STEP_OUTCOME_APPLIED),
                             std::make_pair("view", v1::STEP_OUTCOME_APPLIED)));
  EXPECT_EQ(CountEvents(v1::DeploymentEvent::kStatementProgress), 4);
  bool success_notice = false;
  for (const v1::DeploymentEvent& event : events_) {
    if (event.has_step_started() && event.step() == "create") {
      EXPECT_EQ(event.step_started().statement_count(), 3);
      EXPECT_EQ(event.step_started().kind(), v1::STEP_KIND_VERSIONED);
      EXPECT_EQ(event.step_started().checksum(),
                *bundle.StepChecksum(
                    bundle.FindPhase("one")->steps(0),
                    sqlite() ? v1::DIALECT_SQLITE : v1::DIALECT_POSTGRESQL));
    }
    if (event.has_statement_progress() && event.step() == "create" &&
        event.statement_progress().statement_index() == 2) {
      EXPECT_EQ(event.statement_progress().rows_affected(), 1);
      EXPECT_EQ(event.statement_progress().statement_count(), 3);
    }
    if (event.has_step_finished() && event.step() == "create") {
      EXPECT_EQ(event.step_finished().rows_affected(), 2);
    }
    success_notice |= event.notice() == "view created successfully";
    EXPECT_EQ(event.bundle_id(), bundle.id());
    EXPECT_EQ(event.phase(), "one");
  }
  EXPECT_TRUE(success_notice);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM items"), 2);

  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_THAT(
      Finished(),
      ::testing::ElementsAre(std::make_pair("create", v1::STEP_OUTCOME_SKIPPED),
                             std::make_pair("view", v1::STEP_OUTCOME_SKIPPED)));
  EXPECT_EQ(CountEvents(v1::DeploymentEvent::kStepStarted), 0);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM items"), 2);

  // "What is applied now" is one query.
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM ecliptix_schema_history WHERE "
                     "is_current = 1 AND outcome = 'APPLIED'"),
            2);
  std::optional<HistoryRow> row = CurrentOf("create");
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->bundle_name, "testbundle");
  EXPECT_EQ(row->bundle_version, "1.0.0");
  EXPECT_EQ(row->bundle_id, bundle.id());
  EXPECT_EQ(row->phase, "one");
  EXPECT_EQ(row->kind, "VERSIONED");
  EXPECT_EQ(row->outcome, "APPLIED");
  EXPECT_EQ(row->rows_affected, 2);
  EXPECT_NE(row->finished_at, absl::InfinitePast());
  EXPECT_FALSE(row->agent_version.empty());
}

TEST_P(ExecutorTest, PlanReportsPendingStepsAndChangesNothing) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one", {{"create", "CREATE TABLE items (id INTEGER);\n"}}}});
  events_.clear();
  ASSERT_TRUE(executor_->Plan(bundle, "one", Sink()).ok());
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].step_planned().reason(), "new");
  EXPECT_THAT(events_[0].step_planned().sql(), HasSubstr("CREATE TABLE items"));
  EXPECT_FALSE(TableExists("ecliptix_schema_history"));
  EXPECT_FALSE(TableExists("items"));
  ASSERT_TRUE(Run(bundle, "one").ok());
  events_.clear();
  ASSERT_TRUE(executor_->Plan(bundle, "one", Sink()).ok());
  EXPECT_TRUE(events_.empty());
  EXPECT_EQ(executor_->Plan(bundle, "nope", Sink()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(bundle, "nope").code(), absl::StatusCode::kNotFound);
}

TEST_P(ExecutorTest, ChangedVersionedStepIsRefusedAndNothingRuns) {
  bundle::Bundle v1_bundle = MakeBundle(
      "1.0.0", {{"one", {{"create", "CREATE TABLE items (id INTEGER);\n"}}}});
  ASSERT_TRUE(Run(v1_bundle, "one").ok());
  const std::string old_checksum = CurrentOf("create")->checksum;

  // A new step before the changed one and one after it: neither may run.
  bundle::Bundle v2_bundle = MakeBundle(
      "2.0.0", {{"one",
                 {{"before", "CREATE TABLE before_table (id INTEGER);\n"},
                  {"create", "CREATE TABLE items (id INTEGER, name TEXT);\n"},
                  {"after", "CREATE TABLE after_table (id INTEGER);\n"}}}});
  const std::string new_checksum = *v2_bundle.StepChecksum(
      v2_bundle.FindPhase("one")->steps(1),
      sqlite() ? v1::DIALECT_SQLITE : v1::DIALECT_POSTGRESQL);
  absl::Status status = Run(v2_bundle, "one", /*backup_first=*/true);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("\"create\""), HasSubstr(old_checksum),
                    HasSubstr(new_checksum),
                    HasSubstr("run repair after reviewing the change")));
  EXPECT_TRUE(events_.empty());  // Not even a backup.
  EXPECT_FALSE(TableExists("before_table"));
  EXPECT_FALSE(TableExists("after_table"));
  EXPECT_TRUE(HistoryOf("before").empty());

  events_.clear();
  EXPECT_EQ(executor_->Plan(v2_bundle, "one", Sink()).code(),
            absl::StatusCode::kFailedPrecondition);

  // Repair accepts the new checksum without running the step.
  events_.clear();
  ASSERT_TRUE(executor_->Repair(v2_bundle, "", Sink()).ok());
  ASSERT_EQ(CountEvents(v1::DeploymentEvent::kNotice), 1);
  EXPECT_EQ(CurrentOf("create")->checksum, new_checksum);
  EXPECT_EQ(HistoryOf("create").size(), 2u);  // The old row stays as record.

  ASSERT_TRUE(Run(v2_bundle, "one").ok());
  EXPECT_THAT(Finished(),
              ::testing::ElementsAre(
                  std::make_pair("before", v1::STEP_OUTCOME_APPLIED),
                  std::make_pair("create", v1::STEP_OUTCOME_SKIPPED),
                  std::make_pair("after", v1::STEP_OUTCOME_APPLIED)));
  // The changed step itself never ran: items has no column "name".
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM items"), 0);
}

TEST_P(ExecutorTest, ChangedRepeatableStepRerunsAlone) {
  auto make = [&](const std::string& version, const std::string& value) {
    return MakeBundle(
        version,
        {{"one",
          {{"log", "CREATE TABLE log (value TEXT);\n"},
           {"note", absl::StrCat("INSERT INTO log VALUES ('", value, "');\n"),
            "STEP_KIND_REPEATABLE"},
           {"other", "INSERT INTO log VALUES ('other');\n",
            "STEP_KIND_REPEATABLE"}}}});
  };
  ASSERT_TRUE(Run(make("1.0.0", "v1"), "one").ok());
  bundle::Bundle v2_bundle = make("2.0.0", "v2");
  events_.clear();
  ASSERT_TRUE(executor_->Plan(v2_bundle, "one", Sink()).ok());
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].step(), "note");
  EXPECT_EQ(events_[0].step_planned().reason(), "changed (repeatable)");

  ASSERT_TRUE(Run(v2_bundle, "one").ok());
  EXPECT_THAT(Finished(),
              ::testing::ElementsAre(
                  std::make_pair("log", v1::STEP_OUTCOME_SKIPPED),
                  std::make_pair("note", v1::STEP_OUTCOME_APPLIED),
                  std::make_pair("other", v1::STEP_OUTCOME_SKIPPED)));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM log"), 3);  // v1, other, v2.
}

TEST_P(ExecutorTest, FailingStatementRollsBackItsStepAndNamesTheStatement) {
  auto make = [&](const std::string& version, const std::string& last) {
    return MakeBundle(
        version,
        {{"one",
          {{"first", "CREATE TABLE first_table (id INTEGER);\n"},
           {"second", absl::StrCat("CREATE TABLE second_table (id INTEGER);\n"
                                   "\n"
                                   "-- a comment\n"
                                   "INSERT INTO second_table VALUES (1);\n"
                                   "\n",
                                   last)}}}});
  };
  bundle::Bundle broken =
      make("1.0.0", "INSERT INTO missing_table\n  VALUES (1);\n");
  absl::Status status = Run(broken, "one");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("one_second.sql:6"), HasSubstr("statement 3"),
                    HasSubstr("missing_table"), HasSubstr("rolled back")));
  std::optional<v1::StepFailed> failed = Failed();
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->file(), absl::StrCat(dialect_field(), "/one_second.sql"));
  EXPECT_EQ(failed->statement_index(), 3);
  EXPECT_EQ(failed->line(), 6);
  EXPECT_THAT(failed->message(), HasSubstr("missing_table"));
  EXPECT_TRUE(failed->rolled_back());
  if (!sqlite()) {
    EXPECT_EQ(failed->sql_state(), "42P01");
  }

  // The first step stays applied; the second left nothing behind but a
  // record of the attempt.
  EXPECT_TRUE(TableExists("first_table"));
  EXPECT_FALSE(TableExists("second_table"));
  EXPECT_EQ(CurrentOf("first")->outcome, "APPLIED");
  EXPECT_FALSE(CurrentOf("second").has_value());
  std::vector<HistoryRow> attempts = HistoryOf("second");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].outcome, "FAILED");
  EXPECT_THAT(attempts[0].error, HasSubstr("missing_table"));

  // Fixed: the first step is skipped, the second runs.
  bundle::Bundle fixed =
      make("1.0.1", "INSERT INTO second_table\n  VALUES (2);\n");
  ASSERT_TRUE(Run(fixed, "one").ok());
  EXPECT_THAT(Finished(),
              ::testing::ElementsAre(
                  std::make_pair("first", v1::STEP_OUTCOME_SKIPPED),
                  std::make_pair("second", v1::STEP_OUTCOME_APPLIED)));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM second_table"), 2);
}

TEST_P(ExecutorTest, RevertRestoresThePrePhaseState) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      // base keeps a row of its own: a revert that empties a table holding
      // rows is refused (RevertRefusesToDestroyRows).
      {{"zero",
        {{"base",
          "CREATE TABLE base (id INTEGER);\nINSERT INTO base VALUES (1);\n"}}},
       {"one",
        {{"a", "CREATE TABLE a_table (id INTEGER);\n", "STEP_KIND_VERSIONED",
          "DROP TABLE a_table;\n"},
         {"b",
          "CREATE TABLE b_table (a_id INTEGER);\n"
          "INSERT INTO base VALUES (7);\n",
          "STEP_KIND_VERSIONED",
          // Fails unless a_table still exists: b must be reverted first.
          "DROP TABLE b_table;\nDELETE FROM base WHERE id IN (SELECT 7 FROM "
          "a_table UNION ALL SELECT 7);\n"}}}});
  ASSERT_TRUE(Run(bundle, "zero").ok());
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_TRUE(TableExists("b_table"));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM base"), 2);

  events_.clear();
  ASSERT_TRUE(executor_->RevertPhase(bundle, "one", Sink()).ok());
  EXPECT_THAT(Finished(), ::testing::ElementsAre(
                              std::make_pair("b", v1::STEP_OUTCOME_REVERTED),
                              std::make_pair("a", v1::STEP_OUTCOME_REVERTED)));
  EXPECT_FALSE(TableExists("a_table"));
  EXPECT_FALSE(TableExists("b_table"));
  EXPECT_TRUE(TableExists("base"));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM base"), 1);
  EXPECT_EQ(CurrentOf("a")->outcome, "REVERTED");
  EXPECT_EQ(CurrentOf("base")->outcome, "APPLIED");

  // Reverting again does nothing; applying again runs both.
  events_.clear();
  ASSERT_TRUE(executor_->RevertPhase(bundle, "one", Sink()).ok());
  EXPECT_TRUE(events_.empty());
  events_.clear();
  ASSERT_TRUE(executor_->Plan(bundle, "one", Sink()).ok());
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].step_planned().reason(), "reverted earlier");
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_TRUE(TableExists("b_table"));
}

TEST_P(ExecutorTest, RevertWithoutRevertScriptIsRefused) {
  bundle::Bundle bundle =
      MakeBundle("1.0.0", {{"one",
                            {{"a", "CREATE TABLE a_table (id INTEGER);\n",
                              "STEP_KIND_VERSIONED", "DROP TABLE a_table;\n"},
                             {"b", "CREATE TABLE b_table (id INTEGER);\n"}}}});
  ASSERT_TRUE(Run(bundle, "one").ok());
  events_.clear();
  absl::Status status = executor_->RevertPhase(bundle, "one", Sink());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("revert script"));
  EXPECT_TRUE(TableExists("a_table"));  // Nothing ran.
  EXPECT_TRUE(events_.empty());
}

TEST_P(ExecutorTest, VerifyMismatchFailsTheStep) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"seed",
          "CREATE TABLE config (k TEXT);\nINSERT INTO config VALUES ('a');\n",
          "STEP_KIND_VERSIONED", "",
          "verify { query { sqlite: \"SELECT COUNT(*) FROM config\" "
          "postgresql: \"SELECT COUNT(*) FROM config\" } expect: \"5\" "
          "description: \"config is seeded\" }"}}}});
  absl::Status status = Run(bundle, "one");
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("config is seeded"), HasSubstr("\"5\""),
                    HasSubstr("\"1\""), HasSubstr("rolled back")));
  std::optional<v1::StepFailed> failed = Failed();
  ASSERT_TRUE(failed.has_value());
  EXPECT_TRUE(failed->rolled_back());
  EXPECT_EQ(failed->statement_index(), 0);
  EXPECT_FALSE(TableExists("config"));
  EXPECT_FALSE(CurrentOf("seed").has_value());
}

TEST_P(ExecutorTest, TimeoutInterruptsALongStatement) {
  if (odbc()) GTEST_SKIP() << "ODBC timeouts are the driver's, best effort";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"slow",
                   absl::StrCat("CREATE TABLE slow_table (id INTEGER);\n",
                                SlowStatement()),
                   "STEP_KIND_VERSIONED", "", "timeout { seconds: 1 }"}}}});
  const absl::Time start = absl::Now();
  absl::Status status = Run(bundle, "one");
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  std::optional<v1::StepFailed> failed = Failed();
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->statement_index(), 2);
  EXPECT_TRUE(failed->rolled_back());
  EXPECT_FALSE(TableExists("slow_table"));
  EXPECT_FALSE(CurrentOf("slow").has_value());
  // The session is usable afterwards (no timeout or handler left behind).
  EXPECT_EQ(QueryInt("SELECT 1"), 1);
}

TEST_P(ExecutorTest, CancelInterruptsTheRunningStep) {
  if (odbc()) GTEST_SKIP() << "Cancel() does not reach ODBC statements";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"slow", absl::StrCat("CREATE TABLE slow_table (id INTEGER);\n",
                               SlowStatement())},
         {"later", "CREATE TABLE later_table (id INTEGER);\n"}}}});
  std::thread canceller([this] {
    absl::SleepFor(absl::Milliseconds(500));
    executor_->Cancel();
  });
  const absl::Time start = absl::Now();
  absl::Status status = Run(bundle, "one");
  canceller.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_FALSE(TableExists("slow_table"));
  EXPECT_FALSE(TableExists("later_table"));
  std::optional<v1::StepFailed> failed = Failed();
  ASSERT_TRUE(failed.has_value());
  EXPECT_TRUE(failed->rolled_back());
  // The cancel holds until cleared (by the next command's owner); then the
  // next operation runs.
  bundle::Bundle quick = MakeBundle(
      "1.0.1", {{"one", {{"quick", "CREATE TABLE quick (id INTEGER);\n"}}}});
  EXPECT_EQ(Run(quick, "one").code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(TableExists("quick"));
  executor_->ClearCancel();
  EXPECT_TRUE(Run(quick, "one").ok());
}

TEST_P(ExecutorTest, NoticesAreReportedBeforeTheStatementsProgress) {
  if (sqlite() || odbc()) GTEST_SKIP() << "only libpq sessions have notices";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"notify",
                   "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$;\n"
                   "CREATE TABLE quiet (id INTEGER);\n"}}}});
  ASSERT_TRUE(Run(bundle, "one").ok());
  std::vector<std::string> kinds;
  for (const v1::DeploymentEvent& event : events_) {
    if (event.has_notice()) kinds.push_back("notice:" + event.notice());
    if (event.has_statement_progress()) {
      kinds.push_back(absl::StrCat(
          "progress:", event.statement_progress().statement_index()));
    }
  }
  EXPECT_THAT(kinds, ::testing::ElementsAre("notice:NOTICE: hello 42",
                                            "progress:1", "progress:2"));
}

TEST_P(ExecutorTest, NonTransactionalStepRecordsItsOutcome) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"loose", "CREATE TABLE loose (id INTEGER);\n",
                   "STEP_KIND_VERSIONED", "", "transactional: false"}}}});
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_EQ(CurrentOf("loose")->outcome, "APPLIED");
  EXPECT_EQ(HistoryOf("loose").size(), 1u);  // The RUNNING row, finished.
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_THAT(Finished(), ::testing::ElementsAre(std::make_pair(
                              "loose", v1::STEP_OUTCOME_SKIPPED)));
}

TEST_P(ExecutorTest, RunningRowIsRefusedUntilRepair) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"first", "CREATE TABLE first_table (id INTEGER);\n"},
                  {"loose", "CREATE TABLE loose (id INTEGER);\n",
                   "STEP_KIND_VERSIONED", "", "transactional: false"}}}});
  // What an agent killed inside the non-transactional step leaves behind.
  History history(database_.get());
  ASSERT_TRUE(history.Ensure().ok());
  HistoryRow row;
  row.bundle_name = "testbundle";
  row.bundle_version = "1.0.0";
  row.bundle_id = bundle.id();
  row.phase = "one";
  row.step = "loose";
  row.kind = "VERSIONED";
  row.checksum = "sha256:whatever";
  row.outcome = kOutcomeRunning;
  row.started_at = absl::Now();
  row.agent_version = "test";
  ASSERT_TRUE(history.InsertCurrent(row).ok());

  absl::Status status = Run(bundle, "one");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      status.message(),
      AllOf(HasSubstr("\"loose\""), HasSubstr("UNKNOWN"), HasSubstr("repair")));
  EXPECT_FALSE(TableExists("first_table"));  // Nothing ran.

  events_.clear();
  ASSERT_TRUE(executor_->Repair(bundle, "one", Sink()).ok());
  ASSERT_EQ(CountEvents(v1::DeploymentEvent::kNotice), 1);
  std::vector<HistoryRow> rows = HistoryOf("loose");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, "UNKNOWN");
  EXPECT_FALSE(rows[0].is_current);

  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_EQ(CurrentOf("loose")->outcome, "APPLIED");
  EXPECT_TRUE(TableExists("loose"));
}

TEST_P(ExecutorTest, FailedNonTransactionalStepNeedsRepair) {
  auto make = [&](const std::string& version, const std::string& sql) {
    return MakeBundle(version, {{"one",
                                 {{"loose", sql, "STEP_KIND_VERSIONED", "",
                                   "transactional: false"}}}});
  };
  absl::Status status = Run(make("1.0.0",
                                 "CREATE TABLE loose (id INTEGER);\nINSERT "
                                 "INTO nowhere VALUES (1);\n"),
                            "one");
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("NOT rolled back"));
  EXPECT_FALSE(Failed()->rolled_back());
  EXPECT_TRUE(TableExists("loose"));  // Half-applied: no transaction.
  EXPECT_EQ(CurrentOf("loose")->outcome, "FAILED");

  bundle::Bundle fixed = make("1.0.1",
                              "CREATE TABLE IF NOT EXISTS loose (id INTEGER);\n"
                              "INSERT INTO loose VALUES (1);\n");
  EXPECT_EQ(Run(fixed, "one").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(executor_->Repair(fixed, "", Sink()).ok());
  ASSERT_TRUE(Run(fixed, "one").ok());
  EXPECT_EQ(CurrentOf("loose")->outcome, "APPLIED");
}

TEST_P(ExecutorTest, BackupFirstTakesABackupBeforeTheFirstStepThatRuns) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one", {{"create", "CREATE TABLE items (id INTEGER);\n"}}}});
  if (!sqlite()) {
    // pg_dump may be missing or of another major version than the server.
    GTEST_SKIP() << "PostgreSQL backups are the backup module's tests";
  }
  ASSERT_TRUE(Run(bundle, "one", /*backup_first=*/true).ok());
  ASSERT_FALSE(events_.empty());
  EXPECT_TRUE(events_[0].has_backup_completed());
  EXPECT_FALSE(events_[0].backup_completed().backup_id().empty());
  // Nothing to run: no backup.
  ASSERT_TRUE(Run(bundle, "one", /*backup_first=*/true).ok());
  EXPECT_EQ(CountEvents(v1::DeploymentEvent::kBackupCompleted), 0);
}

TEST_P(ExecutorTest, CallOperationBindsParameters) {
  const std::string operations = R"(operations {
  name: "SetConfigValue"
  parameters { name: "Key" type: "text" }
  parameters { name: "Value" type: "text" }
  parameters { name: "Size" type: "int" }
  sql {
    sqlite: "INSERT INTO config (k, v, size) VALUES (:Key, :Value, :Size); SELECT k, v, size FROM config WHERE k = :Key"
    postgresql: "INSERT INTO config (k, v, size) VALUES (:Key, :Value, :Size); SELECT k, v, size FROM config WHERE k = :Key"
  }
}
operations {
  name: "Count"
  sql { sqlite: "SELECT COUNT(*) AS n FROM config" postgresql: "SELECT COUNT(*) AS n FROM config" }
}
)";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"create", "CREATE TABLE config (k TEXT, v TEXT, size INTEGER);\n"}}}},
      operations);
  ASSERT_TRUE(Run(bundle, "one").ok());
  const std::string nasty = "it's'); DROP TABLE config; --";
  absl::StatusOr<Executor::OperationResult> result = executor_->CallOperation(
      bundle, "SetConfigValue",
      {{"Key", "Audit.RetentionDays"}, {"Value", nasty}, {"Size", "365"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->columns, ::testing::ElementsAre("k", "v", "size"));
  ASSERT_EQ(result->rows.size(), 1u);
  EXPECT_THAT(result->rows[0],
              ::testing::ElementsAre("Audit.RetentionDays", nasty, "365"));
  EXPECT_EQ(result->rows_affected, 1);
  EXPECT_TRUE(TableExists("config"));
  EXPECT_EQ(QueryText("SELECT v FROM config"), nasty);

  result = executor_->CallOperation(bundle, "Count", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rows[0][0], "1");

  EXPECT_EQ(executor_->CallOperation(bundle, "SetConfigValue", {{"Key", "k"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_
                ->CallOperation(bundle, "SetConfigValue",
                                {{"Key", "k"}, {"Value", "v"}, {"Size", "x"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->CallOperation(bundle, "Count", {{"Extra", "1"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->CallOperation(bundle, "Nope", {}).status().code(),
            absl::StatusCode::kNotFound);
}

// PostgreSQL and SQLite roll a refused call back whole, so a bundle cannot
// log its own failure; the executor counts each call in
// ecliptix_operation_calls: a success with the call's work, a failure after
// the rollback.
TEST_P(ExecutorTest, CallOperationCountsCallsAndFailures) {
  const std::string operations = R"manifest(operations {
  name: "Add"
  parameters { name: "Id" type: "int" }
  sql {
    sqlite: "INSERT INTO tries (note) VALUES ('tried'); INSERT INTO items (id) VALUES (:Id)"
    postgresql: "INSERT INTO tries (note) VALUES ('tried'); INSERT INTO items (id) VALUES (:Id)"
  }
}
)manifest";
  bundle::Bundle bundle =
      MakeBundle("1.0.0",
                 {{"one",
                   {{"create",
                     "CREATE TABLE items (id INTEGER PRIMARY KEY);\n"
                     "CREATE TABLE tries (note TEXT);\n"}}}},
                 operations);
  ASSERT_TRUE(Run(bundle, "one").ok());
  ASSERT_TRUE(executor_->CallOperation(bundle, "Add", {{"Id", "1"}}).ok());
  ASSERT_TRUE(executor_->CallOperation(bundle, "Add", {{"Id", "2"}}).ok());
  // A duplicate key: refused, and its first statement rolled back with it.
  EXPECT_FALSE(executor_->CallOperation(bundle, "Add", {{"Id", "1"}}).ok());
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM tries"), 2);
  const std::string totals =
      "SELECT SUM(calls) || '/' || SUM(failures) FROM ecliptix_operation_calls "
      "WHERE operation = 'Add'";
  EXPECT_EQ(QueryText(totals), "3/1");
  EXPECT_EQ(QueryInt("SELECT SUM(reported_calls) + SUM(reported_failures) "
                     "FROM ecliptix_operation_calls"),
            0);
  // Refused before reaching the database (arguments, unknown operation): no
  // call was made, none is counted.
  EXPECT_FALSE(executor_->CallOperation(bundle, "Add", {}).ok());
  EXPECT_FALSE(executor_->CallOperation(bundle, "Nope", {}).ok());
  EXPECT_EQ(QueryText(totals), "3/1");
  // A success after a failure: the next call starts clean and is counted.
  ASSERT_TRUE(executor_->CallOperation(bundle, "Add", {{"Id", "3"}}).ok());
  EXPECT_EQ(QueryText(totals), "4/1");
  // Only calls: applying phases counts nothing.
  EXPECT_EQ(QueryInt("SELECT COUNT(DISTINCT operation) FROM "
                     "ecliptix_operation_calls"),
            1);
}

TEST_P(ExecutorTest, CallOperationUsesParameterDefaults) {
  // The runbook's "EXEC dbo.CleanupAuditLogs @RetentionDays = 30" leaves
  // BatchSize out: its default applies; a parameter without one is required.
  const std::string operations = R"(operations {
  name: "Cleanup"
  parameters { name: "RetentionDays" type: "int" }
  parameters { name: "BatchSize" type: "int" default_value: "1000" }
  parameters { name: "Note" type: "text" default_value: "" }
  sql {
    sqlite: "SELECT :RetentionDays AS days, :BatchSize AS batch, :Note AS note"
    postgresql: "SELECT CAST(:RetentionDays AS integer) AS days, CAST(:BatchSize AS integer) AS batch, CAST(:Note AS text) AS note"
  }
}
)";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one", {{"create", "CREATE TABLE t (x INTEGER);\n"}}}},
      operations);
  absl::StatusOr<Executor::OperationResult> result =
      executor_->CallOperation(bundle, "Cleanup", {{"RetentionDays", "30"}});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->rows.size(), 1u);
  EXPECT_THAT(result->rows[0], ::testing::ElementsAre("30", "1000", ""));

  result = executor_->CallOperation(
      bundle, "Cleanup",
      {{"RetentionDays", "7"}, {"BatchSize", "5000"}, {"Note", "n"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->rows[0], ::testing::ElementsAre("7", "5000", "n"));

  result = executor_->CallOperation(bundle, "Cleanup", {{"BatchSize", "10"}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(),
              ::testing::HasSubstr("needs parameter \"RetentionDays\""));
}

// SOCI's exception text ends with the statement and every value it bound
// (`with :Secret="..."`), and PostgreSQL's detail quotes the failing row: a
// failed call reports the database's message, never the values.
TEST_P(ExecutorTest, FailedOperationNeverShowsItsValues) {
  const std::string operations =
      R"pb(operations {
             name: "Guard"
             parameters { name: "Secret" type: "text" }
             sql {
               sqlite: "INSERT INTO guarded (k) VALUES (:Secret)"
               postgresql: "INSERT INTO guarded (k) VALUES (:Secret)"
             }
           }
           operations {
             name: "Number"
             parameters { name: "Secret" type: "text" }
             sql {
               sqlite: "INSERT INTO numbers (n) VALUES (:Secret)"
               postgresql: "INSERT INTO numbers (n) VALUES (:Secret)"
             }
           }
      )pb";
  bundle::Bundle bundle =
      MakeBundle("1.0.0",
                 {{"one",
                   {{"create",
                     "CREATE TABLE guarded (k TEXT CHECK (length(k) < 3));\n"
                     "CREATE TABLE numbers (n INTEGER);\n"}}}},
                 operations);
  ASSERT_TRUE(Run(bundle, "one").ok());
  const std::string secret = "hunter2-Zq81-do-not-print";

  absl::StatusOr<Executor::OperationResult> result =
      executor_->CallOperation(bundle, "Guard", {{"Secret", secret}});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), Not(HasSubstr(secret)));
  EXPECT_THAT(absl::AsciiStrToLower(result.status().message()),
              HasSubstr("check constraint"));
  if (!sqlite()) {
    EXPECT_THAT(result.status().message(), HasSubstr("SQLSTATE"));
  }
  // The database rejects the text itself (PostgreSQL quotes it in its
  // primary message); SQLite stores text in an INTEGER column.
  if (!sqlite()) {
    result = executor_->CallOperation(bundle, "Number", {{"Secret", secret}});
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.status().message(), Not(HasSubstr(secret)));
  }
}

TEST_P(ExecutorTest, SigkillInsideATransactionalStepLeavesNoTrace) {
  // How long the slow step runs is data: the same bundle (same checksum)
  // runs for minutes first and at once after the kill.
  Exec("CREATE TABLE knob (n INTEGER)");
  Exec(sqlite() ? "INSERT INTO knob VALUES (1000000000)"
                : "INSERT INTO knob VALUES (60)");
  const std::string slow =
      sqlite() ? "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                 "FROM c WHERE x < (SELECT n FROM knob)) SELECT count(*) FROM "
                 "c;\n"
               : "SELECT pg_sleep((SELECT n FROM knob));\n";
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"first", "CREATE TABLE first_table (id INTEGER);\n"},
         {"slow", absl::StrCat("CREATE TABLE slow_table (id INTEGER);\n"
                               "INSERT INTO slow_table VALUES (1);\n",
                               slow)}}}});
  // The child must not wait on this session's locks.
  database_.reset();
  executor_.reset();

  const std::string output = absl::StrCat(dir_, "/agent.log");
  absl::StatusOr<testing::ChildProcess> agent = testing::ChildProcess::Start(
      {testing::RunfilePath("agent/ecliptix-agent"), "apply",
       absl::StrCat("--bundle=", bundle_dir_),
       absl::StrCat("--database=", url_)},
      output);
  ASSERT_TRUE(agent.ok()) << agent.status();
  ASSERT_TRUE(testing::WaitFor([&] {
    return absl::StrContains(agent->Output(), "[2/3] ok");
  })) << agent->Output();
  absl::SleepFor(absl::Milliseconds(300));  // Inside the slow statement.
  ASSERT_TRUE(agent->running()) << agent->Output();
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(absl::Seconds(10)).has_value());

  if (!sqlite()) {
    // The server notices a dead client only when it next talks to it; until
    // then the dead transaction holds its locks. Operators (or TCP keepalive)
    // end it; so does the test.
    absl::StatusOr<std::unique_ptr<Target>> admin = OpenTarget(url_);
    ASSERT_TRUE(admin.ok()) << admin.status();
    ASSERT_TRUE((*admin)
                    ->Execute("SELECT pg_terminate_backend(pid) FROM "
                              "pg_stat_activity WHERE datname = "
                              "current_database() AND pid <> pg_backend_pid()")
                    .ok());
  }

  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
  ASSERT_TRUE(database.ok()) << database.status();
  database_ = *std::move(database);
  executor_ = std::make_unique<Executor>(database_.get(), ExecutorOptions());
  EXPECT_EQ(CurrentOf("first")->outcome, "APPLIED");
  EXPECT_TRUE(HistoryOf("slow").empty());
  EXPECT_FALSE(TableExists("slow_table"));

  Exec("UPDATE knob SET n = 1");
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_THAT(
      Finished(),
      ::testing::ElementsAre(std::make_pair("first", v1::STEP_OUTCOME_SKIPPED),
                             std::make_pair("slow", v1::STEP_OUTCOME_APPLIED)));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM slow_table"), 1);
}

// ---- adoption and data safety ----

// A detect query for the tables `names` (one row per table: name, present).
std::string DetectTables(const std::vector<std::string>& names) {
  std::string sqlite, postgresql;
  for (const std::string& name : names) {
    if (!sqlite.empty()) {
      absl::StrAppend(&sqlite, " UNION ALL ");
      absl::StrAppend(&postgresql, " UNION ALL ");
    }
    absl::StrAppend(&sqlite, "SELECT '", name,
                    "', COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                    "name = '",
                    name, "'");
    absl::StrAppend(&postgresql, "SELECT '", name,
                    "', COUNT(*) FROM information_schema.tables WHERE "
                    "table_schema = current_schema() AND table_name = '",
                    name, "'");
  }
  return absl::StrCat("detect { sqlite: \"", sqlite, "\" postgresql: \"",
                      postgresql, "\" }");
}

TEST_P(ExecutorTest, AdoptionBaselinesStepsWhoseObjectsExist) {
  // A database where the schema was created by hand and holds data.
  Exec("CREATE TABLE members (id INTEGER)");
  Exec("INSERT INTO members VALUES (1)");
  Exec("INSERT INTO members VALUES (2)");
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"schema", "CREATE TABLE IF NOT EXISTS members (id INTEGER);\n",
          "STEP_KIND_VERSIONED", "DROP TABLE members;\n",
          DetectTables({"members"})},
         {"extra", "CREATE TABLE extra (id INTEGER);\n", "STEP_KIND_VERSIONED",
          "DROP TABLE extra;\n", DetectTables({"extra"})}}}});

  // Without adoption: refused before anything runs, saying how to adopt.
  absl::Status status = Run(bundle, "one");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("members"), HasSubstr("already exist"),
                    HasSubstr("--adopt")));
  EXPECT_FALSE(TableExists("extra"));
  EXPECT_FALSE(CurrentOf("schema").has_value());

  // The plan says what adoption would do.
  events_.clear();
  ASSERT_TRUE(executor_->Plan(bundle, "one", Sink(), /*adopt=*/true).ok());
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_THAT(events_[0].step_planned().reason(),
              AllOf(HasSubstr("adopt"), HasSubstr("members")));
  EXPECT_EQ(events_[1].step_planned().reason(), "new");

  events_.clear();
  status = executor_->RunPhase(bundle, "one", false, Sink(), /*adopt=*/true);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(Finished(),
              ::testing::ElementsAre(
                  std::make_pair("schema", v1::STEP_OUTCOME_BASELINED),
                  std::make_pair("extra", v1::STEP_OUTCOME_APPLIED)));
  EXPECT_EQ(CurrentOf("schema")->outcome, "BASELINED");
  EXPECT_TRUE(TableExists("extra"));

  // Baselined counts as applied: nothing runs again.
  ASSERT_TRUE(Run(bundle, "one").ok());
  EXPECT_THAT(Finished(),
              ::testing::ElementsAre(
                  std::make_pair("schema", v1::STEP_OUTCOME_SKIPPED),
                  std::make_pair("extra", v1::STEP_OUTCOME_SKIPPED)));

  // A revert undoes only what the bundle created: the adopted table and its
  // rows stay.
  events_.clear();
  status = executor_->RevertPhase(bundle, "one", Sink());
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(Finished(), ::testing::ElementsAre(std::make_pair(
                              "extra", v1::STEP_OUTCOME_REVERTED)));
  EXPECT_FALSE(TableExists("extra"));
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM members"), 2);
  EXPECT_EQ(CurrentOf("schema")->outcome, "BASELINED");
  bool said_why = false;
  for (const v1::DeploymentEvent& event : events_) {
    said_why |= absl::StrContains(event.notice(), "never reverted");
  }
  EXPECT_TRUE(said_why);
}

TEST_P(ExecutorTest, AdoptionRefusesAPartlyPresentStep) {
  Exec("CREATE TABLE left_half (id INTEGER)");
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"first", "CREATE TABLE first_table (id INTEGER);\n"},
                  {"halves",
                   "CREATE TABLE left_half (id INTEGER);\n"
                   "CREATE TABLE right_half (id INTEGER);\n",
                   "STEP_KIND_VERSIONED", "",
                   DetectTables({"left_half", "right_half"})}}}});
  for (bool adopt : {false, true}) {
    events_.clear();
    absl::Status status =
        executor_->RunPhase(bundle, "one", false, Sink(), adopt);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), AllOf(HasSubstr("partly in place"),
                                        HasSubstr("present: left_half"),
                                        HasSubstr("missing: right_half")));
    // Refused before the phase's first step.
    EXPECT_TRUE(events_.empty());
    EXPECT_FALSE(TableExists("first_table"));
    EXPECT_FALSE(TableExists("right_half"));
  }
}

TEST_P(ExecutorTest, RevertRefusesToDestroyRows) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0", {{"one",
                 {{"logs", "CREATE TABLE audit_rows (id INTEGER);\n",
                   "STEP_KIND_VERSIONED", "DROP TABLE audit_rows;\n"},
                  {"more", "CREATE TABLE spare (id INTEGER);\n",
                   "STEP_KIND_VERSIONED", "DROP TABLE spare;\n"}}}});
  absl::StatusOr<BackupResult> backup;
  if (!odbc()) {
    backup = executor_->Backup(Sink());
    ASSERT_TRUE(backup.ok()) << backup.status();
  }
  ASSERT_TRUE(Run(bundle, "one").ok());
  Exec("INSERT INTO audit_rows VALUES (1)");
  Exec("INSERT INTO audit_rows VALUES (2)");
  Exec("INSERT INTO audit_rows VALUES (3)");

  events_.clear();
  absl::Status status = executor_->RevertPhase(bundle, "one", Sink());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("audit_rows (3 rows)"),
                                      HasSubstr("Nothing was changed"),
                                      HasSubstr("accept_data_loss")));
  if (!odbc()) {
    EXPECT_THAT(status.message(), HasSubstr(backup->backup_id));
  }
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_rows"), 3);
  EXPECT_EQ(CurrentOf("logs")->outcome, "APPLIED");
  // The phase's reverts were tried together and rolled back: not even the
  // harmless one (the empty table's, reverted first) is left done.
  EXPECT_EQ(CurrentOf("more")->outcome, "APPLIED");
  EXPECT_TRUE(TableExists("spare"));
  EXPECT_TRUE(events_.empty());

  // Accepted explicitly: it goes, and the history says so.
  events_.clear();
  Executor::RevertOptions accept;
  accept.accept_data_loss = true;
  status = executor_->RevertPhase(bundle, "one", Sink(), accept);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(TableExists("audit_rows"));
  EXPECT_THAT(CurrentOf("logs")->error,
              AllOf(HasSubstr("data loss accepted"), HasSubstr("audit_rows")));
  bool noticed = false;
  for (const v1::DeploymentEvent& event : events_) {
    noticed |= absl::StrContains(event.notice(), "data loss accepted");
  }
  EXPECT_TRUE(noticed);
}

TEST_P(ExecutorTest, RevertOutsideATransactionThatMayDestroyRowsIsRefused) {
  bundle::Bundle bundle = MakeBundle(
      "1.0.0",
      {{"one",
        {{"logs", "CREATE TABLE loose (id INTEGER);\n", "STEP_KIND_VERSIONED",
          "DROP TABLE loose;\n", "transactional: false"}}}});
  ASSERT_TRUE(Run(bundle, "one").ok());
  events_.clear();
  absl::Status status = executor_->RevertPhase(bundle, "one", Sink());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("outside a transaction"),
                                      HasSubstr("accept_data_loss")));
  EXPECT_TRUE(TableExists("loose"));
  EXPECT_TRUE(events_.empty());
}

TEST_P(ExecutorTest, RollbackOfARepeatableStepRestoresThePreviousBody) {
  const std::string revert = "DROP VIEW IF EXISTS answer_view;\n";
  auto body = [](int answer) {
    return absl::StrCat("DROP VIEW IF EXISTS answer_view;\nCREATE VIEW ",
                        "answer_view AS SELECT ", answer, " AS answer;\n");
  };
  auto v1_bundle = std::make_shared<const bundle::Bundle>(MakeBundle(
      "1.0.0",
      {{"procs", {{"view", body(1), "STEP_KIND_REPEATABLE", revert}}}}));
  bundle::Bundle v2_bundle = MakeBundle(
      "2.0.0",
      {{"procs", {{"view", body(2), "STEP_KIND_REPEATABLE", revert}}}});
  ASSERT_TRUE(Run(*v1_bundle, "procs").ok());
  ASSERT_TRUE(Run(v2_bundle, "procs").ok());
  EXPECT_EQ(QueryInt("SELECT answer FROM answer_view"), 2);

  // The earlier bundle cannot be had: refused, nothing changes.
  Executor::RevertOptions options;
  options.only_this_bundle = true;
  options.load_bundle = [](const std::string& id)
      -> absl::StatusOr<std::shared_ptr<const bundle::Bundle>> {
    return absl::NotFoundError(absl::StrCat("no bundle ", id));
  };
  events_.clear();
  absl::Status status =
      executor_->RevertPhase(v2_bundle, "procs", Sink(), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("previous body"), HasSubstr(v1_bundle->id())));
  EXPECT_EQ(QueryInt("SELECT answer FROM answer_view"), 2);

  options.load_bundle = [&](const std::string& id)
      -> absl::StatusOr<std::shared_ptr<const bundle::Bundle>> {
    if (id != v1_bundle->id()) return absl::NotFoundError(id);
    return v1_bundle;
  };
  events_.clear();
  status = executor_->RevertPhase(v2_bundle, "procs", Sink(), options);
  ASSERT_TRUE(status.ok()) << status;
  // The view answers as version 1 made it, recorded as version 1's.
  EXPECT_EQ(QueryInt("SELECT answer FROM answer_view"), 1);
  std::optional<HistoryRow> current = CurrentOf("view");
  ASSERT_TRUE(current.has_value());
  EXPECT_EQ(current->outcome, "APPLIED");
  EXPECT_EQ(current->bundle_id, v1_bundle->id());
  EXPECT_EQ(current->bundle_version, "1.0.0");
  // Deploying version 2 again re-applies its body.
  ASSERT_TRUE(Run(v2_bundle, "procs").ok());
  EXPECT_EQ(QueryInt("SELECT answer FROM answer_view"), 2);
}

INSTANTIATE_TEST_SUITE_P(Engines, ExecutorTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kOdbc),
                         EngineParamName);

}  // namespace
}  // namespace ecliptix::agent
