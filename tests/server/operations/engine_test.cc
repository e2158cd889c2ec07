// The specification of a rollout, as the wave engine runs it: fake time, fake
// agents (the test answers the commands the engine sends), no threads, no
// sleeps. Each test reads as one rule of the rollout; the last ones restart the
// engine from saved state and check that nothing changes but the process.
#include "server/operations/engine.h"

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/proto_status.h"
#include "common/rollout_events.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "server/operations/deploy_bundle_action.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server::operations {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::google::protobuf::util::TimeUtil;

// Tuesday 2023-11-14 22:13:20 UTC.
absl::Time StartTime() { return absl::FromUnixSeconds(1'700'000'000); }

const std::vector<std::string>& Phases() {
  static const auto* phases =
      new std::vector<std::string>{"schema", "procedures", "config"};
  return *phases;
}

// A bundle of three phases of one step each; `revert_missing` leaves one
// step without a revert script.
v1::BundleManifest Manifest(bool revert_missing = false) {
  v1::BundleManifest manifest;
  manifest.set_name("ecliptix");
  manifest.set_version("1.0.0");
  manifest.add_dialects(v1::DIALECT_SQLITE);
  for (const std::string& name : Phases()) {
    v1::Phase* phase = manifest.add_phases();
    phase->set_name(name);
    v1::Step* step = phase->add_steps();
    step->set_name("s1");
    step->mutable_sql()->set_sqlite(absl::StrCat(name, "/s1.sql"));
    if (!(revert_missing && name == "config"))
      step->mutable_revert()->set_sqlite(absl::StrCat(name, "/s1.revert.sql"));
  }
  return manifest;
}

std::string Db(int i) { return absl::StrCat("db-", i); }

// A created rollout (as the shell builds it) of `databases` databases.
v1::Rollout NewRollout(const v1::Strategy& strategy, int databases,
                       const std::vector<v1::GateSpec>& gates = {}) {
  std::vector<v1::Database> fleet;
  for (int i = 1; i <= databases; ++i) {
    v1::Database& database = fleet.emplace_back();
    database.set_database_id(Db(i));
    (*database.mutable_labels())["env"] = "prod";
  }
  EXPECT_TRUE(ValidateGates(gates).ok());
  absl::StatusOr<std::vector<v1::RolloutTarget>> targets =
      AssignWaves(strategy, fleet);
  EXPECT_TRUE(targets.ok()) << targets.status();
  v1::Rollout rollout;
  rollout.set_rollout_id("r-1");
  rollout.set_bundle_id("sha256:abc");
  rollout.set_bundle_name_version("ecliptix@1.0.0");
  *rollout.mutable_strategy() = strategy;
  for (const v1::GateSpec& gate : gates) {
    v1::GateStatus* status = rollout.add_gates();
    status->set_kind(gate.kind());
    *status->mutable_window() = gate.window();
  }
  rollout.set_state(v1::ROLLOUT_STATE_PENDING);
  int waves = 0;
  for (v1::RolloutTarget& target : *targets) {
    waves = std::max(waves, target.wave());
    *rollout.add_targets() = std::move(target);
  }
  rollout.set_wave_count(waves);
  rollout.set_failure_budget(
      *FailureBudget(strategy.failure_budget(), databases));
  absl::StatusOr<std::vector<std::string>> phases =
      PhasesToDeploy(strategy, Manifest());
  EXPECT_TRUE(phases.ok()) << phases.status();
  for (const std::string& phase : *phases) rollout.add_phases(phase);
  return rollout;
}

v1::Strategy Waves(std::vector<std::string> waves, int max_parallel = 0) {
  v1::Strategy strategy;
  for (std::string& wave : waves) strategy.add_waves(std::move(wave));
  strategy.set_max_parallel(max_parallel);
  return strategy;
}

v1::GateSpec Gate(v1::GateKind kind) {
  v1::GateSpec gate;
  gate.set_kind(kind);
  return gate;
}

v1::GateSpec Window(const std::string& start, const std::string& end) {
  v1::GateSpec gate = Gate(v1::GATE_KIND_MAINTENANCE_WINDOW);
  gate.mutable_window()->set_start(start);
  gate.mutable_window()->set_end(end);
  return gate;
}

// The staging gate's evidence: other rollouts the test sets up.
class OtherRollouts : public GateEvidence {
 public:
  std::optional<GateCheck> Check(const v1::Rollout& rollout,
                                 const v1::GateStatus& gate) const override {
    if (gate.kind() != v1::GATE_KIND_STAGING_TESTED) return std::nullopt;
    return CheckStagingTested(rollout, others);
  }
  std::vector<v1::Rollout> others;
};

// One rollout's engine and fake agents that answer its commands.
class Harness {
 public:
  explicit Harness(v1::Rollout rollout,
                   v1::BundleManifest manifest = Manifest(),
                   const GateEvidence* evidence = nullptr)
      : action_(std::move(manifest)),
        engine_(OperationState{std::move(rollout)}, &action_, evidence) {}

  Engine& engine() { return engine_; }
  const v1::Rollout& rollout() const { return engine_.rollout(); }
  v1::RolloutState state() const { return rollout().state(); }
  const v1::RolloutTarget& target(const std::string& db) const {
    for (const v1::RolloutTarget& t : rollout().targets()) {
      if (t.database_id() == db) return t;
    }
    ADD_FAILURE() << "no target " << db;
    static const v1::RolloutTarget* none = new v1::RolloutTarget;
    return *none;
  }
  v1::TargetState state(const std::string& db) const {
    return target(db).state();
  }

  // Every output goes through here: events numbered without gaps.
  Output Record(Output out) {
    for (const v1::RolloutEvent& event : out.events) {
      EXPECT_EQ(event.sequence(), last_sequence_ + 1);
      last_sequence_ = event.sequence();
      events_.push_back(event);
    }
    for (const OutboundCommand& command : out.commands) {
      sent_.push_back(command);
      // An id never names two different commands.
      auto [it, added] =
          by_id_.emplace(command.command.command_id(), command.command);
      EXPECT_TRUE(added ||
                  MessageDifferencer::Equals(it->second, command.command))
          << command.command.command_id();
    }
    // The busy targets never exceed max_parallel in a wave.
    const int max_parallel = rollout().strategy().max_parallel();
    if (max_parallel > 0) {
      std::map<int, int> busy;
      for (const v1::RolloutTarget& t : rollout().targets()) {
        if (t.state() == v1::TARGET_STATE_RUNNING) ++busy[t.wave()];
      }
      for (const auto& [wave, count] : busy) EXPECT_LE(count, max_parallel);
    }
    return out;
  }

  void Connect(const std::string& db, bool connected = true) {
    Record(engine_.OnConnection(db, connected, now));
  }
  void ConnectAll() {
    for (const v1::RolloutTarget& t : rollout().targets())
      Connect(t.database_id());
  }
  Output Start() { return Record(engine_.Start("alice", now)); }
  Output Wait(absl::Duration duration) {
    now += duration;
    return Record(engine_.Tick(now));
  }

  // ---- the agents ----
  Output Message(const std::string& db, v1::AgentMessage message) {
    return Record(engine_.OnAgentMessage(db, message, now));
  }
  Output Deployment(const std::string& db, v1::DeploymentEvent event) {
    v1::AgentMessage message;
    message.mutable_command_event()->set_command_id(target(db).command_id());
    event.set_phase(target(db).phase());
    *message.mutable_command_event()->mutable_deployment() = std::move(event);
    return Message(db, message);
  }
  Output Step(const std::string& db, v1::StepOutcome outcome) {
    v1::DeploymentEvent event;
    event.set_step("s1");
    event.mutable_step_finished()->set_outcome(outcome);
    return Deployment(db, event);
  }
  Output BackedUp(const std::string& db, const std::string& backup_id) {
    v1::DeploymentEvent event;
    event.mutable_backup_completed()->set_backup_id(backup_id);
    return Deployment(db, event);
  }
  Output Finished(const std::string& db,
                  const absl::Status& status = absl::OkStatus()) {
    v1::AgentMessage message;
    message.mutable_command_event()->set_command_id(target(db).command_id());
    *message.mutable_command_event()->mutable_finished() =
        ToProtoStatus(status);
    return Message(db, message);
  }
  // The current command applies a step and succeeds.
  Output Succeed(const std::string& db) {
    Step(db, v1::STEP_OUTCOME_APPLIED);
    return Finished(db);
  }
  // Finds every step already applied and succeeds.
  Output SucceedUntouched(const std::string& db) {
    Step(db, v1::STEP_OUTCOME_SKIPPED);
    return Finished(db);
  }
  // Answers every command of busy targets with success until none is busy.
  void Settle() {
    for (int rounds = 0; rounds < 1000 && !Busy().empty(); ++rounds) {
      for (const std::string& db : Busy()) {
        if (target(db).state() == v1::TARGET_STATE_RUNNING) {
          Succeed(db);
        } else {
          Finished(db);
        }
      }
    }
  }
  std::vector<std::string> Busy() const {
    std::vector<std::string> busy;
    for (const v1::RolloutTarget& t : rollout().targets()) {
      if (t.state() == v1::TARGET_STATE_RUNNING ||
          t.state() == v1::TARGET_STATE_ROLLING_BACK)
        busy.push_back(t.database_id());
    }
    return busy;
  }

  // ---- what the engine said ----
  const std::vector<v1::RolloutEvent>& events() const { return events_; }
  const std::vector<OutboundCommand>& sent() const { return sent_; }
  std::vector<v1::Command> SentTo(const std::string& db) const {
    std::vector<v1::Command> commands;
    for (const OutboundCommand& c : sent_) {
      if (c.database_id == db) commands.push_back(c.command);
    }
    return commands;
  }
  // Databases in the order their targets started running.
  std::vector<std::string> StartOrder() const {
    std::vector<std::string> order;
    for (const v1::RolloutEvent& event : events_) {
      if (event.has_target() &&
          event.target().state() == v1::TARGET_STATE_RUNNING)
        order.push_back(event.target().database_id());
    }
    return order;
  }
  std::vector<std::string> StateReasons() const {
    std::vector<std::string> reasons;
    for (const v1::RolloutEvent& event : events_) {
      if (event.has_state_changed())
        reasons.push_back(event.state_changed().reason());
    }
    return reasons;
  }

  absl::Time now = StartTime();

 private:
  DeployBundleAction action_;
  Engine engine_;
  int64_t last_sequence_ = 0;
  std::vector<v1::RolloutEvent> events_;
  std::vector<OutboundCommand> sent_;
  std::map<std::string, v1::Command> by_id_;
};

v1::RolloutActionRequest Action(const std::string& reason = "") {
  v1::RolloutActionRequest request;
  request.set_rollout_id("r-1");
  request.set_actor("alice");
  request.set_reason(reason);
  return request;
}

v1::RollbackRolloutRequest RollbackRequest(const std::string& phase = "",
                                           int wave = 0, bool restore = false,
                                           bool accept_data_loss = false) {
  v1::RollbackRolloutRequest request;
  request.set_rollout_id("r-1");
  request.set_actor("alice");
  request.set_phase(phase);
  request.set_wave(wave);
  request.set_restore(restore);
  request.set_accept_data_loss(accept_data_loss);
  return request;
}

v1::AttestGateRequest AttestRequest(v1::GateKind gate) {
  v1::AttestGateRequest request;
  request.set_rollout_id("r-1");
  request.set_gate(gate);
  request.set_attested_by("bob");
  request.set_comment("checked");
  return request;
}

// ===================== waves and parallelism =====================

TEST(EngineTest, WavesRunInOrderWithinMaxParallel) {
  Harness h(NewRollout(Waves({"1", "100%"}, /*max_parallel=*/2), 5));
  h.ConnectAll();
  h.Start();
  // The canary alone.
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(1)}));
  EXPECT_EQ(h.rollout().current_wave(), 1);
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(1)}))
      << "one phase after another";
  h.Succeed(Db(1));
  // Wave 2: two at a time.
  EXPECT_EQ(h.rollout().current_wave(), 2);
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(2), Db(3)}));
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(h.StartOrder(),
            std::vector<std::string>({Db(1), Db(2), Db(3), Db(4), Db(5)}));
  EXPECT_TRUE(h.engine().Finished());
  // Wave events: 1 starts, 1 ends, 2 starts, 2 ends.
  std::vector<std::pair<int, bool>> waves;
  for (const v1::RolloutEvent& event : h.events()) {
    if (event.has_wave())
      waves.emplace_back(event.wave().wave(), event.wave().started());
  }
  EXPECT_EQ(waves, (std::vector<std::pair<int, bool>>{
                       {1, true}, {1, false}, {2, true}, {2, false}}));
}

