// Fleet rollouts end to end: a real ecliptix-server process, ten or more real
// ecliptix-agent processes on SQLite files, and RolloutService over loopback
// gRPC. Order and parallelism are checked from the event stream; what ran is
// checked in each database's history table.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/sql/session.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::AllOf;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::WaitFor;

// A SQLite statement that keeps the database busy for a while (no sleep
// function in SQLite).
std::string Busy(int rows) {
  return absl::StrFormat(
      "CREATE TABLE busy_%d AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
      "SELECT x + 1 FROM c "
      "WHERE x < %d) SELECT count(*) AS n FROM c;\n",
      rows, rows);
}

std::vector<v1::BundleFile> MakeBundle(const std::string& version,
                                       const std::string& second_sql,
                                       const std::string& name = "fleet-demo") {
  auto file = [](const std::string& path, const std::string& content) {
    v1::BundleFile f;
    f.set_path(path);
    f.set_content(content);
    return f;
  };
  return {
      file("manifest.textproto", absl::StrCat(R"(name: ")", name, R"("
version: ")",
                                              version, R"("
dialects: DIALECT_SQLITE
require_revert: true
phases {
  name: "infrastructure"
  steps {
    name: "config"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/config.sql" }
    revert { sqlite: "sqlite/config.revert.sql" }
  }
}
phases {
  name: "procedures"
  steps {
    name: "work"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/work.sql" }
    revert { sqlite: "sqlite/work.revert.sql" }
  }
}
)")),
      file("sqlite/config.sql",
           "CREATE TABLE IF NOT EXISTS SystemConfiguration (ConfigKey TEXT "
           "PRIMARY KEY, "
           "ConfigValue TEXT);\n"
           "INSERT OR REPLACE INTO SystemConfiguration VALUES "
           "('Authentication.MaxFailedAttempts', '5');\n"),
      file("sqlite/config.revert.sql", "DROP TABLE SystemConfiguration;\n"),
      file("sqlite/work.sql", second_sql),
      file("sqlite/work.revert.sql",
           "DROP TABLE IF EXISTS work;\nDROP TABLE IF EXISTS busy_1;\n"),
  };
}

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/rollout-", ++counter);
    std::filesystem::create_directories(dir_);
    StartServer("127.0.0.1:0");
  }

  void StartServer(const std::string& listen) {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"),
         absl::StrCat("--listen=", listen),
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=2s"},
        absl::StrCat(dir_, "/server-", ++server_starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      return (port_ = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    rollouts_ = v1::RolloutService::NewStub(channel_);
    bundles_ = v1::BundleService::NewStub(channel_);
    fleet_ = v1::FleetService::NewStub(channel_);
  }

  void StartAgent(const std::string& id, const std::string& labels) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=sqlite://", dir_, "/", id, ".db"),
         absl::StrCat("--labels=", labels), absl::StrCat("--database_id=", id),
         "--initial_backoff=100ms", "--max_backoff=500ms"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok());
    agents_[id] = std::make_unique<ChildProcess>(std::move(*agent));
  }

  void StartFleet(int count, const std::string& labels,
                  const std::string& prefix = "db") {
    for (int i = 1; i <= count; ++i)
      StartAgent(absl::StrFormat("%s-%02d", prefix, i), labels);
    ASSERT_TRUE(WaitFor(
        [&] { return ConnectedCount() >= static_cast<int>(agents_.size()); },
        absl::Seconds(30)));
  }

  int ConnectedCount() {
    grpc::ClientContext context;
    v1::ListDatabasesRequest request;
    v1::ListDatabasesResponse response;
    if (!fleet_->ListDatabases(&context, request, &response).ok()) return 0;
    int connected = 0;
    for (const auto& database : response.databases()) {
      connected +=
          database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
    }
    return connected;
  }

  std::string Push(const std::vector<v1::BundleFile>& files) {
    grpc::ClientContext context;
    v1::UploadBundleRequest request;
    for (const auto& file : files) *request.add_files() = file;
    v1::BundleInfo info;
    grpc::Status status = bundles_->UploadBundle(&context, request, &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return info.bundle_id();
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

  template <typename Request, typename Method>
  grpc::Status Act(Method method, const Request& request) {
    grpc::ClientContext context;
    v1::Rollout rollout;
    return ((*rollouts_).*method)(&context, request, &rollout);
  }

  v1::RolloutActionRequest Action(const std::string& id) {
    v1::RolloutActionRequest request;
    request.set_rollout_id(id);
    request.set_actor("test");
    return request;
  }

  ::testing::AssertionResult WaitForState(
      const std::string& id, v1::RolloutState state,
      absl::Duration timeout = absl::Seconds(60)) {
    if (WaitFor([&] { return Get(id).state() == state; }, timeout)) {
      return ::testing::AssertionSuccess();
    }
    const v1::Rollout rollout = Get(id);
    std::string targets;
    for (const auto& target : rollout.targets()) {
      absl::StrAppend(&targets, "\n  ", target.database_id(), " wave ",
                      target.wave(), " ", v1::TargetState_Name(target.state()),
                      " ", target.phase(), "/", target.step(), " ",
                      target.error());
    }
    return ::testing::AssertionFailure()
           << "rollout " << id << " is "
           << v1::RolloutState_Name(rollout.state()) << " ("
           << rollout.waiting_reason() << "), not "
           << v1::RolloutState_Name(state) << targets;
  }

  // Every event of a rollout, from its start, until the stream ends.
  std::vector<v1::RolloutEvent> Events(const std::string& id, int64_t after = 0,
                                       int stop_after = -1) {
    grpc::ClientContext context;
    v1::WatchRolloutRequest request;
    request.set_rollout_id(id);
    request.set_after_sequence(after);
    auto reader = rollouts_->WatchRollout(&context, request);
    std::vector<v1::RolloutEvent> events;
    v1::RolloutEvent event;
    while (reader->Read(&event)) {
      events.push_back(event);
      if (stop_after >= 0 && static_cast<int>(events.size()) >= stop_after) {
        context.TryCancel();
        break;
      }
    }
    reader->Finish();
    return events;
  }

  // A value from one agent's database.
  std::string Query(const std::string& id, const std::string& sql) {
    auto url =
        sql::ParseDatabaseUrl(absl::StrCat("sqlite://", dir_, "/", id, ".db"));
    auto session = sql::OpenSession(*url);
    if (!session.ok()) return "error";
    std::string value;
    soci::indicator indicator;
    absl::Status status = sql::Guard(
        "query", [&] { **session << sql, soci::into(value, indicator); });
    if (!status.ok()) return absl::StrCat("error: ", status.message());
    return indicator == soci::i_null ? "null" : value;
  }

  // Waits until `database_id` runs `step` in the rollout.
  bool WaitForStep(const std::string& rollout_id,
                   const std::string& database_id, const std::string& step) {
    return WaitFor([&] {
      const v1::Rollout current = Get(rollout_id);
      for (const auto& target : current.targets()) {
        if (target.database_id() == database_id) return target.step() == step;
      }
      return false;
    });
  }

  // Rows of a database's history table matching `where`; 0 when it has none
  // yet.
  int HistoryCount(const std::string& id, const std::string& where) {
    int count = 0;
    absl::SimpleAtoi(
        Query(id, absl::StrCat(
                      "SELECT COUNT(*) FROM ecliptix_schema_history WHERE ",
                      where)),
        &count);
    return count;
  }

  int AppliedRows(const std::string& id) {
    std::string count = Query(
        id,
        "SELECT COUNT(*) FROM ecliptix_schema_history WHERE is_current = 1 "
        "AND outcome = 'APPLIED'");
    int value = -1;
    absl::SimpleAtoi(count, &value);
    return value;
  }

  std::string dir_;
  int server_starts_ = 0;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
  std::unique_ptr<v1::BundleService::Stub> bundles_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
};

TEST_F(RolloutTest, WavesRunInOrderWithinMaxParallel) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", Busy(300000) + "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_selector("env=prod");
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("50%");
  request.mutable_strategy()->add_waves("100%");
  request.mutable_strategy()->set_max_parallel(2);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  EXPECT_EQ(rollout.wave_count(), 3);
  EXPECT_EQ(rollout.targets_size(), 10);

  std::vector<v1::RolloutEvent> events = Events(rollout.rollout_id());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED))
      << v1::RolloutState_Name(Get(rollout.rollout_id()).state());

  std::map<std::string, int> wave_of;
  for (const auto& target : rollout.targets())
    wave_of[target.database_id()] = target.wave();
  int running = 0, max_running = 0, finished_waves = 0;
  std::map<int, int> unfinished;
  for (const auto& target : rollout.targets()) ++unfinished[target.wave()];
  // Targets already running when the watch began are in its snapshot.
  ASSERT_TRUE(!events.empty() && events[0].has_snapshot());
  for (const auto& target : events[0].snapshot().targets()) {
    running += target.state() == v1::TARGET_STATE_RUNNING;
    if (target.state() == v1::TARGET_STATE_SUCCEEDED &&
        --unfinished[target.wave()] == 0) {
      ++finished_waves;
    }
  }
  for (const auto& event : events) {
    if (!event.has_target()) continue;
    const auto& change = event.target();
    if (change.state() == v1::TARGET_STATE_RUNNING) {
      ++running;
      // A wave starts only when every earlier wave is finished.
      for (int wave = 1; wave < change.wave(); ++wave) {
        EXPECT_EQ(unfinished[wave], 0)
            << change.database_id() << " started before wave " << wave
            << " finished";
      }
    } else if (change.state() == v1::TARGET_STATE_SUCCEEDED) {
      --running;
      if (--unfinished[change.wave()] == 0) ++finished_waves;
    }
    max_running = std::max(max_running, running);
  }
  EXPECT_EQ(finished_waves, 3);
  EXPECT_LE(max_running, 2);
  std::string trace;
  for (const auto& event : events) {
    if (event.has_target()) {
      absl::StrAppend(&trace, event.sequence(), " ",
                      event.target().database_id(), " ",
                      v1::TargetState_Name(event.target().state()), "\n");
    }
  }
  EXPECT_EQ(max_running, 2) << "two databases should have run at once\n"
                            << trace;
  for (const auto& [id, process] : agents_) EXPECT_EQ(AppliedRows(id), 2) << id;
}

