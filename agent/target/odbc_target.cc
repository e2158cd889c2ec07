#include "agent/target/odbc_target.h"

#include <algorithm>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/target/row_text.h"
#include "common/sql/session.h"
#include "soci/odbc/soci-odbc.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// ODBC's own states first: the driver's query timeout and cancellation.
absl::StatusCode CodeForOdbcState(absl::string_view state) {
  if (state == "HYT00") return absl::StatusCode::kDeadlineExceeded;
  if (state == "HY008") return absl::StatusCode::kCancelled;
  return CodeForSqlState(state);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OdbcTarget::Open(
    std::unique_ptr<soci::session> session, std::string redacted_url) {
  auto target = absl::WrapUnique(new OdbcTarget(
      v1::CONNECTOR_ODBC, std::move(session), std::move(redacted_url)));
  if (absl::Status status = target->DetectEngine(); !status.ok()) {
    return status;
  }
  const char* query = "SELECT @@VERSION";
  if (target->engine_ == v1::ENGINE_SQLITE) query = "SELECT sqlite_version()";
  if (target->engine_ == v1::ENGINE_POSTGRESQL) query = "SHOW server_version";
  if (absl::Status status = target->ReadVersion(query); !status.ok()) {
    return status;
  }
  return std::unique_ptr<Target>(std::move(target));
}

absl::Status OdbcTarget::DetectEngine() {
  // Only the driver knows what is behind a DSN; SOCI asks it (SQLGetInfo
  // SQL_DBMS_NAME).
  soci::odbc_session_backend::database_product product =
      soci::odbc_session_backend::prod_unknown;
  try {
    product = static_cast<soci::odbc_session_backend*>(session().get_backend())
                  ->get_database_product();
  } catch (const std::exception& error) {
    return WithContext(absl::StrCat("detecting the engine of ", redacted_url()),
                       SociErrorToStatus(error));
  }
  switch (product) {
    case soci::odbc_session_backend::prod_mssql:
      engine_ = v1::ENGINE_MSSQL;
      return absl::OkStatus();
    case soci::odbc_session_backend::prod_postgresql:
      engine_ = v1::ENGINE_POSTGRESQL;
      return absl::OkStatus();
    case soci::odbc_session_backend::prod_sqlite:
      engine_ = v1::ENGINE_SQLITE;
      return absl::OkStatus();
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("the ODBC data source ", redacted_url(),
                       " is not SQL Server, PostgreSQL or SQLite, which "
                       "the agent does not support"));
  }
}

void OdbcTarget::SetLimits(absl::Time deadline,
                           const std::atomic<bool>* cancelled,
                           bool in_transaction) {
  deadline_ = deadline;
}

void OdbcTarget::ClearLimits() { deadline_ = absl::InfiniteFuture(); }

void OdbcTarget::BeforeExecute(soci::statement& statement) {
  if (deadline_ == absl::InfiniteFuture()) return;
  // Best effort: the driver's query timeout, in whole seconds.
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(deadline_ - absl::Now()));
  auto* backend =
      static_cast<soci::odbc_statement_backend*>(statement.get_backend());
  SQLSetStmtAttr(backend->hstmt_, SQL_ATTR_QUERY_TIMEOUT,
                 reinterpret_cast<SQLPOINTER>(seconds), 0);
}

absl::StatusOr<int64_t> OdbcTarget::RunStatement(const std::string& sql,
                                                 SqlError* error) {
  try {
    soci::statement statement(session());
    statement.alloc();
    statement.prepare(sql);
    statement.define_and_bind();
    BeforeExecute(statement);
    statement.execute(true);
    const long long rows = statement.get_affected_rows();
    return rows > 0 ? rows : 0;
  } catch (const soci::odbc_soci_error& odbc_error) {
    error->sql_state =
        reinterpret_cast<const char*>(odbc_error.odbc_error_code());
    error->message = ::ecliptix::sql::OneLine(
        reinterpret_cast<const char*>(odbc_error.odbc_error_message()));
    return absl::Status(CodeForOdbcState(error->sql_state), error->message);
  } catch (const std::exception& exception) {
    error->message = ::ecliptix::sql::DatabaseMessage(exception);
    return absl::UnknownError(error->message);
  }
}

absl::StatusOr<std::optional<std::string>> OdbcTarget::RunScalar(
    const std::string& query, SqlError* error) {
  try {
    soci::row row;
    session() << query, soci::into(row);
    if (!session().got_data() || row.size() == 0) {
      return std::optional<std::string>();
    }
    std::vector<bool> nulls;
    std::vector<std::string> cells = RowText(row, &nulls);
    if (nulls[0]) return std::optional<std::string>();
    return std::optional<std::string>(cells[0]);
  } catch (const std::exception& exception) {
    error->message = ::ecliptix::sql::DatabaseMessage(exception);
    return absl::UnknownError(error->message);
  }
}

}  // namespace ecliptix::agent
