// CommandRouter: the agent's one CommandHandler, composing the handler of the
// commands that change the database (DeploymentHandler: one at a time, on the
// main session) and the handler of reads (ReadHandler: beside them, each on
// its own session). It routes each command by kind, and a cancel to whichever
// runs the command it names.
#ifndef ECLIPTIX_AGENT_COMMAND_ROUTER_H_
#define ECLIPTIX_AGENT_COMMAND_ROUTER_H_

#include <memory>

#include "agent/command_handler.h"
#include "agent/deployment_handler.h"
#include "agent/read_handler.h"

namespace ecliptix::agent {

class CommandRouter : public CommandHandler {
 public:
  // Neither handler is owned.
  CommandRouter(DeploymentHandler* changes, ReadHandler* reads);

  absl::Status Accept(const fleet::v1::Command& command) override;
  void Run(const fleet::v1::Command& command,
           std::shared_ptr<CommandReporter> reporter) override;

  // Interrupts everything running (agent shutdown).
  void CancelAll();

 private:
  DeploymentHandler* const changes_;
  ReadHandler* const reads_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_COMMAND_ROUTER_H_
