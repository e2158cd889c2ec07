// The foundation end to end: agents register with their labels and engine
// versions, disconnects and lost agents show up in WatchFleet, the registry
// survives a server restart and agents come back on their own, and bad input is
// refused precisely.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/fleet_client.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::WaitFor;

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

// Collects WatchFleet events on a background thread.
class FleetWatcher {
 public:
  FleetWatcher(client::FleetClient* client, std::string selector = "")
      : client_(client) {
    thread_ = std::thread([this, selector] {
      v1::WatchFleetRequest request;
      request.set_selector(selector);
      absl::Status status =
          client_->WatchFleet(request, [this](const v1::FleetEvent& event) {
            absl::MutexLock lock(&mutex_);
            events_.push_back(event);
            return !stop_;
          });
      absl::MutexLock lock(&mutex_);
      final_status_ = status;
      done_ = true;
    });
  }
  ~FleetWatcher() {
    {
      absl::MutexLock lock(&mutex_);
      stop_ = true;
    }
    client_->CancelWatches();
    thread_.join();
  }
  bool Saw(v1::FleetEvent::Type type, const std::string& database_id) {
    absl::MutexLock lock(&mutex_);
    for (const auto& event : events_) {
      if (event.type() == type && event.database().database_id() == database_id)
        return true;
    }
    return false;
  }
  bool done() {
    absl::MutexLock lock(&mutex_);
    return done_;
  }

 private:
  client::FleetClient* client_;
  absl::Mutex mutex_;
  std::vector<v1::FleetEvent> events_ ABSL_GUARDED_BY(mutex_);
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  bool done_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(TmpDir(), "/fleet-", ++counter);
    std::filesystem::create_directories(dir_);
    store_url_ = absl::StrCat("sqlite://", dir_, "/state.db");
    StartServer("127.0.0.1:0");
  }

  // Starts the real server binary; with port 0 it learns the port from the
  // startup log line.
  void StartServer(const std::string& listen) {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"),
         absl::StrCat("--listen=", listen),
         absl::StrCat("--store=", store_url_), "--heartbeat_interval=200ms",
         "--heartbeat_timeout=1500ms"},
        absl::StrCat(dir_, "/server-", ++server_starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    port_ = port;
    address_ = absl::StrCat("127.0.0.1:", port_);
    client::ClientOptions options;
    options.server_address = address_;
    auto client = client::FleetClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  ChildProcess& StartAgent(const std::string& database_url,
                           const std::string& labels,
                           const std::string& database_id) {
    auto agent =
        ChildProcess::Start({RunfilePath("agent/ecliptix-agent"),
                             absl::StrCat("--server=", address_),
                             absl::StrCat("--database=", database_url),
                             absl::StrCat("--labels=", labels),
                             absl::StrCat("--database_id=", database_id),
                             "--initial_backoff=100ms", "--max_backoff=500ms"},
                            absl::StrCat(dir_, "/agent-", database_id, ".log"));
    EXPECT_TRUE(agent.ok()) << agent.status();
    agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
    return *agents_.back();
  }

  std::string SqliteUrl(const std::string& name) {
    return absl::StrCat("sqlite://", dir_, "/", name, ".db");
  }

  v1::ConnectionState StateOf(const std::string& id) {
    auto database = client_->GetDatabase(id);
    return database.ok() ? database->connection_state()
                         : v1::CONNECTION_STATE_UNSPECIFIED;
  }

  bool AllConnected(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      if (StateOf(id) != v1::CONNECTION_STATE_CONNECTED) return false;
    }
    return true;
  }

  std::string dir_;
  std::string store_url_;
  int server_starts_ = 0;
  int port_ = 0;
  std::string address_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<client::FleetClient> client_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
};

