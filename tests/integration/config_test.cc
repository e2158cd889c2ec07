// Fleet configuration end to end: a real ecliptix-server process, real
// ecliptix-agent processes on SQLite files (and PostgreSQL databases when the
// tests have a server), the reference bundle deployed by a rollout, and
// ConfigService over loopback gRPC and through ecliptixctl. What each
// database holds is checked with SQL in the database itself: its
// SystemConfiguration rows, the AuditLog rows its trigger writes for every
// change of a value, and the PerformanceMetrics row each SetConfigValue call
// leaves.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/proto_time.h"
#include "ecliptix/fleet/v1/config_service.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tests/testing/query.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using ::testing::AnyOf;
using testing::ChildProcess;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kBundle[] = "ecliptix-production-enhancements@1.0.0";
constexpr char kRetention[] = "Audit.RetentionDays";
constexpr char kMaxFailed[] = "Authentication.MaxFailedAttempts";
constexpr char kOtp[] = "OTP.MaxAttempts";
constexpr char kMetrics[] = "Monitoring.EnableMetrics";
constexpr char kValidations[] = "Audit.LogValidations";

// Three production databases (db-1 is the canary: waves take databases in id
// order) and one staging database that no change below selects.
const std::vector<std::string>& Production() {
  static const auto* ids = new std::vector<std::string>{"db-1", "db-2", "db-3"};
  return *ids;
}
constexpr char kStaging[] = "db-4";

enum class Engine { kSqlite, kPostgresql };

v1::ConfigSetting Setting(const std::string& key, const std::string& value) {
  v1::ConfigSetting setting;
  setting.set_key(key);
  setting.set_value(value);
  return setting;
}

class ConfigTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/config-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (postgresql() && !testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test "
                      "sets it)";
    }
    StartServer();
    std::vector<std::string> ids = Production();
    ids.push_back(kStaging);
    for (const std::string& id : ids) {
      if (postgresql()) {
        auto scratch = testing::CreateScratchDatabase("config");
        ASSERT_TRUE(scratch.ok()) << scratch.status();
        urls_[id] = scratch->url;
      } else {
        urls_[id] = absl::StrCat("sqlite://", dir_, "/", id, ".db");
      }
      StartAgent(id, id == kStaging ? "staging" : "prod");
    }
    ASSERT_TRUE(
        WaitFor([&] { return Connected() == static_cast<int>(ids.size()); },
                absl::Seconds(30)));
    // The reference bundle, deployed everywhere: its SystemConfiguration
    // rows hold the runbook's values.
    ASSERT_EQ(Ctl({"bundle", "push",
                   testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix")})
                  .exit_code,
              0);
    const testing::CommandResult deployed =
        Ctl({"rollout", "create", kBundle, "--all", "--watch"});
    ASSERT_EQ(deployed.exit_code, 0) << deployed.output;
  }

  void TearDown() override {
    for (auto& [id, agent] : agents_) agent->Signal(SIGTERM);
    if (server_ != nullptr) server_->Signal(SIGTERM);
  }

  bool postgresql() const { return GetParam() == Engine::kPostgresql; }
  std::string Table(const std::string& name) const {
    return postgresql() ? absl::StrCat("dbo.", name) : name;
  }

  void StartServer() {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"),
         absl::StrCat("--listen=127.0.0.1:", port_),
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=3s"},
        absl::StrCat(dir_, "/server-", ++server_starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    port_ = port;
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    config_ = v1::ConfigService::NewStub(channel_);
    rollouts_ = v1::RolloutService::NewStub(channel_);
    fleet_ = v1::FleetService::NewStub(channel_);
  }

  void StartAgent(const std::string& id, const std::string& env) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=", urls_[id]),
         absl::StrCat("--labels=env=", env), absl::StrCat("--database_id=", id),
         "--initial_backoff=100ms", "--max_backoff=500ms"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[id] = std::make_unique<ChildProcess>(std::move(*agent));
  }

  int Connected() {
    grpc::ClientContext context;
    v1::ListDatabasesResponse response;
    if (!fleet_->ListDatabases(&context, v1::ListDatabasesRequest(), &response)
             .ok())
      return 0;
    int connected = 0;
    for (const auto& database : response.databases())
      connected +=
          database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
    return connected;
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", port_), "--timeout=60s"});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  // What the database stores for a key (read with SQL, not through the
  // product).
  std::string Value(const std::string& id, const std::string& key) {
    return testing::QueryScalar(
        urls_[id],
        absl::StrCat("SELECT ConfigValue FROM ", Table("SystemConfiguration"),
                     " WHERE ConfigKey = '", key, "'"));
  }
  int Count(const std::string& id, const std::string& sql) {
    int count = -1;
    const std::string text = testing::QueryScalar(urls_[id], sql);
    EXPECT_TRUE(absl::SimpleAtoi(text, &count)) << id << ": " << text;
    return count;
  }
  // Changes of the key's value, as the SystemConfiguration trigger audits
  // them (a write that leaves the value as it was is not one).
  int Changes(const std::string& id, const std::string& key) {
    return Count(id, absl::StrCat("SELECT COUNT(*) FROM ", Table("AuditLog"),
                                  " WHERE TableName = 'SystemConfiguration' "
                                  "AND RecordId = '",
                                  key, "'"));
  }
  // SetConfigValue calls, each of which records its execution time.
  int SetCalls(const std::string& id) {
    return Count(
        id, absl::StrCat("SELECT COUNT(*) FROM ", Table("PerformanceMetrics"),
                         " WHERE ProcedureName = 'SetConfigValue'"));
  }
  void Execute(const std::string& id, const std::string& sql) {
    const absl::Status status = testing::ExecuteSql(urls_[id], sql);
    ASSERT_TRUE(status.ok()) << id << ": " << status;
  }
  // A trigger in the database that refuses every change of `key`: the
  // database itself fails the change, as a broken or locked-down database
  // would.
  void RefuseChanges(const std::string& id, const std::string& key) {
    if (postgresql()) {
      Execute(id, absl::StrCat(
                      "CREATE FUNCTION dbo.test_refuse_change() RETURNS "
                      "trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.ConfigKey "
                      "= '",
                      key,
                      "' THEN RAISE EXCEPTION 'change refused by a trigger "
                      "of the test'; END IF; RETURN NEW; END $$;\n"
                      "CREATE TRIGGER test_refuse_change BEFORE UPDATE ON "
                      "dbo.SystemConfiguration FOR EACH ROW EXECUTE FUNCTION "
                      "dbo.test_refuse_change()"));
    } else {
      Execute(id, absl::StrCat(
                      "CREATE TRIGGER test_refuse_change BEFORE UPDATE OF "
                      "ConfigValue ON SystemConfiguration WHEN NEW.ConfigKey "
                      "= '",
                      key,
                      "' BEGIN SELECT RAISE(ABORT, 'change refused by a "
                      "trigger of the test'); END"));
    }
  }

  grpc::Status SetConfig(const v1::SetConfigRequest& request,
                         v1::Rollout* rollout) {
    grpc::ClientContext context;
    return config_->SetConfig(&context, request, rollout);
  }
  v1::SetConfigRequest Change(std::vector<v1::ConfigSetting> settings,
                              const std::string& reason = "test change") {
    v1::SetConfigRequest request;
    for (v1::ConfigSetting& setting : settings)
      *request.add_settings() = std::move(setting);
    request.set_selector("env=prod");
    request.set_reason(reason);
    request.set_requested_by("alice");
    return request;
  }
  v1::GetConfigResponse GetConfig(const std::string& selector,
                                  std::vector<std::string> keys) {
    grpc::ClientContext context;
    v1::GetConfigRequest request;
    request.set_selector(selector);
    for (const std::string& key : keys) request.add_keys(key);
    v1::GetConfigResponse response;
    const grpc::Status status =
        config_->GetConfig(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  std::vector<v1::ConfigChange> History(const std::string& key,
                                        const std::string& database = "") {
    grpc::ClientContext context;
    v1::GetConfigHistoryRequest request;
    request.set_key(key);
    request.set_database_id(database);
    request.set_limit(1000);
    v1::GetConfigHistoryResponse response;
    const grpc::Status status =
        config_->GetConfigHistory(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.changes().begin(), response.changes().end()};
  }

  v1::Rollout Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(id);
    v1::Rollout rollout;
    rollouts_->GetRollout(&context, request, &rollout);
    return rollout;
  }
  // Newest first, without targets.
  std::vector<v1::Rollout> Rollouts() {
    grpc::ClientContext context;
    v1::ListRolloutsRequest request;
    request.set_page_size(1000);
    v1::ListRolloutsResponse response;
    EXPECT_TRUE(rollouts_->ListRollouts(&context, request, &response).ok());
    return {response.rollouts().begin(), response.rollouts().end()};
  }
  v1::Rollout Latest() {
    const std::vector<v1::Rollout> all = Rollouts();
    return all.empty() ? v1::Rollout() : Get(all.front().rollout_id());
  }
  ::testing::AssertionResult WaitForState(
      const std::string& id, v1::RolloutState state,
      absl::Duration timeout = absl::Seconds(90)) {
    if (WaitFor([&] { return Get(id).state() == state; }, timeout))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << id << " is " << v1::RolloutState_Name(Get(id).state()) << ", not "
           << v1::RolloutState_Name(state) << "\n"
           << Get(id).DebugString();
  }
  v1::Rollout WaitForEnd(const std::string& id) {
    v1::Rollout rollout;
    EXPECT_TRUE(WaitFor(
        [&] {
          rollout = Get(id);
          return rollout.state() == v1::ROLLOUT_STATE_SUCCEEDED ||
                 rollout.state() == v1::ROLLOUT_STATE_FAILED ||
                 rollout.state() == v1::ROLLOUT_STATE_ABORTED ||
                 rollout.state() == v1::ROLLOUT_STATE_ROLLED_BACK;
        },
        absl::Seconds(90)))
        << rollout.DebugString();
    return rollout;
  }
  static const v1::RolloutTarget* Target(const v1::Rollout& rollout,
                                         const std::string& id) {
    for (const v1::RolloutTarget& target : rollout.targets())
      if (target.database_id() == id) return &target;
    return nullptr;
  }
  // Lines of `output` that start with a database id.
  static std::vector<std::string> DatabaseLines(const std::string& output) {
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(output, '\n')) {
      if (absl::StartsWith(line, "db-")) lines.emplace_back(line);
    }
    return lines;
  }

  std::string dir_;
  int port_ = 0;
  int server_starts_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::map<std::string, std::string> urls_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ConfigService::Stub> config_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
};

INSTANTIATE_TEST_SUITE_P(Engines, ConfigTest,
                         ::testing::Values(Engine::kSqlite,
                                           Engine::kPostgresql),
                         [](const auto& info) {
                           return info.param == Engine::kSqlite ? "SQLite"
                                                                : "PostgreSQL";
                         });

TEST_P(ConfigTest, BadValuesAreRefusedAndNothingChanges) {
  const size_t rollouts_before = Rollouts().size();
  struct Case {
    v1::SetConfigRequest request;
    std::string message;
  };
  std::vector<Case> cases = {
      {Change({Setting(kMaxFailed, "500")}),
       "Authentication.MaxFailedAttempts must be between 1 and 100; 500 is "
       "out of range"},
      {Change({Setting(kMaxFailed, "five")}),
       "Authentication.MaxFailedAttempts takes an int; \"five\" is not one"},
      {Change({Setting(kMetrics, "2")}),
       "Monitoring.EnableMetrics takes a bool"},
      {Change({Setting("Audit.Retention", "30")}),
       "unknown configuration key \"Audit.Retention\""},
      {Change({Setting(kRetention, "30")}, "  "), "reason is required"},
  };
  for (const Case& c : cases) {
    v1::Rollout ignored;
    const grpc::Status status = SetConfig(c.request, &ignored);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.message << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  // ecliptixctl says the same, on one line, and exits 1.
  const testing::CommandResult refused =
      Ctl({"config", "set", "Authentication.MaxFailedAttempts=500", "--all",
           "--reason=too many"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output,
              HasSubstr("ecliptixctl: INVALID_ARGUMENT: "
                        "Authentication.MaxFailedAttempts must be between 1 "
                        "and 100; 500 is out of range"));

  EXPECT_EQ(Rollouts().size(), rollouts_before) << "a rollout was created";
  for (const auto& [id, url] : urls_) {
    EXPECT_EQ(Value(id, kMaxFailed), "5") << id;
    EXPECT_EQ(Value(id, kMetrics), "1") << id;
    EXPECT_EQ(Value(id, kRetention), "365") << id;
    EXPECT_EQ(Changes(id, kMaxFailed), 0) << id;
    EXPECT_EQ(Changes(id, kRetention), 0) << id;
  }
}

TEST_P(ConfigTest, ChangeGoesOutCanaryFirstAndEveryDatabaseHoldsIt) {
  const testing::CommandResult set =
      Ctl({"config", "set", "Authentication.MaxFailedAttempts=3",
           "Audit.RetentionDays=90", "--selector=env=prod",
           "--reason=tighter lockout, shorter retention", "--watch"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  // The watch follows the canary, then the rest (wave 1 may have started
  // before the watch did: its snapshot shows it).
  const size_t canary_done = set.output.find("db-1 succeeded");
  const size_t rest = set.output.find("wave 2 started: db-2, db-3");
  ASSERT_NE(canary_done, std::string::npos) << set.output;
  ASSERT_NE(rest, std::string::npos) << set.output;
  EXPECT_LT(canary_done, rest) << set.output;

  const v1::Rollout rollout = Latest();
  ASSERT_TRUE(rollout.operation().has_config_change()) << rollout.DebugString();
  EXPECT_EQ(rollout.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(rollout.wave_count(), 2);
  const v1::RolloutTarget* canary = Target(rollout, "db-1");
  ASSERT_NE(canary, nullptr);
  EXPECT_EQ(canary->wave(), 1);
  for (const std::string& id : {"db-2", "db-3"}) {
    const v1::RolloutTarget* target = Target(rollout, id);
    ASSERT_NE(target, nullptr) << id;
    EXPECT_EQ(target->wave(), 2) << id;
    // The canary was done before the rest began.
    EXPECT_LE(FromProtoTimestamp(canary->finished_time()),
              FromProtoTimestamp(target->started_time()))
        << id;
  }
  EXPECT_EQ(Target(rollout, kStaging), nullptr);

  for (const std::string& id : Production()) {
    EXPECT_EQ(Value(id, kMaxFailed), "3") << id;
    EXPECT_EQ(Value(id, kRetention), "90") << id;
    EXPECT_EQ(Changes(id, kMaxFailed), 1) << id;
    EXPECT_EQ(Changes(id, kRetention), 1) << id;
  }
  EXPECT_EQ(Value(kStaging, kMaxFailed), "5");
  EXPECT_EQ(Value(kStaging, kRetention), "365");
  EXPECT_EQ(Changes(kStaging, kRetention), 0);

  // The control plane knows what it set and what is there: the same.
  const v1::GetConfigResponse known =
      GetConfig("env=prod", {kMaxFailed, kRetention});
  ASSERT_EQ(known.entries_size(), 6) << known.DebugString();
  for (const v1::ConfigEntry& entry : known.entries()) {
    EXPECT_TRUE(entry.desired_set()) << entry.DebugString();
    EXPECT_TRUE(entry.actual_known()) << entry.DebugString();
    EXPECT_EQ(entry.desired_value(), entry.actual_value());
    EXPECT_FALSE(entry.drift());
    EXPECT_EQ(entry.desired_by_rollout(), rollout.rollout_id());
  }
  const std::vector<v1::ConfigChange> history = History(kRetention);
  ASSERT_EQ(history.size(), 3u);
  for (const v1::ConfigChange& change : history) {
    EXPECT_EQ(change.previous_value(), "365");
    EXPECT_EQ(change.value(), "90");
    EXPECT_EQ(change.rollout_id(), rollout.rollout_id());
    EXPECT_EQ(change.reason(), "tighter lockout, shorter retention");
    EXPECT_FALSE(change.rollback());
  }
}

TEST_P(ConfigTest, DriftIsFoundAndSetRepairsIt) {
  v1::Rollout rollout;
  ASSERT_TRUE(SetConfig(Change({Setting(kRetention, "90")}), &rollout).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  const testing::CommandResult clean =
      Ctl({"config", "diff", "--selector=env=prod"});
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  EXPECT_EQ(clean.output, "no drift\n");

  // Changed behind the control plane's back, in one database.
  Execute("db-2", absl::StrCat("UPDATE ", Table("SystemConfiguration"),
                               " SET ConfigValue = '7' WHERE ConfigKey = '",
                               kRetention, "'"));
  const testing::CommandResult drift =
      Ctl({"config", "diff", "--selector=env=prod"});
  EXPECT_EQ(drift.exit_code, 1) << drift.output;
  const std::vector<std::string> lines = DatabaseLines(drift.output);
  ASSERT_EQ(lines.size(), 1u) << drift.output;
  EXPECT_THAT(lines[0], ::testing::MatchesRegex(
                            "db-2 +Audit\\.RetentionDays +90 +7 +drift"));

  // The API says the same, for the whole fleet.
  grpc::ClientContext context;
  v1::DiffConfigRequest request;
  request.set_all_databases(true);
  v1::GetConfigResponse diff;
  const grpc::Status status = config_->DiffConfig(&context, request, &diff);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(diff.entries_size(), 1) << diff.DebugString();
  EXPECT_EQ(diff.entries(0).database_id(), "db-2");
  EXPECT_EQ(diff.entries(0).key(), kRetention);
  EXPECT_EQ(diff.entries(0).desired_value(), "90");
  EXPECT_EQ(diff.entries(0).actual_value(), "7");
  EXPECT_TRUE(diff.entries(0).drift());
  EXPECT_THAT(diff.unread_databases(), IsEmpty());

  const testing::CommandResult repaired =
      Ctl({"config", "set", "Audit.RetentionDays=90", "--selector=env=prod",
           "--reason=repair drift", "--watch"});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.output;
  EXPECT_EQ(Value("db-2", kRetention), "90");
  const testing::CommandResult after =
      Ctl({"config", "diff", "--selector=env=prod"});
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_EQ(after.output, "no drift\n");
}

TEST_P(ConfigTest, FailingCanaryHaltsTheChangeAndChangesNothing) {
  RefuseChanges("db-1", kValidations);
  const testing::CommandResult set =
      Ctl({"config", "set", "Audit.RetentionDays=30", "Audit.LogValidations=1",
           "--selector=env=prod", "--reason=debug validations", "--watch"});
  EXPECT_EQ(set.exit_code, 1) << set.output;
  const v1::Rollout rollout = Latest();
  EXPECT_THAT(rollout.state(),
              AnyOf(v1::ROLLOUT_STATE_FAILED, v1::ROLLOUT_STATE_ROLLED_BACK))
      << rollout.DebugString();
  const v1::RolloutTarget* canary = Target(rollout, "db-1");
  ASSERT_NE(canary, nullptr);
  EXPECT_THAT(canary->state(),
              AnyOf(v1::TARGET_STATE_FAILED, v1::TARGET_STATE_ROLLED_BACK));
  for (const std::string& id : {"db-2", "db-3"}) {
    const v1::RolloutTarget* target = Target(rollout, id);
    ASSERT_NE(target, nullptr) << id;
    EXPECT_EQ(target->state(), v1::TARGET_STATE_SKIPPED) << id;
    EXPECT_EQ(Changes(id, kRetention), 0) << id;
    EXPECT_EQ(Changes(id, kValidations), 0) << id;
  }
  // Every database, the canary included, holds its previous values.
  for (const auto& [id, url] : urls_) {
    EXPECT_EQ(Value(id, kRetention), "365") << id;
    EXPECT_EQ(Value(id, kValidations), "0") << id;
  }
  EXPECT_THAT(History(kRetention, "db-2"), IsEmpty());
  EXPECT_THAT(History(kRetention, "db-3"), IsEmpty());
}

TEST_P(ConfigTest, FailureAfterTheCanaryPutsTheCanaryBack) {
  RefuseChanges("db-2", kRetention);
  v1::SetConfigRequest request = Change({Setting(kRetention, "30")});
  v1::Strategy& strategy = *request.mutable_strategy();
  strategy.add_waves("1");
  strategy.add_waves("2");
  strategy.add_waves("100%");
  strategy.set_failure_budget("0");
  strategy.set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
  v1::Rollout rollout;
  ASSERT_TRUE(SetConfig(request, &rollout).ok());
  ASSERT_TRUE(
      WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_ROLLED_BACK));
  // The canary was changed, then got its previous value back; db-3 was
  // never touched.
  EXPECT_EQ(Value("db-1", kRetention), "365");
  EXPECT_EQ(Changes("db-1", kRetention), 2);
  EXPECT_EQ(Value("db-2", kRetention), "365");
  EXPECT_EQ(Changes("db-2", kRetention), 0);
  EXPECT_EQ(Value("db-3", kRetention), "365");
  EXPECT_EQ(Changes("db-3", kRetention), 0);

  const std::vector<v1::ConfigChange> canary = History(kRetention, "db-1");
  ASSERT_EQ(canary.size(), 2u);
  EXPECT_TRUE(canary[0].rollback());
  EXPECT_EQ(canary[0].value(), "365");
  EXPECT_FALSE(canary[1].rollback());
  EXPECT_EQ(canary[1].value(), "30");
  const v1::GetConfigResponse known = GetConfig("env=prod", {kRetention});
  for (const v1::ConfigEntry& entry : known.entries()) {
    if (entry.database_id() != "db-1") continue;
    EXPECT_EQ(entry.desired_value(), "365");
    EXPECT_EQ(entry.actual_value(), "365");
    EXPECT_FALSE(entry.drift());
  }
}

TEST_P(ConfigTest, EmergencySwitchTurnsLoggingOffAndBackOn) {
  const testing::CommandResult off =
      Ctl({"emergency", "disable-logging", "--selector=env=prod",
           "--reason=audit log fills the disk", "--watch"});
  ASSERT_EQ(off.exit_code, 0) << off.output;
  const std::vector<std::string> lines = DatabaseLines(off.output);
  ASSERT_EQ(lines.size(), 3u) << off.output;
  for (const std::string& line : lines) {
    EXPECT_THAT(line, ::testing::MatchesRegex("db-[123] ok( [0-9.]+ m?s)?"));
  }
  EXPECT_THAT(off.output, HasSubstr("logging off on 3 of 3 databases\n"));
  for (const std::string& id : Production()) {
    EXPECT_EQ(Value(id, kMetrics), "0") << id;
    EXPECT_EQ(Value(id, kValidations), "0") << id;
  }
  EXPECT_EQ(Value(kStaging, kMetrics), "1");
  const v1::Rollout rollout = Latest();
  EXPECT_TRUE(rollout.operation().config_change().emergency());
  EXPECT_EQ(rollout.wave_count(), 1);
  EXPECT_THAT(rollout.gates(), IsEmpty());

  const testing::CommandResult on =
      Ctl({"emergency", "enable-logging", "--selector=env=prod",
           "--reason=disk extended", "--watch"});
  ASSERT_EQ(on.exit_code, 0) << on.output;
  EXPECT_THAT(on.output, HasSubstr("logging on on 3 of 3 databases\n"));
  // Back to the bundle's defaults: metrics on, validation auditing off.
  for (const std::string& id : Production()) {
    EXPECT_EQ(Value(id, kMetrics), "1") << id;
    EXPECT_EQ(Value(id, kValidations), "0") << id;
  }
  EXPECT_EQ(Value(kStaging, kMetrics), "1");
  EXPECT_EQ(Value(kStaging, kValidations), "0");
}

TEST_P(ConfigTest, ServerKilledDuringAWaveResumesWithoutWritingTwice) {
  std::map<std::string, int> calls_before;
  for (const std::string& id : Production()) calls_before[id] = SetCalls(id);
  v1::SetConfigRequest request =
      Change({Setting(kRetention, "90"), Setting(kOtp, "4")});
  v1::Strategy& strategy = *request.mutable_strategy();
  strategy.add_waves("1");
  strategy.add_waves("100%");
  strategy.set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
  // Held after the canary, so the second wave starts when the test says.
  strategy.set_approval_required(true);
  v1::Rollout rollout;
  ASSERT_TRUE(SetConfig(request, &rollout).ok());
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_PAUSED));
  {
    grpc::ClientContext context;
    v1::RolloutActionRequest resume;
    resume.set_rollout_id(rollout.rollout_id());
    resume.set_actor("alice");
    v1::Rollout resumed;
    ASSERT_TRUE(rollouts_->ResumeRollout(&context, resume, &resumed).ok());
  }
  // The second wave's commands are on their way or running.
  server_->Signal(SIGKILL);
  server_->Wait(absl::Seconds(10));
  StartServer();
  ASSERT_TRUE(WaitForState(rollout.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED,
                           absl::Seconds(120)));

  for (const std::string& id : Production()) {
    EXPECT_EQ(Value(id, kRetention), "90") << id;
    EXPECT_EQ(Value(id, kOtp), "4") << id;
    EXPECT_EQ(Changes(id, kRetention), 1) << id;
    EXPECT_EQ(Changes(id, kOtp), 1) << id;
    // One SetConfigValue call per key: nothing was written twice.
    EXPECT_EQ(SetCalls(id) - calls_before[id], 2) << id;
  }
  // One history row per database and key.
  std::map<std::pair<std::string, std::string>, int> rows;
  for (const std::string& key : {kRetention, kOtp}) {
    for (const v1::ConfigChange& change : History(key)) {
      if (change.rollout_id() != rollout.rollout_id()) continue;
      EXPECT_FALSE(change.rollback());
      ++rows[{change.database_id(), change.key()}];
    }
  }
  EXPECT_EQ(rows.size(), 6u);
  for (const auto& [at, count] : rows) {
    EXPECT_EQ(count, 1) << at.first << " " << at.second;
  }
  // What the restarted server knows: set and read, the same.
  const v1::GetConfigResponse known = GetConfig("env=prod", {kRetention, kOtp});
  ASSERT_EQ(known.entries_size(), 6);
  for (const v1::ConfigEntry& entry : known.entries()) {
    EXPECT_EQ(entry.desired_value(), entry.actual_value())
        << entry.DebugString();
    EXPECT_FALSE(entry.drift());
  }
}

}  // namespace
}  // namespace ecliptix
