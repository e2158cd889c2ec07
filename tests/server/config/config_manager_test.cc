// ConfigManager over the real server core (store, registry, bundle catalog,
// orchestrator) in process, with agents that answer configuration commands
// the way ecliptix-agent does (a value store per database, transactional
// applies, a journal of command ids): values checked before anything is
// sent, changes in waves with the canary first, the previous values stored
// again after a failure, drift, the emergency switch, history, and records
// rebuilt after a crash.
#include "server/config/config_manager.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/proto_time.h"
#include "common/rollout_names.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kManifest[] = R"(name: "conf"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps { name: "t" kind: STEP_KIND_VERSIONED sql { sqlite: "sqlite/t.sql" } }
}
operations {
  name: "GetConfigValue"
  parameters { name: "ConfigKey" type: "text" }
  sql { sqlite: "SELECT 1;" }
}
operations {
  name: "SetConfigValue"
  parameters { name: "ConfigKey" type: "text" }
  parameters { name: "ConfigValue" type: "text" }
  sql { sqlite: "SELECT 1;" }
}
config {
  get_operation: "GetConfigValue"
  set_operation: "SetConfigValue"
  keys { key: "Authentication.MaxFailedAttempts" type: "int" default_value: "5" min_value: "1" max_value: "100" }
  keys { key: "Audit.RetentionDays" type: "int" default_value: "365" min_value: "1" max_value: "3650" }
  keys { key: "Monitoring.EnableMetrics" type: "bool" default_value: "1" }
  keys { key: "Audit.LogValidations" type: "bool" default_value: "0" }
}
)";

// An agent with a key/value store for a database: applies the settings of a
// command in order and, when one is refused, sets the earlier ones back and
// reports what they hold (as ecliptix-agent does); reports each key's value
// before and after, reads keys, and answers a command id it has seen again
// without running it twice.
class FakeConfigAgent : public AgentSession {
 public:
  // Time passes on `clock` before each answer, so that events of later
  // commands are stamped later.
  FakeConfigAgent(Registry* registry, FakeClock* clock,
                  std::map<std::string, std::string> values)
      : registry_(registry), clock_(clock), values_(std::move(values)) {}
  ~FakeConfigAgent() override { StopAnswering(); }

  void Answer(uint64_t session_id) {
    session_id_ = session_id;
    thread_ = std::thread([this] { Loop(); });
  }
  void StopAnswering() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  void Send(v1::ServerMessage message) override {
    if (!message.has_command() || message.command().has_cancel()) return;
    absl::MutexLock lock(&mutex_);
    inbox_.push_back(message.command());
    received_.push_back(message.command());
  }
  void Close(const absl::Status&) override {}

  // Every later change of `key` fails (a trigger refusing it).
  void Refuse(const std::string& key) {
    absl::MutexLock lock(&mutex_);
    refused_.insert(key);
  }
  // Commands are taken and never answered.
  void Silence() {
    absl::MutexLock lock(&mutex_);
    silent_ = true;
  }
  // Changed behind the control plane's back.
  void Put(const std::string& key, const std::string& value) {
    absl::MutexLock lock(&mutex_);
    values_[key] = value;
  }
  std::string Value(const std::string& key) {
    absl::MutexLock lock(&mutex_);
    auto it = values_.find(key);
    return it == values_.end() ? "<missing>" : it->second;
  }
  // How many times each key was written.
  int Writes(const std::string& key) {
    absl::MutexLock lock(&mutex_);
    return writes_[key];
  }
  std::vector<v1::Command> received() {
    absl::MutexLock lock(&mutex_);
    return received_;
  }

 private:
  void Loop() {
    while (true) {
      v1::Command command;
      {
        absl::MutexLock lock(&mutex_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
          return stopping_ || !inbox_.empty();
        };
        mutex_.Await(absl::Condition(&ready));
        if (stopping_) return;
        command = inbox_.front();
        inbox_.pop_front();
        if (silent_) continue;
      }
      clock_->Advance(absl::Milliseconds(1));
      std::vector<v1::AgentMessage> answers = Run(command);
      for (const v1::AgentMessage& answer : answers)
        registry_->OnCommandMessage(session_id_, answer);
    }
  }

