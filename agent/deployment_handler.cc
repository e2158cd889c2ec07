#include "agent/deployment_handler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/executor/config_commands.h"
#include "agent/executor/operation_job.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

}  // namespace

bool DeploymentHandler::Handles(const v1::Command& command) {
  switch (command.kind_case()) {
    case v1::Command::kRunPhase:
    case v1::Command::kRevertPhase:
    case v1::Command::kBackup:
    case v1::Command::kRestore:
    case v1::Command::kRepair:
    case v1::Command::kRunOperation:
    case v1::Command::kApplyConfig:
      return true;
    default:
      return false;
  }
}

DeploymentHandler::DeploymentHandler(Executor* executor, BundleSource* bundles)
    : executor_(executor), bundles_(bundles) {}

DeploymentHandler::~DeploymentHandler() {
  if (worker_.joinable()) worker_.join();
}

absl::Status DeploymentHandler::Accept(const v1::Command& command) {
  if (command.has_cancel()) {
    if (command.cancel().command_id().empty()) {
      return absl::InvalidArgumentError("cancel needs command_id");
    }
    // Never busy: it is how a busy agent is stopped.
    return absl::OkStatus();
  }
  if (!Handles(command)) {
    return absl::InvalidArgumentError(
        "command kind not supported by this agent");
  }
  if (command.has_run_phase() && (command.run_phase().bundle_id().empty() ||
                                  command.run_phase().phase().empty())) {
    return absl::InvalidArgumentError("run_phase needs bundle_id and phase");
  }
  if (command.has_revert_phase() &&
      (command.revert_phase().bundle_id().empty() ||
       command.revert_phase().phase().empty())) {
    return absl::InvalidArgumentError("revert_phase needs bundle_id and phase");
  }
  if (command.has_repair() && command.repair().bundle_id().empty()) {
    return absl::InvalidArgumentError("repair needs bundle_id");
  }
  if (command.has_restore() && command.restore().backup_id().empty()) {
    return absl::InvalidArgumentError("restore needs backup_id");
  }
  if (command.has_run_operation() &&
      (command.run_operation().bundle_id().empty() ||
       command.run_operation().operation().empty())) {
    return absl::InvalidArgumentError(
        "run_operation needs bundle_id and operation");
  }
  if (command.has_apply_config() &&
      (command.apply_config().bundle_id().empty() ||
       command.apply_config().settings().empty())) {
    return absl::InvalidArgumentError(
        "apply_config needs bundle_id and settings");
  }
  absl::MutexLock lock(&mutex_);
  if (!running_.empty()) {
    // One deployment at a time: a database is changed by one plan at once.
    return absl::FailedPreconditionError(absl::StrCat(
        "busy with command ", running_, "; try again when it finishes"));
  }
  running_ = command.command_id();
  // Cancellation belongs to the command: from here on a cancel for it stops
  // it, and none for an earlier one can.
  cancel_requested_ = false;
  executor_->ClearCancel();
  cancel_signal_.Reset();
  return absl::OkStatus();
}

void DeploymentHandler::Run(const v1::Command& command,
                            std::shared_ptr<CommandReporter> reporter) {
  if (command.has_cancel()) {
    const std::string& target = command.cancel().command_id();
    const bool running = CancelCommand(target);
    Logger("agent.deploy")
        ->info("command {}: cancel {}: {}", command.command_id(), target,
               running ? "requested" : "not running");
    reporter->Finish(absl::OkStatus());
    return;
  }
  // The previous worker has finished (Accept allowed this one), so joining it
  // does not wait.
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, command, reporter = std::move(reporter)] {
    const absl::Status status = Execute(command, *reporter);
    {
      absl::MutexLock lock(&mutex_);
      running_.clear();
    }
    if (after_command_ &&
        (command.has_run_phase() || command.has_revert_phase() ||
         command.has_restore() || command.has_repair())) {
      after_command_();
    }
    reporter->Finish(status);
  });
}

void DeploymentHandler::CancelRunning() {
  absl::MutexLock lock(&mutex_);
  cancel_requested_ = true;
  executor_->Cancel();
  cancel_signal_.Cancel();
}

bool DeploymentHandler::CancelCommand(const std::string& command_id) {
  absl::MutexLock lock(&mutex_);
  // The running statement is interrupted and its step (or batch) rolled
  // back; the cancelled command then finishes CANCELLED, and one that has not
  // started a step yet (fetching its bundle) never starts one. Under the
  // lock, so that the cancel cannot reach the next command. Cancelling what
  // is not running is harmless (the server may repeat a cancel after a
  // reconnect).
  if (command_id.empty() || running_ != command_id) return false;
  cancel_requested_ = true;
  executor_->Cancel();
  cancel_signal_.Cancel();
  return true;
}

