#include "tests/testing/postgres.h"

#include <cstdlib>
#include <random>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sql/session.h"
#include "common/status_macros.h"

namespace ecliptix::testing {

std::optional<std::string> PostgresAdminUrl() {
  const char* url = std::getenv("ECLIPTIX_TEST_POSTGRES_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

absl::StatusOr<ScratchDatabase> CreateScratchDatabase(
    const std::string& prefix) {
  std::optional<std::string> admin_url = PostgresAdminUrl();
  if (!admin_url) {
    return absl::FailedPreconditionError(
        "ECLIPTIX_TEST_POSTGRES_URL is not set");
  }
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(*admin_url));
  ASSIGN_OR_RETURN(auto session, sql::OpenSession(parsed));
  std::random_device random;
  ScratchDatabase scratch;
  // The name is ours (prefix from test code, random digits), never user input;
  // CREATE DATABASE takes no bound parameters.
  scratch.name = absl::AsciiStrToLower(
      absl::StrFormat("%s_%08x%08x", prefix, random(), random()));
  RETURN_IF_ERROR(sql::Guard("create scratch database", [&] {
    *session << ("CREATE DATABASE " + scratch.name);
  }));
  static const std::regex kDatabasePath(R"(^(postgres(?:ql)?://[^/]*/)[^?]*)");
  scratch.url =
      std::regex_replace(*admin_url, kDatabasePath, "$1" + scratch.name);
  static const std::regex kHostPort(
      R"(^postgres(?:ql)?://(?:[^@/]*@)?([^:/]+):(\d+))");
  std::smatch match;
  if (std::regex_search(*admin_url, match, kHostPort)) {
    scratch.odbc_url = absl::StrCat(
        "odbc://Driver={PostgreSQL Unicode};Server=", match[1].str(),
        ";Port=", match[2].str(), ";Database=", scratch.name, ";Uid=postgres;");
  }
  return scratch;
}

}  // namespace ecliptix::testing
