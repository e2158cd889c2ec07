#include "client/ctl_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

using fleet::v1::Database;
using fleet::v1::FleetEvent;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

google::protobuf::Timestamp At(absl::Time time) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(absl::ToUnixSeconds(time));
  return timestamp;
}

Database MakeDatabase(const std::string& id, fleet::v1::Engine engine,
                      const std::string& version,
                      fleet::v1::ConnectionState state,
                      std::map<std::string, std::string> labels,
                      absl::Duration seen_ago) {
  Database database;
  database.set_database_id(id);
  database.set_engine(engine);
  database.set_engine_version(version);
  database.set_connection_state(state);
  database.mutable_labels()->insert(labels.begin(), labels.end());
  *database.mutable_last_seen_time() = At(kNow - seen_ago);
  return database;
}

TEST(CtlFormatTest, EnumNames) {
  EXPECT_EQ(EngineName(fleet::v1::ENGINE_POSTGRESQL), "postgresql");
  EXPECT_EQ(EngineName(fleet::v1::ENGINE_MSSQL), "mssql");
  EXPECT_EQ(EngineName(fleet::v1::ENGINE_UNSPECIFIED), "unknown");
  // A value from a newer server that this client does not know.
  EXPECT_EQ(EngineName(static_cast<fleet::v1::Engine>(42)), "unknown");
  EXPECT_EQ(ConnectorName(fleet::v1::CONNECTOR_ODBC), "odbc");
  EXPECT_EQ(StateName(fleet::v1::CONNECTION_STATE_LOST), "lost");
  EXPECT_EQ(EventTypeName(FleetEvent::TYPE_LABELS_CHANGED), "LABELS_CHANGED");
  EXPECT_EQ(EventTypeName(FleetEvent::TYPE_SNAPSHOT_COMPLETE),
            "SNAPSHOT_COMPLETE");
}

TEST(CtlFormatTest, ShortVersion) {
  EXPECT_EQ(ShortVersion("3.40.1"), "3.40.1");
  EXPECT_EQ(ShortVersion("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on "
                         "x86_64-pc-linux-gnu, compiled by gcc"),
            "15.18");
  EXPECT_EQ(ShortVersion("Microsoft SQL Server 2019 (RTM-CU18) - 15.0.4261.1"),
            "2019");
  EXPECT_EQ(ShortVersion(""), "-");
  EXPECT_EQ(ShortVersion("a-version-string-without-digits-at-all"),
            "a-version-string-...");
}

TEST(CtlFormatTest, LabelsAreSorted) {
  Database database;
  (*database.mutable_labels())["region"] = "eu";
  (*database.mutable_labels())["env"] = "prod";
  (*database.mutable_labels())["tier"] = "1";
  EXPECT_EQ(LabelsText(database.labels()), "env=prod,region=eu,tier=1");
  EXPECT_EQ(LabelsText(Database().labels()), "<none>");
}

TEST(CtlFormatTest, RelativeTime) {
  EXPECT_EQ(RelativeTime(kNow - absl::Seconds(3), kNow), "3s ago");
  EXPECT_EQ(RelativeTime(kNow - absl::Seconds(119), kNow), "119s ago");
  EXPECT_EQ(RelativeTime(kNow - absl::Minutes(5), kNow), "5m ago");
  EXPECT_EQ(RelativeTime(kNow - absl::Hours(3), kNow), "3h ago");
  EXPECT_EQ(RelativeTime(kNow - absl::Hours(24 * 9), kNow), "9d ago");
  // Clock skew between client and server.
  EXPECT_EQ(RelativeTime(kNow + absl::Seconds(2), kNow), "0s ago");
  EXPECT_EQ(RelativeTime(absl::InfinitePast(), kNow), "never");
}

