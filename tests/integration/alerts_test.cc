// Alerts end to end, with an in-process ecliptix-server over loopback gRPC on
// SQLite (and on PostgreSQL when ECLIPTIX_TEST_POSTGRES_URL is set) and a fake
// clock: simulated agents send metric batches over real AgentService.Connect
// streams; failed logins above the threshold fire an alert that WatchAlerts,
// `ecliptixctl alerts list` and `ecliptixctl fleet list` show; once the window
// is quiet it resolves. Bad requests are INVALID_ARGUMENT; bad --alert_* flags
// stop ecliptix-server with exit code 2.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/ctl_commands.h"
#include "client/fleet_client.h"
#include "common/clock.h"
#include "common/proto_time.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "ecliptix/fleet/v1/alerts.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::WaitFor;

// An agent on a plain gRPC stream, driven by the test: Hello, then metric
// batches, each read until its acknowledgement.
class SimulatedAgent {
 public:
  SimulatedAgent(const std::string& address, std::string database_id,
                 std::map<std::string, std::string> labels)
      : database_id_(std::move(database_id)),
        labels_(std::move(labels)),
        stub_(v1::AgentService::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  ~SimulatedAgent() {
    if (stream_ == nullptr) return;
    context_.TryCancel();
    stream_->Finish();
  }

  bool Connect() {
    stream_ = stub_->Connect(&context_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_database_id(database_id_);
    hello.mutable_hello()->set_engine(v1::ENGINE_SQLITE);
    hello.mutable_hello()->set_engine_version("3.40.1");
    hello.mutable_hello()->set_connector(v1::CONNECTOR_SQLITE);
    hello.mutable_hello()->set_agent_version("0.1.0");
    hello.mutable_hello()->add_capabilities("metrics");
    hello.mutable_hello()->mutable_labels()->insert(labels_.begin(),
                                                    labels_.end());
    if (!Send(std::move(hello))) return false;
    v1::ServerMessage reply;
    return stream_->Read(&reply) && reply.has_welcome();
  }

  // Sends `count` authentication events of `event` at `time` and waits for
  // the acknowledgement.
  bool SendAuthEvents(const std::string& event, double count, absl::Time time) {
    v1::AgentMessage message;
    v1::MetricBatch* batch = message.mutable_metric_batch();
    batch->set_agent_instance(absl::StrCat("instance-", database_id_));
    batch->set_sequence(++batch_sequence_);
    v1::MetricSample* sample = batch->add_samples();
    sample->set_metric("auth_events");
    sample->set_value(count);
    (*sample->mutable_labels())["event"] = event;
    *sample->mutable_time() = ToProtoTimestamp(time);
    if (!Send(std::move(message))) return false;
    v1::ServerMessage reply;
    while (stream_->Read(&reply)) {
      if (reply.has_metric_ack() &&
          reply.metric_ack().sequence() >= batch_sequence_) {
        return true;
      }
    }
    return false;
  }

 private:
  bool Send(v1::AgentMessage message) {
    message.set_sequence(++sequence_);
    return stream_->Write(message);
  }

  const std::string database_id_;
  const std::map<std::string, std::string> labels_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream_;
  uint64_t sequence_ = 0;
  uint64_t batch_sequence_ = 0;
};

// A WatchAlerts running on a thread of its own, recording its events.
class AlertWatch {
 public:
  explicit AlertWatch(client::FleetClient* client, std::string selector = "")
      : client_(client) {
    thread_ = std::thread([this, selector] {
      v1::WatchAlertsRequest request;
      request.set_selector(selector);
      // Ends OK when the destructor cancels it.
      absl::Status status =
          client_->WatchAlerts(request, [this](const v1::AlertEvent& event) {
            absl::MutexLock lock(&mutex_);
            events_.push_back(event);
            return true;
          });
      EXPECT_TRUE(status.ok()) << status;
    });
  }
  ~AlertWatch() {
    client_->CancelWatches();
    thread_.join();
  }

  std::vector<v1::AlertEvent> events() const {
    absl::MutexLock lock(&mutex_);
    return events_;
  }
  // The first event of `type`, waiting for it.
  std::optional<v1::AlertEvent> WaitFor(v1::AlertEvent::Type type) const {
    std::optional<v1::AlertEvent> found;
    testing::WaitFor([&] {
      for (const auto& event : events()) {
        if (event.type() == type) {
          found = event;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  client::FleetClient* const client_;
  mutable absl::Mutex mutex_;
  std::vector<v1::AlertEvent> events_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

struct CtlOutput {
  int code;
  std::string out;
  std::string err;
};

class AlertsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void StartServer() {
    std::string url;
    if (GetParam() == "postgresql") {
      if (!testing::PostgresAdminUrl()) {
        GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
      }
      auto scratch = testing::CreateScratchDatabase("alerts_it");
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      url = scratch->url;
    } else {
      static int counter = 0;
      const std::string dir =
          absl::StrCat(std::getenv("TEST_TMPDIR"), "/alerts-", ++counter);
      std::filesystem::create_directories(dir);
      url = absl::StrCat("sqlite://", dir, "/state.db");
    }
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.store_url = url;
    options.clock = &clock_;
    options.alerts.evaluation_period = absl::Seconds(1);
    // Resolved at the first quiet evaluation (the wait before resolving is
    // alert_manager_test's).
    options.alerts.resolve_after = absl::ZeroDuration();
    auto server = server::Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    client::ClientOptions client_options;
    client_options.server_address = address_;
    auto client = client::FleetClient::Create(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // ecliptixctl in-process against this server.
  CtlOutput Ctl(std::vector<std::string> args) {
    std::ostringstream out, err;
    client::ctl::CtlContext context;
    context.out = &out;
    context.err = &err;
    context.env_server = address_;
    context.now = [this] { return clock_.Now(); };
    const int code = client::ctl::RunCtl(args, context);
    return {code, out.str(), err.str()};
  }

  // On a minute boundary: the 5-minute window is 5 whole minutes once the
  // clock has moved one evaluation period on.
  FakeClock clock_{absl::FromUnixSeconds(1'700'000'040) - absl::Seconds(1)};
  std::unique_ptr<server::Server> server_;
  std::string address_;
  std::unique_ptr<client::FleetClient> client_;
};

TEST_P(AlertsTest, FailedLoginsFireThenResolveWhenQuiet) {
  StartServer();
  if (IsSkipped()) return;
  SimulatedAgent prod(address_, "db-3", {{"env", "prod"}});
  SimulatedAgent staging(address_, "db-4", {{"env", "staging"}});
  ASSERT_TRUE(prod.Connect());
  ASSERT_TRUE(staging.Connect());
  AlertWatch watch(client_.get());
  AlertWatch staging_watch(client_.get(), "env=staging");
  ASSERT_TRUE(watch.WaitFor(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE));
  ASSERT_TRUE(staging_watch.WaitFor(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE));

  // 60 failed logins in the window on db-3 (12 a minute, above the default
  // 5), 10 on db-4 (2 a minute).
  const absl::Time before = clock_.Now() - absl::Minutes(1);
  ASSERT_TRUE(prod.SendAuthEvents("LOGIN_FAILED", 60, before));
  ASSERT_TRUE(staging.SendAuthEvents("LOGIN_FAILED", 10, before));
  ASSERT_TRUE(staging.SendAuthEvents("LOGIN_SUCCESS", 10, before));
  clock_.Advance(absl::Seconds(1));

  std::optional<v1::AlertEvent> fired =
      watch.WaitFor(v1::AlertEvent::TYPE_FIRED);
  ASSERT_TRUE(fired.has_value());
  EXPECT_EQ(fired->alert().rule(), v1::ALERT_RULE_FAILED_LOGINS);
  EXPECT_EQ(fired->alert().database_id(), "db-3");
  EXPECT_EQ(fired->alert().state(), v1::ALERT_STATE_ACTIVE);
  EXPECT_DOUBLE_EQ(fired->alert().value(), 12);
  EXPECT_DOUBLE_EQ(fired->alert().threshold(), 5);
  EXPECT_EQ(fired->message(), "12 failed logins/min on db-3 (threshold 5)");
  EXPECT_GT(fired->sequence(), 0);

  // Listed: through the client library, ecliptixctl and `fleet list`.
  v1::ListAlertsRequest list;
  auto listed = client_->ListAlerts(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->alerts_size(), 1);
  EXPECT_EQ(listed->alerts(0).alert_id(), fired->alert().alert_id());
  CtlOutput alerts = Ctl({"alerts", "list"});
  EXPECT_EQ(alerts.code, 0) << alerts.err;
  EXPECT_THAT(alerts.out, HasSubstr("db-3       failed_logins   active"));
  EXPECT_THAT(alerts.out,
              HasSubstr("12 failed logins/min on db-3 (threshold 5)"));
  CtlOutput fleet = Ctl({"fleet", "list"});
  EXPECT_EQ(fleet.code, 0) << fleet.err;
  EXPECT_THAT(fleet.out, HasSubstr("ALERTS\n"));
  EXPECT_THAT(fleet.out, HasSubstr("1 (failed_logins)\n"));
  EXPECT_THAT(fleet.out, ::testing::EndsWith("   -\n"));  // db-4
  CtlOutput snapshot = Ctl({"alerts", "watch", "--count=2"});
  EXPECT_EQ(snapshot.code, 0) << snapshot.err;
  EXPECT_THAT(snapshot.out, HasSubstr("SNAPSHOT "));
  EXPECT_THAT(snapshot.out, HasSubstr("failed_logins"));
  EXPECT_THAT(snapshot.out, HasSubstr("SNAPSHOT_COMPLETE"));
  CtlOutput json = Ctl({"-o", "json", "alerts", "list", "--selector=env=prod"});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"rule\":\"ALERT_RULE_FAILED_LOGINS\""));
  // Not a database of the staging watch.
  EXPECT_EQ(staging_watch.events().size(), 1u);

  // Still failing: nothing more is said.
  ASSERT_TRUE(prod.SendAuthEvents("LOGIN_FAILED", 30, clock_.Now()));
  // Quiet for longer than the window: resolved.
  clock_.Advance(absl::Minutes(10));
  std::optional<v1::AlertEvent> resolved =
      watch.WaitFor(v1::AlertEvent::TYPE_RESOLVED);
  ASSERT_TRUE(resolved.has_value());
  EXPECT_EQ(resolved->alert().alert_id(), fired->alert().alert_id());
  EXPECT_EQ(resolved->alert().state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(resolved->message(),
            "failed logins back to 0/min on db-3 (threshold 5)");
  int fired_events = 0;
  for (const auto& event : watch.events()) {
    if (event.type() == v1::AlertEvent::TYPE_FIRED) ++fired_events;
  }
  EXPECT_EQ(fired_events, 1);

  alerts = Ctl({"alerts", "list"});
  EXPECT_EQ(alerts.code, 0);
  EXPECT_EQ(alerts.out, "");
  EXPECT_EQ(alerts.err, "No active alerts.\n");
  alerts = Ctl({"alerts", "list", "--all"});
  EXPECT_EQ(alerts.code, 0) << alerts.err;
  EXPECT_THAT(alerts.out, HasSubstr("failed_logins   resolved"));
  fleet = Ctl({"fleet", "list"});
  EXPECT_THAT(fleet.out, Not(HasSubstr("failed_logins")));
}

TEST_P(AlertsTest, BadRequestsAreInvalidArgument) {
  StartServer();
  if (IsSkipped()) return;
  v1::ListAlertsRequest list;
  list.set_selector("env in (");
  auto listed = client_->ListAlerts(list);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(listed.status().message(), HasSubstr("selector: "));
  list.clear_selector();
  list.set_limit(5000);
  listed = client_->ListAlerts(list);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(listed.status().message(), HasSubstr("limit: "));
  v1::WatchAlertsRequest watch;
  watch.set_selector("env in (");
  absl::Status watched =
      client_->WatchAlerts(watch, [](const v1::AlertEvent&) { return true; });
  EXPECT_EQ(watched.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(watched.message(), HasSubstr("selector: "));
  CtlOutput ctl = Ctl({"alerts", "list", "--selector=env in ("});
  EXPECT_EQ(ctl.code, 1);
  EXPECT_THAT(ctl.err, HasSubstr("INVALID_ARGUMENT: selector: "));
}

INSTANTIATE_TEST_SUITE_P(Stores, AlertsTest,
                         ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// ecliptix-server checks the --alert_* flags before it starts.
TEST(AlertFlagsTest, BadThresholdsExitTwo) {
  for (const auto& [flag, named] :
       std::vector<std::pair<std::string, std::string>>{
           {"--alert_window=10s", "--alert_window"},
           {"--alert_error_rate=2", "--alert_error_rate"},
           {"--alert_failed_logins_per_minute=-1",
            "--alert_failed_logins_per_minute"},
           {"--alert_avg_procedure_ms=nan", "--alert_avg_procedure_ms"},
           {"--alert_evaluation_period=0s", "--alert_evaluation_period"}}) {
    auto result = testing::RunCommand(
        {testing::RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", std::getenv("TEST_TMPDIR"),
                      "/flags.db"),
         flag});
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, 2) << flag << ": " << result->output;
    EXPECT_THAT(result->output, HasSubstr(named)) << flag;
  }
}

}  // namespace
}  // namespace ecliptix