TEST_F(RolloutTest, CanaryFailureStopsBeforeWaveTwoAndKeepsTheCanarysRows) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "INSERT INTO no_such_table VALUES (1);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("100%");
  request.mutable_strategy()->set_auto_rollback(
      v1::AUTO_ROLLBACK_FAILED_TARGETS);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  const std::string canary = rollout.targets(0).database_id();
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_FAILED));
  // The automatic rollback of the canary would drop SystemConfiguration and
  // its row: refused, and said so.
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(Get(rollout.rollout_id()).targets(0).error(),
                             "rollback failed");
  }));
  v1::Rollout final = Get(rollout.rollout_id());
  EXPECT_EQ(final.targets(0).state(), v1::TARGET_STATE_FAILED);
  EXPECT_THAT(final.targets(0).error(),
              AllOf(HasSubstr("SystemConfiguration (1 rows)"),
                    HasSubstr("accept_data_loss")));
  EXPECT_EQ(Query(canary, "SELECT COUNT(*) FROM SystemConfiguration"), "1");
  EXPECT_THAT(final.waiting_reason(), HasSubstr("exceed the budget"));
  for (const auto& target : final.targets()) {
    if (target.database_id() == canary) continue;
    EXPECT_EQ(target.state(), v1::TARGET_STATE_SKIPPED) << target.database_id();
    // Wave 2 never touched these databases.
    EXPECT_THAT(Query(target.database_id(),
                      "SELECT COUNT(*) FROM ecliptix_schema_history"),
                HasSubstr("no such table"));
  }
  // A person accepts the loss: the canary's first phase is reverted.
  v1::RollbackRolloutRequest accept;
  accept.set_rollout_id(rollout.rollout_id());
  accept.set_actor("test");
  accept.set_accept_data_loss(true);
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::RollbackRollout, accept).ok());
  ASSERT_TRUE(
      WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_ROLLED_BACK));
  EXPECT_EQ(Get(rollout.rollout_id()).targets(0).state(),
            v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_THAT(Query(canary, "SELECT COUNT(*) FROM SystemConfiguration"),
              HasSubstr("no such table"));
  EXPECT_EQ(AppliedRows(canary), 0);
}

