// Target against real databases: always a fresh SQLite file; PostgreSQL
// through libpq when ECLIPTIX_TEST_POSTGRES_URL is set, and through ODBC when
// ECLIPTIX_TEST_ODBC_URL is set.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/target/open_target.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

struct TargetCase {
  std::string name;
  // Empty: a SQLite file in TEST_TMPDIR.
  std::string env_var;
  v1::Engine engine;
  v1::Connector connector;
};

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

class TargetDatabaseTest : public ::testing::TestWithParam<TargetCase> {
 protected:
  void SetUp() override {
    if (GetParam().env_var.empty()) return;
    const char* url = std::getenv(GetParam().env_var.c_str());
    if (url == nullptr || *url == '\0') {
      GTEST_SKIP() << GetParam().env_var
                   << " is not set; set it (e.g. --test_env="
                   << GetParam().env_var
                   << "=...) to run this test against a real server";
    }
    server_url_ = url;
  }

  // A URL of a database without an identity table.
  std::string FreshUrl() {
    if (GetParam().env_var.empty()) {
      // Parameterized test names contain '/'.
      const std::string name = absl::StrReplaceAll(
          ::testing::UnitTest::GetInstance()->current_test_info()->name(),
          {{"/", "_"}});
      const std::string file = absl::StrCat(TempDir(), "/", name, ".db");
      std::remove(file.c_str());
      return absl::StrCat("sqlite://", file);
    }
    // A scratch database per test when the PostgreSQL server is known: test
    // targets run in parallel against one server and must not share the
    // identity table.
    if (testing::PostgresAdminUrl().has_value()) {
      absl::StatusOr<testing::ScratchDatabase> scratch =
          testing::CreateScratchDatabase("agent_target");
      EXPECT_TRUE(scratch.ok()) << scratch.status();
      if (!scratch.ok()) return server_url_;
      return GetParam().connector == v1::CONNECTOR_ODBC ? scratch->odbc_url
                                                        : scratch->url;
    }
    // Only an ODBC URL: start from a database without the identity table.
    auto database = OpenTarget(server_url_);
    EXPECT_TRUE(database.ok()) << database.status();
    if (database.ok()) {
      const absl::Status dropped =
          (*database)->Execute("DROP TABLE IF EXISTS ecliptix_agent_identity");
      EXPECT_TRUE(dropped.ok()) << dropped;
    }
    return server_url_;
  }

  std::unique_ptr<Target> MustOpen(const std::string& url) {
    auto database = OpenTarget(url);
    EXPECT_TRUE(database.ok()) << database.status();
    return database.ok() ? *std::move(database) : nullptr;
  }

  std::string server_url_;
};

TEST_P(TargetDatabaseTest, DetectsEngineConnectorAndVersion) {
  auto database = MustOpen(FreshUrl());
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(database->engine(), GetParam().engine);
  EXPECT_EQ(database->connector(), GetParam().connector);
  EXPECT_THAT(database->engine_version(), MatchesRegex("[0-9]+\\.[0-9]+.*"));
}

TEST_P(TargetDatabaseTest, GeneratesIdAndKeepsItAcrossReopen) {
  const std::string url = FreshUrl();
  std::string id;
  {
    auto database = MustOpen(url);
    ASSERT_NE(database, nullptr);
    absl::StatusOr<std::string> generated = database->EnsureDatabaseId("");
    ASSERT_TRUE(generated.ok()) << generated.status();
    EXPECT_THAT(*generated, MatchesRegex("db-[0-9a-f]{16}"));
    id = *generated;
  }
  auto database = MustOpen(url);
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(database->EnsureDatabaseId("").value_or("error"), id);
  // Asking for the stored id is fine.
  EXPECT_EQ(database->EnsureDatabaseId(id).value_or("error"), id);
}

TEST_P(TargetDatabaseTest, HonoursRequestedIdOnFreshDatabase) {
  const std::string url = FreshUrl();
  {
    auto database = MustOpen(url);
    ASSERT_NE(database, nullptr);
    EXPECT_EQ(database->EnsureDatabaseId("orders-eu:1").value_or("error"),
              "orders-eu:1");
  }
  auto database = MustOpen(url);
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(database->EnsureDatabaseId("").value_or("error"), "orders-eu:1");
}

TEST_P(TargetDatabaseTest, ConflictingRequestedIdIsFailedPrecondition) {
  const std::string url = FreshUrl();
  {
    auto database = MustOpen(url);
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(database->EnsureDatabaseId("first-id").ok());
  }
  auto database = MustOpen(url);
  ASSERT_NE(database, nullptr);
  absl::StatusOr<std::string> id = database->EnsureDatabaseId("second-id");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition)
      << id.status();
  EXPECT_THAT(id.status().message(), HasSubstr("already has id \"first-id\""));
}

TEST_P(TargetDatabaseTest, InvalidRequestedIdIsInvalidArgument) {
  auto database = MustOpen(FreshUrl());
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(database->EnsureDatabaseId("bad id").status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(
    Engines, TargetDatabaseTest,
    ::testing::Values(
        TargetCase{"SQLite", "", v1::ENGINE_SQLITE, v1::CONNECTOR_SQLITE},
        TargetCase{"PostgreSQL", "ECLIPTIX_TEST_POSTGRES_URL",
                   v1::ENGINE_POSTGRESQL, v1::CONNECTOR_LIBPQ},
        TargetCase{"PostgreSQLThroughOdbc", "ECLIPTIX_TEST_ODBC_URL",
                   v1::ENGINE_POSTGRESQL, v1::CONNECTOR_ODBC}),
    [](const ::testing::TestParamInfo<TargetCase>& info) {
      return info.param.name;
    });

TEST(TargetDatabaseOpenTest, MalformedUrlIsInvalidArgument) {
  for (const char* url :
       {"", "nonsense", "mysql://host/db", "odbc://nothing"}) {
    EXPECT_EQ(OpenTarget(url).status().code(),
              absl::StatusCode::kInvalidArgument)
        << url;
  }
}

TEST(TargetDatabaseOpenTest, SqliteInMissingDirectoryIsUnavailable) {
  const std::string url =
      absl::StrCat("sqlite://", TempDir(), "/no/such/dir/target.db");
  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url);
  EXPECT_EQ(database.status().code(), absl::StatusCode::kUnavailable)
      << database.status();
  EXPECT_THAT(database.status().message(), HasSubstr(url));
  EXPECT_THAT(database.status().message(), Not(HasSubstr("\n")));
}

TEST(TargetDatabaseOpenTest,
     UnreachableServerIsUnavailableAndHidesThePassword) {
  // Port 1 on loopback refuses at once.
  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(
      "postgresql://fleet:s3cret@127.0.0.1:1/postgres?connect_timeout=2");
  EXPECT_EQ(database.status().code(), absl::StatusCode::kUnavailable)
      << database.status();
  EXPECT_THAT(database.status().message(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(database.status().message(), HasSubstr("***"));
  EXPECT_THAT(database.status().message(), Not(HasSubstr("\n")));
}

}  // namespace
}  // namespace ecliptix::agent
