#include "agent/read_handler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/executor/config_commands.h"
#include "agent/executor/fleet_query.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::agent {

namespace v1 = ::ecliptix::fleet::v1;

ReadHandler::ReadHandler(std::string database_url, BundleSource* bundles)
    : database_url_(std::move(database_url)), bundles_(bundles) {}

ReadHandler::~ReadHandler() {
  CancelAll();
  std::list<Read> all;
  {
    absl::MutexLock lock(&mutex_);
    all.splice(all.end(), reads_);
  }
  for (Read& read : all) {
    if (read.thread.joinable()) read.thread.join();
  }
}

bool ReadHandler::Handles(const v1::Command& command) {
  return command.has_read_config() || command.has_run_query();
}

absl::Status ReadHandler::Accept(const v1::Command& command) {
  if (command.has_read_config() && command.read_config().bundle_id().empty()) {
    return absl::InvalidArgumentError("read_config needs bundle_id");
  }
  if (command.has_run_query()) {
    const v1::RunQueryCommand& query = command.run_query();
    if (query.bundle_id().empty() || query.query().empty()) {
      return absl::InvalidArgumentError("run_query needs bundle_id and query");
    }
    if (query.row_limit() < 0) {
      return absl::InvalidArgumentError("run_query: row_limit is negative");
    }
    if (FromProtoDuration(query.timeout()) < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("run_query: timeout is negative");
    }
  }
  if (!Handles(command)) {
    return absl::InvalidArgumentError(
        "command kind not supported by this agent");
  }
  std::list<Read> ended;
  absl::Status accepted;
  {
    absl::MutexLock lock(&mutex_);
    TakeEnded(&ended);
    if (static_cast<int>(reads_.size()) >= kMaxConcurrentReads) {
      accepted = absl::ResourceExhaustedError(absl::StrCat(
          kMaxConcurrentReads,
          " reads are running on this database already; try again when one "
          "finishes"));
    } else {
      // The slot is taken now, so that Accept's answer holds until Run.
      reads_.emplace_back().command_id = command.command_id();
    }
  }
  for (Read& read : ended) {
    // Its thread has nothing left to do but return from Finish.
    if (read.thread.joinable()) read.thread.join();
  }
  return accepted;
}

void ReadHandler::Run(const v1::Command& command,
                      std::shared_ptr<CommandReporter> reporter) {
  absl::MutexLock lock(&mutex_);
  Read* read = nullptr;
  for (Read& candidate : reads_) {
    if (candidate.command_id == command.command_id() &&
        !candidate.thread.joinable() && !candidate.done) {
      read = &candidate;
    }
  }
  if (read == nullptr) {
    // Run without Accept: a caller's mistake, reported rather than run.
    reporter->Finish(absl::InternalError(
        absl::StrCat("read ", command.command_id(), " was not accepted")));
    return;
  }
  read->thread =
      std::thread([this, command, read, reporter = std::move(reporter)] {
        const absl::Status status = Execute(command, read, *reporter);
        Logger("agent.read")
            ->info("command {}: {}", command.command_id(),
                   status.ok() ? std::string("done") : status.ToString());
        {
          // Done before Finish: whoever sees the outcome may start another
          // read.
          absl::MutexLock done_lock(&mutex_);
          read->done = true;
        }
        reporter->Finish(status);
      });
}

bool ReadHandler::CancelCommand(const std::string& command_id) {
  absl::MutexLock lock(&mutex_);
  bool found = false;
  for (Read& read : reads_) {
    if (read.command_id != command_id || read.done) continue;
    read.cancelled = true;
    if (read.session != nullptr) read.session->Cancel();
    found = true;
  }
  return found;
}

void ReadHandler::CancelAll() {
  absl::MutexLock lock(&mutex_);
  for (Read& read : reads_) {
    read.cancelled = true;
    if (read.session != nullptr) read.session->Cancel();
  }
}

void ReadHandler::TakeEnded(std::list<Read>* ended) {
  for (auto it = reads_.begin(); it != reads_.end();) {
    auto next = std::next(it);
    if (it->done) ended->splice(ended->end(), reads_, it);
    it = next;
  }
}

absl::Status ReadHandler::CheckNotCancelled(Read* read) {
  absl::MutexLock lock(&mutex_);
  if (!read->cancelled) return absl::OkStatus();
  return absl::CancelledError(
      absl::StrCat("command ", read->command_id, " was cancelled"));
}

absl::StatusOr<std::unique_ptr<ReadOnlySession>> ReadHandler::OpenSession(
    Read* read, absl::Time deadline) {
  ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlySession> session,
                   ReadOnlySession::Open(database_url_, deadline));
  absl::MutexLock lock(&mutex_);
  if (read->cancelled) {
    return absl::CancelledError(
        absl::StrCat("command ", read->command_id, " was cancelled"));
  }
  read->session = session.get();
  return session;
}

void ReadHandler::CloseSession(Read* read,
                               std::unique_ptr<ReadOnlySession> session) {
  {
    // No cancel reaches the session once it is being closed.
    absl::MutexLock lock(&mutex_);
    read->session = nullptr;
  }
  session.reset();
}

absl::Status ReadHandler::Execute(const v1::Command& command, Read* read,
                                  CommandReporter& reporter) {
  const CommandEventSink events = [&reporter](v1::CommandEvent event) {
    reporter.Report(std::move(event));
  };
  auto log = Logger("agent.read");
  if (command.has_read_config()) {
    const v1::ReadConfigCommand& read_config = command.read_config();
    log->info("command {}: read configuration of bundle {}",
              command.command_id(), read_config.bundle_id());
    ASSIGN_OR_RETURN(std::shared_ptr<const bundle::Bundle> bundle,
                     bundles_->Fetch(read_config.bundle_id()));
    RETURN_IF_ERROR(CheckNotCancelled(read));
    RETURN_IF_ERROR(CheckReadConfig(*bundle, read_config));
    ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlySession> session,
                     OpenSession(read, absl::Now() + kDefaultQueryTimeout));
    const absl::Status status =
        ReadConfig(*session, *bundle, read_config, events);
    CloseSession(read, std::move(session));
    return status;
  }
  const v1::RunQueryCommand& query = command.run_query();
  log->info("command {}: query {} of bundle {}", command.command_id(),
            query.query(), query.bundle_id());
  ASSIGN_OR_RETURN(std::shared_ptr<const bundle::Bundle> bundle,
                   bundles_->Fetch(query.bundle_id()));
  RETURN_IF_ERROR(CheckNotCancelled(read));
  RETURN_IF_ERROR(CheckQuery(*bundle, query));
  ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlySession> session,
                   OpenSession(read, absl::Now() + QueryTimeout(query)));
  const absl::Status status = RunQuery(*session, *bundle, query, events);
  CloseSession(read, std::move(session));
  return status;
}

}  // namespace ecliptix::agent
