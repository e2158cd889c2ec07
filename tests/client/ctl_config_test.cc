// ecliptixctl's config and emergency nouns: KEY=VALUE words and strategy
// flags into the SetConfigRequest (canary-first defaults), usage errors (exit
// 2, nothing sent), the tables, and each verb against a fake ConfigService and
// RolloutService in process: diff's exit status for scripts, the emergency
// switch's line per database as each is done.
#include "client/ctl_config.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/config_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_rollout_service.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::testing::kRolloutCreateSeconds;
using ::ecliptix::testing::MakeRollout;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// Answers with canned responses and records what it was asked.
class FakeConfigService final : public v1::ConfigService::Service {
 public:
  void SetRollout(v1::Rollout rollout) {
    absl::MutexLock lock(&mutex_);
    rollout_ = std::move(rollout);
  }
  void SetConfigResponse(v1::GetConfigResponse response) {
    absl::MutexLock lock(&mutex_);
    config_ = std::move(response);
  }
  void SetHistory(v1::GetConfigHistoryResponse history) {
    absl::MutexLock lock(&mutex_);
    history_ = std::move(history);
  }
  void SetError(std::optional<grpc::Status> error) {
    absl::MutexLock lock(&mutex_);
    error_ = std::move(error);
  }

  struct Calls {
    std::vector<std::string> methods;
    std::optional<v1::SetConfigRequest> set;
    std::optional<v1::GetConfigRequest> get;
    std::optional<v1::DiffConfigRequest> diff;
    std::optional<v1::GetConfigHistoryRequest> history;
    std::optional<v1::EmergencyLoggingRequest> logging;
  };
  Calls calls() {
    absl::MutexLock lock(&mutex_);
    return calls_;
  }

  grpc::Status SetConfig(grpc::ServerContext*,
                         const v1::SetConfigRequest* request,
                         v1::Rollout* response) override {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back("SetConfig");
    calls_.set = *request;
    if (error_) return *error_;
    *response = rollout_;
    return grpc::Status::OK;
  }
  grpc::Status GetConfig(grpc::ServerContext*,
                         const v1::GetConfigRequest* request,
                         v1::GetConfigResponse* response) override {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back("GetConfig");
    calls_.get = *request;
    if (error_) return *error_;
    *response = config_;
    return grpc::Status::OK;
  }
  grpc::Status DiffConfig(grpc::ServerContext*,
                          const v1::DiffConfigRequest* request,
                          v1::GetConfigResponse* response) override {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back("DiffConfig");
    calls_.diff = *request;
    if (error_) return *error_;
    *response = config_;
    return grpc::Status::OK;
  }
  grpc::Status GetConfigHistory(
      grpc::ServerContext*, const v1::GetConfigHistoryRequest* request,
      v1::GetConfigHistoryResponse* response) override {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back("GetConfigHistory");
    calls_.history = *request;
    if (error_) return *error_;
    *response = history_;
    return grpc::Status::OK;
  }
  grpc::Status DisableLogging(grpc::ServerContext*,
                              const v1::EmergencyLoggingRequest* request,
                              v1::Rollout* response) override {
    return Logging("DisableLogging", *request, response);
  }
  grpc::Status EnableLogging(grpc::ServerContext*,
                             const v1::EmergencyLoggingRequest* request,
                             v1::Rollout* response) override {
    return Logging("EnableLogging", *request, response);
  }

 private:
  grpc::Status Logging(const char* method,
                       const v1::EmergencyLoggingRequest& request,
                       v1::Rollout* response) {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back(method);
    calls_.logging = request;
    if (error_) return *error_;
    *response = rollout_;
    // As the server answers: the values it chose (on: the bundle's
    // defaults).
    const bool on = std::string(method) == "EnableLogging";
    for (const auto& [key, value] :
         {std::pair<std::string, std::string>{"Monitoring.EnableMetrics",
                                              on ? "1" : "0"},
          {"Audit.LogValidations", "0"}}) {
      v1::ConfigSetting* setting = response->mutable_operation()
                                       ->mutable_config_change()
                                       ->add_settings();
      setting->set_key(key);
      setting->set_value(value);
    }
    return grpc::Status::OK;
  }

