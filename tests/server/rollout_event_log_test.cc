// The server's rollout and its event log agree: a real orchestrator drives a
// rollout with scripted agents (steps applied and skipped, a failure whose
// rollback fails too, an agent that goes away, then a retry), and the events a
// watcher receives, applied with ApplyRolloutEvent as ecliptixctl applies
// them, give the rollout that GetRollout answers: the same states, step
// counters, failures against the budget and waves.
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"
#include "gtest/gtest.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/storage/state_store.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using testing::File;

// An agent whose commands the test answers one by one.
class ScriptedAgent : public AgentSession {
 public:
  void Send(v1::ServerMessage message) override {
    if (!message.has_command() || message.command().has_cancel()) return;
    absl::MutexLock lock(&mutex_);
    commands_.push_back(message.command());
  }
  void Close(const absl::Status&) override {}

  // Waits for the next command sent to this agent.
  v1::Command Next() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(
        +[](std::deque<v1::Command>* commands) { return !commands->empty(); },
        &commands_));
    v1::Command command = std::move(commands_.front());
    commands_.pop_front();
    return command;
  }

 private:
  absl::Mutex mutex_;
  std::deque<v1::Command> commands_ ABSL_GUARDED_BY(mutex_);
};

// Every event of a watch, and whether it ended.
class EventLog : public RolloutEventSink {
 public:
  bool Deliver(const v1::RolloutEvent& event) override {
    absl::MutexLock lock(&mutex_);
    events_.push_back(event);
    return true;
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mutex_);
    status_ = status;
    ended_ = true;
  }
  // Waits for the end of the watch and returns its events.
  std::vector<v1::RolloutEvent> AwaitEnd() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(&ended_));
    EXPECT_TRUE(status_.ok()) << status_;
    return events_;
  }
  // Waits until some event satisfies `matches`.
  void AwaitEvent(bool (*matches)(const v1::RolloutEvent&)) {
    absl::MutexLock lock(&mutex_);
    struct Args {
      std::vector<v1::RolloutEvent>* events;
      bool (*matches)(const v1::RolloutEvent&);
    } args{&events_, matches};
    mutex_.Await(absl::Condition(
        +[](Args* a) {
          for (const v1::RolloutEvent& event : *a->events) {
            if (a->matches(event)) return true;
          }
          return false;
        },
        &args));
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::RolloutEvent> events_ ABSL_GUARDED_BY(mutex_);
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
};

