#include "common/rollout_events.h"

#include <algorithm>

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

v1::RolloutTarget& Find(v1::Rollout& rollout, const std::string& database_id,
                        const RolloutTargetLookup& lookup) {
  if (lookup) {
    if (v1::RolloutTarget* target = lookup(database_id)) return *target;
  }
  return FindOrAddTarget(&rollout, database_id);
}

void ApplyStateChanged(const v1::RolloutEvent& event, v1::Rollout& rollout) {
  const v1::RolloutStateChanged& changed = event.state_changed();
  const v1::RolloutState before = rollout.state();
  const v1::RolloutState state = changed.state();
  rollout.set_state(state);
  rollout.set_waiting_reason(
      ShownWaitingReason(rollout, state, changed.reason()));
  if (!IsActiveRolloutState(state)) {
    if (event.has_event_time()) {
      *rollout.mutable_finish_time() = event.event_time();
    }
  } else if (!IsActiveRolloutState(before) &&
             before != v1::ROLLOUT_STATE_UNSPECIFIED) {
    rollout.clear_finish_time();
  }
}

void ApplyWave(const v1::RolloutEvent& event, v1::Rollout& rollout,
               const RolloutTargetLookup& lookup) {
  const v1::WaveEvent& wave = event.wave();
  rollout.set_wave_count(std::max(rollout.wave_count(), wave.wave()));
  for (const std::string& id : wave.database_ids()) {
    Find(rollout, id, lookup).set_wave(wave.wave());
  }
  if (!wave.started()) return;
  rollout.set_current_wave(wave.wave());
  if (event.has_event_time()) {
    *rollout.mutable_wave_start_time() = event.event_time();
  }
  rollout.clear_resume_time();
}

void ApplyTarget(const v1::RolloutEvent& event, v1::Rollout& rollout,
                 const RolloutTargetLookup& lookup) {
  const v1::TargetStateChanged& changed = event.target();
  v1::RolloutTarget& target = Find(rollout, changed.database_id(), lookup);
  const v1::TargetState before = target.state();
  const v1::TargetState state = changed.state();
  target.set_state(state);
  target.set_error(changed.error());
  if (changed.wave() > 0) {
    target.set_wave(changed.wave());
    rollout.set_wave_count(std::max(rollout.wave_count(), changed.wave()));
  }
  if (state == v1::TARGET_STATE_RUNNING && before != v1::TARGET_STATE_RUNNING) {
    if (event.has_event_time()) {
      *target.mutable_started_time() = event.event_time();
    }
    target.clear_finished_time();
  } else if (IsFinalTargetState(state)) {
    if (event.has_event_time()) {
      *target.mutable_finished_time() = event.event_time();
    }
    target.clear_command_id();
  } else if (state == v1::TARGET_STATE_PENDING) {
    // Only a retry puts a target back to pending: the budget starts anew.
    target.clear_finished_time();
    rollout.set_failures(0);
  }
  if (changed.counts_against_budget()) {
    rollout.set_failures(rollout.failures() + 1);
  }
}

void ApplyDeployment(const v1::RolloutEvent& event, v1::Rollout& rollout,
                     const RolloutTargetLookup& lookup) {
  const v1::DeploymentEvent& deployment = event.deployment().event();
  v1::RolloutTarget& target =
      Find(rollout, event.deployment().database_id(), lookup);
  if (!deployment.step().empty()) target.set_step(deployment.step());
  if (deployment.has_step_finished() &&
      target.state() == v1::TARGET_STATE_RUNNING) {
    switch (deployment.step_finished().outcome()) {
      case v1::STEP_OUTCOME_APPLIED:
        // Touched phases are the ones where this rollout applied a step: a
        // rollback must not revert what earlier rollouts applied.
        if (std::find(target.touched_phases().begin(),
                      target.touched_phases().end(),
                      target.phase()) == target.touched_phases().end()) {
          target.add_touched_phases(target.phase());
        }
        target.set_steps_applied(target.steps_applied() + 1);
        break;
      case v1::STEP_OUTCOME_SKIPPED:
        target.set_steps_skipped(target.steps_skipped() + 1);
        break;
      default:
        break;
    }
  }
  if (deployment.has_backup_completed()) {
    target.set_backup_id(deployment.backup_completed().backup_id());
  }
}

void ApplyOperationBatch(const v1::RolloutEvent& event, v1::Rollout& rollout,
                         const RolloutTargetLookup& lookup) {
  const v1::OperationBatch& batch = event.operation_batch().batch();
  v1::RolloutTarget& target =
      Find(rollout, event.operation_batch().database_id(), lookup);
  target.set_batches(batch.batch());
  target.set_rows_done(batch.rows_done_total());
  target.set_rows_left(batch.rows_left());
}