TEST_F(FleetTest, AgentsAppearWithLabelsAndEngineVersions) {
  StartAgent(SqliteUrl("a"), "env=staging,region=eu", "sqlite-a");
  StartAgent(SqliteUrl("b"), "env=prod,region=us", "sqlite-b");
  std::vector<std::string> ids = {"sqlite-a", "sqlite-b"};
  const bool with_postgres = testing::PostgresAdminUrl().has_value();
  if (with_postgres) {
    // The id lives in the database itself, so each agent gets a database of its
    // own.
    auto libpq_database = testing::CreateScratchDatabase("fleet_libpq");
    ASSERT_TRUE(libpq_database.ok()) << libpq_database.status();
    auto odbc_database = testing::CreateScratchDatabase("fleet_odbc");
    ASSERT_TRUE(odbc_database.ok()) << odbc_database.status();
    StartAgent(libpq_database->url, "env=prod,region=eu", "postgres-1");
    StartAgent(odbc_database->odbc_url, "env=prod,region=eu,via=odbc",
               "postgres-odbc");
    ids.push_back("postgres-1");
    ids.push_back("postgres-odbc");
  }
  ASSERT_TRUE(WaitFor([&] { return AllConnected(ids); }))
      << agents_.back()->Output() << server_->Output();

  auto all = client_->ListAllDatabases("");
  ASSERT_TRUE(all.ok()) << all.status();
  std::map<std::string, v1::Database> by_id;
  for (const auto& database : *all) by_id[database.database_id()] = database;
  ASSERT_EQ(by_id.size(), ids.size());
  EXPECT_EQ(by_id["sqlite-a"].engine(), v1::ENGINE_SQLITE);
  EXPECT_EQ(by_id["sqlite-a"].connector(), v1::CONNECTOR_SQLITE);
  EXPECT_THAT(by_id["sqlite-a"].engine_version(),
              ::testing::MatchesRegex(R"(3\.[0-9]+\.[0-9]+)"));
  EXPECT_EQ(by_id["sqlite-a"].labels().at("env"), "staging");
  EXPECT_EQ(by_id["sqlite-a"].labels().at("region"), "eu");
  EXPECT_EQ(by_id["sqlite-b"].labels().at("region"), "us");
  EXPECT_FALSE(by_id["sqlite-b"].agent_version().empty());
  if (with_postgres) {
    EXPECT_EQ(by_id["postgres-1"].engine(), v1::ENGINE_POSTGRESQL);
    EXPECT_EQ(by_id["postgres-1"].connector(), v1::CONNECTOR_LIBPQ);
    EXPECT_THAT(by_id["postgres-1"].engine_version(), HasSubstr("15"));
    EXPECT_EQ(by_id["postgres-odbc"].engine(), v1::ENGINE_POSTGRESQL);
    EXPECT_EQ(by_id["postgres-odbc"].connector(), v1::CONNECTOR_ODBC);
    EXPECT_EQ(by_id["postgres-odbc"].engine_version(),
              by_id["postgres-1"].engine_version());
  }

  auto selected = client_->ListAllDatabases("env=prod,region=us");
  ASSERT_TRUE(selected.ok());
  ASSERT_EQ(selected->size(), 1u);
  EXPECT_EQ((*selected)[0].database_id(), "sqlite-b");

  // The same through ecliptixctl, as a person would run it.
  auto table = testing::RunCommand({RunfilePath("client/ecliptixctl"),
                                    absl::StrCat("--server=", address_),
                                    "fleet", "list"});
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->exit_code, 0) << table->output;
  EXPECT_THAT(table->output, HasSubstr("sqlite-a"));
  EXPECT_THAT(table->output, HasSubstr("env=staging"));
  auto json = testing::RunCommand(
      {RunfilePath("client/ecliptixctl"), absl::StrCat("--server=", address_),
       "fleet", "list", "--selector=env=staging", "-o", "json"});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->exit_code, 0) << json->output;
  EXPECT_THAT(json->output, HasSubstr("\"sqlite-a\""));
  EXPECT_THAT(json->output, ::testing::Not(HasSubstr("sqlite-b")));
}

