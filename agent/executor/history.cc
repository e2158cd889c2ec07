#include "agent/executor/history.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/bundle/bundle.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Text for times and names keeps the table readable and the same on every
// engine; the times are UTC RFC 3339 with milliseconds, so they sort as text.
constexpr char kCreateSqlite[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_schema_history ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "bundle_name TEXT NOT NULL, bundle_version TEXT NOT NULL, "
    "bundle_id TEXT NOT NULL, phase TEXT NOT NULL, step TEXT NOT NULL, "
    "kind TEXT NOT NULL, checksum TEXT NOT NULL, outcome TEXT NOT NULL, "
    "started_at TEXT NOT NULL, finished_at TEXT, "
    "duration_ms INTEGER NOT NULL DEFAULT 0, "
    "rows_affected INTEGER NOT NULL DEFAULT 0, "
    "agent_version TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', "
    "is_current INTEGER NOT NULL DEFAULT 0)";
constexpr char kCreatePostgresql[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_schema_history ("
    "id BIGSERIAL PRIMARY KEY, "
    "bundle_name TEXT NOT NULL, bundle_version TEXT NOT NULL, "
    "bundle_id TEXT NOT NULL, phase TEXT NOT NULL, step TEXT NOT NULL, "
    "kind TEXT NOT NULL, checksum TEXT NOT NULL, outcome TEXT NOT NULL, "
    "started_at TEXT NOT NULL, finished_at TEXT, "
    "duration_ms BIGINT NOT NULL DEFAULT 0, "
    "rows_affected BIGINT NOT NULL DEFAULT 0, "
    "agent_version TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', "
    "is_current INTEGER NOT NULL DEFAULT 0)";
// T-SQL has no CREATE TABLE IF NOT EXISTS. Key columns are bounded so the
// unique index fits SQL Server's 1700-byte key limit.
constexpr char kCreateMssql[] =
    "IF OBJECT_ID(N'ecliptix_schema_history', N'U') IS NULL "
    "CREATE TABLE ecliptix_schema_history ("
    "id BIGINT IDENTITY(1,1) PRIMARY KEY, "
    "bundle_name NVARCHAR(200) NOT NULL, bundle_version NVARCHAR(200) NOT "
    "NULL, bundle_id NVARCHAR(100) NOT NULL, phase NVARCHAR(200) NOT NULL, "
    "step NVARCHAR(200) NOT NULL, kind NVARCHAR(20) NOT NULL, "
    "checksum NVARCHAR(100) NOT NULL, outcome NVARCHAR(20) NOT NULL, "
    "started_at NVARCHAR(40) NOT NULL, finished_at NVARCHAR(40) NULL, "
    "duration_ms BIGINT NOT NULL DEFAULT 0, "
    "rows_affected BIGINT NOT NULL DEFAULT 0, "
    "agent_version NVARCHAR(100) NOT NULL, "
    "error NVARCHAR(MAX) NOT NULL DEFAULT '', "
    "is_current INT NOT NULL DEFAULT 0)";

// At most one current row per step, enforced by the database itself: two
// agents racing on one database cannot both record the step. All three
// engines have partial (filtered) unique indexes.
constexpr char kCreateIndex[] =
    "CREATE UNIQUE INDEX ecliptix_schema_history_current "
    "ON ecliptix_schema_history (bundle_name, phase, step) "
    "WHERE is_current = 1";

constexpr char kColumns[] =
    "id, bundle_name, bundle_version, bundle_id, phase, step, kind, checksum, "
    "outcome, started_at, finished_at, duration_ms, rows_affected, "
    "agent_version, error, is_current";

constexpr char kInsert[] =
    "INSERT INTO ecliptix_schema_history (bundle_name, bundle_version, "
    "bundle_id, phase, step, kind, checksum, outcome, started_at, "
    "finished_at, duration_ms, rows_affected, agent_version, error, "
    "is_current) VALUES (:bundle_name, :bundle_version, :bundle_id, :phase, "
    ":step, :kind, :checksum, :outcome, :started_at, :finished_at, "
    ":duration_ms, :rows_affected, :agent_version, :error, :is_current)";

constexpr char kUncurrent[] =
    "UPDATE ecliptix_schema_history SET is_current = 0 "
    "WHERE bundle_name = :bundle_name AND phase = :phase AND step = :step "
    "AND is_current = 1";

constexpr char kFinishCurrent[] =
    "UPDATE ecliptix_schema_history SET outcome = :outcome, "
    "finished_at = :finished_at, duration_ms = :duration_ms, "
    "rows_affected = :rows_affected, error = :error "
    "WHERE bundle_name = :bundle_name AND phase = :phase AND step = :step "
    "AND is_current = 1";

constexpr char kClear[] =
    "UPDATE ecliptix_schema_history SET outcome = :outcome, is_current = 0, "
    "error = :error WHERE id = :id";

constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%E3SZ";

int64_t ToInt(const std::string& text) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return 0;
  return value;
}

HistoryRow ToHistoryRow(SqlRow row) {
  std::vector<std::string> cells = std::move(row.values);
  cells.resize(16);
  HistoryRow result;
  result.id = ToInt(cells[0]);
  result.bundle_name = std::move(cells[1]);
  result.bundle_version = std::move(cells[2]);
  result.bundle_id = std::move(cells[3]);
  result.phase = std::move(cells[4]);
  result.step = std::move(cells[5]);
  result.kind = std::move(cells[6]);
  result.checksum = std::move(cells[7]);
  result.outcome = std::move(cells[8]);
  result.started_at = ParseHistoryTime(cells[9]);
  result.finished_at = ParseHistoryTime(cells[10]);
  result.duration_ms = ToInt(cells[11]);
  result.rows_affected = ToInt(cells[12]);
  result.agent_version = std::move(cells[13]);
  result.error = std::move(cells[14]);
  result.is_current = ToInt(cells[15]) != 0;
  return result;
}

}  // namespace

std::string StepKindText(v1::StepKind kind) {
  switch (kind) {
    case v1::STEP_KIND_VERSIONED:
      return "VERSIONED";
    case v1::STEP_KIND_REPEATABLE:
      return "REPEATABLE";
    default:
      return "UNSPECIFIED";
  }
}

std::string FormatHistoryTime(absl::Time time) {
  if (time == absl::InfinitePast()) return "";
  return absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone());
}

