#include "agent/target/open_target.h"

#include <utility>

#include "agent/target/odbc_target.h"
#include "agent/target/postgresql_target.h"
#include "agent/target/sqlite_target.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"
#include "common/status_macros.h"

namespace ecliptix::agent {

absl::StatusOr<std::unique_ptr<Target>> OpenTarget(const std::string& url) {
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(url));
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> session,
                   sql::OpenSession(parsed));
  switch (parsed.backend) {
    case sql::Backend::kSqlite:
      return SqliteTarget::Open(std::move(session), parsed.redacted);
    case sql::Backend::kPostgresql:
      return PostgresqlTarget::Open(std::move(session), parsed.redacted);
    case sql::Backend::kOdbc:
      return OdbcTarget::Open(std::move(session), parsed.redacted);
  }
  return absl::InternalError("unknown connector");
}

}  // namespace ecliptix::agent
