// The alerts core on the fake clock over a real MetricStore and AlertStore in
// a SQLite file (and in PostgreSQL when ECLIPTIX_TEST_POSTGRES_URL is set):
// each rule fires above its threshold and not below it, fires once while it
// keeps holding, resolves when it stops; active alerts survive a restart
// without firing again; watchers get the active alerts, then the events.
#include "server/alerts/alert_manager.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/alerts/alert_store.h"
#include "server/fleet/registry.h"
#include "server/metrics/metric_store.h"
#include "server/metrics/metrics_manager.h"
#include "server/storage/state_store.h"
#include "tests/server/server_testing.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

v1::MetricSample Sample(const std::string& metric, double value,
                        absl::Time time, Labels labels = {}) {
  v1::MetricSample sample;
  sample.set_metric(metric);
  sample.set_value(value);
  *sample.mutable_time() = ToProtoTimestamp(time);
  sample.mutable_labels()->insert(labels.begin(), labels.end());
  return sample;
}

// Records what a watch delivers.
class RecordingSink : public AlertEventSink {
 public:
  bool Deliver(const v1::AlertEvent& event) override {
    absl::MutexLock lock(&mutex_);
    events_.push_back(event);
    return open_;
  }
  std::vector<v1::AlertEvent> events() const {
    absl::MutexLock lock(&mutex_);
    return events_;
  }
  // The types delivered, in order.
  std::vector<v1::AlertEvent::Type> types() const {
    std::vector<v1::AlertEvent::Type> types;
    for (const auto& event : events()) types.push_back(event.type());
    return types;
  }
  void Close() {
    absl::MutexLock lock(&mutex_);
    open_ = false;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<v1::AlertEvent> events_ ABSL_GUARDED_BY(mutex_);
  bool open_ ABSL_GUARDED_BY(mutex_) = true;
};

class AlertManagerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // On a minute boundary: a 5-minute window is 5 whole minutes.
    clock_.Advance(absl::Seconds(40));
    if (GetParam() == "postgresql") {
      if (!testing::PostgresAdminUrl()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
      }
      auto scratch = testing::CreateScratchDatabase("alerts_unit");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url_ = scratch->url;
    } else {
      // The test's name has a '/' before the parameter.
      url_ = absl::StrCat(
          "sqlite://", std::getenv("TEST_TMPDIR"), "/",
          absl::StrReplaceAll(
              ::testing::UnitTest::GetInstance()->current_test_info()->name(),
              {{"/", "-"}}),
          ".db");
    }
    auto state = StateStore::Open(url_);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *std::move(state);
    EXPECT_GE(state_->schema_version(), 7);
    registry_ = std::make_unique<Registry>(nullptr, &clock_, RegistryOptions());
    auto metric_store = MetricStore::Open(url_, clock_.Now());
    ASSERT_TRUE(metric_store.ok()) << metric_store.status();
    metric_store_ = *std::move(metric_store);
    metrics_ =
        std::make_unique<MetricsManager>(metric_store_.get(), registry_.get(),
                                         nullptr, &clock_, MetricsOptions());
    auto alert_store = AlertStore::Open(url_);
    ASSERT_TRUE(alert_store.ok()) << alert_store.status();
    alert_store_ = *std::move(alert_store);
  }

  void TearDown() override {
    if (alerts_ != nullptr) alerts_->Stop();
  }

  // A manager over the stores, loaded (not started: evaluations are run by
  // the test unless `start`).
  void NewManager(AlertOptions options = {}, bool start = false) {
    if (alerts_ != nullptr) alerts_->Stop();
    alerts_ = std::make_unique<AlertManager>(alert_store_.get(), metrics_.get(),
                                             registry_.get(), &clock_, options);
    ASSERT_TRUE(start ? alerts_->Start().ok() : alerts_->Load().ok());
  }

  void Register(const std::string& database_id, Labels labels) {
    auto registration =
        registry_->Register(testing::MakeHello(database_id, labels), "test",
                            std::make_shared<testing::RecordingSession>());
    ASSERT_TRUE(registration.ok()) << registration.status();
  }

  // Samples of `database_id`, one minute ago.
  void Write(const std::string& database_id,
             std::vector<v1::MetricSample> samples) {
    IncomingBatch incoming;
    incoming.database_id = database_id;
    incoming.batch.set_agent_instance(absl::StrCat("agent-", database_id));
    incoming.batch.set_sequence(++sequence_);
    for (auto& sample : samples) *incoming.batch.add_samples() = sample;
    auto written = metric_store_->Write({incoming}, clock_.Now());
    ASSERT_TRUE(written.ok()) << written.status();
  }

  void FailedLogins(const std::string& database_id, double count) {
    Write(database_id,
          {Sample("auth_events", count, clock_.Now() - absl::Minutes(1),
                  {{"event", "LOGIN_FAILED"}})});
  }

  void Procedures(const std::string& database_id, double calls, double total_ms,
                  double errors) {
    const absl::Time t = clock_.Now() - absl::Minutes(1);
    const Labels login = {{"procedure", "Login"}};
    Write(database_id, {Sample("procedure_calls", calls, t, login),
                        Sample("procedure_execution_ms", total_ms, t, login),
                        Sample("procedure_errors", errors, t, login)});
  }

  // Alerts resolve at the first evaluation where their rule does not hold.
  static AlertOptions ResolvingAtOnce() {
    AlertOptions options;
    options.resolve_after = absl::ZeroDuration();
    return options;
  }

  std::vector<v1::AlertEvent> Evaluate() {
    auto events = alerts_->EvaluateNow();
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::AlertEvent>();
  }

  FakeClock clock_;
  std::string url_;
  uint64_t sequence_ = 0;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<MetricStore> metric_store_;
  std::unique_ptr<MetricsManager> metrics_;
  std::unique_ptr<AlertStore> alert_store_;
  std::unique_ptr<AlertManager> alerts_;
};

