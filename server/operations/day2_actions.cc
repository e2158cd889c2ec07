#include "server/operations/day2_actions.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/bundle/manifest_rules.h"
#include "server/operations/deploy_bundle_action.h"

namespace ecliptix::server::operations {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// What the day-2 actions share: one unit, nothing to undo, no gate evidence,
// and the agent's reports published as they come.
class SingleUnitAction : public TargetAction {
 public:
  SingleUnitAction(std::string unit, std::string succeeded)
      : unit_(std::move(unit)), succeeded_(std::move(succeeded)) {}

  std::string SucceededReason() const override { return succeeded_; }
  std::string RollbackReason() const override {
    return "nothing to undo for this kind of operation";
  }

  std::string UnitNoun() const override { return "step"; }
  std::vector<std::string> Units(const v1::Rollout&) const override {
    return {unit_};
  }
  std::optional<v1::RolloutEvent> OnProgress(
      const v1::Rollout&, v1::RolloutTarget& target,
      const v1::CommandEvent& event) const override {
    v1::RolloutEvent published;
    switch (event.kind_case()) {
      case v1::CommandEvent::kOperationBatch:
        published.mutable_operation_batch()->set_database_id(
            target.database_id());
        *published.mutable_operation_batch()->mutable_batch() =
            event.operation_batch();
        return published;
      case v1::CommandEvent::kConfigValue:
        published.mutable_config_value()->set_database_id(target.database_id());
        *published.mutable_config_value()->mutable_value() =
            event.config_value();
        published.mutable_config_value()->set_rollback(
            target.state() == v1::TARGET_STATE_ROLLING_BACK);
        return published;
      case v1::CommandEvent::kQueryRows:
        published.mutable_query_rows()->set_database_id(target.database_id());
        *published.mutable_query_rows()->mutable_rows() = event.query_rows();
        return published;
      default:
        return std::nullopt;
    }
  }
  UndoStart StartUndo(const v1::Rollout&,
                      const v1::RolloutTarget&) const override {
    UndoStart start;
    start.nothing_to_undo = true;
    return start;
  }
  v1::Command UndoCommand(const v1::Rollout&,
                          const v1::RolloutTarget&) const override {
    return v1::Command();
  }
  void OnUndone(const v1::Rollout&, v1::RolloutTarget&) const override {}
  std::string UndoFailure(const v1::Rollout&, const v1::RolloutTarget&,
                          const absl::Status& status) const override {
    return absl::StrCat("rollback failed: ", status.message());
  }
  std::optional<GateCheck> CheckGate(const v1::Rollout&,
                                     const v1::GateStatus&) const override {
    return std::nullopt;
  }

