#include "agent/metrics/cursor_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/bundle/bundle.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Times are UTC RFC 3339 text, as in the schema history.
constexpr char kCreateSqlite[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_metric_cursors ("
    "bundle_name TEXT NOT NULL, collector TEXT NOT NULL, "
    "cursor_value INTEGER NOT NULL, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (bundle_name, collector))";
constexpr char kCreatePostgresql[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_metric_cursors ("
    "bundle_name TEXT NOT NULL, collector TEXT NOT NULL, "
    "cursor_value BIGINT NOT NULL, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (bundle_name, collector))";
// Bounded key columns: SQL Server's index keys are at most 1700 bytes.
constexpr char kCreateMssql[] =
    "IF OBJECT_ID(N'ecliptix_metric_cursors', N'U') IS NULL "
    "CREATE TABLE ecliptix_metric_cursors ("
    "bundle_name NVARCHAR(200) NOT NULL, collector NVARCHAR(200) NOT NULL, "
    "cursor_value BIGINT NOT NULL, updated_at NVARCHAR(40) NOT NULL, "
    "PRIMARY KEY (bundle_name, collector))";

constexpr char kSelect[] =
    "SELECT cursor_value FROM ecliptix_metric_cursors "
    "WHERE bundle_name = :bundle_name AND collector = :collector";
// Delete and insert in one transaction: the same on every engine, where an
// upsert is spelled three ways.
constexpr char kDelete[] =
    "DELETE FROM ecliptix_metric_cursors "
    "WHERE bundle_name = :bundle_name AND collector = :collector";
constexpr char kInsert[] =
    "INSERT INTO ecliptix_metric_cursors (bundle_name, collector, "
    "cursor_value, updated_at) VALUES (:bundle_name, :collector, "
    ":cursor_value, :updated_at)";

}  // namespace

CursorStore::CursorStore(Target* database) : database_(database) {}

absl::StatusOr<bool> CursorStore::Exists() {
  return database_->TableExists(kMetricCursorTable);
}

absl::Status CursorStore::Ensure() {
  if (ensured_) return absl::OkStatus();
  const v1::Dialect dialect = bundle::DialectForEngine(database_->engine());
  const char* create = kCreateSqlite;
  if (dialect == v1::DIALECT_POSTGRESQL) create = kCreatePostgresql;
  if (dialect == v1::DIALECT_MSSQL) create = kCreateMssql;
  RETURN_IF_ERROR(database_->EnsureTable(kMetricCursorTable, create));
  ensured_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> CursorStore::Load(
    const std::string& bundle_name, const std::string& collector) {
  if (!ensured_) {
    ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return std::optional<int64_t>();
    ensured_ = true;
  }
  absl::StatusOr<QueryResult> result =
      database_->Query(kSelect, {SqlParam::Text("bundle_name", bundle_name),
                                 SqlParam::Text("collector", collector)});
  RETURN_IF_ERROR(WithContext(
      absl::StrCat("reading table ", kMetricCursorTable), result.status()));
  if (result->rows.empty() || result->rows[0].values.empty() ||
      result->rows[0].nulls[0]) {
    return std::optional<int64_t>();
  }
  int64_t cursor = 0;
  if (!absl::SimpleAtoi(result->rows[0].values[0], &cursor)) {
    return absl::DataLossError(absl::StrCat(
        "table ", kMetricCursorTable, " holds \"", result->rows[0].values[0],
        "\" as the cursor of collector ", collector, ": not an integer"));
  }
  return std::optional<int64_t>(cursor);
}

absl::Status CursorStore::Save(const std::string& bundle_name,
                               const std::string& collector, int64_t cursor) {
  RETURN_IF_ERROR(Ensure());
  const std::string updated_at = absl::FormatTime(
      "%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::vector<SqlParam> key = {SqlParam::Text("bundle_name", bundle_name),
                                     SqlParam::Text("collector", collector)};
  absl::Status status = database_->Begin();
  if (status.ok()) status = database_->Execute(kDelete, key);
  if (status.ok()) {
    status =
        database_->Execute(kInsert, {SqlParam::Text("bundle_name", bundle_name),
                                     SqlParam::Text("collector", collector),
                                     SqlParam::Int("cursor_value", cursor),
                                     SqlParam::Text("updated_at", updated_at)});
  }
  if (status.ok()) status = database_->Commit();
  if (!status.ok()) {
    database_->Rollback().IgnoreError();
    return WithContext(absl::StrCat("storing the cursor of collector ",
                                    collector, " in ", kMetricCursorTable),
                       status);
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