TEST(EngineTest, EachTargetRunsThePhasesInOrderUnderIdsFromSavedState) {
  Harness h(NewRollout(Waves({}), 1));
  h.ConnectAll();
  h.Start();
  h.Settle();
  std::vector<std::string> ids, phases;
  for (const v1::Command& command : h.SentTo(Db(1))) {
    ids.push_back(command.command_id());
    phases.push_back(command.run_phase().phase());
    EXPECT_EQ(command.run_phase().bundle_id(), "sha256:abc");
  }
  EXPECT_EQ(phases, Phases());
  EXPECT_EQ(ids, std::vector<std::string>({"r-1/db-1/run/schema/1",
                                           "r-1/db-1/run/procedures/1",
                                           "r-1/db-1/run/config/1"}));
  EXPECT_EQ(h.target(Db(1)).applied_phases_size(), 3);
  EXPECT_EQ(h.target(Db(1)).steps_applied(), 3);
  EXPECT_TRUE(h.target(Db(1)).command_id().empty());
}

TEST(EngineTest, BackupFirstIsAskedOnceAndAdoptAlways) {
  v1::Strategy strategy = Waves({});
  strategy.set_backup_first(true);
  strategy.set_adopt(true);
  Harness h(NewRollout(strategy, 1));
  h.ConnectAll();
  h.Start();
  h.SucceedUntouched(Db(1));  // Nothing pending: the agent takes no backup.
  h.BackedUp(Db(1), "backup-7");
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  std::vector<bool> backup_first, adopt;
  for (const v1::Command& command : h.SentTo(Db(1))) {
    backup_first.push_back(command.run_phase().backup_first());
    adopt.push_back(command.run_phase().adopt());
  }
  EXPECT_EQ(backup_first, std::vector<bool>({true, true, false}));
  EXPECT_EQ(adopt, std::vector<bool>({true, true, true}));
  EXPECT_EQ(h.target(Db(1)).backup_id(), "backup-7");
}

TEST(EngineTest, AnOfflineAgentIsNotSentAnythingAndDoesNotBlockOthers) {
  Harness h(NewRollout(Waves({}), 3));
  h.Connect(Db(1));
  h.Connect(Db(3));
  h.Start();
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(1), Db(3)}));
  EXPECT_TRUE(h.SentTo(Db(2)).empty());
  EXPECT_TRUE(h.target(Db(2)).has_offline_since_time());
  h.Connect(Db(2));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_RUNNING);
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
}

// ===================== the failure budget =====================

TEST(EngineTest, CanaryFailureWithNoBudgetStopsBeforeWaveTwo) {
  Harness h(NewRollout(Waves({"1", "100%"}), 4));
  h.ConnectAll();
  h.Start();
  h.Finished(Db(1), absl::FailedPreconditionError("no such table"));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_FAILED);
  EXPECT_EQ(h.target(Db(1)).error(), "failed in phase schema: no such table");
  for (int i = 2; i <= 4; ++i) {
    EXPECT_EQ(h.state(Db(i)), v1::TARGET_STATE_SKIPPED);
    EXPECT_EQ(h.target(Db(i)).error(),
              "not started: the failure budget was exceeded");
    EXPECT_TRUE(h.SentTo(Db(i)).empty());
  }
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "1 failures exceed the budget of 0; no further wave was started");
}

TEST(EngineTest, FailuresWithinTheBudgetLetTheRolloutSucceed) {
  v1::Strategy strategy = Waves({"1", "100%"});
  strategy.set_failure_budget("1");
  Harness h(NewRollout(strategy, 3));
  h.ConnectAll();
  h.Start();
  for (int phase = 0; phase < 3; ++phase) h.Succeed(Db(1));
  h.Finished(Db(2), absl::InternalError("boom"));
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(h.rollout().waiting_reason(), "1 failures, within the budget of 1");
}

