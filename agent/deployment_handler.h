// Runs the commands that change the database, sent by the server: deployments
// (run phase, revert phase, backup, restore, repair), maintenance job runs
// (run operation) and configuration changes (apply config). One at a time per
// database (a database is changed by one command at once), on a worker
// thread, through the executor on the agent's main session, streaming events
// back. Reads (read config, queries) are ReadHandler's and run beside these.
#ifndef ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_
#define ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/bundle_source.h"
#include "agent/command_handler.h"
#include "agent/executor/cancel_signal.h"
#include "agent/executor/executor.h"

namespace ecliptix::agent {

class DeploymentHandler : public CommandHandler {
 public:
  // Neither pointer is owned.
  DeploymentHandler(Executor* executor, BundleSource* bundles);
  // Waits for the running command, if any.
  ~DeploymentHandler() override;

  absl::Status Accept(const fleet::v1::Command& command) override;
  void Run(const fleet::v1::Command& command,
           std::shared_ptr<CommandReporter> reporter) override;

  // Called on the worker thread after each command that may change which
  // bundle is applied (run or revert a phase, restore, repair), before its
  // outcome is reported: the metrics collector looks at the applied bundle
  // at once. Set before the first command; may be empty.
  void SetAfterCommand(std::function<void()> after_command) {
    after_command_ = std::move(after_command);
  }

  // Interrupts the running command (agent shutdown). A cancel holds for the
  // command it came for, from its Accept to its end, whenever it comes.
  void CancelRunning();
  // Cancels `command_id` if it is the command running now (true); a cancel
  // for anything else is harmless (false).
  bool CancelCommand(const std::string& command_id);

  // Whether `command` is one of this handler's kinds (cancel aside).
  static bool Handles(const fleet::v1::Command& command);

 private:
  // CANCELLED when a cancel for the running command has come.
  absl::Status CheckNotCancelled(const fleet::v1::Command& command);
  absl::Status Execute(const fleet::v1::Command& command,
                       CommandReporter& reporter);

  Executor* const executor_;
  BundleSource* const bundles_;

  absl::Mutex mutex_;
  // The command running now; empty when idle.
  std::string running_ ABSL_GUARDED_BY(mutex_);
  // A cancel for the running command came (the executor was told too).
  bool cancel_requested_ ABSL_GUARDED_BY(mutex_) = false;
  // The same, for maintenance jobs: ends a pause between batches at once.
  CancelSignal cancel_signal_;
  std::function<void()> after_command_;
  std::thread worker_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_