TEST_F(RolloutTest, ApprovalPauseAndResume) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->add_waves("2");
  request.mutable_strategy()->add_waves("100%");
  request.mutable_strategy()->set_approval_required(true);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_PAUSED));
  v1::Rollout paused = Get(rollout.rollout_id());
  EXPECT_THAT(paused.waiting_reason(), HasSubstr("approve the next wave"));
  int applied = 0;
  for (const auto& target : paused.targets())
    applied += target.state() == v1::TARGET_STATE_SUCCEEDED;
  EXPECT_EQ(applied, 2);
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::ResumeRollout,
                  Action(rollout.rollout_id()))
                  .ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));

  // A person's pause holds a running rollout until resumed.
  const std::string second = Push(MakeBundle(
      "1.0.0", Busy(200000) + "CREATE TABLE work2 (x);\n", "second-bundle"));
  request.set_bundle(second);
  request.mutable_strategy()->set_approval_required(false);
  request.mutable_strategy()->set_max_parallel(1);
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(
      Act(&v1::RolloutService::Stub::PauseRollout, Action(rollout.rollout_id()))
          .ok());
  ASSERT_EQ(Get(rollout.rollout_id()).state(), v1::ROLLOUT_STATE_PAUSED);
  // The command running when the pause came finishes; the input that
  // handles its end is the one that would start the next database, so once
  // it is seen finished nothing more may have started (no sleep needed; the
  // engine's unit tests prove the same on fake time).
  auto count = [&](v1::TargetState state) {
    int n = 0;
    const v1::Rollout current = Get(rollout.rollout_id());
    for (const auto& target : current.targets()) n += target.state() == state;
    return n;
  };
  if (count(v1::TARGET_STATE_RUNNING) > 0) {
    ASSERT_TRUE(WaitFor([&] { return count(v1::TARGET_STATE_SUCCEEDED) > 0; }));
  }
  v1::Rollout held = Get(rollout.rollout_id());
  int started = 0;
  for (const auto& target : held.targets())
    started += target.state() != v1::TARGET_STATE_PENDING;
  EXPECT_LE(started, 1) << "nothing new starts while paused";
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::ResumeRollout,
                  Action(rollout.rollout_id()))
                  .ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
}