TEST(EngineTest, OverBudgetRunningTargetsFinishBeforeTheRestIsSkipped) {
  v1::Strategy strategy = Waves({"2", "100%"});
  Harness h(NewRollout(strategy, 4));
  h.ConnectAll();
  h.Start();
  h.Finished(Db(1), absl::InternalError("boom"));
  // db-2 still runs: nothing is decided until it ends.
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_PENDING);
  h.Settle();
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
}

TEST(EngineTest, AutoRollbackOfTheRolloutRevertsWhatWasApplied) {
  v1::Strategy strategy = Waves({"2", "100%"});
  strategy.set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
  Harness h(NewRollout(strategy, 3));
  h.ConnectAll();
  h.Start();
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  h.Finished(Db(2), absl::InternalError("boom"));
  // db-1 reaches the end of config; then everything it applied is reverted.
  h.Succeed(Db(1));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLING_BACK);
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLING_BACK);
  h.Settle();
  std::vector<std::string> reverted;
  for (const v1::Command& command : h.SentTo(Db(1))) {
    if (command.has_revert_phase())
      reverted.push_back(command.revert_phase().phase());
  }
  EXPECT_EQ(reverted,
            std::vector<std::string>({"config", "procedures", "schema"}));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLED_BACK);
}

TEST(EngineTest, AutoRollbackOfFailedTargetsRevertsOnlyThem) {
  v1::Strategy strategy = Waves({});
  strategy.set_failure_budget("1");
  strategy.set_auto_rollback(v1::AUTO_ROLLBACK_FAILED_TARGETS);
  Harness h(NewRollout(strategy, 2));
  h.ConnectAll();
  h.Start();
  h.Succeed(Db(1));
  h.Succeed(Db(2));
  h.Step(Db(2), v1::STEP_OUTCOME_APPLIED);
  h.Finished(Db(2), absl::InternalError("boom"));
  // The failed target reverts the phases it touched, the failed one included
  // (its applied step stays recorded until reverted).
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_ROLLING_BACK);
  EXPECT_EQ(h.SentTo(Db(2)).back().revert_phase().phase(), "procedures");
  h.Settle();
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
}

// ===================== gates =====================

TEST(EngineTest, AttestedGatesHoldUntilAPersonAttests) {
  Harness h(NewRollout(Waves({}), 2, {Gate(v1::GATE_KIND_TEAM_NOTIFIED)}));
  h.ConnectAll();
  h.Start();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  EXPECT_EQ(h.rollout().waiting_reason(), "gate team: not attested");
  EXPECT_TRUE(h.sent().empty());
  h.Wait(absl::Hours(1));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  Output out = h.Record(
      h.engine().Attest(AttestRequest(v1::GATE_KIND_TEAM_NOTIFIED), h.now));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.rollout().gates(0).detail(), "attested by bob");
  EXPECT_EQ(h.Busy().size(), 2u);
}

TEST(EngineTest, EvidenceGatesCannotBeAttestedAndUnknownGatesAreRefused) {
  Harness h(NewRollout(Waves({}), 1, {Window("00:00", "24:00")}));
  Output out = h.Record(h.engine().Attest(
      AttestRequest(v1::GATE_KIND_MAINTENANCE_WINDOW), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(out.status.message(), "decided by evidence"));
  out = h.Record(
      h.engine().Attest(AttestRequest(v1::GATE_KIND_TEAM_NOTIFIED), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.status.message(), "rollout r-1 has no team gate");
  EXPECT_TRUE(out.events.empty());
}

TEST(EngineTest, BackupGateHoldsOnEvidenceOrAttestation) {
  v1::Strategy with_backup = Waves({});
  with_backup.set_backup_first(true);
  Harness evidence(
      NewRollout(with_backup, 1, {Gate(v1::GATE_KIND_BACKUP_COMPLETED)}));
  evidence.Start();
  EXPECT_EQ(evidence.state(), v1::ROLLOUT_STATE_RUNNING);

  Harness word(
      NewRollout(Waves({}), 1, {Gate(v1::GATE_KIND_BACKUP_COMPLETED)}));
  word.Start();
  EXPECT_EQ(word.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  EXPECT_TRUE(absl::StrContains(word.rollout().waiting_reason(),
                                "no backup yet: set backup_first"));
  word.Record(word.engine().Attest(
      AttestRequest(v1::GATE_KIND_BACKUP_COMPLETED), word.now));
  EXPECT_EQ(word.state(), v1::ROLLOUT_STATE_RUNNING);
}

TEST(EngineTest, RollbackPlanGateNamesStepsWithoutRevert) {
  Harness complete(
      NewRollout(Waves({}), 1, {Gate(v1::GATE_KIND_ROLLBACK_PLAN)}));
  complete.Start();
  EXPECT_EQ(complete.state(), v1::ROLLOUT_STATE_RUNNING);

  Harness missing(NewRollout(Waves({}), 1, {Gate(v1::GATE_KIND_ROLLBACK_PLAN)}),
                  Manifest(/*revert_missing=*/true));
  missing.Start();
  EXPECT_EQ(missing.rollout().waiting_reason(),
            "gate rollback-plan: steps without revert script: config/s1; "
            "attest the plan");
  missing.Record(missing.engine().Attest(
      AttestRequest(v1::GATE_KIND_ROLLBACK_PLAN), missing.now));
  EXPECT_EQ(missing.state(), v1::ROLLOUT_STATE_RUNNING);
}

TEST(EngineTest, StagingGateHoldsUntilTheBundleSucceededOnStaging) {
  OtherRollouts others;
  Harness h(NewRollout(Waves({}), 1, {Gate(v1::GATE_KIND_STAGING_TESTED)}),
            Manifest(), &others);
  h.Start();
  EXPECT_EQ(h.rollout().waiting_reason(),
            "gate staging: no succeeded rollout of ecliptix@1.0.0 on "
            "env=staging databases yet");
  v1::Rollout staging;
  staging.set_rollout_id("r-0");
  staging.set_bundle_id("sha256:abc");
  staging.set_state(v1::ROLLOUT_STATE_SUCCEEDED);
  (*staging.add_targets()->mutable_labels())["env"] = "staging";
  others.others.push_back(staging);
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.rollout().gates(0).detail(),
            "rollout r-0 succeeded on 1 staging databases");
}

TEST(EngineTest, MaintenanceWindowIsReadFromTheClockBeforeEveryWave) {
  // It is 22:13 UTC; the window is 23:00-23:30 every day.
  Harness h(NewRollout(Waves({"1", "100%"}), 2, {Window("23:00", "23:30")}));
  h.ConnectAll();
  h.Start();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  EXPECT_TRUE(absl::StrContains(h.rollout().waiting_reason(),
                                "outside the window 23:00-23:30 UTC"));
  h.Wait(absl::Minutes(40));  // 22:53
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  h.Wait(absl::Minutes(10));  // 23:03
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(1)}));
  // The canary finishes after the window closed: wave 2 waits for tomorrow.
  h.now += absl::Minutes(30);  // 23:33
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  EXPECT_EQ(h.rollout().current_wave(), 1);
  h.Wait(absl::Hours(23) + absl::Minutes(30));  // 23:03 the next day
  EXPECT_EQ(h.rollout().current_wave(), 2);
  EXPECT_EQ(h.Busy(), std::vector<std::string>({Db(2)}));
}

// ===================== pause and approval =====================

TEST(EngineTest, PauseLetsRunningCommandsFinishAndStartsNothingNew) {
  Harness h(NewRollout(Waves({}, /*max_parallel=*/1), 2));
  h.ConnectAll();
  h.Start();
  Output out = h.Record(h.engine().Pause(Action("look"), h.now));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(h.rollout().waiting_reason(),
            "paused: look; running commands finish, nothing new starts");
  h.Succeed(Db(1));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_RUNNING)
      << "its next phase still runs";
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  h.Wait(absl::Hours(1));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_PENDING);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_PAUSED);
  // Pausing twice changes nothing; resuming continues.
  out = h.Record(h.engine().Pause(Action(), h.now));
  EXPECT_TRUE(out.status.ok());
  EXPECT_TRUE(out.events.empty());
  out = h.Record(h.engine().Resume(Action(), h.now));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_RUNNING);
  out = h.Record(h.engine().Resume(Action(), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.status.message(), "rollout r-1 is running, not paused");
}

