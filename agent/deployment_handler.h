// Runs deployment commands (run phase, revert phase, backup, restore, repair)
// sent by the server: one at a time per database, on a worker thread, streaming
// the executor's events back.
#ifndef ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_
#define ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/bundle_source.h"
#include "agent/command_handler.h"
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

  // Interrupts the running command (agent shutdown). A cancel holds for the
  // command it came for, from its Accept to its end, whenever it comes.
  void CancelRunning();

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
  std::thread worker_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_DEPLOYMENT_HANDLER_H_
