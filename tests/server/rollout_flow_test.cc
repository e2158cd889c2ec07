// The orchestrator under load and over time: a flood of agent messages is held
// back by flow control (a bounded queue; the stream that brings more is not
// read until there is room, and is not declared lost meanwhile), and finished
// rollouts leave memory after the retention period yet stay queryable from the
// store. On a fake clock, with the registry and orchestrator in process.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::testing::RecordingSession;

constexpr char kManifest[] = R"(name: "b"
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
)";

// A watcher that records the steps it is told of and can hold the worker in
// its first delivery until released.
class StepLog : public RolloutEventSink {
 public:
  explicit StepLog(bool block_first) : block_first_(block_first) {}
  bool Deliver(const v1::RolloutEvent& event) override {
    if (block_first_ && !entered.HasBeenNotified()) {
      entered.Notify();
      release.WaitForNotification();
    }
    absl::MutexLock lock(&mutex_);
    if (event.has_deployment())
      steps_.push_back(event.deployment().event().step());
    if (event.has_snapshot()) snapshot_ = event.snapshot();
    return true;
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mutex_);
    end_ = status;
    ended_ = true;
  }
  // Waits for the end of the watch.
  absl::Status WaitEnd() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(&ended_));
    return end_;
  }
  std::vector<std::string> steps() {
    absl::MutexLock lock(&mutex_);
    return steps_;
  }
  v1::Rollout snapshot() {
    absl::MutexLock lock(&mutex_);
    return snapshot_;
  }
  absl::Notification entered;
  absl::Notification release;

 private:
  const bool block_first_;
  absl::Mutex mutex_;
  std::vector<std::string> steps_ ABSL_GUARDED_BY(mutex_);
  v1::Rollout snapshot_ ABSL_GUARDED_BY(mutex_);
  absl::Status end_ ABSL_GUARDED_BY(mutex_);
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
};

// How many times a held reader was told to read on.
class Resumes {
 public:
  std::function<void()> Callback() {
    return [this] {
      absl::MutexLock lock(&mutex_);
      ++count_;
    };
  }
  // Waits until `n` resumes came.
  void WaitFor(int n) {
    absl::MutexLock lock(&mutex_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return count_ >= n;
    };
    mutex_.Await(absl::Condition(&reached));
  }

 private:
  absl::Mutex mutex_;
  int count_ ABSL_GUARDED_BY(mutex_) = 0;
};

