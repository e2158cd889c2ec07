// ControlStream against a fake AgentService: the Hello, heartbeats, command
// handling, protocol errors, reconnecting after a server restart, and Stop()
// while the server is down.
#include "agent/control_stream.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Answers Hello with Welcome (or, when told, with a command first), sends
// scripted commands, and records every agent message per session.
class FakeAgentService final : public v1::AgentService::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerMessage, v1::AgentMessage>* stream)
      override {
    v1::AgentMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    size_t session = 0;
    std::vector<v1::Command> commands;
    bool skip_welcome = false;
    {
      absl::MutexLock lock(&mutex_);
      session = sessions_.size();
      sessions_.emplace_back();
      sessions_.back().push_back(message);
      commands = commands_;
      skip_welcome = skip_welcome_;
      skip_welcome_ = false;
    }
    uint64_t sequence = 0;
    v1::ServerMessage reply;
    if (skip_welcome) {
      reply.set_sequence(++sequence);
      reply.mutable_command()->set_command_id("too-early");
      reply.mutable_command()->mutable_ping();
      stream->Write(reply);
    } else {
      reply.set_sequence(++sequence);
      reply.mutable_welcome()->set_session_id(
          absl::StrCat("session-", session + 1));
      reply.mutable_welcome()->mutable_heartbeat_interval()->set_nanos(
          50'000'000);
      stream->Write(reply);
      for (const v1::Command& command : commands) {
        reply.Clear();
        reply.set_sequence(++sequence);
        *reply.mutable_command() = command;
        stream->Write(reply);
      }
    }
    while (stream->Read(&message)) {
      absl::MutexLock lock(&mutex_);
      sessions_[session].push_back(message);
    }
    absl::MutexLock lock(&mutex_);
    half_closes_ += context->IsCancelled() ? 0 : 1;
    return grpc::Status::OK;
  }

  void SetCommands(std::vector<v1::Command> commands) {
    absl::MutexLock lock(&mutex_);
    commands_ = std::move(commands);
  }
  void SkipWelcomeOnce() {
    absl::MutexLock lock(&mutex_);
    skip_welcome_ = true;
  }

  // Waits until `predicate(sessions)` holds.
  template <typename Predicate>
  bool Await(Predicate predicate) {
    absl::MutexLock lock(&mutex_);
    auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return predicate(sessions_);
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&holds), kTimeout);
  }
  std::vector<std::vector<v1::AgentMessage>> sessions() {
    absl::MutexLock lock(&mutex_);
    return sessions_;
  }
  int half_closes() {
    absl::MutexLock lock(&mutex_);
    return half_closes_;
  }

 private:
  absl::Mutex mutex_;
  std::vector<std::vector<v1::AgentMessage>> sessions_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::Command> commands_ ABSL_GUARDED_BY(mutex_);
  bool skip_welcome_ ABSL_GUARDED_BY(mutex_) = false;
  int half_closes_ ABSL_GUARDED_BY(mutex_) = 0;
};

std::unique_ptr<grpc::Server> StartServer(FakeAgentService* service,
                                          int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", *port),
                           grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

v1::Command Ping(const std::string& id, const std::string& payload) {
  v1::Command command;
  command.set_command_id(id);
  command.mutable_ping()->set_payload(payload);
  return command;
}

class ControlStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(&service_, &port_);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      stream_->Stop();
      if (runner_.joinable()) runner_.join();
    }
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  void StartAgent() {
    ControlStreamOptions options;
    options.server_address = absl::StrCat("127.0.0.1:", port_);
    options.hello.set_database_id("db-test");
    options.hello.set_engine(v1::ENGINE_SQLITE);
    options.hello.set_engine_version("3.40.1");
    options.hello.set_connector(v1::CONNECTOR_SQLITE);
    (*options.hello.mutable_labels())["env"] = "test";
    options.backoff.initial = absl::Milliseconds(20);
    options.backoff.max = absl::Milliseconds(100);
    options.welcome_timeout = absl::Seconds(2);
    options.handler = handler_;
    stream_ = std::make_unique<ControlStream>(std::move(options));
    runner_ = std::thread([this] { stream_->Run(); });
  }

  FakeAgentService service_;
  // Runs the commands other than ping when set (before StartAgent).
  CommandHandler* handler_ = nullptr;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ControlStream> stream_;
  std::thread runner_;
};