TEST_F(FleetTest, KilledAgentShowsDisconnectedInWatch) {
  ChildProcess& doomed = StartAgent(SqliteUrl("doomed"), "env=prod", "doomed");
  StartAgent(SqliteUrl("survivor"), "env=prod", "survivor");
  ASSERT_TRUE(WaitFor([&] { return AllConnected({"doomed", "survivor"}); }));
  FleetWatcher watcher(client_.get());
  ASSERT_TRUE(WaitFor(
      [&] { return watcher.Saw(v1::FleetEvent::TYPE_SNAPSHOT, "doomed"); }));

  doomed.Signal(SIGKILL);
  ASSERT_TRUE(WaitFor([&] {
    return watcher.Saw(v1::FleetEvent::TYPE_DISCONNECTED, "doomed");
  }));
  EXPECT_EQ(StateOf("doomed"), v1::CONNECTION_STATE_DISCONNECTED);
  EXPECT_EQ(StateOf("survivor"), v1::CONNECTION_STATE_CONNECTED);
  EXPECT_FALSE(watcher.Saw(v1::FleetEvent::TYPE_DISCONNECTED, "survivor"));
}

TEST_F(FleetTest, SilentAgentIsMarkedLostAndComesBack) {
  ChildProcess& agent = StartAgent(SqliteUrl("frozen"), "env=prod", "frozen");
  ASSERT_TRUE(WaitFor([&] { return AllConnected({"frozen"}); }));
  FleetWatcher watcher(client_.get());
  // A stopped process keeps its connection open but sends nothing: only the
  // heartbeat deadline can tell.
  agent.Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor(
      [&] { return watcher.Saw(v1::FleetEvent::TYPE_LOST, "frozen"); }));
  EXPECT_EQ(StateOf("frozen"), v1::CONNECTION_STATE_LOST);
  agent.Signal(SIGCONT);
  ASSERT_TRUE(WaitFor(
      [&] { return watcher.Saw(v1::FleetEvent::TYPE_CONNECTED, "frozen"); }));
  EXPECT_EQ(StateOf("frozen"), v1::CONNECTION_STATE_CONNECTED);
}

TEST_F(FleetTest, ServerRestartKeepsTheRegistryAndAgentsComeBack) {
  ChildProcess& first =
      StartAgent(SqliteUrl("one"), "env=prod,region=eu", "one");
  ChildProcess& second =
      StartAgent(SqliteUrl("two"), "env=staging,region=us", "two");
  ASSERT_TRUE(WaitFor([&] { return AllConnected({"one", "two"}); }));
  const pid_t first_pid = first.pid();

  server_->Signal(SIGTERM);
  auto exit_code = server_->Wait(absl::Seconds(20));
  ASSERT_TRUE(exit_code.has_value()) << "the server did not stop on SIGTERM";
  EXPECT_EQ(*exit_code, 0) << server_->Output();
  EXPECT_TRUE(first.running());
  EXPECT_TRUE(second.running());

  // Same port, same store. The agents are not touched: they reconnect by
  // themselves.
  StartServer(absl::StrCat("127.0.0.1:", port_));
  auto restored = client_->GetDatabase("two");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->labels().at("region"), "us");
  ASSERT_TRUE(WaitFor([&] {
    return AllConnected({"one", "two"});
  })) << server_->Output();
  EXPECT_EQ(first.pid(), first_pid);
  EXPECT_TRUE(first.running());
}

TEST_F(FleetTest, UnknownDatabaseAndMalformedSelectorAreRefused) {
  auto missing = client_->GetDatabase("no-such-database");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto bad = client_->ListAllDatabases("env=prod,re gion=eu");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("re gion=eu"));

  auto ctl = testing::RunCommand({RunfilePath("client/ecliptixctl"),
                                  absl::StrCat("--server=", address_), "fleet",
                                  "get", "no-such-database"});
  ASSERT_TRUE(ctl.ok());
  EXPECT_EQ(ctl->exit_code, 1);
  EXPECT_THAT(ctl->output, HasSubstr("NOT_FOUND"));
}

