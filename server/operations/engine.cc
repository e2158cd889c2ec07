#include "server/operations/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto_status.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"
#include "common/rollout_names.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server::operations {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr absl::Duration kDefaultOfflineDeadline = absl::Minutes(5);

bool IsActive(v1::RolloutState state) { return IsActiveRolloutState(state); }

bool IsTargetFinal(v1::TargetState state) { return IsFinalTargetState(state); }

bool IsTargetBusy(v1::TargetState state) {
  return state == v1::TARGET_STATE_RUNNING ||
         state == v1::TARGET_STATE_ROLLING_BACK;
}

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return FromProtoDuration(duration);
}

absl::Time FromProto(const google::protobuf::Timestamp& timestamp) {
  return FromProtoTimestamp(timestamp);
}

google::protobuf::Timestamp ToProto(absl::Time time) {
  return ToProtoTimestamp(time);
}

}  // namespace

GateCheck CheckStagingTested(const v1::Rollout& rollout,
                             const std::vector<v1::Rollout>& others) {
  for (const v1::Rollout& candidate : others) {
    if (candidate.bundle_id() != rollout.bundle_id() ||
        candidate.state() != v1::ROLLOUT_STATE_SUCCEEDED ||
        candidate.targets().empty()) {
      continue;
    }
    bool all_staging = true;
    for (const v1::RolloutTarget& target : candidate.targets()) {
      auto env = target.labels().find("env");
      all_staging &= env != target.labels().end() && env->second == "staging";
    }
    if (all_staging) {
      return {true,
              absl::StrCat("rollout ", candidate.rollout_id(), " succeeded on ",
                           candidate.targets_size(), " staging databases")};
    }
  }
  return {false, absl::StrCat("no succeeded rollout of ",
                              rollout.bundle_name_version(),
                              " on env=staging databases yet")};
}

Engine::Engine(OperationState state, const TargetAction* action,
               const GateEvidence* evidence)
    : state_(std::move(state)), action_(action), evidence_(evidence) {
  const auto& targets = state_.rollout.targets();
  indexed_.resize(targets.size());
  touched_flag_.resize(targets.size());
  clocks_wave_ = state_.rollout.current_wave();
  for (int i = 0; i < targets.size(); ++i) {
    index_.emplace(targets[i].database_id(), i);
    // Waves never change after creation: a wave's members are fixed.
    Wave(targets[i].wave()).members.push_back(i);
    Index(i);
  }
}

Engine Engine::Load(OperationState state,
                    const std::set<std::string>& connected,
                    const TargetAction* action, const GateEvidence* evidence) {
  Engine engine(std::move(state), action, evidence);
  engine.connected_ = connected;
  for (const std::string& database_id : connected) {
    const int index = engine.IndexOf(database_id);
    if (index >= 0) engine.Touch(index);
  }
  engine.Sync();
  return engine;
}

v1::Rollout Engine::Header() {
  google::protobuf::RepeatedPtrField<v1::RolloutTarget> targets;
  targets.Swap(state_.rollout.mutable_targets());
  v1::Rollout header = state_.rollout;
  targets.Swap(state_.rollout.mutable_targets());
  return header;
}

bool Engine::Finished() const {
  // Between inputs the indexes are current (Finish syncs them).
  return !IsActive(state_.rollout.state()) && busy_ == 0;
}

bool Engine::IsConnected(const std::string& database_id) const {
  return connected_.count(database_id) > 0;
}

int Engine::IndexOf(const std::string& database_id) const {
  auto it = index_.find(database_id);
  return it == index_.end() ? -1 : it->second;
}

v1::RolloutTarget& Engine::Target(Step& step, int index) {
  step.out.changed_targets.insert(index);
  Touch(index);
  return *state_.rollout.mutable_targets(index);
}

Output Engine::Finish(Step& step) {
  Sync();
  step.out.header_changed |= !step.out.events.empty();
  step.out.finished = Finished();
  return std::move(step.out);
}

// ---- indexes ----

void Engine::Touch(int index) {
  if (touched_flag_[index]) return;
  touched_flag_[index] = true;
  touched_.push_back(index);
}

Engine::WaveIndex& Engine::Wave(int wave) {
  if (wave < 0) wave = 0;
  if (static_cast<size_t>(wave) >= waves_.size()) waves_.resize(wave + 1);
  return waves_[wave];
}

void Engine::Sync() {
  // Whether a running clock is in a started wave depends on current_wave:
  // the waves it passed over (a wave started, or a retry went back) are
  // indexed again.
  const int current = state_.rollout.current_wave();
  if (current != clocks_wave_) {
    for (int wave = std::min(current, clocks_wave_) + 1;
         wave <= std::max(current, clocks_wave_); ++wave) {
      for (int index : Wave(wave).members) Touch(index);
    }
    clocks_wave_ = current;
  }
  for (int index : touched_) {
    Unindex(index);
    Index(index);
    touched_flag_[index] = false;
  }
  touched_.clear();
}

