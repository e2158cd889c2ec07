// ApplyRolloutEvent: how each kind of event changes a rollout, the rules the
// server and ecliptixctl share.
#include "common/rollout_events.h"

#include <string>

#include "common/proto_time.h"
#include "gtest/gtest.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

absl::Time At(int seconds) {
  return absl::FromUnixSeconds(1'700'000'000 + seconds);
}

class RolloutEventsTest : public ::testing::Test {
 protected:
  RolloutEventsTest() {
    rollout_.set_rollout_id("r-1");
    rollout_.set_state(v1::ROLLOUT_STATE_RUNNING);
    rollout_.set_wave_count(2);
    rollout_.add_phases("one");
    for (const char* id : {"db-1", "db-2"}) {
      v1::RolloutTarget* target = rollout_.add_targets();
      target->set_database_id(id);
      target->set_state(v1::TARGET_STATE_PENDING);
      target->set_wave(1);
    }
  }

  v1::RolloutEvent Next(int seconds) {
    v1::RolloutEvent event;
    event.set_sequence(++sequence_);
    *event.mutable_event_time() = ToProtoTimestamp(At(seconds));
    return event;
  }
  void Target(int seconds, const std::string& id, v1::TargetState state,
              bool counts = false, const std::string& error = "") {
    v1::RolloutEvent event = Next(seconds);
    event.mutable_target()->set_database_id(id);
    event.mutable_target()->set_state(state);
    event.mutable_target()->set_wave(1);
    event.mutable_target()->set_error(error);
    event.mutable_target()->set_counts_against_budget(counts);
    ApplyRolloutEvent(event, &rollout_);
  }
  void Step(int seconds, const std::string& id, const std::string& step,
            v1::StepOutcome outcome) {
    v1::RolloutEvent event = Next(seconds);
    event.mutable_deployment()->set_database_id(id);
    event.mutable_deployment()->mutable_event()->set_phase("one");
    event.mutable_deployment()->mutable_event()->set_step(step);
    event.mutable_deployment()
        ->mutable_event()
        ->mutable_step_finished()
        ->set_outcome(outcome);
    ApplyRolloutEvent(event, &rollout_);
  }
  void State(int seconds, v1::RolloutState state, const std::string& reason) {
    v1::RolloutEvent event = Next(seconds);
    event.mutable_state_changed()->set_state(state);
    event.mutable_state_changed()->set_reason(reason);
    ApplyRolloutEvent(event, &rollout_);
  }
  const v1::RolloutTarget& T(int i) const { return rollout_.targets(i); }

  v1::Rollout rollout_;
  int64_t sequence_ = 0;
};

TEST_F(RolloutEventsTest, RunningStartsTheClockAndFinalStopsIt) {
  rollout_.mutable_targets(0)->set_command_id("r-1/db-1/run/one/1");
  Target(1, "db-1", v1::TARGET_STATE_RUNNING);
  EXPECT_EQ(T(0).state(), v1::TARGET_STATE_RUNNING);
  EXPECT_EQ(FromProtoTimestamp(T(0).started_time()), At(1));
  EXPECT_FALSE(T(0).has_finished_time());
  EXPECT_EQ(T(0).command_id(), "r-1/db-1/run/one/1");
  Target(4, "db-1", v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(FromProtoTimestamp(T(0).finished_time()), At(4));
  EXPECT_EQ(FromProtoTimestamp(T(0).started_time()), At(1));
  EXPECT_TRUE(T(0).command_id().empty());
  EXPECT_EQ(rollout_.last_event_sequence(), 2);
}

TEST_F(RolloutEventsTest, OnlyChangesTheServerCountsAreFailures) {
  Target(1, "db-1", v1::TARGET_STATE_RUNNING);
  Target(2, "db-1", v1::TARGET_STATE_FAILED, /*counts=*/true, "failed in one");
  EXPECT_EQ(rollout_.failures(), 1);
  EXPECT_EQ(T(0).error(), "failed in one");
  // Its rollback fails too: not a second failure.
  Target(3, "db-1", v1::TARGET_STATE_ROLLING_BACK);
  Target(4, "db-1", v1::TARGET_STATE_FAILED, /*counts=*/false,
         "rollback failed in phase one");
  EXPECT_EQ(rollout_.failures(), 1);
  // An agent gone past its deadline mid-run: unknown, and a failure.
  Target(5, "db-2", v1::TARGET_STATE_RUNNING);
  Target(6, "db-2", v1::TARGET_STATE_UNKNOWN, /*counts=*/true);
  EXPECT_EQ(rollout_.failures(), 2);
  EXPECT_EQ(FromProtoTimestamp(T(1).finished_time()), At(6));
}

TEST_F(RolloutEventsTest, RetryStartsTheBudgetAnew) {
  Target(1, "db-1", v1::TARGET_STATE_RUNNING);
  Target(2, "db-1", v1::TARGET_STATE_FAILED, /*counts=*/true);
  Target(3, "db-2", v1::TARGET_STATE_RUNNING);
  Target(4, "db-2", v1::TARGET_STATE_UNKNOWN, /*counts=*/true);
  State(5, v1::ROLLOUT_STATE_FAILED, "2 failures exceed the budget of 0");
  ASSERT_EQ(rollout_.failures(), 2);
  ASSERT_TRUE(rollout_.has_finish_time());

  Target(10, "db-1", v1::TARGET_STATE_PENDING);
  EXPECT_EQ(rollout_.failures(), 0);
  EXPECT_FALSE(T(0).has_finished_time());
  Target(10, "db-2", v1::TARGET_STATE_PENDING);
  State(10, v1::ROLLOUT_STATE_RUNNING, "retrying 2 databases");
  EXPECT_EQ(rollout_.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_FALSE(rollout_.has_finish_time());
  EXPECT_EQ(rollout_.waiting_reason(), "");
  Target(11, "db-1", v1::TARGET_STATE_RUNNING);
  EXPECT_EQ(FromProtoTimestamp(T(0).started_time()), At(11));
}

TEST_F(RolloutEventsTest, StepsCountWhileRunningOnly) {
  Target(1, "db-1", v1::TARGET_STATE_RUNNING);
  rollout_.mutable_targets(0)->set_phase("one");
  Step(2, "db-1", "a", v1::STEP_OUTCOME_APPLIED);
  Step(3, "db-1", "b", v1::STEP_OUTCOME_SKIPPED);
  Step(4, "db-1", "c", v1::STEP_OUTCOME_APPLIED);
  EXPECT_EQ(T(0).steps_applied(), 2);
  EXPECT_EQ(T(0).steps_skipped(), 1);
  EXPECT_EQ(T(0).step(), "c");
  ASSERT_EQ(T(0).touched_phases_size(), 1);
  EXPECT_EQ(T(0).touched_phases(0), "one");
  // Revert steps of a rollback count in neither.
  Target(5, "db-1", v1::TARGET_STATE_ROLLING_BACK);
  Step(6, "db-1", "c", v1::STEP_OUTCOME_REVERTED);
  Step(7, "db-1", "a", v1::STEP_OUTCOME_APPLIED);
  EXPECT_EQ(T(0).steps_applied(), 2);
  EXPECT_EQ(T(0).step(), "a");
}

TEST_F(RolloutEventsTest, BackupIdIsRemembered) {
  v1::RolloutEvent event = Next(1);
  event.mutable_deployment()->set_database_id("db-2");
  event.mutable_deployment()
      ->mutable_event()
      ->mutable_backup_completed()
      ->set_backup_id("bk-7");
  ApplyRolloutEvent(event, &rollout_);
  EXPECT_EQ(T(1).backup_id(), "bk-7");
}

TEST_F(RolloutEventsTest, StatesSayWhatHoldsTheRollout) {
  State(1, v1::ROLLOUT_STATE_WAITING_FOR_GATE, "gate team: not attested");
  EXPECT_EQ(rollout_.waiting_reason(), "gate team: not attested");
  State(2, v1::ROLLOUT_STATE_RUNNING, "every gate holds");
  EXPECT_EQ(rollout_.waiting_reason(), "");
  // Between waves, a running rollout says when the next one starts.
  *rollout_.mutable_resume_time() = ToProtoTimestamp(At(60));
  State(3, v1::ROLLOUT_STATE_RUNNING, "wave 1 finished; wave 2 starts at ...");
  EXPECT_EQ(rollout_.waiting_reason(), "wave 1 finished; wave 2 starts at ...");
  State(4, v1::ROLLOUT_STATE_PAUSED, "paused by ops");
  EXPECT_EQ(rollout_.waiting_reason(), "paused by ops");
  EXPECT_FALSE(rollout_.has_finish_time());
  State(5, v1::ROLLOUT_STATE_ABORTED, "aborted");
  EXPECT_EQ(rollout_.waiting_reason(), "aborted");
  EXPECT_EQ(FromProtoTimestamp(rollout_.finish_time()), At(5));
  // A rollback reactivates a finished rollout.
  State(6, v1::ROLLOUT_STATE_PAUSED, "rollback requested");
  EXPECT_FALSE(rollout_.has_finish_time());
}

TEST_F(RolloutEventsTest, CreatedShowsNoReason) {
  v1::Rollout empty;
  v1::RolloutEvent created;
  created.set_sequence(1);
  created.mutable_state_changed()->set_state(v1::ROLLOUT_STATE_PENDING);
  created.mutable_state_changed()->set_reason("created");
  ApplyRolloutEvent(created, &empty);
  EXPECT_EQ(empty.state(), v1::ROLLOUT_STATE_PENDING);
  EXPECT_EQ(empty.waiting_reason(), "");
  EXPECT_EQ(empty.last_event_sequence(), 1);
}

TEST_F(RolloutEventsTest, AStartedWaveBecomesCurrent) {
  *rollout_.mutable_resume_time() = ToProtoTimestamp(At(60));
  v1::RolloutEvent event = Next(61);
  event.mutable_wave()->set_wave(2);
  event.mutable_wave()->set_started(true);
  event.mutable_wave()->add_database_ids("db-2");
  ApplyRolloutEvent(event, &rollout_);
  EXPECT_EQ(rollout_.current_wave(), 2);
  EXPECT_EQ(FromProtoTimestamp(rollout_.wave_start_time()), At(61));
  EXPECT_FALSE(rollout_.has_resume_time());
  EXPECT_EQ(T(1).wave(), 2);
  EXPECT_EQ(T(0).wave(), 1);

  v1::RolloutEvent ended = Next(70);
  ended.mutable_wave()->set_wave(2);
  ended.mutable_wave()->set_started(false);
  ApplyRolloutEvent(ended, &rollout_);
  EXPECT_EQ(rollout_.current_wave(), 2);
  EXPECT_EQ(FromProtoTimestamp(rollout_.wave_start_time()), At(61));
}

TEST_F(RolloutEventsTest, GatesAreReplacedByKind) {
  v1::RolloutEvent event = Next(1);
  event.mutable_gate()->set_kind(v1::GATE_KIND_TEAM_NOTIFIED);
  event.mutable_gate()->set_detail("not attested");
  ApplyRolloutEvent(event, &rollout_);
  event.mutable_gate()->set_satisfied(true);
  event.mutable_gate()->set_detail("attested by ops");
  ApplyRolloutEvent(event, &rollout_);
  ASSERT_EQ(rollout_.gates_size(), 1);
  EXPECT_TRUE(rollout_.gates(0).satisfied());
  EXPECT_EQ(rollout_.gates(0).detail(), "attested by ops");
}

TEST_F(RolloutEventsTest, SnapshotReplacesAndUnknownDatabasesAreAdded) {
  v1::RolloutEvent snapshot;
  snapshot.set_sequence(40);
  snapshot.mutable_snapshot()->set_rollout_id("r-2");
  snapshot.mutable_snapshot()->set_last_event_sequence(40);
  ApplyRolloutEvent(snapshot, &rollout_);
  EXPECT_EQ(rollout_.rollout_id(), "r-2");
  EXPECT_EQ(rollout_.targets_size(), 0);

  sequence_ = 40;
  Target(1, "db-9", v1::TARGET_STATE_RUNNING);
  ASSERT_EQ(rollout_.targets_size(), 1);
  EXPECT_EQ(T(0).database_id(), "db-9");
  EXPECT_EQ(T(0).state(), v1::TARGET_STATE_RUNNING);
  EXPECT_EQ(rollout_.last_event_sequence(), 41);
  // An older event does not move the sequence back.
  v1::RolloutEvent old;
  old.set_sequence(3);
  ApplyRolloutEvent(old, &rollout_);
  EXPECT_EQ(rollout_.last_event_sequence(), 41);
}

}  // namespace
}  // namespace ecliptix