TEST_F(FleetTest, AgentWithBadDatabaseExitsWithOneLine) {
  auto malformed = testing::RunCommand({RunfilePath("agent/ecliptix-agent"),
                                        absl::StrCat("--server=", address_),
                                        "--database=mysql://nowhere/db"});
  ASSERT_TRUE(malformed.ok()) << malformed.status();
  EXPECT_NE(malformed->exit_code, 0);
  EXPECT_THAT(malformed->output, HasSubstr("not supported"));
  EXPECT_EQ(
      std::count(malformed->output.begin(), malformed->output.end(), '\n'), 1)
      << malformed->output;

  // Nothing listens on port 1.
  auto unreachable = testing::RunCommand(
      {RunfilePath("agent/ecliptix-agent"), absl::StrCat("--server=", address_),
       "--database=postgresql://postgres@127.0.0.1:1/"
       "postgres?connect_timeout=2"});
  ASSERT_TRUE(unreachable.ok()) << unreachable.status();
  EXPECT_NE(unreachable->exit_code, 0);
  EXPECT_THAT(unreachable->output, HasSubstr("cannot connect"));
  EXPECT_EQ(
      std::count(unreachable->output.begin(), unreachable->output.end(), '\n'),
      1)
      << unreachable->output;

  auto missing_dir = testing::RunCommand(
      {RunfilePath("agent/ecliptix-agent"), absl::StrCat("--server=", address_),
       absl::StrCat("--database=sqlite://", dir_, "/no/such/dir/x.db")});
  ASSERT_TRUE(missing_dir.ok());
  EXPECT_NE(missing_dir->exit_code, 0);
  EXPECT_EQ(
      std::count(missing_dir->output.begin(), missing_dir->output.end(), '\n'),
      1)
      << missing_dir->output;
}

// A client speaking garbage on the agent stream gets a precise error and cannot
// register.
TEST_F(FleetTest, GarbageOnTheAgentStreamIsRefused) {
  auto channel =
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto stub = v1::AgentService::NewStub(channel);
  auto connect = [&](const v1::AgentMessage& first) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    auto stream = stub->Connect(&context);
    stream->Write(first);
    stream->WritesDone();
    v1::ServerMessage reply;
    while (stream->Read(&reply)) {
    }
    return stream->Finish();
  };

  v1::AgentMessage no_id;
  no_id.set_sequence(1);
  no_id.mutable_hello()->set_engine(v1::ENGINE_SQLITE);
  no_id.mutable_hello()->set_engine_version("3.40.1");
  no_id.mutable_hello()->set_agent_version("0.1.0");
  grpc::Status status = connect(no_id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("hello.database_id"));

  v1::AgentMessage heartbeat_first;
  heartbeat_first.set_sequence(1);
  heartbeat_first.mutable_heartbeat();
  status = connect(heartbeat_first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("must be a Hello"));

  auto all = client_->ListAllDatabases("");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

// The command envelope end to end, with an in-process server: a ping reaches a
// real agent, which acknowledges it and reports it finished.
TEST(CommandTest, PingRoundTrip) {
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.store_url = absl::StrCat("sqlite://", TmpDir(), "/ping-state.db");
  auto server = server::Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::Mutex mutex;
  std::vector<v1::AgentMessage> received;
  (*server)->registry().AddCommandObserver(
      [&](const std::string& database_id, const v1::AgentMessage& message) {
        absl::MutexLock lock(&mutex);
        received.push_back(message);
      });
  auto agent = ChildProcess::Start(
      {RunfilePath("agent/ecliptix-agent"),
       absl::StrCat("--server=127.0.0.1:", (*server)->port()),
       absl::StrCat("--database=sqlite://", TmpDir(), "/ping.db"),
       "--database_id=ping-db"},
      absl::StrCat(TmpDir(), "/ping-agent.log"));
  ASSERT_TRUE(agent.ok());
  ASSERT_TRUE(WaitFor([&] {
    auto database = (*server)->registry().GetDatabase("ping-db");
    return database.ok() &&
           database->connection_state() == v1::CONNECTION_STATE_CONNECTED;
  })) << agent->Output();

  v1::Command command;
  command.mutable_ping()->set_payload("hello agent");
  auto command_id = (*server)->registry().SendCommand("ping-db", command);
  ASSERT_TRUE(command_id.ok()) << command_id.status();
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex);
    return received.size() >= 2;
  })) << agent->Output();
  absl::MutexLock lock(&mutex);
  EXPECT_EQ(received[0].command_ack().command_id(), *command_id);
  EXPECT_EQ(received[0].command_ack().status().code(), 0);
  EXPECT_EQ(received[1].command_event().command_id(), *command_id);
  EXPECT_EQ(received[1].command_event().finished().code(), 0);
  EXPECT_THAT(received[1].command_event().finished().message(),
              HasSubstr("hello agent"));
}

}  // namespace
}  // namespace ecliptix
