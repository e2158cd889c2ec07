// SqlRunner: runs the statements of bundle steps on a target, one at a time,
// with a deadline and cancellation, and reports failures with the engine's own
// code and message. The SQL goes to the engine untouched (Target::RunStatement:
// no parameter markers to rewrite, SQLSTATEs and notices kept); the runner
// says whether a stop was the deadline's or a cancellation.
#ifndef ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_
#define ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target/target.h"

namespace ecliptix::agent {

class SqlRunner {
 public:
  explicit SqlRunner(Target* database);
  ~SqlRunner();
  SqlRunner(const SqlRunner&) = delete;
  SqlRunner& operator=(const SqlRunner&) = delete;

  // Until Disarm(), statements fail with DEADLINE_EXCEEDED once `deadline`
  // passes and with CANCELLED once `*cancelled` is set (it is read from the
  // running statement where the engine allows: SQLite's progress handler).
  // `in_transaction`: the statements run inside a transaction (PostgreSQL
  // then scopes its statement_timeout to it with SET LOCAL).
  void Arm(absl::Time deadline, const std::atomic<bool>* cancelled,
           bool in_transaction);
  // Removes the deadline (call before ROLLBACK, or the rollback itself would
  // be interrupted) and restores the session's statement_timeout.
  void Disarm();

  // Runs one statement (or, on SQLite, every statement of `sql`) and returns
  // the rows it changed. On failure fills `error` and returns a status whose
  // code follows the failure: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE (lost
  // connection), INVALID_ARGUMENT (syntax, unknown object),
  // FAILED_PRECONDITION (constraint), ABORTED (deadlock, serialization),
  // PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNKNOWN otherwise.
  absl::StatusOr<int64_t> Execute(const std::string& sql, SqlError* error);

  // The first column of the first row of `query` as text; nullopt when there
  // is no row or the value is NULL.
  absl::StatusOr<std::optional<std::string>> QueryValue(
      const std::string& query, SqlError* error);

 private:
  absl::Status Failure(absl::StatusCode code, SqlError* error);

  Target* database_;
  absl::Time deadline_ = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled_ = nullptr;
  bool armed_ = false;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_
