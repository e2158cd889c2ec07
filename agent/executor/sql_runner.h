// SqlRunner: runs the statements of bundle steps on a target, one at a time,
// with a deadline and cancellation, and reports failures with the engine's own
// code and message. SQLite and libpq sessions are driven natively (the SQL
// goes to the engine untouched: SOCI would rewrite ":name" and "$1"-looking
// text, and hides SQLSTATEs and notices); ODBC goes through SOCI.
#ifndef ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_
#define ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target_database.h"

namespace ecliptix::agent {

// What the database said about a failed statement.
struct SqlError {
  std::string sql_state;  // Empty when the engine has none (SQLite).
  std::string message;    // The database's message, one line.
};

class SqlRunner {
 public:
  explicit SqlRunner(TargetDatabase* database);
  ~SqlRunner();
  SqlRunner(const SqlRunner&) = delete;
  SqlRunner& operator=(const SqlRunner&) = delete;

  // Until Disarm(), statements fail with DEADLINE_EXCEEDED once `deadline`
  // passes and with CANCELLED once `*cancelled` is set (it is read from the
  // running statement: SQLite's progress handler). `in_transaction`: the
  // statements run inside a transaction (PostgreSQL then scopes its
  // statement_timeout to it with SET LOCAL).
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
  // Called by SQLite every few thousand virtual machine instructions.
  static int ProgressHandler(void* runner);
  absl::Status Failure(absl::StatusCode code, SqlError* error);
  absl::Status SetPostgresqlTimeout(absl::Duration timeout, bool local);

  absl::StatusOr<int64_t> ExecuteSqlite(const std::string& sql,
                                        SqlError* error);
  absl::StatusOr<int64_t> ExecutePostgresql(const std::string& sql,
                                            SqlError* error);
  absl::StatusOr<int64_t> ExecuteSoci(const std::string& sql, SqlError* error);

  TargetDatabase* database_;
  absl::Time deadline_ = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled_ = nullptr;
  bool in_transaction_ = false;
  bool armed_ = false;
  // PostgreSQL's statement_timeout before Arm(), put back by Disarm().
  std::string saved_statement_timeout_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_SQL_RUNNER_H_
