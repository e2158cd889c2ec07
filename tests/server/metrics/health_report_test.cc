// The health report over a real SQLite metric store: samples written straight
// into the store (as agents' batches), then the runbook's criteria per
// database and fleet-wide on a fake clock.
#include "server/metrics/health_report.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/state_store.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

class HealthReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Advance(absl::Seconds(40));
    url_ = absl::StrCat(
        "sqlite://", std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    auto state = StateStore::Open(url_);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *std::move(state);
    auto store = MetricStore::Open(url_, clock_.Now());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    manager_ = std::make_unique<MetricsManager>(store_.get(), nullptr, nullptr,
                                                &clock_, MetricsOptions());
    reporter_ = std::make_unique<HealthReporter>(manager_.get());
  }

  // One sample of `database_id`, `ago` before now, in a batch of its own.
  void Put(const std::string& database_id, const std::string& metric,
           double value, Labels labels = {},
           absl::Duration ago = absl::Minutes(10)) {
    IncomingBatch incoming;
    incoming.database_id = database_id;
    incoming.batch.set_agent_instance("instance-" + database_id);
    incoming.batch.set_sequence(++sequence_);
    v1::MetricSample* sample = incoming.batch.add_samples();
    sample->set_metric(metric);
    sample->set_value(value);
    sample->mutable_labels()->insert(labels.begin(), labels.end());
    *sample->mutable_time() = ToProtoTimestamp(clock_.Now() - ago);
    auto written = store_->Write({incoming}, clock_.Now());
    ASSERT_TRUE(written.ok()) << written.status();
    ASSERT_EQ(written->samples_stored, 1);
  }

  v1::HealthReport Report(absl::Duration range = absl::ZeroDuration()) {
    v1::GetHealthReportRequest request;
    *request.mutable_range() = ToProtoDuration(range);
    auto report = reporter_->ReportNow(request);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : v1::HealthReport();
  }

  static const v1::HealthCriterion& Find(const v1::HealthRow& row,
                                         const std::string& name) {
    for (const auto& criterion : row.criteria()) {
      if (criterion.name() == name) return criterion;
    }
    ADD_FAILURE() << "no criterion " << name;
    static const v1::HealthCriterion* none = new v1::HealthCriterion();
    return *none;
  }

  FakeClock clock_;
  std::string url_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<MetricStore> store_;
  std::unique_ptr<MetricsManager> manager_;
  std::unique_ptr<HealthReporter> reporter_;
  uint64_t sequence_ = 0;
};

TEST_F(HealthReportTest, NoSamplesIsNoDataEverywhere) {
  v1::HealthReport report = Report();
  EXPECT_EQ(report.databases_size(), 0);
  ASSERT_EQ(report.fleet().criteria_size(), 5);
  for (const auto& criterion : report.fleet().criteria()) {
    EXPECT_EQ(criterion.verdict(), v1::HEALTH_VERDICT_NO_DATA)
        << criterion.name();
    EXPECT_FALSE(criterion.message().empty()) << criterion.name();
  }
  EXPECT_EQ(report.fleet().verdict(), v1::HEALTH_VERDICT_NO_DATA);
  EXPECT_THAT(Find(report.fleet(), "lockout").message(),
              HasSubstr("not exercised"));
  EXPECT_EQ(FromProtoTimestamp(report.end_time()) -
                FromProtoTimestamp(report.start_time()),
            absl::Hours(1));
}

