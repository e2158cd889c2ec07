#include "agent/executor/sql_runner.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/executor/row_text.h"
#include "common/sql/session.h"
#include "soci/odbc/soci-odbc.h"

namespace ecliptix::agent {
namespace {

// SQLite calls the progress handler every this many virtual machine
// instructions: often enough to stop within milliseconds, rarely enough to
// cost nothing measurable.
constexpr int kProgressInstructions = 10000;

// PostgreSQL's query_canceled: both statement_timeout and PQcancel.
constexpr char kQueryCanceled[] = "57014";

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (state == "42501") return absl::StatusCode::kPermissionDenied;
  if (state == "P0001") return absl::StatusCode::kFailedPrecondition;
  const absl::string_view klass = state.substr(0, 2);
  if (klass == "08") return absl::StatusCode::kUnavailable;
  if (klass == "23") return absl::StatusCode::kFailedPrecondition;
  if (klass == "40") return absl::StatusCode::kAborted;
  if (klass == "42" || klass == "22") return absl::StatusCode::kInvalidArgument;
  if (klass == "53") return absl::StatusCode::kResourceExhausted;
  return absl::StatusCode::kUnknown;
}

absl::StatusCode CodeForSqlite(int result) {
  switch (result & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
      return absl::StatusCode::kInvalidArgument;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kAborted;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// The primary message of a PostgreSQL error, with its detail and hint: the
// full message also repeats "ERROR:" and a caret diagram over several lines.
std::string PostgresqlMessage(const PGresult* result, PGconn* connection) {
  const char* primary =
      result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary == nullptr)
    return ::ecliptix::sql::OneLine(PQerrorMessage(connection));
  std::string message = primary;
  if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) {
    absl::StrAppend(&message, " (", detail, ")");
  }
  if (const char* hint = PQresultErrorField(result, PG_DIAG_MESSAGE_HINT)) {
    absl::StrAppend(&message, "; hint: ", hint);
  }
  return ::ecliptix::sql::OneLine(message);
}

}  // namespace

SqlRunner::SqlRunner(TargetDatabase* database) : database_(database) {}

SqlRunner::~SqlRunner() {
  if (armed_) Disarm();
}

void SqlRunner::Arm(absl::Time deadline, const std::atomic<bool>* cancelled,
                    bool in_transaction) {
  deadline_ = deadline;
  cancelled_ = cancelled;
  in_transaction_ = in_transaction;
  armed_ = true;
  if (::sqlite3* connection = database_->sqlite_connection()) {
    sqlite3_progress_handler(connection, kProgressInstructions,
                             &SqlRunner::ProgressHandler, this);
  }
  if (PGconn* connection = database_->postgresql_connection();
      connection != nullptr && !in_transaction) {
    // A session-wide statement_timeout outlives the step: remember it.
    PgResult result(PQexec(connection, "SHOW statement_timeout"));
    saved_statement_timeout_ =
        PQresultStatus(result.get()) == PGRES_TUPLES_OK &&
                PQntuples(result.get()) > 0
            ? PQgetvalue(result.get(), 0, 0)
            : "0";
  }
}

void SqlRunner::Disarm() {
  if (!armed_) return;
  armed_ = false;
  if (::sqlite3* connection = database_->sqlite_connection()) {
    sqlite3_progress_handler(connection, 0, nullptr, nullptr);
  }
  if (PGconn* connection = database_->postgresql_connection();
      connection != nullptr && !in_transaction_) {
    const char* values[] = {saved_statement_timeout_.c_str()};
    PgResult result(PQexecParams(
        connection, "SELECT set_config('statement_timeout', $1, false)", 1,
        nullptr, values, nullptr, nullptr, 0));
  }
  deadline_ = absl::InfiniteFuture();
  cancelled_ = nullptr;
}

int SqlRunner::ProgressHandler(void* runner) {
  auto* self = static_cast<SqlRunner*>(runner);
  if (self->cancelled_ != nullptr && self->cancelled_->load()) return 1;
  return absl::Now() >= self->deadline_ ? 1 : 0;
}

// An interruption is the runner's own doing (deadline) or the executor's
// (Cancel): the code says which, whatever the engine called it.
absl::Status SqlRunner::Failure(absl::StatusCode code, SqlError* error) {
  if (cancelled_ != nullptr && cancelled_->load()) {
    return absl::CancelledError(absl::StrCat("cancelled: ", error->message));
  }
  if (code == absl::StatusCode::kDeadlineExceeded ||
      (armed_ && absl::Now() >= deadline_ &&
       code == absl::StatusCode::kCancelled)) {
    return absl::DeadlineExceededError(
        absl::StrCat("the step's timeout expired: ", error->message));
  }
  std::string message = error->message;
  if (!error->sql_state.empty()) {
    message = absl::StrCat("SQLSTATE ", error->sql_state, ": ", message);
  }
  return absl::Status(code, message);
}