  std::vector<v1::AgentMessage> Run(const v1::Command& command) {
    absl::MutexLock lock(&mutex_);
    auto journaled = journal_.find(command.command_id());
    if (journaled != journal_.end()) return journaled->second;
    std::vector<v1::AgentMessage> answers;
    v1::AgentMessage ack;
    ack.mutable_command_ack()->set_command_id(command.command_id());
    answers.push_back(ack);
    auto event = [&]() -> v1::CommandEvent& {
      v1::AgentMessage& message = answers.emplace_back();
      message.mutable_command_event()->set_command_id(command.command_id());
      return *message.mutable_command_event();
    };
    v1::Status outcome;
    if (command.has_apply_config()) {
      // In order; when one fails, the earlier ones are set back (latest
      // first) and reported as they are then, as ecliptix-agent does.
      struct Applied {
        std::string key;
        std::optional<std::string> previous;
      };
      std::vector<Applied> applied;
      std::string failed;
      for (const v1::ConfigSetting& setting :
           command.apply_config().settings()) {
        if (refused_.count(setting.key()) > 0) {
          failed = setting.key();
          break;
        }
        auto before = values_.find(setting.key());
        applied.push_back(
            {setting.key(), before == values_.end()
                                ? std::nullopt
                                : std::optional<std::string>(before->second)});
        values_[setting.key()] = setting.value();
        ++writes_[setting.key()];
      }
      auto report = [&](const Applied& done) {
        v1::ConfigValueReport& value = *event().mutable_config_value();
        value.set_key(done.key);
        value.set_previous_missing(!done.previous.has_value());
        value.set_previous_value(done.previous.value_or(""));
        value.set_value(values_[done.key]);
        value.set_present(true);
      };
      if (failed.empty()) {
        for (const Applied& done : applied) report(done);
      } else {
        for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
          if (it->previous.has_value()) {
            values_[it->key] = *it->previous;
            ++writes_[it->key];
          }
          report(*it);
        }
        outcome.set_code(static_cast<int>(absl::StatusCode::kAborted));
        outcome.set_message(absl::StrCat("setting ", failed,
                                         " failed: change refused by trigger"));
      }
    } else if (command.has_read_config()) {
      std::vector<std::string> keys(command.read_config().keys().begin(),
                                    command.read_config().keys().end());
      if (keys.empty()) {
        keys = {"Authentication.MaxFailedAttempts", "Audit.RetentionDays",
                "Monitoring.EnableMetrics", "Audit.LogValidations"};
      }
      for (const std::string& key : keys) {
        v1::ConfigValueReport& report = *event().mutable_config_value();
        report.set_key(key);
        auto it = values_.find(key);
        report.set_present(it != values_.end());
        if (it != values_.end()) report.set_value(it->second);
      }
    } else {
      outcome.set_code(static_cast<int>(absl::StatusCode::kUnimplemented));
      outcome.set_message("command kind not supported");
    }
    *event().mutable_finished() = outcome;
    journal_[command.command_id()] = answers;
    return answers;
  }

  Registry* const registry_;
  FakeClock* const clock_;
  uint64_t session_id_ = 0;
  std::thread thread_;
  absl::Mutex mutex_;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, int> writes_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> refused_ ABSL_GUARDED_BY(mutex_);
  std::deque<v1::Command> inbox_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::Command> received_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::vector<v1::AgentMessage>> journal_
      ABSL_GUARDED_BY(mutex_);
  bool silent_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
};

v1::ConfigSetting Setting(const std::string& key, const std::string& value) {
  v1::ConfigSetting setting;
  setting.set_key(key);
  setting.set_value(value);
  return setting;
}

class ConfigManagerTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    RolloutOptions options;
    options.tick = absl::Milliseconds(5);
    OpenCore(options);
    absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
        {testing::File("manifest.textproto", kManifest),
         testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_id_ = bundle->bundle_id();
    StartConfig();
    ASSERT_TRUE(orchestrator_->Start().ok());
    for (const char* id : {"db-1", "db-2", "db-3", "db-4"}) Connect(id);
  }

  void TearDown() override {
    orchestrator_->Stop();
    config_->Stop();
    for (auto& [id, agent] : agents_) agent->StopAnswering();
    registry_->Stop();
  }

  void StartConfig() {
    ConfigOptions options;
    options.read_offline_deadline = absl::Milliseconds(100);
    config_ = std::make_unique<ConfigManager>(store_.get(), registry_.get(),
                                              bundles_.get(),
                                              orchestrator_.get(), options);
    ASSERT_TRUE(config_->Start().ok());
  }

  // Stops the orchestrator and the configuration, and makes a new
  // orchestrator (not started) as a restarted server would. The old one stays
  // alive: the registry still knows it as an observer.
  void Restart() {
    orchestrator_->Stop();
    config_->Stop();
    retired_.push_back(std::move(orchestrator_));
    RolloutOptions options;
    options.tick = absl::Milliseconds(5);
    orchestrator_ = std::make_unique<RolloutOrchestrator>(
        store_.get(), registry_.get(), bundles_.get(), &clock_, options);
  }

  void Connect(const std::string& id) {
    auto agent = std::make_shared<FakeConfigAgent>(
        registry_.get(), &clock_,
        std::map<std::string, std::string>{
            {"Authentication.MaxFailedAttempts", "5"},
            {"Audit.RetentionDays", "365"},
            {"Monitoring.EnableMetrics", "1"},
            {"Audit.LogValidations", "0"}});
    v1::Hello hello = testing::MakeHello(id, {{"env", "prod"}});
    hello.add_capabilities("config");
    absl::StatusOr<Registration> registration =
        registry_->Register(hello, "peer", agent);
    ASSERT_TRUE(registration.ok()) << registration.status();
    agent->Answer(registration->session_id);
    agents_[id] = agent;
  }

  absl::StatusOr<v1::Rollout> Set(const v1::SetConfigRequest& request) {
    return RolloutOrchestrator::Await<v1::Rollout>(
        [&](auto done) { config_->Set(request, std::move(done)); });
  }

  v1::SetConfigRequest Change(std::vector<v1::ConfigSetting> settings,
                              const std::string& selector = "env=prod") {
    v1::SetConfigRequest request;
    for (v1::ConfigSetting& setting : settings)
      *request.add_settings() = std::move(setting);
    request.set_selector(selector);
    request.set_reason("runbook: essential configuration");
    request.set_requested_by("alice");
    return request;
  }

  absl::StatusOr<v1::Rollout> Logging(bool enabled,
                                      const std::string& selector) {
    v1::EmergencyLoggingRequest request;
    request.set_selector(selector);
    request.set_reason("audit log fills the disk");
    request.set_requested_by("bob");
    return RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
      config_->SetLogging(request, enabled, std::move(done));
    });
  }

  absl::StatusOr<v1::GetConfigResponse> Diff(
      const std::string& selector, std::vector<std::string> keys = {},
      absl::Duration timeout = absl::ZeroDuration()) {
    v1::DiffConfigRequest request;
    request.set_selector(selector);
    for (const std::string& key : keys) request.add_keys(key);
    if (timeout > absl::ZeroDuration())
      *request.mutable_timeout() = ToProtoDuration(timeout);
    return RolloutOrchestrator::Await<v1::GetConfigResponse>(
        [&](auto done) { config_->Diff(request, "carol", std::move(done)); });
  }

  std::vector<v1::ConfigChange> History(const std::string& key = "",
                                        const std::string& database = "") {
    EXPECT_TRUE(config_->Flush().ok());
    v1::GetConfigHistoryRequest request;
    request.set_key(key);
    request.set_database_id(database);
    request.set_limit(1000);
    absl::StatusOr<v1::GetConfigHistoryResponse> response =
        RolloutOrchestrator::Await<v1::GetConfigHistoryResponse>(
            [&](auto done) { config_->History(request, std::move(done)); });
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    return {response->changes().begin(), response->changes().end()};
  }

  // The rollout once it reached a final state.
  v1::Rollout Finished(const std::string& rollout_id) {
    v1::Rollout rollout;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::Rollout> got = RolloutOrchestrator::Await<v1::Rollout>(
          [&](auto done) { orchestrator_->Get(rollout_id, std::move(done)); });
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) return rollout;
      rollout = *got;
      if (IsFinalState(rollout.state())) return rollout;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "rollout " << rollout_id
                  << " did not finish: " << rollout.DebugString();
    return rollout;
  }

  v1::ConfigEntry Entry(const std::string& database, const std::string& key) {
    v1::GetConfigRequest request;
    request.add_keys(key);
    absl::StatusOr<v1::GetConfigResponse> response = config_->Get(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (response.ok()) {
      for (const v1::ConfigEntry& entry : response->entries())
        if (entry.database_id() == database) return entry;
    }
    return v1::ConfigEntry();
  }

  int RolloutCount() {
    absl::StatusOr<v1::ListRolloutsResponse> listed =
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>([&](auto done) {
          orchestrator_->List(v1::ListRolloutsRequest(), std::move(done));
        });
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.ok() ? listed->rollouts_size() : -1;
  }

  std::string bundle_id_;
  std::unique_ptr<ConfigManager> config_;
  std::vector<std::unique_ptr<RolloutOrchestrator>> retired_;
  std::map<std::string, std::shared_ptr<FakeConfigAgent>> agents_;
};