 private:
  const std::string unit_;
  const std::string succeeded_;
};

// A maintenance job's run: the job's command on every target. What a cleanup
// deleted stays deleted: a rollback has nothing to undo.
class RunOperationAction : public SingleUnitAction {
 public:
  RunOperationAction()
      : SingleUnitAction(kJobUnit, "every database ran the operation") {}
  v1::Command RunCommand(const v1::Rollout& rollout,
                         const v1::RolloutTarget&) const override {
    v1::Command command;
    *command.mutable_run_operation() = rollout.operation().job_run().command();
    command.mutable_run_operation()->set_bundle_id(rollout.bundle_id());
    return command;
  }
};

// A configuration change; undone by storing, on each target that changed,
// the values it held before (RolloutTarget.config_previous).
class ConfigChangeAction : public SingleUnitAction {
 public:
  ConfigChangeAction()
      : SingleUnitAction(kConfigChangeUnit,
                         "every database stores the new values") {}
  std::string RollbackReason() const override {
    return "storing the previous values again where they changed";
  }
  v1::Command RunCommand(const v1::Rollout& rollout,
                         const v1::RolloutTarget&) const override {
    v1::Command command;
    v1::ApplyConfigCommand* apply = command.mutable_apply_config();
    apply->set_bundle_id(rollout.bundle_id());
    *apply->mutable_settings() = rollout.operation().config_change().settings();
    return command;
  }
  UndoStart StartUndo(const v1::Rollout&,
                      const v1::RolloutTarget& target) const override {
    UndoStart start;
    start.nothing_to_undo =
        target.touched_phases().empty() || target.config_previous().empty();
    start.verb = "restore-config";
    start.unit = kConfigChangeUnit;
    return start;
  }
  v1::Command UndoCommand(const v1::Rollout& rollout,
                          const v1::RolloutTarget& target) const override {
    v1::Command command;
    v1::ApplyConfigCommand* apply = command.mutable_apply_config();
    apply->set_bundle_id(rollout.bundle_id());
    // In the order of the change, so the database ends as it was.
    for (const v1::ConfigSetting& setting :
         rollout.operation().config_change().settings()) {
      auto previous = target.config_previous().find(setting.key());
      if (previous == target.config_previous().end()) continue;
      v1::ConfigSetting* restore = apply->add_settings();
      restore->set_key(setting.key());
      restore->set_value(previous->second);
    }
    return command;
  }
  void OnUndone(const v1::Rollout&, v1::RolloutTarget& target) const override {
    target.clear_touched_phases();
    target.clear_applied_phases();
  }
  std::string UndoFailure(const v1::Rollout&, const v1::RolloutTarget&,
                          const absl::Status& status) const override {
    return absl::StrCat(
        "rollback failed: storing the previous configuration values: ",
        status.message());
  }
};

class ConfigReadAction : public SingleUnitAction {
 public:
  ConfigReadAction()
      : SingleUnitAction(kConfigReadUnit, "every database was read") {}
  v1::Command RunCommand(const v1::Rollout& rollout,
                         const v1::RolloutTarget&) const override {
    v1::Command command;
    command.mutable_read_config()->set_bundle_id(rollout.bundle_id());
    *command.mutable_read_config()->mutable_keys() =
        rollout.operation().config_read().keys();
    return command;
  }
};

class QueryAction : public SingleUnitAction {
 public:
  QueryAction() : SingleUnitAction(kQueryUnit, "every database answered") {}
  v1::Command RunCommand(const v1::Rollout& rollout,
                         const v1::RolloutTarget&) const override {
    v1::Command command;
    *command.mutable_run_query() = rollout.operation().query().command();
    command.mutable_run_query()->set_bundle_id(rollout.bundle_id());
    return command;
  }
};

// "A, B and C" of the schema's keys.
std::string KeyList(const v1::BundleManifest& manifest) {
  std::vector<std::string> keys;
  for (const v1::ConfigKeySpec& key : manifest.config().keys())
    keys.push_back(key.key());
  return absl::StrJoin(keys, ", ");
}

}  // namespace

std::vector<std::string> UnitsOf(const v1::Rollout& rollout) {
  switch (rollout.operation().kind_case()) {
    case v1::FleetOperation::kJobRun:
      return {kJobUnit};
    case v1::FleetOperation::kConfigChange:
      return {kConfigChangeUnit};
    case v1::FleetOperation::kConfigRead:
      return {kConfigReadUnit};
    case v1::FleetOperation::kQuery:
      return {kQueryUnit};
    default:
      return {rollout.phases().begin(), rollout.phases().end()};
  }
}

std::unique_ptr<TargetAction> MakeAction(const v1::Rollout& rollout,
                                         v1::BundleManifest manifest) {
  switch (rollout.operation().kind_case()) {
    case v1::FleetOperation::kJobRun:
      return std::make_unique<RunOperationAction>();
    case v1::FleetOperation::kConfigChange:
      return std::make_unique<ConfigChangeAction>();
    case v1::FleetOperation::kConfigRead:
      return std::make_unique<ConfigReadAction>();
    case v1::FleetOperation::kQuery:
      return std::make_unique<QueryAction>();
    default:
      return std::make_unique<DeployBundleAction>(std::move(manifest));
  }
}

bool ChangesDatabases(const v1::FleetOperation& operation) {
  switch (operation.kind_case()) {
    case v1::FleetOperation::kConfigRead:
    case v1::FleetOperation::kQuery:
      return false;
    default:
      return true;
  }
}

