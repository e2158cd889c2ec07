// Flow control end to end, with an in-process server over loopback gRPC:
// simulated agents flood the server with step events far beyond the
// orchestrator's queue (8 messages here), so their streams are held and read
// again over and over; every message still reaches the rollout, in order, and
// the rollout succeeds.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

using testing::WaitFor;

constexpr int kSteps = 1500;

// Every step a watcher is told of, by database, and the end of the watch.
class StepLog : public server::RolloutEventSink {
 public:
  bool Deliver(const v1::RolloutEvent& event) override {
    absl::MutexLock lock(&mutex_);
    if (event.has_deployment()) {
      steps_[event.deployment().database_id()].push_back(
          event.deployment().event().step());
    }
    return true;
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mutex_);
    end_ = status;
    ended_ = true;
  }
  bool ended() {
    absl::MutexLock lock(&mutex_);
    return ended_;
  }
  absl::Status end() {
    absl::MutexLock lock(&mutex_);
    return end_;
  }
  std::map<std::string, std::vector<std::string>> steps() {
    absl::MutexLock lock(&mutex_);
    return steps_;
  }

 private:
  absl::Mutex mutex_;
  std::map<std::string, std::vector<std::string>> steps_
      ABSL_GUARDED_BY(mutex_);
  absl::Status end_ ABSL_GUARDED_BY(mutex_);
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
};

// An agent on a plain gRPC stream: Hello, then for its first command an ack,
// kSteps step events and the end, written as fast as the stream takes them.
class FloodingAgent {
 public:
  FloodingAgent(const std::string& address, std::string database_id,
                absl::Notification* go)
      : database_id_(std::move(database_id)),
        go_(go),
        stub_(v1::AgentService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FloodingAgent() {
    context_.TryCancel();
    thread_.join();
  }

 private:
  void Run() {
    auto stream = stub_->Connect(&context_);
    uint64_t sequence = 0;
    auto send = [&](v1::AgentMessage message) {
      message.set_sequence(++sequence);
      return stream->Write(message);
    };
    v1::AgentMessage hello;
    hello.mutable_hello()->set_database_id(database_id_);
    hello.mutable_hello()->set_engine(v1::ENGINE_SQLITE);
    hello.mutable_hello()->set_engine_version("3.40.1");
    hello.mutable_hello()->set_connector(v1::CONNECTOR_SQLITE);
    hello.mutable_hello()->set_agent_version("0.1.0");
    (*hello.mutable_hello()->mutable_labels())["env"] = "flood";
    if (!send(hello)) return;
    v1::ServerMessage reply;
    while (stream->Read(&reply) && !reply.has_command()) {
    }
    if (!reply.has_command()) return;
    const std::string id = reply.command().command_id();
    go_->WaitForNotification();
    v1::AgentMessage ack;
    ack.mutable_command_ack()->set_command_id(id);
    if (!send(ack)) return;
    for (int i = 0; i < kSteps; ++i) {
      v1::AgentMessage event;
      event.mutable_command_event()->set_command_id(id);
      v1::DeploymentEvent* deployment =
          event.mutable_command_event()->mutable_deployment();
      deployment->set_phase("one");
      deployment->set_step(absl::StrCat(i));
      deployment->mutable_step_finished()->set_outcome(
          v1::STEP_OUTCOME_APPLIED);
      if (!send(event)) return;
    }
    v1::AgentMessage finished;
    finished.mutable_command_event()->set_command_id(id);
    finished.mutable_command_event()->mutable_finished();
    if (!send(finished)) return;
    // Reads until the test ends the stream.
    while (stream->Read(&reply)) {
    }
    stream->Finish();
  }

  const std::string database_id_;
  absl::Notification* const go_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::thread thread_;
};

TEST(FlowControlTest, FloodOfAgentMessagesIsHeldBackAndHandledInOrder) {
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/flow-control");
  std::filesystem::create_directories(dir);
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.store_url = absl::StrCat("sqlite://", dir, "/state.db");
  options.rollouts.max_queued_agent_messages = 8;
  auto server = server::Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  // The agents flood once the watch is on.
  absl::Notification go;
  std::vector<std::unique_ptr<FloodingAgent>> agents;
  for (const char* id : {"flood-1", "flood-2", "flood-3"})
    agents.push_back(std::make_unique<FloodingAgent>(address, id, &go));
  ASSERT_TRUE(WaitFor([&] {
    auto all = (*server)->registry().Select("env=flood");
    return all.ok() && all->size() == 3;
  }));

  v1::BundleFile manifest;
  manifest.set_path("manifest.textproto");
  manifest.set_content(R"(name: "flood"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps {
    name: "t"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/t.sql" }
  }
}
)");
  v1::BundleFile sql;
  sql.set_path("sqlite/t.sql");
  sql.set_content("SELECT 1;\n");
  auto bundle = (*server)->bundles().Upload({manifest, sql});
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector("env=flood");
  auto rollout = server::RolloutOrchestrator::Await<v1::Rollout>(
      [&](auto done) { (*server)->rollouts().Create(create, done); });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  auto log = std::make_shared<StepLog>();
  (*server)->rollouts().Watch(rollout->rollout_id(), 0, log);
  // People's requests are handled in order: once the Get is answered, the
  // watch is on.
  ASSERT_TRUE(server::RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
                (*server)->rollouts().Get(rollout->rollout_id(), done);
              }).ok());
  go.Notify();

  ASSERT_TRUE(WaitFor([&] { return log->ended(); }, absl::Seconds(120)));
  EXPECT_TRUE(log->end().ok()) << log->end();
  auto after = server::RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
    (*server)->rollouts().Get(rollout->rollout_id(), done);
  });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state(), v1::ROLLOUT_STATE_SUCCEEDED);
  std::vector<std::string> expected;
  for (int i = 0; i < kSteps; ++i) expected.push_back(absl::StrCat(i));
  const auto steps = log->steps();
  for (const char* id : {"flood-1", "flood-2", "flood-3"}) {
    auto it = steps.find(id);
    ASSERT_NE(it, steps.end()) << id;
    EXPECT_EQ(it->second, expected) << id;
  }
  for (const char* id : {"flood-1", "flood-2", "flood-3"}) {
    EXPECT_EQ((*server)->registry().GetDatabase(id)->connection_state(),
              v1::CONNECTION_STATE_CONNECTED)
        << id;
  }
  agents.clear();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace ecliptix