void Engine::Index(int index) {
  ++targets_examined_;
  const v1::RolloutTarget& target = state_.rollout.targets(index);
  Indexed& indexed = indexed_[index];
  indexed.wave = target.wave();
  indexed.state = target.state();
  indexed.connected = IsConnected(target.database_id());
  indexed.offline_since =
      target.has_offline_since_time()
          ? std::optional<absl::Time>(FromProto(target.offline_since_time()))
          : std::nullopt;
  indexed.clock_indexed = indexed.offline_since.has_value() &&
                          indexed.wave <= state_.rollout.current_wave();
  indexed.revert_failed = target.state() == v1::TARGET_STATE_FAILED &&
                          !target.touched_phases().empty() &&
                          absl::StartsWith(target.error(), "rollback failed");
  WaveIndex& wave = Wave(indexed.wave);
  if (IsTargetBusy(indexed.state)) {
    ++wave.busy;
    ++busy_;
  }
  if (IsTargetFinal(indexed.state)) ++wave.final;
  if (indexed.state == v1::TARGET_STATE_PENDING) {
    if (indexed.connected) {
      wave.startable.insert(index);
    } else if (!indexed.offline_since) {
      wave.unclocked.insert(index);
    }
  }
  reverts_failed_ += indexed.revert_failed;
  if (indexed.clock_indexed)
    offline_clocks_.emplace(*indexed.offline_since, index);
}

void Engine::Unindex(int index) {
  const Indexed& indexed = indexed_[index];
  WaveIndex& wave = Wave(indexed.wave);
  if (IsTargetBusy(indexed.state)) {
    --wave.busy;
    --busy_;
  }
  if (IsTargetFinal(indexed.state)) --wave.final;
  wave.startable.erase(index);
  wave.unclocked.erase(index);
  reverts_failed_ -= indexed.revert_failed;
  if (indexed.clock_indexed)
    offline_clocks_.erase({*indexed.offline_since, index});
}

int Engine::BusyTargets() {
  Sync();
  return busy_;
}

// ---- events ----

void Engine::Emit(Step& step, v1::RolloutEvent event) {
  v1::Rollout& rollout = state_.rollout;
  event.set_sequence(rollout.last_event_sequence() + 1);
  *event.mutable_event_time() = ToProto(step.now);
  // The one way a rollout changes with its events, as watchers apply them
  // (common/rollout_events.h).
  // A wave event only names its targets (their wave is set already): they
  // are not changed by it.
  const bool changes_targets = !event.has_wave();
  ApplyRolloutEvent(event, &rollout, [&](const std::string& database_id) {
    const int index = IndexOf(database_id);
    if (index < 0) return static_cast<v1::RolloutTarget*>(nullptr);
    return changes_targets ? &Target(step, index)
                           : rollout.mutable_targets(index);
  });
  step.out.events.push_back(std::move(event));
}

void Engine::SetState(Step& step, v1::RolloutState state,
                      const std::string& reason, const std::string& actor) {
  const v1::Rollout& rollout = state_.rollout;
  if (rollout.state() == state &&
      rollout.waiting_reason() == ShownWaitingReason(rollout, state, reason) &&
      actor.empty()) {
    return;
  }
  v1::RolloutEvent event;
  v1::RolloutStateChanged* changed = event.mutable_state_changed();
  changed->set_state(state);
  changed->set_reason(reason);
  changed->set_actor(actor);
  Emit(step, std::move(event));
}

void Engine::SetTargetState(Step& step, int index, v1::TargetState state,
                            const std::string& error,
                            bool counts_against_budget) {
  const v1::RolloutTarget& target = Target(step, index);
  v1::RolloutEvent event;
  v1::TargetStateChanged* changed = event.mutable_target();
  changed->set_database_id(target.database_id());
  changed->set_state(state);
  changed->set_error(error);
  changed->set_wave(target.wave());
  changed->set_counts_against_budget(counts_against_budget);
  Emit(step, std::move(event));
}

// ---- commands ----

void Engine::AssignCommand(Step& step, int index, const std::string& verb) {
  v1::RolloutTarget& target = Target(step, index);
  // Derived from saved state only: a server that died after sending a command
  // but before saving asks again, after its restart, for the very command the
  // agent may still be running, and the agent recognizes its id. Every undo
  // verb counts with revert_attempt, so a second restore is a new command.
  const int attempt =
      verb == "run" ? target.attempt() : target.revert_attempt();
  target.set_command_id(absl::StrCat(state_.rollout.rollout_id(), "/",
                                     target.database_id(), "/", verb, "/",
                                     target.phase(), "/", attempt));
}

void Engine::SendCurrentCommand(Step& step, int index) {
  v1::RolloutTarget& target = Target(step, index);
  if (!IsConnected(target.database_id())) {
    // Sent again, under the same id, when the agent comes back.
    if (!target.has_offline_since_time())
      *target.mutable_offline_since_time() = ToProto(step.now);
    return;
  }
  v1::Command command = target.state() == v1::TARGET_STATE_ROLLING_BACK
                            ? action_->UndoCommand(state_.rollout, target)
                            : action_->RunCommand(state_.rollout, target);
  command.set_command_id(target.command_id());
  step.out.commands.push_back({target.database_id(), std::move(command)});
  target.clear_offline_since_time();
}

// ---- the state machine ----

