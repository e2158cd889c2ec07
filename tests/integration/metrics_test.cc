// Metrics end to end, with an in-process ecliptix-server over loopback gRPC on
// SQLite (and on PostgreSQL when ECLIPTIX_TEST_POSTGRES_URL is set): simulated
// agents send MetricBatch messages over real AgentService.Connect streams and
// read the MetricAcks; a batch sent again after a reconnect is acknowledged
// and stored once; a flood of batches is held back by flow control and every
// one is stored; MetricsService (through the client library and ecliptixctl)
// answers from what was stored.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/ctl_commands.h"
#include "client/fleet_client.h"
#include "common/proto_time.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using testing::WaitFor;

// An agent on a plain gRPC stream, driven by the test: Hello, then metric
// batches; reads what the server sends (Welcome, MetricAcks).
class SimulatedAgent {
 public:
  SimulatedAgent(const std::string& address, std::string database_id,
                 std::map<std::string, std::string> labels)
      : database_id_(std::move(database_id)),
        labels_(std::move(labels)),
        stub_(v1::AgentService::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  ~SimulatedAgent() { Disconnect(); }

  // Opens a stream and waits for the Welcome.
  bool Connect() {
    Disconnect();
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(120));
    stream_ = stub_->Connect(context_.get());
    sequence_ = 0;
    v1::AgentMessage hello;
    hello.mutable_hello()->set_database_id(database_id_);
    hello.mutable_hello()->set_engine(v1::ENGINE_SQLITE);
    hello.mutable_hello()->set_engine_version("3.40.1");
    hello.mutable_hello()->set_connector(v1::CONNECTOR_SQLITE);
    hello.mutable_hello()->set_agent_version("0.1.0");
    hello.mutable_hello()->add_capabilities("metrics");
    hello.mutable_hello()->mutable_labels()->insert(labels_.begin(),
                                                    labels_.end());
    if (!Send(std::move(hello))) return false;
    v1::ServerMessage reply;
    return stream_->Read(&reply) && reply.has_welcome();
  }

  bool SendBatch(v1::MetricBatch batch) {
    v1::AgentMessage message;
    *message.mutable_metric_batch() = std::move(batch);
    return Send(std::move(message));
  }

  // Reads until an acknowledgement of `instance` at `sequence` or above;
  // returns the acknowledged sequences seen on the way (0 when the stream
  // ended first).
  std::vector<uint64_t> ReadAcksUntil(const std::string& instance,
                                      uint64_t sequence) {
    std::vector<uint64_t> acks;
    v1::ServerMessage message;
    while (stream_->Read(&message)) {
      EXPECT_FALSE(message.has_message_error())
          << message.message_error().DebugString();
      if (!message.has_metric_ack()) continue;
      EXPECT_EQ(message.metric_ack().agent_instance(), instance);
      acks.push_back(message.metric_ack().sequence());
      if (message.metric_ack().sequence() >= sequence) return acks;
    }
    acks.push_back(0);
    return acks;
  }

  // Ends the stream from this side, as a dropped connection would.
  void Disconnect() {
    if (stream_ == nullptr) return;
    context_->TryCancel();
    stream_->Finish();
    stream_.reset();
  }

 private:
  bool Send(v1::AgentMessage message) {
    message.set_sequence(++sequence_);
    return stream_->Write(message);
  }

  const std::string database_id_;
  const std::map<std::string, std::string> labels_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream_;
  uint64_t sequence_ = 0;
};

v1::MetricSample Sample(const std::string& metric, double value,
                        absl::Time time,
                        std::map<std::string, std::string> labels) {
  v1::MetricSample sample;
  sample.set_metric(metric);
  sample.set_value(value);
  *sample.mutable_time() = ToProtoTimestamp(time);
  sample.mutable_labels()->insert(labels.begin(), labels.end());
  return sample;
}

// One collection of procedure figures for `procedure`.
v1::MetricBatch Collection(const std::string& instance, uint64_t sequence,
                           absl::Time time, const std::string& procedure,
                           double calls, double total_ms, double max_ms,
                           double errors, double failed_logins) {
  v1::MetricBatch batch;
  batch.set_agent_instance(instance);
  batch.set_sequence(sequence);
  const std::map<std::string, std::string> labels = {{"procedure", procedure}};
  *batch.add_samples() = Sample("procedure_calls", calls, time, labels);
  *batch.add_samples() =
      Sample("procedure_execution_ms", total_ms, time, labels);
  *batch.add_samples() = Sample("procedure_max_ms", max_ms, time, labels);
  *batch.add_samples() = Sample("procedure_errors", errors, time, labels);
  *batch.add_samples() =
      Sample("auth_events", failed_logins, time, {{"event", "LOGIN_FAILED"}});
  return batch;
}

class MetricsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void StartServer(server::MetricsOptions metrics = {}) {
    std::string url;
    if (GetParam() == "postgresql") {
      if (!testing::PostgresAdminUrl()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
      }
      auto scratch = testing::CreateScratchDatabase("metrics_it");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url = scratch->url;
    } else {
      static int counter = 0;
      const std::string dir =
          absl::StrCat(std::getenv("TEST_TMPDIR"), "/metrics-", ++counter);
      std::filesystem::create_directories(dir);
      url = absl::StrCat("sqlite://", dir, "/state.db");
    }
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.store_url = url;
    options.metrics = metrics;
    auto server = server::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    client::ClientOptions client_options;
    client_options.server_address = address_;
    auto client = client::FleetClient::Create(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  double CallsOf(const std::string& selector = "") {
    v1::QuerySeriesRequest request;
    request.set_metric("procedure_calls");
    request.set_selector(selector);
    auto response = client_->QuerySeries(request);
    EXPECT_TRUE(response.ok()) << response.status();
    double sum = 0;
    if (!response.ok()) return sum;
    for (const auto& series : response->series()) {
      for (const auto& point : series.points()) sum += point.value();
    }
    return sum;
  }

  // ecliptixctl in-process against this server.
  int Ctl(std::vector<std::string> args, std::string* out) {
    std::ostringstream stdout_text, stderr_text;
    client::ctl::CtlContext context;
    context.out = &stdout_text;
    context.err = &stderr_text;
    context.env_server = address_;
    const int code = client::ctl::RunCtl(args, context);
    *out = stdout_text.str();
    EXPECT_EQ(stderr_text.str(), "") << stderr_text.str();
    return code;
  }

  std::unique_ptr<server::Server> server_;
  std::string address_;
  std::unique_ptr<client::FleetClient> client_;
};

TEST_P(MetricsTest,
       BatchesAreAcknowledgedAndARepeatAfterReconnectIsStoredOnce) {
  StartServer();
  if (IsSkipped()) return;
  SimulatedAgent prod(address_, "db-prod", {{"env", "prod"}});
  SimulatedAgent staging(address_, "db-staging", {{"env", "staging"}});
  ASSERT_TRUE(prod.Connect());
  ASSERT_TRUE(staging.Connect());
  const absl::Time t = absl::Now() - absl::Minutes(5);
  // db-prod: Login 10 calls of 50 ms on average (max 120), 1 error, 30
  // failed logins; then SignUp 2 calls of 200 ms.
  ASSERT_TRUE(
      prod.SendBatch(Collection("p-1", 1, t, "Login", 10, 500, 120, 1, 30)));
  EXPECT_THAT(prod.ReadAcksUntil("p-1", 1), ::testing::ElementsAre(1));
  ASSERT_TRUE(prod.SendBatch(Collection("p-1", 2, t + absl::Seconds(30),
                                        "SignUp", 2, 400, 300, 0, 0)));
  // The connection drops once batch 2 is stored, before the agent reads its
  // ack: it reconnects and sends batch 2 again, then batch 3.
  ASSERT_TRUE(
      WaitFor([&] { return server_->metrics().stats().batches_stored == 2; }));
  prod.Disconnect();
  ASSERT_TRUE(WaitFor([&] {
    auto database = server_->registry().GetDatabase("db-prod");
    return database.ok() &&
           database->connection_state() != v1::CONNECTION_STATE_CONNECTED;
  }));
  ASSERT_TRUE(prod.Connect());
  ASSERT_TRUE(prod.SendBatch(Collection("p-1", 2, t + absl::Seconds(30),
                                        "SignUp", 2, 400, 300, 0, 0)));
  ASSERT_TRUE(prod.SendBatch(Collection("p-1", 3, t + absl::Seconds(60),
                                        "Login", 10, 500, 100, 0, 0)));
  // Acknowledged (with 3, the highest stored, when both come in one write).
  EXPECT_EQ(prod.ReadAcksUntil("p-1", 3).back(), 3u);
  // db-staging: Login 10 calls of 10 ms.
  ASSERT_TRUE(
      staging.SendBatch(Collection("s-1", 1, t, "Login", 10, 100, 20, 0, 0)));
  EXPECT_THAT(staging.ReadAcksUntil("s-1", 1), ::testing::ElementsAre(1));

  // Stored once: 10 + 2 + 10 on prod.
  EXPECT_EQ(CallsOf("env=prod"), 22);
  EXPECT_EQ(CallsOf(), 32);
  EXPECT_EQ(server_->metrics().stats().batches_repeated, 1);

  v1::TopProceduresRequest top;
  top.set_per_database(true);
  auto figures = client_->TopProcedures(top);
  ASSERT_TRUE(figures.ok()) << figures.status();
  ASSERT_EQ(figures->procedures_size(), 3);
  EXPECT_EQ(figures->procedures(0).database_id(), "db-prod");
  EXPECT_EQ(figures->procedures(0).procedure(), "SignUp");
  EXPECT_DOUBLE_EQ(figures->procedures(0).avg_ms(), 200);
  EXPECT_EQ(figures->procedures(1).procedure(), "Login");
  EXPECT_EQ(figures->procedures(1).calls(), 20);
  EXPECT_DOUBLE_EQ(figures->procedures(1).avg_ms(), 50);
  EXPECT_DOUBLE_EQ(figures->procedures(1).max_ms(), 120);
  EXPECT_EQ(figures->procedures(1).errors(), 1);
  EXPECT_EQ(figures->procedures(2).database_id(), "db-staging");

  v1::GetRateRequest rate;
  rate.set_rate("errors");
  rate.set_selector("env=prod");
  auto errors = client_->GetRate(rate);
  ASSERT_TRUE(errors.ok()) << errors.status();
  EXPECT_DOUBLE_EQ(errors->fleet(), 1.0 / 22);
  rate.set_rate("failed_logins");
  rate.clear_selector();
  auto failed = client_->GetRate(rate);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_GT(failed->by_database().at("db-prod"), 0);
  EXPECT_EQ(failed->unit(), "per minute");

  // ecliptixctl, as scripts use it.
  std::string out;
  EXPECT_EQ(Ctl({"metrics", "top", "--order_by=calls", "--limit=1"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("Login       30"));
  EXPECT_EQ(Ctl({"metrics", "series", "procedure_max_ms",
                 "--label=procedure=SignUp", "--range=30m", "--step=1h"},
                &out),
            0);
  EXPECT_THAT(out, HasSubstr("db-prod    procedure=SignUp"));
  EXPECT_THAT(out, HasSubstr("   300\n"));
  EXPECT_EQ(Ctl({"metrics", "rate", "errors", "-o", "json"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("\"unit\":\"failed calls per call\""));

  // A refused question names its field.
  v1::QuerySeriesRequest unknown;
  unknown.set_metric("no_such_metric");
  auto refused = client_->QuerySeries(unknown);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("metric: "));
}

TEST_P(MetricsTest, AFloodOfBatchesIsHeldBackAndEveryOneStored) {
  server::MetricsOptions metrics;
  metrics.max_queued_samples = 20;
  metrics.max_samples_per_transaction = 10;
  StartServer(metrics);
  if (IsSkipped()) return;
  constexpr int kAgents = 3, kBatches = 200;
  std::vector<std::thread> threads;
  for (int a = 0; a < kAgents; ++a) {
    threads.emplace_back([&, a] {
      SimulatedAgent agent(address_, absl::StrCat("flood-", a), {});
      ASSERT_TRUE(agent.Connect());
      const absl::Time t = absl::Now() - absl::Minutes(1);
      for (int b = 1; b <= kBatches; ++b) {
        ASSERT_TRUE(agent.SendBatch(Collection(absl::StrCat("f-", a), b,
                                               t + absl::Milliseconds(b),
                                               "Flood", 1, 1, 1, 0, 0)));
      }
      EXPECT_EQ(agent.ReadAcksUntil(absl::StrCat("f-", a), kBatches).back(),
                static_cast<uint64_t>(kBatches));
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(CallsOf(), kAgents * kBatches);
  const server::IngestStats stats = server_->metrics().stats();
  EXPECT_EQ(stats.batches_stored, kAgents * kBatches);
  EXPECT_GT(stats.streams_held, 0);
}

INSTANTIATE_TEST_SUITE_P(Stores, MetricsTest,
                         ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ecliptix