absl::Time ParseHistoryTime(const std::string& text) {
  absl::Time time;
  std::string error;
  if (text.empty() ||
      !absl::ParseTime(kTimeFormat, text, absl::UTCTimeZone(), &time, &error)) {
    return absl::InfinitePast();
  }
  return time;
}

bool IsInEffect(const std::string& outcome) {
  return outcome == kOutcomeApplied || outcome == kOutcomeBaselined;
}

History::History(Target* database) : database_(database) {}

v1::Dialect History::dialect() const {
  return bundle::DialectForEngine(database_->engine());
}

absl::StatusOr<bool> History::Exists() {
  return database_->TableExists(kHistoryTable);
}

absl::Status History::Ensure() {
  ASSIGN_OR_RETURN(bool exists, Exists());
  if (exists) return absl::OkStatus();
  const char* create = kCreateSqlite;
  if (dialect() == v1::DIALECT_POSTGRESQL) create = kCreatePostgresql;
  if (dialect() == v1::DIALECT_MSSQL) create = kCreateMssql;
  // Table and index together, so no agent ever sees the table without its
  // guard.
  absl::Status status = database_->Begin();
  if (status.ok()) status = database_->Execute(create);
  if (status.ok()) status = database_->Execute(kCreateIndex);
  if (status.ok()) status = database_->Commit();
  status = WithContext(absl::StrCat("creating table ", kHistoryTable), status);
  if (!status.ok()) {
    database_->Rollback().IgnoreError();
    // Another agent may have created it meanwhile.
    ASSIGN_OR_RETURN(exists, Exists());
    if (exists) return absl::OkStatus();
  }
  return status;
}

absl::StatusOr<CurrentRows> History::LoadCurrent(
    const std::string& bundle_name) {
  CurrentRows rows;
  ASSIGN_OR_RETURN(bool exists, Exists());
  if (!exists) return rows;
  const std::string query =
      absl::StrCat("SELECT ", kColumns, " FROM ", kHistoryTable,
                   " WHERE bundle_name = :bundle_name AND is_current = 1");
  absl::StatusOr<QueryResult> result =
      database_->Query(query, {SqlParam::Text("bundle_name", bundle_name)});
  RETURN_IF_ERROR(WithContext(absl::StrCat("reading table ", kHistoryTable),
                              result.status()));
  for (SqlRow& row : result->rows) {
    HistoryRow history_row = ToHistoryRow(std::move(row));
    auto key = std::make_pair(history_row.phase, history_row.step);
    rows[key] = std::move(history_row);
  }
  return rows;
}