  absl::Mutex mutex_;
  v1::Rollout rollout_ ABSL_GUARDED_BY(mutex_);
  v1::GetConfigResponse config_ ABSL_GUARDED_BY(mutex_);
  v1::GetConfigHistoryResponse history_ ABSL_GUARDED_BY(mutex_);
  std::optional<grpc::Status> error_ ABSL_GUARDED_BY(mutex_);
  Calls calls_ ABSL_GUARDED_BY(mutex_);
};

absl::StatusOr<v1::SetConfigRequest> Request(std::vector<std::string> args) {
  absl::StatusOr<Invocation> invocation =
      ParseCommandLine(Commands(), args, "");
  if (!invocation.ok()) return invocation.status();
  return SetConfigRequestFromFlags(*invocation, "erin@desk");
}

v1::ConfigSetting Setting(const std::string& key, const std::string& value) {
  v1::ConfigSetting setting;
  setting.set_key(key);
  setting.set_value(value);
  return setting;
}

google::protobuf::Timestamp At(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp time;
  time.set_seconds(kRolloutCreateSeconds + seconds);
  time.set_nanos(nanos);
  return time;
}

TEST(ConfigSettingsTest, SplitsAtTheFirstEquals) {
  absl::StatusOr<std::vector<v1::ConfigSetting>> settings =
      ParseSettings({"Audit.RetentionDays=365", "Note=a=b", "Empty="});
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_EQ(settings->size(), 3u);
  EXPECT_EQ((*settings)[0].key(), "Audit.RetentionDays");
  EXPECT_EQ((*settings)[0].value(), "365");
  EXPECT_EQ((*settings)[1].key(), "Note");
  EXPECT_EQ((*settings)[1].value(), "a=b");
  EXPECT_EQ((*settings)[2].value(), "");
}

TEST(ConfigSettingsTest, RefusesWhatIsNotKeyEqualsValue) {
  for (const auto& [words, message] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"Audit.RetentionDays"},
            "\"Audit.RetentionDays\" is not KEY=VALUE"},
           {{"=5"}, "\"=5\" has no key"},
           {{"A=1", "A=2"}, "key A is given twice"}}) {
    absl::StatusOr<std::vector<v1::ConfigSetting>> settings =
        ParseSettings(words);
    ASSERT_FALSE(settings.ok()) << words[0];
    EXPECT_TRUE(IsCommandUsageError(settings.status()));
    EXPECT_THAT(std::string(settings.status().message()), HasSubstr(message));
  }
}

TEST(ConfigSetFlagsTest, DefaultsAreCanaryFirstAndRollBackEverything) {
  absl::StatusOr<v1::SetConfigRequest> request = Request(
      {"config", "set", "Authentication.MaxFailedAttempts=5",
       "OTP.MaxAttempts=3", "--selector=env=prod", "--reason=runbook values"});
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->settings_size(), 2);
  EXPECT_EQ(request->settings(1).key(), "OTP.MaxAttempts");
  EXPECT_EQ(request->selector(), "env=prod");
  EXPECT_FALSE(request->all_databases());
  EXPECT_EQ(request->reason(), "runbook values");
  EXPECT_EQ(request->requested_by(), "erin@desk");
  EXPECT_EQ(request->bundle(), "");
  EXPECT_THAT(request->strategy().waves(), ElementsAre("1", "100%"));
  EXPECT_EQ(request->strategy().failure_budget(), "0");
  EXPECT_EQ(request->strategy().max_parallel(), 0);
  EXPECT_EQ(request->strategy().auto_rollback(), v1::AUTO_ROLLBACK_ROLLOUT);
}

