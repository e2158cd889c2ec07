// The metrics core over a real SQLite store, with agents played by fake
// sessions of the registry: batches come in through Registry::OnMetricBatch
// as the agent stream delivers them, acknowledgements go out on the session;
// a repeated batch is acknowledged again and stored once; a full queue holds
// the stream; metric batches never reach the command observers. Then the
// queries of MetricsService on a fake clock, and their validation.
#include "server/metrics/metrics_manager.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/bundles/bundle_catalog.h"
#include "server/storage/state_store.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeHello;

// An agent's stream as the registry sees it: records the acknowledgements.
class AckRecorder : public AgentSession {
 public:
  void Send(v1::ServerMessage message) override {
    if (!message.has_metric_ack()) return;
    absl::MutexLock lock(&mutex_);
    acks_.push_back(message.metric_ack().sequence());
  }
  void Close(const absl::Status&) override {}
  // Waits for `count` acknowledgements and returns them all.
  std::vector<uint64_t> WaitForAcks(size_t count) {
    absl::MutexLock lock(&mutex_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return acks_.size() >= count;
    };
    mutex_.Await(absl::Condition(&enough));
    return acks_;
  }

 private:
  absl::Mutex mutex_;
  std::vector<uint64_t> acks_ ABSL_GUARDED_BY(mutex_);
};

v1::MetricSample Sample(const std::string& metric, double value,
                        absl::Time time, Labels labels = {}) {
  v1::MetricSample sample;
  sample.set_metric(metric);
  sample.set_value(value);
  *sample.mutable_time() = ToProtoTimestamp(time);
  sample.mutable_labels()->insert(labels.begin(), labels.end());
  return sample;
}

v1::AgentMessage BatchMessage(const std::string& instance, uint64_t sequence,
                              std::vector<v1::MetricSample> samples) {
  v1::AgentMessage message;
  v1::MetricBatch* batch = message.mutable_metric_batch();
  batch->set_agent_instance(instance);
  batch->set_sequence(sequence);
  for (auto& sample : samples) *batch->add_samples() = std::move(sample);
  return message;
}

class MetricsManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // On a minute boundary, so that "the last hour" is 60 whole minutes.
    clock_.Advance(absl::Seconds(40));
    url_ = absl::StrCat(
        "sqlite://", std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    auto state = StateStore::Open(url_);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *std::move(state);
    registry_ = std::make_unique<Registry>(nullptr, &clock_, RegistryOptions());
    bundles_ = std::make_unique<BundleCatalog>(state_.get(), &clock_, 1 << 20);
    auto store = MetricStore::Open(url_, clock_.Now());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void StartManager(MetricsOptions options = {}) {
    manager_ = std::make_unique<MetricsManager>(
        store_.get(), registry_.get(), bundles_.get(), &clock_, options);
    ASSERT_TRUE(manager_->Start().ok());
  }

  // Connects an agent for `database_id`; returns its session number.
  uint64_t Connect(const std::string& database_id,
                   std::shared_ptr<AckRecorder> session,
                   std::map<std::string, std::string> labels = {}) {
    auto registration =
        registry_->Register(MakeHello(database_id, labels), "test", session);
    EXPECT_TRUE(registration.ok()) << registration.status();
    return registration.ok() ? registration->session_id : 0;
  }

  // Sends a batch as the stream would, and waits until it is stored.
  void Send(uint64_t session_id, const v1::AgentMessage& message) {
    absl::Notification resumed;
    if (!registry_->OnMetricBatch(session_id, message,
                                  [&] { resumed.Notify(); })) {
      resumed.WaitForNotification();
    }
    manager_->Flush();
  }

  double Sum(const std::string& metric, const std::string& selector = "") {
    v1::QuerySeriesRequest request;
    request.set_metric(metric);
    request.set_selector(selector);
    *request.mutable_step() = ToProtoDuration(absl::Hours(2));
    *request.mutable_start_time() =
        ToProtoTimestamp(clock_.Now() - absl::Hours(2));
    *request.mutable_end_time() =
        ToProtoTimestamp(clock_.Now() + absl::Minutes(1));
    auto response = manager_->QuerySeriesNow(request);
    EXPECT_TRUE(response.ok()) << response.status();
    double sum = 0;
    if (!response.ok()) return sum;
    for (const auto& series : response->series()) {
      for (const auto& point : series.points()) sum += point.value();
    }
    return sum;
  }

  // Procedure figures of two databases (see the comments for the sums).
  void SendProcedureFigures() {
    auto prod = std::make_shared<AckRecorder>();
    auto staging = std::make_shared<AckRecorder>();
    const uint64_t one = Connect("db-1", prod, {{"env", "prod"}});
    const uint64_t two = Connect("db-2", staging, {{"env", "staging"}});
    const absl::Time t = clock_.Now() - absl::Minutes(10);
    const Labels login = {{"procedure", "Login"}};
    const Labels signup = {{"procedure", "SignUp"}};
    // db-1: Login 10 calls, 500 ms (avg 50), max 120, 1 error; SignUp 2
    // calls, 400 ms (avg 200), max 300.
    Send(one, BatchMessage(
                  "a", 1,
                  {Sample("procedure_calls", 10, t, login),
                   Sample("procedure_execution_ms", 500, t, login),
                   Sample("procedure_max_ms", 120, t, login),
                   Sample("procedure_errors", 1, t, login),
                   Sample("procedure_calls", 2, t, signup),
                   Sample("procedure_execution_ms", 400, t, signup),
                   Sample("procedure_max_ms", 300, t, signup),
                   Sample("auth_events", 30, t, {{"event", "LOGIN_FAILED"}}),
                   Sample("auth_events", 6, t, {{"event", "LOGIN_SUCCESS"}})}));
    // db-2: Login 10 calls, 100 ms (avg 10), max 20; logins only.
    Send(two, BatchMessage("b", 1,
                           {Sample("procedure_calls", 10, t, login),
                            Sample("procedure_execution_ms", 100, t, login),
                            Sample("procedure_max_ms", 20, t, login),
                            Sample("auth_events", 12, t,
                                   {{"event", "LOGIN_SUCCESS"}})}));
  }

  FakeClock clock_;
  std::string url_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BundleCatalog> bundles_;
  std::unique_ptr<MetricStore> store_;
  std::unique_ptr<MetricsManager> manager_;
};

TEST_F(MetricsManagerTest, AcknowledgesOnTheStreamAndStoresARepeatOnce) {
  StartManager();
  auto session = std::make_shared<AckRecorder>();
  const uint64_t id = Connect("db-1", session);
  const absl::Time t = clock_.Now();
  const v1::AgentMessage first =
      BatchMessage("i-1", 1, {Sample("procedure_calls", 3, t)});
  Send(id, first);
  EXPECT_THAT(session->WaitForAcks(1), ElementsAre(1));
  // The agent reconnected before it saw the ack and sends the batch again,
  // then the next one.
  Send(id, first);
  Send(id, BatchMessage("i-1", 2, {Sample("procedure_calls", 4, t)}));
  EXPECT_THAT(session->WaitForAcks(3), ElementsAre(1, 1, 2));
  EXPECT_EQ(Sum("procedure_calls"), 7);
  IngestStats stats = manager_->stats();
  EXPECT_EQ(stats.batches_stored, 2);
  EXPECT_EQ(stats.batches_repeated, 1);
  EXPECT_EQ(stats.samples_stored, 2);
  // A batch that cannot be numbered is refused, never acknowledged.
  Send(id, BatchMessage("", 3, {Sample("procedure_calls", 100, t)}));
  EXPECT_EQ(manager_->stats().batches_refused, 1);
  EXPECT_EQ(Sum("procedure_calls"), 7);
}

TEST_F(MetricsManagerTest, MetricBatchesNeverReachTheCommandObservers) {
  StartManager();
  int commands = 0, paced = 0;
  registry_->AddCommandObserver(
      [&](const std::string&, const v1::AgentMessage&) { ++commands; });
  registry_->AddPacedCommandObserver(
      [&](const std::string&, const v1::AgentMessage&, std::function<void()>) {
        ++paced;
        return true;
      });
  auto session = std::make_shared<AckRecorder>();
  Send(Connect("db-1", session),
       BatchMessage("i", 1, {Sample("table_rows", 1, clock_.Now())}));
  session->WaitForAcks(1);
  // Observers are called inside OnMetricBatch, if ever: nothing to wait for.
  EXPECT_EQ(commands, 0);
  EXPECT_EQ(paced, 0);
}