TEST_P(AlertManagerTest, FailedLoginsFireOnceWhileTheyLastAndResolve) {
  NewManager();
  if (IsSkipped()) return;
  // 60 in 5 minutes: 12 a minute, above 5.
  FailedLogins("db-3", 60);
  FailedLogins("db-4", 10);  // 2 a minute: below.
  std::vector<v1::AlertEvent> fired = Evaluate();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].type(), v1::AlertEvent::TYPE_FIRED);
  EXPECT_EQ(fired[0].sequence(), 1);
  const v1::Alert& alert = fired[0].alert();
  EXPECT_EQ(alert.alert_id(), "al-1");
  EXPECT_EQ(alert.rule(), v1::ALERT_RULE_FAILED_LOGINS);
  EXPECT_EQ(alert.database_id(), "db-3");
  EXPECT_EQ(alert.state(), v1::ALERT_STATE_ACTIVE);
  EXPECT_DOUBLE_EQ(alert.value(), 12);
  EXPECT_DOUBLE_EQ(alert.threshold(), 5);
  EXPECT_EQ(FromProtoTimestamp(alert.fired_time()), clock_.Now());
  EXPECT_EQ(alert.message(), "12 failed logins/min on db-3 (threshold 5)");
  EXPECT_EQ(fired[0].message(), alert.message());

  // Still holding (more failed logins): nothing new.
  clock_.Advance(absl::Seconds(15));
  FailedLogins("db-3", 30);
  EXPECT_THAT(Evaluate(), SizeIs(0));
  EXPECT_THAT(alerts_->ActiveAlerts(), SizeIs(1));

  // Quiet for longer than the window: the rule no longer holds, and the
  // alert resolves, once, when it has not held for resolve_after (1m).
  clock_.Advance(absl::Minutes(10));
  EXPECT_THAT(Evaluate(), SizeIs(0));
  EXPECT_THAT(alerts_->ActiveAlerts(), SizeIs(1));
  clock_.Advance(absl::Minutes(1));
  std::vector<v1::AlertEvent> resolved = Evaluate();
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].type(), v1::AlertEvent::TYPE_RESOLVED);
  EXPECT_EQ(resolved[0].sequence(), 2);
  EXPECT_EQ(resolved[0].alert().alert_id(), "al-1");
  EXPECT_EQ(resolved[0].alert().state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(FromProtoTimestamp(resolved[0].alert().resolved_time()),
            clock_.Now());
  EXPECT_EQ(resolved[0].message(),
            "failed logins back to 0/min on db-3 (threshold 5)");
  EXPECT_THAT(Evaluate(), SizeIs(0));
  EXPECT_THAT(alerts_->ActiveAlerts(), SizeIs(0));

  // Listed: none active; resolved ones when asked.
  v1::ListAlertsRequest request;
  auto listed = alerts_->ListAlertsNow(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->alerts_size(), 0);
  request.set_include_resolved(true);
  listed = alerts_->ListAlertsNow(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->alerts_size(), 1);
  EXPECT_EQ(listed->alerts(0).alert_id(), "al-1");
  EXPECT_EQ(listed->alerts(0).state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_DOUBLE_EQ(listed->alerts(0).value(), 12);
  EXPECT_EQ(listed->alerts(0).message(),
            "12 failed logins/min on db-3 (threshold 5)");

  // Firing again later is a new alert.
  FailedLogins("db-3", 100);
  fired = Evaluate();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].alert().alert_id(), "al-2");
  EXPECT_EQ(fired[0].sequence(), 3);
}

