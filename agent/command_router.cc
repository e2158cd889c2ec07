#include "agent/command_router.h"

#include <utility>

#include "common/logging.h"

namespace ecliptix::agent {

namespace v1 = ::ecliptix::fleet::v1;

CommandRouter::CommandRouter(DeploymentHandler* changes, ReadHandler* reads)
    : changes_(changes), reads_(reads) {}

absl::Status CommandRouter::Accept(const v1::Command& command) {
  if (command.has_cancel()) {
    if (command.cancel().command_id().empty()) {
      return absl::InvalidArgumentError("cancel needs command_id");
    }
    // Never busy: it is how a busy agent is stopped.
    return absl::OkStatus();
  }
  if (ReadHandler::Handles(command)) return reads_->Accept(command);
  return changes_->Accept(command);
}

void CommandRouter::Run(const v1::Command& command,
                        std::shared_ptr<CommandReporter> reporter) {
  if (command.has_cancel()) {
    const std::string& target = command.cancel().command_id();
    // A command id runs in one handler at most; asking both is harmless.
    const bool change = changes_->CancelCommand(target);
    const bool read = reads_->CancelCommand(target);
    Logger("agent")->info("command {}: cancel {}: {}", command.command_id(),
                          target, change || read ? "requested" : "not running");
    reporter->Finish(absl::OkStatus());
    return;
  }
  if (ReadHandler::Handles(command)) {
    reads_->Run(command, std::move(reporter));
  } else {
    changes_->Run(command, std::move(reporter));
  }
}

void CommandRouter::CancelAll() {
  changes_->CancelRunning();
  reads_->CancelAll();
}

}  // namespace ecliptix::agent
