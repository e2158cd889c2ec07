// An in-process Agent on a SQLite database with the reference bundle
// deployed, against a fake server (AgentService storing and acknowledging
// metric batches, BundleService serving the bundle): "metrics" in Hello, the
// collectors' samples arrive in acknowledged batches, and
// collect_metrics = false announces and sends nothing of the kind.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/agent.h"
#include "agent/executor/executor.h"
#include "agent/target/open_target.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/reference_database.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::Contains;
using ::testing::Not;

constexpr absl::Duration kTimeout = absl::Seconds(30);

class FakeServer final : public v1::AgentService::Service,
                         public v1::BundleService::Service {
 public:
  explicit FakeServer(std::shared_ptr<const bundle::Bundle> bundle)
      : bundle_(std::move(bundle)) {}

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerMessage, v1::AgentMessage>* stream)
      override {
    v1::AgentMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    {
      absl::MutexLock lock(&mutex_);
      hellos_.push_back(message.hello());
    }
    uint64_t sequence = 0;
    v1::ServerMessage reply;
    reply.set_sequence(++sequence);
    reply.mutable_welcome()->set_session_id("s1");
    reply.mutable_welcome()->mutable_heartbeat_interval()->set_seconds(5);
    stream->Write(reply);
    while (stream->Read(&message)) {
      if (!message.has_metric_batch()) continue;
      const v1::MetricBatch& batch = message.metric_batch();
      {
        absl::MutexLock lock(&mutex_);
        if (stored_.insert({batch.agent_instance(), batch.sequence()}).second) {
          for (const v1::MetricSample& sample : batch.samples())
            metrics_.insert(sample.metric());
        }
      }
      reply.Clear();
      reply.set_sequence(++sequence);
      reply.mutable_metric_ack()->set_agent_instance(batch.agent_instance());
      reply.mutable_metric_ack()->set_sequence(batch.sequence());
      stream->Write(reply);
    }
    return grpc::Status::OK;
  }

  grpc::Status GetBundle(grpc::ServerContext* context,
                         const v1::GetBundleRequest* request,
                         v1::GetBundleResponse* response) override {
    if (request->bundle_id() != bundle_->id()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such bundle");
    }
    for (const v1::BundleFile& file : bundle_->files())
      *response->add_files() = file;
    return grpc::Status::OK;
  }

  std::vector<v1::Hello> hellos() {
    absl::MutexLock lock(&mutex_);
    return hellos_;
  }
  // Waits until samples of every metric of `metrics` were stored.
  bool AwaitMetrics(const std::set<std::string>& metrics) {
    absl::MutexLock lock(&mutex_);
    auto stored = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      for (const std::string& metric : metrics)
        if (metrics_.count(metric) == 0) return false;
      return true;
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&stored), kTimeout);
  }

 private:
  const std::shared_ptr<const bundle::Bundle> bundle_;
  absl::Mutex mutex_;
  std::vector<v1::Hello> hellos_ ABSL_GUARDED_BY(mutex_);
  std::set<std::pair<std::string, uint64_t>> stored_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> metrics_ ABSL_GUARDED_BY(mutex_);
};

class AgentMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = absl::StrCat(
        ::testing::TempDir(), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    absl::StatusOr<std::string> url =
        testing::DeployedDatabase(testing::Engine::kSqlite, dir);
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    server_impl_ = std::make_unique<FakeServer>(testing::TestBundle());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(
        static_cast<v1::AgentService::Service*>(server_impl_.get()));
    builder.RegisterService(
        static_cast<v1::BundleService::Service*>(server_impl_.get()));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    if (agent_ != nullptr) {
      agent_->Shutdown();
      agent_->Wait();
      agent_.reset();
    }
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  void StartAgent(bool collect_metrics) {
    AgentOptions options;
    options.server_address = absl::StrCat("127.0.0.1:", port_);
    options.database_url = url_;
    options.initial_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(100);
    options.collect_metrics = collect_metrics;
    // Collectors every 3 s (60 s) and 15 s (300 s); each runs at once first.
    options.metrics_interval_scale = 0.05;
    absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(options);
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    ASSERT_TRUE(agent_->control_stream().AwaitSessions(1, kTimeout));
  }

  std::string url_;
  std::unique_ptr<FakeServer> server_impl_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentMetricsTest, CollectedSamplesArriveAndAreAcknowledged) {
  StartAgent(/*collect_metrics=*/true);
  ASSERT_EQ(server_impl_->hellos().size(), 1u);
  EXPECT_THAT(server_impl_->hellos()[0].capabilities(), Contains("metrics"));
  ASSERT_NE(agent_->metric_sender(), nullptr);
  // The gauges come with the first collection.
  ASSERT_TRUE(
      server_impl_->AwaitMetrics({"table_rows", "database_size_bytes"}));

  // A login after the first collection is counted by a later one.
  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
  ASSERT_TRUE(database.ok()) << database.status();
  ExecutorOptions executor_options;
  executor_options.backup_dir = absl::StrCat(::testing::TempDir(), "/b");
  Executor executor(database->get(), executor_options);
  ASSERT_TRUE(executor
                  .CallOperation(*testing::TestBundle(), "LoginMembership",
                                 {{"PhoneNumber", "+15550001111"},
                                  {"SecureKey", "not-the-key"}})
                  .ok());
  ASSERT_TRUE(server_impl_->AwaitMetrics(
      {"procedure_calls", "procedure_execution_ms", "auth_events"}));
  const absl::Time deadline = absl::Now() + kTimeout;
  while (agent_->metric_sender()->pending_batches() > 0 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(agent_->metric_sender()->pending_batches(), 0u);
  EXPECT_GT(agent_->metric_sender()->acknowledged(), 0u);
}

TEST_F(AgentMetricsTest, NoMetricsWhenCollectionIsOff) {
  StartAgent(/*collect_metrics=*/false);
  ASSERT_EQ(server_impl_->hellos().size(), 1u);
  EXPECT_THAT(server_impl_->hellos()[0].capabilities(),
              Not(Contains("metrics")));
  EXPECT_EQ(agent_->metric_sender(), nullptr);
}

}  // namespace
}  // namespace ecliptix::agent