TEST_F(MetricsManagerTest, AFullQueueHoldsTheStreamUntilTheBatchIsStored) {
  MetricsOptions options;
  options.max_queued_samples = 2;
  StartManager(options);
  auto session = std::make_shared<AckRecorder>();
  const uint64_t id = Connect("db-1", session);
  const absl::Time t = clock_.Now();
  absl::Notification resumed;
  // Three samples fill the queue at once: the stream is not read on...
  EXPECT_FALSE(registry_->OnMetricBatch(
      id,
      BatchMessage(
          "i", 1,
          {Sample("procedure_calls", 1, t), Sample("procedure_calls", 1, t),
           Sample("procedure_calls", 1, t)}),
      [&] { resumed.Notify(); }));
  // ...until the writer has taken the batch.
  resumed.WaitForNotification();
  EXPECT_THAT(session->WaitForAcks(1), ElementsAre(1));
  EXPECT_EQ(manager_->stats().streams_held, 1);
  manager_->Flush();
  EXPECT_EQ(Sum("procedure_calls"), 3);
}

TEST_F(MetricsManagerTest, StopStoresWhatIsQueuedAndDropsWhatComesLater) {
  StartManager();
  auto session = std::make_shared<AckRecorder>();
  const uint64_t id = Connect("db-1", session);
  EXPECT_TRUE(registry_->OnMetricBatch(
      id, BatchMessage("i", 1, {Sample("procedure_calls", 1, clock_.Now())})));
  manager_->Stop();
  EXPECT_THAT(session->WaitForAcks(1), ElementsAre(1));
  // No observer any more: read on, not stored, not acknowledged.
  EXPECT_TRUE(registry_->OnMetricBatch(
      id, BatchMessage("i", 2, {Sample("procedure_calls", 1, clock_.Now())})));
  EXPECT_EQ(manager_->stats().batches_stored, 1);
}

TEST_F(MetricsManagerTest, TopProceduresFleetWideAndPerDatabase) {
  StartManager();
  SendProcedureFigures();
  auto names = [](const v1::TopProceduresResponse& response) {
    std::vector<std::string> names;
    for (const auto& row : response.procedures()) {
      names.push_back(absl::StrCat(row.database_id(),
                                   row.database_id().empty() ? "" : "/",
                                   row.procedure()));
    }
    return names;
  };
  v1::TopProceduresRequest request;
  auto top = manager_->TopProceduresNow(request);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_THAT(names(*top), ElementsAre("SignUp", "Login"));
  const v1::ProcedureFigures& login = top->procedures(1);
  EXPECT_EQ(login.calls(), 20);
  EXPECT_DOUBLE_EQ(login.avg_ms(), 30);
  EXPECT_DOUBLE_EQ(login.max_ms(), 120);
  EXPECT_EQ(login.errors(), 1);

  request.set_order_by("calls");
  EXPECT_THAT(names(*manager_->TopProceduresNow(request)),
              ElementsAre("Login", "SignUp"));
  request.set_order_by("avg");
  request.set_per_database(true);
  EXPECT_THAT(names(*manager_->TopProceduresNow(request)),
              ElementsAre("db-1/SignUp", "db-1/Login", "db-2/Login"));
  request.set_limit(1);
  EXPECT_THAT(names(*manager_->TopProceduresNow(request)),
              ElementsAre("db-1/SignUp"));
  request.set_limit(0);
  request.set_selector("env=staging");
  top = manager_->TopProceduresNow(request);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_THAT(names(*top), ElementsAre("db-2/Login"));
  EXPECT_DOUBLE_EQ(top->procedures(0).avg_ms(), 10);
  // A short range is counted in minutes from the rollups: the same figures.
  request.clear_selector();
  request.set_per_database(false);
  request.set_order_by("max");
  *request.mutable_range() = ToProtoDuration(absl::Minutes(30));
  top = manager_->TopProceduresNow(request);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_THAT(names(*top), ElementsAre("SignUp", "Login"));
  EXPECT_DOUBLE_EQ(top->procedures(1).avg_ms(), 30);
  // Five minutes leave the samples out.
  *request.mutable_range() = ToProtoDuration(absl::Minutes(5));
  EXPECT_EQ(manager_->TopProceduresNow(request)->procedures_size(), 0);
}

