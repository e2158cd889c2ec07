#include "agent/target/sqlite_target.h"

#include <sqlite3.h>

#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/target/sqlite_handle.h"
#include "common/sql/session.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// SQLite calls the progress handler every this many virtual machine
// instructions: often enough to stop within milliseconds, rarely enough to
// cost nothing measurable.
constexpr int kProgressInstructions = 10000;

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
    case SQLITE_INTERRUPT:
      return absl::StatusCode::kCancelled;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

SqliteTarget::SqliteTarget(std::unique_ptr<soci::session> session,
                           std::string redacted_url)
    : SociTarget(v1::CONNECTOR_SQLITE, std::move(session),
                 std::move(redacted_url)),
      connection_(SqliteHandle(this->session())) {}

absl::StatusOr<std::unique_ptr<Target>> SqliteTarget::Open(
    std::unique_ptr<soci::session> session, std::string redacted_url) {
  auto target = absl::WrapUnique(
      new SqliteTarget(std::move(session), std::move(redacted_url)));
  target->engine_ = v1::ENGINE_SQLITE;
  if (absl::Status status = target->ReadVersion("SELECT sqlite_version()");
      !status.ok()) {
    return status;
  }
  return std::unique_ptr<Target>(std::move(target));
}

absl::Status SqliteTarget::Begin() {
  // SOCI's begin() says BEGIN (deferred); COMMIT and ROLLBACK are the same.
  return Execute("BEGIN IMMEDIATE", {}, nullptr);
}

absl::Status SqliteTarget::BeginReadOnly() { return SociTarget::Begin(); }

absl::Status SqliteTarget::Rollback() {
  // SQLite rolls an interrupted transaction back by itself; a ROLLBACK then
  // fails with "no transaction is active".
  if (sqlite3_get_autocommit(connection_) != 0) return absl::OkStatus();
  return SociTarget::Rollback();
}

void SqliteTarget::SetLimits(absl::Time deadline,
                             const std::atomic<bool>* cancelled,
                             bool in_transaction) {
  deadline_ = deadline;
  cancelled_ = cancelled;
  sqlite3_progress_handler(connection_, kProgressInstructions,
                           &SqliteTarget::ProgressHandler, this);
}

void SqliteTarget::ClearLimits() {
  sqlite3_progress_handler(connection_, 0, nullptr, nullptr);
  deadline_ = absl::InfiniteFuture();
  cancelled_ = nullptr;
}

int SqliteTarget::ProgressHandler(void* target) {
  auto* self = static_cast<SqliteTarget*>(target);
  if (self->cancelled_ != nullptr && self->cancelled_->load()) return 1;
  return absl::Now() >= self->deadline_ ? 1 : 0;
}

void SqliteTarget::Interrupt() {
  // Documented as safe from any thread while the connection is open.
  sqlite3_interrupt(connection_);
}

absl::StatusOr<int64_t> SqliteTarget::RunStatement(const std::string& sql,
                                                   SqlError* error) {
  // total_changes counts rows changed by triggers as well, and unlike
  // sqlite3_changes() it does not repeat the last DML's count after DDL.
  const sqlite3_int64 changes_before = sqlite3_total_changes64(connection_);
  const char* next = sql.data();
  const char* const end = sql.data() + sql.size();
  // A statement of the splitter is one statement; anything after it (a
  // comment, or SQL the splitter kept together) runs too rather than being
  // dropped silently.
  while (next < end) {
    sqlite3_stmt* statement = nullptr;
    const char* tail = nullptr;
    int result = sqlite3_prepare_v2(
        connection_, next, static_cast<int>(end - next), &statement, &tail);
    if (result == SQLITE_OK && statement != nullptr) {
      do {
        result = sqlite3_step(statement);
      } while (result == SQLITE_ROW);
      if (result == SQLITE_DONE) result = SQLITE_OK;
    }
    if (result != SQLITE_OK) {
      error->message = ::ecliptix::sql::OneLine(sqlite3_errmsg(connection_));
      sqlite3_finalize(statement);
      return absl::Status(CodeForSqlite(result), error->message);
    }
    sqlite3_finalize(statement);
    if (tail == nullptr || tail <= next) break;
    next = tail;
  }
  return static_cast<int64_t>(sqlite3_total_changes64(connection_) -
                              changes_before);
}

absl::StatusOr<std::optional<std::string>> SqliteTarget::RunScalar(
    const std::string& query, SqlError* error) {
  sqlite3_stmt* statement = nullptr;
  int result =
      sqlite3_prepare_v2(connection_, query.c_str(), -1, &statement, nullptr);
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
    error->message = ::ecliptix::sql::OneLine(sqlite3_errmsg(connection_));
    sqlite3_finalize(statement);
    return absl::Status(CodeForSqlite(result), error->message);
  }
  sqlite3_finalize(statement);
  return value;
}

absl::Status SqliteTarget::CopyFromFile(const std::string& file) {
  ::sqlite3* source = nullptr;
  int rc =
      sqlite3_open_v2(file.c_str(), &source, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message =
        source != nullptr ? sqlite3_errmsg(source) : sqlite3_errstr(rc);
    sqlite3_close(source);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the backup: ", message));
  }
  sqlite3_backup* backup =
      sqlite3_backup_init(connection_, "main", source, "main");
  if (backup == nullptr) {
    const std::string message = sqlite3_errmsg(connection_);
    sqlite3_close(source);
    return absl::FailedPreconditionError(message);
  }
  // Another connection may hold a lock for a while: retry for about 30 s, as
  // the agent's own busy timeout does.
  int busy_retries = 0;
  do {
    rc = sqlite3_backup_step(backup, -1);
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && busy_retries++ < 300) {
      sqlite3_sleep(100);
    } else if (rc != SQLITE_OK) {
      break;
    }
  } while (true);
  const int step_rc = rc;
  rc = sqlite3_backup_finish(backup);
  std::string message;
  if (step_rc != SQLITE_DONE) {
    message = sqlite3_errstr(step_rc);
  } else if (rc != SQLITE_OK) {
    message = sqlite3_errmsg(connection_);
  }
  sqlite3_close(source);
  if (!message.empty()) {
    if (step_rc == SQLITE_BUSY || step_rc == SQLITE_LOCKED) {
      return absl::UnavailableError(absl::StrCat(
          "the database stayed locked by another connection: ", message));
    }
    return absl::InternalError(message);
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
