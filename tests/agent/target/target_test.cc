// The Target interface against real databases, one engine per parameter: a
// fresh SQLite file always; PostgreSQL through libpq and through its ODBC
// driver on a scratch database when ECLIPTIX_TEST_POSTGRES_URL is set.
#include "agent/target/target.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/target/open_target.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

enum class Engine { kSqlite, kPostgresql, kOdbc };

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string TestName() {
  return absl::StrReplaceAll(
      ::testing::UnitTest::GetInstance()->current_test_info()->name(),
      {{"/", "_"}});
}

class TargetTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() == Engine::kSqlite) {
      const std::string file = absl::StrCat(TempDir(), "/", TestName(), ".db");
      std::remove(file.c_str());
      url_ = absl::StrCat("sqlite://", file);
    } else {
      if (!testing::PostgresAdminUrl().has_value()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set; pass it with "
                        "--test_env to run the PostgreSQL and ODBC cases";
      }
      absl::StatusOr<testing::ScratchDatabase> scratch =
          testing::CreateScratchDatabase("agent_target_if");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url_ = GetParam() == Engine::kOdbc ? scratch->odbc_url : scratch->url;
    }
    absl::StatusOr<std::unique_ptr<Target>> target = OpenTarget(url_);
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);
  }

  bool sqlite() const { return GetParam() == Engine::kSqlite; }
  bool libpq() const { return GetParam() == Engine::kPostgresql; }
  bool odbc() const { return GetParam() == Engine::kOdbc; }

  void Exec(const std::string& sql) {
    const absl::Status status = target_->Execute(sql);
    ASSERT_TRUE(status.ok()) << status << ": " << sql;
  }

  // The one value `query` returns.
  std::string Value(const std::string& query) {
    absl::StatusOr<QueryResult> result = target_->Query(query);
    EXPECT_TRUE(result.ok()) << result.status() << ": " << query;
    if (!result.ok() || result->rows.size() != 1) return "<no row>";
    return result->rows[0].values.at(0);
  }

  // A statement that keeps the engine busy far longer than any test.
  std::string SlowStatement() const {
    if (sqlite()) {
      return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < 1000000000) SELECT count(*) FROM c";
    }
    return "SELECT pg_sleep(600)";
  }

  std::string url_;
  std::unique_ptr<Target> target_;
};

TEST_P(TargetTest, ReportsEngineConnectorAndVersion) {
  EXPECT_EQ(target_->engine(),
            sqlite() ? v1::ENGINE_SQLITE : v1::ENGINE_POSTGRESQL);
  EXPECT_EQ(target_->connector(), sqlite()  ? v1::CONNECTOR_SQLITE
                                  : libpq() ? v1::CONNECTOR_LIBPQ
                                            : v1::CONNECTOR_ODBC);
  EXPECT_FALSE(target_->engine_version().empty());
  EXPECT_FALSE(target_->redacted_url().empty());
}

TEST_P(TargetTest, QueryReturnsColumnsAndRowsAsTextWithNulls) {
  Exec("CREATE TABLE things (id INTEGER, name VARCHAR(20), note VARCHAR(20))");
  Exec("INSERT INTO things VALUES (1, 'one', NULL)");
  Exec("INSERT INTO things VALUES (2, 'two', '')");
  absl::StatusOr<QueryResult> result =
      target_->Query("SELECT id, name, note FROM things ORDER BY id");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->columns, ::testing::ElementsAre("id", "name", "note"));
  ASSERT_EQ(result->rows.size(), 2u);
  EXPECT_THAT(result->rows[0].values, ::testing::ElementsAre("1", "one", ""));
  EXPECT_THAT(result->rows[0].nulls,
              ::testing::ElementsAre(false, false, true));
  EXPECT_THAT(result->rows[1].values, ::testing::ElementsAre("2", "two", ""));
  EXPECT_THAT(result->rows[1].nulls,
              ::testing::ElementsAre(false, false, false));
}

