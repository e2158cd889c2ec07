// Target: the database an agent manages, behind one interface for every
// engine (SQLite, PostgreSQL through libpq, SQL Server or PostgreSQL through
// ODBC). The executor, the history table, the data guard, operations and
// backups see statements, transactions, rows as text, bound named parameters,
// deadlines, cancellation and notices; the drivers (SOCI, SQLite, libpq) stay
// inside agent/target/. A target owns its connection and therefore the
// credentials: nothing outside it sees the connection string, only the
// redacted URL. It also owns the database's stable id, which lives in the
// target itself so it survives agent reinstalls.
//
// Not thread-safe: one user at a time, except Interrupt(), which any thread
// may call. Open one with OpenTarget() (open_target.h).
#ifndef ECLIPTIX_AGENT_TARGET_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_TARGET_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/types.pb.h"

namespace ecliptix::agent {

// The table that holds the database id, one row.
inline constexpr char kIdentityTable[] = "ecliptix_agent_identity";

// "sqlite", "postgresql", "mssql": for logs and people.
std::string EngineName(fleet::v1::Engine engine);
// "sqlite", "libpq", "odbc".
std::string ConnectorName(fleet::v1::Connector connector);

// A value bound to the parameter `:name` of a statement.
struct SqlParam {
  enum class Type { kText, kInt, kBool };

  static SqlParam Text(std::string name, std::string value);
  // NULL, of a text column.
  static SqlParam NullText(std::string name);
  static SqlParam Int(std::string name, int64_t value);
  // Bound as the integer 1 or 0.
  static SqlParam Bool(std::string name, bool value);

  std::string name;
  Type type = Type::kText;
  std::string text;
  int64_t integer = 0;
  bool null = false;
};

// One row of a query, each column as text: NULL is "" with null set.
struct SqlRow {
  std::vector<std::string> values;
  std::vector<bool> nulls;
};

struct QueryResult {
  // The columns' names; empty when the statement returns no rows at all
  // (INSERT, UPDATE, DDL).
  std::vector<std::string> columns;
  std::vector<SqlRow> rows;
  // The rows the statement changed, when it has no columns.
  int64_t rows_affected = 0;
  // QueryAtMost(): the rows read past the limit and not kept.
  int64_t rows_left_out = 0;
};

// What the database said about a failed statement of a step.
struct SqlError {
  std::string sql_state;  // Empty when the engine has none (SQLite).
  std::string message;    // The database's message, one line.
};

// How child processes (pg_dump, psql) reach the same database as the open
// connection: libpq keywords and values, apart from the password.
struct ToolConnection {
  // Keyword, value; the values libpq would take anyway are left out.
  std::vector<std::pair<std::string, std::string>> parameters;
  std::string password;
};

// `status` with "<what>: " before its message; OK stays OK.
absl::Status WithContext(absl::string_view what, const absl::Status& status);

class Target {
 public:
  using NoticeHandler = std::function<void(const std::string&)>;

  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;
  virtual ~Target();

  fleet::v1::Engine engine() const { return engine_; }
  fleet::v1::Connector connector() const { return connector_; }
  const std::string& engine_version() const { return engine_version_; }
  // The URL with passwords replaced: the only form of the URL that may be
  // shown.
  const std::string& redacted_url() const { return redacted_url_; }

  // ---- Identity.

  // Returns the database's stable id, creating the identity table and its row
  // when missing. The stored id wins; a non-empty `requested_id` that differs
  // from it is FAILED_PRECONDITION. On a database without an id, `requested_id`
  // (validated) or a generated "db-<16 hex>" is stored.
  absl::StatusOr<std::string> EnsureDatabaseId(const std::string& requested_id);
  // The stored id, read without creating anything; nullopt when there is none.
  absl::StatusOr<std::optional<std::string>> StoredDatabaseId();

  // ---- The agent's own tables (identity, history, metric cursors, calls).

  // Whether `table` exists, looked up in the engine's catalog with the name
  // bound as a parameter.
  absl::StatusOr<bool> TableExists(const std::string& table);
  // Creates `table` with `create` (the engine's own statement; repeatable: IF
  // NOT EXISTS, or T-SQL's IF OBJECT_ID ... IS NULL) unless it exists. The
  // catalog is asked first because PostgreSQL says a NOTICE for IF NOT EXISTS
  // on an existing table. A failed create is forgiven when the table is
  // there after it: another agent, or the application, made it meanwhile.
  absl::Status EnsureTable(const std::string& table, const std::string& create);

  // ---- The agent's own statements (history, data guard, operations).
  // Parameters are bound by name (`:name`); a statement gets exactly the
  // parameters it names. Failures carry the database's own message (without
  // bound values or PostgreSQL's DETAIL lines, with the SQLSTATE when there is
  // one) and the code of its class: INVALID_ARGUMENT, FAILED_PRECONDITION
  // (constraint), PERMISSION_DENIED, UNAVAILABLE (connection), UNKNOWN.
  // WithContext() says what was being done.