TEST(CtlFormatTest, Timestamps) {
  google::protobuf::Timestamp timestamp;
  EXPECT_EQ(ToTime(timestamp), absl::InfinitePast());
  EXPECT_EQ(TimestampText(timestamp), "-");
  timestamp.set_seconds(1'700'000'000);
  timestamp.set_nanos(123'456'789);
  EXPECT_EQ(TimestampText(timestamp), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(ToTime(timestamp), kNow + absl::Nanoseconds(123'456'789));
}

TEST(CtlFormatTest, AlignedTable) {
  EXPECT_EQ(
      AlignedTable({{"A", "BB", "C"}, {"long", "x", ""}, {"y", "z", "w"}}),
      "A      BB   C\n"
      "long   x\n"
      "y      z    w\n");
  EXPECT_EQ(AlignedTable({}), "");
}

TEST(CtlFormatTest, DatabaseTable) {
  const std::vector<Database> databases = {
      MakeDatabase("db-1", fleet::v1::ENGINE_SQLITE, "3.40.1",
                   fleet::v1::CONNECTION_STATE_CONNECTED,
                   {{"env", "prod"}, {"region", "eu"}}, absl::Seconds(3)),
      MakeDatabase("orders-postgres", fleet::v1::ENGINE_POSTGRESQL,
                   "PostgreSQL 15.18 (Debian)",
                   fleet::v1::CONNECTION_STATE_LOST, {}, absl::Minutes(7)),
  };
  EXPECT_EQ(DatabaseTable(databases, kNow),
            "DATABASE ID       ENGINE       VERSION   STATE       LABELS       "
            "        LAST SEEN\n"
            "db-1              sqlite       3.40.1    connected   "
            "env=prod,region=eu   3s ago\n"
            "orders-postgres   postgresql   15.18     lost        <none>       "
            "        7m ago\n");
}

TEST(CtlFormatTest, DatabaseDetails) {
  Database database = MakeDatabase("db-1", fleet::v1::ENGINE_POSTGRESQL,
                                   "PostgreSQL 15.18 (Debian)",
                                   fleet::v1::CONNECTION_STATE_CONNECTED,
                                   {{"env", "prod"}}, absl::Seconds(3));
  database.set_connector(fleet::v1::CONNECTOR_LIBPQ);
  database.add_capabilities("heartbeat");
  database.add_capabilities("phases");
  database.set_agent_host("host-1");
  const std::string text = DatabaseDetails(database, kNow);
  EXPECT_THAT(text, StartsWith("Database ID:     db-1\n"));
  EXPECT_THAT(text,
              HasSubstr("\nEngine version:  PostgreSQL 15.18 (Debian)\n"));
  EXPECT_THAT(text, HasSubstr("\nConnector:       libpq\n"));
  EXPECT_THAT(text, HasSubstr("\nState:           connected\n"));
  EXPECT_THAT(text, HasSubstr("\nLabels:          env=prod\n"));
  EXPECT_THAT(text, HasSubstr("\nAgent host:      host-1\n"));
  EXPECT_THAT(text, HasSubstr("\nAgent peer:      -\n"));
  EXPECT_THAT(text, HasSubstr("\nCapabilities:    heartbeat,phases\n"));
  EXPECT_THAT(text, HasSubstr("\nFirst seen:      never\n"));
  EXPECT_THAT(
      text,
      HasSubstr("\nLast seen:       2023-11-14T22:13:17.000Z (3s ago)\n"));
}

TEST(CtlFormatTest, EventLine) {
  FleetEvent event;
  event.set_type(FleetEvent::TYPE_DISCONNECTED);
  *event.mutable_event_time() = At(kNow);
  *event.mutable_database() =
      MakeDatabase("db-1", fleet::v1::ENGINE_SQLITE, "3.40.1",
                   fleet::v1::CONNECTION_STATE_DISCONNECTED, {{"env", "prod"}},
                   absl::Seconds(0));
  event.set_reason("stream closed: connection reset");
  EXPECT_EQ(
      EventLine(event),
      "2023-11-14T22:13:20.000Z  DISCONNECTED       db-1                  "
      "disconnected  env=prod  stream closed: connection reset");

  FleetEvent complete;
  complete.set_type(FleetEvent::TYPE_SNAPSHOT_COMPLETE);
  *complete.mutable_event_time() = At(kNow);
  EXPECT_EQ(
      EventLine(complete),
      "2023-11-14T22:13:20.000Z  SNAPSHOT_COMPLETE  -                     "
      "-             -");
}

TEST(CtlFormatTest, Json) {
  Database database;
  database.set_database_id("db-1");
  (*database.mutable_labels())["env"] = "prod";
  absl::StatusOr<std::string> json = MessageJson(database);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, StartsWith("{\"databaseId\":\"db-1\""));
  EXPECT_THAT(*json, HasSubstr("\"labels\":{\"env\":\"prod\"}"));
  // Defaults are printed, so every key is there for scripts.
  EXPECT_THAT(*json, HasSubstr("\"agentVersion\":\"\""));
  EXPECT_THAT(*json, Not(HasSubstr("\n")));

  EXPECT_EQ(*DatabasesJson({}), "{\"databases\":[]}");
  absl::StatusOr<std::string> list = DatabasesJson({database, database});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, "{\"databases\":[" + *json + "," + *json + "]}");
}

}  // namespace
}  // namespace ecliptix::client::ctl