TEST_F(RolloutTest, GatesHoldUntilSatisfied) {
  StartFleet(2, "env=staging", "staging");
  StartFleet(8, "env=prod", "prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest prod;
  prod.set_bundle(bundle);
  prod.set_selector("env=prod");
  prod.add_gates()->set_kind(v1::GATE_KIND_STAGING_TESTED);
  prod.add_gates()->set_kind(v1::GATE_KIND_TEAM_NOTIFIED);
  v1::GateSpec* window = prod.add_gates();
  window->set_kind(v1::GATE_KIND_MAINTENANCE_WINDOW);
  // A window around now, so the test runs at any hour.
  const absl::Time now = absl::Now();
  window->mutable_window()->set_time_zone("UTC");
  window->mutable_window()->set_start(
      absl::FormatTime("%H:%M", now - absl::Hours(1), absl::UTCTimeZone()));
  window->mutable_window()->set_end(
      absl::FormatTime("%H:%M", now + absl::Hours(1), absl::UTCTimeZone()));
  v1::Rollout rollout;
  ASSERT_TRUE(Create(prod, &rollout).ok());
  ASSERT_TRUE(
      WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_WAITING_FOR_GATE));
  v1::Rollout waiting = Get(rollout.rollout_id());
  EXPECT_THAT(waiting.waiting_reason(), HasSubstr("gate staging"));
  EXPECT_THAT(waiting.waiting_reason(), HasSubstr("gate team: not attested"));
  EXPECT_THAT(waiting.waiting_reason(),
              ::testing::Not(HasSubstr("gate window")));

  v1::CreateRolloutRequest staging;
  staging.set_bundle(bundle);
  staging.set_selector("env=staging");
  v1::Rollout staging_rollout;
  ASSERT_TRUE(Create(staging, &staging_rollout).ok());
  ASSERT_TRUE(
      WaitForState(staging_rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  ASSERT_TRUE(WaitFor([&] {
    return Get(rollout.rollout_id()).waiting_reason().find("gate staging") ==
           std::string::npos;
  }));
  EXPECT_EQ(Get(rollout.rollout_id()).state(),
            v1::ROLLOUT_STATE_WAITING_FOR_GATE);

  v1::AttestGateRequest attest;
  attest.set_rollout_id(rollout.rollout_id());
  attest.set_gate(v1::GATE_KIND_TEAM_NOTIFIED);
  attest.set_attested_by("alice");
  attest.set_comment("posted in #deployments");
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::AttestGate, attest).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  const v1::Rollout current = Get(rollout.rollout_id());
  for (const auto& gate : current.gates()) {
    EXPECT_TRUE(gate.satisfied()) << v1::GateKind_Name(gate.kind());
    if (gate.kind() == v1::GATE_KIND_TEAM_NOTIFIED) {
      EXPECT_EQ(gate.attested_by(), "alice");
    }
  }
}

TEST_F(RolloutTest, AbortMidWaveLeavesNoDatabaseHalfApplied) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", Busy(3000000) + "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->set_max_parallel(3);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(WaitFor([&] {
    const v1::Rollout current = Get(rollout.rollout_id());
    for (const auto& target : current.targets()) {
      if (target.phase() == "procedures" && target.step() == "work")
        return true;
    }
    return false;
  }));
  ASSERT_TRUE(
      Act(&v1::RolloutService::Stub::AbortRollout, Action(rollout.rollout_id()))
          .ok());
  ASSERT_TRUE(WaitFor([&] {
    const v1::Rollout current = Get(rollout.rollout_id());
    for (const auto& target : current.targets()) {
      if (target.state() == v1::TARGET_STATE_RUNNING) return false;
    }
    return true;
  }));
  v1::Rollout aborted = Get(rollout.rollout_id());
  EXPECT_EQ(aborted.state(), v1::ROLLOUT_STATE_ABORTED);
  for (const auto& target : aborted.targets()) {
    const std::string& id = target.database_id();
    // Each step is all or nothing: the slow step's table exists exactly when
    // its history says so.
    const bool work_applied =
        Query(id,
              "SELECT COUNT(*) FROM ecliptix_schema_history WHERE step = "
              "'work' AND "
              "is_current = 1 AND outcome = 'APPLIED'") == "1";
    const bool busy_table =
        Query(id, "SELECT COUNT(*) FROM busy_3000000").find("error") ==
        std::string::npos;
    EXPECT_EQ(work_applied, busy_table) << id;
    // No step was left running (databases never started have no history table
    // at all).
    EXPECT_EQ(HistoryCount(id, "outcome = 'RUNNING'"), 0) << id;
  }
}