TEST_F(ConfigManagerTest, RefusesBadRequestsBeforeAnythingIsSent) {
  struct Case {
    v1::SetConfigRequest request;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({Change({Setting("Authentication.MaxFailedAttempts", "500")}),
                   "Authentication.MaxFailedAttempts must be between 1 and "
                   "100; 500 is out of range"});
  cases.push_back(
      {Change({Setting("Authentication.MaxFailedAttempts", "five")}),
       "Authentication.MaxFailedAttempts takes an int; \"five\" "
       "is not one"});
  cases.push_back({Change({Setting("Monitoring.EnableMetrics", "yes")}),
                   "Monitoring.EnableMetrics takes a bool written 0 or 1"});
  cases.push_back({Change({Setting("Authentication.MaxFailedAttempt", "5")}),
                   "unknown configuration key "
                   "\"Authentication.MaxFailedAttempt\": bundle conf@1.0.0 "
                   "declares Authentication.MaxFailedAttempts"});
  cases.push_back({Change({Setting("Audit.RetentionDays", "90"),
                           Setting("Audit.RetentionDays", "30")}),
                   "Audit.RetentionDays is set twice"});
  {
    v1::SetConfigRequest no_reason =
        Change({Setting("Audit.RetentionDays", "90")});
    no_reason.set_reason("  ");
    cases.push_back({no_reason, "reason is required"});
  }
  {
    v1::SetConfigRequest no_selector =
        Change({Setting("Audit.RetentionDays", "90")}, "");
    cases.push_back({no_selector, "selector is required"});
  }
  cases.push_back({Change({}), "settings is required"});
  {
    v1::SetConfigRequest unknown_bundle =
        Change({Setting("Audit.RetentionDays", "90")});
    unknown_bundle.set_bundle("nope@9");
    cases.push_back({unknown_bundle, "nope@9"});
  }
  for (const Case& c : cases) {
    absl::StatusOr<v1::Rollout> rollout = Set(c.request);
    ASSERT_FALSE(rollout.ok()) << c.request.DebugString();
    EXPECT_EQ(rollout.status().code(), c.request.bundle().empty()
                                           ? absl::StatusCode::kInvalidArgument
                                           : absl::StatusCode::kNotFound)
        << rollout.status();
    EXPECT_THAT(std::string(rollout.status().message()), HasSubstr(c.message));
  }
  EXPECT_EQ(RolloutCount(), 0);
  for (auto& [id, agent] : agents_) {
    EXPECT_THAT(agent->received(), IsEmpty()) << id;
    EXPECT_EQ(agent->Value("Authentication.MaxFailedAttempts"), "5");
  }
}

TEST_F(ConfigManagerTest, ChangeGoesOutCanaryFirstAndIsRecorded) {
  absl::StatusOr<v1::Rollout> created =
      Set(Change({Setting("Authentication.MaxFailedAttempts", "3"),
                  Setting("Audit.RetentionDays", "90")}));
  ASSERT_TRUE(created.ok()) << created.status();
  // The default strategy: canary, then the rest; nothing tolerated; undone
  // everywhere on failure.
  EXPECT_THAT(created->strategy().waves(), ElementsAre("1", "100%"));
  EXPECT_EQ(created->strategy().auto_rollback(), v1::AUTO_ROLLBACK_ROLLOUT);
  EXPECT_EQ(created->wave_count(), 2);
  EXPECT_EQ(created->created_by(), "alice");
  EXPECT_TRUE(created->operation().has_config_change());
  const v1::Rollout rollout = Finished(created->rollout_id());
  ASSERT_EQ(rollout.state(), v1::ROLLOUT_STATE_SUCCEEDED)
      << rollout.DebugString();
  int canaries = 0;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    canaries += target.wave() == 1;
    EXPECT_EQ(target.config_previous().at("Authentication.MaxFailedAttempts"),
              "5");
  }
  EXPECT_EQ(canaries, 1);
  for (auto& [id, agent] : agents_) {
    EXPECT_EQ(agent->Value("Authentication.MaxFailedAttempts"), "3") << id;
    EXPECT_EQ(agent->Value("Audit.RetentionDays"), "90") << id;
    const v1::ConfigEntry entry = Entry(id, "Authentication.MaxFailedAttempts");
    EXPECT_TRUE(entry.desired_set());
    EXPECT_EQ(entry.desired_value(), "3");
    EXPECT_EQ(entry.actual_value(), "3");
    EXPECT_FALSE(entry.drift());
    EXPECT_EQ(entry.desired_by_rollout(), rollout.rollout_id());
  }
  const std::vector<v1::ConfigChange> history = History();
  ASSERT_EQ(history.size(), 8u);
  for (const v1::ConfigChange& change : history) {
    EXPECT_EQ(change.rollout_id(), rollout.rollout_id());
    EXPECT_EQ(change.actor(), "alice");
    EXPECT_EQ(change.reason(), "runbook: essential configuration");
    EXPECT_FALSE(change.rollback());
  }
  const std::vector<v1::ConfigChange> one =
      History("Authentication.MaxFailedAttempts", "db-2");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].previous_value(), "5");
  EXPECT_EQ(one[0].value(), "3");
}