TEST(ConfigSetFlagsTest, EveryFlag) {
  absl::StatusOr<v1::SetConfigRequest> request = Request(
      {"config", "set", "Audit.LogValidations=1", "--all", "--reason=debug",
       "--bundle=ecliptix@1.0.0", "--waves=2,50%,100%", "--max_parallel=4",
       "--failure_budget=1", "--no_auto_rollback", "--watch"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->all_databases());
  EXPECT_EQ(request->bundle(), "ecliptix@1.0.0");
  EXPECT_THAT(request->strategy().waves(), ElementsAre("2", "50%", "100%"));
  EXPECT_EQ(request->strategy().max_parallel(), 4);
  EXPECT_EQ(request->strategy().failure_budget(), "1");
  EXPECT_EQ(request->strategy().auto_rollback(), v1::AUTO_ROLLBACK_UNSPECIFIED);
}

TEST(ConfigSetFlagsTest, UsageErrors) {
  for (const auto& [args, message] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"config", "set", "A=1", "--reason=r"},
            "needs --selector=SELECTOR (e.g. env=prod) or --all"},
           {{"config", "set", "A=1", "--all", "--selector=env=prod",
             "--reason=r"},
            "--selector and --all exclude each other"},
           {{"config", "set", "A=1", "--all"}, "needs --reason=TEXT"},
           {{"config", "set", "A=1", "--all", "--reason= "},
            "needs --reason=TEXT"},
           {{"config", "set", "A", "--all", "--reason=r"},
            "\"A\" is not KEY=VALUE"},
           {{"config", "set", "A=1", "--all", "--reason=r", "--waves=0"},
            "flag --waves: wave \"0\" is empty"},
           {{"config", "set", "A=1", "--all", "--reason=r",
             "--failure_budget=lots"},
            "flag --failure_budget wants"}}) {
    absl::StatusOr<v1::SetConfigRequest> request = Request(args);
    ASSERT_FALSE(request.ok()) << absl::StrJoin(args, " ");
    EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(message))
        << absl::StrJoin(args, " ");
  }
  // No KEY=VALUE at all: the parser names what is missing.
  absl::StatusOr<Invocation> none =
      ParseCommandLine(Commands(), {"config", "set", "--all"}, "");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("\"config set\" needs KEY=VALUE..."));
}

TEST(ConfigTablesTest, ConfigTable) {
  v1::GetConfigResponse response;
  v1::ConfigEntry* set = response.add_entries();
  set->set_database_id("db-1");
  set->set_key("Audit.RetentionDays");
  set->set_desired_set(true);
  set->set_desired_value("90");
  set->set_actual_known(true);
  set->set_actual_value("7");
  set->set_drift(true);
  *set->mutable_actual_time() = At(0);
  v1::ConfigEntry* unknown = response.add_entries();
  unknown->set_database_id("db-2");
  unknown->set_key("Audit.RetentionDays");
  v1::ConfigEntry* missing = response.add_entries();
  missing->set_database_id("db-3");
  missing->set_key("Audit.RetentionDays");
  missing->set_actual_known(true);
  missing->set_actual_missing(true);
  *missing->mutable_actual_time() = At(30);
  EXPECT_EQ(
      ConfigTable(response, absl::FromUnixSeconds(kRolloutCreateSeconds + 60)),
      "DATABASE   KEY                   DESIRED   ACTUAL      DRIFT   "
      "UPDATED\n"
      "db-1       Audit.RetentionDays   90        7           yes     "
      "60s ago\n"
      "db-2       Audit.RetentionDays   -         ?           -       "
      "never\n"
      "db-3       Audit.RetentionDays   -         <missing>   -       "
      "30s ago\n");
  EXPECT_EQ(DriftTable(response),
            "DATABASE   KEY                   DESIRED   ACTUAL      FINDING\n"
            "db-1       Audit.RetentionDays   90        7           drift\n"
            "db-2       Audit.RetentionDays   -         ?           unknown\n"
            "db-3       Audit.RetentionDays   -         <missing>   missing\n");
}

TEST(ConfigTablesTest, HistoryTableMarksRollbacks) {
  v1::GetConfigHistoryResponse history;
  v1::ConfigChange* rollback = history.add_changes();
  rollback->set_database_id("db-1");
  rollback->set_key("Audit.RetentionDays");
  rollback->set_previous_value("30");
  rollback->set_value("365");
  rollback->set_rollout_id("r-3");
  rollback->set_reason("shorter retention");
  rollback->set_actor("alice");
  rollback->set_rollback(true);
  *rollback->mutable_change_time() = At(2);
  v1::ConfigChange* change = history.add_changes();
  *change = *rollback;
  change->set_previous_value("365");
  change->set_value("30");
  change->set_rollback(false);
  *change->mutable_change_time() = At(1, 500'000'000);
  EXPECT_EQ(HistoryTable(history),
            "TIME                       DATABASE   KEY                   "
            "CHANGE                 ROLLOUT   BY      REASON\n"
            "2023-11-14T22:13:22.000Z   db-1       Audit.RetentionDays   "
            "30 -> 365 (rollback)   r-3       alice   shorter retention\n"
            "2023-11-14T22:13:21.500Z   db-1       Audit.RetentionDays   "
            "365 -> 30              r-3       alice   shorter retention\n");
}