TEST_P(TargetTest, QueryWithoutRowsReportsNoColumns) {
  Exec("CREATE TABLE things (id INTEGER)");
  absl::StatusOr<QueryResult> empty =
      target_->Query("SELECT id FROM things WHERE id = 42");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->rows.empty());
  absl::StatusOr<QueryResult> insert =
      target_->Query("INSERT INTO things VALUES (1)");
  ASSERT_TRUE(insert.ok()) << insert.status();
  EXPECT_TRUE(insert->columns.empty());
  EXPECT_EQ(insert->rows_affected, 1);
}

TEST_P(TargetTest, BindsNamedTextIntBoolAndNullParameters) {
  Exec(
      "CREATE TABLE bound (name VARCHAR(40), n BIGINT, flag INTEGER, "
      "note VARCHAR(20))");
  const std::string tricky = "it's :not_a_parameter; DROP TABLE bound";
  int64_t affected = -1;
  const absl::Status inserted = target_->Execute(
      "INSERT INTO bound (name, n, flag, note) VALUES (:name, :n, :flag, "
      ":note)",
      {SqlParam::Text("name", tricky), SqlParam::Int("n", 9000000000),
       SqlParam::Bool("flag", true), SqlParam::NullText("note")},
      &affected);
  ASSERT_TRUE(inserted.ok()) << inserted;
  EXPECT_EQ(affected, 1);
  absl::StatusOr<QueryResult> result = target_->Query(
      "SELECT name, n, flag, note FROM bound WHERE n = :n AND flag = :flag",
      {SqlParam::Int("n", 9000000000), SqlParam::Bool("flag", true)});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->rows.size(), 1u);
  EXPECT_THAT(result->rows[0].values,
              ::testing::ElementsAre(tricky, "9000000000", "1", ""));
  EXPECT_THAT(result->rows[0].nulls,
              ::testing::ElementsAre(false, false, false, true));
}

TEST_P(TargetTest, ExecuteCountsChangedRows) {
  Exec("CREATE TABLE counted (id INTEGER)");
  Exec("INSERT INTO counted VALUES (1)");
  Exec("INSERT INTO counted VALUES (2)");
  Exec("INSERT INTO counted VALUES (3)");
  int64_t affected = -1;
  ASSERT_TRUE(target_
                  ->Execute("UPDATE counted SET id = id + 10 WHERE id > 1", {},
                            &affected)
                  .ok());
  EXPECT_EQ(affected, 2);
}

TEST_P(TargetTest, CommitKeepsAndRollbackUndoes) {
  Exec("CREATE TABLE tx (id INTEGER)");
  ASSERT_TRUE(target_->Begin().ok());
  Exec("INSERT INTO tx VALUES (1)");
  ASSERT_TRUE(target_->Commit().ok());
  ASSERT_TRUE(target_->Begin().ok());
  Exec("INSERT INTO tx VALUES (2)");
  ASSERT_TRUE(target_->Rollback().ok());
  EXPECT_EQ(Value("SELECT COUNT(*) FROM tx"), "1");
}

TEST_P(TargetTest, RollbackAfterSqliteEndedTheTransactionIsANoOp) {
  if (!sqlite()) GTEST_SKIP() << "SQLite only";
  // No transaction is open: SQLite would refuse a ROLLBACK.
  EXPECT_TRUE(target_->Rollback().ok());
}

TEST_P(TargetTest, AWriteAfterAReadWaitsForAnotherWriterInsteadOfFailing) {
  // The application writes while a step (or a revert) that read first is about
  // to write. A deferred SQLite transaction would be refused "database is
  // locked" at that write; the one Begin() opens holds the write lock from the
  // start, so the application's write waits for it instead.
  Exec("CREATE TABLE traffic (id INTEGER)");
  absl::StatusOr<std::unique_ptr<Target>> application = OpenTarget(url_);
  ASSERT_TRUE(application.ok()) << application.status();
  ASSERT_TRUE(target_->Begin().ok());
  EXPECT_EQ(Value("SELECT COUNT(*) FROM traffic"), "0");
  absl::Status application_write;
  std::thread writer([&] {
    application_write =
        (*application)->Execute("INSERT INTO traffic VALUES (1)");
  });
  // Not a wait for something to not happen: the writer has had time to start
  // its write before this one, which is the order that used to fail.
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Status own_write =
      target_->Execute("INSERT INTO traffic VALUES (2)");
  EXPECT_TRUE(own_write.ok()) << own_write;
  EXPECT_TRUE(target_->Commit().ok());
  writer.join();
  EXPECT_TRUE(application_write.ok()) << application_write;
  EXPECT_EQ(Value("SELECT COUNT(*) FROM traffic"), "2");
}