TEST_F(MetricsManagerTest, RatesOfErrorsAndAuthenticationEvents) {
  StartManager();
  SendProcedureFigures();
  v1::GetRateRequest request;
  request.set_rate("errors");
  auto errors = manager_->GetRateNow(request);
  ASSERT_TRUE(errors.ok()) << errors.status();
  EXPECT_DOUBLE_EQ(errors->by_database().at("db-1"), 1.0 / 12);
  EXPECT_DOUBLE_EQ(errors->by_database().at("db-2"), 0);
  EXPECT_DOUBLE_EQ(errors->fleet(), 1.0 / 22);
  EXPECT_EQ(errors->unit(), "failed calls per call");

  request.set_rate("failed_logins");
  auto failed = manager_->GetRateNow(request);
  ASSERT_TRUE(failed.ok()) << failed.status();
  // 30 in the last hour (60 whole minutes).
  EXPECT_DOUBLE_EQ(failed->by_database().at("db-1"), 0.5);
  EXPECT_DOUBLE_EQ(failed->by_database().at("db-2"), 0);
  EXPECT_DOUBLE_EQ(failed->fleet(), 0.5);
  EXPECT_EQ(failed->unit(), "per minute");

  request.set_rate("suspicious_activity");
  request.set_selector("env=prod");
  auto suspicious = manager_->GetRateNow(request);
  ASSERT_TRUE(suspicious.ok()) << suspicious.status();
  EXPECT_EQ(suspicious->by_database_size(), 1);
  EXPECT_DOUBLE_EQ(suspicious->fleet(), 0);
}

// Where the agent reports operation calls (PostgreSQL and SQLite roll a
// refused call back with its ErrorLog row), failed calls per call come from
// those; a database that reports none keeps procedure_errors per call.
TEST_F(MetricsManagerTest, ErrorRateCountsFailedOperationCallsWhereReported) {
  StartManager();
  SendProcedureFigures();
  auto agent = std::make_shared<AckRecorder>();
  const uint64_t three = Connect("db-3", agent, {{"env", "prod"}});
  const absl::Time t = clock_.Now() - absl::Minutes(10);
  const Labels login = {{"procedure", "Login"}};
  // db-3: PerformanceMetrics counts 40 calls and ErrorLog is empty (the
  // failed calls were rolled back), while the agent counted 50 calls of
  // which 5 failed, in two collections.
  Send(three,
       BatchMessage(
           "c", 1,
           {Sample("procedure_calls", 40, t, login),
            Sample("operation_calls", 30, t, {{"operation", "Login"}}),
            Sample("operation_failures", 3, t, {{"operation", "Login"}}),
            Sample("operation_calls", 10, t, {{"operation", "SignUp"}}),
            Sample("operation_failures", 0, t, {{"operation", "SignUp"}})}));
  Send(three,
       BatchMessage("c", 2,
                    {Sample("operation_calls", 10, t + absl::Minutes(1),
                            {{"operation", "Login"}}),
                     Sample("operation_failures", 2, t + absl::Minutes(1),
                            {{"operation", "Login"}})}));
  manager_->Flush();
  v1::GetRateRequest request;
  request.set_rate("errors");
  auto errors = manager_->GetRateNow(request);
  ASSERT_TRUE(errors.ok()) << errors.status();
  EXPECT_DOUBLE_EQ(errors->by_database().at("db-3"), 5.0 / 50);
  // The others report no operation calls: ErrorLog's figures per call.
  EXPECT_DOUBLE_EQ(errors->by_database().at("db-1"), 1.0 / 12);
  EXPECT_DOUBLE_EQ(errors->by_database().at("db-2"), 0);
  // db-1: 1 of 12, db-2: 0 of 10, db-3: 5 of 50.
  EXPECT_DOUBLE_EQ(errors->fleet(), 6.0 / 72);
  EXPECT_EQ(errors->unit(), "failed calls per call");
  // The metrics are known to the server as deltas: series sum them.
  EXPECT_DOUBLE_EQ(Sum("operation_calls"), 50);
  EXPECT_DOUBLE_EQ(Sum("operation_failures"), 5);

  request.set_selector("env=prod");
  errors = manager_->GetRateNow(request);
  ASSERT_TRUE(errors.ok()) << errors.status();
  EXPECT_DOUBLE_EQ(errors->fleet(), 6.0 / 62);
}