void ApplyConfigValue(const v1::RolloutEvent& event, v1::Rollout& rollout,
                      const RolloutTargetLookup& lookup) {
  // Only a change records what it replaced (what its rollback stores again);
  // the first report of a key wins, the one a rollback sends does not count.
  if (!rollout.operation().has_config_change()) return;
  const v1::ConfigValueReport& value = event.config_value().value();
  v1::RolloutTarget& target =
      Find(rollout, event.config_value().database_id(), lookup);
  if (target.state() != v1::TARGET_STATE_RUNNING) return;
  if (value.previous_missing()) {
    target.add_config_missing_before(value.key());
  } else if (target.config_previous().count(value.key()) == 0) {
    (*target.mutable_config_previous())[value.key()] = value.previous_value();
  }
  if ((value.previous_missing() || value.previous_value() != value.value()) &&
      std::find(target.touched_phases().begin(), target.touched_phases().end(),
                target.phase()) == target.touched_phases().end()) {
    target.add_touched_phases(target.phase());
  }
}

void ApplyQueryRows(const v1::RolloutEvent& event, v1::Rollout& rollout,
                    const RolloutTargetLookup& lookup) {
  v1::RolloutTarget& target =
      Find(rollout, event.query_rows().database_id(), lookup);
  target.set_rows_returned(target.rows_returned() +
                           event.query_rows().rows().rows_size());
}

void ApplyGate(const v1::RolloutEvent& event, v1::Rollout& rollout) {
  for (v1::GateStatus& existing : *rollout.mutable_gates()) {
    if (existing.kind() == event.gate().kind()) {
      existing = event.gate();
      return;
    }
  }
  *rollout.add_gates() = event.gate();
}

}  // namespace

std::string ShownWaitingReason(const v1::Rollout& rollout,
                               v1::RolloutState state,
                               const std::string& reason) {
  // waiting_reason says what holds a rollout (a gate, a pause, the time the
  // next wave starts) or why it ended; a rollout pending or simply running
  // shows none.
  const bool shows_none =
      state == v1::ROLLOUT_STATE_PENDING ||
      (state == v1::ROLLOUT_STATE_RUNNING && !rollout.has_resume_time());
  return shows_none ? "" : reason;
}

bool IsActiveRolloutState(v1::RolloutState state) {
  switch (state) {
    case v1::ROLLOUT_STATE_PENDING:
    case v1::ROLLOUT_STATE_WAITING_FOR_GATE:
    case v1::ROLLOUT_STATE_RUNNING:
    case v1::ROLLOUT_STATE_PAUSED:
    case v1::ROLLOUT_STATE_ROLLING_BACK:
      return true;
    default:
      return false;
  }
}

bool IsFinalTargetState(v1::TargetState state) {
  switch (state) {
    case v1::TARGET_STATE_SUCCEEDED:
    case v1::TARGET_STATE_FAILED:
    case v1::TARGET_STATE_SKIPPED:
    case v1::TARGET_STATE_ROLLED_BACK:
    case v1::TARGET_STATE_UNKNOWN:
      return true;
    default:
      return false;
  }
}

v1::RolloutTarget& FindOrAddTarget(v1::Rollout* rollout,
                                   const std::string& database_id) {
  for (v1::RolloutTarget& target : *rollout->mutable_targets()) {
    if (target.database_id() == database_id) return target;
  }
  v1::RolloutTarget* target = rollout->add_targets();
  target->set_database_id(database_id);
  target->set_state(v1::TARGET_STATE_PENDING);
  return *target;
}

void ApplyRolloutEvent(const v1::RolloutEvent& event, v1::Rollout* rollout) {
  ApplyRolloutEvent(event, rollout, nullptr);
}

void ApplyRolloutEvent(const v1::RolloutEvent& event, v1::Rollout* rollout,
                       const RolloutTargetLookup& lookup) {
  switch (event.kind_case()) {
    case v1::RolloutEvent::kSnapshot:
      *rollout = event.snapshot();
      break;
    case v1::RolloutEvent::kStateChanged:
      ApplyStateChanged(event, *rollout);
      break;
    case v1::RolloutEvent::kWave:
      ApplyWave(event, *rollout, lookup);
      break;
    case v1::RolloutEvent::kTarget:
      ApplyTarget(event, *rollout, lookup);
      break;
    case v1::RolloutEvent::kDeployment:
      ApplyDeployment(event, *rollout, lookup);
      break;
    case v1::RolloutEvent::kGate:
      ApplyGate(event, *rollout);
      break;
    case v1::RolloutEvent::kOperationBatch:
      ApplyOperationBatch(event, *rollout, lookup);
      break;
    case v1::RolloutEvent::kConfigValue:
      ApplyConfigValue(event, *rollout, lookup);
      break;
    case v1::RolloutEvent::kQueryRows:
      ApplyQueryRows(event, *rollout, lookup);
      break;
    default:
      break;
  }
  rollout->set_last_event_sequence(
      std::max(rollout->last_event_sequence(), event.sequence()));
}

}  // namespace ecliptix