// Messages of one kind in a session.
std::vector<v1::AgentMessage> OfKind(
    const std::vector<v1::AgentMessage>& messages,
    v1::AgentMessage::PayloadCase kind) {
  std::vector<v1::AgentMessage> result;
  for (const auto& message : messages) {
    if (message.payload_case() == kind) result.push_back(message);
  }
  return result;
}

TEST_F(ControlStreamTest, HelloHeartbeatsAndCommands) {
  v1::Command unknown;
  unknown.set_command_id("c-unknown");
  service_.SetCommands(
      {Ping("c-1", "hello there"), Ping("c-1", "again"), unknown});
  StartAgent();
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  EXPECT_EQ(stream_->session_id(), "session-1");
  // Acks for c-1 twice and c-unknown, one finished event, and at least two
  // heartbeats.
  ASSERT_TRUE(service_.Await([](const auto& sessions) {
    return !sessions.empty() &&
           OfKind(sessions[0], v1::AgentMessage::kCommandAck).size() == 3 &&
           OfKind(sessions[0], v1::AgentMessage::kHeartbeat).size() >= 2;
  }));
  const std::vector<v1::AgentMessage> messages = service_.sessions()[0];

  const v1::Hello& hello = messages[0].hello();
  EXPECT_EQ(messages[0].sequence(), 1u);
  EXPECT_EQ(hello.database_id(), "db-test");
  EXPECT_EQ(hello.engine(), v1::ENGINE_SQLITE);
  EXPECT_EQ(hello.agent_version(), "0.1.0");
  EXPECT_THAT(
      hello.capabilities(),
      ElementsAre("heartbeat", "ping", "operations", "config", "query"));
  EXPECT_FALSE(hello.agent_host().empty());
  EXPECT_EQ(hello.last_processed_server_sequence(), 0u);
  EXPECT_EQ(hello.labels().at("env"), "test");
  for (size_t i = 0; i < messages.size(); ++i)
    EXPECT_EQ(messages[i].sequence(), i + 1);

  const auto acks = OfKind(messages, v1::AgentMessage::kCommandAck);
  EXPECT_EQ(acks[0].command_ack().command_id(), "c-1");
  EXPECT_EQ(acks[0].command_ack().status().code(), 0);
  // The repeated id is acknowledged again but not run again.
  EXPECT_EQ(acks[1].command_ack().command_id(), "c-1");
  EXPECT_EQ(acks[1].command_ack().status().code(), 0);
  EXPECT_EQ(acks[2].command_ack().command_id(), "c-unknown");
  EXPECT_EQ(acks[2].command_ack().status().code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(acks[2].command_ack().status().message(),
            "command kind not supported by this agent");
  EXPECT_EQ(stream_->commands_executed(), 1);

  // The outcome is reported again with the repeated ack; the payload is the
  // first one's.
  const auto events = OfKind(messages, v1::AgentMessage::kCommandEvent);
  ASSERT_EQ(events.size(), 2u);
  for (const auto& event : events) {
    EXPECT_EQ(event.command_event().command_id(), "c-1");
    EXPECT_EQ(event.command_event().finished().code(), 0);
    EXPECT_EQ(event.command_event().finished().message(), "hello there");
  }
}

// Reports one configuration value, then finishes.
class ConfigValueHandler : public CommandHandler {
 public:
  absl::Status Accept(const v1::Command&) override { return absl::OkStatus(); }
  void Run(const v1::Command&,
           std::shared_ptr<CommandReporter> reporter) override {
    {
      absl::MutexLock lock(&mutex_);
      ++runs_;
    }
    v1::CommandEvent event;
    v1::ConfigValueReport* value = event.mutable_config_value();
    value->set_key("Audit.RetentionDays");
    value->set_value("90");
    value->set_present(true);
    value->set_previous_value("365");
    reporter->Report(event);
    reporter->Finish(absl::OkStatus());
  }
  int runs() {
    absl::MutexLock lock(&mutex_);
    return runs_;
  }

 private:
  absl::Mutex mutex_;
  int runs_ ABSL_GUARDED_BY(mutex_) = 0;
};

// A server that restarted while a configuration change ran lost the values
// it reported: the repeated command id brings them again with the outcome,
// without running the command twice.
TEST_F(ControlStreamTest, RepeatedCommandReportsItsConfigurationValuesAgain) {
  ConfigValueHandler handler;
  handler_ = &handler;
  v1::Command apply;
  apply.set_command_id("r-2/db-test/set/set/1");
  apply.mutable_apply_config()->set_bundle_id("sha256:b");
  service_.SetCommands({apply, apply});
  StartAgent();
  ASSERT_TRUE(service_.Await([](const auto& sessions) {
    return !sessions.empty() &&
           OfKind(sessions[0], v1::AgentMessage::kCommandEvent).size() == 4;
  }));
  EXPECT_EQ(handler.runs(), 1);
  std::vector<std::string> seen;
  const std::vector<v1::AgentMessage> messages = service_.sessions()[0];
  for (const v1::AgentMessage& message : messages) {
    if (message.has_command_ack()) seen.push_back("ack");
    if (!message.has_command_event()) continue;
    const v1::CommandEvent& event = message.command_event();
    EXPECT_EQ(event.command_id(), "r-2/db-test/set/set/1");
    if (event.has_config_value()) {
      EXPECT_EQ(event.config_value().value(), "90");
      EXPECT_EQ(event.config_value().previous_value(), "365");
      seen.push_back("value");
    }
    if (event.has_finished()) seen.push_back("finished");
  }
  EXPECT_THAT(seen, ElementsAre("ack", "value", "finished", "ack", "value",
                                "finished"));
}

TEST_F(ControlStreamTest, ReconnectsAfterServerRestartAndReportsLastSequence) {
  service_.SetCommands({Ping("c-1", "x")});
  StartAgent();
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  ASSERT_TRUE(service_.Await([](const auto& sessions) {
    return OfKind(sessions[0], v1::AgentMessage::kCommandEvent).size() == 1;
  }));
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  server_.reset();
  // The port may be reused at once: gRPC listens with SO_REUSEADDR.
  server_ = StartServer(&service_, &port_);
  ASSERT_NE(server_, nullptr);
  ASSERT_TRUE(stream_->AwaitSessions(2, kTimeout));
  const auto sessions = service_.sessions();
  ASSERT_GE(sessions.size(), 2u);
  // Welcome (1) and the ping (2) were processed in the first session.
  EXPECT_EQ(sessions.back()[0].hello().last_processed_server_sequence(), 2u);
  EXPECT_EQ(sessions.back()[0].sequence(), 1u);
  EXPECT_EQ(stream_->session_id(), absl::StrCat("session-", sessions.size()));
}

TEST_F(ControlStreamTest, FirstMessageNotWelcomeIsRetried) {
  service_.SkipWelcomeOnce();
  StartAgent();
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  EXPECT_EQ(service_.sessions().size(), 2u);
  EXPECT_EQ(stream_->commands_executed(), 0);  // The early command was not run.
}

TEST_F(ControlStreamTest, StopHalfClosesTheSession) {
  StartAgent();
  ASSERT_TRUE(stream_->AwaitSessions(1, kTimeout));
  stream_->Stop();
  runner_.join();
  EXPECT_FALSE(stream_->connected());
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(service_.half_closes(), 1);
}

TEST_F(ControlStreamTest, KeepsRetryingWhileServerIsDownAndStopsPromptly) {
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  server_.reset();
  StartAgent();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_GE(stream_->attempts(), 3);
  EXPECT_FALSE(stream_->connected());
  const absl::Time start = absl::Now();
  stream_->Stop();
  runner_.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(stream_->sessions(), 0);
}

TEST(ControlStreamStopTest, StopBeforeRunMakesRunReturn) {
  ControlStreamOptions options;
  options.server_address = "127.0.0.1:1";
  ControlStream stream(std::move(options));
  stream.Stop();
  stream.Run();
  EXPECT_EQ(stream.attempts(), 0);
}

}  // namespace
}  // namespace ecliptix::agent
