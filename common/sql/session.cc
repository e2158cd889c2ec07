#include "common/sql/session.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "soci/odbc/soci-odbc.h"
#include "soci/postgresql/soci-postgresql.h"
#include "soci/sqlite3/soci-sqlite3.h"

namespace ecliptix::sql {

std::string DatabaseMessage(const std::exception& error) {
  if (const auto* postgresql =
          dynamic_cast<const soci::postgresql_soci_error*>(&error)) {
    // The primary message is the first line; DETAIL lines can quote the row
    // ("Failing row contains (...)", "Key (k)=(v) already exists").
    std::string message = FirstLine(postgresql->get_error_message());
    const std::string state = postgresql->sqlstate();
    if (!state.empty() && state[0] != '\0') {
      absl::StrAppend(&message, " (SQLSTATE ", state, ")");
    }
    return message;
  }
  if (const auto* odbc = dynamic_cast<const soci::odbc_soci_error*>(&error)) {
    // PostgreSQL's ODBC driver passes its DETAIL lines on, quoted rows and all.
    std::vector<absl::string_view> lines;
    for (absl::string_view line : absl::StrSplit(
             reinterpret_cast<const char*>(odbc->odbc_error_message()), '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty() && !absl::StartsWith(line, "DETAIL:"))
        lines.push_back(line);
    }
    return absl::StrCat(absl::StrJoin(lines, "; "), " (SQLSTATE ",
                        reinterpret_cast<const char*>(odbc->odbc_error_code()),
                        ")");
  }
  if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&error)) {
    // what() adds "while executing \"...\" with :name=\"value\"".
    return OneLine(soci_error->get_error_message());
  }
  return OneLine(error.what());
}

absl::Status SqlErrorToStatus(const std::exception& error,
                              absl::string_view what) {
  const std::string message = absl::StrCat(what, ": ", DatabaseMessage(error));
  const auto* soci_error = dynamic_cast<const soci::soci_error*>(&error);
  if (soci_error == nullptr) return absl::InternalError(message);
  // SQLite's "database is locked": another connection held the lock past the
  // busy timeout. A conflict to try again, as PostgreSQL's class 40 is. (The
  // codes are sqlite3.h's macros, which SOCI's header includes.)
  if (const auto* sqlite =
          dynamic_cast<const soci::sqlite3_soci_error*>(&error)) {
    const int primary = sqlite->result() & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return absl::AbortedError(message);
    }
  }
  switch (soci_error->get_error_category()) {
    case soci::soci_error::connection_error:
      return absl::UnavailableError(message);
    case soci::soci_error::invalid_statement:
      return absl::InvalidArgumentError(message);
    case soci::soci_error::no_privilege:
      return absl::PermissionDeniedError(message);
    case soci::soci_error::constraint_violation:
      return absl::FailedPreconditionError(message);
    case soci::soci_error::system_error:
      return absl::InternalError(message);
    case soci::soci_error::no_data:
      return absl::NotFoundError(message);
    case soci::soci_error::unknown:
    default:
      return absl::UnknownError(message);
  }
}

absl::StatusOr<std::unique_ptr<soci::session>> OpenSession(
    const DatabaseUrl& url) {
  try {
    switch (url.backend) {
      case Backend::kSqlite:
        return std::make_unique<soci::session>(*soci::factory_sqlite3(),
                                               url.connection_string);
      case Backend::kPostgresql:
        return std::make_unique<soci::session>(*soci::factory_postgresql(),
                                               url.connection_string);
      case Backend::kOdbc:
        return std::make_unique<soci::session>(*soci::factory_odbc(),
                                               url.connection_string);
    }
  } catch (const std::exception& error) {
    // Whatever the driver says, failing to open is failing to reach the
    // database.
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", url.redacted, ": ", OneLine(error.what())));
  }
  return absl::InternalError("unknown database backend");
}

}  // namespace ecliptix::sql