  // Runs one statement that returns no rows (or whose rows are not wanted);
  // `rows_affected`, when given, receives the rows it changed.
  virtual absl::Status Execute(const std::string& sql,
                               const std::vector<SqlParam>& params = {},
                               int64_t* rows_affected = nullptr) = 0;
  // Runs one statement and returns its rows, every value as text.
  virtual absl::StatusOr<QueryResult> Query(
      const std::string& sql, const std::vector<SqlParam>& params = {}) = 0;
  // As Query(), keeping the first `max_rows` rows: the others are read and
  // counted in rows_left_out, not held (a fleet query's row limit bounds the
  // agent's memory, not only what it sends).
  virtual absl::StatusOr<QueryResult> QueryAtMost(
      const std::string& sql, const std::vector<SqlParam>& params,
      size_t max_rows);

  // A transaction that writes. On SQLite it takes the write lock at once
  // (BEGIN IMMEDIATE), waiting for other writers on the busy timeout: a
  // deferred transaction that read first is refused "database is locked" at
  // its first write when another connection wrote meanwhile, which the
  // application's traffic does all the time.
  virtual absl::Status Begin() = 0;
  // A transaction that only reads: it takes no write lock, so it never holds
  // the application's writers back.
  virtual absl::Status BeginReadOnly() { return Begin(); }
  virtual absl::Status Commit() = 0;
  // A no-op when no transaction is open on SQLite, which rolls an interrupted
  // transaction back by itself.
  virtual absl::Status Rollback() = 0;

  // ---- Step SQL: sent to the engine untouched (no parameter markers, no
  // rewriting), with the engine's exact error codes, deadlines and
  // cancellation.

  // Until ClearLimits(), statements are stopped once `deadline` passes or
  // `*cancelled` is set (read while a statement runs, where the engine
  // allows). SQLite and ODBC apply the limits to the agent's own statements
  // (Execute, Query) as well; PostgreSQL only to RunStatement (a caller that
  // needs a deadline on its own statements sets statement_timeout).
  // `in_transaction`: the statements run inside a transaction (PostgreSQL then
  // scopes its statement_timeout to it).
  virtual void SetLimits(absl::Time deadline,
                         const std::atomic<bool>* cancelled,
                         bool in_transaction) = 0;
  // Removes the limits and restores what SetLimits() changed in the session.
  virtual void ClearLimits() = 0;

  // Runs one statement of a step (on SQLite, every statement of `sql`) and
  // returns the rows it changed. On failure fills `error` and returns the
  // engine's classification: CANCELLED (interrupted), DEADLINE_EXCEEDED (the
  // engine's own timeout), UNAVAILABLE, INVALID_ARGUMENT, FAILED_PRECONDITION,
  // ABORTED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNKNOWN; the message is
  // `error->message`.
  virtual absl::StatusOr<int64_t> RunStatement(const std::string& sql,
                                               SqlError* error) = 0;
  // The first column of the first row of `query` as text; nullopt when there
  // is no row or the value is NULL. Failures as RunStatement().
  virtual absl::StatusOr<std::optional<std::string>> RunScalar(
      const std::string& query, SqlError* error) = 0;

  // Interrupts the statement running on the connection, from any thread. A
  // no-op for ODBC (best effort) and when nothing runs.
  virtual void Interrupt() = 0;

  // Sends the server's notices (PostgreSQL NOTICE, WARNING, INFO from RAISE)
  // to `handler`, on the thread running the statement, until replaced. Without
  // a handler notices are logged at debug level. Only libpq connections have
  // notices.
  void SetNoticeHandler(NoticeHandler handler);

  // ---- Backups (agent/backup): what each engine's method needs.

  // For pg_dump and psql. INTERNAL on targets that are not libpq.
  virtual absl::StatusOr<ToolConnection> ConnectionForTools();
  // Replaces the database's content with that of the SQLite database file
  // `file` (SQLite's online backup API), keeping the connection open. INTERNAL
  // on targets that are not SQLite.
  virtual absl::Status CopyFromFile(const std::string& file);

 protected:
  Target(fleet::v1::Connector connector, std::string redacted_url);

  // Reports `text` to the notice handler.
  void Notice(const std::string& text);

  fleet::v1::Engine engine_ = fleet::v1::ENGINE_UNSPECIFIED;
  std::string engine_version_;

 private:
  absl::Status CreateIdentityTable();

  const fleet::v1::Connector connector_;
  const std::string redacted_url_;
  // Called on the thread that runs the statement, the target's one user.
  NoticeHandler notice_handler_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_TARGET_H_