TEST_F(MetricsManagerTest, SeriesUseTheKindOfTheMetric) {
  StartManager();
  auto session = std::make_shared<AckRecorder>();
  const uint64_t id = Connect("db-1", session, {{"env", "prod"}});
  const absl::Time t = clock_.Now() - absl::Minutes(3);
  Send(id, BatchMessage(
               "i", 1,
               {Sample("procedure_calls", 4, t, {{"procedure", "Login"}}),
                Sample("procedure_calls", 6, t + absl::Seconds(20),
                       {{"procedure", "Login"}}),
                Sample("procedure_max_ms", 10, t, {{"procedure", "Login"}}),
                Sample("procedure_max_ms", 30, t + absl::Seconds(20),
                       {{"procedure", "Login"}}),
                Sample("procedure_calls", 1, t, {{"procedure", "SignUp"}})}));
  v1::QuerySeriesRequest request;
  request.set_metric("procedure_calls");
  (*request.mutable_labels())["procedure"] = "Login";
  auto series = manager_->QuerySeriesNow(request);
  ASSERT_TRUE(series.ok()) << series.status();
  // An hour in at most 120 steps: 30 seconds.
  EXPECT_EQ(FromProtoDuration(series->step()), absl::Seconds(30));
  ASSERT_EQ(series->series_size(), 1);
  EXPECT_EQ(series->series(0).database_id(), "db-1");
  EXPECT_EQ(series->series(0).labels().at("procedure"), "Login");
  ASSERT_EQ(series->series(0).points_size(), 1);
  EXPECT_EQ(series->series(0).points(0).value(), 10);  // a delta: summed
  request.set_metric("procedure_max_ms");
  series = manager_->QuerySeriesNow(request);
  ASSERT_TRUE(series.ok()) << series.status();
  EXPECT_EQ(series->series(0).points(0).value(), 20);  // a gauge: averaged

  // Older than the raw retention: rollups, in whole minutes.
  clock_.Advance(absl::Hours(30));
  request.set_metric("procedure_calls");
  *request.mutable_start_time() = ToProtoTimestamp(t - absl::Minutes(10));
  *request.mutable_end_time() = ToProtoTimestamp(t + absl::Minutes(10));
  *request.mutable_step() = ToProtoDuration(absl::Seconds(90));
  series = manager_->QuerySeriesNow(request);
  ASSERT_TRUE(series.ok()) << series.status();
  EXPECT_EQ(FromProtoDuration(series->step()), absl::Minutes(2));
  ASSERT_EQ(series->series_size(), 1);
  EXPECT_EQ(series->series(0).points(0).value(), 10);

  // The asynchronous form answers on the query thread.
  absl::Notification answered;
  manager_->QuerySeries(request,
                        [&](absl::StatusOr<v1::QuerySeriesResponse> result) {
                          EXPECT_TRUE(result.ok()) << result.status();
                          answered.Notify();
                        });
  answered.WaitForNotification();
}

TEST_F(MetricsManagerTest, MetricsDeclaredByABundleHaveTheirKind) {
  StartManager();
  auto uploaded = bundles_->Upload(
      {testing::File("manifest.textproto", R"(name: "custom" version: "1.0.0"
dialects: DIALECT_SQLITE
phases { name: "p" steps { name: "s" kind: STEP_KIND_VERSIONED sql { sqlite: "s.sql" } } }
collectors {
  name: "widgets"
  query { sqlite: "SELECT 1 AS n" }
  values { column: "n" metric: "widgets_made" kind: METRIC_KIND_DELTA }
}
)"),
       testing::File("s.sql", "SELECT 1;\n")});
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  EXPECT_EQ(*manager_->KindOf("widgets_made"), v1::METRIC_KIND_DELTA);
  EXPECT_EQ(*manager_->KindOf("table_rows"), v1::METRIC_KIND_GAUGE);
  EXPECT_THAT(manager_->KindOf("nobody_knows").status().message(),
              HasSubstr("metric: \"nobody_knows\""));
}

