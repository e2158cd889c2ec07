// The seam between the control stream (transport) and what the agent does
// (deployment, later jobs and metrics): a handler accepts or refuses a command
// at once, then reports progress and the outcome through a CommandReporter from
// any thread.
#ifndef ECLIPTIX_AGENT_COMMAND_HANDLER_H_
#define ECLIPTIX_AGENT_COMMAND_HANDLER_H_

#include <memory>

#include "absl/status/status.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"

namespace ecliptix::agent {

// Reports on one accepted command. Thread-safe. Events sent while the agent is
// disconnected are dropped; the outcome is kept and sent again when the server
// repeats the command id.
class CommandReporter {
 public:
  virtual ~CommandReporter() = default;
  // A progress event (command_id and event_time are filled in).
  virtual void Report(fleet::v1::CommandEvent event) = 0;
  // The outcome; call exactly once.
  virtual void Finish(const absl::Status& status) = 0;
};

class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  // Whether the command can start now (known kind, valid arguments, not busy).
  // Called on the stream's reader thread: must return quickly. The status is
  // the acknowledgement's.
  virtual absl::Status Accept(const fleet::v1::Command& command) = 0;
  // Starts an accepted command, after its acknowledgement was sent; must return
  // quickly and report through `reporter`, ending with Finish.
  virtual void Run(const fleet::v1::Command& command,
                   std::shared_ptr<CommandReporter> reporter) = 0;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_COMMAND_HANDLER_H_
