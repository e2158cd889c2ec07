// Metric batches on the real control stream against a fake AgentService that
// stores batches once per (agent_instance, sequence) and acknowledges them:
// capability "metrics" in Hello, batches and acks through the stream, and
// after the session breaks, the unacknowledged batches sent again in order on
// the next one.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/control_stream.h"
#include "agent/metrics/metric_sender.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::Contains;
using ::testing::ElementsAre;

constexpr absl::Duration kTimeout = absl::Seconds(10);

class FakeAgentService final : public v1::AgentService::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerMessage, v1::AgentMessage>* stream)
      override {
    v1::AgentMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    size_t session = 0;
    {
      absl::MutexLock lock(&mutex_);
      session = received_.size();
      received_.emplace_back();
      hellos_.push_back(message.hello());
      context_ = context;
    }
    uint64_t sequence = 0;
    v1::ServerMessage reply;
    reply.set_sequence(++sequence);
    reply.mutable_welcome()->set_session_id(absl::StrCat("s", session + 1));
    reply.mutable_welcome()->mutable_heartbeat_interval()->set_seconds(5);
    stream->Write(reply);
    while (stream->Read(&message)) {
      if (!message.has_metric_batch()) continue;
      const v1::MetricBatch& batch = message.metric_batch();
      bool ack = false;
      uint64_t highest = 0;
      {
        absl::MutexLock lock(&mutex_);
        received_[session].push_back(batch.sequence());
        stored_.emplace(
            std::make_pair(batch.agent_instance(), batch.sequence()), batch);
        highest = stored_.rbegin()->first.second;
        ack = acking_;
      }
      if (!ack) continue;
      reply.Clear();
      reply.set_sequence(++sequence);
      reply.mutable_metric_ack()->set_agent_instance(batch.agent_instance());
      reply.mutable_metric_ack()->set_sequence(highest);
      stream->Write(reply);
    }
    absl::MutexLock lock(&mutex_);
    context_ = nullptr;
    return grpc::Status::OK;
  }

  void SetAcking(bool acking) {
    absl::MutexLock lock(&mutex_);
    acking_ = acking;
  }
  // Breaks the current session (the agent reconnects).
  void Break() {
    absl::MutexLock lock(&mutex_);
    if (context_ != nullptr) context_->TryCancel();
  }
  // Waits until session `session` (0-based) received `count` batches.
  bool Await(size_t session, size_t count) {
    absl::MutexLock lock(&mutex_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return received_.size() > session && received_[session].size() >= count;
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&reached), kTimeout);
  }
  std::vector<uint64_t> received(size_t session) {
    absl::MutexLock lock(&mutex_);
    return received_.at(session);
  }
  std::vector<v1::Hello> hellos() {
    absl::MutexLock lock(&mutex_);
    return hellos_;
  }
  // Stored samples' values, by sequence.
  std::vector<double> StoredValues() {
    absl::MutexLock lock(&mutex_);
    std::vector<double> values;
    for (const auto& [key, batch] : stored_) {
      for (const v1::MetricSample& sample : batch.samples())
        values.push_back(sample.value());
    }
    return values;
  }

 private:
  absl::Mutex mutex_;
  bool acking_ ABSL_GUARDED_BY(mutex_) = true;
  grpc::ServerContext* context_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::vector<v1::Hello> hellos_ ABSL_GUARDED_BY(mutex_);
  // Per session, the sequences received in order.
  std::vector<std::vector<uint64_t>> received_ ABSL_GUARDED_BY(mutex_);
  std::map<std::pair<std::string, uint64_t>, v1::MetricBatch> stored_
      ABSL_GUARDED_BY(mutex_);
};

std::vector<v1::MetricSample> Values(std::vector<double> values) {
  std::vector<v1::MetricSample> samples;
  for (double value : values) {
    v1::MetricSample& sample = samples.emplace_back();
    sample.set_metric("procedure_calls");
    sample.set_value(value);
  }
  return samples;
}

bool AwaitPending(const MetricSender& sender, size_t batches) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (sender.pending_batches() != batches) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class MetricStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);

    MetricSenderOptions sender_options;
    sender_options.max_batch_samples = 2;
    sender_ = std::make_unique<MetricSender>(sender_options);
    sender_->Start();
    ControlStreamOptions options;
    options.server_address = absl::StrCat("127.0.0.1:", port_);
    options.hello.set_database_id("db-metrics");
    options.hello.set_engine(v1::ENGINE_SQLITE);
    options.hello.set_engine_version("3.40.1");
    options.hello.set_connector(v1::CONNECTOR_SQLITE);
    options.backoff.initial = absl::Milliseconds(20);
    options.backoff.max = absl::Milliseconds(100);
    options.listener = sender_.get();
    stream_ = std::make_unique<ControlStream>(std::move(options));
    runner_ = std::thread([this] { stream_->Run(); });
  }

  void TearDown() override {
    stream_->Stop();
    runner_.join();
    sender_->Stop();
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  FakeAgentService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricSender> sender_;
  std::unique_ptr<ControlStream> stream_;
  std::thread runner_;
};

TEST_F(MetricStreamTest, HelloAnnouncesMetricsAndAcksDropBatches) {
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  ASSERT_EQ(service_.hellos().size(), 1u);
  EXPECT_THAT(service_.hellos()[0].capabilities(), Contains("metrics"));
  EXPECT_THAT(service_.hellos()[0].capabilities(), Contains("heartbeat"));

  sender_->Add(Values({1, 2, 3}));
  ASSERT_TRUE(service_.Await(0, 2));
  EXPECT_THAT(service_.received(0), ElementsAre(1, 2));
  ASSERT_TRUE(AwaitPending(*sender_, 0));
  EXPECT_EQ(sender_->acknowledged(), 2u);
  EXPECT_THAT(service_.StoredValues(), ElementsAre(1, 2, 3));
}

TEST_F(MetricStreamTest, UnacknowledgedBatchesGoAgainInOrderAfterReconnect) {
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  service_.SetAcking(false);
  sender_->Add(Values({1, 2, 3, 4}));
  ASSERT_TRUE(service_.Await(0, 2));
  EXPECT_EQ(sender_->pending_batches(), 2u);

  service_.Break();
  ASSERT_TRUE(stream_->AwaitSessions(2, kTimeout));
  // The second session starts with the unacknowledged batches, in order.
  ASSERT_TRUE(service_.Await(1, 2));
  service_.SetAcking(true);
  sender_->Add(Values({5}));
  ASSERT_TRUE(service_.Await(1, 3));
  EXPECT_THAT(service_.received(1), ElementsAre(1, 2, 3));
  ASSERT_TRUE(AwaitPending(*sender_, 0));
  // Stored once each, although batches 1 and 2 came twice.
  EXPECT_THAT(service_.StoredValues(), ElementsAre(1, 2, 3, 4, 5));
}

}  // namespace
}  // namespace ecliptix::agent