class RolloutFlowTest : public testing::ServerCoreTest {
 protected:
  void Open(RolloutOptions options) {
    options.tick = absl::Milliseconds(1);
    OpenCore(options);
    absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
        {testing::File("manifest.textproto", kManifest),
         testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_id_ = bundle->bundle_id();
  }
  void TearDown() override {
    orchestrator_->Stop();
    registry_->Stop();
  }

  uint64_t Connect(const std::string& id, const std::string& env,
                   std::shared_ptr<AgentSession> agent) {
    absl::StatusOr<Registration> registration = registry_->Register(
        testing::MakeHello(id, {{"env", env}}), "peer", std::move(agent));
    EXPECT_TRUE(registration.ok()) << registration.status();
    return registration.ok() ? registration->session_id : 0;
  }

  v1::Rollout Create(const std::string& selector) {
    v1::CreateRolloutRequest create;
    create.set_bundle(bundle_id_);
    create.set_selector(selector);
    absl::StatusOr<v1::Rollout> rollout =
        RolloutOrchestrator::Await<v1::Rollout>(
            [&](auto done) { orchestrator_->Create(create, std::move(done)); });
    EXPECT_TRUE(rollout.ok()) << rollout.status();
    return rollout.ok() ? *rollout : v1::Rollout();
  }

  absl::StatusOr<v1::Rollout> Get(const std::string& id) {
    return RolloutOrchestrator::Await<v1::Rollout>(
        [&](auto done) { orchestrator_->Get(id, std::move(done)); });
  }

  static v1::AgentMessage StepMessage(const std::string& command,
                                      const std::string& step) {
    v1::AgentMessage message;
    message.mutable_command_event()->set_command_id(command);
    v1::DeploymentEvent* deployment =
        message.mutable_command_event()->mutable_deployment();
    deployment->set_phase("one");
    deployment->set_step(step);
    deployment->mutable_step_started();
    return message;
  }
  static v1::AgentMessage FinishedMessage(const std::string& command) {
    v1::AgentMessage message;
    message.mutable_command_event()->set_command_id(command);
    message.mutable_command_event()->mutable_finished()->set_code(0);
    return message;
  }

  std::string bundle_id_;
};

// A stream that floods the orchestrator is held once the queue is full, its
// heartbeat deadline does not run while it is held (another, silent agent is
// lost at the same time), and every message it brought is handled in order.
TEST_F(RolloutFlowTest, FloodIsHeldBackAndHandledInOrder) {
  RolloutOptions options;
  options.max_queued_agent_messages = 4;
  Open(options);
  auto agent = std::make_shared<RecordingSession>();
  const uint64_t session = Connect("db-1", "test", agent);
  Connect("db-silent", "other", std::make_shared<RecordingSession>());
  ASSERT_TRUE(orchestrator_->Start().ok());
  const v1::Rollout rollout = Create("env=test");
  const std::string command = agent->FirstCommand();

  // The watcher holds the worker: nothing leaves the agent queue.
  auto log = std::make_shared<StepLog>(/*block_first=*/true);
  orchestrator_->Watch(rollout.rollout_id(), 0, log);
  log->entered.WaitForNotification();

  // The reader reads while it may: the fourth message fills the queue.
  Resumes resumes;
  constexpr int kSteps = 40;
  int sent = 0;
  while (sent < kSteps && registry_->OnCommandMessage(
                              session, StepMessage(command, absl::StrCat(sent)),
                              resumes.Callback())) {
    ++sent;
  }
  ASSERT_EQ(sent, 3) << "the queue took more than its bound";
  ++sent;  // Taken, and the reader waits.

  // Long past the heartbeat timeout: the silent agent is lost, the held one
  // is not (its messages wait in the transport because the server does not
  // read them).
  clock_.Advance(registry_->options().heartbeat_timeout + absl::Minutes(1));
  EXPECT_EQ(registry_->CheckHeartbeats(), 1);
  EXPECT_EQ(registry_->GetDatabase("db-silent")->connection_state(),
            v1::CONNECTION_STATE_LOST);
  EXPECT_EQ(registry_->GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_CONNECTED);

  // Room again: the reader is resumed, and reads on (held again whenever the
  // queue fills) until everything is sent.
  log->release.Notify();
  int held = 1;
  resumes.WaitFor(held);
  // Reading resumed now: the deadline counts from here.
  EXPECT_EQ(registry_->CheckHeartbeats(), 0);
  while (sent < kSteps) {
    if (!registry_->OnCommandMessage(session,
                                     StepMessage(command, absl::StrCat(sent++)),
                                     resumes.Callback())) {
      resumes.WaitFor(++held);
    }
  }
  if (!registry_->OnCommandMessage(session, FinishedMessage(command),
                                   resumes.Callback())) {
    resumes.WaitFor(++held);
  }
  EXPECT_TRUE(log->WaitEnd().ok());
  std::vector<std::string> expected;
  for (int i = 0; i < kSteps; ++i) expected.push_back(absl::StrCat(i));
  EXPECT_EQ(log->steps(), expected);
  absl::StatusOr<v1::Rollout> after = Get(rollout.rollout_id());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(registry_->GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_CONNECTED);
}

// A finished rollout leaves memory once the retention period is over, and
// Get, List and Watch (snapshot, then the end) still answer from the store.
TEST_F(RolloutFlowTest, FinishedRolloutLeavesMemoryAndStaysQueryable) {
  RolloutOptions options;
  options.retention = absl::Hours(24);
  Open(options);
  auto agent = std::make_shared<RecordingSession>();
  const uint64_t session = Connect("db-1", "test", agent);
  ASSERT_TRUE(orchestrator_->Start().ok());
  const v1::Rollout rollout = Create("env=test");
  registry_->OnCommandMessage(session, FinishedMessage(agent->FirstCommand()));
  auto first = std::make_shared<StepLog>(/*block_first=*/false);
  orchestrator_->Watch(rollout.rollout_id(), 0, first);
  ASSERT_TRUE(first->WaitEnd().ok());
  absl::StatusOr<v1::Rollout> finished = Get(rollout.rollout_id());
  ASSERT_TRUE(finished.ok()) << finished.status();
  ASSERT_EQ(finished->state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(orchestrator_->RolloutsInMemory(), 1);

  clock_.Advance(absl::Hours(24) + absl::Seconds(1));
  // A tick evicts it (each call waits for the worker, which ticks every
  // millisecond).
  while (orchestrator_->RolloutsInMemory() != 0) {
  }

  absl::StatusOr<v1::Rollout> stored = Get(rollout.rollout_id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->SerializeAsString(), finished->SerializeAsString());
  absl::StatusOr<v1::ListRolloutsResponse> list =
      RolloutOrchestrator::Await<v1::ListRolloutsResponse>([&](auto done) {
        orchestrator_->List(v1::ListRolloutsRequest(), std::move(done));
      });
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->rollouts_size(), 1);
  EXPECT_EQ(list->rollouts(0).rollout_id(), rollout.rollout_id());
  EXPECT_EQ(list->rollouts(0).state(), v1::ROLLOUT_STATE_SUCCEEDED);
  auto second = std::make_shared<StepLog>(/*block_first=*/false);
  orchestrator_->Watch(rollout.rollout_id(), 0, second);
  EXPECT_TRUE(second->WaitEnd().ok());
  EXPECT_EQ(second->snapshot().state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(second->snapshot().targets_size(), 1);
}

}  // namespace
}  // namespace ecliptix::server
