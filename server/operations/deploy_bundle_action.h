// Deploying a bundle, the first TargetAction: each target runs the rollout's
// phases in order (RunPhaseCommand), takes one backup before its first step
// when strategy.backup_first is set, adopts objects already present when
// strategy.adopt is set, and is undone either by reverting, last first, the
// phases where this rollout applied a step (only this bundle's steps, with
// accept_data_loss as a person chose) or by restoring its pre-rollout backup.
#ifndef ECLIPTIX_SERVER_OPERATIONS_DEPLOY_BUNDLE_ACTION_H_
#define ECLIPTIX_SERVER_OPERATIONS_DEPLOY_BUNDLE_ACTION_H_

#include <optional>
#include <string>
#include <vector>

#include "ecliptix/fleet/v1/bundle.pb.h"
#include "server/operations/target_action.h"

namespace ecliptix::server::operations {

class DeployBundleAction : public TargetAction {
 public:
  // `manifest` is the rollout's bundle (for the rollback-plan gate); an empty
  // manifest (bundle no longer in the catalog) leaves that gate to a person.
  explicit DeployBundleAction(fleet::v1::BundleManifest manifest);

  std::string UnitNoun() const override { return "phase"; }
  std::vector<std::string> Units(
      const fleet::v1::Rollout& rollout) const override;
  fleet::v1::Command RunCommand(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::RolloutTarget& target) const override;
  std::optional<fleet::v1::RolloutEvent> OnProgress(
      const fleet::v1::Rollout& rollout, fleet::v1::RolloutTarget& target,
      const fleet::v1::CommandEvent& event) const override;
  UndoStart StartUndo(const fleet::v1::Rollout& rollout,
                      const fleet::v1::RolloutTarget& target) const override;
  fleet::v1::Command UndoCommand(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::RolloutTarget& target) const override;
  void OnUndone(const fleet::v1::Rollout& rollout,
                fleet::v1::RolloutTarget& target) const override;
  std::string UndoFailure(const fleet::v1::Rollout& rollout,
                          const fleet::v1::RolloutTarget& target,
                          const absl::Status& status) const override;
  std::optional<GateCheck> CheckGate(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::GateStatus& gate) const override;

 private:
  const fleet::v1::BundleManifest manifest_;
};

}  // namespace ecliptix::server::operations

#endif  // ECLIPTIX_SERVER_OPERATIONS_DEPLOY_BUNDLE_ACTION_H_