TEST_F(ConfigManagerTest, DiffFindsDriftAndSetRepairsIt) {
  ASSERT_TRUE(
      Finished(
          Set(Change({Setting("Audit.RetentionDays", "90")}))->rollout_id())
          .state() == v1::ROLLOUT_STATE_SUCCEEDED);
  absl::StatusOr<v1::GetConfigResponse> clean = Diff("env=prod");
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_THAT(clean->entries(), IsEmpty());
  EXPECT_THAT(clean->unread_databases(), IsEmpty());

  agents_["db-3"]->Put("Audit.RetentionDays", "7");
  absl::StatusOr<v1::GetConfigResponse> drift = Diff("env=prod");
  ASSERT_TRUE(drift.ok()) << drift.status();
  ASSERT_EQ(drift->entries_size(), 1) << drift->DebugString();
  EXPECT_EQ(drift->entries(0).database_id(), "db-3");
  EXPECT_EQ(drift->entries(0).key(), "Audit.RetentionDays");
  EXPECT_EQ(drift->entries(0).desired_value(), "90");
  EXPECT_EQ(drift->entries(0).actual_value(), "7");
  EXPECT_TRUE(drift->entries(0).drift());
  EXPECT_TRUE(Entry("db-3", "Audit.RetentionDays").drift());

  // Setting the value again puts it back.
  ASSERT_TRUE(
      Finished(
          Set(Change({Setting("Audit.RetentionDays", "90")}))->rollout_id())
          .state() == v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(agents_["db-3"]->Value("Audit.RetentionDays"), "90");
  absl::StatusOr<v1::GetConfigResponse> repaired = Diff("env=prod");
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_THAT(repaired->entries(), IsEmpty());
}

TEST_F(ConfigManagerTest, DiffNamesDatabasesItCouldNotRead) {
  agents_["db-2"]->Silence();
  absl::StatusOr<v1::GetConfigResponse> response =
      Diff("env=prod", {"Audit.RetentionDays"}, absl::Milliseconds(300));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->unread_databases_size(), 1);
  EXPECT_THAT(response->unread_databases(0),
              HasSubstr("db-2: no answer within 300ms"));
  // Never set by the control plane, read and equal: nothing to report.
  EXPECT_THAT(response->entries(), IsEmpty());
}