TEST_P(AlertManagerTest, ThresholdsComeFromTheOptions) {
  AlertOptions options;
  options.failed_logins_per_minute = 1;
  options.error_rate = 0.05;
  options.avg_procedure_ms = 300;
  NewManager(options);
  if (IsSkipped()) return;
  FailedLogins("db-1", 10);           // 2/min: above 1.
  Procedures("db-1", 100, 25000, 4);  // 250 ms, 4%: both below.
  Procedures("db-2", 100, 40000, 6);  // 400 ms, 6%: both above.
  std::vector<v1::AlertEvent> fired = Evaluate();
  std::vector<std::pair<std::string, v1::AlertRule>> which;
  for (const auto& event : fired) {
    EXPECT_EQ(event.type(), v1::AlertEvent::TYPE_FIRED);
    which.emplace_back(event.alert().database_id(), event.alert().rule());
  }
  EXPECT_THAT(
      which,
      ElementsAre(
          std::make_pair(std::string("db-1"), v1::ALERT_RULE_FAILED_LOGINS),
          std::make_pair(std::string("db-2"), v1::ALERT_RULE_ERROR_RATE),
          std::make_pair(std::string("db-2"), v1::ALERT_RULE_SLOW_PROCEDURES)));
  ASSERT_THAT(fired, SizeIs(3));
  EXPECT_EQ(fired[1].message(), "error rate 6% on db-2 (threshold 5%)");
  EXPECT_DOUBLE_EQ(fired[1].alert().threshold(), 0.05);
  EXPECT_EQ(fired[2].message(),
            "average procedure time 400 ms on db-2 (threshold 300 ms)");
}

TEST_P(AlertManagerTest, RunbookDefaults) {
  NewManager();
  if (IsSkipped()) return;
  // 0.2% errors, 150 ms: above 0.1% and 100 ms. 5 failed logins a minute is
  // not above 5.
  Procedures("db-1", 1000, 150000, 2);
  FailedLogins("db-1", 25);
  Procedures("db-2", 1000, 50000, 1);  // 0.1%, 50 ms: not above.
  std::vector<v1::AlertEvent> fired = Evaluate();
  ASSERT_THAT(fired, SizeIs(2));
  EXPECT_EQ(fired[0].alert().rule(), v1::ALERT_RULE_ERROR_RATE);
  EXPECT_EQ(fired[0].message(), "error rate 0.2% on db-1 (threshold 0.1%)");
  EXPECT_EQ(fired[1].alert().rule(), v1::ALERT_RULE_SLOW_PROCEDURES);
  EXPECT_EQ(fired[1].message(),
            "average procedure time 150 ms on db-1 (threshold 100 ms)");
  EXPECT_EQ(AlertRuleName(fired[1].alert().rule()), "slow_procedures");
}

TEST_P(AlertManagerTest, AFigureHoveringAtItsThresholdKeepsOneAlert) {
  NewManager();
  if (IsSkipped()) return;
  FailedLogins("db-3", 60);  // 12 a minute.
  ASSERT_THAT(Evaluate(), SizeIs(1));
  // Below, then above again within resolve_after: the same alert goes on.
  clock_.Advance(absl::Minutes(6));
  EXPECT_THAT(Evaluate(), SizeIs(0));
  clock_.Advance(absl::Seconds(45));
  FailedLogins("db-3", 60);
  EXPECT_THAT(Evaluate(), SizeIs(0));
  // Below again: the wait starts over from here.
  clock_.Advance(absl::Minutes(6));
  EXPECT_THAT(Evaluate(), SizeIs(0));
  clock_.Advance(absl::Seconds(45));
  EXPECT_THAT(Evaluate(), SizeIs(0));
  ASSERT_THAT(alerts_->ActiveAlerts(), SizeIs(1));
  EXPECT_EQ(alerts_->ActiveAlerts()[0].alert_id(), "al-1");
  clock_.Advance(absl::Seconds(15));
  std::vector<v1::AlertEvent> resolved = Evaluate();
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].alert().alert_id(), "al-1");
}

