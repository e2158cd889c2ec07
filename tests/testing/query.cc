#include "tests/testing/query.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"

namespace ecliptix::testing {

std::string QueryScalar(const std::string& url, const std::string& sql) {
  auto parsed = ::ecliptix::sql::ParseDatabaseUrl(url);
  if (!parsed.ok()) return std::string(parsed.status().message());
  auto session = ::ecliptix::sql::OpenSession(*parsed);
  if (!session.ok()) return std::string(session.status().message());
  std::string value;
  absl::Status status = ::ecliptix::sql::Guard(
      "query", [&] { **session << sql, soci::into(value); });
  return status.ok() ? value : std::string(status.message());
}

absl::Status ExecuteSql(const std::string& url, const std::string& sql) {
  auto parsed = ::ecliptix::sql::ParseDatabaseUrl(url);
  if (!parsed.ok()) return parsed.status();
  auto session = ::ecliptix::sql::OpenSession(*parsed);
  if (!session.ok()) return session.status();
  return ::ecliptix::sql::Guard("execute", [&] {
    soci::transaction transaction(**session);
    for (absl::string_view statement : absl::StrSplit(sql, ";\n")) {
      if (absl::StripAsciiWhitespace(statement).empty()) continue;
      **session << std::string(statement);
    }
    transaction.commit();
  });
}

}  // namespace ecliptix::testing
