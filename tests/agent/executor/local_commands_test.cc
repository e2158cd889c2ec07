// ecliptix-agent's local mode, run as people run it: the real binary, a bundle
// directory and a SQLite file, checking exit codes and what it prints.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kManifest[] =
    R"pb(name: "cli"
         version: "1.0.0"
         dialects: DIALECT_SQLITE
         phases {
           name: "one"
           steps {
             name: "create"
             kind: STEP_KIND_VERSIONED
             sql { sqlite: "sqlite/create.sql" }
             revert { sqlite: "sqlite/drop.sql" }
             success_message: "config created successfully"
           }
         }
         phases {
           name: "two"
           steps {
             name: "seed"
             kind: STEP_KIND_REPEATABLE
             sql { sqlite: "sqlite/seed.sql" }
           }
         }
         operations {
           name: "GetConfigValue"
           parameters { name: "Key" type: "text" }
           sql { sqlite: "SELECT v FROM config WHERE k = :Key" }
         }
         operations {
           name: "SetConfigValue"
           parameters { name: "Key" type: "text" }
           parameters { name: "Value" type: "text" }
           sql { sqlite: "INSERT INTO config (k, v) VALUES (:Key, :Value)" }
         }
    )pb";

class LocalCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(absl::StrCat(dir_, "/bundle/sqlite"));
    Write("manifest.textproto", kManifest);
    Write("sqlite/create.sql",
          "CREATE TABLE config (k TEXT PRIMARY KEY, v TEXT);\n"
          "INSERT INTO config VALUES ('a', '1');\n");
    Write("sqlite/drop.sql", "DROP TABLE config;\n");
    Write("sqlite/seed.sql",
          "INSERT OR REPLACE INTO config VALUES ('b', '2');\n");
    database_ = absl::StrCat("--database=sqlite://", dir_, "/target.db");
    bundle_ = absl::StrCat("--bundle=", dir_, "/bundle");
  }

  void Write(const std::string& path, const std::string& content) {
    std::ofstream(absl::StrCat(dir_, "/bundle/", path)) << content;
  }

  testing::CommandResult Agent(std::vector<std::string> args) {
    args.insert(args.begin(), testing::RunfilePath("agent/ecliptix-agent"));
    absl::StatusOr<testing::CommandResult> result = testing::RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  std::string dir_;
  std::string database_;
  std::string bundle_;
};

