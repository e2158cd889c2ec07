// Deployment commands over the real control stream: the server sends run-phase,
// revert-phase and backup commands to a real agent process, which fetches the
// bundle from BundleService, executes it on its SQLite database and streams
// events back.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::AllOf;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::WaitFor;

v1::BundleFile File(const std::string& path, const std::string& content) {
  v1::BundleFile file;
  file.set_path(path);
  file.set_content(content);
  return file;
}

std::vector<v1::BundleFile> DemoBundle(const std::string& version,
                                       const std::string& second_step) {
  return {
      File("manifest.textproto", absl::StrCat(R"(name: "demo"
version: ")",
                                              version, R"("
dialects: DIALECT_SQLITE
require_revert: true
phases {
  name: "schema"
  steps {
    name: "accounts"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/accounts.sql" }
    revert { sqlite: "sqlite/accounts.revert.sql" }
    verify { query { sqlite: "SELECT COUNT(*) FROM accounts" } expect: "2" }
    success_message: "accounts created"
  }
  steps {
    name: "audit"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/audit.sql" }
    revert { sqlite: "sqlite/audit.revert.sql" }
  }
}
)")),
      File("sqlite/accounts.sql",
           "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT "
           "NULL);\n"
           "INSERT INTO accounts (name) VALUES ('alice');\n"
           "INSERT INTO accounts (name) VALUES ('bob');\n"),
      File("sqlite/accounts.revert.sql", "DROP TABLE accounts;\n"),
      File("sqlite/audit.sql", second_step),
      File("sqlite/audit.revert.sql", "DROP TABLE audit;\n"),
  };
}

class DeploymentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/deployment-", ++counter);
    std::filesystem::create_directories(dir_);
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.store_url = absl::StrCat("sqlite://", dir_, "/state.db");
    auto server = server::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->registry().AddCommandObserver(
        [this](const std::string& database_id,
               const v1::AgentMessage& message) {
          absl::MutexLock lock(&mutex_);
          messages_.push_back(message);
        });
    database_path_ = dir_ + "/target.db";
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", server_->port()),
         absl::StrCat("--database=sqlite://", database_path_),
         "--database_id=target",
         absl::StrCat("--backup_dir=", dir_, "/backups")},
        dir_ + "/agent.log");
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = std::make_unique<ChildProcess>(std::move(*agent));
    ASSERT_TRUE(WaitFor([&] {
      auto database = server_->registry().GetDatabase("target");
      return database.ok() &&
             database->connection_state() == v1::CONNECTION_STATE_CONNECTED;
    })) << agent_->Output();
  }

  std::string Push(const std::vector<v1::BundleFile>& files) {
    auto info = server_->bundles().Upload(files);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->bundle_id() : "";
  }

  // Sends a command and waits for its finished event; returns the command's
  // events.
  std::vector<v1::CommandEvent> Run(v1::Command command, v1::Status* finished) {
    auto id = server_->registry().SendCommand("target", command);
    EXPECT_TRUE(id.ok()) << id.status();
    std::vector<v1::CommandEvent> events;
    EXPECT_TRUE(WaitFor(
        [&] {
          absl::MutexLock lock(&mutex_);
          for (const auto& message : messages_) {
            if (message.command_event().command_id() == *id &&
                message.command_event().has_finished()) {
              return true;
            }
          }
          return false;
        },
        absl::Seconds(60)))
        << agent_->Output();
    absl::MutexLock lock(&mutex_);
    for (const auto& message : messages_) {
      if (message.has_command_event() &&
          message.command_event().command_id() == *id) {
        if (message.command_event().has_finished()) {
          *finished = message.command_event().finished();
        } else {
          events.push_back(message.command_event());
        }
      }
    }
    return events;
  }

  std::vector<v1::CommandEvent> RunPhase(const std::string& bundle_id,
                                         v1::Status* finished,
                                         bool backup_first = false) {
    v1::Command command;
    command.mutable_run_phase()->set_bundle_id(bundle_id);
    command.mutable_run_phase()->set_phase("schema");
    command.mutable_run_phase()->set_backup_first(backup_first);
    return Run(command, finished);
  }

  // Reads the target database directly, as a DBA would.
  std::string Query(const std::string& sql) {
    auto url = sql::ParseDatabaseUrl(absl::StrCat("sqlite://", database_path_));
    auto session = sql::OpenSession(*url);
    EXPECT_TRUE(session.ok()) << session.status();
    std::string value;
    soci::indicator indicator;
    absl::Status status = sql::Guard(
        "query", [&] { **session << sql, soci::into(value, indicator); });
    if (!status.ok()) return absl::StrCat("error: ", status.message());
    return indicator == soci::i_null ? "null" : value;
  }

  static std::vector<std::string> Outcomes(
      const std::vector<v1::CommandEvent>& events) {
    std::vector<std::string> outcomes;
    for (const auto& event : events) {
      const v1::DeploymentEvent& deployment = event.deployment();
      if (deployment.has_step_finished()) {
        outcomes.push_back(absl::StrCat(
            deployment.step(), ":",
            v1::StepOutcome_Name(deployment.step_finished().outcome())));
      }
      if (deployment.has_step_failed())
        outcomes.push_back(absl::StrCat(deployment.step(), ":FAILED"));
    }
    return outcomes;
  }

  std::string dir_;
  std::string database_path_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<ChildProcess> agent_;
  absl::Mutex mutex_;
  std::vector<v1::AgentMessage> messages_ ABSL_GUARDED_BY(mutex_);
};

