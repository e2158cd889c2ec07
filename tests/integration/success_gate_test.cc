// The rollouts' success gate end to end: a real ecliptix-server, real
// ecliptix-agent processes collecting metrics fast (--metrics_interval_scale),
// the reference bundle deployed on SQLite databases (and PostgreSQL ones when
// ECLIPTIX_TEST_POSTGRES_URL is set), the workload driver calling its
// operations in-process. Three fleets of three databases each get a new bundle
// version at the same time, canary first, with --success_gate: on fleet "a"
// the version adds a trigger that makes every LoginMembership call slow; the
// gate halts that rollout after the canary wave, naming
// procedure_execution_ms and the canary, and rolls the canary back
// (--auto_rollback=all) while the traffic still runs;
// on fleet "b" the same version without the delay passes and completes; on
// fleet "c" a version whose trigger makes every login fail is halted on the
// error rate. Then the health report covers the nine databases.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tools/workload/workload_driver.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kName[] = "ecliptix-production-enhancements";

enum class Engine { kSqlite, kPostgresql };

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// What the trigger a bundle version adds does.
enum class Hook { kNothing, kSlow, kFail };

// The reference bundle as version `version` with one more phase: a trigger
// on LoginAttempts (inserted by every LoginMembership call between its start
// and its PerformanceMetrics row) that does nothing, burns about a second
// (kSlow), or makes the call fail (kFail).
std::string BundleVersion(const std::string& reference, const std::string& dir,
                          const std::string& version, Hook hook_kind) {
  fs::remove_all(dir);
  fs::copy(reference, dir, fs::copy_options::recursive);
  const char* names[] = {"LoginHook", "SlowLoginHook", "FailingLoginHook"};
  const char* pg_names[] = {"login_hook", "slow_login_hook",
                            "failing_login_hook"};
  const char* phases[] = {"login-hook", "slow-login-hook",
                          "failing-login-hook"};
  const std::string hook = names[static_cast<int>(hook_kind)];
  const std::string pg_hook = pg_names[static_cast<int>(hook_kind)];
  const std::string phase = phases[static_cast<int>(hook_kind)];
  // SQLite has no sleep: counting a cross join of two generated 3000-element
  // arrays (9 million rows) takes about a second.
  const char* sqlite_body[] = {
      "  SELECT 1;\n",
      "  SELECT COUNT(*) FROM json_each('[' || "
      "replace(hex(zeroblob(3000)), '00', '0,') || '0]') AS a,\n"
      "    json_each('[' || replace(hex(zeroblob(3000)), '00', '0,') || "
      "'0]') AS b;\n",
      "  SELECT RAISE(ABORT, 'login hook failed');\n"};
  const char* pg_body[] = {"", "  PERFORM pg_sleep(0.8);\n",
                           "  RAISE EXCEPTION 'login hook failed';\n"};
  const char* mssql_body[] = {"", "  WAITFOR DELAY '00:00:00.800';\n",
                              "  THROW 50000, 'login hook failed', 1;\n"};
  const int k = static_cast<int>(hook_kind);
  WriteFile(dir + "/sqlite/900_login_hook.sql",
            absl::StrCat("CREATE TRIGGER IF NOT EXISTS ", hook,
                         " AFTER INSERT ON LoginAttempts\nBEGIN\n",
                         sqlite_body[k], "END;\n"));
  WriteFile(dir + "/sqlite/900_login_hook.revert.sql",
            absl::StrCat("DROP TRIGGER IF EXISTS ", hook, ";\n"));
  WriteFile(dir + "/postgresql/900_login_hook.sql",
            absl::StrCat("CREATE OR REPLACE FUNCTION dbo.", pg_hook,
                         "() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n",
                         pg_body[k], "  RETURN NEW;\nEND\n$$;\n",
                         "CREATE TRIGGER ", pg_hook,
                         " AFTER INSERT ON dbo.LoginAttempts FOR EACH ROW "
                         "EXECUTE FUNCTION dbo.",
                         pg_hook, "();\n"));
  WriteFile(dir + "/postgresql/900_login_hook.revert.sql",
            absl::StrCat("DROP TRIGGER IF EXISTS ", pg_hook,
                         " ON dbo.LoginAttempts;\nDROP FUNCTION IF EXISTS dbo.",
                         pg_hook, "();\n"));
  WriteFile(dir + "/mssql/900_login_hook.sql",
            absl::StrCat("CREATE OR ALTER TRIGGER dbo.", hook,
                         " ON dbo.LoginAttempts AFTER INSERT AS\nBEGIN\n"
                         "  SET NOCOUNT ON;\n",
                         mssql_body[k], "END\n"));
  WriteFile(dir + "/mssql/900_login_hook.revert.sql",
            absl::StrCat("DROP TRIGGER IF EXISTS dbo.", hook, ";\n"));
  std::ifstream in(dir + "/manifest.textproto");
  std::stringstream manifest;
  manifest << in.rdbuf();
  std::string text = absl::StrReplaceAll(
      manifest.str(),
      {{"version: \"1.0.0\"", absl::StrCat("version: \"", version, "\"")}});
  absl::StrAppend(
      &text, "\nphases {\n  name: \"", phase,
      "\"\n  description: \"A trigger on LoginAttempts.\"\n  steps {\n"
      "    name: \"",
      phase,
      "\"\n    description: \"The trigger.\"\n"
      "    kind: STEP_KIND_VERSIONED\n"
      "    sql { sqlite: \"sqlite/900_login_hook.sql\" postgresql: "
      "\"postgresql/900_login_hook.sql\" mssql: \"mssql/900_login_hook.sql\" "
      "}\n"
      "    revert { sqlite: \"sqlite/900_login_hook.revert.sql\" postgresql: "
      "\"postgresql/900_login_hook.revert.sql\" mssql: "
      "\"mssql/900_login_hook.revert.sql\" }\n  }\n}\n");
  WriteFile(dir + "/manifest.textproto", text);
  return dir;
}

class SuccessGateTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() == Engine::kPostgresql &&
        !testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
    }
    static int counter = 0;
    dir_ =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/success-gate-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  void TearDown() override {
    if (driver_ != nullptr) {
      driver_->Stop();
      if (workload_.joinable()) workload_.join();
    }
    for (auto& agent : agents_) agent->Signal(SIGTERM);
    if (server_ != nullptr) {
      server_->Signal(SIGTERM);
      server_->Wait(absl::Seconds(30));
    }
  }

  void StartServer() {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=5s"},
        absl::StrCat(dir_, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      port_ = testing::LoggedServerPort(server_->Output());
      return port_ > 0;
    })) << server_->Output();
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                       grpc::InsecureChannelCredentials());
    rollouts_ = v1::RolloutService::NewStub(channel);
    metrics_ = v1::MetricsService::NewStub(channel);
  }

  // A database of its own for `id`, and its agent.
  void StartAgent(const std::string& id, const std::string& fleet) {
    std::string url = absl::StrCat("sqlite://", dir_, "/", id, ".db");
    if (GetParam() == Engine::kPostgresql) {
      auto scratch = testing::CreateScratchDatabase("success_gate");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url = scratch->url;
    }
    urls_.push_back(url);
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=", url),
         absl::StrCat("--labels=fleet=", fleet),
         absl::StrCat("--database_id=", id), "--initial_backoff=100ms",
         "--max_backoff=500ms", "--collect_metrics",
         "--metrics_interval_scale=0.05"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", port_), "--timeout=60s"});
    auto result = RunCommand(args, absl::Seconds(300));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  v1::Rollout Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(id);
    v1::Rollout rollout;
    grpc::Status status = rollouts_->GetRollout(&context, request, &rollout);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return rollout;
  }

  bool Finished(const std::string& id) {
    const v1::RolloutState state = Get(id).state();
    return state == v1::ROLLOUT_STATE_SUCCEEDED ||
           state == v1::ROLLOUT_STATE_FAILED ||
           state == v1::ROLLOUT_STATE_ROLLED_BACK ||
           state == v1::ROLLOUT_STATE_ABORTED;
  }

  // The databases with procedure calls stored over the last `range`.
  int DatabasesWithCalls() {
    grpc::ClientContext context;
    v1::GetRateRequest request;
    request.set_rate("errors");
    request.mutable_range()->set_seconds(600);
    v1::GetRateResponse response;
    if (!metrics_->GetRate(&context, request, &response).ok()) return -1;
    return response.by_database_size();
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::vector<std::string> urls_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
  std::unique_ptr<v1::MetricsService::Stub> metrics_;
  std::unique_ptr<workload::WorkloadDriver> driver_;
  std::thread workload_;
};