TEST_F(ConfigManagerTest, FailedCanaryHaltsAndChangesNothingElse) {
  agents_["db-1"]->Refuse("Audit.LogValidations");
  absl::StatusOr<v1::Rollout> created =
      Set(Change({Setting("Audit.RetentionDays", "30"),
                  Setting("Audit.LogValidations", "1")}));
  ASSERT_TRUE(created.ok()) << created.status();
  const v1::Rollout rollout = Finished(created->rollout_id());
  EXPECT_NE(rollout.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  for (const v1::RolloutTarget& target : rollout.targets()) {
    if (target.database_id() == "db-1") {
      EXPECT_EQ(target.state(), v1::TARGET_STATE_FAILED);
      EXPECT_THAT(target.error(), HasSubstr("refused by trigger"));
    } else {
      EXPECT_EQ(target.state(), v1::TARGET_STATE_SKIPPED)
          << target.database_id();
    }
  }
  for (auto& [id, agent] : agents_) {
    EXPECT_EQ(agent->Value("Audit.RetentionDays"), "365") << id;
    EXPECT_EQ(agent->Value("Audit.LogValidations"), "0") << id;
    if (id != "db-1") {
      EXPECT_THAT(agent->received(), IsEmpty()) << id;
    }
  }
  EXPECT_THAT(History(), IsEmpty());
}

TEST_F(ConfigManagerTest, FailureAfterTheCanaryPutsTheCanaryBack) {
  agents_["db-3"]->Refuse("Audit.RetentionDays");
  v1::SetConfigRequest request = Change({Setting("Audit.RetentionDays", "30")});
  request.mutable_strategy()->add_waves("1");
  request.mutable_strategy()->add_waves("3");
  request.mutable_strategy()->add_waves("100%");
  request.mutable_strategy()->set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
  absl::StatusOr<v1::Rollout> created = Set(request);
  ASSERT_TRUE(created.ok()) << created.status();
  const v1::Rollout rollout = Finished(created->rollout_id());
  EXPECT_EQ(rollout.state(), v1::ROLLOUT_STATE_ROLLED_BACK)
      << rollout.DebugString();
  for (auto& [id, agent] : agents_) {
    EXPECT_EQ(agent->Value("Audit.RetentionDays"), "365") << id;
  }
  EXPECT_THAT(agents_["db-4"]->received(), IsEmpty());
  // db-1 and db-2 were changed and put back; the desired value is the
  // restored one, so nothing drifts.
  for (const char* id : {"db-1", "db-2"}) {
    const std::vector<v1::ConfigChange> rows =
        History("Audit.RetentionDays", id);
    ASSERT_EQ(rows.size(), 2u) << id;
    EXPECT_TRUE(rows[0].rollback());
    EXPECT_EQ(rows[0].value(), "365");
    EXPECT_EQ(rows[0].previous_value(), "30");
    EXPECT_FALSE(rows[1].rollback());
    const v1::ConfigEntry entry = Entry(id, "Audit.RetentionDays");
    EXPECT_EQ(entry.desired_value(), "365");
    EXPECT_EQ(entry.actual_value(), "365");
    EXPECT_FALSE(entry.drift());
  }
}

TEST_F(ConfigManagerTest, EmergencySwitchTurnsLoggingOffAndOnEverywhere) {
  agents_["db-2"]->Refuse("Audit.LogValidations");
  absl::StatusOr<v1::Rollout> off = Logging(false, "env=prod");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->operation().config_change().emergency());
  EXPECT_EQ(off->wave_count(), 1);
  EXPECT_EQ(off->strategy().failure_budget(), "100%");
  EXPECT_EQ(off->strategy().max_parallel(), 0);
  EXPECT_THAT(off->gates(), IsEmpty());
  const v1::Rollout done = Finished(off->rollout_id());
  // Every database was tried although db-2 failed.
  for (const v1::RolloutTarget& target : done.targets()) {
    EXPECT_EQ(target.state(), target.database_id() == "db-2"
                                  ? v1::TARGET_STATE_FAILED
                                  : v1::TARGET_STATE_SUCCEEDED)
        << target.database_id();
  }
  for (const char* id : {"db-1", "db-3", "db-4"}) {
    EXPECT_EQ(agents_[id]->Value("Monitoring.EnableMetrics"), "0") << id;
    EXPECT_EQ(agents_[id]->Value("Audit.LogValidations"), "0") << id;
  }
  absl::StatusOr<v1::Rollout> on = Logging(true, "env=prod");
  ASSERT_TRUE(on.ok()) << on.status();
  Finished(on->rollout_id());
  for (const char* id : {"db-1", "db-3", "db-4"}) {
    // On again means the bundle's defaults: metrics on, validation
    // auditing off.
    EXPECT_EQ(agents_[id]->Value("Monitoring.EnableMetrics"), "1") << id;
    EXPECT_EQ(agents_[id]->Value("Audit.LogValidations"), "0") << id;
  }
  absl::StatusOr<v1::Rollout> no_reason =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        v1::EmergencyLoggingRequest request;
        request.set_all_databases(true);
        config_->SetLogging(request, false, std::move(done));
      });
  EXPECT_EQ(no_reason.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_reason.status().message()),
              HasSubstr("reason is required"));
}