TEST_P(TargetTest, AReadOnlyTransactionTakesNoWriteLock) {
  Exec("CREATE TABLE traffic (id INTEGER)");
  absl::StatusOr<std::unique_ptr<Target>> application = OpenTarget(url_);
  ASSERT_TRUE(application.ok()) << application.status();
  ASSERT_TRUE(target_->BeginReadOnly().ok());
  EXPECT_EQ(Value("SELECT COUNT(*) FROM traffic"), "0");
  // The application's write goes through while the read is open (SQLite
  // would wait for the reader only at its commit in rollback-journal mode,
  // so this is a write inside a transaction of its own, committed later).
  ASSERT_TRUE((*application)->Begin().ok());
  EXPECT_TRUE((*application)->Execute("INSERT INTO traffic VALUES (1)").ok());
  EXPECT_TRUE(target_->Rollback().ok());
  EXPECT_TRUE((*application)->Commit().ok());
  EXPECT_EQ(Value("SELECT COUNT(*) FROM traffic"), "1");
}

TEST_P(TargetTest, EnsureTableCreatesAMissingTableOnce) {
  absl::StatusOr<bool> exists = target_->TableExists("agent_own");
  ASSERT_TRUE(exists.ok()) << exists.status();
  EXPECT_FALSE(*exists);
  EXPECT_TRUE(
      target_->EnsureTable("agent_own", "CREATE TABLE agent_own (id INTEGER)")
          .ok());
  exists = target_->TableExists("agent_own");
  ASSERT_TRUE(exists.ok()) << exists.status();
  EXPECT_TRUE(*exists);
  // There already: the statement is not run again.
  EXPECT_TRUE(target_->EnsureTable("agent_own", "not a statement").ok());
  // Missing and not made: the database's refusal, with the table named.
  const absl::Status refused =
      target_->EnsureTable("agent_missing", "not a statement");
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("creating table agent_missing"));
}

TEST_P(TargetTest, TableExistsBindsTheName) {
  Exec("CREATE TABLE agent_own (id INTEGER)");
  // Pasted into the SQL this would find a table; bound, it is a name that
  // matches none (PostgreSQL may refuse it as a name, which is as safe).
  absl::StatusOr<bool> exists = target_->TableExists("agent_own' OR '1' = '1");
  EXPECT_FALSE(exists.ok() && *exists);
}

TEST_P(TargetTest, FailuresCarryTheDatabaseMessageAndItsClass) {
  absl::StatusOr<QueryResult> missing =
      target_->Query("SELECT * FROM no_such_table");
  ASSERT_FALSE(missing.ok());
  // SOCI's ODBC backend describes a row's columns before it runs the
  // statement and reports its own "Failed to get result columns count".
  if (!odbc()) {
    EXPECT_THAT(std::string(missing.status().message()),
                ::testing::HasSubstr("no_such_table"));
  }
  const absl::Status annotated =
      WithContext("reading things", missing.status());
  EXPECT_EQ(annotated.code(), missing.status().code());
  EXPECT_TRUE(absl::StartsWith(annotated.message(), "reading things: "))
      << annotated;
  EXPECT_TRUE(WithContext("anything", absl::OkStatus()).ok());

  Exec("CREATE TABLE unique_things (id INTEGER PRIMARY KEY)");
  Exec("INSERT INTO unique_things VALUES (1)");
  const absl::Status duplicate = target_->Execute(
      "INSERT INTO unique_things VALUES (:id)", {SqlParam::Int("id", 1)});
  EXPECT_FALSE(duplicate.ok());
}