TEST_P(AlertManagerTest, AnySuspiciousActivityFires) {
  NewManager(ResolvingAtOnce());
  if (IsSkipped()) return;
  Write("db-1", {Sample("auth_events", 1, clock_.Now() - absl::Minutes(1),
                        {{"event", "SUSPICIOUS_ACTIVITY"}}),
                 Sample("auth_events", 3, clock_.Now() - absl::Minutes(1),
                        {{"event", "LOGIN_SUCCESS"}})});
  Write("db-2", {Sample("auth_events", 3, clock_.Now() - absl::Minutes(1),
                        {{"event", "LOGIN_SUCCESS"}})});
  std::vector<v1::AlertEvent> fired = Evaluate();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].alert().rule(), v1::ALERT_RULE_SUSPICIOUS_ACTIVITY);
  EXPECT_EQ(fired[0].alert().database_id(), "db-1");
  EXPECT_EQ(fired[0].message(),
            "suspicious activity on db-1: 0.2 events/min over the last 5m");
  EXPECT_DOUBLE_EQ(fired[0].alert().threshold(), 0);
  clock_.Advance(absl::Minutes(6));
  std::vector<v1::AlertEvent> resolved = Evaluate();
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].message(),
            "no suspicious activity on db-1 in the last 5m");
}

TEST_P(AlertManagerTest, ActiveAlertsSurviveARestartWithoutFiringAgain) {
  NewManager(ResolvingAtOnce());
  if (IsSkipped()) return;
  FailedLogins("db-3", 60);
  FailedLogins("db-5", 60);
  ASSERT_THAT(Evaluate(), SizeIs(2));
  // db-5 resolves before the restart.
  clock_.Advance(absl::Minutes(3));
  FailedLogins("db-3", 60);
  clock_.Advance(absl::Minutes(3));
  std::vector<v1::AlertEvent> resolved = Evaluate();
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].alert().database_id(), "db-5");

  // A new server process: a new manager on a new store session.
  alerts_->Stop();
  alerts_.reset();
  auto alert_store = AlertStore::Open(url_);
  ASSERT_TRUE(alert_store.ok()) << alert_store.status();
  alert_store_ = *std::move(alert_store);
  NewManager(ResolvingAtOnce());
  std::vector<v1::Alert> active = alerts_->ActiveAlerts();
  ASSERT_THAT(active, SizeIs(1));
  EXPECT_EQ(active[0].alert_id(), "al-1");
  EXPECT_EQ(active[0].database_id(), "db-3");
  EXPECT_EQ(active[0].message(), "12 failed logins/min on db-3 (threshold 5)");
  // Still holding: not fired again.
  EXPECT_THAT(Evaluate(), SizeIs(0));
  // It resolves as the same alert; numbering goes on.
  clock_.Advance(absl::Minutes(10));
  resolved = Evaluate();
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].alert().alert_id(), "al-1");
  EXPECT_EQ(resolved[0].sequence(), 4);
  FailedLogins("db-3", 60);
  std::vector<v1::AlertEvent> fired = Evaluate();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].alert().alert_id(), "al-3");
}

TEST_P(AlertManagerTest, WatchersGetTheActiveAlertsThenTheEvents) {
  NewManager(ResolvingAtOnce());
  if (IsSkipped()) return;
  Register("db-prod", {{"env", "prod"}});
  Register("db-staging", {{"env", "staging"}});
  FailedLogins("db-prod", 60);
  ASSERT_THAT(Evaluate(), SizeIs(1));
  auto all = std::make_shared<RecordingSink>();
  auto staging = std::make_shared<RecordingSink>();
  ASSERT_TRUE(alerts_->Watch("", all).ok());
  ASSERT_TRUE(alerts_->Watch("env=staging", staging).ok());
  EXPECT_THAT(all->types(),
              ElementsAre(v1::AlertEvent::TYPE_SNAPSHOT,
                          v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE));
  EXPECT_EQ(all->events()[0].alert().database_id(), "db-prod");
  EXPECT_THAT(staging->types(),
              ElementsAre(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE));
  FailedLogins("db-staging", 60);
  ASSERT_THAT(Evaluate(), SizeIs(1));
  clock_.Advance(absl::Minutes(10));
  ASSERT_THAT(Evaluate(), SizeIs(2));
  EXPECT_THAT(all->types(), ElementsAre(v1::AlertEvent::TYPE_SNAPSHOT,
                                        v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE,
                                        v1::AlertEvent::TYPE_FIRED,
                                        v1::AlertEvent::TYPE_RESOLVED,
                                        v1::AlertEvent::TYPE_RESOLVED));
  EXPECT_THAT(
      staging->types(),
      ElementsAre(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE,
                  v1::AlertEvent::TYPE_FIRED, v1::AlertEvent::TYPE_RESOLVED));
  EXPECT_EQ(staging->events()[1].alert().database_id(), "db-staging");

  // A closed sink is forgotten.
  staging->Close();
  FailedLogins("db-staging", 60);
  ASSERT_THAT(Evaluate(), SizeIs(1));
  FailedLogins("db-staging", 60);
  clock_.Advance(absl::Minutes(10));
  ASSERT_THAT(Evaluate(), SizeIs(1));
  EXPECT_THAT(staging->events(), SizeIs(4));

  // Selectors: listed alerts too.
  v1::ListAlertsRequest request;
  request.set_selector("env=staging");
  request.set_include_resolved(true);
  auto listed = alerts_->ListAlertsNow(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->alerts_size(), 2);
  for (const auto& alert : listed->alerts()) {
    EXPECT_EQ(alert.database_id(), "db-staging");
  }
  EXPECT_EQ(listed->alerts(0).alert_id(), "al-3");  // Newest first.
  request.set_limit(1);
  listed = alerts_->ListAlertsNow(request);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->alerts_size(), 1);
}

