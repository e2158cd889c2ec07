// Every RPC of every service says clearly what is wrong with a request: the
// real ecliptix-server over loopback gRPC gets, per RPC, an empty request and,
// for each required field, a complete request with only that field cleared,
// and must answer INVALID_ARGUMENT "<field> is required..." naming the field
// by its proto name, before any lookup (no NOT_FOUND for `rollout ""`).
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "ecliptix/fleet/v1/alerts.grpc.pb.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/config_service.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/job_service.grpc.pb.h"
#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "ecliptix/fleet/v1/query_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::google::protobuf::Message;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::WaitFor;

// One RPC: a complete request, the fields it cannot do without, and how to
// call it with any request of its type.
struct RpcSpec {
  std::string name;
  std::shared_ptr<Message> complete;
  // The complete request's answer: the request passes validation.
  grpc::StatusCode complete_code;
  // Each entry is cleared as one (a oneof's members); the message must name it
  // as "<names joined by ' or '> is required". Empty: {} is a valid request.
  std::vector<std::vector<std::string>> required;
  // Where the message names the fields, e.g. "hello." for Connect's Hello.
  std::string prefix;
  std::function<grpc::Status(const Message&)> call;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
  return context;
}

template <typename Request, typename Response, typename Stub>
std::function<grpc::Status(const Message&)> Unary(
    Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*,
                                             const Request&, Response*)) {
  return [stub, method](const Message& request) {
    Response response;
    return (stub->*method)(Context().get(),
                           dynamic_cast<const Request&>(request), &response);
  };
}

// A server stream: OK once the first message arrives (the watch started),
// otherwise the status it ended with.
template <typename Request, typename Event, typename Stub>
std::function<grpc::Status(const Message&)> Watch(
    Stub* stub, std::unique_ptr<grpc::ClientReader<Event>> (Stub::*method)(
                    grpc::ClientContext*, const Request&)) {
  return [stub, method](const Message& request) {
    std::unique_ptr<grpc::ClientContext> context = Context();
    auto reader =
        (stub->*method)(context.get(), dynamic_cast<const Request&>(request));
    Event event;
    if (reader->Read(&event)) {
      context->TryCancel();
      while (reader->Read(&event)) {
      }
      reader->Finish().error_code();
      return grpc::Status::OK;
    }
    return reader->Finish();
  };
}

template <typename T>
std::shared_ptr<Message> Make(std::function<void(T&)> fill = nullptr) {
  auto message = std::make_shared<T>();
  if (fill) fill(*message);
  return message;
}

std::vector<v1::BundleFile> ValidBundle() {
  v1::BundleFile manifest;
  manifest.set_path("manifest.textproto");
  manifest.set_content(R"(name: "valid" version: "1.0.0"
dialects: DIALECT_SQLITE
phases { name: "p" steps { name: "s" kind: STEP_KIND_VERSIONED sql { sqlite: "s.sql" } } }
)");
  v1::BundleFile sql;
  sql.set_path("s.sql");
  sql.set_content("CREATE TABLE t (x INTEGER);\n");
  return {manifest, sql};
}

class ApiValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/api-", ++counter);
    std::filesystem::create_directories(dir_);
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir_, "/state.db")},
        absl::StrCat(dir_, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    fleet_ = v1::FleetService::NewStub(channel);
    bundles_ = v1::BundleService::NewStub(channel);
    rollouts_ = v1::RolloutService::NewStub(channel);
    agents_ = v1::AgentService::NewStub(channel);
    jobs_ = v1::JobService::NewStub(channel);
    config_ = v1::ConfigService::NewStub(channel);
    queries_ = v1::QueryService::NewStub(channel);
    metrics_ = v1::MetricsService::NewStub(channel);
    alerts_ = v1::AlertService::NewStub(channel);
  }

  // Opens AgentService.Connect, sends `hello` first, and returns how the
  // stream ended (OK after a Welcome and a half-close).
  grpc::Status Connect(const v1::Hello& hello) {
    std::unique_ptr<grpc::ClientContext> context = Context();
    auto stream = agents_->Connect(context.get());
    v1::AgentMessage first;
    first.set_sequence(1);
    *first.mutable_hello() = hello;
    stream->Write(first);
    stream->WritesDone();
    v1::ServerMessage message;
    while (stream->Read(&message)) {
    }
    return stream->Finish();
  }

  std::vector<RpcSpec> Specs() {
    using FS = v1::FleetService::Stub;
    using BS = v1::BundleService::Stub;
    using RS = v1::RolloutService::Stub;
    using JS = v1::JobService::Stub;
    using CS = v1::ConfigService::Stub;
    using QS = v1::QueryService::Stub;
    using MS = v1::MetricsService::Stub;
    using AS = v1::AlertService::Stub;
    // No uploaded bundle declares configuration keys: complete requests get
    // that far.
    const auto FP = grpc::StatusCode::FAILED_PRECONDITION;
    auto logging = Make<v1::EmergencyLoggingRequest>([](auto& r) {
      r.set_selector("env=prod");
      r.set_reason("audit log fills the disk");
    });
    auto job = [](auto& r) { r.set_job("no-such-job"); };
    auto create = Make<v1::CreateRolloutRequest>([](auto& r) {
      r.set_bundle("nothing@1.0.0");
      r.set_selector("env=prod");
    });
    auto action = Make<v1::RolloutActionRequest>(
        [](auto& r) { r.set_rollout_id("r-404"); });
    const auto NF = grpc::StatusCode::NOT_FOUND;
    const auto OK = grpc::StatusCode::OK;
    return {
        {"FleetService.ListDatabases",
         Make<v1::ListDatabasesRequest>(),
         OK,
         {},
         "",
         Unary(fleet_.get(), &FS::ListDatabases)},
        {"FleetService.GetDatabase",
         Make<v1::GetDatabaseRequest>(
             [](auto& r) { r.set_database_id("db-404"); }),
         NF,
         {{"database_id"}},
         "",
         Unary(fleet_.get(), &FS::GetDatabase)},
        {"FleetService.WatchFleet",
         Make<v1::WatchFleetRequest>(),
         OK,
         {},
         "",
         Watch(fleet_.get(), &FS::WatchFleet)},
        {"BundleService.UploadBundle",
         Make<v1::UploadBundleRequest>([](auto& r) {
           for (const v1::BundleFile& file : ValidBundle())
             *r.add_files() = file;
         }),
         OK,
         {{"files"}},
         "",
         Unary(bundles_.get(), &BS::UploadBundle)},
        {"BundleService.ListBundles",
         Make<v1::ListBundlesRequest>(),
         OK,
         {},
         "",
         Unary(bundles_.get(), &BS::ListBundles)},
        {"BundleService.GetBundle",
         Make<v1::GetBundleRequest>(
             [](auto& r) { r.set_name_version("nothing@1.0.0"); }),
         NF,
         {{"bundle_id", "name_version"}},
         "",
         Unary(bundles_.get(), &BS::GetBundle)},
        {"RolloutService.CreateRollout",
         create,
         NF,
         {{"bundle"}, {"selector"}},
         "",
         Unary(rollouts_.get(), &RS::CreateRollout)},
        {"RolloutService.PlanRollout",
         create,
         NF,
         {{"bundle"}, {"selector"}},
         "",
         Unary(rollouts_.get(), &RS::PlanRollout)},
        {"RolloutService.GetRollout",
         Make<v1::GetRolloutRequest>(
             [](auto& r) { r.set_rollout_id("r-404"); }),
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::GetRollout)},
        {"RolloutService.ListRollouts",
         Make<v1::ListRolloutsRequest>(),
         OK,
         {},
         "",
         Unary(rollouts_.get(), &RS::ListRollouts)},
        {"RolloutService.WatchRollout",
         Make<v1::WatchRolloutRequest>(
             [](auto& r) { r.set_rollout_id("r-404"); }),
         NF,
         {{"rollout_id"}},
         "",
         Watch(rollouts_.get(), &RS::WatchRollout)},
        {"RolloutService.PauseRollout",
         action,
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::PauseRollout)},
        {"RolloutService.ResumeRollout",
         action,
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::ResumeRollout)},
        {"RolloutService.AbortRollout",
         action,
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::AbortRollout)},
        {"RolloutService.RetryFailed",
         action,
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::RetryFailed)},
        {"RolloutService.RollbackRollout",
         Make<v1::RollbackRolloutRequest>(
             [](auto& r) { r.set_rollout_id("r-404"); }),
         NF,
         {{"rollout_id"}},
         "",
         Unary(rollouts_.get(), &RS::RollbackRollout)},
        {"RolloutService.AttestGate",
         Make<v1::AttestGateRequest>([](auto& r) {
           r.set_rollout_id("r-404");
           r.set_gate(v1::GATE_KIND_TEAM_NOTIFIED);
           r.set_attested_by("alice");
         }),
         NF,
         {{"rollout_id"}, {"gate"}, {"attested_by"}},
         "",
         Unary(rollouts_.get(), &RS::AttestGate)},
        {"JobService.CreateJob (spec)",
         Make<v1::JobSpec>([](auto& spec) {
           spec.set_name("nightly");
           spec.set_bundle("nothing@1.0.0");
           spec.set_operation("CleanupAuditLogs");
           spec.set_schedule("0 2 * * *");
           spec.set_selector("env=prod");
         }),
         NF,
         {{"name"}, {"bundle"}, {"operation"}, {"schedule"}, {"selector"}},
         "spec.",
         [this](const Message& spec) {
           v1::CreateJobRequest request;
           *request.mutable_spec() = dynamic_cast<const v1::JobSpec&>(spec);
           v1::Job job;
           return jobs_->CreateJob(Context().get(), request, &job);
         }},
        {"JobService.GetJob",
         Make<v1::GetJobRequest>(job),
         NF,
         {{"job"}},
         "",
         Unary(jobs_.get(), &JS::GetJob)},
        {"JobService.ListJobs",
         Make<v1::ListJobsRequest>(),
         OK,
         {},
         "",
         Unary(jobs_.get(), &JS::ListJobs)},
        {"JobService.DeleteJob",
         Make<v1::DeleteJobRequest>(job),
         NF,
         {{"job"}},
         "",
         Unary(jobs_.get(), &JS::DeleteJob)},
        {"JobService.SetJobEnabled",
         Make<v1::SetJobEnabledRequest>(job),
         NF,
         {{"job"}},
         "",
         Unary(jobs_.get(), &JS::SetJobEnabled)},
        {"JobService.RunJobNow",
         Make<v1::RunJobNowRequest>(job),
         NF,
         {{"job"}},
         "",
         Unary(jobs_.get(), &JS::RunJobNow)},
        {"JobService.ListJobRuns",
         Make<v1::ListJobRunsRequest>(job),
         NF,
         {{"job"}},
         "",
         Unary(jobs_.get(), &JS::ListJobRuns)},
        {"JobService.GetDatabaseJobHistory",
         Make<v1::GetDatabaseJobHistoryRequest>(
             [](auto& r) { r.set_database_id("db-404"); }),
         OK,
         {{"database_id"}},
         "",
         Unary(jobs_.get(), &JS::GetDatabaseJobHistory)},
        {"ConfigService.SetConfig",
         Make<v1::SetConfigRequest>([](auto& r) {
           v1::ConfigSetting* setting = r.add_settings();
           setting->set_key("Audit.RetentionDays");
           setting->set_value("90");
           r.set_selector("env=prod");
           r.set_reason("shorter retention");
         }),
         FP,
         {{"selector"}, {"settings"}, {"reason"}},
         "",
         Unary(config_.get(), &CS::SetConfig)},
        {"ConfigService.GetConfig",
         Make<v1::GetConfigRequest>(),
         OK,
         {},
         "",
         Unary(config_.get(), &CS::GetConfig)},
        {"ConfigService.DiffConfig",
         Make<v1::DiffConfigRequest>(
             [](auto& r) { r.set_selector("env=prod"); }),
         FP,
         {{"selector"}},
         "",
         Unary(config_.get(), &CS::DiffConfig)},
        {"ConfigService.GetConfigHistory",
         Make<v1::GetConfigHistoryRequest>(),
         OK,
         {},
         "",
         Unary(config_.get(), &CS::GetConfigHistory)},
        {"ConfigService.DisableLogging",
         logging,
         FP,
         {{"selector"}, {"reason"}},
         "",
         Unary(config_.get(), &CS::DisableLogging)},
        {"ConfigService.EnableLogging",
         logging,
         FP,
         {{"selector"}, {"reason"}},
         "",
         Unary(config_.get(), &CS::EnableLogging)},
        // ListQueries has no required field ({} is the newest bundle's).
        {"QueryService.RunQuery",
         Make<v1::RunQueryRequest>([](auto& r) {
           r.set_query("RecentAuditCount");
           r.set_selector("env=prod");
         }),
         NF,
         {{"query"}, {"selector"}},
         "",
         Watch(queries_.get(), &QS::RunQuery)},
        {"MetricsService.QuerySeries",
         Make<v1::QuerySeriesRequest>(
             [](auto& r) { r.set_metric("procedure_calls"); }),
         OK,
         {{"metric"}},
         "",
         Unary(metrics_.get(), &MS::QuerySeries)},
        // TopProcedures has no required field ({} is the fleet's top 10 over
        // 24 hours).
        {"MetricsService.TopProcedures",
         Make<v1::TopProceduresRequest>(),
         OK,
         {},
         "",
         Unary(metrics_.get(), &MS::TopProcedures)},
        {"MetricsService.GetRate",
         Make<v1::GetRateRequest>([](auto& r) { r.set_rate("errors"); }),
         OK,
         {{"rate"}},
         "",
         Unary(metrics_.get(), &MS::GetRate)},
        // Neither AlertService RPC has a required field ({} is every active
        // alert of the fleet).
        {"AlertService.ListAlerts",
         Make<v1::ListAlertsRequest>(),
         OK,
         {},
         "",
         Unary(alerts_.get(), &AS::ListAlerts)},
        {"AlertService.WatchAlerts",
         Make<v1::WatchAlertsRequest>(),
         OK,
         {},
         "",
         Watch(alerts_.get(), &AS::WatchAlerts)},
        {"AgentService.Connect (first message: Hello)",
         Make<v1::Hello>([](auto& hello) {
           hello.set_database_id("db-valid");
           hello.set_engine(v1::ENGINE_SQLITE);
           hello.set_engine_version("3.40.1");
           hello.set_agent_version("0.1.0");
         }),
         OK,
         {{"database_id"}, {"engine"}, {"engine_version"}, {"agent_version"}},
         "hello.",
         [this](const Message& hello) {
           return Connect(dynamic_cast<const v1::Hello&>(hello));
         }},
    };
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
  std::unique_ptr<v1::BundleService::Stub> bundles_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
  std::unique_ptr<v1::AgentService::Stub> agents_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::ConfigService::Stub> config_;
  std::unique_ptr<v1::QueryService::Stub> queries_;
  std::unique_ptr<v1::MetricsService::Stub> metrics_;
  std::unique_ptr<v1::AlertService::Stub> alerts_;
};

