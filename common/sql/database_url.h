// Database URLs, the one way every component names a database: the agent's
// target and the server's state store. Credentials in a URL are never logged:
// use Redacted() for anything shown to people.
#ifndef ECLIPTIX_COMMON_SQL_DATABASE_URL_H_
#define ECLIPTIX_COMMON_SQL_DATABASE_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecliptix::sql {

// How SOCI reaches the database.
enum class Backend { kSqlite, kPostgresql, kOdbc };

struct DatabaseUrl {
  Backend backend;
  // What SOCI's backend takes: "db=PATH timeout=N" for SQLite, libpq's
  // keyword/value form (host='...' port='...' dbname='...') for PostgreSQL, the
  // ODBC connection string for ODBC.
  std::string connection_string;
  // The URL with passwords replaced by "***", for logs and error messages.
  std::string redacted;
  // SQLite only: the file path.
  std::string sqlite_path;
};

// Accepts:
//   sqlite:///absolute/path.db   sqlite://relative/path.db
//   postgresql://user:password@host:port/dbname?sslmode=disable   (also
//   postgres://) odbc://Driver={...};Server=...;Database=...;Uid=...;Pwd=...
//   odbc://DSN=name
// INVALID_ARGUMENT says what is wrong and shows the accepted forms.
absl::StatusOr<DatabaseUrl> ParseDatabaseUrl(absl::string_view url);

// The URL with passwords replaced, even when it does not parse.
std::string RedactDatabaseUrl(absl::string_view url);

// A value for libpq's keyword/value connection string: single-quoted, with
// backslash and quote escaped ("it's" -> 'it\'s').
std::string QuoteConnValue(absl::string_view value);

}  // namespace ecliptix::sql

#endif  // ECLIPTIX_COMMON_SQL_DATABASE_URL_H_