absl::Status CheckOperation(const v1::FleetOperation& operation,
                            const v1::Strategy& strategy,
                            const v1::BundleManifest& manifest) {
  if (operation.kind_case() == v1::FleetOperation::KIND_NOT_SET)
    return absl::OkStatus();
  const std::string kind = OperationKindName(operation);
  if (strategy.backup_first() || strategy.adopt() || !strategy.phases().empty())
    return absl::InvalidArgumentError(absl::StrCat(
        "backup_first, adopt and phases are for deployments, not a ", kind,
        " operation"));
  auto find = [&](const std::string& name) -> const v1::Operation* {
    for (const v1::Operation& candidate : manifest.operations())
      if (candidate.name() == name) return &candidate;
    return nullptr;
  };
  auto arguments_of =
      [](const google::protobuf::Map<std::string, std::string>& arguments) {
        return std::map<std::string, std::string>(arguments.begin(),
                                                  arguments.end());
      };
  const std::string bundle =
      absl::StrCat(manifest.name(), "@", manifest.version());
  switch (operation.kind_case()) {
    case v1::FleetOperation::kJobRun: {
      const v1::RunOperationCommand& command = operation.job_run().command();
      if (command.operation().empty())
        return absl::InvalidArgumentError("the job names no operation");
      const v1::Operation* found = find(command.operation());
      if (found == nullptr)
        return absl::NotFoundError(absl::StrCat("bundle ", bundle,
                                                " has no operation \"",
                                                command.operation(), "\""));
      if (command.max_batches() < 0)
        return absl::InvalidArgumentError("max_batches must not be negative");
      if (command.pause_between_batches().seconds() < 0 ||
          command.pause_between_batches().nanos() < 0)
        return absl::InvalidArgumentError(
            "pause_between_batches must not be negative");
      return bundle::CheckArguments(*found, arguments_of(command.arguments()));
    }
    case v1::FleetOperation::kConfigChange: {
      const v1::ConfigChangeSpec& change = operation.config_change();
      if (manifest.config().keys().empty())
        return absl::FailedPreconditionError(
            absl::StrCat("bundle ", bundle, " declares no configuration keys"));
      if (change.settings().empty())
        return absl::InvalidArgumentError(
            "settings is required: at least one key and its value");
      if (absl::StripAsciiWhitespace(change.reason()).empty())
        return absl::InvalidArgumentError(
            "reason is required: say why the configuration changes (it is "
            "audited)");
      std::set<std::string> seen;
      for (const v1::ConfigSetting& setting : change.settings()) {
        if (setting.key().empty())
          return absl::InvalidArgumentError(absl::StrCat(
              "a setting has no key (value \"", setting.value(), "\"): bundle ",
              bundle, " declares ", KeyList(manifest)));
        const v1::ConfigKeySpec* key =
            bundle::FindConfigKey(manifest, setting.key());
        if (key == nullptr)
          return absl::InvalidArgumentError(absl::StrCat(
              "unknown configuration key \"", setting.key(), "\": bundle ",
              bundle, " declares ", KeyList(manifest)));
        if (!seen.insert(setting.key()).second)
          return absl::InvalidArgumentError(
              absl::StrCat("key ", setting.key(), " is set twice"));
        if (absl::Status status =
                bundle::CheckConfigValue(*key, setting.value());
            !status.ok())
          return status;
      }
      return absl::OkStatus();
    }
    case v1::FleetOperation::kConfigRead: {
      if (manifest.config().keys().empty())
        return absl::FailedPreconditionError(
            absl::StrCat("bundle ", bundle, " declares no configuration keys"));
      for (const std::string& key : operation.config_read().keys()) {
        if (bundle::FindConfigKey(manifest, key) == nullptr)
          return absl::InvalidArgumentError(
              absl::StrCat("unknown configuration key \"", key, "\": bundle ",
                           bundle, " declares ", KeyList(manifest)));
      }
      return absl::OkStatus();
    }
    case v1::FleetOperation::kQuery: {
      const v1::RunQueryCommand& command = operation.query().command();
      const v1::Operation* found = find(command.query());
      if (found == nullptr)
        return absl::NotFoundError(absl::StrCat(
            "bundle ", bundle, " declares no query \"", command.query(),
            "\"; `ecliptixctl query list` shows the ones it has"));
      if (!found->read_only())
        return absl::PermissionDeniedError(absl::StrCat(
            "operation ", command.query(),
            " is not a declared read-only query: only operations marked "
            "read_only run as fleet queries"));
      if (command.row_limit() < 0 || command.row_limit() > 100000)
        return absl::InvalidArgumentError(
            "row_limit must be between 0 (1,000) and 100,000");
      if (command.timeout().seconds() < 0 || command.timeout().nanos() < 0)
        return absl::InvalidArgumentError("timeout must not be negative");
      return bundle::CheckArguments(*found, arguments_of(command.arguments()));
    }
    default:
      return absl::OkStatus();
  }
}

std::string RequiredCapability(const v1::FleetOperation& operation) {
  switch (operation.kind_case()) {
    case v1::FleetOperation::kJobRun:
      return "operations";
    case v1::FleetOperation::kConfigChange:
    case v1::FleetOperation::kConfigRead:
      return "config";
    case v1::FleetOperation::kQuery:
      return "query";
    default:
      return "";
  }
}

std::string OperationKindName(const v1::FleetOperation& operation) {
  switch (operation.kind_case()) {
    case v1::FleetOperation::kJobRun:
      return "job";
    case v1::FleetOperation::kConfigChange:
      return "config";
    case v1::FleetOperation::kConfigRead:
      return "config-read";
    case v1::FleetOperation::kQuery:
      return "query";
    default:
      return "deploy";
  }
}

}  // namespace ecliptix::server::operations
