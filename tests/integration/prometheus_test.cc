// ecliptix-server --metrics_listen end to end: a real server process scraped
// over HTTP, its answer checked as Prometheus text (by promtool when
// installed, always by the strict parser of tests/testing/exposition.h), and
// the control plane's figures seen to move as a real agent connects, RPCs
// come, a bundle is deployed, a job is created and the agent goes away; an
// address that cannot be served stops the server at start, saying why.
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/exposition.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using testing::Exposition;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kBundle[] = "ecliptix-production-enhancements@1.0.0";
constexpr char kFleetService[] = "ecliptix.fleet.v1.FleetService";

// The port of "serving Prometheus metrics on http://HOST:PORT/metrics", or 0.
int LoggedMetricsPort(const std::string& output) {
  static const std::regex kPort(R"(metrics on http://[^ ]+:(\d+)/metrics)");
  std::smatch match;
  if (!std::regex_search(output, match, kPort)) return 0;
  return std::stoi(match[1].str());
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/prometheus-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (auto& agent : agents_) agent->Signal(SIGTERM);
    if (server_ != nullptr) {
      server_->Signal(SIGTERM);
      // A clean stop with metrics on (the HTTP server stops with the rest).
      EXPECT_EQ(server_->Wait(absl::Seconds(30)), 0) << server_->Output();
    }
  }

  void StartServer() {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         "--metrics_listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=3s"},
        absl::StrCat(dir_, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      port_ = testing::LoggedServerPort(server_->Output());
      metrics_port_ = LoggedMetricsPort(server_->Output());
      return port_ > 0 && metrics_port_ > 0;
    })) << server_->Output();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    fleet_ = v1::FleetService::NewStub(channel_);
    jobs_ = v1::JobService::NewStub(channel_);
  }

  ChildProcess& StartAgent(const std::string& id) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=sqlite://", dir_, "/", id, ".db"),
         "--labels=env=prod", absl::StrCat("--database_id=", id),
         "--initial_backoff=100ms", "--max_backoff=500ms"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    EXPECT_TRUE(agent.ok()) << agent.status();
    agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
    return *agents_.back();
  }

  // One scrape, checked as Prometheus text.
  Exposition Scrape() {
    absl::StatusOr<std::string> body =
        testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    if (!body.ok()) return Exposition();
    if (std::optional<testing::PromtoolResult> promtool =
            testing::RunPromtool(*body)) {
      // 1 is a parse failure; lint findings alone exit 3.
      EXPECT_NE(promtool->exit_code, 1) << promtool->output << *body;
    }
    absl::StatusOr<Exposition> parsed = testing::ParseExposition(*body);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << *body;
    last_text_ = *body;
    return parsed.ok() ? *parsed : Exposition();
  }

  double Gauge(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) {
    return Scrape().Value(name, labels).value_or(-1);
  }

  double Handled(const Exposition& exposition, const std::string& service,
                 const std::string& method, const std::string& code) {
    return exposition
        .Value("ecliptix_grpc_server_handled_total", {{"grpc_service", service},
                                                      {"grpc_method", method},
                                                      {"grpc_type", "unary"},
                                                      {"grpc_code", code}})
        .value_or(0);
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", port_), "--timeout=60s"});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  std::string dir_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::string last_text_;
};

