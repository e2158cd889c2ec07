// SOCI errors turned into statuses (what the server's state store and the
// agent's history table report): the database's message and SQLSTATE, never
// the values the failing statement bound. SQLite always; PostgreSQL through
// libpq and ODBC when ECLIPTIX_TEST_POSTGRES_URL is set.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "soci/sqlite3/soci-sqlite3.h"
#include "tests/testing/postgres.h"

namespace ecliptix::sql {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "correct-horse-Vb7-battery";

std::vector<std::string> Urls() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string file =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/guard.db");
  std::filesystem::remove(file);
  std::vector<std::string> urls = {absl::StrCat("sqlite://", file)};
  if (testing::PostgresAdminUrl().has_value()) {
    // A database each: the table is created on every one.
    for (bool odbc : {false, true}) {
      absl::StatusOr<testing::ScratchDatabase> scratch =
          testing::CreateScratchDatabase("session");
      EXPECT_TRUE(scratch.ok()) << scratch.status();
      if (scratch.ok()) urls.push_back(odbc ? scratch->odbc_url : scratch->url);
    }
  }
  return urls;
}

TEST(GuardTest, FailedStatementReportsTheDatabaseButNoBoundValue) {
  for (const std::string& url : Urls()) {
    SCOPED_TRACE(RedactDatabaseUrl(url));
    absl::StatusOr<DatabaseUrl> parsed = ParseDatabaseUrl(url);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<std::unique_ptr<soci::session>> session =
        OpenSession(*parsed);
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE(Guard("create", [&] {
                  **session << "CREATE TABLE guarded (k TEXT CHECK "
                               "(length(k) < 3))";
                }).ok());
    const std::string secret = kSecret;
    absl::Status status = Guard("save the secret", [&] {
      **session << "INSERT INTO guarded (k) VALUES (:k)",
          soci::use(secret, "k");
    });
    ASSERT_FALSE(status.ok());
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr(secret)));
    EXPECT_THAT(status.message(), HasSubstr("save the secret: "));
    EXPECT_THAT(absl::AsciiStrToLower(status.message()),
                HasSubstr("check constraint"));
    if (parsed->backend != Backend::kSqlite) {
      EXPECT_THAT(status.message(), HasSubstr("(SQLSTATE 23514)"));
    }
  }
}

TEST(GuardTest, ALockedSqliteDatabaseIsAbortedToTryAgain) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string file =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/locked.db");
  std::filesystem::remove(file);
  absl::StatusOr<std::unique_ptr<soci::session>> holder =
      OpenSession(*ParseDatabaseUrl(absl::StrCat("sqlite://", file)));
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE(Guard("create", [&] {
                **holder << "CREATE TABLE t (k INTEGER)";
                **holder << "BEGIN IMMEDIATE";
              }).ok());
  // No busy timeout: the lock is refused at once.
  soci::session impatient(*soci::factory_sqlite3(),
                          absl::StrCat("db=", file, " timeout=0"));
  const absl::Status status =
      Guard("write", [&] { impatient << "INSERT INTO t (k) VALUES (1)"; });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(), HasSubstr("locked"));
  ASSERT_TRUE(Guard("end", [&] { **holder << "ROLLBACK"; }).ok());
}

}  // namespace
}  // namespace ecliptix::sql