TEST(ConfigTablesTest, EmergencyLines) {
  v1::RolloutTarget target;
  target.set_database_id("db-1");
  target.set_state(v1::TARGET_STATE_RUNNING);
  EXPECT_EQ(EmergencyLine(target), "");
  target.set_state(v1::TARGET_STATE_SUCCEEDED);
  *target.mutable_started_time() = At(1);
  *target.mutable_finished_time() = At(1, 210'000'000);
  EXPECT_EQ(EmergencyLine(target), "db-1 ok 210 ms");
  target.set_state(v1::TARGET_STATE_FAILED);
  target.set_error("failed in step set: disk full");
  EXPECT_EQ(EmergencyLine(target),
            "db-1 failed: failed in step set: disk full");
}

// The fake services on a port of their own.
class CtlConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&config_);
    builder.RegisterService(&rollouts_);
    server_ = builder.BuildAndStart();
    address_ = absl::StrCat("127.0.0.1:", port);
    config_.SetRollout(MakeRollout());
    rollouts_.SetRollout(MakeRollout());
    context_.out = &out_;
    context_.err = &err_;
    context_.now = [] {
      return absl::FromUnixSeconds(kRolloutCreateSeconds + 60);
    };
    context_.user = "erin@desk";
    context_.time_zone = absl::UTCTimeZone();
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }

  int Run(std::vector<std::string> args) {
    context_.env_server = address_;
    return RunCtl(args, context_);
  }
  std::vector<std::string> OutLines() const {
    return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  }

  FakeConfigService config_;
  testing::FakeRolloutService rollouts_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::ostringstream out_;
  std::ostringstream err_;
  CtlContext context_;
};

TEST_F(CtlConfigTest, UsageErrorsExitTwoAndSendNothing) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"config", "set", "--all", "--reason=r"},
           {"config", "set", "A=1", "--reason=r"},
           {"config", "set", "A=1", "--all"},
           {"config", "diff"},
           {"config", "diff", "--all", "--wait=soon"},
           {"emergency", "disable-logging", "--all"},
           {"emergency", "enable-logging", "--reason=r"},
           {"emergency", "disable-logging", "--all", "--selector=x",
            "--reason=r"}}) {
    out_.str("");
    err_.str("");
    EXPECT_EQ(Run(args), kExitUsage) << absl::StrJoin(args, " ");
    EXPECT_THAT(err_.str(), StartsWith("ecliptixctl: INVALID_ARGUMENT: "));
    EXPECT_EQ(out_.str(), "");
  }
  EXPECT_THAT(config_.calls().methods, IsEmpty());
}

TEST_F(CtlConfigTest, SetPrintsTheRolloutAndSendsTheRequest) {
  EXPECT_EQ(Run({"config", "set", "Audit.RetentionDays=90",
                 "--selector=env=prod", "--reason=shorter retention"}),
            kExitOk)
      << err_.str();
  const std::vector<std::string> lines = OutLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], StartsWith("rollout r-7 created: ecliptix@1.2.0 to 3 "
                                   "databases in 2 waves (1, 2)"));
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[1], "  settings: Audit.RetentionDays=90");
  const auto calls = config_.calls();
  ASSERT_TRUE(calls.set.has_value());
  EXPECT_EQ(calls.set->requested_by(), "erin@desk");
  EXPECT_EQ(calls.set->reason(), "shorter retention");
  EXPECT_THAT(calls.set->strategy().waves(), ElementsAre("1", "100%"));
}