bool Engine::EvaluateGates(Step& step) {
  v1::Rollout& rollout = state_.rollout;
  std::vector<std::string> holding;
  for (v1::GateStatus& gate : *rollout.mutable_gates()) {
    GateCheck check;
    std::optional<GateCheck> found;
    if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW) {
      absl::StatusOr<WindowCheck> window = CheckWindow(gate.window(), step.now);
      found = window.ok()
                  ? GateCheck{window->inside, window->detail}
                  : GateCheck{false, std::string(window.status().message())};
    }
    if (!found) found = action_->CheckGate(rollout, gate);
    if (!found && evidence_ != nullptr) found = evidence_->Check(rollout, gate);
    if (!found && gate.kind() == v1::GATE_KIND_STAGING_TESTED)
      found = CheckStagingTested(rollout, {});
    if (!found) {
      const bool attested = !gate.attested_by().empty();
      found = GateCheck{
          attested, attested ? absl::StrCat("attested by ", gate.attested_by())
                             : "not attested"};
    }
    check = *found;
    if (gate.satisfied() != check.satisfied || gate.detail() != check.detail) {
      gate.set_satisfied(check.satisfied);
      gate.set_detail(check.detail);
      v1::RolloutEvent event;
      *event.mutable_gate() = gate;
      Emit(step, std::move(event));
    }
    if (!check.satisfied) {
      holding.push_back(
          absl::StrCat("gate ", GateName(gate.kind()), ": ", check.detail));
    }
  }
  if (holding.empty()) return true;
  SetState(step, v1::ROLLOUT_STATE_WAITING_FOR_GATE,
           absl::StrJoin(holding, "; "));
  return false;
}

void Engine::StartWave(Step& step, int wave) {
  // current_wave, wave_start_time and resume_time change with the event.
  const v1::Rollout& rollout = state_.rollout;
  v1::RolloutEvent event;
  event.mutable_wave()->set_wave(wave);
  event.mutable_wave()->set_started(true);
  for (int i : Wave(wave).members) {
    ++targets_examined_;
    const v1::RolloutTarget& target = rollout.targets(i);
    event.mutable_wave()->add_database_ids(target.database_id());
    // An offline agent is waited for from the start of its wave on (it may
    // have gone away long before).
    if (target.has_offline_since_time() &&
        target.state() == v1::TARGET_STATE_PENDING) {
      *Target(step, i).mutable_offline_since_time() = ToProto(step.now);
    }
  }
  Emit(step, std::move(event));
}

void Engine::StartTarget(Step& step, int index) {
  const std::vector<std::string> units = action_->Units(state_.rollout);
  v1::RolloutTarget& target = Target(step, index);
  target.set_phase(units.empty() ? "" : units.front());
  target.set_step("");
  // Touched units are the ones where this rollout changed something: a
  // rollback must not revert what earlier operations did.
  target.clear_touched_phases();
  target.set_attempt(target.attempt() + 1);
  AssignCommand(step, index, "run");
  // started_time with the event.
  SetTargetState(step, index, v1::TARGET_STATE_RUNNING);
  SendCurrentCommand(step, index);
}

void Engine::BeginTargetRollback(Step& step, int index) {
  const UndoStart start =
      action_->StartUndo(state_.rollout, state_.rollout.targets(index));
  if (start.nothing_to_undo) return;
  v1::RolloutTarget& target = Target(step, index);
  target.set_step("");
  target.set_revert_attempt(target.revert_attempt() + 1);
  if (!start.refused.empty()) {
    SetTargetState(step, index, v1::TARGET_STATE_FAILED, start.refused);
    return;
  }
  target.set_phase(start.unit);
  AssignCommand(step, index, start.verb);
  SetTargetState(step, index, v1::TARGET_STATE_ROLLING_BACK);
  SendCurrentCommand(step, index);
}

void Engine::BeginRollback(Step& step, const std::string& why) {
  state_.rollback_pending = false;
  step.out.header_changed = true;
  v1::Rollout& rollout = state_.rollout;
  SetState(step, v1::ROLLOUT_STATE_ROLLING_BACK,
           !why.empty() ? why
           : rollout.rollback_restore()
               ? "restoring each changed database's pre-rollout backup"
           : rollout.rollback_phase().empty()
               ? action_->RollbackReason()
               : absl::StrCat("reverting phase ", rollout.rollback_phase()));
  for (int i = 0; i < rollout.targets_size(); ++i) {
    ++targets_examined_;
    if (rollout.rollback_wave() != 0 &&
        rollout.targets(i).wave() != rollout.rollback_wave()) {
      continue;
    }
    // Targets with nothing left in scope (never started, or already
    // reverted) are left alone.
    BeginTargetRollback(step, i);
  }
}

void Engine::FinishRollout(Step& step) {
  v1::Rollout& rollout = state_.rollout;
  if (rollout.failures() <= rollout.failure_budget()) {
    SetState(step, v1::ROLLOUT_STATE_SUCCEEDED,
             rollout.failures() == 0
                 ? action_->SucceededReason()
                 : absl::StrCat(rollout.failures(),
                                " failures, within the budget of ",
                                rollout.failure_budget()));
    return;
  }
  if (rollout.strategy().auto_rollback() == v1::AUTO_ROLLBACK_ROLLOUT) {
    BeginRollback(step);
    return;
  }
  SetState(
      step, v1::ROLLOUT_STATE_FAILED,
      absl::StrCat(rollout.failures(), " failures exceed the budget of ",
                   rollout.failure_budget(), "; no further wave was started"));
}