TEST_F(HealthReportTest, HealthyAndSickDatabasesAndTheFleet) {
  const Labels login = {{"procedure", "LoginMembership"}};
  const Labels other = {{"procedure", "CreateMembership"}};
  // db-a: 100 calls, 5 ms on average, no errors, no blocking, every login
  // logged, no number locked out.
  Put("db-a", "procedure_calls", 90, other);
  Put("db-a", "procedure_calls", 10, login);
  Put("db-a", "procedure_execution_ms", 500, other);
  Put("db-a", "procedure_errors", 0, other);
  Put("db-a", "blocked_sessions", 0);
  Put("db-a", "auth_events", 8, {{"event", "LOGIN_SUCCESS"}});
  Put("db-a", "auth_events", 2, {{"event", "LOGIN_FAILED"}});
  // db-b: 10 login calls at 200 ms, one failed, 3 sessions blocked, 5 of 10
  // logins logged, lockouts refusing logins.
  Put("db-b", "procedure_calls", 10, login);
  Put("db-b", "procedure_execution_ms", 2000, login);
  Put("db-b", "procedure_errors", 1, login);
  Put("db-b", "blocked_sessions", 3);
  Put("db-b", "blocked_sessions", 0, {}, absl::Minutes(5));
  Put("db-b", "auth_events", 3, {{"event", "LOGIN_FAILED"}});
  Put("db-b", "auth_events", 2, {{"event", "LOGIN_BLOCKED"}});
  Put("db-b", "auth_events", 1, {{"event", "SUSPICIOUS_ACTIVITY"}});

  v1::HealthReport report = Report();
  ASSERT_EQ(report.databases_size(), 2);
  const v1::HealthRow& a = report.databases(0);
  const v1::HealthRow& b = report.databases(1);
  EXPECT_EQ(a.database_id(), "db-a");
  EXPECT_EQ(b.database_id(), "db-b");

  EXPECT_EQ(Find(a, "avg_procedure_time").verdict(), v1::HEALTH_VERDICT_PASS);
  EXPECT_DOUBLE_EQ(Find(a, "avg_procedure_time").value(), 5);
  EXPECT_DOUBLE_EQ(Find(a, "avg_procedure_time").threshold(), 100);
  EXPECT_EQ(Find(a, "error_rate").verdict(), v1::HEALTH_VERDICT_PASS);
  EXPECT_EQ(Find(a, "blocking_queries").verdict(), v1::HEALTH_VERDICT_PASS);
  EXPECT_EQ(Find(a, "auth_attempts_logged").verdict(), v1::HEALTH_VERDICT_PASS);
  EXPECT_DOUBLE_EQ(Find(a, "auth_attempts_logged").value(), 1);
  EXPECT_EQ(Find(a, "lockout").verdict(), v1::HEALTH_VERDICT_NO_DATA);
  EXPECT_EQ(a.verdict(), v1::HEALTH_VERDICT_PASS);

  const v1::HealthCriterion& slow = Find(b, "avg_procedure_time");
  EXPECT_EQ(slow.verdict(), v1::HEALTH_VERDICT_FAIL);
  EXPECT_DOUBLE_EQ(slow.value(), 200);
  EXPECT_THAT(slow.message(), HasSubstr("200.0 ms per call"));
  EXPECT_EQ(Find(b, "error_rate").verdict(), v1::HEALTH_VERDICT_FAIL);
  EXPECT_DOUBLE_EQ(Find(b, "error_rate").value(), 0.1);
  EXPECT_DOUBLE_EQ(Find(b, "error_rate").threshold(), 0.001);
  EXPECT_EQ(Find(b, "blocking_queries").verdict(), v1::HEALTH_VERDICT_FAIL);
  EXPECT_DOUBLE_EQ(Find(b, "blocking_queries").value(), 3);
  EXPECT_EQ(Find(b, "auth_attempts_logged").verdict(), v1::HEALTH_VERDICT_FAIL);
  EXPECT_DOUBLE_EQ(Find(b, "auth_attempts_logged").value(), 0.5);
  EXPECT_EQ(Find(b, "lockout").verdict(), v1::HEALTH_VERDICT_PASS);
  EXPECT_DOUBLE_EQ(Find(b, "lockout").value(), 2);
  EXPECT_EQ(b.verdict(), v1::HEALTH_VERDICT_FAIL);

  // The fleet: 110 calls, 2500 ms; 1 error in 110 calls; 3 blocked at most;
  // 15 logins logged for 20 calls.
  const v1::HealthRow& fleet = report.fleet();
  EXPECT_EQ(fleet.database_id(), "");
  EXPECT_NEAR(Find(fleet, "avg_procedure_time").value(), 2500.0 / 110, 1e-9);
  EXPECT_EQ(Find(fleet, "avg_procedure_time").verdict(),
            v1::HEALTH_VERDICT_PASS);
  EXPECT_NEAR(Find(fleet, "error_rate").value(), 1.0 / 110, 1e-9);
  EXPECT_EQ(Find(fleet, "error_rate").verdict(), v1::HEALTH_VERDICT_FAIL);
  EXPECT_DOUBLE_EQ(Find(fleet, "blocking_queries").value(), 3);
  EXPECT_DOUBLE_EQ(Find(fleet, "auth_attempts_logged").value(), 0.75);
  EXPECT_EQ(fleet.verdict(), v1::HEALTH_VERDICT_FAIL);
}

TEST_F(HealthReportTest, SamplesBeforeTheRangeAreLeftOut) {
  Put("db-a", "procedure_calls", 1, {{"procedure", "X"}}, absl::Hours(3));
  Put("db-a", "procedure_execution_ms", 900, {{"procedure", "X"}},
      absl::Hours(3));
  Put("db-a", "procedure_calls", 1, {{"procedure", "X"}}, absl::Minutes(3));
  Put("db-a", "procedure_execution_ms", 4, {{"procedure", "X"}},
      absl::Minutes(3));
  v1::HealthReport hour = Report();
  ASSERT_EQ(hour.databases_size(), 1);
  EXPECT_DOUBLE_EQ(Find(hour.databases(0), "avg_procedure_time").value(), 4);
  v1::HealthReport day = Report(absl::Hours(24));
  ASSERT_EQ(day.databases_size(), 1);
  EXPECT_DOUBLE_EQ(Find(day.databases(0), "avg_procedure_time").value(), 452);
  EXPECT_EQ(Find(day.databases(0), "avg_procedure_time").verdict(),
            v1::HEALTH_VERDICT_FAIL);
}

TEST_F(HealthReportTest, LockoutStartedButNotTriedAgainIsNoData) {
  Put("db-a", "auth_events", 5, {{"event", "LOGIN_FAILED"}});
  Put("db-a", "auth_events", 1, {{"event", "SUSPICIOUS_ACTIVITY"}});
  v1::HealthReport report = Report();
  ASSERT_EQ(report.databases_size(), 1);
  const v1::HealthCriterion& lockout = Find(report.databases(0), "lockout");
  EXPECT_EQ(lockout.verdict(), v1::HEALTH_VERDICT_NO_DATA);
  EXPECT_THAT(lockout.message(), HasSubstr("1 lockout started"));
}

TEST_F(HealthReportTest, NegativeRangeIsRefused) {
  v1::GetHealthReportRequest request;
  *request.mutable_range() = ToProtoDuration(-absl::Minutes(1));
  auto report = reporter_->ReportNow(request);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(report.status().message(), HasSubstr("range"));
}

TEST_F(HealthReportTest, AnswersOnTheQueryThread) {
  ASSERT_TRUE(manager_->Start().ok());
  Put("db-a", "blocked_sessions", 0);
  absl::Notification done;
  absl::StatusOr<v1::HealthReport> answer;
  reporter_->GetHealthReport({}, [&](absl::StatusOr<v1::HealthReport> got) {
    answer = std::move(got);
    done.Notify();
  });
  done.WaitForNotification();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->databases_size(), 1);
  manager_->Stop();
}

}  // namespace
}  // namespace ecliptix::server