TEST_F(PrometheusTest, ControlPlaneFiguresMove) {
  StartServer();
  // Before anything happened: every series there, at 0.
  Exposition start = Scrape();
  EXPECT_THAT(start.Value("ecliptix_agents_connected", {{"engine", "sqlite"}}),
              Optional(0.0))
      << last_text_;
  EXPECT_THAT(start.Value("ecliptix_agents_connected", {{"engine", "mssql"}}),
              Optional(0.0));
  EXPECT_THAT(start.Value("ecliptix_commands_in_flight"), Optional(0.0));
  EXPECT_THAT(start.Value("ecliptix_rollouts",
                          {{"operation", "deploy"}, {"state", "succeeded"}}),
              Optional(0.0));
  EXPECT_THAT(start.Value("ecliptix_jobs", {{"state", "enabled"}}),
              Optional(0.0));
  EXPECT_THAT(start.Value("ecliptix_server_info", {{"version", "0.1.0"}}),
              Optional(1.0));

  // RPCs are counted by method and code, once each.
  const double listed_before =
      Handled(start, kFleetService, "ListDatabases", "OK");
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::ListDatabasesResponse response;
    ASSERT_TRUE(
        fleet_->ListDatabases(&context, v1::ListDatabasesRequest(), &response)
            .ok());
  }
  {
    grpc::ClientContext context;
    v1::GetDatabaseRequest request;
    request.set_database_id("nobody");
    v1::Database database;
    EXPECT_EQ(fleet_->GetDatabase(&context, request, &database).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  Exposition after_rpcs = Scrape();
  EXPECT_EQ(Handled(after_rpcs, kFleetService, "ListDatabases", "OK"),
            listed_before + 3)
      << last_text_;
  EXPECT_EQ(Handled(after_rpcs, kFleetService, "GetDatabase", "NOT_FOUND"), 1);
  EXPECT_THAT(after_rpcs.Value("ecliptix_grpc_server_handling_seconds_count",
                               {{"grpc_service", kFleetService},
                                {"grpc_method", "GetDatabase"},
                                {"grpc_type", "unary"}}),
              Optional(1.0));

  // An agent connects: 0 -> 1, through its Connect stream, and the registry
  // writes it to the store.
  ChildProcess& agent = StartAgent("db-1");
  ASSERT_TRUE(WaitFor([&] {
    return Gauge("ecliptix_agents_connected", {{"engine", "sqlite"}}) == 1;
  })) << last_text_
      << agent.Output();
  const Exposition connected = Scrape();
  EXPECT_EQ(connected.Sum("ecliptix_grpc_server_started_total",
                          {{"grpc_service", "ecliptix.fleet.v1.AgentService"},
                           {"grpc_method", "Connect"},
                           {"grpc_type", "bidi_stream"}}),
            1);
  EXPECT_TRUE(WaitFor([&] {
    return Scrape().Sum("ecliptix_state_store_write_seconds_count",
                        {{"operation", "upsert_databases"}}) >= 1;
  })) << last_text_;

  // A deployment: a rollout that succeeded, its commits timed, nothing in
  // flight once it is over.
  ASSERT_EQ(Ctl({"bundle", "push",
                 testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix")})
                .exit_code,
            0);
  const testing::CommandResult deployed =
      Ctl({"rollout", "create", kBundle, "--all", "--watch"});
  ASSERT_EQ(deployed.exit_code, 0) << deployed.output;
  const Exposition after_deploy = Scrape();
  EXPECT_THAT(after_deploy.Value("ecliptix_rollouts", {{"operation", "deploy"},
                                                       {"state", "succeeded"}}),
              Optional(1.0))
      << last_text_;
  EXPECT_THAT(after_deploy.Value("ecliptix_rollouts", {{"operation", "deploy"},
                                                       {"state", "running"}}),
              Optional(0.0));
  EXPECT_THAT(after_deploy.Value("ecliptix_commands_in_flight"), Optional(0.0));
  EXPECT_GE(after_deploy.Sum("ecliptix_state_store_write_seconds_count",
                             {{"operation", "save_rollouts"}}),
            1);
  EXPECT_THAT(after_deploy.Value("ecliptix_state_store_write_seconds_count",
                                 {{"operation", "insert_bundle"}}),
              Optional(1.0));

  // A job.
  {
    grpc::ClientContext context;
    v1::CreateJobRequest request;
    v1::JobSpec* spec = request.mutable_spec();
    spec->set_name("audit-cleanup");
    spec->set_bundle(kBundle);
    spec->set_operation("CleanupAuditLogs");
    (*spec->mutable_arguments())["RetentionDays"] = "30";
    (*spec->mutable_arguments())["BatchSize"] = "100";
    spec->set_schedule("0 2 1 1 *");
    spec->set_selector("env=prod");
    v1::Job job;
    const grpc::Status status = jobs_->CreateJob(&context, request, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const Exposition with_job = Scrape();
  EXPECT_THAT(with_job.Value("ecliptix_jobs", {{"state", "enabled"}}),
              Optional(1.0));
  EXPECT_THAT(with_job.Value("ecliptix_jobs", {{"state", "disabled"}}),
              Optional(0.0));
  EXPECT_THAT(with_job.Value("ecliptix_jobs_running"), Optional(0.0));

  // The agent goes away: 1 -> 0.
  agent.Signal(SIGKILL);
  EXPECT_TRUE(WaitFor([&] {
    return Gauge("ecliptix_agents_connected", {{"engine", "sqlite"}}) == 0;
  })) << last_text_;
}

// Each address that cannot be served is refused at start, with the reason,
// before the server listens for anything.
TEST_F(PrometheusTest, UnservableAddressStopsTheStart) {
  // A port another socket holds.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

  struct Case {
    std::string flag;
    // 1: cannot start; 2: a bad flag.
    int exit_code;
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {taken,
       1,
       {absl::StrCat("cannot serve Prometheus metrics on ", taken),
        "Address already in use"}},
      {"192.0.2.1:9464", 1, {"Cannot assign requested address"}},
      {"nonsense",
       2,
       {"--metrics_listen: metrics address \"nonsense\" has no port"}},
      {"127.0.0.1:70000", 2, {"has no valid port"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<testing::CommandResult> result = RunCommand(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--metrics_listen=", c.flag),
         absl::StrCat("--store=sqlite://", dir_, "/state.db")});
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, c.exit_code)
        << c.flag << ": " << result->output;
    for (const std::string& text : c.says)
      EXPECT_THAT(result->output, HasSubstr(text)) << c.flag;
    EXPECT_THAT(result->output, Not(HasSubstr("listening on")));
  }
  close(fd);
}

}  // namespace
}  // namespace ecliptix