void Engine::Advance(Step& step) {
  v1::Rollout& rollout = state_.rollout;
  const absl::Time now = step.now;
  // Nothing moves before Start.
  if (rollout.state() == v1::ROLLOUT_STATE_PENDING &&
      rollout.last_event_sequence() == 0) {
    return;
  }

  if (rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK) {
    const bool busy = BusyTargets() > 0;
    const bool failed = reverts_failed_ > 0;
    if (!busy) {
      SetState(
          step,
          failed ? v1::ROLLOUT_STATE_FAILED : v1::ROLLOUT_STATE_ROLLED_BACK,
          failed ? "the rollback failed on some databases; see their errors"
                 : "what the rollout applied was reverted");
    }
    return;
  }
  if (state_.rollback_pending) {
    if (BusyTargets() == 0) BeginRollback(step);
    return;
  }
  if (rollout.state() == v1::ROLLOUT_STATE_PENDING ||
      rollout.state() == v1::ROLLOUT_STATE_WAITING_FOR_GATE) {
    if (!EvaluateGates(step)) return;
    SetState(step, v1::ROLLOUT_STATE_RUNNING, "every gate holds");
  }
  if (rollout.state() != v1::ROLLOUT_STATE_RUNNING) return;

  // Offline deadlines apply to targets waiting for their agent, pending or
  // mid-command.
  const absl::Duration deadline =
      rollout.strategy().has_offline_deadline() &&
              FromProto(rollout.strategy().offline_deadline()) >
                  absl::ZeroDuration()
          ? FromProto(rollout.strategy().offline_deadline())
          : kDefaultOfflineDeadline;
  // The clocks that ran out, in the order of the targets.
  Sync();
  std::vector<int> expired;
  for (const auto& [since, index] : offline_clocks_) {
    if (now - since < deadline) break;
    expired.push_back(index);
  }
  std::sort(expired.begin(), expired.end());
  for (int i : expired) {
    ++targets_examined_;
    const v1::RolloutTarget& target = rollout.targets(i);
    if (target.state() == v1::TARGET_STATE_RUNNING) {
      SetTargetState(
          step, i, v1::TARGET_STATE_UNKNOWN,
          absl::StrCat("the agent went away during ", action_->UnitNoun(), " ",
                       target.phase(),
                       "; its outcome is unknown (retry settles it from the "
                       "history table)"),
          /*counts_against_budget=*/true);
    } else if (target.state() == v1::TARGET_STATE_PENDING &&
               target.wave() == rollout.current_wave()) {
      const std::string why = absl::StrCat("agent offline for more than ",
                                           absl::FormatDuration(deadline));
      if (rollout.strategy().offline_policy() == v1::OFFLINE_POLICY_SKIP) {
        SetTargetState(step, i, v1::TARGET_STATE_SKIPPED, why);
      } else {
        SetTargetState(step, i, v1::TARGET_STATE_FAILED, why,
                       /*counts_against_budget=*/true);
      }
    }
    Target(step, i).clear_offline_since_time();
  }

  const bool over_budget = rollout.failures() > rollout.failure_budget();
  if (rollout.current_wave() == 0) {
    for (const v1::GateStatus& gate : rollout.gates()) {
      if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW &&
          !EvaluateGates(step))
        return;
    }
    StartWave(step, 1);
  }
  const int wave = rollout.current_wave();
  Sync();
  int running = Wave(wave).busy;
  bool wave_done =
      Wave(wave).final == static_cast<int>(Wave(wave).members.size());
  if (!over_budget) {
    const int max_parallel = rollout.strategy().max_parallel();
    // The wave's pending targets in order, until the slots are taken: those
    // whose agent is there start, the others' offline clock starts (pending
    // targets whose clock runs already have nothing to do here).
    while (!(max_parallel > 0 && running >= max_parallel)) {
      Sync();
      const WaveIndex& pending = Wave(wave);
      if (pending.startable.empty() && pending.unclocked.empty()) break;
      const int i = pending.unclocked.empty() ? *pending.startable.begin()
                    : pending.startable.empty()
                        ? *pending.unclocked.begin()
                        : std::min(*pending.startable.begin(),
                                   *pending.unclocked.begin());
      ++targets_examined_;
      const v1::RolloutTarget& target = rollout.targets(i);
      if (!IsConnected(target.database_id())) {
        if (!target.has_offline_since_time())
          *Target(step, i).mutable_offline_since_time() = ToProto(now);
        continue;
      }
      if (target.has_offline_since_time())
        Target(step, i).clear_offline_since_time();
      StartTarget(step, i);
      ++running;
      wave_done = false;
    }
  } else if (running == 0) {
    // Over budget: the rest of the rollout is not started.
    for (int i = 0; i < rollout.targets_size(); ++i) {
      ++targets_examined_;
      if (rollout.targets(i).state() == v1::TARGET_STATE_PENDING) {
        SetTargetState(step, i, v1::TARGET_STATE_SKIPPED,
                       "not started: the failure budget was exceeded");
      }
    }
    FinishRollout(step);
    return;
  }
  if (!wave_done || running > 0) return;

  // Advance comes here again on every tick of a timed pause: the wave's end
  // is told once.
  if (wave > state_.waves_ended) {
    state_.waves_ended = wave;
    v1::RolloutEvent ended;
    ended.mutable_wave()->set_wave(wave);
    ended.mutable_wave()->set_started(false);
    Emit(step, std::move(ended));
  }
  if (wave >= rollout.wave_count()) {
    FinishRollout(step);
    return;
  }
  if (rollout.strategy().has_success_gate() && !SuccessGateHolds(step, wave))
    return;
  if (rollout.strategy().approval_required()) {
    SetState(step, v1::ROLLOUT_STATE_PAUSED,
             absl::StrCat("wave ", wave, " of ", rollout.wave_count(),
                          " finished; approve the next wave with `ecliptixctl "
                          "rollout resume ",
                          rollout.rollout_id(), "`"));
    return;
  }
  const absl::Duration pause =
      FromProto(rollout.strategy().pause_between_waves());
  if (pause > absl::ZeroDuration()) {
    if (!rollout.has_resume_time()) {
      *rollout.mutable_resume_time() = ToProto(now + pause);
      SetState(step, v1::ROLLOUT_STATE_RUNNING,
               absl::StrCat("wave ", wave, " finished; wave ", wave + 1,
                            " starts at ",
                            absl::FormatTime("%H:%M:%S UTC", now + pause,
                                             absl::UTCTimeZone())));
      return;
    }
    if (now < FromProto(rollout.resume_time())) return;
  }
  for (const v1::GateStatus& gate : rollout.gates()) {
    if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW && !EvaluateGates(step))
      return;
  }
  SetState(step, v1::ROLLOUT_STATE_RUNNING, "");
  StartWave(step, wave + 1);
  Advance(step);
}