TEST(EngineTest, ApprovalRequiredPausesAfterEachWaveButTheLast) {
  v1::Strategy strategy = Waves({"1", "2", "100%"});
  strategy.set_approval_required(true);
  Harness h(NewRollout(strategy, 3));
  h.ConnectAll();
  h.Start();
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_PAUSED);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "wave 1 of 3 finished; approve the next wave with `ecliptixctl "
            "rollout resume r-1`");
  h.Wait(absl::Hours(5));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_PENDING);
  h.Record(h.engine().Resume(Action(), h.now));
  EXPECT_EQ(h.rollout().current_wave(), 2);
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_PAUSED);
  h.Record(h.engine().Resume(Action(), h.now));
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
}

TEST(EngineTest, TimedPauseBetweenWavesEndsOnTheClock) {
  v1::Strategy strategy = Waves({"1", "100%"});
  strategy.mutable_pause_between_waves()->set_seconds(600);
  Harness h(NewRollout(strategy, 2));
  h.ConnectAll();
  h.Start();
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "wave 1 finished; wave 2 starts at 22:23:20 UTC");
  h.Wait(absl::Seconds(599));
  EXPECT_EQ(h.rollout().current_wave(), 1);
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.rollout().current_wave(), 2);
  EXPECT_EQ(h.rollout().waiting_reason(), "");
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_RUNNING);
  // The end of wave 1 was told once, however many ticks the pause took.
  int ends = 0;
  for (const v1::RolloutEvent& event : h.events())
    ends += event.has_wave() && !event.wave().started();
  EXPECT_EQ(ends, 1);
}

// ===================== abort =====================

TEST(EngineTest, AbortCancelsRunningCommandsAndSkipsTheRest) {
  Harness h(NewRollout(Waves({}, /*max_parallel=*/2), 3));
  h.ConnectAll();
  h.Start();
  const std::string running = h.target(Db(1)).command_id();
  Output out = h.Record(h.engine().Abort(Action("wrong bundle"), h.now));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ABORTED);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.target(Db(3)).error(), "not started: aborted");
  ASSERT_EQ(out.commands.size(), 2u);
  EXPECT_EQ(out.commands[0].command.command_id(), running + "/cancel");
  EXPECT_EQ(out.commands[0].command.cancel().command_id(), running);
  EXPECT_FALSE(out.finished) << "commands still run";
  // One is cancelled (its step rolled back); the other finished its phase
  // first and goes no further.
  h.Finished(Db(1), absl::CancelledError("cancelled"));
  EXPECT_EQ(h.target(Db(1)).error(), "cancelled in phase schema: cancelled");
  Output last = h.Succeed(Db(2));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_FAILED);
  EXPECT_EQ(h.target(Db(2)).error(), "aborted after phase schema");
  EXPECT_TRUE(last.finished);
  out = h.Record(h.engine().Abort(Action(), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.status.message(), "rollout r-1 already ended (aborted)");
}

// ===================== retry =====================

TEST(EngineTest, RetryRunsFailedSkippedAndUnknownTargetsUnderNewAttempts) {
  v1::Strategy strategy = Waves({"1", "100%"});
  Harness h(NewRollout(strategy, 3));
  h.ConnectAll();
  h.Start();
  h.Succeed(Db(1));
  Output out = h.Record(h.engine().Retry(Action(), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kFailedPrecondition)
      << "refused while commands run";
  h.Finished(Db(1), absl::InternalError("no such table"));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
  out = h.Record(h.engine().Retry(Action(), h.now));
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(h.rollout().failures(), 0);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.rollout().current_wave(), 1);
  EXPECT_EQ(h.target(Db(1)).command_id(), "r-1/db-1/run/schema/2");
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_PENDING) << "wave 2 waits";
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  out = h.Record(h.engine().Retry(Action(), h.now));
  EXPECT_EQ(out.status.message(),
            "rollout r-1 has no failed, skipped or unknown databases");
}

// ===================== rollback =====================

// A succeeded rollout of 2 waves where db-1 applied every phase and db-2
// found procedures already applied by an earlier rollout.
Harness& Succeeded(Harness& h) {
  h.ConnectAll();
  h.Start();
  h.BackedUp(Db(1), "backup-1");
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  h.Succeed(Db(1));
  h.Succeed(Db(2));
  h.SucceedUntouched(Db(2));
  h.Succeed(Db(2));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  return h;
}

std::vector<std::string> Undone(const Harness& h, const std::string& db) {
  std::vector<std::string> undone;
  for (const v1::Command& command : h.SentTo(db)) {
    if (command.has_revert_phase())
      undone.push_back(command.revert_phase().phase());
    if (command.has_restore())
      undone.push_back("restore " + command.restore().backup_id());
  }
  return undone;
}

TEST(EngineTest, RollbackRevertsOnlyTouchedPhasesLastFirst) {
  Harness h(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(h);
  Output out =
      h.Record(h.engine().Rollback(RollbackRequest("", 0, false, true), h.now));
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLING_BACK);
  const v1::Command first = h.SentTo(Db(1)).back();
  EXPECT_EQ(first.command_id(), "r-1/db-1/revert/config/1");
  EXPECT_TRUE(first.revert_phase().only_this_bundle());
  EXPECT_TRUE(first.revert_phase().accept_data_loss());
  h.Settle();
  EXPECT_EQ(Undone(h, Db(1)),
            std::vector<std::string>({"config", "procedures", "schema"}));
  EXPECT_EQ(Undone(h, Db(2)), std::vector<std::string>({"config", "schema"}));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLED_BACK);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "what the rollout applied was reverted");
}

TEST(EngineTest, RollbackOfOnePhaseOrOneWave) {
  Harness phase(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(phase);
  phase.Record(
      phase.engine().Rollback(RollbackRequest("procedures"), phase.now));
  phase.Settle();
  EXPECT_EQ(Undone(phase, Db(1)), std::vector<std::string>({"procedures"}));
  EXPECT_TRUE(Undone(phase, Db(2)).empty()) << "db-2 never touched it";
  EXPECT_EQ(phase.target(Db(1)).touched_phases_size(), 2);
  EXPECT_EQ(phase.state(), v1::ROLLOUT_STATE_ROLLED_BACK);

  Harness wave(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(wave);
  wave.Record(wave.engine().Rollback(RollbackRequest("", 2), wave.now));
  wave.Settle();
  EXPECT_TRUE(Undone(wave, Db(1)).empty());
  EXPECT_EQ(Undone(wave, Db(2)),
            std::vector<std::string>({"config", "schema"}));
  EXPECT_EQ(wave.state(Db(1)), v1::TARGET_STATE_SUCCEEDED);
}

TEST(EngineTest, RestoreRollbackPutsBackupsBackAndFailsWithoutOne) {
  Harness h(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(h);
  h.Record(
      h.engine().Rollback(RollbackRequest("", 0, /*restore=*/true), h.now));
  EXPECT_EQ(h.SentTo(Db(1)).back().command_id(), "r-1/db-1/restore/config/1");
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_FAILED);
  EXPECT_TRUE(absl::StartsWith(h.target(Db(2)).error(),
                               "rollback failed: the rollout took no backup"));
  h.Settle();
  EXPECT_EQ(Undone(h, Db(1)), std::vector<std::string>({"restore backup-1"}));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.target(Db(1)).touched_phases_size(), 0);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "the rollback failed on some databases; see their errors");
}

TEST(EngineTest, ASecondRestoreIsANewCommand) {
  Harness h(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(h);
  h.Record(
      h.engine().Rollback(RollbackRequest("", 1, /*restore=*/true), h.now));
  h.Finished(Db(1), absl::UnavailableError("disk full"));
  EXPECT_EQ(h.target(Db(1)).error(),
            "rollback failed: restoring backup backup-1: disk full");
  h.Record(
      h.engine().Rollback(RollbackRequest("", 1, /*restore=*/true), h.now));
  EXPECT_EQ(h.SentTo(Db(1)).back().command_id(), "r-1/db-1/restore/config/2");
}

TEST(EngineTest, FailedRevertFailsTheRollback) {
  Harness h(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(h);
  h.Record(h.engine().Rollback(RollbackRequest("", 1), h.now));
  h.Finished(Db(1), absl::FailedPreconditionError(
                        "would drop table T holding 3 rows"));
  EXPECT_EQ(h.target(Db(1)).error(),
            "rollback failed in phase config: would drop table T holding 3 "
            "rows");
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
}

TEST(EngineTest, RollbackWaitsForRunningCommandsToStop) {
  Harness h(NewRollout(Waves({}), 2));
  h.ConnectAll();
  h.Start();
  h.Succeed(Db(1));
  Output out = h.Record(h.engine().Rollback(RollbackRequest(), h.now));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_PAUSED);
  EXPECT_EQ(out.commands.size(), 2u) << "both running commands cancelled";
  h.Finished(Db(1), absl::CancelledError("cancelled"));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_PAUSED) << "db-2 still runs";
  h.Finished(Db(2), absl::CancelledError("cancelled"));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLING_BACK);
  h.Settle();
  EXPECT_EQ(Undone(h, Db(1)), std::vector<std::string>({"schema"}));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_FAILED) << "nothing to revert";
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLED_BACK);
}