std::string Named(const std::vector<std::string>& fields,
                  const std::string& prefix) {
  std::vector<std::string> named;
  for (const std::string& field : fields)
    named.push_back(absl::StrCat(prefix, field));
  return absl::StrCat(absl::StrJoin(named, " or "), " is required");
}

TEST_F(ApiValidationTest, EveryRpcNamesTheMissingRequiredField) {
  for (const RpcSpec& rpc : Specs()) {
    SCOPED_TRACE(rpc.name);
    // {}: the first required field is named; without any, {} is valid.
    std::unique_ptr<Message> empty(rpc.complete->New());
    grpc::Status status = rpc.call(*empty);
    if (rpc.required.empty()) {
      EXPECT_TRUE(status.ok()) << status.error_message();
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << status.error_message();
      EXPECT_THAT(status.error_message(),
                  HasSubstr(Named(rpc.required[0], rpc.prefix)));
    }
    // Each required field missing alone.
    for (const std::vector<std::string>& fields : rpc.required) {
      SCOPED_TRACE(absl::StrJoin(fields, ","));
      std::unique_ptr<Message> request(rpc.complete->New());
      request->CopyFrom(*rpc.complete);
      for (const std::string& field : fields) {
        const auto* descriptor =
            request->GetDescriptor()->FindFieldByName(field);
        ASSERT_NE(descriptor, nullptr) << field;
        request->GetReflection()->ClearField(request.get(), descriptor);
      }
      status = rpc.call(*request);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr(Named(fields, rpc.prefix)));
    }
    // The complete request gets past validation.
    status = rpc.call(*rpc.complete);
    EXPECT_EQ(status.error_code(), rpc.complete_code) << status.error_message();
  }
}