TEST_F(RolloutTest, ServerKilledMidRolloutResumesWithoutRunningAStepTwice) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", Busy(1500000) + "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->set_max_parallel(2);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(WaitFor([&] {
    int done = 0;
    const v1::Rollout current = Get(rollout.rollout_id());
    for (const auto& target : current.targets()) {
      done += target.state() == v1::TARGET_STATE_SUCCEEDED;
    }
    return done >= 3;
  }));
  server_->Signal(SIGKILL);
  server_->Wait(absl::Seconds(10));
  StartServer(absl::StrCat("127.0.0.1:", port_));
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED,
                           absl::Seconds(90)))
      << server_->Output();
  for (const auto& [id, process] : agents_) {
    EXPECT_EQ(AppliedRows(id), 2) << id;
    // One attempt per step: nothing ran twice.
    EXPECT_EQ(Query(id, "SELECT COUNT(*) FROM ecliptix_schema_history"), "2")
        << id;
  }
}

TEST_F(RolloutTest, AgentKilledMidWaveHasItsOutcomeRecovered) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", Busy(2000000) + "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->set_max_parallel(10);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  const std::string victim = "db-05";
  ASSERT_TRUE(WaitFor([&] {
    v1::Rollout now = Get(rollout.rollout_id());
    for (const auto& target : now.targets()) {
      if (target.database_id() == victim) return target.step() == "work";
    }
    return false;
  }));
  agents_[victim]->Signal(SIGKILL);
  agents_[victim]->Wait(absl::Seconds(10));
  StartAgent(victim, "env=prod");
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED,
                           absl::Seconds(90)));
  EXPECT_EQ(AppliedRows(victim), 2);
}

TEST_F(RolloutTest, WatcherResumesWithoutLosingOrRepeatingEvents) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("100%");
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  // The first watcher drops after a few events and resumes from the last
  // sequence it saw.
  std::vector<v1::RolloutEvent> first = Events(rollout.rollout_id(), 0, 6);
  ASSERT_GE(first.size(), 2u);
  std::vector<v1::RolloutEvent> rest =
      Events(rollout.rollout_id(), first.back().sequence());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  std::vector<int64_t> seen;
  for (size_t i = 1; i < first.size(); ++i) seen.push_back(first[i].sequence());
  for (const auto& event : rest) seen.push_back(event.sequence());
  // The snapshot carries the sequence it covers; events follow with no gap and
  // no repeat.
  int64_t expected = first[0].sequence() + 1;
  for (int64_t sequence : seen) EXPECT_EQ(sequence, expected++);
  EXPECT_EQ(seen.back(), Get(rollout.rollout_id()).last_event_sequence());
}