TEST_F(CtlConfigTest, SetWatchFollowsTheRolloutAndExitsByItsOutcome) {
  rollouts_.SetEvents(
      testing::ScriptedRolloutEvents(v1::ROLLOUT_STATE_SUCCEEDED));
  EXPECT_EQ(Run({"config", "set", "Audit.RetentionDays=90", "--all",
                 "--reason=r", "--watch"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("rollout succeeded"));
  rollouts_.SetEvents(testing::ScriptedRolloutEvents(v1::ROLLOUT_STATE_FAILED));
  EXPECT_EQ(Run({"config", "set", "Audit.RetentionDays=90", "--all",
                 "--reason=r", "--watch"}),
            kExitFailure);
}

TEST_F(CtlConfigTest, ServerRefusalExitsOne) {
  config_.SetError(grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      "Authentication.MaxFailedAttempts must be between 1 and 100; 500 is out "
      "of range"));
  EXPECT_EQ(Run({"config", "set", "Authentication.MaxFailedAttempts=500",
                 "--all", "--reason=r"}),
            kExitFailure);
  EXPECT_EQ(err_.str(),
            "ecliptixctl: INVALID_ARGUMENT: Authentication.MaxFailedAttempts "
            "must be between 1 and 100; 500 is out of range\n");
}

TEST_F(CtlConfigTest, GetSendsSelectorAndKeys) {
  v1::GetConfigResponse response;
  v1::ConfigEntry* entry = response.add_entries();
  entry->set_database_id("db-1");
  entry->set_key("Audit.RetentionDays");
  config_.SetConfigResponse(response);
  EXPECT_EQ(Run({"config", "get", "--selector=env=prod",
                 "--key=Audit.RetentionDays", "--key=OTP.MaxAttempts"}),
            kExitOk);
  const auto calls = config_.calls();
  ASSERT_TRUE(calls.get.has_value());
  EXPECT_EQ(calls.get->selector(), "env=prod");
  EXPECT_THAT(calls.get->keys(),
              ElementsAre("Audit.RetentionDays", "OTP.MaxAttempts"));
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("DATABASE"), StartsWith("db-1 ")));
}

TEST_F(CtlConfigTest, DiffExitsZeroOnlyWithoutDrift) {
  EXPECT_EQ(Run({"config", "diff", "--all", "--wait=5s"}), kExitOk);
  EXPECT_EQ(out_.str(), "no drift\n");
  const auto calls = config_.calls();
  ASSERT_TRUE(calls.diff.has_value());
  EXPECT_TRUE(calls.diff->all_databases());
  EXPECT_EQ(calls.diff->timeout().seconds(), 5);

  v1::GetConfigResponse drift;
  v1::ConfigEntry* entry = drift.add_entries();
  entry->set_database_id("db-3");
  entry->set_key("Audit.RetentionDays");
  entry->set_desired_set(true);
  entry->set_desired_value("90");
  entry->set_actual_known(true);
  entry->set_actual_value("7");
  entry->set_drift(true);
  drift.add_unread_databases("db-4: agent offline");
  config_.SetConfigResponse(drift);
  out_.str("");
  EXPECT_EQ(Run({"config", "diff", "--selector=env=prod"}), kExitFailure);
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("DATABASE"),
                          "db-3       Audit.RetentionDays   90        7        "
                          "drift",
                          "not read: db-4: agent offline"));
  EXPECT_EQ(err_.str(), "");

  // Only a database not read: not a clean bill.
  drift.clear_entries();
  config_.SetConfigResponse(drift);
  out_.str("");
  EXPECT_EQ(Run({"config", "diff", "--all"}), kExitFailure);
  EXPECT_THAT(OutLines(), ElementsAre("no drift on the databases read",
                                      "not read: db-4: agent offline"));
  out_.str("");
  EXPECT_EQ(Run({"config", "diff", "--all", "-o", "json"}), kExitFailure);
  EXPECT_THAT(out_.str(), HasSubstr("\"unreadDatabases\":"));
}

TEST_F(CtlConfigTest, HistoryAsksForKeyDatabaseAndLimit) {
  EXPECT_EQ(Run({"config", "history", "--key=Audit.RetentionDays",
                 "--database=db-1", "--limit=5"}),
            kExitOk);
  EXPECT_EQ(err_.str(), "No configuration changes found.\n");
  const auto calls = config_.calls();
  ASSERT_TRUE(calls.history.has_value());
  EXPECT_EQ(calls.history->key(), "Audit.RetentionDays");
  EXPECT_EQ(calls.history->database_id(), "db-1");
  EXPECT_EQ(calls.history->limit(), 5);
}