TEST_P(TargetTest, RunStatementClassifiesFailures) {
  Exec("CREATE TABLE unique_things (id INTEGER PRIMARY KEY)");
  SqlError error;
  absl::StatusOr<int64_t> inserted =
      target_->RunStatement("INSERT INTO unique_things VALUES (1)", &error);
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  EXPECT_EQ(*inserted, 1);

  absl::StatusOr<int64_t> duplicate =
      target_->RunStatement("INSERT INTO unique_things VALUES (1)", &error);
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kFailedPrecondition)
      << duplicate.status();
  EXPECT_FALSE(error.message.empty());
  if (!sqlite()) {
    EXPECT_EQ(error.sql_state, "23505");
  }

  error = SqlError();
  absl::StatusOr<int64_t> syntax =
      target_->RunStatement("SELEC nothing", &error);
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInvalidArgument)
      << syntax.status();
  EXPECT_FALSE(error.message.empty());
}

TEST_P(TargetTest, RunStatementSendsTheTextUntouched) {
  if (sqlite()) {
    // Every statement of the text runs; ":name" is no parameter marker.
    SqlError error;
    ASSERT_TRUE(
        target_
            ->RunStatement("CREATE TABLE raw (t TEXT); INSERT INTO raw VALUES "
                           "(':name'); INSERT INTO raw VALUES ('$1');",
                           &error)
            .ok())
        << error.message;
    EXPECT_EQ(Value("SELECT COUNT(*) FROM raw"), "2");
    return;
  }
  SqlError error;
  ASSERT_TRUE(target_->RunStatement("CREATE TABLE raw (t TEXT)", &error).ok())
      << error.message;
  ASSERT_TRUE(
      target_->RunStatement("INSERT INTO raw VALUES (':name')", &error).ok())
      << error.message;
  EXPECT_EQ(Value("SELECT t FROM raw"), ":name");
}

TEST_P(TargetTest, RunScalarReturnsTheFirstValueOrNothing) {
  SqlError error;
  absl::StatusOr<std::optional<std::string>> value =
      target_->RunScalar("SELECT 'x'", &error);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, std::optional<std::string>("x"));
  absl::StatusOr<std::optional<std::string>> null =
      target_->RunScalar("SELECT NULL", &error);
  ASSERT_TRUE(null.ok()) << null.status();
  EXPECT_FALSE(null->has_value());
}

