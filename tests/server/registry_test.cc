#include "server/fleet/registry.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using testing::MakeHello;

class FakeSession : public AgentSession {
 public:
  void Send(v1::ServerMessage message) override {
    sent.push_back(std::move(message));
  }
  void Close(const absl::Status& status) override { closed_with = status; }
  std::vector<v1::ServerMessage> sent;
  absl::Status closed_with = absl::OkStatus();
};

class RecordingSink : public FleetEventSink {
 public:
  bool Deliver(const v1::FleetEvent& event) override {
    events.push_back(event);
    return open;
  }
  std::vector<v1::FleetEvent::Type> Types() const {
    std::vector<v1::FleetEvent::Type> types;
    for (const auto& event : events) types.push_back(event.type());
    return types;
  }
  std::vector<v1::FleetEvent> events;
  bool open = true;
};

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() : registry_(nullptr, &clock_, Options()) {}
  static RegistryOptions Options() {
    RegistryOptions options;
    options.heartbeat_interval = absl::Seconds(10);
    options.heartbeat_timeout = absl::Seconds(30);
    return options;
  }
  FakeClock clock_;
  Registry registry_;
};

TEST_F(RegistryTest, RegisterListsTheDatabaseConnectedWithItsLabels) {
  auto session = std::make_shared<FakeSession>();
  auto registration = registry_.Register(MakeHello("db-1", {{"env", "prod"}}),
                                         "ipv4:127.0.0.1:1", session);
  ASSERT_TRUE(registration.ok()) << registration.status();
  EXPECT_TRUE(registration->welcome.first_registration());
  EXPECT_EQ(registration->welcome.heartbeat_interval().seconds(), 10);

  auto database = registry_.GetDatabase("db-1");
  ASSERT_TRUE(database.ok());
  EXPECT_EQ(database->connection_state(), v1::CONNECTION_STATE_CONNECTED);
  EXPECT_EQ(database->labels().at("env"), "prod");
  EXPECT_EQ(database->engine_version(), "3.40.1");
  EXPECT_EQ(database->agent_peer(), "ipv4:127.0.0.1:1");
}

TEST_F(RegistryTest, HelloWithoutDatabaseIdIsRefusedAndNotRegistered) {
  v1::Hello hello = MakeHello("");
  auto registration =
      registry_.Register(hello, "peer", std::make_shared<FakeSession>());
  EXPECT_EQ(registration.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(registration.status().message(), HasSubstr("hello.database_id"));
  auto list = registry_.ListDatabases({});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->total_size(), 0);
}