TEST(EngineTest, BadRollbackRequestsAreRefusedSayingWhy) {
  Harness h(NewRollout(Waves({"1", "100%"}), 2));
  Succeeded(h);
  Output out = h.Record(h.engine().Rollback(RollbackRequest("nope"), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status.message(),
            "phase \"nope\" is not deployed by rollout r-1; its phases are "
            "schema, procedures, config");
  out = h.Record(h.engine().Rollback(RollbackRequest("", 3), h.now));
  EXPECT_EQ(out.status.message(),
            "wave 3 is out of range (1..2, or 0 for all)");
  out =
      h.Record(h.engine().Rollback(RollbackRequest("schema", 0, true), h.now));
  EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED) << "nothing changed";
}

// ===================== offline agents =====================

v1::Strategy Offline(v1::OfflinePolicy policy) {
  v1::Strategy strategy = Waves({});
  strategy.mutable_offline_deadline()->set_seconds(60);
  strategy.set_offline_policy(policy);
  strategy.set_failure_budget("1");
  return strategy;
}

TEST(EngineTest, OfflinePastTheDeadlineFailsWithTheFailPolicy) {
  Harness h(NewRollout(Offline(v1::OFFLINE_POLICY_FAIL), 2));
  h.Connect(Db(1));
  h.Start();
  h.Wait(absl::Seconds(59));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_PENDING);
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_FAILED);
  EXPECT_EQ(h.target(Db(2)).error(), "agent offline for more than 1m");
  EXPECT_EQ(h.rollout().failures(), 1);
}

TEST(EngineTest, OfflinePastTheDeadlineIsSkippedWithTheSkipPolicy) {
  Harness h(NewRollout(Offline(v1::OFFLINE_POLICY_SKIP), 2));
  h.Connect(Db(1));
  h.Start();
  h.Wait(absl::Seconds(60));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.rollout().failures(), 0);
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
}

TEST(EngineTest, AnAgentGoneMidCommandGetsItAgainOrBecomesUnknown) {
  Harness h(NewRollout(Offline(v1::OFFLINE_POLICY_FAIL), 2));
  h.ConnectAll();
  h.Start();
  const std::string id1 = h.target(Db(1)).command_id();
  h.Connect(Db(1), false);
  h.Connect(Db(2), false);
  h.Wait(absl::Seconds(30));
  // Back before the deadline: the same command again, same id.
  h.Connect(Db(1));
  EXPECT_EQ(h.SentTo(Db(1)).back().command_id(), id1);
  EXPECT_EQ(h.SentTo(Db(1)).size(), 2u);
  h.Wait(absl::Seconds(30));
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_UNKNOWN);
  EXPECT_EQ(h.target(Db(2)).error(),
            "the agent went away during phase schema; its outcome is unknown "
            "(retry settles it from the history table)");
  EXPECT_EQ(h.rollout().failures(), 1);
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
}

TEST(EngineTest, LateAndUnknownMessagesChangeNothing) {
  Harness h(NewRollout(Waves({}), 1));
  h.ConnectAll();
  h.Start();
  const std::string old_id = h.target(Db(1)).command_id();
  h.Succeed(Db(1));
  v1::AgentMessage late;
  late.mutable_command_event()->set_command_id(old_id);
  *late.mutable_command_event()->mutable_finished() =
      ToProtoStatus(absl::InternalError("late"));
  const v1::Rollout before = h.rollout();
  Output out = h.Message(Db(1), late);
  EXPECT_TRUE(out.events.empty());
  EXPECT_TRUE(out.changed_targets.empty());
  out = h.Message("db-404", late);
  EXPECT_TRUE(out.events.empty());
  EXPECT_TRUE(MessageDifferencer::Equals(before, h.rollout()));
}

TEST(EngineTest, OnlyChangedTargetsAreReported) {
  Harness h(NewRollout(Waves({}, /*max_parallel=*/1), 50));
  h.ConnectAll();
  Output out = h.Start();
  EXPECT_EQ(out.changed_targets, std::set<int>({0}));
  out = h.Step(Db(1), v1::STEP_OUTCOME_APPLIED);
  EXPECT_EQ(out.changed_targets, std::set<int>({0}));
  out = h.Finished(Db(1));
  EXPECT_EQ(out.changed_targets, std::set<int>({0}));
}

// ===================== cost =====================

// The most targets the engine looked at for one input of each kind, in a
// rollout of `databases` databases, one wave, 10 at a time, every tenth
// agent away (its offline clock runs).
struct WorkPerInput {
  int64_t agent_message = 0;
  int64_t connection = 0;
  int64_t idle_tick = 0;
};

WorkPerInput MeasureWork(int databases) {
  v1::Strategy strategy = Waves({}, /*max_parallel=*/10);
  strategy.mutable_offline_deadline()->set_seconds(60);
  Harness h(NewRollout(strategy, databases));
  // In the order of the targets (the engine's order), every tenth away.
  std::vector<std::string> there, away;
  for (int i = 0; i < h.rollout().targets_size(); ++i)
    (i % 10 == 9 ? away : there)
        .push_back(h.rollout().targets(i).database_id());
  for (const std::string& db : there) h.Connect(db);
  h.Start();
  const Engine& engine = h.engine();
  WorkPerInput work;
  auto count = [&](int64_t& most, const std::function<void()>& input) {
    const int64_t before = engine.targets_examined();
    input();
    most = std::max(most, engine.targets_examined() - before);
  };
  for (int round = 0; !h.Busy().empty(); ++round) {
    for (const std::string& db : h.Busy()) {
      count(work.agent_message, [&] { h.Step(db, v1::STEP_OUTCOME_APPLIED); });
      count(work.agent_message, [&] { h.Finished(db); });
    }
    // Time stands still: nothing is due.
    count(work.idle_tick, [&] { h.Wait(absl::ZeroDuration()); });
    // An agent that is there goes and comes back.
    const std::string& db = there[round % there.size()];
    count(work.connection, [&] { h.Connect(db, false); });
    count(work.connection, [&] { h.Connect(db); });
  }
  // Every agent that was there applied the bundle; the others wait.
  for (const std::string& db : there)
    EXPECT_EQ(h.state(db), v1::TARGET_STATE_SUCCEEDED) << db;
  for (const std::string& db : away)
    EXPECT_EQ(h.state(db), v1::TARGET_STATE_PENDING) << db;
  EXPECT_EQ(static_cast<int>(away.size()), databases / 10);
  return work;
}

// What an agent message, a connection change or a tick with nothing due
// costs does not grow with the rollout: 20 times the targets, the same
// number of targets looked at per input (a handful: the one that finished,
// the next to start). This is what makes a rollout's time linear in its
// targets.
TEST(EngineTest, AnInputsWorkDoesNotGrowWithTheTargets) {
  const WorkPerInput small = MeasureWork(100);
  const WorkPerInput large = MeasureWork(2000);
  EXPECT_EQ(large.agent_message, small.agent_message);
  EXPECT_EQ(large.connection, small.connection);
  EXPECT_GE(small.agent_message, 1);
  EXPECT_LE(large.agent_message, 6);
  EXPECT_LE(large.connection, 3);
  EXPECT_EQ(large.idle_tick, 0);
  EXPECT_EQ(small.idle_tick, 0);
}