TEST_F(RolloutTest, PlanShowsWavesAndPendingStepsWithoutChangingAnything) {
  StartFleet(3, "env=prod");
  StartAgent("offline-1", "env=prod");
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 4; }));
  agents_["offline-1"]->Signal(SIGKILL);
  agents_["offline-1"]->Wait(absl::Seconds(10));
  ASSERT_TRUE(WaitFor([&] { return ConnectedCount() == 3; }));
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("100%");
  grpc::ClientContext context;
  v1::RolloutPlan plan;
  ASSERT_TRUE(rollouts_->PlanRollout(&context, request, &plan).ok());
  EXPECT_EQ(plan.rollout().wave_count(), 2);
  EXPECT_THAT(plan.offline_databases(), ::testing::ElementsAre("offline-1"));
  int planned_targets = 0;
  for (const auto& target : plan.targets()) {
    if (target.database_id() == "offline-1") continue;
    ++planned_targets;
    EXPECT_TRUE(target.error().empty()) << target.error();
    std::vector<std::string> steps;
    for (const auto& step : target.pending_steps())
      steps.push_back(step.step());
    EXPECT_THAT(steps, ::testing::ElementsAre("config", "work"))
        << target.database_id();
  }
  EXPECT_EQ(planned_targets, 3);
  // A plan changes nothing: no history table was even created.
  EXPECT_THAT(Query("db-01", "SELECT COUNT(*) FROM ecliptix_schema_history"),
              HasSubstr("no such table"));
}

TEST_F(RolloutTest, PartialAndEmergencyRollback) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));

  // Partial: only the procedures phase (the runbook's "rollback to basic
  // procedures").
  v1::RollbackRolloutRequest partial;
  partial.set_rollout_id(rollout.rollout_id());
  partial.set_phase("procedures");
  partial.set_actor("test");
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::RollbackRollout, partial).ok());
  ASSERT_TRUE(
      WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_ROLLED_BACK));
  for (const auto& [id, process] : agents_) {
    EXPECT_THAT(Query(id, "SELECT COUNT(*) FROM work"),
                HasSubstr("no such table"))
        << id;
    EXPECT_EQ(Query(id, "SELECT COUNT(*) FROM SystemConfiguration"), "1") << id;
  }

  // Emergency: everything the rollout applied, last phase first. Reverting
  // the first phase would drop SystemConfiguration with its row: refused on
  // every database until the loss is accepted.
  v1::RollbackRolloutRequest all;
  all.set_rollout_id(rollout.rollout_id());
  all.set_actor("test");
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::RollbackRollout, all).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_FAILED));
  const v1::Rollout refused = Get(rollout.rollout_id());
  for (const v1::RolloutTarget& target : refused.targets()) {
    EXPECT_THAT(target.error(), HasSubstr("SystemConfiguration (1 rows)"))
        << target.database_id();
    EXPECT_EQ(
        Query(target.database_id(), "SELECT COUNT(*) FROM SystemConfiguration"),
        "1");
  }
  all.set_accept_data_loss(true);
  ASSERT_TRUE(Act(&v1::RolloutService::Stub::RollbackRollout, all).ok());
  ASSERT_TRUE(WaitFor([&] {
    const v1::Rollout current = Get(rollout.rollout_id());
    if (current.state() != v1::ROLLOUT_STATE_ROLLED_BACK) return false;
    for (const auto& [id, process] : agents_) {
      if (Query(id, "SELECT COUNT(*) FROM SystemConfiguration")
              .find("no such table") == std::string::npos) {
        return false;
      }
    }
    return true;
  })) << v1::RolloutState_Name(Get(rollout.rollout_id()).state());
  for (const auto& [id, process] : agents_) EXPECT_EQ(AppliedRows(id), 0) << id;
}

