#include "agent/target/target.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// One statement per dialect. A CHECK on a constant key keeps the table to one
// row even when two agents race on a fresh database: the loser's insert fails
// and it reads the winner's id.
constexpr char kCreateSqlite[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_agent_identity ("
    "singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1), "
    "database_id TEXT NOT NULL, created_at TEXT NOT NULL)";
constexpr char kCreatePostgresql[] =
    "CREATE TABLE IF NOT EXISTS ecliptix_agent_identity ("
    "singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1), "
    "database_id VARCHAR(128) NOT NULL, created_at VARCHAR(64) NOT NULL)";
// T-SQL has no CREATE TABLE IF NOT EXISTS.
constexpr char kCreateMssql[] =
    "IF OBJECT_ID(N'ecliptix_agent_identity', N'U') IS NULL "
    "CREATE TABLE ecliptix_agent_identity ("
    "singleton INT NOT NULL PRIMARY KEY CHECK (singleton = 1), "
    "database_id NVARCHAR(128) NOT NULL, created_at NVARCHAR(64) NOT NULL)";

// A table's name in the catalog, bound as :table_name.
constexpr char kTableExistsSqlite[] =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
    "AND name = :table_name";
constexpr char kTableExistsPostgresql[] =
    "SELECT CASE WHEN to_regclass(CAST(:table_name AS TEXT)) IS NULL THEN 0 "
    "ELSE 1 END";
constexpr char kTableExistsMssql[] =
    "SELECT CASE WHEN OBJECT_ID(:table_name, N'U') IS NULL THEN 0 ELSE 1 END";

constexpr char kSelectId[] =
    "SELECT database_id FROM ecliptix_agent_identity WHERE singleton = 1";
constexpr char kInsertId[] =
    "INSERT INTO ecliptix_agent_identity (singleton, database_id, created_at) "
    "VALUES (1, :database_id, :created_at)";

std::string GenerateDatabaseId() {
  absl::BitGen gen;
  return absl::StrFormat("db-%016x", absl::Uniform<uint64_t>(gen));
}

// Whether the first value of the first row is there and not "0".
bool FirstIsTrue(const QueryResult& result) {
  return !result.rows.empty() && !result.rows[0].values.empty() &&
         !result.rows[0].nulls[0] && result.rows[0].values[0] != "0";
}

}  // namespace

std::string EngineName(v1::Engine engine) {
  switch (engine) {
    case v1::ENGINE_SQLITE:
      return "sqlite";
    case v1::ENGINE_POSTGRESQL:
      return "postgresql";
    case v1::ENGINE_MSSQL:
      return "mssql";
    default:
      return "unspecified";
  }
}

std::string ConnectorName(v1::Connector connector) {
  switch (connector) {
    case v1::CONNECTOR_SQLITE:
      return "sqlite";
    case v1::CONNECTOR_LIBPQ:
      return "libpq";
    case v1::CONNECTOR_ODBC:
      return "odbc";
    default:
      return "unspecified";
  }
}

SqlParam SqlParam::Text(std::string name, std::string value) {
  SqlParam param;
  param.name = std::move(name);
  param.type = Type::kText;
  param.text = std::move(value);
  return param;
}

SqlParam SqlParam::NullText(std::string name) {
  SqlParam param;
  param.name = std::move(name);
  param.type = Type::kText;
  param.null = true;
  return param;
}

SqlParam SqlParam::Int(std::string name, int64_t value) {
  SqlParam param;
  param.name = std::move(name);
  param.type = Type::kInt;
  param.integer = value;
  return param;
}

SqlParam SqlParam::Bool(std::string name, bool value) {
  SqlParam param;
  param.name = std::move(name);
  param.type = Type::kBool;
  param.integer = value ? 1 : 0;
  return param;
}

absl::Status WithContext(absl::string_view what, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

Target::Target(v1::Connector connector, std::string redacted_url)
    : connector_(connector), redacted_url_(std::move(redacted_url)) {}

Target::~Target() = default;

void Target::SetNoticeHandler(NoticeHandler handler) {
  notice_handler_ = std::move(handler);
}

void Target::Notice(const std::string& text) {
  if (notice_handler_) {
    notice_handler_(text);
  } else {
    Logger("agent")->debug("notice from {}: {}", redacted_url_, text);
  }
}

absl::StatusOr<ToolConnection> Target::ConnectionForTools() {
  return absl::InternalError(
      absl::StrCat(redacted_url_, " has no libpq connection to back up"));
}

absl::Status Target::CopyFromFile(const std::string& file) {
  return absl::InternalError("the target has no SQLite connection");
}

absl::StatusOr<bool> Target::TableExists(const std::string& table) {
  const char* query = kTableExistsSqlite;
  if (engine_ == v1::ENGINE_POSTGRESQL) query = kTableExistsPostgresql;
  if (engine_ == v1::ENGINE_MSSQL) query = kTableExistsMssql;
  absl::StatusOr<QueryResult> exists =
      Query(query, {SqlParam::Text("table_name", table)});
  RETURN_IF_ERROR(
      WithContext(absl::StrCat("looking for table ", table), exists.status()));
  return FirstIsTrue(*exists);
}

absl::Status Target::EnsureTable(const std::string& table,
                                 const std::string& create) {
  ASSIGN_OR_RETURN(bool exists, TableExists(table));
  if (exists) return absl::OkStatus();
  const absl::Status status =
      WithContext(absl::StrCat("creating table ", table, " in ", redacted_url_),
                  Execute(create));
  if (status.ok()) return status;
  absl::StatusOr<bool> made_meanwhile = TableExists(table);
  return made_meanwhile.ok() && *made_meanwhile ? absl::OkStatus() : status;
}

absl::Status Target::CreateIdentityTable() {
  const char* create = kCreateSqlite;
  if (engine_ == v1::ENGINE_POSTGRESQL) create = kCreatePostgresql;
  if (engine_ == v1::ENGINE_MSSQL) create = kCreateMssql;
  return EnsureTable(kIdentityTable, create);
}

absl::StatusOr<std::optional<std::string>> Target::StoredDatabaseId() {
  const std::string what = "reading the database id";
  absl::StatusOr<bool> exists = TableExists(kIdentityTable);
  RETURN_IF_ERROR(WithContext(what, exists.status()));
  if (!*exists) return std::optional<std::string>();
  absl::StatusOr<QueryResult> id = Query(kSelectId);
  RETURN_IF_ERROR(WithContext(what, id.status()));
  if (id->rows.empty() || id->rows[0].values.empty() || id->rows[0].nulls[0]) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(id->rows[0].values[0]);
}

absl::StatusOr<std::string> Target::EnsureDatabaseId(
    const std::string& requested_id) {
  if (!requested_id.empty()) RETURN_IF_ERROR(ValidateDatabaseId(requested_id));
  RETURN_IF_ERROR(CreateIdentityTable());

  auto read_id = [&]() -> absl::StatusOr<std::optional<std::string>> {
    absl::StatusOr<QueryResult> result = Query(kSelectId);
    RETURN_IF_ERROR(WithContext(
        absl::StrCat("reading the database id from ", redacted_url_),
        result.status()));
    if (result->rows.empty() || result->rows[0].values.empty() ||
        result->rows[0].nulls[0]) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(std::move(result->rows[0].values[0]));
  };

  ASSIGN_OR_RETURN(std::optional<std::string> stored, read_id());
  if (!stored.has_value()) {
    std::string id = requested_id.empty() ? GenerateDatabaseId() : requested_id;
    const std::string created_at =
        absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
    const absl::Status inserted = WithContext(
        absl::StrCat("storing the database id in ", redacted_url_),
        Execute(kInsertId, {SqlParam::Text("database_id", id),
                            SqlParam::Text("created_at", created_at)}));
    if (inserted.ok()) return id;
    // Another agent on the same database may have won the race: its id is the
    // database's id.
    ASSIGN_OR_RETURN(stored, read_id());
    if (!stored.has_value()) return inserted;
  }
  if (absl::Status valid = ValidateDatabaseId(*stored); !valid.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("table ", kIdentityTable, " in ", redacted_url_,
                     " holds an invalid id: ", valid.message()));
  }
  if (!requested_id.empty() && requested_id != *stored) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", redacted_url_, " already has id \"", *stored, "\" (table ",
        kIdentityTable, "), not the requested \"", requested_id,
        "\": drop the requested id or use the stored one"));
  }
  return *std::move(stored);
}

absl::StatusOr<QueryResult> Target::QueryAtMost(
    const std::string& sql, const std::vector<SqlParam>& params,
    size_t max_rows) {
  ASSIGN_OR_RETURN(QueryResult result, Query(sql, params));
  if (result.rows.size() > max_rows) {
    result.rows_left_out = static_cast<int64_t>(result.rows.size() - max_rows);
    result.rows.resize(max_rows);
  }
  return result;
}

}  // namespace ecliptix::agent