// Clocks that run out cost what ran out, and only once.
TEST(EngineTest, ATickLooksOnlyAtTheClocksThatRanOut) {
  v1::Strategy strategy = Waves({}, /*max_parallel=*/0);
  strategy.set_failure_budget("100%");
  strategy.mutable_offline_deadline()->set_seconds(60);
  Harness h(NewRollout(strategy, 1000));
  for (int i = 1; i <= 1000; ++i) {
    if (i > 3) h.Connect(Db(i));
  }
  h.Start();
  int64_t before = h.engine().targets_examined();
  h.Wait(absl::Seconds(59));
  EXPECT_EQ(h.engine().targets_examined(), before);
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_FAILED);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_FAILED);
  // The three expired clocks, each looked at and indexed again.
  EXPECT_LE(h.engine().targets_examined() - before, 3 * 2);
  before = h.engine().targets_examined();
  h.Wait(absl::Hours(1));
  EXPECT_EQ(h.engine().targets_examined(), before);
}

// ===================== restarts =====================

OperationState SaveAndLoad(const OperationState& state) {
  std::string bytes;
  EXPECT_TRUE(state.rollout.SerializeToString(&bytes));
  OperationState loaded;
  EXPECT_TRUE(loaded.rollout.ParseFromString(bytes));
  loaded.waves_ended = state.waves_ended;
  loaded.rollback_pending = state.rollback_pending;
  return loaded;
}

TEST(EngineTest, AfterARestartInFlightCommandsAreSentAgainUnderTheirIds) {
  v1::Strategy strategy = Waves({});
  strategy.mutable_offline_deadline()->set_seconds(60);
  Harness before(NewRollout(strategy, 3));
  before.ConnectAll();
  before.Start();
  before.Succeed(Db(1));
  std::map<std::string, std::string> in_flight;
  for (const v1::RolloutTarget& t : before.rollout().targets())
    in_flight[t.database_id()] = t.command_id();

  // A new process, much later: every agent is gone until it reconnects, and
  // each has the whole deadline again.
  DeployBundleAction action(Manifest());
  Engine after =
      Engine::Load(SaveAndLoad(before.engine().state()), {}, &action, nullptr);
  absl::Time now = before.now + absl::Hours(1);
  Output out = after.Restarted(now);
  EXPECT_TRUE(out.events.empty());
  EXPECT_TRUE(after.Tick(now + absl::Seconds(59)).events.empty());
  for (int i = 1; i <= 3; ++i) {
    out = after.OnConnection(Db(i), true, now + absl::Seconds(59));
    ASSERT_EQ(out.commands.size(), 1u);
    EXPECT_EQ(out.commands[0].command.command_id(), in_flight[Db(i)]);
  }
  EXPECT_EQ(after.rollout().state(), v1::ROLLOUT_STATE_RUNNING);
}

// One input of a random run, as recorded the first time it was given.
struct Input {
  enum Kind {
    kTick,
    kMessage,
    kConnect,
    kDisconnect,
    kPause,
    kResume,
    kAbort,
    kRetry,
    kRollback,
    kAttest
  } kind;
  absl::Time now;
  std::string database_id;
  v1::AgentMessage message;
  v1::RollbackRolloutRequest rollback;
};

Output Apply(Engine& engine, const Input& input) {
  switch (input.kind) {
    case Input::kTick:
      return engine.Tick(input.now);
    case Input::kMessage:
      return engine.OnAgentMessage(input.database_id, input.message, input.now);
    case Input::kConnect:
      return engine.OnConnection(input.database_id, true, input.now);
    case Input::kDisconnect:
      return engine.OnConnection(input.database_id, false, input.now);
    case Input::kPause:
      return engine.Pause(Action(), input.now);
    case Input::kResume:
      return engine.Resume(Action(), input.now);
    case Input::kAbort:
      return engine.Abort(Action(), input.now);
    case Input::kRetry:
      return engine.Retry(Action(), input.now);
    case Input::kRollback:
      return engine.Rollback(input.rollback, input.now);
    case Input::kAttest:
      return engine.Attest(AttestRequest(v1::GATE_KIND_TEAM_NOTIFIED),
                           input.now);
  }
  return {};
}

// A random input fit for where the rollout stands: mostly agents answering
// their current command, sometimes time passing, agents coming and going,
// and people's requests.
Input NextInput(std::mt19937& random, const Engine& engine,
                const std::set<std::string>& connected, absl::Time& now) {
  auto pick = [&](int n) {
    return static_cast<int>(std::uniform_int_distribution<>(0, n - 1)(random));
  };
  const v1::Rollout& rollout = engine.rollout();
  std::vector<const v1::RolloutTarget*> busy;
  for (const v1::RolloutTarget& t : rollout.targets()) {
    if (!t.command_id().empty() && connected.count(t.database_id()) > 0)
      busy.push_back(&t);
  }
  Input input;
  const int dice = pick(100);
  if (dice < 65 && !busy.empty()) {
    const v1::RolloutTarget& t = *busy[pick(static_cast<int>(busy.size()))];
    input.kind = Input::kMessage;
    input.database_id = t.database_id();
    v1::CommandEvent* event = input.message.mutable_command_event();
    event->set_command_id(t.command_id());
    const int what = pick(10);
    if (what < 3) {
      v1::DeploymentEvent* deployment = event->mutable_deployment();
      deployment->set_phase(t.phase());
      deployment->set_step("s1");
      deployment->mutable_step_finished()->set_outcome(
          pick(3) == 0 ? v1::STEP_OUTCOME_SKIPPED : v1::STEP_OUTCOME_APPLIED);
    } else if (what == 3) {
      event->mutable_deployment()->mutable_backup_completed()->set_backup_id(
          absl::StrCat("backup-", t.database_id()));
    } else if (what == 4) {
      // A late message for an earlier attempt.
      event->set_command_id(t.command_id() + "-old");
      *event->mutable_finished() = ToProtoStatus(absl::OkStatus());
    } else {
      *event->mutable_finished() = ToProtoStatus(
          pick(5) == 0 ? absl::InternalError("boom") : absl::OkStatus());
    }
  } else if (dice < 78) {
    input.kind = Input::kTick;
    now += absl::Seconds(pick(90));
  } else if (dice < 88) {
    const v1::RolloutTarget& t = rollout.targets(pick(rollout.targets_size()));
    input.database_id = t.database_id();
    input.kind = connected.count(t.database_id()) > 0 ? Input::kDisconnect
                                                      : Input::kConnect;
  } else {
    const Input::Kind requests[] = {
        Input::kPause, Input::kResume, Input::kResume,   Input::kAbort,
        Input::kRetry, Input::kRetry,  Input::kRollback, Input::kAttest};
    input.kind = requests[pick(8)];
    if (input.kind == Input::kAbort && pick(3) != 0) input.kind = Input::kRetry;
    input.rollback = RollbackRequest(pick(2) == 0 ? "" : Phases()[pick(3)],
                                     pick(3), pick(4) == 0, pick(2) == 0);
    if (input.rollback.restore()) input.rollback.set_phase("");
  }
  input.now = now;
  return input;
}

void ExpectSameOutput(const Output& a, const Output& b, const std::string& at) {
  EXPECT_EQ(a.status, b.status) << at;
  ASSERT_EQ(a.events.size(), b.events.size()) << at;
  for (size_t i = 0; i < a.events.size(); ++i)
    EXPECT_TRUE(MessageDifferencer::Equals(a.events[i], b.events[i])) << at;
  ASSERT_EQ(a.commands.size(), b.commands.size()) << at;
  for (size_t i = 0; i < a.commands.size(); ++i) {
    EXPECT_EQ(a.commands[i].database_id, b.commands[i].database_id) << at;
    EXPECT_TRUE(MessageDifferencer::Equals(a.commands[i].command,
                                           b.commands[i].command))
        << at;
  }
  EXPECT_EQ(a.changed_targets, b.changed_targets) << at;
  EXPECT_EQ(a.finished, b.finished) << at;
}