bool Engine::SuccessGateHolds(Step& step, int wave) {
  v1::Rollout& rollout = state_.rollout;
  v1::SuccessGateStatus& status = *rollout.mutable_success_gate_status();
  const absl::Time now = step.now;
  // A new wave, or a retry after the gate halted the rollout: soak again.
  if (status.wave() != wave || (status.judged() && !status.passed())) {
    absl::Duration soak = FromProto(rollout.strategy().success_gate().soak());
    if (soak <= absl::ZeroDuration()) soak = kDefaultSoak;
    status.Clear();
    status.set_wave(wave);
    *status.mutable_soak_start_time() = ToProto(now);
    *status.mutable_soak_end_time() = ToProto(now + soak);
    // Shown like a timed pause: the rollout runs, waiting for a time.
    *rollout.mutable_resume_time() = ToProto(now + soak);
    step.out.header_changed = true;
    SetState(step, v1::ROLLOUT_STATE_RUNNING,
             absl::StrCat("wave ", wave,
                          " finished; success gate: watching "
                          "its databases until ",
                          absl::FormatTime("%H:%M:%S UTC", now + soak,
                                           absl::UTCTimeZone())));
    return false;
  }
  if (status.judged()) return true;
  const absl::Time soak_start = FromProto(status.soak_start_time());
  const absl::Time soak_end = FromProto(status.soak_end_time());
  if (now < soak_end) return false;

  // The databases the wave changed, and those no wave changed yet.
  std::set<std::string> changed;
  std::set<std::string> unchanged;
  for (int i : Wave(wave).members) {
    ++targets_examined_;
    const v1::RolloutTarget& target = rollout.targets(i);
    if (target.state() == v1::TARGET_STATE_SUCCEEDED &&
        target.touched_phases_size() > 0) {
      changed.insert(target.database_id());
    }
  }
  for (int later = wave + 1; later <= rollout.wave_count(); ++later) {
    for (int i : Wave(later).members) {
      ++targets_examined_;
      if (rollout.targets(i).state() == v1::TARGET_STATE_PENDING)
        unchanged.insert(rollout.targets(i).database_id());
    }
  }
  SuccessVerdict verdict;
  if (changed.empty()) {
    verdict.detail = absl::StrCat("success gate: wave ", wave,
                                  " changed no database; nothing to compare");
  } else if (evidence_ == nullptr) {
    verdict.detail = "success gate: no metrics on this server; not compared";
  } else {
    absl::Duration baseline =
        FromProto(rollout.strategy().success_gate().baseline());
    if (baseline <= absl::ZeroDuration()) baseline = kDefaultBaseline;
    const absl::Time created = FromProto(rollout.create_time());
    absl::StatusOr<SuccessFigures> after =
        evidence_->Figures(changed, soak_start, soak_end);
    absl::StatusOr<SuccessFigures> before =
        after.ok() ? evidence_->Figures(changed, created - baseline, created)
                   : after.status();
    absl::StatusOr<SuccessFigures> others =
        before.ok() && !unchanged.empty()
            ? evidence_->Figures(unchanged, soak_start, soak_end)
            : before.status();
    if (!others.ok() && absl::IsUnimplemented(others.status())) {
      verdict.detail = absl::StrCat("success gate: ", others.status().message(),
                                    "; not compared");
    } else if (!others.ok()) {
      const std::string reason =
          absl::StrCat("wave ", wave,
                       " finished; success gate: the figures cannot be read (",
                       others.status().message(), "); trying again");
      SetState(step, v1::ROLLOUT_STATE_RUNNING, reason);
      return false;
    } else {
      verdict = JudgeSuccess(
          std::vector<std::string>(changed.begin(), changed.end()), *after,
          *before,
          unchanged.empty() ? std::nullopt
                            : std::optional<SuccessFigures>(*others));
    }
  }
  status.set_judged(true);
  status.set_passed(verdict.passed);
  status.set_detail(verdict.detail);
  step.out.header_changed = true;
  if (verdict.passed) {
    SetState(step, v1::ROLLOUT_STATE_RUNNING, verdict.detail);
    // A timed pause between waves starts now.
    rollout.clear_resume_time();
    return true;
  }
  // Halted: nothing more starts, as when the failure budget is exceeded.
  rollout.clear_resume_time();
  for (int i = 0; i < rollout.targets_size(); ++i) {
    ++targets_examined_;
    if (rollout.targets(i).state() == v1::TARGET_STATE_PENDING) {
      SetTargetState(step, i, v1::TARGET_STATE_SKIPPED,
                     "not started: the success gate halted the rollout");
    }
  }
  switch (rollout.strategy().auto_rollback()) {
    case v1::AUTO_ROLLBACK_ROLLOUT:
      BeginRollback(step, absl::StrCat(verdict.detail,
                                       "; reverting every database changed"));
      break;
    case v1::AUTO_ROLLBACK_FAILED_TARGETS:
      // The wave's databases are the ones that failed the comparison.
      rollout.set_rollback_wave(wave);
      BeginRollback(step,
                    absl::StrCat(verdict.detail, "; reverting wave ", wave));
      break;
    default:
      SetState(step, v1::ROLLOUT_STATE_FAILED, verdict.detail);
      break;
  }
  return false;
}

