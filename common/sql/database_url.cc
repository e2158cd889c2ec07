#include "common/sql/database_url.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ecliptix::sql {
namespace {

constexpr char kAcceptedForms[] =
    "use sqlite:///path/to/file.db, postgresql://user@host:port/dbname or "
    "odbc://<ODBC connection string>";

}  // namespace

std::string RedactDatabaseUrl(absl::string_view url) {
  std::string text(url);
  // user:password@host in URIs.
  static const std::regex kUriPassword(R"(^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@/]*@)");
  text = std::regex_replace(text, kUriPassword, "$1:***@");
  // password=... in query strings and key=value connection strings, PWD=... in ODBC ones.
  static const std::regex kKeyPassword(R"(((?:^|[;?&\s])(?:password|pwd)\s*=\s*)(\{[^}]*\}|[^;&\s]*))",
                                       std::regex::icase);
  return std::regex_replace(text, kKeyPassword, "$1***");
}

absl::StatusOr<DatabaseUrl> ParseDatabaseUrl(absl::string_view url) {
  url = absl::StripAsciiWhitespace(url);
  DatabaseUrl parsed;
  parsed.redacted = RedactDatabaseUrl(url);
  if (url.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("database URL is empty: ", kAcceptedForms));
  }
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("database URL \"", parsed.redacted,
                                                   "\" has no scheme: ", kAcceptedForms));
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  absl::string_view rest = url.substr(scheme_end + 3);
  if (scheme == "sqlite" || scheme == "sqlite3") {
    if (rest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", parsed.redacted, "\" names no file: use sqlite:///path/to/file.db"));
    }
    if (rest.find_first_of(" \t'\"") != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", parsed.redacted,
          "\": SQLite paths with spaces or quotes are not supported"));
    }
    parsed.backend = Backend::kSqlite;
    parsed.sqlite_path = std::string(rest);
    // timeout: how long SQLite waits on a lock held by another connection, in seconds.
    parsed.connection_string = absl::StrCat("db=", rest, " timeout=30");
    return parsed;
  }
  if (scheme == "postgresql" || scheme == "postgres") {
    if (rest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", parsed.redacted,
          "\" names no server: use postgresql://user@host:port/dbname"));
    }
    parsed.backend = Backend::kPostgresql;
    parsed.connection_string = std::string(url);
    return parsed;
  }
  if (scheme == "odbc") {
    if (rest.find('=') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", parsed.redacted,
          "\" has no ODBC connection string: use odbc://DSN=name or "
          "odbc://Driver={...};Server=...;Database=..."));
    }
    parsed.backend = Backend::kOdbc;
    parsed.connection_string = std::string(rest);
    return parsed;
  }
  return absl::InvalidArgumentError(absl::StrCat("database URL scheme \"", scheme,
                                                 "\" is not supported: ", kAcceptedForms));
}

}  // namespace ecliptix::sql