TEST_F(LocalCommandsTest, PlanApplyAndReapply) {
  testing::CommandResult plan = Agent({"plan", bundle_, database_});
  EXPECT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_THAT(plan.output, AllOf(HasSubstr("one/create: would run (new)"),
                                 HasSubstr("    CREATE TABLE config"),
                                 HasSubstr("two/seed: would run (new)"),
                                 HasSubstr("2 steps would run")));

  testing::CommandResult apply = Agent({"apply", bundle_, database_});
  EXPECT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_THAT(
      apply.output,
      AllOf(HasSubstr("one/create: started (versioned, 2 statements"),
            HasSubstr("  [1/2] ok (0 rows)"), HasSubstr("  [2/2] ok (1 row)"),
            HasSubstr("  config created successfully"),
            HasSubstr("one/create: applied in"),
            HasSubstr("done: 2 applied, 0 skipped")));

  testing::CommandResult again =
      Agent({"apply", bundle_, database_, "--phase=one"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output,
              AllOf(HasSubstr("one/create: skipped (already applied)"),
                    Not(HasSubstr("two/seed"))));

  testing::CommandResult history = Agent({"history", database_});
  EXPECT_EQ(history.exit_code, 0) << history.output;
  EXPECT_THAT(history.output, AllOf(HasSubstr("OUTCOME"), HasSubstr("APPLIED"),
                                    HasSubstr("create"), HasSubstr("seed")));
}

TEST_F(LocalCommandsTest, FailureNamesFileLineAndMessageAndExitsOne) {
  Write("sqlite/create.sql",
        "CREATE TABLE config (k TEXT PRIMARY KEY, v TEXT);\n\n"
        "INSERT INTO nowhere VALUES (1);\n");
  testing::CommandResult apply = Agent({"apply", bundle_, database_});
  EXPECT_EQ(apply.exit_code, 1) << apply.output;
  EXPECT_THAT(apply.output,
              AllOf(HasSubstr("one/create: FAILED at sqlite/create.sql:3 "
                              "(statement 2): no such table: nowhere "
                              "(rolled back)"),
                    Not(HasSubstr("two/seed"))));
}

TEST_F(LocalCommandsTest, RevertRepairCallAndBackup) {
  ASSERT_EQ(Agent({"apply", bundle_, database_}).exit_code, 0);

  testing::CommandResult call =
      Agent({"call", bundle_, database_, "--operation=SetConfigValue",
             "--arg=Key=Audit.RetentionDays", "--arg", "Value=it's 365"});
  EXPECT_EQ(call.exit_code, 0) << call.output;
  EXPECT_THAT(call.output, HasSubstr("1 row affected"));
  call = Agent({"call", bundle_, database_, "--operation=GetConfigValue",
                "--arg=Key=Audit.RetentionDays"});
  EXPECT_EQ(call.exit_code, 0) << call.output;
  EXPECT_THAT(call.output, AllOf(HasSubstr("it's 365"), HasSubstr("(1 row)")));
  EXPECT_EQ(Agent({"call", bundle_, database_, "--operation=GetConfigValue"})
                .exit_code,
            2);

  testing::CommandResult backup = Agent({"backup", database_});
  EXPECT_EQ(backup.exit_code, 0) << backup.output;
  EXPECT_THAT(backup.output, HasSubstr(".ecliptix-backups/"));

  // config holds rows: refused (exit 1) until the loss is accepted.
  testing::CommandResult revert =
      Agent({"revert", bundle_, database_, "--phase=one"});
  EXPECT_EQ(revert.exit_code, 1) << revert.output;
  EXPECT_THAT(revert.output,
              AllOf(HasSubstr("config ("), HasSubstr("--accept_data_loss")));
  revert = Agent(
      {"revert", bundle_, database_, "--phase=one", "--accept_data_loss"});
  EXPECT_EQ(revert.exit_code, 0) << revert.output;
  EXPECT_THAT(revert.output, AllOf(HasSubstr("one/create: reverted in"),
                                   HasSubstr("done: 1 reverted")));

  testing::CommandResult repair = Agent({"repair", bundle_, database_});
  EXPECT_EQ(repair.exit_code, 0) << repair.output;
  EXPECT_THAT(repair.output, HasSubstr("nothing to repair"));
}

// A failed call prints the database's message, never the values it was
// given (SOCI's own text would end with `with :Secret="..."`).
TEST_F(LocalCommandsTest, FailedCallNeverPrintsItsValues) {
  Write("manifest.textproto",
        R"pb(name: "guarded"
             version: "1.0.0"
             dialects: DIALECT_SQLITE
             dialects: DIALECT_POSTGRESQL
             phases {
               name: "one"
               steps {
                 name: "create"
                 kind: STEP_KIND_VERSIONED
                 sql { sqlite: "guarded.sql" postgresql: "guarded.sql" }
               }
             }
             operations {
               name: "Guard"
               parameters { name: "Secret" type: "text" }
               sql {
                 sqlite: "INSERT INTO guarded (k) VALUES (:Secret)"
                 postgresql: "INSERT INTO guarded (k) VALUES (:Secret)"
               }
             })pb");
  Write("guarded.sql",
        "CREATE TABLE guarded (k TEXT CHECK (length(k) < 3));\n");
  std::vector<std::string> databases = {database_};
  if (testing::PostgresAdminUrl().has_value()) {
    absl::StatusOr<testing::ScratchDatabase> scratch =
        testing::CreateScratchDatabase("localcall");
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    databases.push_back(absl::StrCat("--database=", scratch->url));
  }
  const std::string secret = "hunter2-Zq81-do-not-print";
  for (const std::string& database : databases) {
    SCOPED_TRACE(database);
    ASSERT_EQ(Agent({"apply", bundle_, database}).exit_code, 0);
    testing::CommandResult call =
        Agent({"call", bundle_, database, "--operation=Guard",
               absl::StrCat("--arg=Secret=", secret)});
    EXPECT_EQ(call.exit_code, 1) << call.output;
    EXPECT_THAT(call.output, Not(HasSubstr(secret)));
    EXPECT_THAT(absl::AsciiStrToLower(call.output),
                HasSubstr("check constraint"));
  }
}

TEST_F(LocalCommandsTest, RunJobPrintsEachBatch) {
  Write(
      "manifest.textproto",
      R"pb(name: "purge"
           version: "1.0.0"
           dialects: DIALECT_SQLITE
           phases {
             name: "one"
             steps {
               name: "items"
               kind: STEP_KIND_VERSIONED
               sql { sqlite: "sqlite/items.sql" }
             }
           }
           operations {
             name: "PurgeOld"
             batch { rows_done_column: "Deleted" rows_left_column: "Left" }
             parameters { name: "BatchSize" type: "int" default_value: "5" }
             sql {
               sqlite: "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE old = 1 ORDER BY id LIMIT :BatchSize);\n"
                       "SELECT changes() AS Deleted, (SELECT COUNT(*) FROM items WHERE old = 1) AS Left;\n"
             }
           }
           operations {
             name: "CountItems"
             sql {
               sqlite: "SELECT old, COUNT(*) AS Items FROM items GROUP BY old ORDER BY old"
             }
           })pb");
  Write("sqlite/items.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, old INTEGER);\n"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 25) INSERT INTO items (old) SELECT i <= 20 FROM n;\n");
  ASSERT_EQ(Agent({"apply", bundle_, database_}).exit_code, 0);
  const std::string bundle_dir = absl::StrCat("--bundle_dir=", dir_, "/bundle");

  testing::CommandResult job =
      Agent({"run-job", bundle_dir, database_, "--operation=PurgeOld",
             "--arg=BatchSize=7", "--pause=10ms"});
  EXPECT_EQ(job.exit_code, 0) << job.output;
  EXPECT_THAT(job.output,
              AllOf(HasSubstr("batch 1: 7 rows done, 13 left (7 in all"),
                    HasSubstr("batch 2: 7 rows done, 6 left (14 in all"),
                    HasSubstr("batch 3: 6 rows done, 0 left (20 in all"),
                    HasSubstr("done: nothing left")));
  job = Agent({"run-job", bundle_, database_, "--operation=PurgeOld"});
  EXPECT_EQ(job.exit_code, 0) << job.output;
  EXPECT_THAT(job.output, AllOf(HasSubstr("batch 1: 0 rows done, 0 left"),
                                HasSubstr("done: nothing left")));

  job = Agent({"run-job", bundle_, database_, "--operation=CountItems"});
  EXPECT_EQ(job.exit_code, 0) << job.output;
  EXPECT_THAT(job.output, AllOf(HasSubstr("Items"), HasSubstr("(1 row)")));

  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"run-job", bundle_, database_, "--operation=Nope"},
           {"run-job", bundle_, database_, "--operation=PurgeOld",
            "--arg=BatchSize=many"},
           {"run-job", bundle_, database_, "--operation=PurgeOld",
            "--pause=soon"},
           {"run-job", database_, "--operation=PurgeOld"},
       }) {
    testing::CommandResult result = Agent(args);
    EXPECT_EQ(result.exit_code, 2) << args.back() << ": " << result.output;
  }
}

TEST_F(LocalCommandsTest, UsageErrorsAreOneLineAndExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"apply", database_},
           {"apply", bundle_, database_, "--bogus=1"},
           {"apply", bundle_, database_, "--phase=nope"},
           {"apply", bundle_, "--database=mysql://x"},
           {"revert", bundle_, database_},
           {"frobnicate"},
           {"apply", bundle_, database_, "extra"},
           {"call", bundle_, database_, "--operation=GetConfigValue",
            "--arg=novalue"},
       }) {
    testing::CommandResult result = Agent(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.output;
    EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1)
        << result.output;
  }
}

TEST_F(LocalCommandsTest, DaemonModeIsUnchanged) {
  testing::CommandResult result = Agent({});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("--database is required"));
  result = Agent({"--database=sqlite:///tmp/x.db", "--nonsense=1"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("unknown flag --nonsense"));
}

}  // namespace
}  // namespace ecliptix::agent