// ---- agents ----

Output Engine::OnAgentMessage(const std::string& database_id,
                              const v1::AgentMessage& message, absl::Time now) {
  Step step{now, {}};
  const std::string& command_id = message.has_command_ack()
                                      ? message.command_ack().command_id()
                                      : message.command_event().command_id();
  const int index = IndexOf(database_id);
  // A late or repeated message for a command that is no longer the target's
  // current one.
  if (index < 0 || command_id.empty() ||
      state_.rollout.targets(index).command_id() != command_id) {
    return Finish(step);
  }
  if (message.has_command_ack()) {
    if (message.command_ack().status().code() != 0) {
      OnCommandFinished(step, index,
                        FromProtoStatus(message.command_ack().status()));
      Advance(step);
    }
  } else if (message.command_event().has_finished()) {
    OnCommandFinished(step, index,
                      FromProtoStatus(message.command_event().finished()));
    Advance(step);
  } else if (message.has_command_event()) {
    // Progress frees no slot and ends no wave: nothing to advance (time-bound
    // changes come with the next Tick).
    std::optional<v1::RolloutEvent> event = action_->OnProgress(
        state_.rollout, Target(step, index), message.command_event());
    if (event) Emit(step, *std::move(event));
  }
  return Finish(step);
}

void Engine::OnCommandFinished(Step& step, int index,
                               const absl::Status& status) {
  v1::Rollout& rollout = state_.rollout;
  v1::RolloutTarget& target = Target(step, index);
  if (target.state() == v1::TARGET_STATE_ROLLING_BACK) {
    if (!status.ok()) {
      SetTargetState(step, index, v1::TARGET_STATE_FAILED,
                     action_->UndoFailure(rollout, target, status));
      return;
    }
    action_->OnUndone(rollout, target);
    const UndoStart next = action_->StartUndo(rollout, target);
    if (next.nothing_to_undo || !next.refused.empty()) {
      SetTargetState(step, index, v1::TARGET_STATE_ROLLED_BACK);
      return;
    }
    target.set_phase(next.unit);
    AssignCommand(step, index, next.verb);
    SendCurrentCommand(step, index);
    return;
  }
  if (target.state() != v1::TARGET_STATE_RUNNING) return;
  if (!status.ok()) {
    const bool cancelled = status.code() == absl::StatusCode::kCancelled;
    SetTargetState(step, index, v1::TARGET_STATE_FAILED,
                   absl::StrCat(cancelled ? "cancelled" : "failed", " in ",
                                action_->UnitNoun(), " ", target.phase(), ": ",
                                status.message()),
                   /*counts_against_budget=*/true);
    if (rollout.strategy().auto_rollback() ==
            v1::AUTO_ROLLBACK_FAILED_TARGETS &&
        rollout.state() != v1::ROLLOUT_STATE_ABORTED) {
      BeginTargetRollback(step, index);
    }
    return;
  }
  target.add_applied_phases(target.phase());
  const std::vector<std::string> units = action_->Units(rollout);
  auto it = std::find(units.begin(), units.end(), target.phase());
  const bool has_next = it != units.end() && std::next(it) != units.end();
  if (!has_next || rollout.state() == v1::ROLLOUT_STATE_ABORTED) {
    if (rollout.state() == v1::ROLLOUT_STATE_ABORTED && has_next) {
      SetTargetState(step, index, v1::TARGET_STATE_FAILED,
                     absl::StrCat("aborted after ", action_->UnitNoun(), " ",
                                  target.phase()));
    } else {
      SetTargetState(step, index, v1::TARGET_STATE_SUCCEEDED);
    }
    return;
  }
  target.set_phase(*std::next(it));
  target.set_step("");
  AssignCommand(step, index, "run");
  SendCurrentCommand(step, index);
}

Output Engine::OnConnection(const std::string& database_id, bool connected,
                            absl::Time now) {
  Step step{now, {}};
  if (connected) {
    connected_.insert(database_id);
  } else {
    connected_.erase(database_id);
  }
  const int index = IndexOf(database_id);
  if (index < 0) return Finish(step);
  // Whether it can start changed.
  Touch(index);
  const v1::RolloutTarget& target = state_.rollout.targets(index);
  if (!connected) {
    if ((IsTargetBusy(target.state()) ||
         target.state() == v1::TARGET_STATE_PENDING) &&
        !target.has_offline_since_time()) {
      *Target(step, index).mutable_offline_since_time() = ToProto(now);
    }
    return Finish(step);
  }
  if (target.has_offline_since_time())
    Target(step, index).clear_offline_since_time();
  // The same command id again: an agent that ran it answers with the outcome
  // it journaled; one that restarted runs it, and its history table skips
  // what is applied.
  if (IsTargetBusy(target.state()) && !target.command_id().empty())
    SendCurrentCommand(step, index);
  if (IsActive(state_.rollout.state())) Advance(step);
  return Finish(step);
}

