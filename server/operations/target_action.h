// The per-target work of a fleet operation: what the engine sends one database
// for its next unit of work, how it reads the agent's answers, and how that
// work is undone. The engine (server/operations/engine.h) owns everything
// around it: waves, parallelism, the failure budget, gates, pause / resume /
// abort / retry / rollback, command ids and resumption after a restart.
//
// A unit of work is named by a string (a bundle phase for deployments) and
// kept in RolloutTarget.phase while it runs; RolloutTarget.applied_phases
// lists the units finished, RolloutTarget.touched_phases the units that
// changed something here (what an undo reverts, last first). Actions are
// stateless: everything they need is in the saved Rollout and its targets, so
// an engine reloaded after a restart behaves the same.
#ifndef ECLIPTIX_SERVER_OPERATIONS_TARGET_ACTION_H_
#define ECLIPTIX_SERVER_OPERATIONS_TARGET_ACTION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"

namespace ecliptix::server::operations {

// Whether a gate holds, and why (or what it waits for), for people.
struct GateCheck {
  bool satisfied = false;
  std::string detail;
};

// How a target's undo starts.
struct UndoStart {
  // Nothing in scope to undo here (never changed anything, or already
  // undone): the target is left as it is.
  bool nothing_to_undo = false;
  // The undo cannot run at all; the target fails with this message (which
  // starts with "rollback failed").
  std::string refused;
  // Part of the command id: "revert", "restore", ...
  std::string verb;
  // The unit undone first (RolloutTarget.phase while undoing).
  std::string unit;
};

class TargetAction {
 public:
  virtual ~TargetAction() = default;

  // What a unit is called in messages for people ("phase").
  virtual std::string UnitNoun() const = 0;

  // Why a rollout without failures succeeded, for people.
  virtual std::string SucceededReason() const {
    return "every database applied the bundle";
  }
  // What a whole rollback does, for people.
  virtual std::string RollbackReason() const {
    return "reverting every phase applied, last first";
  }

  // The units every target runs, in order. Never empty.
  virtual std::vector<std::string> Units(
      const fleet::v1::Rollout& rollout) const = 0;

  // The command that runs unit `target.phase()` on the target. The engine sets
  // the command id.
  virtual fleet::v1::Command RunCommand(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::RolloutTarget& target) const = 0;

  // Progress from the agent for the target's current command (running or
  // undoing). Returns the event to publish, if any: the engine numbers it and
  // applies it (ApplyRolloutEvent: steps, touched units, backups); what the
  // event does not carry may be recorded on the target here.
  virtual std::optional<fleet::v1::RolloutEvent> OnProgress(
      const fleet::v1::Rollout& rollout, fleet::v1::RolloutTarget& target,
      const fleet::v1::CommandEvent& event) const = 0;

  // How the undo of this target starts, for the rollback scope saved on the
  // rollout (rollback_phase, rollback_restore, ...).
  virtual UndoStart StartUndo(const fleet::v1::Rollout& rollout,
                              const fleet::v1::RolloutTarget& target) const = 0;

  // The command that undoes unit `target.phase()`. The engine sets the id.
  virtual fleet::v1::Command UndoCommand(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::RolloutTarget& target) const = 0;

  // The undo of `target.phase()` succeeded: forgets what it undid on the
  // target. The engine then asks StartUndo again for what is left in scope.
  virtual void OnUndone(const fleet::v1::Rollout& rollout,
                        fleet::v1::RolloutTarget& target) const = 0;

  // The target's error when its undo failed; starts with "rollback failed".
  virtual std::string UndoFailure(const fleet::v1::Rollout& rollout,
                                  const fleet::v1::RolloutTarget& target,
                                  const absl::Status& status) const = 0;

  // Evidence for a gate that depends on the action (e.g. a backup taken, a
  // revert script for every step); nullopt for gates it knows nothing of.
  virtual std::optional<GateCheck> CheckGate(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::GateStatus& gate) const = 0;
};

}  // namespace ecliptix::server::operations

#endif  // ECLIPTIX_SERVER_OPERATIONS_TARGET_ACTION_H_