absl::Status SqlRunner::SetPostgresqlTimeout(absl::Duration timeout,
                                             bool local) {
  PGconn* connection = database_->postgresql_connection();
  const std::string milliseconds =
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)));
  const char* values[] = {milliseconds.c_str(), local ? "true" : "false"};
  PgResult result(PQexecParams(
      connection, "SELECT set_config('statement_timeout', $1, $2::boolean)", 2,
      nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return absl::UnavailableError(
        absl::StrCat("setting statement_timeout: ",
                     PostgresqlMessage(result.get(), connection)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqlRunner::Execute(const std::string& sql,
                                           SqlError* error) {
  *error = SqlError();
  if (cancelled_ != nullptr && cancelled_->load()) {
    error->message = "cancelled before the statement started";
    return Failure(absl::StatusCode::kCancelled, error);
  }
  if (armed_ && absl::Now() >= deadline_) {
    error->message = "no time left before the statement started";
    return Failure(absl::StatusCode::kDeadlineExceeded, error);
  }
  if (database_->sqlite_connection() != nullptr) {
    return ExecuteSqlite(sql, error);
  }
  if (database_->postgresql_connection() != nullptr) {
    return ExecutePostgresql(sql, error);
  }
  return ExecuteSoci(sql, error);
}

absl::StatusOr<int64_t> SqlRunner::ExecuteSqlite(const std::string& sql,
                                                 SqlError* error) {
  ::sqlite3* connection = database_->sqlite_connection();
  // total_changes counts rows changed by triggers as well, and unlike
  // sqlite3_changes() it does not repeat the last DML's count after DDL.
  const sqlite3_int64 changes_before = sqlite3_total_changes64(connection);
  const char* next = sql.data();
  const char* const end = sql.data() + sql.size();
  // A statement of the splitter is one statement; anything after it (a
  // comment, or SQL the splitter kept together) runs too rather than being
  // dropped silently.
  while (next < end) {
    sqlite3_stmt* statement = nullptr;
    const char* tail = nullptr;
    int result = sqlite3_prepare_v2(
        connection, next, static_cast<int>(end - next), &statement, &tail);
    if (result == SQLITE_OK && statement != nullptr) {
      do {
        result = sqlite3_step(statement);
      } while (result == SQLITE_ROW);
      if (result == SQLITE_DONE) result = SQLITE_OK;
    }
    if (result != SQLITE_OK) {
      error->message = ::ecliptix::sql::OneLine(sqlite3_errmsg(connection));
      sqlite3_finalize(statement);
      if ((result & 0xff) == SQLITE_INTERRUPT) {
        return Failure(absl::StatusCode::kCancelled, error);
      }
      return Failure(CodeForSqlite(result), error);
    }
    sqlite3_finalize(statement);
    if (tail == nullptr || tail <= next) break;
    next = tail;
  }
  return static_cast<int64_t>(sqlite3_total_changes64(connection) -
                              changes_before);
}

absl::StatusOr<int64_t> SqlRunner::ExecutePostgresql(const std::string& sql,
                                                     SqlError* error) {
  PGconn* connection = database_->postgresql_connection();
  if (armed_ && deadline_ != absl::InfiniteFuture()) {
    // statement_timeout is per statement; giving each statement what is left
    // of the step's time makes it a limit on the whole step.
    if (absl::Status status =
            SetPostgresqlTimeout(deadline_ - absl::Now(), in_transaction_);
        !status.ok()) {
      error->message = std::string(status.message());
      return Failure(PQstatus(connection) == CONNECTION_BAD
                         ? absl::StatusCode::kUnavailable
                         : absl::StatusCode::kUnknown,
                     error);
    }
  }
  // The simple query protocol: the text goes to the server as written (no
  // parameter markers to rewrite), and DO blocks, functions and COPY-free
  // scripts all run.
  PgResult result(PQexec(connection, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
      status == PGRES_EMPTY_QUERY) {
    int64_t rows = 0;
    if (!absl::SimpleAtoi(PQcmdTuples(result.get()), &rows)) rows = 0;
    // A SELECT "affects" the rows it returns; only changes count here.
    if (status == PGRES_TUPLES_OK) rows = 0;
    return rows;
  }
  if (const char* state =
          result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE)
                 : nullptr) {
    error->sql_state = state;
  }
  error->message = PostgresqlMessage(result.get(), connection);
  if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
      status == PGRES_COPY_BOTH) {
    error->message = "COPY FROM STDIN / TO STDOUT cannot run in a step";
    return Failure(absl::StatusCode::kInvalidArgument, error);
  }
  if (PQstatus(connection) == CONNECTION_BAD) {
    return Failure(absl::StatusCode::kUnavailable, error);
  }
  if (error->sql_state == kQueryCanceled) {
    // Our statement_timeout (set to the step's remaining time) or a PQcancel.
    return Failure(absl::StrContains(error->message, "statement timeout")
                       ? absl::StatusCode::kDeadlineExceeded
                       : absl::StatusCode::kCancelled,
                   error);
  }
  return Failure(CodeForSqlState(error->sql_state), error);
}

absl::StatusOr<int64_t> SqlRunner::ExecuteSoci(const std::string& sql,
                                               SqlError* error) {
  try {
    soci::statement statement(database_->session());
    statement.alloc();
    statement.prepare(sql);
    statement.define_and_bind();
    if (armed_ && deadline_ != absl::InfiniteFuture() &&
        database_->connector() == fleet::v1::CONNECTOR_ODBC) {
      // Best effort: the driver's query timeout, in whole seconds.
      const int64_t seconds =
          std::max<int64_t>(1, absl::ToInt64Seconds(deadline_ - absl::Now()));
      auto* backend =
          static_cast<soci::odbc_statement_backend*>(statement.get_backend());
      SQLSetStmtAttr(backend->hstmt_, SQL_ATTR_QUERY_TIMEOUT,
                     reinterpret_cast<SQLPOINTER>(seconds), 0);
    }
    statement.execute(true);
    const long long rows = statement.get_affected_rows();
    return rows > 0 ? rows : 0;
  } catch (const soci::odbc_soci_error& odbc_error) {
    error->sql_state =
        reinterpret_cast<const char*>(odbc_error.odbc_error_code());
    error->message = ::ecliptix::sql::OneLine(
        reinterpret_cast<const char*>(odbc_error.odbc_error_message()));
    if (error->sql_state == "HYT00") {
      return Failure(absl::StatusCode::kDeadlineExceeded, error);
    }
    if (error->sql_state == "HY008") {
      return Failure(absl::StatusCode::kCancelled, error);
    }
    return Failure(CodeForSqlState(error->sql_state), error);
  } catch (const std::exception& exception) {
    error->message = ::ecliptix::sql::DatabaseMessage(exception);
    return Failure(absl::StatusCode::kUnknown, error);
  }
}

absl::StatusOr<std::optional<std::string>> SqlRunner::QueryValue(
    const std::string& query, SqlError* error) {
  *error = SqlError();
  if (::sqlite3* connection = database_->sqlite_connection()) {
    sqlite3_stmt* statement = nullptr;
    int result =
        sqlite3_prepare_v2(connection, query.c_str(), -1, &statement, nullptr);
    std::optional<std::string> value;
    if (result == SQLITE_OK && statement != nullptr) {
      result = sqlite3_step(statement);
      if (result == SQLITE_ROW) {
        if (sqlite3_column_type(statement, 0) != SQLITE_NULL) {
          value =
              reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
        }
        result = SQLITE_OK;
      } else if (result == SQLITE_DONE) {
        result = SQLITE_OK;
      }
    }
    if (result != SQLITE_OK) {
      error->message = ::ecliptix::sql::OneLine(sqlite3_errmsg(connection));
      sqlite3_finalize(statement);
      return Failure((result & 0xff) == SQLITE_INTERRUPT
                         ? absl::StatusCode::kCancelled
                         : CodeForSqlite(result),
                     error);
    }
    sqlite3_finalize(statement);
    return value;
  }
  if (PGconn* connection = database_->postgresql_connection()) {
    PgResult result(PQexec(connection, query.c_str()));
    if (PQresultStatus(result.get()) == PGRES_TUPLES_OK) {
      if (PQntuples(result.get()) == 0 || PQnfields(result.get()) == 0 ||
          PQgetisnull(result.get(), 0, 0)) {
        return std::optional<std::string>();
      }
      return std::optional<std::string>(PQgetvalue(result.get(), 0, 0));
    }
    if (const char* state =
            result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE)
                   : nullptr) {
      error->sql_state = state;
    }
    error->message = PostgresqlMessage(result.get(), connection);
    if (PQresultStatus(result.get()) == PGRES_COMMAND_OK) {
      error->message = "the query returned no rows (is it a SELECT?)";
      return Failure(absl::StatusCode::kInvalidArgument, error);
    }
    if (error->sql_state == kQueryCanceled) {
      return Failure(absl::StatusCode::kCancelled, error);
    }
    return Failure(CodeForSqlState(error->sql_state), error);
  }
  try {
    soci::row row;
    database_->session() << query, soci::into(row);
    if (!database_->session().got_data() || row.size() == 0) {
      return std::optional<std::string>();
    }
    std::vector<bool> nulls;
    std::vector<std::string> cells = RowText(row, &nulls);
    if (nulls[0]) return std::optional<std::string>();
    return std::optional<std::string>(cells[0]);
  } catch (const std::exception& exception) {
    error->message = ::ecliptix::sql::DatabaseMessage(exception);
    return Failure(absl::StatusCode::kUnknown, error);
  }
}

}  // namespace ecliptix::agent