TEST_F(DeploymentTest, RunPhaseAppliesOnceAndRevertUndoes) {
  const std::string bundle_id = Push(DemoBundle(
      "1.0.0", "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);\n"));
  v1::Status finished;
  auto events = RunPhase(bundle_id, &finished, /*backup_first=*/true);
  EXPECT_EQ(finished.code(), 0) << finished.message() << agent_->Output();
  EXPECT_THAT(Outcomes(events),
              ::testing::ElementsAre("accounts:STEP_OUTCOME_APPLIED",
                                     "audit:STEP_OUTCOME_APPLIED"));
  bool backed_up = false, noticed = false;
  for (const auto& event : events) {
    backed_up |= event.deployment().has_backup_completed();
    noticed |= event.deployment().notice() == "accounts created";
  }
  EXPECT_TRUE(backed_up);
  EXPECT_TRUE(noticed);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM accounts"), "2");

  // Again: nothing runs.
  events = RunPhase(bundle_id, &finished);
  EXPECT_EQ(finished.code(), 0) << finished.message();
  EXPECT_THAT(Outcomes(events),
              ::testing::ElementsAre("accounts:STEP_OUTCOME_SKIPPED",
                                     "audit:STEP_OUTCOME_SKIPPED"));
  EXPECT_EQ(Query("SELECT COUNT(*) FROM accounts"), "2");

  // The revert would drop accounts with its rows: refused, naming them and
  // the backup taken before the phase, until the loss is accepted.
  v1::Command revert;
  revert.mutable_revert_phase()->set_bundle_id(bundle_id);
  revert.mutable_revert_phase()->set_phase("schema");
  Run(revert, &finished);
  EXPECT_EQ(finished.code(),
            static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << finished.message();
  EXPECT_THAT(finished.message(),
              AllOf(HasSubstr("accounts (2 rows)"), HasSubstr("backup ")));
  EXPECT_EQ(Query("SELECT COUNT(*) FROM accounts"), "2");
  revert.mutable_revert_phase()->set_accept_data_loss(true);
  Run(revert, &finished);
  EXPECT_EQ(finished.code(), 0) << finished.message();
  EXPECT_THAT(Query("SELECT COUNT(*) FROM accounts"),
              HasSubstr("no such table"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM audit"), HasSubstr("no such table"));
}

TEST_F(DeploymentTest, FailingStepRollsBackAndNamesTheStatement) {
  const std::string bundle_id =
      Push(DemoBundle("1.0.0",
                      "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n"
                      "INSERT INTO audit (id) VALUES (1);\n"
                      "INSERT INTO no_such_table VALUES (1);\n"));
  v1::Status finished;
  auto events = RunPhase(bundle_id, &finished);
  EXPECT_NE(finished.code(), 0);
  EXPECT_THAT(
      Outcomes(events),
      ::testing::ElementsAre("accounts:STEP_OUTCOME_APPLIED", "audit:FAILED"));
  const v1::StepFailed* failure = nullptr;
  for (const auto& event : events) {
    if (event.deployment().has_step_failed())
      failure = &event.deployment().step_failed();
  }
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->file(), "sqlite/audit.sql");
  EXPECT_EQ(failure->statement_index(), 3);
  EXPECT_EQ(failure->line(), 3);
  EXPECT_THAT(failure->message(), HasSubstr("no_such_table"));
  EXPECT_TRUE(failure->rolled_back());
  // The failed step left nothing behind; the one before it stays applied.
  EXPECT_THAT(Query("SELECT COUNT(*) FROM audit"), HasSubstr("no such table"));
  EXPECT_EQ(Query("SELECT COUNT(*) FROM accounts"), "2");
}

TEST_F(DeploymentTest, CancelStopsTheRunningStepAndRollsItBack) {
  const std::string bundle_id =
      Push(DemoBundle("1.0.0",
                      "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n"
                      "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 "
                      "UNION ALL SELECT x + 1 FROM c "
                      "WHERE x < 500000000) SELECT count(*) AS n FROM c;\n"));
  v1::Command run;
  run.mutable_run_phase()->set_bundle_id(bundle_id);
  run.mutable_run_phase()->set_phase("schema");
  auto run_id = server_->registry().SendCommand("target", run);
  ASSERT_TRUE(run_id.ok());
  // Wait until the slow step runs.
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex_);
    for (const auto& message : messages_) {
      const auto& event = message.command_event();
      if (event.command_id() == *run_id &&
          event.deployment().step() == "audit" &&
          event.deployment().has_step_started()) {
        return true;
      }
    }
    return false;
  })) << agent_->Output();

  // A second deployment while one runs is refused, not queued.
  v1::Command other;
  other.mutable_backup();
  auto other_id = server_->registry().SendCommand("target", other);
  ASSERT_TRUE(other_id.ok());
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex_);
    for (const auto& message : messages_) {
      if (message.command_ack().command_id() == *other_id) {
        return message.command_ack().status().code() ==
               static_cast<int>(absl::StatusCode::kFailedPrecondition);
      }
    }
    return false;
  }));

  v1::Command cancel;
  cancel.mutable_cancel()->set_command_id(*run_id);
  v1::Status cancel_finished;
  Run(cancel, &cancel_finished);
  EXPECT_EQ(cancel_finished.code(), 0) << cancel_finished.message();
  v1::Status run_finished;
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex_);
    for (const auto& message : messages_) {
      if (message.command_event().command_id() == *run_id &&
          message.command_event().has_finished()) {
        run_finished = message.command_event().finished();
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(run_finished.code(), static_cast<int>(absl::StatusCode::kCancelled))
      << run_finished.message();
  // The interrupted step left nothing; the step before it stays applied.
  EXPECT_THAT(Query("SELECT COUNT(*) FROM slow"), HasSubstr("no such table"));
  EXPECT_THAT(Query("SELECT COUNT(*) FROM audit"), HasSubstr("no such table"));
  EXPECT_EQ(Query("SELECT COUNT(*) FROM accounts"), "2");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM ecliptix_schema_history WHERE step = "
                  "'audit' AND "
                  "is_current = 1 AND outcome = 'APPLIED'"),
            "0");

  // Cancelling what is not running is harmless.
  v1::Command stale;
  stale.mutable_cancel()->set_command_id("no-such-command");
  Run(stale, &cancel_finished);
  EXPECT_EQ(cancel_finished.code(), 0);
}

TEST_F(DeploymentTest, UnknownBundleIsAClearFailure) {
  v1::Status finished;
  RunPhase("sha256:" + std::string(64, 'a'), &finished);
  EXPECT_EQ(finished.code(), static_cast<int>(absl::StatusCode::kNotFound))
      << finished.message();
  EXPECT_THAT(finished.message(), HasSubstr("cannot fetch bundle"));
}

TEST_F(DeploymentTest, UnknownPhaseIsNotFound) {
  const std::string bundle_id = Push(
      DemoBundle("1.0.0", "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n"));
  v1::Command command;
  command.mutable_run_phase()->set_bundle_id(bundle_id);
  command.mutable_run_phase()->set_phase("nope");
  v1::Status finished;
  Run(command, &finished);
  EXPECT_EQ(finished.code(), static_cast<int>(absl::StatusCode::kNotFound))
      << finished.message();
}

}  // namespace
}  // namespace ecliptix