TEST_F(MetricsManagerTest, ValidationNamesTheField) {
  StartManager();
  auto message = [](const absl::Status& status) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    return std::string(status.message());
  };
  v1::QuerySeriesRequest series;
  EXPECT_THAT(message(manager_->QuerySeriesNow(series).status()),
              HasSubstr("metric is required"));
  series.set_metric("procedure_calls");
  series.set_selector("env in (");
  EXPECT_THAT(message(manager_->QuerySeriesNow(series).status()),
              HasSubstr("selector: "));
  series.clear_selector();
  *series.mutable_start_time() = ToProtoTimestamp(clock_.Now());
  *series.mutable_end_time() =
      ToProtoTimestamp(clock_.Now() - absl::Minutes(1));
  EXPECT_THAT(message(manager_->QuerySeriesNow(series).status()),
              HasSubstr("start_time: "));
  series.clear_start_time();
  series.clear_end_time();
  *series.mutable_step() = ToProtoDuration(absl::Seconds(-1));
  EXPECT_THAT(message(manager_->QuerySeriesNow(series).status()),
              HasSubstr("step: "));
  *series.mutable_step() = ToProtoDuration(absl::Microseconds(1));
  EXPECT_THAT(message(manager_->QuerySeriesNow(series).status()),
              HasSubstr("step: "));

  v1::TopProceduresRequest top;
  top.set_order_by("fastest");
  EXPECT_THAT(message(manager_->TopProceduresNow(top).status()),
              HasSubstr("order_by: "));
  top.clear_order_by();
  top.set_limit(-1);
  EXPECT_THAT(message(manager_->TopProceduresNow(top).status()),
              HasSubstr("limit: "));
  top.set_limit(0);
  *top.mutable_range() = ToProtoDuration(absl::Seconds(-5));
  EXPECT_THAT(message(manager_->TopProceduresNow(top).status()),
              HasSubstr("range: "));

  v1::GetRateRequest rate;
  EXPECT_THAT(message(manager_->GetRateNow(rate).status()),
              HasSubstr("rate is required"));
  rate.set_rate("latency");
  EXPECT_THAT(message(manager_->GetRateNow(rate).status()),
              HasSubstr("rate: \"latency\""));
}

TEST_F(MetricsManagerTest, RetentionKeepsRollupsOfExpiredRawSamples) {
  StartManager();
  auto session = std::make_shared<AckRecorder>();
  const uint64_t id = Connect("db-1", session);
  const absl::Time t = clock_.Now();
  Send(id, BatchMessage("i", 1, {Sample("procedure_calls", 5, t)}));
  clock_.Advance(absl::Hours(25));
  ASSERT_TRUE(manager_->EnforceRetentionNow().ok());
  // The raw sample is gone, the series still reads from its rollups.
  SeriesFilter filter;
  filter.metric = "procedure_calls";
  auto raw = store_->QueryPoints(filter, t - absl::Hours(1), t + absl::Hours(1),
                                 absl::Hours(2), false, Resolution::kRaw);
  ASSERT_TRUE(raw.ok());
  EXPECT_TRUE(raw->empty());
  v1::QuerySeriesRequest request;
  request.set_metric("procedure_calls");
  *request.mutable_start_time() = ToProtoTimestamp(t - absl::Hours(1));
  *request.mutable_end_time() = ToProtoTimestamp(t + absl::Hours(1));
  auto series = manager_->QuerySeriesNow(request);
  ASSERT_TRUE(series.ok()) << series.status();
  ASSERT_EQ(series->series_size(), 1);
  EXPECT_EQ(series->series(0).points(0).value(), 5);
}

}  // namespace
}  // namespace ecliptix::server
