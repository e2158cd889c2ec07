// The orchestrator's answers at shutdown (every request handed to it is
// answered, whether it was still queued, waiting for agents, or came after
// Stop, so no RPC waits forever and no reactor is left behind), and the order
// of its lanes (people's requests before queued agent traffic).
#include "server/rollouts/rollout_orchestrator.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/storage/state_store.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::testing::RecordingSession;

// Every answer given to one test's requests, by request name.
class Answers {
 public:
  template <typename T>
  RolloutOrchestrator::Callback<T> For(const std::string& name) {
    {
      absl::MutexLock lock(&mutex_);
      asked_.push_back(name);
    }
    return [this, name](absl::StatusOr<T> result) {
      absl::MutexLock lock(&mutex_);
      answers_.emplace_back(name, result.status());
    };
  }
  std::vector<std::string> asked() const {
    absl::MutexLock lock(&mutex_);
    return asked_;
  }
  std::vector<std::pair<std::string, absl::Status>> answers() const {
    absl::MutexLock lock(&mutex_);
    return answers_;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<std::string> asked_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::pair<std::string, absl::Status>> answers_
      ABSL_GUARDED_BY(mutex_);
};

class EndSink : public RolloutEventSink {
 public:
  bool Deliver(const v1::RolloutEvent&) override { return true; }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mutex_);
    ++ends_;
    status_ = status;
  }
  int ends() const {
    absl::MutexLock lock(&mutex_);
    return ends_;
  }
  absl::Status status() const {
    absl::MutexLock lock(&mutex_);
    return status_;
  }

 private:
  mutable absl::Mutex mutex_;
  int ends_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
};

// An agent that takes commands and never answers them.
class SilentSession : public AgentSession {
 public:
  void Send(v1::ServerMessage message) override {
    if (message.has_command() && !command_sent.HasBeenNotified()) {
      command_sent.Notify();
    }
  }
  void Close(const absl::Status&) override {}
  absl::Notification command_sent;
};

// A watcher that holds the worker in its first delivery until released.
class BlockingSink : public RolloutEventSink {
 public:
  bool Deliver(const v1::RolloutEvent&) override {
    if (!entered.HasBeenNotified()) {
      entered.Notify();
      release.WaitForNotification();
    }
    return true;
  }
  void End(const absl::Status&) override {}
  absl::Notification entered;
  absl::Notification release;
};

class RolloutOrchestratorShutdownTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    RolloutOptions options;
    // Plans wait for their agents for as long as the test runs.
    options.plan_timeout = absl::Hours(1);
    OpenCore(options);
  }

  // Asks every kind of request once; each answer goes to `answers`.
  void AskEverything(Answers& answers, const std::string& bundle) {
    v1::CreateRolloutRequest create;
    create.set_bundle(bundle);
    create.set_selector("env=test");
    orchestrator_->Create(create, answers.For<v1::Rollout>("create"));
    orchestrator_->Plan(create, answers.For<v1::RolloutPlan>("plan"));
    orchestrator_->Get("r-1", answers.For<v1::Rollout>("get"));
    orchestrator_->List(v1::ListRolloutsRequest(),
                        answers.For<v1::ListRolloutsResponse>("list"));
    v1::RolloutActionRequest action;
    action.set_rollout_id("r-1");
    orchestrator_->Pause(action, answers.For<v1::Rollout>("pause"));
    orchestrator_->Resume(action, answers.For<v1::Rollout>("resume"));
    orchestrator_->Abort(action, answers.For<v1::Rollout>("abort"));
    orchestrator_->Retry(action, answers.For<v1::Rollout>("retry"));
    v1::RollbackRolloutRequest rollback;
    rollback.set_rollout_id("r-1");
    orchestrator_->Rollback(rollback, answers.For<v1::Rollout>("rollback"));
    v1::AttestGateRequest attest;
    attest.set_rollout_id("r-1");
    orchestrator_->Attest(attest, answers.For<v1::Rollout>("attest"));
  }

  static void ExpectEachAnsweredOnceUnavailable(const Answers& answers) {
    const auto given = answers.answers();
    ASSERT_EQ(given.size(), answers.asked().size());
    for (const auto& [name, status] : given) {
      EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable)
          << name << ": " << status;
    }
  }
};

