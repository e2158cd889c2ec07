#include "server/state_store.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

std::string SqliteUrl(const std::string& name) {
  return absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"), "/", name);
}

v1::Database MakeDatabase(const std::string& id) {
  v1::Database database;
  database.set_database_id(id);
  database.set_engine(v1::ENGINE_POSTGRESQL);
  database.set_engine_version("15.18");
  database.set_connector(v1::CONNECTOR_LIBPQ);
  database.set_agent_version("0.1.0");
  database.add_capabilities("heartbeat");
  database.add_capabilities("ping");
  (*database.mutable_labels())["env"] = "prod";
  (*database.mutable_labels())["tier"] = "gold";
  database.set_connection_state(v1::CONNECTION_STATE_CONNECTED);
  database.mutable_first_seen_time()->set_seconds(1'700'000'000);
  database.mutable_last_seen_time()->set_seconds(1'700'000'100);
  return database;
}

void ExpectRoundTrip(const std::string& url) {
  {
    auto store = StateStore::Open(url);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->schema_version(), StateStore::LatestSchemaVersion());
    v1::Database database = MakeDatabase("db-1");
    ASSERT_TRUE((*store)->UpsertDatabase(database).ok());
    // A changed label set replaces the old one.
    database.mutable_labels()->erase("tier");
    (*database.mutable_labels())["region"] = "eu";
    ASSERT_TRUE(
        (*store)->UpsertDatabases({database, MakeDatabase("db-0")}).ok());
  }
  // Reopening migrates nothing and finds the rows.
  auto store = StateStore::Open(url);
  ASSERT_TRUE(store.ok()) << store.status();
  auto databases = (*store)->LoadDatabases();
  ASSERT_TRUE(databases.ok()) << databases.status();
  ASSERT_EQ(databases->size(), 2u);
  EXPECT_EQ((*databases)[0].database_id(), "db-0");
  const v1::Database& loaded = (*databases)[1];
  EXPECT_EQ(loaded.database_id(), "db-1");
  EXPECT_EQ(loaded.engine(), v1::ENGINE_POSTGRESQL);
  EXPECT_EQ(loaded.labels().size(), 2u);
  EXPECT_EQ(loaded.labels().at("region"), "eu");
  EXPECT_EQ(loaded.capabilities_size(), 2);
  EXPECT_EQ(loaded.first_seen_time().seconds(), 1'700'000'000);
  EXPECT_EQ(loaded.last_seen_time().seconds(), 1'700'000'100);
}

TEST(StateStoreTest, SqliteRoundTrip) {
  ExpectRoundTrip(SqliteUrl("roundtrip.db"));
}

TEST(StateStoreTest, PostgresqlRoundTrip) {
  if (!testing::PostgresAdminUrl()) {
    GTEST_SKIP()
        << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test sets it)";
  }
  auto scratch = testing::CreateScratchDatabase("state_store");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  ExpectRoundTrip(scratch->url);
}

TEST(StateStoreTest, NewerSchemaIsRefused) {
  const std::string url = SqliteUrl("newer.db");
  ASSERT_TRUE(StateStore::Open(url).ok());
  {
    auto parsed = sql::ParseDatabaseUrl(url);
    auto session = sql::OpenSession(*parsed);
    ASSERT_TRUE(session.ok());
    **session
        << "INSERT INTO schema_migrations (version, description, applied_at) "
           "VALUES (999, 'from the future', 'now')";
  }
  auto store = StateStore::Open(url);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("999"));
}

TEST(StateStoreTest, BadUrlsAreRefused) {
  EXPECT_EQ(StateStore::Open("mysql://x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StateStore::Open("odbc://DSN=x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      StateStore::Open("sqlite:///nonexistent-dir/x/state.db").status().code(),
      absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ecliptix::server