TEST_P(AlertManagerTest, BadRequestsNameTheField) {
  NewManager();
  if (IsSkipped()) return;
  auto sink = std::make_shared<RecordingSink>();
  absl::Status watch = alerts_->Watch("env in (", sink);
  EXPECT_EQ(watch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(watch.message(), HasSubstr("selector: "));
  v1::ListAlertsRequest request;
  request.set_selector("env in (");
  auto listed = alerts_->ListAlertsNow(request);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(listed.status().message(), HasSubstr("selector: "));
  request.clear_selector();
  request.set_limit(1001);
  listed = alerts_->ListAlertsNow(request);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(listed.status().message(), HasSubstr("limit: "));
}

TEST_P(AlertManagerTest, TheThreadEvaluatesEveryPeriodOfTheClock) {
  AlertOptions options;
  options.evaluation_period = absl::Seconds(15);
  NewManager(options, /*start=*/true);
  if (IsSkipped()) return;
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(alerts_->Watch("", sink).ok());
  FailedLogins("db-1", 60);
  clock_.Advance(absl::Seconds(15));
  ASSERT_TRUE(testing::WaitFor([&] { return sink->events().size() >= 2; }));
  EXPECT_EQ(sink->events()[1].type(), v1::AlertEvent::TYPE_FIRED);
  // ListAlerts is answered on the thread.
  absl::Notification answered;
  absl::StatusOr<v1::ListAlertsResponse> response;
  alerts_->ListAlerts(v1::ListAlertsRequest(), [&](auto result) {
    response = std::move(result);
    answered.Notify();
  });
  answered.WaitForNotification();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->alerts_size(), 1);
  // Stopped: watches end, queries are refused.
  alerts_->Stop();
  alerts_->ListAlerts(v1::ListAlertsRequest(), [&](auto result) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  });
}

TEST(AlertOptionsTest, ChecksNameTheFlag) {
  EXPECT_TRUE(ValidateAlertOptions(AlertOptions()).ok());
  AlertOptions options;
  options.failed_logins_per_minute = -1;
  EXPECT_THAT(ValidateAlertOptions(options).message(),
              HasSubstr("--alert_failed_logins_per_minute"));
  options = AlertOptions();
  options.error_rate = 1.5;
  EXPECT_THAT(ValidateAlertOptions(options).message(),
              HasSubstr("--alert_error_rate"));
  options = AlertOptions();
  options.avg_procedure_ms = -3;
  EXPECT_THAT(ValidateAlertOptions(options).message(),
              HasSubstr("--alert_avg_procedure_ms"));
  options = AlertOptions();
  options.window = absl::Seconds(10);
  EXPECT_THAT(ValidateAlertOptions(options).message(),
              HasSubstr("--alert_window"));
  options = AlertOptions();
  options.evaluation_period = absl::ZeroDuration();
  EXPECT_EQ(ValidateAlertOptions(options).code(),
            absl::StatusCode::kInvalidArgument);
  options = AlertOptions();
  options.resolve_after = absl::Seconds(-1);
  EXPECT_THAT(ValidateAlertOptions(options).message(),
              HasSubstr("--alert_resolve_after"));
}

INSTANTIATE_TEST_SUITE_P(Stores, AlertManagerTest,
                         ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ecliptix::server
