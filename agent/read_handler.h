// Runs the commands that only read the database: read config and fleet
// queries (run query). Each runs on a thread of its own, on a read-only
// session of its own opened from the agent's database URL for that command
// and closed after it (executor/read_only_session.h), so reads run beside a
// deployment or a maintenance job holding the main session, and beside each
// other, up to kMaxConcurrentReads at once.
#ifndef ECLIPTIX_AGENT_READ_HANDLER_H_
#define ECLIPTIX_AGENT_READ_HANDLER_H_

#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/bundle_source.h"
#include "agent/command_handler.h"
#include "agent/executor/read_only_session.h"

namespace ecliptix::agent {

class ReadHandler : public CommandHandler {
 public:
  // Reads beyond this many at once are refused RESOURCE_EXHAUSTED (each
  // holds a connection to the database).
  static constexpr int kMaxConcurrentReads = 4;

  // `database_url`: the agent's (credentials included; never shown).
  // `bundles` is not owned.
  ReadHandler(std::string database_url, BundleSource* bundles);
  // Cancels what runs and waits for it.
  ~ReadHandler() override;

  ReadHandler(const ReadHandler&) = delete;
  ReadHandler& operator=(const ReadHandler&) = delete;

  absl::Status Accept(const fleet::v1::Command& command) override;
  void Run(const fleet::v1::Command& command,
           std::shared_ptr<CommandReporter> reporter) override;

  // Cancels `command_id` if it is a read running now (true): its statement
  // is interrupted and it finishes CANCELLED.
  bool CancelCommand(const std::string& command_id);
  // Cancels every read (agent shutdown).
  void CancelAll();

  // Whether `command` is one of this handler's kinds.
  static bool Handles(const fleet::v1::Command& command);

 private:
  struct Read {
    std::string command_id;
    std::thread thread;
    // Set by a cancel; the read stops at its next look, or at once through
    // `session`.
    bool cancelled = false;
    // While the read has its session open.
    ReadOnlySession* session = nullptr;
    bool done = false;
  };

  absl::Status Execute(const fleet::v1::Command& command, Read* read,
                       CommandReporter& reporter);
  // Opens the read's session and publishes it for cancels; CANCELLED when a
  // cancel came first.
  absl::StatusOr<std::unique_ptr<ReadOnlySession>> OpenSession(
      Read* read, absl::Time deadline);
  void CloseSession(Read* read, std::unique_ptr<ReadOnlySession> session);
  absl::Status CheckNotCancelled(Read* read);
  // Moves the reads that have ended to `ended` (their threads are joined
  // outside the lock).
  void TakeEnded(std::list<Read>* ended) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::string database_url_;
  BundleSource* const bundles_;

  absl::Mutex mutex_;
  // Accepted reads, running or ended but not yet joined; a list, so that
  // each Read stays where its thread sees it.
  std::list<Read> reads_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_READ_HANDLER_H_
