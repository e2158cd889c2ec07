#include "agent/executor/call_log.h"

#include "absl/strings/str_cat.h"
#include "common/bundle/bundle.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kCreateSqlite[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_operation_calls ("
    "operation TEXT NOT NULL, minute_start INTEGER NOT NULL, "
    "calls INTEGER NOT NULL, failures INTEGER NOT NULL, "
    "reported_calls INTEGER NOT NULL DEFAULT 0, "
    "reported_failures INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (operation, minute_start))";
constexpr char kCreatePostgresql[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_operation_calls ("
    "operation TEXT NOT NULL, minute_start BIGINT NOT NULL, "
    "calls BIGINT NOT NULL, failures BIGINT NOT NULL, "
    "reported_calls BIGINT NOT NULL DEFAULT 0, "
    "reported_failures BIGINT NOT NULL DEFAULT 0, "
    "PRIMARY KEY (operation, minute_start))";
// Bounded key columns: SQL Server's index keys are at most 1700 bytes.
constexpr char kCreateMssql[] =
    "IF OBJECT_ID(N'ecliptix_operation_calls', N'U') IS NULL "
    "CREATE TABLE ecliptix_operation_calls ("
    "operation NVARCHAR(200) NOT NULL, minute_start BIGINT NOT NULL, "
    "calls BIGINT NOT NULL, failures BIGINT NOT NULL, "
    "reported_calls BIGINT NOT NULL DEFAULT 0, "
    "reported_failures BIGINT NOT NULL DEFAULT 0, "
    "PRIMARY KEY (operation, minute_start))";

// An upsert, so that two callers counting the first call of a minute at once
// never collide on the key (one of them would fail the call otherwise).
// SQLite (3.24+) and PostgreSQL spell it the same way.
constexpr char kUpsert[] =
    "INSERT INTO ecliptix_operation_calls (operation, minute_start, calls, "
    "failures, reported_calls, reported_failures) VALUES (:operation, "
    ":minute_start, 1, :failures, 0, 0) ON CONFLICT (operation, minute_start) "
    "DO UPDATE SET calls = ecliptix_operation_calls.calls + 1, "
    "failures = ecliptix_operation_calls.failures + EXCLUDED.failures";
// SQL Server: an update holding the key range, then an insert when it found
// no row (nobody else can insert that key meanwhile).
constexpr char kUpdateMssql[] =
    "UPDATE ecliptix_operation_calls WITH (UPDLOCK, HOLDLOCK) "
    "SET calls = calls + 1, failures = failures + :failures "
    "WHERE operation = :operation AND minute_start = :minute_start";
constexpr char kInsertMssql[] =
    "INSERT INTO ecliptix_operation_calls (operation, minute_start, calls, "
    "failures, reported_calls, reported_failures) VALUES (:operation, "
    ":minute_start, 1, :failures, 0, 0)";

}  // namespace

OperationCallLog::OperationCallLog(Target* database) : database_(database) {}

absl::StatusOr<bool> OperationCallLog::Exists() {
  return database_->TableExists(kOperationCallTable);
}

absl::Status OperationCallLog::Ensure() {
  if (ensured_) return absl::OkStatus();
  const v1::Dialect dialect = bundle::DialectForEngine(database_->engine());
  const char* create = kCreateSqlite;
  if (dialect == v1::DIALECT_POSTGRESQL) create = kCreatePostgresql;
  if (dialect == v1::DIALECT_MSSQL) create = kCreateMssql;
  RETURN_IF_ERROR(database_->EnsureTable(kOperationCallTable, create));
  ensured_ = true;
  return absl::OkStatus();
}

absl::Status OperationCallLog::Record(const std::string& operation,
                                      absl::Time at, bool failed) {
  const int64_t minute_start = absl::ToUnixSeconds(at) / 60 * 60;
  const int64_t failures = failed ? 1 : 0;
  absl::Status status;
  if (bundle::DialectForEngine(database_->engine()) == v1::DIALECT_MSSQL) {
    int64_t updated = 0;
    status = database_->Execute(kUpdateMssql,
                                {SqlParam::Int("failures", failures),
                                 SqlParam::Text("operation", operation),
                                 SqlParam::Int("minute_start", minute_start)},
                                &updated);
    if (status.ok() && updated == 0) {
      status = database_->Execute(kInsertMssql,
                                  {SqlParam::Text("operation", operation),
                                   SqlParam::Int("minute_start", minute_start),
                                   SqlParam::Int("failures", failures)});
    }
  } else {
    status = database_->Execute(kUpsert,
                                {SqlParam::Text("operation", operation),
                                 SqlParam::Int("minute_start", minute_start),
                                 SqlParam::Int("failures", failures)});
  }
  return WithContext(absl::StrCat("counting a call of ", operation, " in ",
                                  kOperationCallTable),
                     status);
}

absl::Status OperationCallLog::RecordAlone(const std::string& operation,
                                           absl::Time at, bool failed) {
  absl::Status status = database_->Begin();
  if (status.ok()) status = Record(operation, at, failed);
  if (status.ok()) status = database_->Commit();
  if (!status.ok()) database_->Rollback().IgnoreError();
  return status;
}

}  // namespace ecliptix::agent