TEST_F(RolloutOrchestratorShutdownTest, QueuedRequestsAreAnsweredAtStop) {
  // Never started: no worker takes anything off the queue.
  Answers answers;
  AskEverything(answers, "nope@1");
  auto sink = std::make_shared<EndSink>();
  orchestrator_->Watch("r-1", 0, sink);
  EXPECT_TRUE(answers.answers().empty());

  orchestrator_->Stop();
  ExpectEachAnsweredOnceUnavailable(answers);
  EXPECT_EQ(sink->ends(), 1);
  EXPECT_EQ(sink->status().code(), absl::StatusCode::kUnavailable)
      << sink->status();
}

TEST_F(RolloutOrchestratorShutdownTest, PlanWaitingForAgentsIsAnsweredAtStop) {
  absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
      {testing::File("manifest.textproto", R"(name: "b"
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
)"),
       testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  auto agent = std::make_shared<SilentSession>();
  ASSERT_TRUE(registry_
                  ->Register(testing::MakeHello("db-1", {{"env", "test"}}),
                             "peer", agent)
                  .ok());
  ASSERT_TRUE(orchestrator_->Start().ok());

  Answers answers;
  v1::CreateRolloutRequest request;
  request.set_bundle(bundle->bundle_id());
  request.set_selector("env=test");
  orchestrator_->Plan(request, answers.For<v1::RolloutPlan>("plan"));
  // The plan asked the agent, which never answers.
  agent->command_sent.WaitForNotification();
  EXPECT_TRUE(answers.answers().empty());

  orchestrator_->Stop();
  ExpectEachAnsweredOnceUnavailable(answers);
}

TEST_F(RolloutOrchestratorShutdownTest, RequestsAfterStopAreAnsweredAtOnce) {
  ASSERT_TRUE(orchestrator_->Start().ok());
  orchestrator_->Stop();
  Answers answers;
  AskEverything(answers, "nope@1");
  auto sink = std::make_shared<EndSink>();
  orchestrator_->Watch("r-1", 0, sink);
  ExpectEachAnsweredOnceUnavailable(answers);
  EXPECT_EQ(sink->ends(), 1);
  EXPECT_EQ(sink->status().code(), absl::StatusCode::kUnavailable);
}

// People's requests go before agent traffic queued earlier: a pause asked
// while an agent's answer waits stops the rollout before that answer can start
// the next database.
TEST_F(RolloutOrchestratorShutdownTest,
       PauseIsHandledBeforeQueuedAgentMessages) {
  absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
      {testing::File("manifest.textproto", R"(name: "b"
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
)"),
       testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::map<std::string, std::shared_ptr<RecordingSession>> agents;
  std::map<std::string, uint64_t> sessions;
  for (const std::string id : {"db-1", "db-2"}) {
    agents[id] = std::make_shared<RecordingSession>();
    absl::StatusOr<Registration> registration = registry_->Register(
        testing::MakeHello(id, {{"env", "test"}}), "peer", agents[id]);
    ASSERT_TRUE(registration.ok()) << registration.status();
    sessions[id] = registration->session_id;
  }
  ASSERT_TRUE(orchestrator_->Start().ok());
  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector("env=test");
  create.mutable_strategy()->set_max_parallel(1);
  absl::StatusOr<v1::Rollout> rollout = RolloutOrchestrator::Await<v1::Rollout>(
      [&](auto done) { orchestrator_->Create(create, std::move(done)); });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  // One database at a time: db-1 runs, db-2 waits for it.
  const std::string command = agents["db-1"]->FirstCommand();

  auto sink = std::make_shared<BlockingSink>();
  orchestrator_->Watch(rollout->rollout_id(), 0, sink);
  sink->entered.WaitForNotification();
  // The worker is busy: db-1's success queues first, the pause after it.
  v1::AgentMessage finished;
  finished.mutable_command_event()->set_command_id(command);
  finished.mutable_command_event()->mutable_finished()->set_code(0);
  registry_->OnCommandMessage(sessions["db-1"], finished);
  Answers answers;
  v1::RolloutActionRequest pause;
  pause.set_rollout_id(rollout->rollout_id());
  pause.set_actor("alice");
  orchestrator_->Pause(pause, answers.For<v1::Rollout>("pause"));
  sink->release.Notify();

  absl::StatusOr<v1::Rollout> after =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        orchestrator_->Get(rollout->rollout_id(), std::move(done));
      });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state(), v1::ROLLOUT_STATE_PAUSED);
  for (const v1::RolloutTarget& target : after->targets()) {
    EXPECT_EQ(target.state(), target.database_id() == "db-1"
                                  ? v1::TARGET_STATE_SUCCEEDED
                                  : v1::TARGET_STATE_PENDING)
        << target.database_id();
  }
  orchestrator_->Stop();
}

}  // namespace
}  // namespace ecliptix::server