TEST_F(RolloutTest, RetryRunsWhatFailedAndSkipsWhatIsApplied) {
  StartFleet(10, "env=prod");
  // Fails on the databases that lack a table; a fix (creating it) lets the
  // retry succeed.
  const std::string bundle =
      Push(MakeBundle("1.0.0", "INSERT INTO prerequisite VALUES (1);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  request.mutable_strategy()->set_failure_budget("100%");
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  v1::Rollout done = Get(rollout.rollout_id());
  EXPECT_EQ(done.failures(), 10);
  for (const auto& [id, process] : agents_) {
    EXPECT_EQ(Query(id, "CREATE TABLE prerequisite (x)"), "null");
  }
  ASSERT_TRUE(
      Act(&v1::RolloutService::Stub::RetryFailed, Action(rollout.rollout_id()))
          .ok());
  ASSERT_TRUE(WaitFor([&] {
    const v1::Rollout current = Get(rollout.rollout_id());
    return current.state() == v1::ROLLOUT_STATE_SUCCEEDED &&
           current.failures() == 0;
  }));
  const v1::Rollout current = Get(rollout.rollout_id());
  for (const auto& target : current.targets()) {
    EXPECT_EQ(target.state(), v1::TARGET_STATE_SUCCEEDED);
    EXPECT_EQ(target.steps_skipped(), 1)
        << "the config step was applied the first time";
  }
}

// Rolling back a failed upgrade must not undo what an earlier rollout applied.
TEST_F(RolloutTest, RollbackRevertsOnlyWhatThisRolloutApplied) {
  StartFleet(10, "env=prod");
  const std::string good =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(good);
  request.set_all_databases(true);
  v1::Rollout first;
  ASSERT_TRUE(Create(request, &first).ok());
  ASSERT_TRUE(WaitForState(first.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));

  // 1.1.0 changes nothing in the infrastructure phase and adds a failing step
  // to procedures.
  std::vector<v1::BundleFile> broken =
      MakeBundle("1.1.0", "CREATE TABLE work (x);\n");
  std::string& manifest = *broken[0].mutable_content();
  manifest.insert(manifest.rfind("}"), R"(  steps {
    name: "extra"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/extra.sql" }
    revert { sqlite: "sqlite/extra.revert.sql" }
  }
  steps {
    name: "broken"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/broken.sql" }
    revert { sqlite: "sqlite/broken.revert.sql" }
  }
)");
  v1::BundleFile file;
  file.set_path("sqlite/extra.sql");
  file.set_content("CREATE TABLE extra (x);\n");
  broken.push_back(file);
  file.set_path("sqlite/extra.revert.sql");
  file.set_content("DROP TABLE extra;\n");
  broken.push_back(file);
  file.set_path("sqlite/broken.sql");
  file.set_content(
      "CREATE TABLE half (x);\nINSERT INTO no_such_table VALUES (1);\n");
  broken.push_back(file);
  file.set_path("sqlite/broken.revert.sql");
  file.set_content("DROP TABLE IF EXISTS half;\n");
  broken.push_back(file);
  request.set_bundle(Push(broken));
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("100%");
  request.mutable_strategy()->set_auto_rollback(
      v1::AUTO_ROLLBACK_FAILED_TARGETS);
  v1::Rollout second;
  ASSERT_TRUE(Create(request, &second).ok());
  ASSERT_TRUE(WaitForState(second.rollout_id(), v1::ROLLOUT_STATE_FAILED));
  const v1::Rollout failed = Get(second.rollout_id());
  const std::string canary = failed.targets(0).database_id();
  ASSERT_TRUE(WaitFor([&] {
    return Get(second.rollout_id()).targets(0).state() ==
           v1::TARGET_STATE_ROLLED_BACK;
  }));
  // The step 1.1.0 applied in the procedures phase is reverted; the canary
  // keeps everything 1.0.0 applied, in that phase too, and the broken step left
  // nothing.
  EXPECT_THAT(Query(canary, "SELECT COUNT(*) FROM extra"),
              HasSubstr("no such table"));
  EXPECT_EQ(Query(canary, "SELECT COUNT(*) FROM SystemConfiguration"), "1");
  EXPECT_EQ(Query(canary, "SELECT COUNT(*) FROM work"), "0");
  EXPECT_THAT(Query(canary, "SELECT COUNT(*) FROM half"),
              HasSubstr("no such table"));
  EXPECT_EQ(AppliedRows(canary), 2);
}

// The same agent process, cut off past its heartbeat deadline while its step
// runs, then back: the server sends the command again under the same id and the
// agent answers from its journal.
TEST_F(RolloutTest, DisconnectedAgentHasItsOutcomeRecoveredOnReconnect) {
  StartFleet(10, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", Busy(1500000) + "CREATE TABLE work (x);\n"));
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle);
  request.set_all_databases(true);
  v1::Rollout rollout;
  ASSERT_TRUE(Create(request, &rollout).ok());
  const std::string victim = "db-03";
  ASSERT_TRUE(WaitForStep(rollout.rollout_id(), victim, "work"));
  agents_[victim]->Signal(SIGSTOP);
  // Lost: the server gives up on the stream after its 2 s heartbeat timeout.
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext context;
    v1::GetDatabaseRequest get;
    get.set_database_id(victim);
    v1::Database database;
    return fleet_->GetDatabase(&context, get, &database).ok() &&
           database.connection_state() == v1::CONNECTION_STATE_LOST;
  }));
  agents_[victim]->Signal(SIGCONT);
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  EXPECT_EQ(AppliedRows(victim), 2);
  EXPECT_EQ(Query(victim, "SELECT COUNT(*) FROM ecliptix_schema_history"), "2");
  EXPECT_THAT(agents_[victim]->Output(), HasSubstr("already received"));
}

