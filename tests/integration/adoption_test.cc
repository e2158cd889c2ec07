// Databases that already hold data, driven the way a DBA would: the real
// server, a real agent and ecliptixctl over loopback, on a SQLite file and on
// the test PostgreSQL.
//
//  - A database where the runbook was run by hand (the Ecliptix tables with
//    rows, the infrastructure and procedures created by applying the bundle's
//    SQL with sqlite3 / psql before the agent starts) is refused without
//    adoption, then adopted: every step BASELINED, nothing run.
//  - A new bundle version that changes a procedure and has a broken step,
//    rolled out with --auto_rollback=failed: the rollout fails, every row is
//    still there, and the earlier procedures still answer (the changed
//    procedure got its previous body back).
//  - `rollout rollback --restore`: each changed database is exactly as it was
//    before the rollout, and a rollout without backups cannot be restored.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/sql/session.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tests/testing/query.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;
using ::testing::AllOf;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

enum class Engine { kSqlite, kPostgresql };

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

class AdoptionTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/adoption-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (postgresql()) {
      if (!testing::PostgresAdminUrl().has_value()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test "
                        "sets it)";
      }
      auto scratch = testing::CreateScratchDatabase("adoption");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url_ = scratch->url;
    } else {
      url_ = absl::StrCat("sqlite://", dir_, "/ecliptix.db");
    }
    v1_dir_ = testing::PlainRunfilesCopy("bundles/ecliptix", "bundle-v1");
  }

  void TearDown() override {
    if (agent_ != nullptr) agent_->Signal(SIGTERM);
    if (server_ != nullptr) server_->Signal(SIGTERM);
  }

  bool postgresql() const { return GetParam() == Engine::kPostgresql; }
  std::string dialect() const { return postgresql() ? "postgresql" : "sqlite"; }
  std::string table(const std::string& name) const {
    return postgresql() ? absl::StrCat("dbo.", name) : name;
  }

  // Runs a SQL file of the bundle against the database with the engine's own
  // command-line tool, as a DBA following the runbook by hand would.
  void ApplyByHand(const std::string& file) {
    const std::string path = absl::StrCat(v1_dir_, "/", dialect(), "/", file);
    std::vector<std::string> argv;
    if (postgresql()) {
      argv = {"/usr/bin/psql",
              "--no-psqlrc",
              "--quiet",
              "--set=ON_ERROR_STOP=1",
              absl::StrCat("--dbname=", url_),
              absl::StrCat("--file=", path)};
    } else {
      argv = {"/usr/bin/sqlite3", "-bail", absl::StrCat(dir_, "/ecliptix.db"),
              absl::StrCat(".read ", path)};
    }
    auto result = RunCommand(argv, absl::Seconds(60));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->exit_code, 0) << file << ": " << result->output;
  }

  testing::CommandResult Agent(std::vector<std::string> args) {
    args.insert(args.begin(), RunfilePath("agent/ecliptix-agent"));
    auto result = RunCommand(args, absl::Seconds(120));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  testing::CommandResult Call(const std::string& bundle_dir,
                              const std::string& operation,
                              const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"call",
                                     absl::StrCat("--bundle=", bundle_dir),
                                     absl::StrCat("--database=", url_),
                                     absl::StrCat("--operation=", operation)};
    for (const std::string& arg : args)
      argv.push_back(absl::StrCat("--arg=", arg));
    return Agent(argv);
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {RunfilePath("client/ecliptixctl"),
                               absl::StrCat("--server=127.0.0.1:", port_)});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  std::string Scalar(const std::string& sql) {
    return testing::QueryScalar(url_, sql);
  }

  // Row counts of the tables that hold the application's data.
  std::map<std::string, std::string> RowCounts() {
    std::map<std::string, std::string> counts;
    for (const char* name :
         {"Memberships", "LoginAttempts", "AuditLog", "SystemConfiguration",
          "AuthenticationContexts", "PerformanceMetrics"}) {
      counts[name] = Scalar(absl::StrCat("SELECT COUNT(*) FROM ", table(name)));
    }
    return counts;
  }

  // The database as the runbook leaves it when run by hand, with data.
  void MakeProductionLike() {
    for (const char* file :
         {"001_baseline.sql", "002_production_infrastructure.sql",
          "003_deployment_validation.sql", "004_auth_context_procedures.sql",
          "005_memberships_procedures.sql",
          "006_verification_flow_procedures.sql", "007_core_functions.sql"}) {
      ApplyByHand(file);
    }
    for (const char* phone : {"+15550101", "+15550102", "+15550103"}) {
      auto created = Call(
          v1_dir_, "CreateMembership",
          {absl::StrCat("PhoneNumber=", phone), "SecureKey=0123456789abcdef"});
      ASSERT_EQ(created.exit_code, 0) << created.output;
    }
    auto login = Call(v1_dir_, "LoginMembership",
                      {"PhoneNumber=+15550101", "SecureKey=wrong-key-123"});
    ASSERT_EQ(login.exit_code, 0) << login.output;
    EXPECT_EQ(
        Scalar(absl::StrCat("SELECT COUNT(*) FROM ", table("Memberships"))),
        "3");
  }

  void StartServerAndAgent() {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=5s"},
        absl::StrCat(dir_, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      return (port_ = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    auto agent =
        ChildProcess::Start({RunfilePath("agent/ecliptix-agent"),
                             absl::StrCat("--server=127.0.0.1:", port_),
                             absl::StrCat("--database=", url_),
                             "--labels=env=prod", "--database_id=prod-1",
                             "--initial_backoff=100ms", "--max_backoff=500ms",
                             absl::StrCat("--backup_dir=", dir_, "/backups")},
                            absl::StrCat(dir_, "/agent.log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = std::make_unique<ChildProcess>(std::move(*agent));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    rollouts_ = v1::RolloutService::NewStub(channel_);
    auto fleet = v1::FleetService::NewStub(channel_);
    ASSERT_TRUE(WaitFor([&] {
      grpc::ClientContext context;
      v1::GetDatabaseRequest request;
      request.set_database_id("prod-1");
      v1::Database database;
      return fleet->GetDatabase(&context, request, &database).ok() &&
             database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
    })) << agent_->Output();
  }

  // The bundle pushed, by ecliptixctl; returns its id.
  std::string Push(const std::string& bundle_dir) {
    auto pushed = Ctl({"bundle", "push", bundle_dir, "-o", "json"});
    EXPECT_EQ(pushed.exit_code, 0) << pushed.output;
    const size_t at = pushed.output.find("sha256:");
    EXPECT_NE(at, std::string::npos) << pushed.output;
    return at == std::string::npos ? "" : pushed.output.substr(at, 71);
  }

  // The newest rollout, whole (listings leave the targets out).
  v1::Rollout LatestRollout() {
    v1::ListRolloutsResponse listed;
    {
      grpc::ClientContext context;
      EXPECT_TRUE(
          rollouts_->ListRollouts(&context, v1::ListRolloutsRequest(), &listed)
              .ok());
    }
    if (listed.rollouts_size() == 0) return v1::Rollout();
    return Get(listed.rollouts(0).rollout_id());
  }

  v1::Rollout Get(const std::string& rollout_id) {
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(rollout_id);
    v1::Rollout rollout;
    EXPECT_TRUE(rollouts_->GetRollout(&context, request, &rollout).ok());
    return rollout;
  }

  // Whether a table exists (names as the bundle spells them).
  bool Exists(const std::string& name) {
    return Scalar(postgresql()
                      ? absl::StrCat("SELECT COUNT(*) FROM pg_class WHERE "
                                     "relkind = 'r' AND relname = lower('",
                                     name, "')")
                      : absl::StrCat("SELECT COUNT(*) FROM sqlite_master "
                                     "WHERE type = 'table' AND name = '",
                                     name, "'")) != "0";
  }

  // History rows in effect, by outcome.
  std::string CurrentOutcomes() {
    return Scalar(
        "SELECT COUNT(*) || ' ' || MIN(outcome) || ' ' || MAX(outcome) FROM "
        "ecliptix_schema_history WHERE is_current = 1");
  }

  std::string dir_;
  std::string url_;
  std::string v1_dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<ChildProcess> agent_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
};

TEST_P(AdoptionTest, HandRunDatabaseIsAdoptedAndABrokenReleaseLosesNoRow) {
  MakeProductionLike();
  const std::map<std::string, std::string> before = RowCounts();
  StartServerAndAgent();
  const std::string v1_id = Push(v1_dir_);

  // Without adoption: refused before anything runs, saying how to adopt.
  auto refused =
      Ctl({"rollout", "create", v1_id, "--selector=env=prod", "--watch"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  v1::Rollout rollout = LatestRollout();
  EXPECT_EQ(rollout.state(), v1::ROLLOUT_STATE_FAILED);
  ASSERT_EQ(rollout.targets_size(), 1);
  EXPECT_THAT(rollout.targets(0).error(),
              AllOf(HasSubstr("already exist"), HasSubstr("--adopt")));
  EXPECT_EQ(RowCounts(), before);

  // Adopted: every step baselined, nothing run, no row touched.
  auto adopted = Ctl({"rollout", "create", v1_id, "--selector=env=prod",
                      "--adopt", "--backup", "--watch"});
  ASSERT_EQ(adopted.exit_code, 0) << adopted.output;
  EXPECT_THAT(adopted.output, HasSubstr("baselined"));
  EXPECT_EQ(CurrentOutcomes(), "7 BASELINED BASELINED");
  EXPECT_EQ(RowCounts(), before);
  const std::string adoption_id = LatestRollout().rollout_id();

  // Version 2 changes a procedure and breaks another.
  const std::string v2_dir = absl::StrCat(dir_, "/bundle-v2");
  fs::copy(v1_dir_, v2_dir, fs::copy_options::recursive);
  const fs::path manifest = fs::path(v2_dir) / "manifest.textproto";
  WriteFile(manifest, absl::StrReplaceAll(
                          ReadFile(manifest),
                          {{"version: \"1.0.0\"", "version: \"2.0.0\""}}));
  const fs::path changed =
      fs::path(v2_dir) / dialect() / "005_memberships_procedures.sql";
  WriteFile(changed, ReadFile(changed) + "\n-- 2.0.0: reviewed.\n");
  const fs::path broken =
      fs::path(v2_dir) / dialect() / "006_verification_flow_procedures.sql";
  WriteFile(broken,
            ReadFile(broken) + "\nINSERT INTO NoSuchTable VALUES (1);\n");
  const std::string v2_id = Push(v2_dir);

  auto release = Ctl({"rollout", "create", v2_id, "--selector=env=prod",
                      "--auto_rollback=failed", "--watch"});
  EXPECT_EQ(release.exit_code, 1) << release.output;
  ASSERT_TRUE(WaitFor([&] {
    return LatestRollout().targets(0).state() == v1::TARGET_STATE_ROLLED_BACK;
  })) << LatestRollout().DebugString();
  rollout = LatestRollout();
  EXPECT_EQ(rollout.state(), v1::ROLLOUT_STATE_FAILED);
  EXPECT_THAT(absl::AsciiStrToLower(release.output), HasSubstr("nosuchtable"));

  // Every row is still there.
  EXPECT_EQ(RowCounts(), before);
  // The changed procedure has version 1's body again, and is recorded so.
  EXPECT_EQ(Scalar("SELECT bundle_version FROM ecliptix_schema_history WHERE "
                   "is_current = 1 AND step = 'memberships-procedures'"),
            "1.0.0");
  // The earlier procedures answer.
  auto login = Call(v1_dir_, "LoginMembership",
                    {"PhoneNumber=+15550102", "SecureKey=0123456789abcdef"});
  EXPECT_EQ(login.exit_code, 0) << login.output;
  auto created = Call(v1_dir_, "CreateMembership",
                      {"PhoneNumber=+15550104", "SecureKey=0123456789abcdef"});
  EXPECT_EQ(created.exit_code, 0) << created.output;
  auto config = Call(v1_dir_, "GetConfigValue",
                     {"ConfigKey=Authentication.MaxFailedAttempts"});
  EXPECT_EQ(config.exit_code, 0) << config.output;
  EXPECT_THAT(config.output, HasSubstr("5"));

  // An emergency rollback of the adoption reverts nothing: the adopted
  // objects were there before.
  const std::map<std::string, std::string> now = RowCounts();
  auto rollback = Ctl({"rollout", "rollback", adoption_id});
  EXPECT_EQ(rollback.exit_code, 0) << rollback.output;
  ASSERT_TRUE(WaitFor([&] {
    return Get(adoption_id).state() == v1::ROLLOUT_STATE_ROLLED_BACK;
  })) << Get(adoption_id).DebugString();
  EXPECT_EQ(RowCounts(), now);
  EXPECT_EQ(CurrentOutcomes().substr(0, 1), "7");
}

TEST_P(AdoptionTest, RestoreRollbackBringsBackThePreRolloutDatabase) {
  // The application's own data, before any Ecliptix object.
  {
    auto parsed = sql::ParseDatabaseUrl(url_);
    auto session = sql::OpenSession(*parsed);
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE(sql::Guard("seed", [&] {
                  **session << "CREATE TABLE IF NOT EXISTS customers (id "
                               "INTEGER)";
                  **session << "INSERT INTO customers VALUES (1)";
                  **session << "INSERT INTO customers VALUES (2)";
                }).ok());
  }
  StartServerAndAgent();
  const std::string v1_id = Push(v1_dir_);

  // Without backups there is nothing to restore: said so, nothing changes.
  auto plain =
      Ctl({"rollout", "create", v1_id, "--selector=env=prod", "--watch"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  auto no_backup =
      Ctl({"rollout", "rollback", LatestRollout().rollout_id(), "--restore"});
  EXPECT_EQ(no_backup.exit_code, 0) << no_backup.output;
  ASSERT_TRUE(WaitFor([&] {
    return LatestRollout().state() == v1::ROLLOUT_STATE_FAILED;
  })) << LatestRollout().DebugString();
  EXPECT_THAT(LatestRollout().targets(0).error(), HasSubstr("no backup"));
  EXPECT_EQ(Scalar(absl::StrCat("SELECT COUNT(*) FROM ",
                                table("SystemConfiguration"))),
            "9");

  // Back to a database without Ecliptix objects, by hand, then a rollout
  // that takes backups.
  auto reverted = Ctl({"rollout", "rollback", LatestRollout().rollout_id(),
                       "--accept_data_loss"});
  ASSERT_EQ(reverted.exit_code, 0) << reverted.output;
  ASSERT_TRUE(WaitFor([&] {
    return LatestRollout().state() == v1::ROLLOUT_STATE_ROLLED_BACK;
  })) << LatestRollout().DebugString();
  auto with_backup = Ctl({"rollout", "create", v1_id, "--selector=env=prod",
                          "--backup", "--watch"});
  ASSERT_EQ(with_backup.exit_code, 0) << with_backup.output;
  EXPECT_TRUE(Exists("SystemConfiguration"));
  // Written after the rollout: discarded by the restore, as documented.
  {
    auto parsed = sql::ParseDatabaseUrl(url_);
    auto session = sql::OpenSession(*parsed);
    ASSERT_TRUE(session.ok());
    ASSERT_TRUE(sql::Guard("write", [&] {
                  **session << "CREATE TABLE written_later (id INTEGER)";
                }).ok());
  }

  auto restore = Ctl({"rollout", "rollback", LatestRollout().rollout_id(),
                      "--restore", "--reason=emergency"});
  ASSERT_EQ(restore.exit_code, 0) << restore.output;
  ASSERT_TRUE(WaitFor([&] {
    return LatestRollout().state() == v1::ROLLOUT_STATE_ROLLED_BACK;
  })) << LatestRollout().DebugString();
  EXPECT_EQ(LatestRollout().targets(0).state(), v1::TARGET_STATE_ROLLED_BACK);
  // Exactly the pre-rollout database: the customers, no Ecliptix object,
  // nothing created since.
  EXPECT_EQ(Scalar("SELECT COUNT(*) FROM customers"), "2");
  EXPECT_FALSE(Exists("SystemConfiguration"));
  EXPECT_FALSE(Exists("Memberships"));
  EXPECT_FALSE(Exists("written_later"));
}

INSTANTIATE_TEST_SUITE_P(Engines, AdoptionTest,
                         ::testing::Values(Engine::kSqlite,
                                           Engine::kPostgresql),
                         [](const ::testing::TestParamInfo<Engine>& info) {
                           return info.param == Engine::kSqlite ? "Sqlite"
                                                                : "Postgresql";
                         });

}  // namespace
}  // namespace ecliptix