// The property of resumption: for random runs, saving the state after any
// input and going on with a new engine loaded from it gives the very same
// outputs (events, commands and their ids) and the same end state as never
// stopping.
TEST(EngineTest, ReloadingTheSavedStateAtAnyStepChangesNothing) {
  constexpr int kRuns = 12;
  constexpr int kInputs = 120;
  DeployBundleAction action(Manifest());
  for (int seed = 1; seed <= kRuns; ++seed) {
    std::mt19937 random(seed);
    v1::Strategy strategy =
        Waves({"1", "50%", "100%"}, /*max_parallel=*/1 + seed % 3);
    strategy.set_failure_budget(seed % 2 == 0 ? "1" : "25%");
    strategy.mutable_offline_deadline()->set_seconds(120);
    strategy.set_offline_policy(seed % 3 == 0 ? v1::OFFLINE_POLICY_SKIP
                                              : v1::OFFLINE_POLICY_FAIL);
    strategy.set_approval_required(seed % 4 == 0);
    strategy.mutable_pause_between_waves()->set_seconds(seed % 5 == 0 ? 60 : 0);
    strategy.set_backup_first(seed % 2 == 1);
    strategy.set_auto_rollback(static_cast<v1::AutoRollback>(seed % 3));
    std::vector<v1::GateSpec> gates;
    if (seed % 3 == 1) gates.push_back(Gate(v1::GATE_KIND_TEAM_NOTIFIED));
    const v1::Rollout created = NewRollout(strategy, 6, gates);

    // The run that never stops, recording its inputs and outputs.
    Engine straight(OperationState{created}, &action, nullptr);
    std::set<std::string> connected;
    absl::Time now = StartTime();
    std::vector<Input> inputs;
    std::vector<Output> outputs;
    std::vector<OperationState> states;
    std::vector<std::set<std::string>> connections;
    states.push_back(straight.state());
    connections.push_back(connected);
    outputs.push_back(straight.Start("alice", now));
    for (int i = 0; i < kInputs; ++i) {
      // Most agents are there at first.
      Input input = NextInput(random, straight, connected, now);
      if (i < created.targets_size() - 1) {
        input = Input{Input::kConnect, now, created.targets(i).database_id()};
      }
      // What a shell would save and know before handing over the input.
      states.push_back(straight.state());
      connections.push_back(connected);
      if (input.kind == Input::kConnect) connected.insert(input.database_id);
      if (input.kind == Input::kDisconnect) connected.erase(input.database_id);
      outputs.push_back(Apply(straight, input));
      inputs.push_back(std::move(input));
    }
    // Every run moved: events were told.
    ASSERT_GT(straight.rollout().last_event_sequence(), 5) << "seed " << seed;

    // A watcher applying the events with the one event-applying function
    // (common/rollout_events, what ecliptixctl does) sees what the engine has.
    v1::Rollout watched = created;
    for (const Output& output : outputs) {
      for (const v1::RolloutEvent& event : output.events)
        ApplyRolloutEvent(event, &watched);
    }
    const v1::Rollout& truth = straight.rollout();
    EXPECT_EQ(watched.state(), truth.state()) << "seed " << seed;
    EXPECT_EQ(watched.failures(), truth.failures()) << "seed " << seed;
    EXPECT_EQ(watched.current_wave(), truth.current_wave()) << "seed " << seed;
    for (int t = 0; t < truth.targets_size(); ++t) {
      const std::string who =
          absl::StrCat("seed ", seed, ", ", truth.targets(t).database_id());
      EXPECT_EQ(watched.targets(t).state(), truth.targets(t).state()) << who;
      EXPECT_EQ(watched.targets(t).error(), truth.targets(t).error()) << who;
      EXPECT_EQ(watched.targets(t).steps_applied(),
                truth.targets(t).steps_applied())
          << who;
      EXPECT_EQ(watched.targets(t).steps_skipped(),
                truth.targets(t).steps_skipped())
          << who;
    }

    // Stop after input k (the state saved before input k+1), load, go on.
    for (int k = 0; k < kInputs; ++k) {
      Engine resumed = Engine::Load(SaveAndLoad(states[k + 1]),
                                    connections[k + 1], &action, nullptr);
      for (int i = k; i < kInputs; ++i) {
        const std::string at = absl::StrCat(
            "seed ", seed, ", reloaded before input ", k, ", input ", i);
        ExpectSameOutput(outputs[i + 1], Apply(resumed, inputs[i]), at);
        if (HasFailure()) return;
      }
      EXPECT_TRUE(
          MessageDifferencer::Equals(straight.rollout(), resumed.rollout()))
          << "seed " << seed << ", reloaded before input " << k;
      EXPECT_EQ(straight.state().waves_ended, resumed.state().waves_ended);
      EXPECT_EQ(straight.state().rollback_pending,
                resumed.state().rollback_pending);
    }
  }
}

// ===================== the success gate =====================

WindowFigures Calls(double calls, double avg_ms, double error_rate = 0) {
  return WindowFigures{calls, calls * avg_ms, error_rate};
}

// Figures the shell would read from the metrics: per database, one set for
// the soak (after the rollout's creation) and one for the baseline (before).
class FakeFigures : public GateEvidence {
 public:
  std::optional<GateCheck> Check(const v1::Rollout&,
                                 const v1::GateStatus&) const override {
    return std::nullopt;
  }
  absl::StatusOr<SuccessFigures> Figures(const std::set<std::string>& databases,
                                         absl::Time start,
                                         absl::Time end) const override {
    asked.push_back({databases, start, end});
    if (!failure.ok()) return failure;
    const bool baseline = end <= StartTime();
    SuccessFigures figures;
    for (const std::string& db : databases) {
      const auto& source = baseline ? before : after;
      auto it = source.find(db);
      if (it == source.end() || it->second.calls <= 0) continue;
      figures.by_database[db] = it->second;
      figures.pooled.calls += it->second.calls;
      figures.pooled.execution_ms += it->second.execution_ms;
      figures.pooled.error_rate = figures.pooled.error_rate.value_or(0) +
                                  *it->second.error_rate * it->second.calls;
    }
    if (figures.pooled.calls > 0) {
      *figures.pooled.error_rate /= figures.pooled.calls;
    } else {
      figures.pooled.error_rate.reset();
    }
    return figures;
  }

  struct Asked {
    std::set<std::string> databases;
    absl::Time start;
    absl::Time end;
  };
  std::map<std::string, WindowFigures> before;
  std::map<std::string, WindowFigures> after;
  absl::Status failure;
  mutable std::vector<Asked> asked;
};

v1::Rollout GatedRollout(
    v1::AutoRollback auto_rollback = v1::AUTO_ROLLBACK_UNSPECIFIED) {
  v1::Strategy strategy = Waves({"1", "100%"});
  strategy.mutable_success_gate()->mutable_soak()->set_seconds(120);
  strategy.mutable_success_gate()->mutable_baseline()->set_seconds(3600);
  strategy.set_auto_rollback(auto_rollback);
  v1::Rollout rollout = NewRollout(strategy, 3);
  *rollout.mutable_create_time() =
      TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(StartTime()));
  return rollout;
}

// Every database 3 ms per call, no errors, before and after.
FakeFigures HealthyFigures() {
  FakeFigures figures;
  for (int i = 1; i <= 3; ++i) {
    figures.before[Db(i)] = Calls(1000, 3);
    figures.after[Db(i)] = Calls(100, 3);
  }
  return figures;
}

TEST(EngineTest, SuccessGateWaitsOutTheSoakThenStartsTheNextWave) {
  FakeFigures figures = HealthyFigures();
  Harness h(GatedRollout(), Manifest(), &figures);
  h.ConnectAll();
  h.Start();
  h.now += absl::Seconds(10);
  h.Settle();
  const absl::Time wave_end = h.now;
  EXPECT_EQ(h.rollout().current_wave(), 1);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "wave 1 finished; success gate: watching its databases until "
            "22:15:30 UTC");
  EXPECT_EQ(h.rollout().success_gate_status().wave(), 1);
  h.Wait(absl::Seconds(119));
  EXPECT_EQ(h.rollout().current_wave(), 1);
  EXPECT_TRUE(figures.asked.empty());
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_PENDING);
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.rollout().current_wave(), 2);
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_RUNNING);
  // The changed database over the soak and over the baseline, then the
  // unchanged ones over the soak.
  ASSERT_EQ(figures.asked.size(), 3u);
  EXPECT_EQ(figures.asked[0].databases, std::set<std::string>{Db(1)});
  EXPECT_EQ(figures.asked[0].start, wave_end);
  EXPECT_EQ(figures.asked[0].end, wave_end + absl::Minutes(2));
  EXPECT_EQ(figures.asked[1].databases, std::set<std::string>{Db(1)});
  EXPECT_EQ(figures.asked[1].start, StartTime() - absl::Hours(1));
  EXPECT_EQ(figures.asked[1].end, StartTime());
  EXPECT_EQ(figures.asked[2].databases, std::set<std::string>({Db(2), Db(3)}));
  EXPECT_EQ(figures.asked[2].start, wave_end);
  EXPECT_TRUE(h.rollout().success_gate_status().passed());
  const std::vector<std::string> reasons = h.StateReasons();
  EXPECT_TRUE(std::any_of(reasons.begin(), reasons.end(), [](auto& r) {
    return absl::StartsWith(r, "success gate held on 1 database:");
  }));
  // The last wave ends the rollout without a soak of its own.
  h.Settle();
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  EXPECT_EQ(figures.asked.size(), 3u);
}