TEST_P(SuccessGateTest,
       SlowOrFailingCanariesHaltTheirRolloutsAndAHealthyOnePasses) {
  StartServer();
  for (const char* fleet : {"a", "b", "c"}) {
    for (int i = 1; i <= 3; ++i) StartAgent(absl::StrCat(fleet, i), fleet);
  }
  const std::string reference =
      testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix");
  ASSERT_EQ(Ctl({"bundle", "push", reference}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    return Ctl({"fleet", "list", "-o", "json"}).output.find("c3") !=
           std::string::npos;
  })) << server_->Output();
  const testing::CommandResult deployed = Ctl(
      {"rollout", "create", absl::StrCat(kName, "@1.0.0"), "--all", "--watch"});
  ASSERT_EQ(deployed.exit_code, 0) << deployed.output;

  // Traffic on every database, logins mostly.
  workload::WorkloadOptions options;
  options.database_urls = urls_;
  options.bundle_dir = reference;
  // Two calls a second per database: SQLite has one writer, and a slow
  // LoginMembership holds the write lock for its whole call, so a database
  // busy all the time would starve the revert of the trigger.
  options.rate = 12;
  options.mix = {{"LoginMembership", 70},
                 {"ValidatePhoneNumber", 15},
                 {"CreateAuthenticationContext", 15}};
  auto driver = workload::WorkloadDriver::Create(options);
  ASSERT_TRUE(driver.ok()) << driver.status();
  driver_ = *std::move(driver);
  workload_ = std::thread([this] { driver_->Run(nullptr); });
  // Figures from every database before the rollouts (their baseline).
  ASSERT_TRUE(
      WaitFor([&] { return DatabasesWithCalls() == 9; }, absl::Seconds(90)))
      << DatabasesWithCalls();
  // The figures count whole minutes: the baseline needs one full minute of
  // traffic before the rollouts are created (and a collection after it).
  const absl::Time first_whole_minute_ends =
      absl::FromUnixSeconds((absl::ToUnixSeconds(absl::Now()) / 60 + 1) * 60) +
      absl::Minutes(1) + absl::Seconds(5);
  ASSERT_TRUE(WaitFor([&] { return absl::Now() >= first_whole_minute_ends; },
                      absl::Minutes(3)));

  ASSERT_EQ(
      Ctl({"bundle", "push",
           BundleVersion(reference, dir_ + "/slow", "1.1.0", Hook::kSlow)})
          .exit_code,
      0);
  ASSERT_EQ(
      Ctl({"bundle", "push",
           BundleVersion(reference, dir_ + "/fast", "1.2.0", Hook::kNothing)})
          .exit_code,
      0);
  ASSERT_EQ(
      Ctl({"bundle", "push",
           BundleVersion(reference, dir_ + "/failing", "1.3.0", Hook::kFail)})
          .exit_code,
      0);
  const std::regex kId("r-[0-9]+");
  std::smatch match;
  const testing::CommandResult slow =
      Ctl({"rollout", "create", absl::StrCat(kName, "@1.1.0"),
           "--selector=fleet=a", "--waves=1,100%", "--success_gate",
           "--soak=2m", "--baseline=10m", "--auto_rollback=all"});
  ASSERT_EQ(slow.exit_code, 0) << slow.output;
  ASSERT_TRUE(std::regex_search(slow.output, match, kId)) << slow.output;
  const std::string slow_id = match[0].str();
  const testing::CommandResult fast =
      Ctl({"rollout", "create", absl::StrCat(kName, "@1.2.0"),
           "--selector=fleet=b", "--waves=1,100%", "--success_gate",
           "--soak=2m", "--baseline=10m", "--auto_rollback=all"});
  ASSERT_EQ(fast.exit_code, 0) << fast.output;
  ASSERT_TRUE(std::regex_search(fast.output, match, kId)) << fast.output;
  const std::string fast_id = match[0].str();
  const testing::CommandResult failing = Ctl(
      {"rollout", "create", absl::StrCat(kName, "@1.3.0"), "--selector=fleet=c",
       "--waves=1,100%", "--success_gate", "--soak=2m", "--baseline=10m"});
  ASSERT_EQ(failing.exit_code, 0) << failing.output;
  ASSERT_TRUE(std::regex_search(failing.output, match, kId)) << failing.output;
  const std::string failing_id = match[0].str();

  ASSERT_TRUE(WaitFor(
      [&] {
        return Finished(slow_id) && Finished(fast_id) && Finished(failing_id);
      },
      absl::Minutes(8)))
      << Get(slow_id).DebugString() << Get(fast_id).DebugString()
      << Get(failing_id).DebugString();

  // The slow canary: halted after wave 1 naming the metric and the values,
  // and reverted under the workload's traffic (on SQLite the revert waits for
  // the write lock rather than being refused "database is locked"); the rest
  // never started.
  const v1::Rollout halted = Get(slow_id);
  EXPECT_EQ(halted.state(), v1::ROLLOUT_STATE_ROLLED_BACK)
      << halted.DebugString();
  EXPECT_EQ(halted.current_wave(), 1);
  const v1::SuccessGateStatus& gate = halted.success_gate_status();
  EXPECT_TRUE(gate.judged());
  EXPECT_FALSE(gate.passed());
  EXPECT_THAT(gate.detail(),
              HasSubstr("success gate: procedure_execution_ms avg "));
  EXPECT_THAT(gate.detail(), HasSubstr("on a1 after the wave vs "));
  EXPECT_THAT(gate.detail(), HasSubstr("on unchanged databases (limit 100.0 "
                                       "ms)"));
  for (const v1::RolloutTarget& target : halted.targets()) {
    if (target.database_id() == "a1") {
      EXPECT_EQ(target.state(), v1::TARGET_STATE_ROLLED_BACK)
          << target.DebugString();
    } else {
      EXPECT_EQ(target.state(), v1::TARGET_STATE_SKIPPED);
      EXPECT_EQ(target.error(),
                "not started: the success gate halted the rollout");
    }
  }

  // The same change without the delay: the gate held, every wave ran.
  const v1::Rollout passed = Get(fast_id);
  EXPECT_EQ(passed.state(), v1::ROLLOUT_STATE_SUCCEEDED)
      << passed.DebugString();
  EXPECT_TRUE(passed.success_gate_status().passed());
  EXPECT_THAT(passed.success_gate_status().detail(),
              HasSubstr("success gate held on 1 database:"));
  for (const v1::RolloutTarget& target : passed.targets()) {
    EXPECT_EQ(target.state(), v1::TARGET_STATE_SUCCEEDED);
  }

  // A canary whose logins fail: halted on the error rate.
  const v1::Rollout failed = Get(failing_id);
  EXPECT_EQ(failed.state(), v1::ROLLOUT_STATE_FAILED) << failed.DebugString();
  EXPECT_EQ(failed.current_wave(), 1);
  EXPECT_THAT(failed.success_gate_status().detail(),
              HasSubstr("success gate: errors rate "));
  EXPECT_THAT(failed.success_gate_status().detail(),
              HasSubstr("on c1 after the wave vs "));
  EXPECT_THAT(failed.success_gate_status().detail(), HasSubstr("(limit 0.1%)"));

  // The failing canary reverted by request, the traffic still running.
  const testing::CommandResult reverted =
      Ctl({"rollout", "rollback", failing_id});
  EXPECT_TRUE(WaitFor(
      [&] { return Get(failing_id).state() == v1::ROLLOUT_STATE_ROLLED_BACK; },
      absl::Minutes(2)))
      << reverted.output << Get(failing_id).DebugString();
  driver_->Stop();
  workload_.join();
  driver_.reset();

  // The health report covers the nine databases.
  grpc::ClientContext context;
  v1::GetHealthReportRequest request;
  request.mutable_range()->set_seconds(900);
  v1::HealthReport report;
  grpc::Status status = metrics_->GetHealthReport(&context, request, &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(report.databases_size(), 9) << report.DebugString();
  for (const v1::HealthRow& row : report.databases()) {
    ASSERT_EQ(row.criteria_size(), 5);
    EXPECT_EQ(row.criteria(0).name(), "avg_procedure_time");
    EXPECT_NE(row.criteria(0).verdict(), v1::HEALTH_VERDICT_NO_DATA);
    EXPECT_EQ(row.criteria(1).name(), "error_rate");
    EXPECT_NE(row.criteria(1).verdict(), v1::HEALTH_VERDICT_NO_DATA);
    EXPECT_EQ(row.criteria(2).name(), "blocking_queries");
    EXPECT_NE(row.criteria(2).verdict(), v1::HEALTH_VERDICT_NO_DATA);
  }
  const testing::CommandResult health =
      Ctl({"health", "--selector=fleet=b", "--range=15m"});
  EXPECT_THAT(health.output, HasSubstr("avg_procedure_time"));
  EXPECT_THAT(health.output, HasSubstr("(fleet)"));
  EXPECT_TRUE(health.exit_code == 0 || health.exit_code == 1) << health.output;
}

INSTANTIATE_TEST_SUITE_P(Engines, SuccessGateTest,
                         ::testing::Values(Engine::kSqlite,
                                           Engine::kPostgresql),
                         [](const ::testing::TestParamInfo<Engine>& info) {
                           return info.param == Engine::kSqlite
                                      ? std::string("Sqlite")
                                      : std::string("Postgresql");
                         });

}  // namespace
}  // namespace ecliptix
