// The backup gate's one rule, end to end with the real server and real agents:
// the agent backs up SQLite and PostgreSQL itself (backup_first is the gate's
// evidence); it cannot back up databases reached through ODBC (SQL Server), so
// backup_first on such targets is refused at create and plan, saying to take
// the backup with the engine's own tools and have a named person attest the
// gate, and that attestation then holds the gate. The ODBC agent talks to the
// test PostgreSQL through its ODBC driver (ECLIPTIX_TEST_POSTGRES_URL).
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::WaitFor;

std::vector<v1::BundleFile> GateBundle() {
  auto file = [](const std::string& path, const std::string& content) {
    v1::BundleFile f;
    f.set_path(path);
    f.set_content(content);
    return f;
  };
  return {
      file("manifest.textproto", R"(name: "gated" version: "1.0.0"
dialects: DIALECT_SQLITE
dialects: DIALECT_POSTGRESQL
phases {
  name: "tables"
  steps {
    name: "work"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "work.sql" postgresql: "work.sql" }
  }
}
)"),
      file("work.sql", "CREATE TABLE gated_work (x INTEGER);\n"),
  };
}

class BackupGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/gate-", ++counter);
    std::filesystem::create_directories(dir_);
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
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                       grpc::InsecureChannelCredentials());
    fleet_ = v1::FleetService::NewStub(channel);
    bundles_ = v1::BundleService::NewStub(channel);
    rollouts_ = v1::RolloutService::NewStub(channel);
    v1::UploadBundleRequest upload;
    for (const v1::BundleFile& file : GateBundle()) *upload.add_files() = file;
    grpc::ClientContext context;
    v1::BundleInfo info;
    ASSERT_TRUE(bundles_->UploadBundle(&context, upload, &info).ok());
  }

  void StartAgent(const std::string& id, const std::string& url,
                  const std::string& labels) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=", url), absl::StrCat("--labels=", labels),
         absl::StrCat("--database_id=", id),
         absl::StrCat("--backup_dir=", dir_, "/backups-", id),
         "--initial_backoff=100ms", "--max_backoff=500ms"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[id] = std::make_unique<ChildProcess>(std::move(*agent));
  }

  std::string SqliteUrl(const std::string& id) {
    return absl::StrCat("sqlite://", dir_, "/", id, ".db");
  }

  void WaitConnected() {
    ASSERT_TRUE(WaitFor(
        [&] {
          grpc::ClientContext context;
          v1::ListDatabasesResponse response;
          if (!fleet_->ListDatabases(&context, {}, &response).ok())
            return false;
          int connected = 0;
          for (const auto& database : response.databases()) {
            connected +=
                database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
          }
          return connected == static_cast<int>(agents_.size());
        },
        absl::Seconds(30)))
        << server_->Output();
  }

  v1::CreateRolloutRequest Request(const std::string& selector,
                                   bool backup_first) {
    v1::CreateRolloutRequest request;
    request.set_bundle("gated@1.0.0");
    request.set_selector(selector);
    request.mutable_strategy()->set_backup_first(backup_first);
    request.add_gates()->set_kind(v1::GATE_KIND_BACKUP_COMPLETED);
    return request;
  }

  grpc::Status Create(const v1::CreateRolloutRequest& request,
                      v1::Rollout* rollout) {
    grpc::ClientContext context;
    return rollouts_->CreateRollout(&context, request, rollout);
  }

  v1::Rollout Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(id);
    v1::Rollout rollout;
    rollouts_->GetRollout(&context, request, &rollout);
    return rollout;
  }

  bool WaitForState(const std::string& id, v1::RolloutState state) {
    return WaitFor([&] { return Get(id).state() == state; }, absl::Seconds(60));
  }

  std::string AgentLogs() {
    std::string logs;
    for (const auto& [id, agent] : agents_)
      absl::StrAppend(&logs, "--- ", id, "\n", agent->Output());
    return logs;
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
  std::unique_ptr<v1::BundleService::Stub> bundles_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
};