Output Engine::Tick(absl::Time now) {
  Step step{now, {}};
  if (IsActive(state_.rollout.state())) Advance(step);
  return Finish(step);
}

Output Engine::Restarted(absl::Time now) {
  Step step{now, {}};
  connected_.clear();
  // Every agent is disconnected until it comes back to this server; each
  // gets the whole deadline from now.
  for (int i = 0; i < state_.rollout.targets_size(); ++i) {
    ++targets_examined_;
    const v1::TargetState state = state_.rollout.targets(i).state();
    if (IsTargetBusy(state) || state == v1::TARGET_STATE_PENDING)
      *Target(step, i).mutable_offline_since_time() = ToProto(now);
  }
  return Finish(step);
}

// ---- people's actions ----

Output Engine::Start(const std::string& actor, absl::Time now) {
  Step step{now, {}};
  if (state_.rollout.state() != v1::ROLLOUT_STATE_PENDING ||
      state_.rollout.last_event_sequence() != 0) {
    step.out.status = absl::FailedPreconditionError(absl::StrCat(
        "rollout ", state_.rollout.rollout_id(), " was started already"));
    return Finish(step);
  }
  v1::RolloutEvent created;
  created.mutable_state_changed()->set_state(v1::ROLLOUT_STATE_PENDING);
  created.mutable_state_changed()->set_reason("created");
  created.mutable_state_changed()->set_actor(actor);
  Emit(step, std::move(created));
  Advance(step);
  return Finish(step);
}

Output Engine::Pause(const v1::RolloutActionRequest& request, absl::Time now) {
  Step step{now, {}};
  const v1::RolloutState state = state_.rollout.state();
  if (state == v1::ROLLOUT_STATE_PAUSED) return Finish(step);
  if (state != v1::ROLLOUT_STATE_RUNNING &&
      state != v1::ROLLOUT_STATE_WAITING_FOR_GATE &&
      state != v1::ROLLOUT_STATE_PENDING) {
    step.out.status = absl::FailedPreconditionError(absl::StrCat(
        "rollout ", request.rollout_id(), " is ", RolloutStateName(state),
        "; only a pending, waiting or running rollout can be paused"));
    return Finish(step);
  }
  SetState(step, v1::ROLLOUT_STATE_PAUSED,
           absl::StrCat("paused",
                        request.reason().empty() ? "" : ": " + request.reason(),
                        "; running commands finish, nothing new starts"),
           request.actor());
  return Finish(step);
}

Output Engine::Resume(const v1::RolloutActionRequest& request, absl::Time now) {
  Step step{now, {}};
  v1::Rollout& rollout = state_.rollout;
  if (rollout.state() != v1::ROLLOUT_STATE_PAUSED) {
    step.out.status = absl::FailedPreconditionError(
        absl::StrCat("rollout ", request.rollout_id(), " is ",
                     RolloutStateName(rollout.state()), ", not paused"));
    return Finish(step);
  }
  rollout.clear_resume_time();
  SetState(
      step, v1::ROLLOUT_STATE_RUNNING,
      absl::StrCat("resumed",
                   request.reason().empty() ? "" : ": " + request.reason()),
      request.actor());
  rollout.set_waiting_reason("");
  // Resuming after a finished wave is the approval of the next one.
  Sync();
  const WaveIndex& current = Wave(rollout.current_wave());
  const bool wave_done =
      rollout.current_wave() > 0 &&
      current.final == static_cast<int>(current.members.size());
  if (wave_done && rollout.current_wave() < rollout.wave_count())
    StartWave(step, rollout.current_wave() + 1);
  Advance(step);
  return Finish(step);
}

Output Engine::Abort(const v1::RolloutActionRequest& request, absl::Time now) {
  Step step{now, {}};
  if (!IsActive(state_.rollout.state())) {
    step.out.status = absl::FailedPreconditionError(
        absl::StrCat("rollout ", request.rollout_id(), " already ended (",
                     RolloutStateName(state_.rollout.state()), ")"));
    return Finish(step);
  }
  SetState(
      step, v1::ROLLOUT_STATE_ABORTED,
      absl::StrCat("aborted",
                   request.reason().empty() ? "" : ": " + request.reason()),
      request.actor());
  StopTargets(step, "not started: aborted");
  return Finish(step);
}

void Engine::StopTargets(Step& step, const std::string& skip_reason) {
  for (int i = 0; i < state_.rollout.targets_size(); ++i) {
    ++targets_examined_;
    const v1::RolloutTarget& target = state_.rollout.targets(i);
    if (target.state() == v1::TARGET_STATE_PENDING) {
      SetTargetState(step, i, v1::TARGET_STATE_SKIPPED, skip_reason);
    } else if (target.state() == v1::TARGET_STATE_RUNNING &&
               !target.command_id().empty() &&
               IsConnected(target.database_id())) {
      // The agent rolls the running step back; the command then finishes
      // CANCELLED.
      v1::Command cancel;
      cancel.set_command_id(absl::StrCat(target.command_id(), "/cancel"));
      cancel.mutable_cancel()->set_command_id(target.command_id());
      step.out.commands.push_back({target.database_id(), std::move(cancel)});
    }
  }
}