// ecliptixctl against the real server, as in the README: --watch follows to the
// end and exits 0 only when the rollout succeeded.
TEST_F(RolloutTest, EcliptixctlCreateAndWatch) {
  StartFleet(10, "env=prod");
  const std::string good =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {RunfilePath("client/ecliptixctl"),
                               absl::StrCat("--server=127.0.0.1:", port_)});
    auto result = testing::RunCommand(args, absl::Seconds(120));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  };
  auto ok = ctl({"rollout", "create", good, "--selector=env=prod",
                 "--waves=1,50%,100%", "--max_parallel=2", "--watch"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("rollout succeeded"));
  EXPECT_THAT(ok.output, HasSubstr("wave 3 finished"));

  const std::string bad = Push(MakeBundle(
      "1.0.0", "INSERT INTO no_such_table VALUES (1);\n", "bad-bundle"));
  auto failed =
      ctl({"rollout", "create", bad, "--all", "--waves=1,100%", "--watch"});
  EXPECT_EQ(failed.exit_code, 1) << failed.output;
  EXPECT_THAT(failed.output, HasSubstr("no such table: no_such_table"));
  EXPECT_THAT(failed.output, HasSubstr("exceed the budget"));

  auto refused = ctl({"rollout", "create", good, "--all", "--waves=150%"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("150%"));
}

TEST_F(RolloutTest, BadRequestsAreRefusedWithHowToFix) {
  StartFleet(2, "env=prod");
  const std::string bundle =
      Push(MakeBundle("1.0.0", "CREATE TABLE work (x);\n"));
  v1::Rollout rollout;
  v1::CreateRolloutRequest request;
  request.set_bundle("nope@1.0.0");
  request.set_all_databases(true);
  grpc::Status status = Create(request, &rollout);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  request.set_bundle(bundle);
  request.set_all_databases(false);
  request.set_selector("env=nowhere");
  status = Create(request, &rollout);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("matches no database"));

  request.set_selector("");
  request.set_all_databases(true);
  for (const std::string wave : {"0%", "150%", "0", "abc"}) {
    request.mutable_strategy()->clear_waves();
    request.mutable_strategy()->add_waves(wave);
    status = Create(request, &rollout);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << wave;
    EXPECT_THAT(status.error_message(), HasSubstr(wave)) << wave;
  }
  request.mutable_strategy()->clear_waves();
  request.mutable_strategy()->set_failure_budget("lots");
  EXPECT_EQ(Create(request, &rollout).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.mutable_strategy()->clear_failure_budget();

  // Conflicting rollouts on the same databases.
  request.add_gates()->set_kind(
      v1::GATE_KIND_TEAM_NOTIFIED);  // Holds the first one.
  ASSERT_TRUE(Create(request, &rollout).ok());
  v1::CreateRolloutRequest second;
  second.set_bundle(bundle);
  second.set_all_databases(true);
  v1::Rollout other;
  status = Create(second, &other);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr(rollout.rollout_id()));
  EXPECT_THAT(status.error_message(), HasSubstr("rollout abort"));

  v1::GetRolloutRequest get;
  get.set_rollout_id("r-999");
  grpc::ClientContext context;
  EXPECT_EQ(rollouts_->GetRollout(&context, get, &other).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace ecliptix
