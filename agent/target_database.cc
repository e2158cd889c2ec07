#include "agent/target_database.h"

#include <optional>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"
#include "common/status_macros.h"
#include "soci/odbc/soci-odbc.h"
#include "soci/postgresql/soci-postgresql.h"
#include "soci/sqlite3/soci-sqlite3.h"

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
// PostgreSQL prints a NOTICE for IF NOT EXISTS on an existing table (libpq
// sends notices to stderr), so the table is looked up first; IF NOT EXISTS only
// covers a race.
constexpr char kExistsPostgresql[] =
    "SELECT CASE WHEN to_regclass('ecliptix_agent_identity') IS NULL THEN 0 "
    "ELSE 1 END";
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

constexpr char kSelectId[] =
    "SELECT database_id FROM ecliptix_agent_identity WHERE singleton = 1";
constexpr char kInsertId[] =
    "INSERT INTO ecliptix_agent_identity (singleton, database_id, created_at) "
    "VALUES (1, :database_id, :created_at)";

std::string GenerateDatabaseId() {
  absl::BitGen gen;
  return absl::StrFormat("db-%016x", absl::Uniform<uint64_t>(gen));
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

TargetDatabase::TargetDatabase(std::unique_ptr<soci::session> session,
                               std::string redacted_url)
    : session_(std::move(session)), redacted_url_(std::move(redacted_url)) {}

TargetDatabase::~TargetDatabase() {
  absl::MutexLock lock(&cancel_mutex_);
  if (postgresql_cancel_ != nullptr) PQfreeCancel(postgresql_cancel_);
}

::sqlite3* TargetDatabase::sqlite_connection() {
  if (connector_ != v1::CONNECTOR_SQLITE) return nullptr;
  // SOCI includes <sqlite3.h> inside namespace sqlite_api: the same C struct
  // under another C++ name.
  return reinterpret_cast<::sqlite3*>(
      static_cast<soci::sqlite3_session_backend*>(session_->get_backend())
          ->conn_);
}

::PGconn* TargetDatabase::postgresql_connection() {
  if (connector_ != v1::CONNECTOR_LIBPQ) return nullptr;
  return static_cast<soci::postgresql_session_backend*>(session_->get_backend())
      ->conn_;
}

void TargetDatabase::Interrupt() {
  switch (connector_) {
    case v1::CONNECTOR_SQLITE:
      // Documented as safe from any thread while the connection is open.
      sqlite_api::sqlite3_interrupt(
          static_cast<soci::sqlite3_session_backend*>(session_->get_backend())
              ->conn_);
      break;
    case v1::CONNECTOR_LIBPQ: {
      absl::MutexLock lock(&cancel_mutex_);
      if (postgresql_cancel_ != nullptr) {
        char error[256];
        PQcancel(postgresql_cancel_, error, sizeof(error));
      }
      break;
    }
    default:
      break;
  }
}

void TargetDatabase::SetNoticeHandler(
    std::function<void(const std::string&)> handler) {
  notice_handler_ = std::move(handler);
}

void TargetDatabase::NoticeReceiver(void* target, const PGresult* notice) {
  auto* database = static_cast<TargetDatabase*>(target);
  // "NOTICE: message", from the fields: libpq's formatted text pads the
  // severity and ends with a newline.
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY);
  const char* primary = PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY);
  std::string text =
      primary != nullptr
          ? absl::StrCat(severity != nullptr ? severity : "NOTICE", ": ",
                         sql::OneLine(primary))
          : sql::OneLine(PQresultErrorMessage(notice));
  if (database->notice_handler_) {
    database->notice_handler_(text);
  } else {
    Logger("agent")->debug("notice from {}: {}", database->redacted_url_, text);
  }
}

absl::StatusOr<std::unique_ptr<TargetDatabase>> TargetDatabase::Open(
    const std::string& url) {
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(url));
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> session,
                   sql::OpenSession(parsed));
  auto database =
      absl::WrapUnique(new TargetDatabase(std::move(session), parsed.redacted));
  switch (parsed.backend) {
    case sql::Backend::kSqlite:
      database->connector_ = v1::CONNECTOR_SQLITE;
      break;
    case sql::Backend::kPostgresql:
      database->connector_ = v1::CONNECTOR_LIBPQ;
      break;
    case sql::Backend::kOdbc:
      database->connector_ = v1::CONNECTOR_ODBC;
      break;
  }
  RETURN_IF_ERROR(database->DetectEngine());
  if (PGconn* connection = database->postgresql_connection()) {
    PQsetNoticeReceiver(connection, &TargetDatabase::NoticeReceiver,
                        database.get());
    absl::MutexLock lock(&database->cancel_mutex_);
    database->postgresql_cancel_ = PQgetCancel(connection);
  }
  return database;
}