template <typename T>
T Await(const std::function<void(RolloutOrchestrator::Callback<T>)>& ask) {
  absl::Notification done;
  absl::StatusOr<T> answer = absl::UnknownError("no answer");
  ask([&](absl::StatusOr<T> result) {
    answer = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_TRUE(answer.ok()) << answer.status();
  return answer.ok() ? *std::move(answer) : T();
}

// What the rollout says of itself and of each target, as people read it.
void ExpectSameProgress(const v1::Rollout& applied, const v1::Rollout& server) {
  EXPECT_EQ(applied.state(), server.state());
  EXPECT_EQ(applied.waiting_reason(), server.waiting_reason());
  EXPECT_EQ(applied.failures(), server.failures());
  EXPECT_EQ(applied.current_wave(), server.current_wave());
  EXPECT_EQ(applied.wave_count(), server.wave_count());
  EXPECT_EQ(applied.last_event_sequence(), server.last_event_sequence());
  EXPECT_EQ(applied.finish_time().SerializeAsString(),
            server.finish_time().SerializeAsString());
  EXPECT_EQ(applied.wave_start_time().SerializeAsString(),
            server.wave_start_time().SerializeAsString());
  ASSERT_EQ(applied.targets_size(), server.targets_size());
  for (int i = 0; i < server.targets_size(); ++i) {
    const v1::RolloutTarget& a = applied.targets(i);
    const v1::RolloutTarget& s = server.targets(i);
    SCOPED_TRACE(s.database_id());
    EXPECT_EQ(a.database_id(), s.database_id());
    EXPECT_EQ(a.state(), s.state());
    EXPECT_EQ(a.error(), s.error());
    EXPECT_EQ(a.wave(), s.wave());
    EXPECT_EQ(a.step(), s.step());
    EXPECT_EQ(a.steps_applied(), s.steps_applied());
    EXPECT_EQ(a.steps_skipped(), s.steps_skipped());
    EXPECT_EQ(std::vector<std::string>(a.touched_phases().begin(),
                                       a.touched_phases().end()),
              std::vector<std::string>(s.touched_phases().begin(),
                                       s.touched_phases().end()));
    EXPECT_EQ(a.started_time().SerializeAsString(),
              s.started_time().SerializeAsString());
    EXPECT_EQ(a.finished_time().SerializeAsString(),
              s.finished_time().SerializeAsString());
  }
}

class RolloutEventLogTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    RolloutOptions options;
    options.tick = absl::Milliseconds(5);
    OpenCore(options);
  }
  void TearDown() override {
    orchestrator_->Stop();
    registry_->Stop();
  }

  uint64_t Connect(const std::string& id,
                   std::shared_ptr<ScriptedAgent> agent) {
    absl::StatusOr<Registration> registration = registry_->Register(
        testing::MakeHello(id, {{"env", "test"}}), "peer", std::move(agent));
    EXPECT_TRUE(registration.ok()) << registration.status();
    return registration.ok() ? registration->session_id : 0;
  }

  // The agent's message about `command`.
  void Report(uint64_t session, const v1::Command& command,
              v1::CommandEvent event) {
    v1::AgentMessage message;
    event.set_command_id(command.command_id());
    *message.mutable_command_event() = std::move(event);
    registry_->OnCommandMessage(session, message);
  }
  void StepFinished(uint64_t session, const v1::Command& command,
                    const std::string& step, v1::StepOutcome outcome) {
    v1::CommandEvent event;
    v1::DeploymentEvent* deployment = event.mutable_deployment();
    deployment->set_phase("one");
    deployment->set_step(step);
    deployment->mutable_step_finished()->set_outcome(outcome);
    Report(session, command, std::move(event));
  }
  void StepFailed(uint64_t session, const v1::Command& command,
                  const std::string& step) {
    v1::CommandEvent event;
    v1::DeploymentEvent* deployment = event.mutable_deployment();
    deployment->set_phase("one");
    deployment->set_step(step);
    deployment->mutable_step_failed()->set_message("no such table: t");
    Report(session, command, std::move(event));
  }
  void Finished(uint64_t session, const v1::Command& command, int code = 0,
                const std::string& message = "") {
    v1::CommandEvent event;
    event.mutable_finished()->set_code(code);
    event.mutable_finished()->set_message(message);
    Report(session, command, std::move(event));
  }

  v1::Rollout Get(const std::string& id) {
    return Await<v1::Rollout>(
        [&](RolloutOrchestrator::Callback<v1::Rollout> done) {
          orchestrator_->Get(id, std::move(done));
        });
  }
};

