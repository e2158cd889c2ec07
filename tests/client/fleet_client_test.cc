#include "client/fleet_client.h"

#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_fleet_service.h"

namespace ecliptix::client {
namespace {

using ::ecliptix::testing::FakeFleetServer;
using ::ecliptix::testing::MakeDatabase;
using ::ecliptix::testing::UnusedAddress;
using fleet::v1::Database;
using fleet::v1::FleetEvent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<FleetClient> ClientFor(
    const std::string& address, absl::Duration timeout = absl::Seconds(10)) {
  ClientOptions options;
  options.server_address = address;
  options.rpc_timeout = timeout;
  absl::StatusOr<std::unique_ptr<FleetClient>> client =
      FleetClient::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(client).value();
}

std::vector<std::string> Ids(const std::vector<Database>& databases) {
  std::vector<std::string> ids;
  for (const Database& database : databases)
    ids.push_back(database.database_id());
  return ids;
}

std::vector<FleetEvent> Events(int n) {
  std::vector<FleetEvent> events;
  for (int i = 0; i < n; ++i) {
    FleetEvent event;
    event.set_type(FleetEvent::TYPE_SNAPSHOT);
    *event.mutable_database() = MakeDatabase(absl::StrCat("db-", i), {});
    events.push_back(event);
  }
  return events;
}

class FleetClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.service().SetDatabases({
        MakeDatabase("db-5", {{"env", "prod"}}),
        MakeDatabase("db-1", {{"env", "prod"}}),
        MakeDatabase("db-2", {{"env", "staging"}}),
        MakeDatabase("db-3", {{"env", "prod"}}),
        MakeDatabase("db-4", {{"env", "prod"}}),
        MakeDatabase("db-6", {{"env", "prod"}}),
        MakeDatabase("db-7", {}),
    });
    client_ = ClientFor(server_.address());
  }

  FakeFleetServer server_;
  std::unique_ptr<FleetClient> client_;
};

TEST(FleetClientCreateTest, RejectsEmptyAddress) {
  ClientOptions options;
  options.server_address = "";
  absl::StatusOr<std::unique_ptr<FleetClient>> client =
      FleetClient::Create(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("empty"));
}

TEST(FleetClientCreateTest, RejectsNonPositiveTimeout) {
  ClientOptions options;
  options.rpc_timeout = absl::ZeroDuration();
  EXPECT_EQ(FleetClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FleetClientCreateTest, DoesNotConnectEagerly) {
  ClientOptions options;
  options.server_address = UnusedAddress();
  EXPECT_TRUE(FleetClient::Create(options).ok());
}

TEST_F(FleetClientTest, ListDatabasesReturnsOnePage) {
  fleet::v1::ListDatabasesRequest request;
  request.set_page_size(2);
  absl::StatusOr<fleet::v1::ListDatabasesResponse> page =
      client_->ListDatabases(request);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->databases_size(), 2);
  EXPECT_EQ(page->next_page_token(), "2");
  EXPECT_EQ(page->total_size(), 7);
}

TEST_F(FleetClientTest, ListAllDatabasesFollowsPageTokens) {
  absl::StatusOr<std::vector<Database>> all =
      client_->ListAllDatabases("", /*page_size=*/3);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Ids(*all), ElementsAre("db-1", "db-2", "db-3", "db-4", "db-5",
                                     "db-6", "db-7"));
  EXPECT_THAT(server_.service().page_tokens_seen(), ElementsAre("", "3", "6"));
}

TEST_F(FleetClientTest, ListAllDatabasesPassesTheSelector) {
  absl::StatusOr<std::vector<Database>> prod =
      client_->ListAllDatabases("env=prod", /*page_size=*/2);
  ASSERT_TRUE(prod.ok()) << prod.status();
  EXPECT_THAT(Ids(*prod), ElementsAre("db-1", "db-3", "db-4", "db-5", "db-6"));
}