absl::Status TargetDatabase::DetectEngine() {
  const std::string what =
      absl::StrCat("detecting the engine of ", redacted_url_);
  switch (connector_) {
    case v1::CONNECTOR_SQLITE:
      engine_ = v1::ENGINE_SQLITE;
      break;
    case v1::CONNECTOR_LIBPQ:
      engine_ = v1::ENGINE_POSTGRESQL;
      break;
    case v1::CONNECTOR_ODBC: {
      // Only the driver knows what is behind a DSN; SOCI asks it (SQLGetInfo
      // SQL_DBMS_NAME).
      soci::odbc_session_backend::database_product product =
          soci::odbc_session_backend::prod_unknown;
      RETURN_IF_ERROR(sql::Guard(what, [&] {
        product =
            static_cast<soci::odbc_session_backend*>(session_->get_backend())
                ->get_database_product();
      }));
      switch (product) {
        case soci::odbc_session_backend::prod_mssql:
          engine_ = v1::ENGINE_MSSQL;
          break;
        case soci::odbc_session_backend::prod_postgresql:
          engine_ = v1::ENGINE_POSTGRESQL;
          break;
        case soci::odbc_session_backend::prod_sqlite:
          engine_ = v1::ENGINE_SQLITE;
          break;
        default:
          return absl::FailedPreconditionError(
              absl::StrCat("the ODBC data source ", redacted_url_,
                           " is not SQL Server, PostgreSQL or SQLite, which "
                           "the agent does not support"));
      }
      break;
    }
    default:
      return absl::InternalError("unknown connector");
  }
  const char* query = nullptr;
  switch (engine_) {
    case v1::ENGINE_SQLITE:
      query = "SELECT sqlite_version()";
      break;
    case v1::ENGINE_POSTGRESQL:
      query = "SHOW server_version";
      break;
    default:
      query = "SELECT @@VERSION";
      break;
  }
  std::string version;
  RETURN_IF_ERROR(
      sql::Guard(what, [&] { *session_ << query, soci::into(version); }));
  // SQL Server's @@VERSION spans several lines; the first names the product and
  // version.
  engine_version_ = sql::FirstLine(version);
  if (engine_version_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": the database reported an empty version"));
  }
  return absl::OkStatus();
}

absl::Status TargetDatabase::CreateIdentityTable() {
  const std::string what =
      absl::StrCat("creating table ", kIdentityTable, " in ", redacted_url_);
  return sql::Guard(what, [&] {
    switch (engine_) {
      case v1::ENGINE_SQLITE:
        *session_ << kCreateSqlite;
        break;
      case v1::ENGINE_POSTGRESQL: {
        int exists = 0;
        *session_ << kExistsPostgresql, soci::into(exists);
        if (exists == 0) *session_ << kCreatePostgresql;
        break;
      }
      default:
        *session_ << kCreateMssql;
        break;
    }
  });
}

absl::StatusOr<std::string> TargetDatabase::EnsureDatabaseId(
    const std::string& requested_id) {
  if (!requested_id.empty()) RETURN_IF_ERROR(ValidateDatabaseId(requested_id));
  RETURN_IF_ERROR(CreateIdentityTable());

  auto read_id = [&]() -> absl::StatusOr<std::optional<std::string>> {
    std::string id;
    soci::indicator indicator = soci::i_null;
    bool found = false;
    RETURN_IF_ERROR(sql::Guard(
        absl::StrCat("reading the database id from ", redacted_url_), [&] {
          *session_ << kSelectId, soci::into(id, indicator);
          found = session_->got_data() && indicator == soci::i_ok;
        }));
    if (!found) return std::optional<std::string>();
    return std::optional<std::string>(std::move(id));
  };

  ASSIGN_OR_RETURN(std::optional<std::string> stored, read_id());
  if (!stored.has_value()) {
    std::string id = requested_id.empty() ? GenerateDatabaseId() : requested_id;
    const std::string created_at =
        absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
    const absl::Status inserted = sql::Guard(
        absl::StrCat("storing the database id in ", redacted_url_), [&] {
          *session_ << kInsertId, soci::use(id, "database_id"),
              soci::use(created_at, "created_at");
        });
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

}  // namespace ecliptix::agent