TEST_F(RegistryTest, HelloWithBadFieldsNamesTheField) {
  v1::Hello no_engine = MakeHello("db-1");
  no_engine.set_engine(v1::ENGINE_UNSPECIFIED);
  EXPECT_THAT(
      registry_.Register(no_engine, "p", std::make_shared<FakeSession>())
          .status()
          .message(),
      HasSubstr("hello.engine"));
  v1::Hello bad_label = MakeHello("db-1", {{"env", "has space"}});
  EXPECT_THAT(
      registry_.Register(bad_label, "p", std::make_shared<FakeSession>())
          .status()
          .message(),
      HasSubstr("hello.labels[env]"));
  v1::Hello bad_id = MakeHello("db/1");
  EXPECT_EQ(registry_.Register(bad_id, "p", std::make_shared<FakeSession>())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, MissedHeartbeatDeadlineMarksLostAndClosesTheStream) {
  auto session = std::make_shared<FakeSession>();
  auto registration = registry_.Register(MakeHello("db-1"), "peer", session);
  ASSERT_TRUE(registration.ok());
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(registry_.Watch("", sink).ok());

  clock_.Advance(absl::Seconds(20));
  registry_.Touch(registration->session_id);
  clock_.Advance(absl::Seconds(25));
  EXPECT_EQ(registry_.CheckHeartbeats(), 0)
      << "a heartbeat 25s ago is within the 30s timeout";
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(registry_.CheckHeartbeats(), 1);

  EXPECT_EQ(session->closed_with.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(registry_.GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_LOST);
  EXPECT_THAT(sink->Types(),
              ::testing::ElementsAre(v1::FleetEvent::TYPE_SNAPSHOT,
                                     v1::FleetEvent::TYPE_SNAPSHOT_COMPLETE,
                                     v1::FleetEvent::TYPE_LOST));
  // The closed stream's end does not turn LOST into DISCONNECTED.
  registry_.Unregister(registration->session_id, "stream ended");
  EXPECT_EQ(registry_.GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_LOST);
}

TEST_F(RegistryTest, ReconnectAfterLostIsConnectedAgain) {
  auto first = registry_.Register(MakeHello("db-1"), "peer",
                                  std::make_shared<FakeSession>());
  ASSERT_TRUE(first.ok());
  clock_.Advance(absl::Seconds(31));
  ASSERT_EQ(registry_.CheckHeartbeats(), 1);
  auto second = registry_.Register(MakeHello("db-1"), "peer",
                                   std::make_shared<FakeSession>());
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->welcome.first_registration());
  EXPECT_EQ(registry_.GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_CONNECTED);
}

TEST_F(RegistryTest, NewSessionSupersedesTheOldOne) {
  auto old_session = std::make_shared<FakeSession>();
  auto first = registry_.Register(MakeHello("db-1"), "peer-a", old_session);
  ASSERT_TRUE(first.ok());
  auto second = registry_.Register(MakeHello("db-1"), "peer-b",
                                   std::make_shared<FakeSession>());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(old_session->closed_with.code(), absl::StatusCode::kAborted);
  // The old stream ending must not disconnect the new session.
  registry_.Unregister(first->session_id, "stream ended");
  EXPECT_EQ(registry_.GetDatabase("db-1")->connection_state(),
            v1::CONNECTION_STATE_CONNECTED);
  EXPECT_EQ(registry_.GetDatabase("db-1")->agent_peer(), "peer-b");
}

TEST_F(RegistryTest, EventsForConnectDisconnectAndLabelChange) {
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(registry_.Watch("env=prod", sink).ok());
  auto first = registry_.Register(MakeHello("db-1", {{"env", "prod"}}), "peer",
                                  std::make_shared<FakeSession>());
  ASSERT_TRUE(first.ok());
  registry_.Unregister(first->session_id, "agent closed the stream");
  auto second = registry_.Register(MakeHello("db-1", {{"env", "staging"}}),
                                   "peer", std::make_shared<FakeSession>());
  ASSERT_TRUE(second.ok());
  // Unrelated database outside the selector: not seen.
  ASSERT_TRUE(registry_
                  .Register(MakeHello("db-2", {{"env", "dev"}}), "peer",
                            std::make_shared<FakeSession>())
                  .ok());

  EXPECT_THAT(
      sink->Types(),
      ::testing::ElementsAre(v1::FleetEvent::TYPE_SNAPSHOT_COMPLETE,
                             v1::FleetEvent::TYPE_REGISTERED,
                             v1::FleetEvent::TYPE_CONNECTED,
                             v1::FleetEvent::TYPE_DISCONNECTED,
                             // Moved out of env=prod: the watcher does not see
                             // it connect as staging, but hears that it left.
                             v1::FleetEvent::TYPE_LABELS_CHANGED));
  EXPECT_EQ(sink->events.back().previous_labels().at("env"), "prod");
  EXPECT_EQ(sink->events[3].reason(), "agent closed the stream");
}

TEST_F(RegistryTest, ClosedSinkIsForgotten) {
  auto sink = std::make_shared<RecordingSink>();
  ASSERT_TRUE(registry_.Watch("", sink).ok());
  sink->open = false;
  ASSERT_TRUE(
      registry_
          .Register(MakeHello("db-1"), "p", std::make_shared<FakeSession>())
          .ok());
  const size_t seen = sink->events.size();
  ASSERT_TRUE(
      registry_
          .Register(MakeHello("db-2"), "p", std::make_shared<FakeSession>())
          .ok());
  EXPECT_EQ(sink->events.size(), seen);
}

TEST_F(RegistryTest, ListPagesThroughEveryMatchingDatabase) {
  for (int i = 0; i < 250; ++i) {
    const std::string id = absl::StrCat("db-", 1000 + i);
    ASSERT_TRUE(
        registry_
            .Register(MakeHello(id, {{"env", i % 2 ? "prod" : "staging"}}), "p",
                      std::make_shared<FakeSession>())
            .ok());
  }
  v1::ListDatabasesRequest request;
  request.set_selector("env=prod");
  request.set_page_size(50);
  std::vector<std::string> ids;
  int pages = 0;
  do {
    auto page = registry_.ListDatabases(request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->total_size(), 125);
    for (const auto& database : page->databases())
      ids.push_back(database.database_id());
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(ids.size(), 125u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 125u);
}

// One answer holds every match, more than the largest page, in id order,
// each as GetDatabase shows it.
TEST_F(RegistryTest, SelectAnswersEveryMatchingDatabaseAtOnce) {
  uint64_t last_session = 0;
  for (int i = 0; i < 1200; ++i) {
    const std::string id = absl::StrCat("db-", 10000 + i);
    auto registration =
        registry_.Register(MakeHello(id, {{"env", i % 3 ? "prod" : "staging"}}),
                           "p", std::make_shared<FakeSession>());
    ASSERT_TRUE(registration.ok()) << registration.status();
    last_session = registration->session_id;
  }
  clock_.Advance(absl::Seconds(5));
  registry_.Touch(last_session);

  absl::StatusOr<std::vector<v1::Database>> prod = registry_.Select("env=prod");
  ASSERT_TRUE(prod.ok()) << prod.status();
  ASSERT_EQ(prod->size(), 800u);
  std::vector<std::string> ids;
  for (const v1::Database& database : *prod) {
    EXPECT_EQ(database.labels().at("env"), "prod");
    ids.push_back(database.database_id());
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 800u);
  auto touched = registry_.GetDatabase(prod->back().database_id());
  ASSERT_TRUE(touched.ok());
  EXPECT_EQ(prod->back().last_seen_time().seconds(),
            touched->last_seen_time().seconds());
  EXPECT_EQ(prod->back().last_seen_time().seconds(),
            absl::ToUnixSeconds(clock_.Now()));

  absl::StatusOr<std::vector<v1::Database>> all = registry_.Select("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1200u);
}

TEST_F(RegistryTest, SelectRefusesABadSelectorNamingIt) {
  auto result = registry_.Select("env=prod,re gion=eu");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("re gion=eu"));
}

TEST_F(RegistryTest, BadListArgumentsAreInvalid) {
  v1::ListDatabasesRequest request;
  request.set_selector("env=prod,re gion=eu");
  auto result = registry_.ListDatabases(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("re gion=eu"));

  request.set_selector("");
  request.set_page_token("not-a-token");
  EXPECT_EQ(registry_.ListDatabases(request).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(
      registry_.Watch("env in (a", std::make_shared<RecordingSink>()).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, UnknownDatabaseIsNotFound) {
  EXPECT_EQ(registry_.GetDatabase("nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, CommandsGoToConnectedAgentsOnly) {
  auto session = std::make_shared<FakeSession>();
  auto registration = registry_.Register(MakeHello("db-1"), "p", session);
  ASSERT_TRUE(registration.ok());
  v1::Command command;
  command.mutable_ping()->set_payload("hi");
  auto id = registry_.SendCommand("db-1", command);
  ASSERT_TRUE(id.ok());
  // The Welcome always comes first: a command can never overtake it.
  ASSERT_EQ(session->sent.size(), 2u);
  EXPECT_TRUE(session->sent[0].has_welcome());
  EXPECT_EQ(session->sent[1].command().command_id(), *id);

  std::vector<std::string> observed;
  registry_.AddCommandObserver(
      [&](const std::string& database_id, const v1::AgentMessage& message) {
        observed.push_back(
            absl::StrCat(database_id, ":", message.command_ack().command_id()));
      });
  v1::AgentMessage ack;
  ack.mutable_command_ack()->set_command_id(*id);
  registry_.OnCommandMessage(registration->session_id, ack);
  EXPECT_THAT(observed, ::testing::ElementsAre(absl::StrCat("db-1:", *id)));

  registry_.Unregister(registration->session_id, "gone");
  EXPECT_EQ(registry_.SendCommand("db-1", command).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_.SendCommand("db-9", command).status().code(),
            absl::StatusCode::kNotFound);
}

// A session that reads the registry from inside Send, as an adapter may: the
// registry calls no session while it holds its lock, so this cannot deadlock.
class ReadingSession : public AgentSession {
 public:
  ReadingSession(Registry* registry, std::string database_id)
      : registry_(registry), database_id_(std::move(database_id)) {}
  void Send(v1::ServerMessage message) override {
    if (message.has_welcome()) {
      // The Welcome is queued before the session is visible: nothing can be
      // sent to it yet, so nothing can overtake the Welcome.
      v1::Command ping;
      ping.mutable_ping()->set_payload("too early");
      command_during_welcome =
          registry_->SendCommand(database_id_, ping).status();
    } else {
      absl::StatusOr<v1::Database> database =
          registry_->GetDatabase(database_id_);
      states.push_back(database.ok() ? database->connection_state()
                                     : v1::CONNECTION_STATE_UNSPECIFIED);
    }
    sent.push_back(std::move(message));
  }
  void Close(const absl::Status& status) override { closed_with = status; }
  std::vector<v1::ServerMessage> sent;
  absl::Status command_during_welcome;
  std::vector<v1::ConnectionState> states;
  absl::Status closed_with = absl::OkStatus();

 private:
  Registry* const registry_;
  const std::string database_id_;
};

// A watcher that reads the registry from inside Deliver: each event is
// delivered after its change, so what it reads is at least that new.
class ReadingSink : public FleetEventSink {
 public:
  explicit ReadingSink(Registry* registry) : registry_(registry) {}
  bool Deliver(const v1::FleetEvent& event) override {
    types.push_back(event.type());
    if (event.has_database()) {
      absl::StatusOr<v1::Database> database =
          registry_->GetDatabase(event.database().database_id());
      states.push_back(database.ok() ? database->connection_state()
                                     : v1::CONNECTION_STATE_UNSPECIFIED);
    } else {
      absl::StatusOr<v1::ListDatabasesResponse> list =
          registry_->ListDatabases(v1::ListDatabasesRequest());
      listed = list.ok() ? list->total_size() : -1;
    }
    return true;
  }
  std::vector<v1::FleetEvent::Type> types;
  std::vector<v1::ConnectionState> states;
  int listed = -1;

 private:
  Registry* const registry_;
};

TEST_F(RegistryTest, SessionsAndWatchersMayReadTheRegistryWhileSent) {
  ASSERT_TRUE(
      registry_
          .Register(MakeHello("db-1"), "p", std::make_shared<FakeSession>())
          .ok());
  auto sink = std::make_shared<ReadingSink>(&registry_);
  ASSERT_TRUE(registry_.Watch("", sink).ok());
  EXPECT_EQ(sink->listed, 1);

  auto session = std::make_shared<ReadingSession>(&registry_, "db-2");
  auto registration = registry_.Register(MakeHello("db-2"), "p", session);
  ASSERT_TRUE(registration.ok());
  ASSERT_EQ(session->sent.size(), 1u);
  EXPECT_TRUE(session->sent[0].has_welcome());
  EXPECT_EQ(session->command_during_welcome.code(), absl::StatusCode::kNotFound)
      << session->command_during_welcome;

  v1::Command command;
  command.mutable_ping()->set_payload("hi");
  ASSERT_TRUE(registry_.SendCommand("db-2", command).ok());
  ASSERT_EQ(session->sent.size(), 2u);
  EXPECT_TRUE(session->sent[1].has_command());
  EXPECT_THAT(session->states,
              ::testing::ElementsAre(v1::CONNECTION_STATE_CONNECTED));

  registry_.Unregister(registration->session_id, "agent closed the stream");
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(registry_.CheckHeartbeats(), 1);  // db-1

  EXPECT_THAT(
      sink->types,
      ::testing::ElementsAre(
          v1::FleetEvent::TYPE_SNAPSHOT, v1::FleetEvent::TYPE_SNAPSHOT_COMPLETE,
          v1::FleetEvent::TYPE_REGISTERED, v1::FleetEvent::TYPE_CONNECTED,
          v1::FleetEvent::TYPE_DISCONNECTED, v1::FleetEvent::TYPE_LOST));
  EXPECT_THAT(sink->states,
              ::testing::ElementsAre(v1::CONNECTION_STATE_CONNECTED,
                                     v1::CONNECTION_STATE_CONNECTED,
                                     v1::CONNECTION_STATE_CONNECTED,
                                     v1::CONNECTION_STATE_DISCONNECTED,
                                     v1::CONNECTION_STATE_LOST));
}

TEST(RegistryPersistenceTest, RegistrySurvivesARestartAsDisconnected) {
  const std::string url = absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"),
                                       "/registry-persistence.db");
  FakeClock clock;
  {
    auto store = StateStore::Open(url);
    ASSERT_TRUE(store.ok()) << store.status();
    Registry registry(store->get(), &clock, {});
    ASSERT_TRUE(registry.Load().ok());
    ASSERT_TRUE(
        registry
            .Register(MakeHello("db-a", {{"env", "prod"}, {"region", "eu"}}),
                      "p", std::make_shared<FakeSession>())
            .ok());
    ASSERT_TRUE(
        registry
            .Register(MakeHello("db-b"), "p", std::make_shared<FakeSession>())
            .ok());
    registry.Stop();  // Flushes pending writes.
  }
  auto store = StateStore::Open(url);
  ASSERT_TRUE(store.ok());
  Registry registry(store->get(), &clock, {});
  ASSERT_TRUE(registry.Load().ok());
  auto database = registry.GetDatabase("db-a");
  ASSERT_TRUE(database.ok()) << database.status();
  EXPECT_EQ(database->connection_state(), v1::CONNECTION_STATE_DISCONNECTED);
  EXPECT_EQ(database->labels().at("region"), "eu");
  EXPECT_EQ(database->engine(), v1::ENGINE_SQLITE);
  EXPECT_TRUE(registry.GetDatabase("db-b").ok());
}

}  // namespace
}  // namespace ecliptix::server