TEST_F(RolloutEventLogTest, WatchedEventsGiveTheServersRollout) {
  absl::StatusOr<v1::BundleInfo> bundle =
      bundles_->Upload({File("manifest.textproto", R"(name: "b"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps {
    name: "a"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/a.sql" }
    revert { sqlite: "sqlite/a_revert.sql" }
  }
  steps {
    name: "b"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/b.sql" }
    revert { sqlite: "sqlite/b_revert.sql" }
  }
}
)"),
                        File("sqlite/a.sql", "CREATE TABLE a (id INTEGER);\n"),
                        File("sqlite/a_revert.sql", "DROP TABLE a;\n"),
                        File("sqlite/b.sql", "CREATE TABLE b (id INTEGER);\n"),
                        File("sqlite/b_revert.sql", "DROP TABLE b;\n")});
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  auto agent1 = std::make_shared<ScriptedAgent>();
  auto agent2 = std::make_shared<ScriptedAgent>();
  auto agent3 = std::make_shared<ScriptedAgent>();
  const uint64_t db1 = Connect("db-1", agent1);
  const uint64_t db2 = Connect("db-2", agent2);
  const uint64_t db3 = Connect("db-3", agent3);
  ASSERT_TRUE(orchestrator_->Start().ok());

  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector("env=test");
  create.mutable_strategy()->set_failure_budget("2");
  create.mutable_strategy()->set_auto_rollback(
      v1::AUTO_ROLLBACK_FAILED_TARGETS);
  *create.mutable_strategy()->mutable_offline_deadline() =
      ToProtoDuration(absl::Seconds(10));
  const v1::Rollout created =
      Await<v1::Rollout>([&](RolloutOrchestrator::Callback<v1::Rollout> done) {
        orchestrator_->Create(create, std::move(done));
      });
  const std::string id = created.rollout_id();
  ASSERT_FALSE(id.empty());
  auto first = std::make_shared<EventLog>();
  orchestrator_->Watch(id, 0, first);

  // db-1 applies both steps.
  const v1::Command run1 = agent1->Next();
  ASSERT_TRUE(run1.has_run_phase());
  StepFinished(db1, run1, "a", v1::STEP_OUTCOME_APPLIED);
  StepFinished(db1, run1, "b", v1::STEP_OUTCOME_APPLIED);
  Finished(db1, run1);
  // db-2 applies a, fails in b (a failure), and its automatic rollback fails
  // too (no second failure).
  const v1::Command run2 = agent2->Next();
  StepFinished(db2, run2, "a", v1::STEP_OUTCOME_APPLIED);
  StepFailed(db2, run2, "b");
  Finished(db2, run2, 13, "no such table: t");
  const v1::Command revert2 = agent2->Next();
  ASSERT_TRUE(revert2.has_revert_phase());
  StepFinished(db2, revert2, "a", v1::STEP_OUTCOME_REVERTED);
  Finished(db2, revert2, 13, "cannot drop a");
  // db-3 skips a, then its agent goes away past the offline deadline: its
  // outcome is unknown (a failure).
  const v1::Command run3 = agent3->Next();
  StepFinished(db3, run3, "a", v1::STEP_OUTCOME_SKIPPED);
  first->AwaitEvent(+[](const v1::RolloutEvent& event) {
    return event.has_deployment() && event.deployment().database_id() == "db-3";
  });
  registry_->Unregister(db3, "connection reset");
  // People's requests go before queued agent traffic: wait until the
  // orchestrator has noted when db-3 went away.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!Get(id).targets(2).has_offline_since_time() &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(Get(id).targets(2).has_offline_since_time());
  clock_.Advance(absl::Seconds(11));

  const std::vector<v1::RolloutEvent> first_events = first->AwaitEnd();
  v1::Rollout applied;
  for (const v1::RolloutEvent& event : first_events) {
    ApplyRolloutEvent(event, &applied);
  }
  const v1::Rollout finished = Get(id);
  EXPECT_EQ(finished.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(finished.failures(), 2);
  ExpectSameProgress(applied, finished);
  EXPECT_EQ(applied.targets(0).steps_applied(), 2);
  EXPECT_EQ(applied.targets(1).state(), v1::TARGET_STATE_FAILED);
  EXPECT_EQ(applied.targets(1).steps_applied(), 1);
  EXPECT_EQ(applied.targets(2).state(), v1::TARGET_STATE_UNKNOWN);
  EXPECT_EQ(applied.targets(2).steps_skipped(), 1);

  // A retry starts the budget anew; db-3's agent is back.
  auto agent3_again = std::make_shared<ScriptedAgent>();
  const uint64_t db3_again = Connect("db-3", agent3_again);
  v1::RolloutActionRequest retry;
  retry.set_rollout_id(id);
  retry.set_actor("ops");
  const v1::Rollout retried =
      Await<v1::Rollout>([&](RolloutOrchestrator::Callback<v1::Rollout> done) {
        orchestrator_->Retry(retry, std::move(done));
      });
  EXPECT_EQ(retried.failures(), 0);
  auto second = std::make_shared<EventLog>();
  orchestrator_->Watch(id, finished.last_event_sequence(), second);
  const v1::Command rerun2 = agent2->Next();
  StepFinished(db2, rerun2, "a", v1::STEP_OUTCOME_SKIPPED);
  StepFinished(db2, rerun2, "b", v1::STEP_OUTCOME_APPLIED);
  Finished(db2, rerun2);
  const v1::Command rerun3 = agent3_again->Next();
  StepFinished(db3_again, rerun3, "a", v1::STEP_OUTCOME_SKIPPED);
  StepFinished(db3_again, rerun3, "b", v1::STEP_OUTCOME_APPLIED);
  Finished(db3_again, rerun3);

  for (const v1::RolloutEvent& event : second->AwaitEnd()) {
    ApplyRolloutEvent(event, &applied);
  }
  const v1::Rollout again = Get(id);
  EXPECT_EQ(again.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(again.failures(), 0);
  ExpectSameProgress(applied, again);
}

}  // namespace
}  // namespace ecliptix::server
