// ReadOnlySession: a connection of its own to the agent's database, opened for
// one read (a fleet query, a configuration read) and closed after it, holding
// one transaction that can only read and is always rolled back. Reads run
// beside a deployment or a maintenance job on the main session and never
// change anything:
//  - PostgreSQL (libpq or ODBC): SET SESSION CHARACTERISTICS AS TRANSACTION
//    READ ONLY and statement_timeout (the deadline) on this session, then
//    BEGIN;
//  - SQLite: PRAGMA query_only = ON on this connection, then BEGIN;
//  - SQL Server (ODBC): a transaction that is rolled back at the end (the
//    engine has no read-only transaction; a write is undone, not refused).
// A write attempt fails PERMISSION_DENIED with the database's own message; a
// read past the deadline DEADLINE_EXCEEDED; Cancel() CANCELLED.
#ifndef ECLIPTIX_AGENT_EXECUTOR_READ_ONLY_SESSION_H_
#define ECLIPTIX_AGENT_EXECUTOR_READ_ONLY_SESSION_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/executor/operation.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"

namespace ecliptix::agent {

class ReadOnlySession {
 public:
  // Connects to `database_url` (OpenTarget's errors) and starts the read-only
  // transaction; statements stop at `deadline`.
  static absl::StatusOr<std::unique_ptr<ReadOnlySession>> Open(
      const std::string& database_url, absl::Time deadline);
  // Takes an open target (tests, and callers that opened one themselves).
  static absl::StatusOr<std::unique_ptr<ReadOnlySession>> Start(
      std::unique_ptr<Target> database, absl::Time deadline);
  // Rolls back and disconnects.
  ~ReadOnlySession();

  ReadOnlySession(const ReadOnlySession&) = delete;
  ReadOnlySession& operator=(const ReadOnlySession&) = delete;

  // Runs the bundle's operation `name` with `arguments` (bound as the
  // executor binds them) and returns its last statement's rows, keeping at
  // most `max_rows` (the others are counted in rows_left_out). Errors as
  // described at the top, or the operation's (NOT_FOUND, INVALID_ARGUMENT,
  // the database's).
  absl::StatusOr<OperationResult> Run(
      const bundle::Bundle& bundle, const std::string& name,
      const std::map<std::string, std::string>& arguments, size_t max_rows);

  // Runs one statement of the agent's own with `params` bound by name (metric
  // collectors; tests use it to try a write).
  absl::StatusOr<QueryResult> Query(const std::string& sql,
                                    const std::vector<SqlParam>& params = {});

  // From any thread: interrupts the running statement; what runs then and
  // later fails with CANCELLED.
  void Cancel();

  const Target& database() const { return *database_; }

 private:
  ReadOnlySession(std::unique_ptr<Target> database, absl::Time deadline);
  absl::Status Begin();
  // The status of a failed read: CANCELLED, DEADLINE_EXCEEDED or
  // PERMISSION_DENIED as described at the top, else `status`.
  absl::Status Classify(const absl::Status& status) const;

  std::unique_ptr<Target> database_;
  const absl::Time deadline_;
  std::atomic<bool> cancelled_{false};
  bool in_transaction_ = false;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_READ_ONLY_SESSION_H_