absl::Status DeploymentHandler::CheckNotCancelled(const v1::Command& command) {
  absl::MutexLock lock(&mutex_);
  if (!cancel_requested_) return absl::OkStatus();
  return absl::CancelledError(absl::StrCat("command ", command.command_id(),
                                           " was cancelled before it started"));
}

absl::Status DeploymentHandler::Execute(const v1::Command& command,
                                        CommandReporter& reporter) {
  const DeploymentEventSink sink =
      [&reporter](const v1::DeploymentEvent& event) {
        v1::CommandEvent command_event;
        *command_event.mutable_deployment() = event;
        reporter.Report(std::move(command_event));
      };
  const CommandEventSink events = [&reporter](v1::CommandEvent event) {
    reporter.Report(std::move(event));
  };
  auto log = Logger("agent.deploy");
  switch (command.kind_case()) {
    case v1::Command::kRunPhase: {
      const v1::RunPhaseCommand& run = command.run_phase();
      log->info("command {}: run phase {} of bundle {}{}", command.command_id(),
                run.phase(), run.bundle_id(),
                run.dry_run() ? " (dry run)" : "");
      absl::StatusOr<std::shared_ptr<const bundle::Bundle>> bundle =
          bundles_->Fetch(run.bundle_id());
      if (!bundle.ok()) return bundle.status();
      // A cancel that came while the bundle was fetched. One that comes later
      // is the executor's: it stops before the next step.
      RETURN_IF_ERROR(CheckNotCancelled(command));
      if (run.dry_run())
        return executor_->Plan(**bundle, run.phase(), sink, run.adopt());
      return executor_->RunPhase(**bundle, run.phase(), run.backup_first(),
                                 sink, run.adopt());
    }
    case v1::Command::kRevertPhase: {
      const v1::RevertPhaseCommand& revert = command.revert_phase();
      log->info("command {}: revert phase {} of bundle {}",
                command.command_id(), revert.phase(), revert.bundle_id());
      absl::StatusOr<std::shared_ptr<const bundle::Bundle>> bundle =
          bundles_->Fetch(revert.bundle_id());
      if (!bundle.ok()) return bundle.status();
      RETURN_IF_ERROR(CheckNotCancelled(command));
      Executor::RevertOptions options;
      options.only_this_bundle = revert.only_this_bundle();
      options.accept_data_loss = revert.accept_data_loss();
      // A repeatable step gets back the body an earlier bundle gave it.
      options.load_bundle = [this](const std::string& bundle_id) {
        return bundles_->Fetch(bundle_id);
      };
      if (revert.accept_data_loss()) {
        log->warn("command {}: revert of phase {} accepts data loss",
                  command.command_id(), revert.phase());
      }
      return executor_->RevertPhase(**bundle, revert.phase(), sink, options);
    }
    case v1::Command::kRepair: {
      absl::StatusOr<std::shared_ptr<const bundle::Bundle>> bundle =
          bundles_->Fetch(command.repair().bundle_id());
      if (!bundle.ok()) return bundle.status();
      RETURN_IF_ERROR(CheckNotCancelled(command));
      return executor_->Repair(**bundle, command.repair().phase(), sink);
    }
    case v1::Command::kBackup:
      RETURN_IF_ERROR(CheckNotCancelled(command));
      return executor_->Backup(sink).status();
    case v1::Command::kRestore:
      RETURN_IF_ERROR(CheckNotCancelled(command));
      return executor_->Restore(command.restore().backup_id(), sink);
    case v1::Command::kRunOperation: {
      const v1::RunOperationCommand& run = command.run_operation();
      log->info("command {}: run operation {} of bundle {}",
                command.command_id(), run.operation(), run.bundle_id());
      absl::StatusOr<std::shared_ptr<const bundle::Bundle>> bundle =
          bundles_->Fetch(run.bundle_id());
      if (!bundle.ok()) return bundle.status();
      RETURN_IF_ERROR(CheckNotCancelled(command));
      return RunOperationJob(*executor_, **bundle, run, cancel_signal_, events);
    }
    case v1::Command::kApplyConfig: {
      const v1::ApplyConfigCommand& apply = command.apply_config();
      log->info("command {}: apply {} configuration setting(s) of bundle {}",
                command.command_id(), apply.settings_size(), apply.bundle_id());
      absl::StatusOr<std::shared_ptr<const bundle::Bundle>> bundle =
          bundles_->Fetch(apply.bundle_id());
      if (!bundle.ok()) return bundle.status();
      RETURN_IF_ERROR(CheckNotCancelled(command));
      return ApplyConfig(*executor_, **bundle, apply, cancel_signal_, events);
    }
    default:
      return absl::InvalidArgumentError(
          "command kind not supported by this agent");
  }
}

}  // namespace ecliptix::agent
