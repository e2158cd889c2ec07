#include "server/storage/state_store.h"

#include <cstdlib>

#include "absl/strings/escaping.h"
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

v1::Rollout MakeRollout(const std::string& id, int targets) {
  v1::Rollout rollout;
  rollout.set_rollout_id(id);
  rollout.set_bundle_id("b-1");
  rollout.set_state(v1::ROLLOUT_STATE_RUNNING);
  rollout.set_wave_count(1);
  for (int i = 0; i < targets; ++i) {
    v1::RolloutTarget* target = rollout.add_targets();
    target->set_database_id(absl::StrCat("db-", i));
    target->set_wave(1);
    target->set_state(v1::TARGET_STATE_PENDING);
  }
  return rollout;
}

v1::RolloutEvent MakeEvent(long long sequence) {
  v1::RolloutEvent event;
  event.set_sequence(sequence);
  event.mutable_wave()->set_wave(1);
  return event;
}

// The changes of `rollout`: its header when `header`, and the targets at
// `positions`.
StateStore::RolloutChanges Changes(const v1::Rollout& rollout, bool header,
                                   const std::vector<int>& positions) {
  StateStore::RolloutChanges changes;
  changes.rollout_id = rollout.rollout_id();
  changes.number = 1;
  if (header) {
    changes.header = rollout;
    changes.header->clear_targets();
  }
  for (int i : positions) changes.targets.emplace_back(i, &rollout.targets(i));
  return changes;
}

long long CountRows(const std::string& url, const std::string& table) {
  auto parsed = sql::ParseDatabaseUrl(url);
  auto session = sql::OpenSession(*parsed);
  long long count = -1;
  **session << "SELECT COUNT(*) FROM " + table, soci::into(count);
  return count;
}

TEST(StateStoreTest, RolloutChangesSaveTheTargetsTheyTouch) {
  const std::string url = SqliteUrl("rollout_rows.db");
  v1::Rollout rollout = MakeRollout("r-1", 3);
  {
    auto store = StateStore::Open(url);
    ASSERT_TRUE(store.ok()) << store.status();
    StateStore::RolloutChanges first = Changes(rollout, true, {0, 1, 2});
    first.events = {MakeEvent(1)};
    ASSERT_TRUE((*store)->SaveRolloutChanges({first}).ok());

    // Target 1 changes in memory, target 2 too but is not said to: only the
    // row named is written, and the header is left as it was.
    rollout.mutable_targets(1)->set_state(v1::TARGET_STATE_SUCCEEDED);
    rollout.mutable_targets(2)->set_state(v1::TARGET_STATE_FAILED);
    rollout.set_state(v1::ROLLOUT_STATE_SUCCEEDED);
    StateStore::RolloutChanges second = Changes(rollout, false, {1});
    second.events = {MakeEvent(2), MakeEvent(3)};
    ASSERT_TRUE((*store)->SaveRolloutChanges({second}).ok());

    // The header with the engine's fields.
    StateStore::RolloutChanges third = Changes(rollout, true, {});
    third.waves_ended = 1;
    third.rollback_pending = true;
    ASSERT_TRUE((*store)->SaveRolloutChanges({third}).ok());
  }
  auto store = StateStore::Open(url);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->LoadRollouts();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 1u);
  const StateStore::StoredRollout& stored = (*loaded)[0];
  EXPECT_EQ(stored.number, 1);
  EXPECT_EQ(stored.waves_ended, 1);
  EXPECT_TRUE(stored.rollback_pending);
  EXPECT_EQ(stored.rollout.state(), v1::ROLLOUT_STATE_SUCCEEDED);
  ASSERT_EQ(stored.rollout.targets_size(), 3);
  EXPECT_EQ(stored.rollout.targets(0).database_id(), "db-0");
  EXPECT_EQ(stored.rollout.targets(1).state(), v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(stored.rollout.targets(2).state(), v1::TARGET_STATE_PENDING);
  auto events = (*store)->LoadRolloutEvents("r-1", 1);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->size(), 2u);
}

TEST(StateStoreTest, RolloutsStoredWholeBySchemaThreeAreSplitIntoRows) {
  const std::string url = SqliteUrl("schema3.db");
  const v1::Rollout rollout = MakeRollout("r-7", 2);
  {
    // A store as schema 3 left it: the whole rollout in rollouts.data.
    auto parsed = sql::ParseDatabaseUrl(url);
    auto session = sql::OpenSession(*parsed);
    ASSERT_TRUE(session.ok()) << session.status();
    soci::session& sql = **session;
    sql << "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
           "description TEXT NOT NULL, applied_at TEXT NOT NULL)";
    sql << "INSERT INTO schema_migrations VALUES (1, 'agent registry', 'x')";
    sql << "INSERT INTO schema_migrations VALUES (2, 'bundles', 'x')";
    sql << "INSERT INTO schema_migrations VALUES (3, 'rollouts', 'x')";
    sql << "CREATE TABLE rollouts (rollout_id TEXT PRIMARY KEY, number BIGINT "
           "NOT NULL, state INTEGER NOT NULL, data TEXT NOT NULL)";
    sql << "CREATE TABLE rollout_events (rollout_id TEXT NOT NULL, sequence "
           "BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (rollout_id, "
           "sequence))";
    const std::string data = absl::Base64Escape(rollout.SerializeAsString());
    sql << "INSERT INTO rollouts (rollout_id, number, state, data) VALUES "
           "('r-7', 7, 3, :data)",
        soci::use(data);
  }
  for (int open = 0; open < 2; ++open) {
    auto store = StateStore::Open(url);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->schema_version(), StateStore::LatestSchemaVersion());
    auto loaded = (*store)->LoadRollouts();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_EQ(loaded->size(), 1u) << "open " << open;
    EXPECT_EQ((*loaded)[0].number, 7);
    EXPECT_EQ((*loaded)[0].rollout.SerializeAsString(),
              rollout.SerializeAsString())
        << "open " << open;
  }
  // Split on the first load: a target row each.
  EXPECT_EQ(CountRows(url, "rollout_targets"), 2);
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