TEST_F(BackupGateTest, OdbcTargetsAreAttestedNotBackedUp) {
  if (!testing::PostgresAdminUrl().has_value()) {
    GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
  }
  absl::StatusOr<testing::ScratchDatabase> scratch =
      testing::CreateScratchDatabase("backup_gate");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  StartAgent("mssql-like", scratch->odbc_url, "env=prod,via=odbc");
  StartAgent("lite", SqliteUrl("lite"), "env=prod");
  WaitConnected();

  // backup_first cannot be met through ODBC: refused before anything starts,
  // by create and by plan, naming the database and what to do instead.
  v1::CreateRolloutRequest request = Request("env=prod", true);
  v1::Rollout rollout;
  grpc::Status status = Create(request, &rollout);
  v1::RolloutPlan plan;
  grpc::ClientContext plan_context;
  grpc::Status planned = rollouts_->PlanRollout(&plan_context, request, &plan);
  for (const grpc::Status& refused : {status, planned}) {
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(refused.error_message(),
                HasSubstr("backup_first cannot be met on mssql-like: "));
    EXPECT_THAT(refused.error_message(),
                HasSubstr("take their backup with the engine's own tools"));
    EXPECT_THAT(refused.error_message(),
                HasSubstr("leave backup_first off (no --backup)"));
    EXPECT_THAT(refused.error_message(),
                HasSubstr("attest GATE_KIND_BACKUP_COMPLETED (`ecliptixctl "
                          "rollout attest ID backup-completed --by=NAME`)"));
  }

  // As told: no backup_first, the gate waits for a person.
  request = Request("via=odbc", false);
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_EQ(rollout.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  ASSERT_EQ(rollout.gates_size(), 1);
  EXPECT_FALSE(rollout.gates(0).satisfied());
  EXPECT_THAT(rollout.gates(0).detail(),
              HasSubstr(absl::StrCat("ecliptixctl rollout attest ",
                                     rollout.rollout_id(),
                                     " backup-completed --by=NAME")));

  absl::StatusOr<testing::CommandResult> attest = testing::RunCommand(
      {RunfilePath("client/ecliptixctl"),
       absl::StrCat("--server=127.0.0.1:", port_), "rollout", "attest",
       rollout.rollout_id(), "backup-completed", "--by=alice",
       "--comment=BACKUP DATABASE to /backups at 02:00"});
  ASSERT_TRUE(attest.ok()) << attest.status();
  EXPECT_EQ(attest->exit_code, 0) << attest->output;

  EXPECT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED))
      << Get(rollout.rollout_id()).DebugString() << AgentLogs();
  rollout = Get(rollout.rollout_id());
  EXPECT_TRUE(rollout.gates(0).satisfied());
  EXPECT_EQ(rollout.gates(0).attested_by(), "alice");
  EXPECT_EQ(rollout.gates(0).comment(), "BACKUP DATABASE to /backups at 02:00");
  ASSERT_EQ(rollout.targets_size(), 1);
  EXPECT_EQ(rollout.targets(0).database_id(), "mssql-like");
  EXPECT_EQ(rollout.targets(0).backup_id(), "");
  EXPECT_THAT(
      server_->Output(),
      HasSubstr(absl::StrCat("alice attested gate backup of rollout ",
                             rollout.rollout_id(),
                             ": BACKUP DATABASE to /backups at 02:00")));
}

TEST_F(BackupGateTest, SqliteGateHoldsByBackupFirstOrByAttestation) {
  StartAgent("lite-a", SqliteUrl("lite-a"), "env=a");
  StartAgent("lite-b", SqliteUrl("lite-b"), "env=b");
  WaitConnected();

  // Evidence: each database backs up before its first step.
  v1::Rollout rollout;
  ASSERT_TRUE(Create(Request("env=a", true), &rollout).ok());
  EXPECT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED))
      << Get(rollout.rollout_id()).DebugString() << AgentLogs();
  rollout = Get(rollout.rollout_id());
  EXPECT_TRUE(rollout.gates(0).satisfied());
  EXPECT_THAT(rollout.gates(0).detail(),
              HasSubstr("each database takes a backup before its first step"));
  ASSERT_EQ(rollout.targets_size(), 1);
  EXPECT_NE(rollout.targets(0).backup_id(), "");

  // Or a named person's word, recorded with the comment.
  ASSERT_TRUE(Create(Request("env=b", false), &rollout).ok());
  ASSERT_EQ(rollout.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  v1::AttestGateRequest attest;
  attest.set_rollout_id(rollout.rollout_id());
  attest.set_gate(v1::GATE_KIND_BACKUP_COMPLETED);
  attest.set_attested_by("bob");
  attest.set_comment("snapshot of the volume");
  grpc::ClientContext context;
  ASSERT_TRUE(rollouts_->AttestGate(&context, attest, &rollout).ok());
  EXPECT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED))
      << Get(rollout.rollout_id()).DebugString() << AgentLogs();
  rollout = Get(rollout.rollout_id());
  EXPECT_TRUE(rollout.gates(0).satisfied());
  EXPECT_EQ(rollout.gates(0).attested_by(), "bob");
  EXPECT_EQ(rollout.gates(0).comment(), "snapshot of the volume");
  EXPECT_EQ(rollout.targets(0).backup_id(), "");
}

}  // namespace
}  // namespace ecliptix