// A forgotten selector never means "everywhere": every database is asked for
// with all_databases, and a selector with it is a contradiction.
TEST_F(ApiValidationTest, EmptySelectorNeedsAllDatabases) {
  v1::CreateRolloutRequest request;
  request.set_bundle("valid@1.0.0");
  v1::UploadBundleRequest upload;
  for (const v1::BundleFile& file : ValidBundle()) *upload.add_files() = file;
  v1::BundleInfo info;
  ASSERT_TRUE(bundles_->UploadBundle(Context().get(), upload, &info).ok());

  using Call = std::function<grpc::Status(const v1::CreateRolloutRequest&)>;
  const std::vector<std::pair<std::string, Call>> calls = {
      {"CreateRollout",
       [&](const v1::CreateRolloutRequest& r) {
         v1::Rollout rollout;
         return rollouts_->CreateRollout(Context().get(), r, &rollout);
       }},
      {"PlanRollout",
       [&](const v1::CreateRolloutRequest& r) {
         v1::RolloutPlan plan;
         return rollouts_->PlanRollout(Context().get(), r, &plan);
       }},
  };
  for (const auto& [name, call] : calls) {
    SCOPED_TRACE(name);
    request.clear_selector();
    request.set_all_databases(false);
    grpc::Status status = call(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("selector is required"));
    EXPECT_THAT(status.error_message(),
                HasSubstr("set all_databases (ecliptixctl: --all) to mean "
                          "every database"));

    request.set_selector("  ");
    EXPECT_EQ(call(request).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

    request.set_selector("env=prod");
    request.set_all_databases(true);
    status = call(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr("selector and all_databases exclude each other"));

    // Accepted; the fleet is empty.
    request.clear_selector();
    status = call(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status.error_message(), HasSubstr("no databases yet"));
  }

  // ecliptixctl: --all sets it; without a selector or --all the server's
  // message is shown.
  const std::string server = absl::StrCat(
      "--server=127.0.0.1:", testing::LoggedServerPort(server_->Output()));
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {RunfilePath("client/ecliptixctl"), server});
    absl::StatusOr<testing::CommandResult> result = testing::RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  };
  testing::CommandResult refused = ctl({"rollout", "plan", "valid@1.0.0"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output,
              HasSubstr("INVALID_ARGUMENT: selector is required"));
  testing::CommandResult all = ctl({"rollout", "plan", "valid@1.0.0", "--all"});
  EXPECT_EQ(all.exit_code, 1) << all.output;
  EXPECT_THAT(all.output, HasSubstr("FAILED_PRECONDITION: the fleet has no "
                                    "databases yet"));
}

// AlertService names the field of a bad value.
TEST_F(ApiValidationTest, AlertServiceRefusesBadSelectorsAndLimits) {
  v1::ListAlertsRequest list;
  list.set_selector("env in (");
  v1::ListAlertsResponse listed;
  grpc::Status status = alerts_->ListAlerts(Context().get(), list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("selector: "));
  list.clear_selector();
  list.set_limit(-1);
  status = alerts_->ListAlerts(Context().get(), list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("limit: "));
  v1::WatchAlertsRequest watch;
  watch.set_selector("!");
  status = Watch(alerts_.get(), &v1::AlertService::Stub::WatchAlerts)(watch);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("selector: "));
}

}  // namespace
}  // namespace ecliptix