TEST_P(TargetTest, InterruptStopsTheRunningStatement) {
  if (odbc()) GTEST_SKIP() << "ODBC targets cannot be interrupted";
  std::atomic<bool> done{false};
  // Interrupt until the statement has ended: an interrupt before it starts
  // would be lost.
  std::thread interrupter([&] {
    while (!done.load()) {
      target_->Interrupt();
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  SqlError error;
  absl::StatusOr<int64_t> result =
      target_->RunStatement(SlowStatement(), &error);
  done.store(true);
  interrupter.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled)
      << result.status();
  // The connection is usable afterwards.
  EXPECT_EQ(Value("SELECT 1"), "1");
}

TEST_P(TargetTest, LimitsStopAStatementAtTheDeadlineOrOnCancel) {
  if (odbc()) GTEST_SKIP() << "ODBC deadlines are the driver's, best effort";
  SqlError error;
  target_->SetLimits(absl::Now() + absl::Milliseconds(200), nullptr,
                     /*in_transaction=*/false);
  absl::StatusOr<int64_t> result =
      target_->RunStatement(SlowStatement(), &error);
  target_->ClearLimits();
  // SQLite's progress handler interrupts; PostgreSQL's statement_timeout says
  // it was the deadline.
  EXPECT_EQ(result.status().code(), sqlite()
                                        ? absl::StatusCode::kCancelled
                                        : absl::StatusCode::kDeadlineExceeded)
      << result.status();

  if (sqlite()) {
    // The cancel flag is read by the running statement.
    std::atomic<bool> cancelled{true};
    target_->SetLimits(absl::InfiniteFuture(), &cancelled, false);
    result = target_->RunStatement(SlowStatement(), &error);
    target_->ClearLimits();
    EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled)
        << result.status();
  }
  // Without limits statements run to their end again.
  EXPECT_EQ(Value("SELECT 1"), "1");
}

TEST_P(TargetTest, ClearLimitsRestoresTheSessionStatementTimeout) {
  if (!libpq()) GTEST_SKIP() << "statement_timeout is PostgreSQL's";
  Exec("SET statement_timeout = '5s'");
  target_->SetLimits(absl::Now() + absl::Minutes(1), nullptr, false);
  SqlError error;
  ASSERT_TRUE(target_->RunStatement("SELECT 1", &error).ok()) << error.message;
  EXPECT_NE(Value("SHOW statement_timeout"), "5s");
  target_->ClearLimits();
  EXPECT_EQ(Value("SHOW statement_timeout"), "5s");
}

TEST_P(TargetTest, NoticesReachTheHandler) {
  if (!libpq()) GTEST_SKIP() << "only libpq connections have notices";
  std::vector<std::string> notices;
  target_->SetNoticeHandler(
      [&](const std::string& text) { notices.push_back(text); });
  SqlError error;
  ASSERT_TRUE(
      target_
          ->RunStatement("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; "
                         "RAISE WARNING 'careful'; END $$",
                         &error)
          .ok())
      << error.message;
  EXPECT_THAT(notices, ::testing::ElementsAre("NOTICE: hello from plpgsql",
                                              "WARNING: careful"));
  target_->SetNoticeHandler(nullptr);
  ASSERT_TRUE(
      target_
          ->RunStatement("DO $$ BEGIN RAISE NOTICE 'unheard'; END $$", &error)
          .ok());
  EXPECT_EQ(notices.size(), 2u);
}

TEST_P(TargetTest, StoredDatabaseIdReadsWithoutCreating) {
  absl::StatusOr<std::optional<std::string>> none = target_->StoredDatabaseId();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  absl::StatusOr<std::optional<std::string>> still =
      target_->StoredDatabaseId();
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_FALSE(still->has_value());

  absl::StatusOr<std::string> id = target_->EnsureDatabaseId("");
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<std::optional<std::string>> stored =
      target_->StoredDatabaseId();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, std::optional<std::string>(*id));
}

TEST_P(TargetTest, BackupHooksBelongToTheirEngine) {
  absl::StatusOr<ToolConnection> tools = target_->ConnectionForTools();
  if (libpq()) {
    ASSERT_TRUE(tools.ok()) << tools.status();
    bool has_dbname = false;
    for (const auto& [keyword, value] : tools->parameters) {
      EXPECT_NE(keyword, "password");
      has_dbname |= keyword == "dbname";
    }
    EXPECT_TRUE(has_dbname);
  } else {
    EXPECT_EQ(tools.status().code(), absl::StatusCode::kInternal);
  }

  if (!sqlite()) {
    EXPECT_EQ(target_->CopyFromFile("/nonexistent").code(),
              absl::StatusCode::kInternal);
    return;
  }
  // A second SQLite file with a table of its own replaces the target's
  // content through the open connection.
  const std::string file =
      absl::StrCat(TempDir(), "/", TestName(), "-source.db");
  std::remove(file.c_str());
  {
    absl::StatusOr<std::unique_ptr<Target>> source =
        OpenTarget(absl::StrCat("sqlite://", file));
    ASSERT_TRUE(source.ok()) << source.status();
    ASSERT_TRUE((*source)->Execute("CREATE TABLE copied (id INTEGER)").ok());
    ASSERT_TRUE((*source)->Execute("INSERT INTO copied VALUES (7)").ok());
  }
  Exec("CREATE TABLE replaced (id INTEGER)");
  ASSERT_TRUE(target_->CopyFromFile(file).ok());
  EXPECT_EQ(Value("SELECT id FROM copied"), "7");
  EXPECT_FALSE(target_->Query("SELECT id FROM replaced").ok());
  EXPECT_EQ(target_->CopyFromFile(file + ".missing").code(),
            absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Engines, TargetTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kOdbc),
                         [](const auto& info) {
                           switch (info.param) {
                             case Engine::kSqlite:
                               return std::string("Sqlite");
                             case Engine::kPostgresql:
                               return std::string("Postgresql");
                             default:
                               return std::string("Odbc");
                           }
                         });

}  // namespace
}  // namespace ecliptix::agent