TEST(EngineTest, SuccessGateHaltsNamingTheMetricTheDatabaseAndBothValues) {
  FakeFigures figures = HealthyFigures();
  figures.before[Db(1)] = Calls(1000, 3.1);
  figures.after[Db(1)] = Calls(100, 182.4);
  figures.after[Db(2)] = Calls(100, 2.9);
  figures.after[Db(3)] = Calls(100, 2.9);
  Harness h(GatedRollout(), Manifest(), &figures);
  h.ConnectAll();
  h.Start();
  h.Settle();
  Output out = h.Wait(absl::Minutes(2));
  const std::string expected =
      "success gate: procedure_execution_ms avg 182.4 ms on db-1 after the "
      "wave vs 3.1 ms before and 2.9 ms on unchanged databases (limit 100.0 "
      "ms)";
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_FAILED);
  EXPECT_EQ(h.rollout().waiting_reason(), expected);
  EXPECT_EQ(h.StateReasons().back(), expected);
  EXPECT_EQ(h.rollout().success_gate_status().detail(), expected);
  EXPECT_FALSE(h.rollout().success_gate_status().passed());
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.state(Db(3)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.target(Db(2)).error(),
            "not started: the success gate halted the rollout");
  EXPECT_TRUE(out.finished);
  EXPECT_TRUE(h.SentTo(Db(2)).empty());
}

TEST(EngineTest, SuccessGateFailureWithAutoRollbackRevertsTheChangedDatabases) {
  FakeFigures figures = HealthyFigures();
  figures.after[Db(1)] = Calls(200, 3, /*error_rate=*/0.05);
  Harness h(GatedRollout(v1::AUTO_ROLLBACK_ROLLOUT), Manifest(), &figures);
  h.ConnectAll();
  h.Start();
  h.Settle();
  h.Wait(absl::Minutes(2));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLING_BACK);
  EXPECT_EQ(h.rollout().waiting_reason(),
            "success gate: errors rate 5% on db-1 after the wave vs 0% before "
            "and 0% on unchanged databases (limit 0.1%); reverting every "
            "database changed");
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLING_BACK);
  h.Settle();
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.state(Db(2)), v1::TARGET_STATE_SKIPPED);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLED_BACK);
}

TEST(EngineTest, SuccessGateFailureWithFailedTargetsRollbackRevertsTheWave) {
  FakeFigures figures = HealthyFigures();
  figures.after[Db(1)] = Calls(100, 500);
  Harness h(GatedRollout(v1::AUTO_ROLLBACK_FAILED_TARGETS), Manifest(),
            &figures);
  h.ConnectAll();
  h.Start();
  h.Settle();
  h.Wait(absl::Minutes(2));
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLING_BACK);
  EXPECT_TRUE(absl::EndsWith(h.rollout().waiting_reason(), "reverting wave 1"));
  h.Settle();
  EXPECT_EQ(h.state(Db(1)), v1::TARGET_STATE_ROLLED_BACK);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_ROLLED_BACK);
}

TEST(EngineTest, ARestartDuringTheSoakResumesTheSoak) {
  FakeFigures figures = HealthyFigures();
  Harness before(GatedRollout(), Manifest(), &figures);
  before.ConnectAll();
  before.Start();
  before.Settle();
  before.Wait(absl::Seconds(60));
  EXPECT_EQ(before.rollout().current_wave(), 1);

  DeployBundleAction action(Manifest());
  Engine after = Engine::Load(SaveAndLoad(before.engine().state()),
                              {Db(1), Db(2), Db(3)}, &action, &figures);
  absl::Time now = before.now + absl::Seconds(1);
  EXPECT_TRUE(after.Restarted(now).commands.empty());
  for (int i = 1; i <= 3; ++i) after.OnConnection(Db(i), true, now);
  EXPECT_TRUE(after.Tick(before.now + absl::Seconds(59)).commands.empty());
  EXPECT_EQ(after.rollout().current_wave(), 1);
  EXPECT_TRUE(figures.asked.empty());
  Output out = after.Tick(before.now + absl::Seconds(60));
  EXPECT_EQ(after.rollout().current_wave(), 2);
  EXPECT_EQ(out.commands.size(), 2u);
  EXPECT_EQ(figures.asked.size(), 3u);
}

TEST(EngineTest, SuccessGateWaitsWhileTheFiguresCannotBeRead) {
  FakeFigures figures = HealthyFigures();
  figures.failure = absl::UnavailableError("metric store down");
  Harness h(GatedRollout(), Manifest(), &figures);
  h.ConnectAll();
  h.Start();
  h.Settle();
  h.Wait(absl::Minutes(2));
  EXPECT_EQ(h.rollout().current_wave(), 1);
  EXPECT_EQ(h.state(), v1::ROLLOUT_STATE_RUNNING);
  EXPECT_TRUE(
      absl::StrContains(h.rollout().waiting_reason(), "metric store down"));
  figures.failure = absl::OkStatus();
  h.Wait(absl::Seconds(1));
  EXPECT_EQ(h.rollout().current_wave(), 2);
}

TEST(EngineTest, SuccessGateWithoutMetricsLetsTheWaveThroughSayingSo) {
  FakeFigures figures = HealthyFigures();
  figures.failure = absl::UnimplementedError("no metrics on this server");
  Harness h(GatedRollout(), Manifest(), &figures);
  h.ConnectAll();
  h.Start();
  h.Settle();
  h.Wait(absl::Minutes(2));
  EXPECT_EQ(h.rollout().current_wave(), 2);
  EXPECT_EQ(h.rollout().success_gate_status().detail(),
            "success gate: no metrics on this server; not compared");
}

TEST(SuccessGateTest, AFigureOverTheLimitAlreadyIsNotBlamedOnTheWave) {
  SuccessFigures after, before, unchanged;
  after.by_database["db-1"] = Calls(10, 150);
  before.by_database["db-1"] = Calls(10, 140);
  unchanged.pooled = Calls(10, 3);
  EXPECT_TRUE(JudgeSuccess({"db-1"}, after, before, unchanged).passed);
  // Slow everywhere, the unchanged databases too: not the wave's doing.
  before.by_database.clear();
  unchanged.pooled = Calls(10, 120);
  EXPECT_TRUE(JudgeSuccess({"db-1"}, after, before, unchanged).passed);
  // Nothing to compare with: the limit alone.
  SuccessVerdict alone = JudgeSuccess({"db-1"}, after, before, std::nullopt);
  EXPECT_FALSE(alone.passed);
  EXPECT_EQ(alone.detail,
            "success gate: procedure_execution_ms avg 150.0 ms on db-1 after "
            "the wave vs no calls before and no unchanged databases (limit "
            "100.0 ms)");
}

TEST(SuccessGateTest, DatabasesWithoutCallsAreNotJudged) {
  SuccessFigures none;
  SuccessVerdict verdict = JudgeSuccess({"db-1"}, none, none, none);
  EXPECT_TRUE(verdict.passed);
  EXPECT_EQ(verdict.detail,
            "success gate: no procedure calls on the changed databases during "
            "the soak; nothing to compare");
}

TEST(SuccessGateTest, EveryBrokenDatabaseIsNamed) {
  SuccessFigures after, before;
  after.by_database["db-1"] = Calls(10, 300);
  after.by_database["db-2"] = Calls(10, 2, 0.5);
  SuccessVerdict verdict =
      JudgeSuccess({"db-1", "db-2"}, after, before, std::nullopt);
  EXPECT_FALSE(verdict.passed);
  EXPECT_TRUE(absl::StrContains(verdict.detail, "300.0 ms on db-1"));
  EXPECT_TRUE(absl::StrContains(verdict.detail, "errors rate 50% on db-2"));
}

}  // namespace
}  // namespace ecliptix::server::operations
