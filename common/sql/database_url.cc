#include "common/sql/database_url.h"

#include <regex>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ecliptix::sql {
namespace {

constexpr char kAcceptedForms[] =
    "use sqlite:///path/to/file.db, postgresql://user@host:port/dbname or "
    "odbc://<ODBC connection string>";

absl::StatusOr<std::string> PercentDecode(absl::string_view text,
                                          absl::string_view redacted_url) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    int value = 0;
    if (i + 2 >= text.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", redacted_url, "\" has a truncated %-escape"));
    }
    for (int k = 1; k <= 2; ++k) {
      const char c = text[i + k];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= c - '0';
      else if (c >= 'a' && c <= 'f')
        value |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        value |= c - 'A' + 10;
      else {
        return absl::InvalidArgumentError(absl::StrCat(
            "database URL \"", redacted_url, "\" has a bad %-escape"));
      }
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// postgresql://[user[:password]@][host][:port][/dbname][?key=value&...] to
// libpq's keyword/value form.
absl::StatusOr<std::string> PostgresConnectionString(
    absl::string_view rest, absl::string_view redacted_url) {
  std::vector<std::pair<std::string, std::string>> params;
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  absl::string_view authority = rest;
  absl::string_view dbname;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    authority = rest.substr(0, slash);
    dbname = rest.substr(slash + 1);
  }
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    absl::string_view user = userinfo, password;
    bool has_password = false;
    if (size_t colon = userinfo.find(':'); colon != absl::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
      has_password = true;
    }
    auto decoded_user = PercentDecode(user, redacted_url);
    if (!decoded_user.ok()) return decoded_user.status();
    if (!decoded_user->empty()) params.emplace_back("user", *decoded_user);
    if (has_password) {
      auto decoded_password = PercentDecode(password, redacted_url);
      if (!decoded_password.ok()) return decoded_password.status();
      params.emplace_back("password", *decoded_password);
    }
  }
  absl::string_view host = authority, port;
  if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", redacted_url, "\" has an unclosed '['"));
    }
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (absl::ConsumePrefix(&after, ":")) port = after;
  } else if (size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (!host.empty()) {
    auto decoded = PercentDecode(host, redacted_url);
    if (!decoded.ok()) return decoded.status();
    params.emplace_back("host", *decoded);
  }
  if (!port.empty()) {
    int port_number = 0;
    if (!absl::SimpleAtoi(port, &port_number) || port_number <= 0 ||
        port_number > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", redacted_url, "\" has a bad port \"", port, "\""));
    }
    params.emplace_back("port", std::string(port));
  }
  if (!dbname.empty()) {
    auto decoded = PercentDecode(dbname, redacted_url);
    if (!decoded.ok()) return decoded.status();
    params.emplace_back("dbname", *decoded);
  }
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("database URL \"", redacted_url, "\": parameter \"",
                       pair, "\" is not key=value"));
    }
    auto key = PercentDecode(pair.substr(0, eq), redacted_url);
    auto value = PercentDecode(pair.substr(eq + 1), redacted_url);
    if (!key.ok()) return key.status();
    if (!value.ok()) return value.status();
    for (char c : *key) {
      if (!absl::ascii_isalnum(c) && c != '_') {
        return absl::InvalidArgumentError(
            absl::StrCat("database URL \"", redacted_url,
                         "\": bad parameter name \"", *key, "\""));
      }
    }
    params.emplace_back(*key, *value);
  }
  std::vector<std::string> parts;
  for (const auto& [key, value] : params)
    parts.push_back(absl::StrCat(key, "=", QuoteConnValue(value)));
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string QuoteConnValue(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string RedactDatabaseUrl(absl::string_view url) {
  std::string text(url);
  // user:password@host in URIs. The password runs to the last '@' of the
  // authority, as in the parser, so an unescaped '@' in it does not leak the
  // rest.
  static const std::regex kUriPassword(
      R"(^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^/?]*@)");
  text = std::regex_replace(text, kUriPassword, "$1:***@");
  // password=... in query strings and key=value connection strings, PWD=... in
  // ODBC ones.
  static const std::regex kKeyPassword(
      R"(((?:^|[;?&\s])(?:password|pwd)\s*=\s*)(\{[^}]*\}|[^;&\s]*))",
      std::regex::icase);
  return std::regex_replace(text, kKeyPassword, "$1***");
}

absl::StatusOr<DatabaseUrl> ParseDatabaseUrl(absl::string_view url) {
  url = absl::StripAsciiWhitespace(url);
  DatabaseUrl parsed;
  parsed.redacted = RedactDatabaseUrl(url);
  if (url.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("database URL is empty: ", kAcceptedForms));
  }
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("database URL \"", parsed.redacted,
                     "\" has no scheme: ", kAcceptedForms));
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  absl::string_view rest = url.substr(scheme_end + 3);
  if (scheme == "sqlite" || scheme == "sqlite3") {
    if (rest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("database URL \"", parsed.redacted,
                       "\" names no file: use sqlite:///path/to/file.db"));
    }
    if (rest.find_first_of(" \t'\"") != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", parsed.redacted,
          "\": SQLite paths with spaces or quotes are not supported"));
    }
    parsed.backend = Backend::kSqlite;
    parsed.sqlite_path = std::string(rest);
    // timeout: how long SQLite waits on a lock held by another connection, in
    // seconds.
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
    auto connection_string = PostgresConnectionString(rest, parsed.redacted);
    if (!connection_string.ok()) return connection_string.status();
    parsed.connection_string = *std::move(connection_string);
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
  return absl::InvalidArgumentError(
      absl::StrCat("database URL scheme \"", scheme,
                   "\" is not supported: ", kAcceptedForms));
}

}  // namespace ecliptix::sql
