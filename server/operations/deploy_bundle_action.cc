#include "server/operations/deploy_bundle_action.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server::operations {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// The last touched phase in the rollback's scope (rollback_phase, or any).
std::string LastTouchedInScope(const v1::Rollout& rollout,
                               const v1::RolloutTarget& target) {
  const std::string& only = rollout.rollback_phase();
  for (auto it = target.touched_phases().rbegin();
       it != target.touched_phases().rend(); ++it) {
    if (only.empty() || *it == only) return *it;
  }
  return "";
}

}  // namespace

DeployBundleAction::DeployBundleAction(v1::BundleManifest manifest)
    : manifest_(std::move(manifest)) {}

std::vector<std::string> DeployBundleAction::Units(
    const v1::Rollout& rollout) const {
  return {rollout.phases().begin(), rollout.phases().end()};
}

v1::Command DeployBundleAction::RunCommand(
    const v1::Rollout& rollout, const v1::RolloutTarget& target) const {
  v1::Command command;
  v1::RunPhaseCommand* run = command.mutable_run_phase();
  run->set_bundle_id(rollout.bundle_id());
  run->set_phase(target.phase());
  // One backup per database, before the first step that runs (the agent
  // takes none when a phase has nothing pending).
  run->set_backup_first(rollout.strategy().backup_first() &&
                        target.backup_id().empty());
  run->set_adopt(rollout.strategy().adopt());
  return command;
}

std::optional<v1::RolloutEvent> DeployBundleAction::OnProgress(
    const v1::Rollout& rollout, v1::RolloutTarget& target,
    const v1::CommandEvent& event) const {
  if (!event.has_deployment()) return std::nullopt;
  // The step, its counters, touched phases and the backup id change as the
  // engine applies the published event (ApplyRolloutEvent).
  const v1::DeploymentEvent& deployment = event.deployment();
  v1::RolloutEvent published;
  published.mutable_deployment()->set_database_id(target.database_id());
  *published.mutable_deployment()->mutable_event() = deployment;
  return published;
}

UndoStart DeployBundleAction::StartUndo(const v1::Rollout& rollout,
                                        const v1::RolloutTarget& target) const {
  UndoStart start;
  if (rollout.rollback_restore()) {
    // The runbook's emergency rollback: the whole database goes back to the
    // backup taken before this rollout's first step ran on it.
    if (target.touched_phases().empty()) {
      start.nothing_to_undo = true;
      return start;
    }
    if (target.backup_id().empty()) {
      start.refused =
          "rollback failed: the rollout took no backup of this database "
          "(strategy.backup_first was off), so there is none to restore; roll "
          "back without restore to run the revert scripts";
      return start;
    }
    start.verb = "restore";
    start.unit = target.phase();
    return start;
  }
  start.unit = LastTouchedInScope(rollout, target);
  start.nothing_to_undo = start.unit.empty();
  start.verb = "revert";
  return start;
}

v1::Command DeployBundleAction::UndoCommand(
    const v1::Rollout& rollout, const v1::RolloutTarget& target) const {
  v1::Command command;
  if (rollout.rollback_restore()) {
    command.mutable_restore()->set_backup_id(target.backup_id());
    return command;
  }
  v1::RevertPhaseCommand* revert = command.mutable_revert_phase();
  revert->set_bundle_id(rollout.bundle_id());
  revert->set_phase(target.phase());
  revert->set_only_this_bundle(true);
  revert->set_accept_data_loss(rollout.rollback_accept_data_loss());
  return command;
}

void DeployBundleAction::OnUndone(const v1::Rollout& rollout,
                                  v1::RolloutTarget& target) const {
  if (rollout.rollback_restore()) {
    // Everything the rollout did here is gone with the restore.
    target.clear_touched_phases();
    target.clear_applied_phases();
    return;
  }
  // The phase is undone: it leaves what the rollout applied here.
  auto remove = [&](google::protobuf::RepeatedPtrField<std::string>* phases) {
    phases->erase(std::remove(phases->begin(), phases->end(), target.phase()),
                  phases->end());
  };
  remove(target.mutable_touched_phases());
  remove(target.mutable_applied_phases());
}

std::string DeployBundleAction::UndoFailure(const v1::Rollout& rollout,
                                            const v1::RolloutTarget& target,
                                            const absl::Status& status) const {
  if (rollout.rollback_restore()) {
    return absl::StrCat("rollback failed: restoring backup ",
                        target.backup_id(), ": ", status.message());
  }
  return absl::StrCat("rollback failed in phase ", target.phase(), ": ",
                      status.message());
}

std::optional<GateCheck> DeployBundleAction::CheckGate(
    const v1::Rollout& rollout, const v1::GateStatus& gate) const {
  const bool attested = !gate.attested_by().empty();
  GateCheck check;
  switch (gate.kind()) {
    case v1::GATE_KIND_BACKUP_COMPLETED:
      // Evidence (backup_first), or a named person's word for backups taken
      // with the engine's own tools (ODBC targets are refused backup_first).
      check.satisfied = rollout.strategy().backup_first() || attested;
      check.detail =
          rollout.strategy().backup_first()
              ? "each database takes a backup before its first step"
          : attested
              ? absl::StrCat("attested by ", gate.attested_by())
              : absl::StrCat(
                    "no backup yet: set backup_first (--backup); for backups "
                    "taken with the engine's own tools, a named person "
                    "attests the gate (`ecliptixctl rollout attest ",
                    rollout.rollout_id(), " backup-completed --by=NAME`)");
      return check;
    case v1::GATE_KIND_ROLLBACK_PLAN: {
      std::vector<std::string> phases(rollout.phases().begin(),
                                      rollout.phases().end());
      std::vector<std::string> missing = StepsWithoutRevert(manifest_, phases);
      check.satisfied = missing.empty() || attested;
      check.detail = missing.empty()
                         ? "every step has a revert script"
                         : absl::StrCat("steps without revert script: ",
                                        absl::StrJoin(missing, ", "),
                                        attested ? " (plan attested)"
                                                 : "; attest the plan");
      return check;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace ecliptix::server::operations