Output Engine::Retry(const v1::RolloutActionRequest& request, absl::Time now) {
  Step step{now, {}};
  v1::Rollout& rollout = state_.rollout;
  if (BusyTargets() > 0 || rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK) {
    step.out.status = absl::FailedPreconditionError(
        absl::StrCat("rollout ", request.rollout_id(),
                     " still has running commands; wait for them (or pause "
                     "it) before retrying"));
    return Finish(step);
  }
  std::vector<int> retried;
  int first_wave = 0;
  for (int i = 0; i < rollout.targets_size(); ++i) {
    ++targets_examined_;
    const v1::RolloutTarget& target = rollout.targets(i);
    if (target.state() != v1::TARGET_STATE_FAILED &&
        target.state() != v1::TARGET_STATE_SKIPPED &&
        target.state() != v1::TARGET_STATE_UNKNOWN) {
      continue;
    }
    retried.push_back(i);
    first_wave =
        first_wave == 0 ? target.wave() : std::min(first_wave, target.wave());
  }
  if (retried.empty()) {
    step.out.status = absl::FailedPreconditionError(
        absl::StrCat("rollout ", request.rollout_id(),
                     " has no failed, skipped or unknown databases"));
    return Finish(step);
  }
  for (int i : retried) {
    SetTargetState(step, i, v1::TARGET_STATE_PENDING, "");
    Target(step, i).clear_finished_time();
  }
  rollout.set_failures(0);
  rollout.clear_finish_time();
  SetState(step, v1::ROLLOUT_STATE_RUNNING,
           absl::StrCat("retrying ", retried.size(), " databases"),
           request.actor());
  state_.waves_ended = first_wave - 1;
  StartWave(step, first_wave);
  Advance(step);
  return Finish(step);
}

Output Engine::Rollback(const v1::RollbackRolloutRequest& request,
                        absl::Time now) {
  Step step{now, {}};
  v1::Rollout& rollout = state_.rollout;
  if (rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK) return Finish(step);
  const std::vector<std::string> units = action_->Units(rollout);
  if (!request.phase().empty() &&
      std::find(units.begin(), units.end(), request.phase()) == units.end()) {
    step.out.status = absl::InvalidArgumentError(absl::StrCat(
        action_->UnitNoun(), " \"", request.phase(),
        "\" is not deployed by rollout ", rollout.rollout_id(), "; its ",
        action_->UnitNoun(), "s are ", absl::StrJoin(units, ", ")));
    return Finish(step);
  }
  if (request.wave() < 0 || request.wave() > rollout.wave_count()) {
    step.out.status = absl::InvalidArgumentError(
        absl::StrCat("wave ", request.wave(), " is out of range (1..",
                     rollout.wave_count(), ", or 0 for all)"));
    return Finish(step);
  }
  if (request.restore() && !request.phase().empty()) {
    step.out.status = absl::InvalidArgumentError(
        "restore puts whole databases back to their pre-rollout backup: it "
        "cannot be limited to a phase (leave phase empty, or roll back the "
        "phase without restore)");
    return Finish(step);
  }
  rollout.set_rollback_phase(request.phase());
  rollout.set_rollback_wave(request.wave());
  rollout.set_rollback_restore(request.restore());
  rollout.set_rollback_accept_data_loss(request.accept_data_loss());
  step.out.header_changed = true;
  // Running commands are cancelled first (their step rolls back); then
  // everything the rollout applied in scope is undone, last unit first.
  StopTargets(step, "not started: rolled back");
  state_.rollback_pending = true;
  // Paused (a finished rollout is reactivated) until the running commands
  // stop; Advance then starts the rollback.
  rollout.clear_finish_time();
  SetState(step, v1::ROLLOUT_STATE_PAUSED,
           "rollback requested: waiting for running commands to stop",
           request.actor());
  Advance(step);
  return Finish(step);
}

Output Engine::Attest(const v1::AttestGateRequest& request, absl::Time now) {
  Step step{now, {}};
  v1::GateStatus* gate = nullptr;
  for (v1::GateStatus& candidate : *state_.rollout.mutable_gates()) {
    if (candidate.kind() == request.gate()) gate = &candidate;
  }
  if (gate == nullptr) {
    step.out.status = absl::FailedPreconditionError(
        absl::StrCat("rollout ", request.rollout_id(), " has no ",
                     GateName(request.gate()), " gate"));
    return Finish(step);
  }
  if (request.gate() == v1::GATE_KIND_STAGING_TESTED ||
      request.gate() == v1::GATE_KIND_MAINTENANCE_WINDOW) {
    step.out.status = absl::FailedPreconditionError(absl::StrCat(
        "the ", GateName(request.gate()),
        " gate is decided by evidence, not attestation: see its detail in "
        "`ecliptixctl rollout get ",
        request.rollout_id(), "`"));
    return Finish(step);
  }
  gate->set_attested_by(request.attested_by());
  *gate->mutable_attested_time() = ToProto(now);
  gate->set_comment(request.comment());
  v1::RolloutEvent event;
  *event.mutable_gate() = *gate;
  Emit(step, std::move(event));
  Advance(step);
  return Finish(step);
}

}  // namespace ecliptix::server::operations