TEST_F(ConfigManagerTest, RestartRecordsWhatWasNotSaved) {
  const v1::Rollout rollout = Finished(
      Set(Change({Setting("Audit.RetentionDays", "90")}))->rollout_id());
  ASSERT_EQ(rollout.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  ASSERT_TRUE(config_->Flush().ok());
  Restart();
  // What a crash between the orchestrator's save and the configuration's
  // loses.
  {
    absl::StatusOr<sql::DatabaseUrl> url = sql::ParseDatabaseUrl(absl::StrCat(
        "sqlite://", std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        ".db"));
    ASSERT_TRUE(url.ok()) << url.status();
    absl::StatusOr<std::unique_ptr<soci::session>> session =
        sql::OpenSession(*url);
    ASSERT_TRUE(session.ok()) << session.status();
    **session << "DELETE FROM config_values";
    **session << "DELETE FROM config_history";
  }
  StartConfig();
  ASSERT_TRUE(orchestrator_->Start().ok());
  const std::vector<v1::ConfigChange> history = History("Audit.RetentionDays");
  EXPECT_EQ(history.size(), 4u);
  const v1::ConfigEntry entry = Entry("db-4", "Audit.RetentionDays");
  EXPECT_EQ(entry.desired_value(), "90");
  EXPECT_EQ(entry.actual_value(), "90");

  // And once more: nothing is recorded twice.
  Restart();
  StartConfig();
  ASSERT_TRUE(orchestrator_->Start().ok());
  EXPECT_EQ(History("Audit.RetentionDays").size(), 4u);
}

TEST_F(ConfigManagerTest, GetAnswersTheSelectionAndKeys) {
  Finished(Set(Change({Setting("Audit.RetentionDays", "90")}, "env=prod"))
               ->rollout_id());
  v1::GetConfigRequest request;
  request.set_selector("env=prod");
  absl::StatusOr<v1::GetConfigResponse> known = config_->Get(request);
  ASSERT_TRUE(known.ok()) << known.status();
  ASSERT_EQ(known->entries_size(), 4);
  EXPECT_EQ(known->entries(0).database_id(), "db-1");
  // A key asked for is there for every database, known or not.
  request.add_keys("Audit.LogValidations");
  absl::StatusOr<v1::GetConfigResponse> asked = config_->Get(request);
  ASSERT_TRUE(asked.ok()) << asked.status();
  ASSERT_EQ(asked->entries_size(), 4);
  EXPECT_FALSE(asked->entries(0).actual_known());
  EXPECT_FALSE(asked->entries(0).desired_set());
  request.set_selector("env in (");
  EXPECT_EQ(config_->Get(request).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::GetConfigHistoryRequest history;
  history.set_limit(-1);
  EXPECT_EQ(RolloutOrchestrator::Await<v1::GetConfigHistoryResponse>(
                [&](auto done) { config_->History(history, std::move(done)); })
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ecliptix::server