absl::StatusOr<std::vector<HistoryRow>> History::LoadAll() {
  std::vector<HistoryRow> rows;
  ASSIGN_OR_RETURN(bool exists, Exists());
  if (!exists) return rows;
  const std::string query = absl::StrCat("SELECT ", kColumns, " FROM ",
                                         kHistoryTable, " ORDER BY id");
  absl::StatusOr<QueryResult> result = database_->Query(query);
  RETURN_IF_ERROR(WithContext(absl::StrCat("reading table ", kHistoryTable),
                              result.status()));
  for (SqlRow& row : result->rows) rows.push_back(ToHistoryRow(std::move(row)));
  return rows;
}

absl::StatusOr<std::vector<HistoryRow>> History::LoadStep(
    const std::string& bundle_name, const std::string& phase,
    const std::string& step) {
  std::vector<HistoryRow> rows;
  ASSIGN_OR_RETURN(bool exists, Exists());
  if (!exists) return rows;
  const std::string query = absl::StrCat(
      "SELECT ", kColumns, " FROM ", kHistoryTable,
      " WHERE bundle_name = :bundle_name AND phase = :phase AND step = :step"
      " ORDER BY id");
  absl::StatusOr<QueryResult> result = database_->Query(
      query, {SqlParam::Text("bundle_name", bundle_name),
              SqlParam::Text("phase", phase), SqlParam::Text("step", step)});
  RETURN_IF_ERROR(WithContext(absl::StrCat("reading table ", kHistoryTable),
                              result.status()));
  for (SqlRow& row : result->rows) rows.push_back(ToHistoryRow(std::move(row)));
  return rows;
}

absl::Status History::Insert(const HistoryRow& row, bool current) {
  const std::string finished_at = FormatHistoryTime(row.finished_at);
  return WithContext(
      absl::StrCat("recording step ", row.phase, "/", row.step, " in ",
                   kHistoryTable),
      database_->Execute(
          kInsert,
          {SqlParam::Text("bundle_name", row.bundle_name),
           SqlParam::Text("bundle_version", row.bundle_version),
           SqlParam::Text("bundle_id", row.bundle_id),
           SqlParam::Text("phase", row.phase), SqlParam::Text("step", row.step),
           SqlParam::Text("kind", row.kind),
           SqlParam::Text("checksum", row.checksum),
           SqlParam::Text("outcome", row.outcome),
           SqlParam::Text("started_at", FormatHistoryTime(row.started_at)),
           finished_at.empty() ? SqlParam::NullText("finished_at")
                               : SqlParam::Text("finished_at", finished_at),
           SqlParam::Int("duration_ms", row.duration_ms),
           SqlParam::Int("rows_affected", row.rows_affected),
           SqlParam::Text("agent_version", row.agent_version),
           SqlParam::Text("error", row.error),
           SqlParam::Bool("is_current", current)}));
}

absl::Status History::InsertCurrent(const HistoryRow& row) {
  RETURN_IF_ERROR(WithContext(
      absl::StrCat("updating ", kHistoryTable, " for step ", row.phase, "/",
                   row.step),
      database_->Execute(kUncurrent,
                         {SqlParam::Text("bundle_name", row.bundle_name),
                          SqlParam::Text("phase", row.phase),
                          SqlParam::Text("step", row.step)})));
  return Insert(row, /*current=*/true);
}

absl::Status History::InsertRecord(const HistoryRow& row) {
  return Insert(row, /*current=*/false);
}

absl::Status History::FinishCurrent(const HistoryRow& row) {
  return WithContext(
      absl::StrCat("updating ", kHistoryTable, " for step ", row.phase, "/",
                   row.step),
      database_->Execute(
          kFinishCurrent,
          {SqlParam::Text("outcome", row.outcome),
           SqlParam::Text("finished_at", FormatHistoryTime(row.finished_at)),
           SqlParam::Int("duration_ms", row.duration_ms),
           SqlParam::Int("rows_affected", row.rows_affected),
           SqlParam::Text("error", row.error),
           SqlParam::Text("bundle_name", row.bundle_name),
           SqlParam::Text("phase", row.phase),
           SqlParam::Text("step", row.step)}));
}

absl::Status History::ClearCurrent(const HistoryRow& current,
                                   const std::string& note) {
  const std::string outcome =
      current.outcome == kOutcomeRunning ? kOutcomeUnknown : current.outcome;
  std::string error = current.error;
  if (!note.empty()) {
    error = error.empty() ? note : absl::StrCat(error, "; ", note);
  }
  return WithContext(
      absl::StrCat("updating ", kHistoryTable, " for step ", current.phase, "/",
                   current.step),
      database_->Execute(kClear, {SqlParam::Text("outcome", outcome),
                                  SqlParam::Text("error", error),
                                  SqlParam::Int("id", current.id)}));
}

}  // namespace ecliptix::agent