// The switch's rollout: db-1 done in 210 ms, db-2 failed, db-3 done.
std::vector<v1::RolloutEvent> SwitchEvents() {
  std::vector<v1::RolloutEvent> events;
  auto next = [&events](int64_t seconds, int32_t nanos) -> v1::RolloutEvent& {
    v1::RolloutEvent& event = events.emplace_back();
    event.set_sequence(static_cast<int64_t>(events.size()));
    *event.mutable_event_time() = At(seconds, nanos);
    return event;
  };
  next(1, 0).mutable_state_changed()->set_state(v1::ROLLOUT_STATE_RUNNING);
  for (const char* id : {"db-1", "db-2", "db-3"}) {
    v1::TargetStateChanged* running = next(1, 0).mutable_target();
    running->set_database_id(id);
    running->set_state(v1::TARGET_STATE_RUNNING);
  }
  v1::TargetStateChanged* one = next(1, 210'000'000).mutable_target();
  one->set_database_id("db-1");
  one->set_state(v1::TARGET_STATE_SUCCEEDED);
  v1::TargetStateChanged* two = next(1, 300'000'000).mutable_target();
  two->set_database_id("db-2");
  two->set_state(v1::TARGET_STATE_FAILED);
  two->set_error("failed in step set: disk full");
  two->set_counts_against_budget(true);
  v1::TargetStateChanged* three = next(2, 500'000'000).mutable_target();
  three->set_database_id("db-3");
  three->set_state(v1::TARGET_STATE_SUCCEEDED);
  next(2, 500'000'000)
      .mutable_state_changed()
      ->set_state(v1::ROLLOUT_STATE_SUCCEEDED);
  return events;
}

TEST_F(CtlConfigTest, EmergencyWatchPrintsALinePerDatabase) {
  rollouts_.SetEvents(SwitchEvents());
  EXPECT_EQ(Run({"emergency", "disable-logging", "--selector=env=prod",
                 "--reason=audit log fills the disk", "--watch"}),
            kExitFailure)
      << err_.str();
  EXPECT_THAT(
      OutLines(),
      ElementsAre("rollout r-7: logging off (Monitoring.EnableMetrics=0, "
                  "Audit.LogValidations=0) on 3 databases at once",
                  "db-1 ok 210 ms",
                  "db-2 failed: failed in step set: disk full", "db-3 ok 1.5 s",
                  "logging off on 2 of 3 databases; not switched: db-2"));
  const auto calls = config_.calls();
  EXPECT_THAT(calls.methods, ElementsAre("DisableLogging"));
  ASSERT_TRUE(calls.logging.has_value());
  EXPECT_EQ(calls.logging->selector(), "env=prod");
  EXPECT_EQ(calls.logging->reason(), "audit log fills the disk");
  EXPECT_EQ(calls.logging->requested_by(), "erin@desk");
}

TEST_F(CtlConfigTest, EmergencyWithoutWatchPrintsTheRollout) {
  EXPECT_EQ(Run({"emergency", "enable-logging", "--all",
                 "--reason=disk "
                 "extended"}),
            kExitOk);
  EXPECT_THAT(
      OutLines(),
      ElementsAre("rollout r-7: logging on (Monitoring.EnableMetrics=1, "
                  "Audit.LogValidations=0) on 3 databases at once",
                  "follow it: ecliptixctl rollout watch r-7"));
  EXPECT_THAT(config_.calls().methods, ElementsAre("EnableLogging"));
  EXPECT_TRUE(config_.calls().logging->all_databases());
}

TEST_F(CtlConfigTest, HelpOnEveryVerb) {
  for (const auto& [args, text] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"config", "--help"}, "config diff"},
           {{"config", "set", "--help"}, "one canary"},
           {{"config", "diff", "--help"}, "Exit status: 0 and 'no drift'"},
           {{"config", "get", "--help"}, "DESIRED"},
           {{"config", "history", "--help"}, "(rollback)"},
           {{"emergency", "disable-logging", "--help"}, "db-1 ok 210 ms"},
           {{"emergency", "enable-logging", "--help"}, "--reason=TEXT"}}) {
    out_.str("");
    EXPECT_EQ(Run(args), kExitOk);
    EXPECT_THAT(out_.str(), HasSubstr(text)) << absl::StrJoin(args, " ");
  }
}

}  // namespace
}  // namespace ecliptix::client::ctl