TEST_F(FleetClientTest, ListAllDatabasesWithTheServersPageSize) {
  absl::StatusOr<std::vector<Database>> all = client_->ListAllDatabases("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 7u);
  EXPECT_THAT(server_.service().page_tokens_seen(), ElementsAre(""));
}

TEST_F(FleetClientTest, ListAllDatabasesStopsOnARepeatedPageToken) {
  server_.service().SetRepeatPageToken(true);
  absl::StatusOr<std::vector<Database>> all =
      client_->ListAllDatabases("", /*page_size=*/2);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(all.status().message(), HasSubstr("same page token"));
}

TEST_F(FleetClientTest, ServerErrorsPassThrough) {
  absl::StatusOr<std::vector<Database>> bad =
      client_->ListAllDatabases("env==prod,re gion=eu");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("re gion=eu"));
}

TEST_F(FleetClientTest, GetDatabase) {
  absl::StatusOr<Database> database = client_->GetDatabase("db-2");
  ASSERT_TRUE(database.ok()) << database.status();
  EXPECT_EQ(database->labels().at("env"), "staging");
}

TEST_F(FleetClientTest, GetDatabaseNotFoundPassesThrough) {
  absl::StatusOr<Database> database = client_->GetDatabase("nope");
  EXPECT_EQ(database.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(database.status().message(), "database \"nope\" is not known");
}

TEST_F(FleetClientTest, SlowServerHitsTheDeadlineAndNamesTheServer) {
  server_.service().SetGetHangs(true);
  std::unique_ptr<FleetClient> client =
      ClientFor(server_.address(), absl::Milliseconds(200));
  absl::StatusOr<Database> database = client->GetDatabase("db-1");
  EXPECT_EQ(database.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(database.status().message(),
              HasSubstr("no answer from ecliptix-server at " +
                        server_.address() + " within 200ms"));
}

TEST(FleetClientUnreachableTest, UnaryCallSaysWhichServerItCannotReach) {
  const std::string address = UnusedAddress();
  std::unique_ptr<FleetClient> client = ClientFor(address, absl::Seconds(30));
  const absl::Time start = absl::Now();
  absl::StatusOr<Database> database = client->GetDatabase("db-1");
  EXPECT_EQ(database.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(database.status().message(),
              HasSubstr("cannot reach ecliptix-server at " + address + ": "));
  // Not wait-for-ready: fails at once rather than at the deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(FleetClientUnreachableTest, WatchFailsAtOnce) {
  const std::string address = UnusedAddress();
  std::unique_ptr<FleetClient> client = ClientFor(address);
  int events = 0;
  absl::Status status =
      client->WatchFleet({}, [&](const FleetEvent&) { return ++events, true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(),
              HasSubstr("cannot reach ecliptix-server at " + address));
  EXPECT_EQ(events, 0);
}

TEST_F(FleetClientTest, WatchStopsWhenTheCallbackReturnsFalse) {
  server_.service().SetWatchEvents(Events(5));
  std::vector<std::string> seen;
  absl::Status status = client_->WatchFleet({}, [&](const FleetEvent& event) {
    seen.push_back(event.database().database_id());
    return seen.size() < 3;
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(seen, ElementsAre("db-0", "db-1", "db-2"));
  // The stream was cancelled, not left open on the server.
  EXPECT_TRUE(
      server_.service().watch_cancelled().WaitForNotificationWithTimeout(
          absl::Seconds(10)));
}

TEST_F(FleetClientTest, CancelWatchesFromAnotherThreadEndsTheWatchOk) {
  server_.service().SetWatchEvents(Events(1));
  absl::Status status = absl::UnknownError("not finished");
  int events = 0;
  std::thread watcher([&] {
    status = client_->WatchFleet({}, [&](const FleetEvent&) {
      ++events;
      return true;
    });
  });
  ASSERT_TRUE(
      server_.service().first_event_sent().WaitForNotificationWithTimeout(
          absl::Seconds(10)));
  // The event may still be on its way to the callback; cancelling now must not
  // lose the OK.
  client_->CancelWatches();
  watcher.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LE(events, 1);
}

TEST_F(FleetClientTest, WatchReturnsTheStatusTheServerEndsWith) {
  server_.service().SetWatchEvents(
      Events(2),
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad selector"));
  int events = 0;
  absl::Status status = client_->WatchFleet({}, [&](const FleetEvent&) {
    ++events;
    return true;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "bad selector");
  EXPECT_EQ(events, 2);
}

}  // namespace
}  // namespace ecliptix::client
