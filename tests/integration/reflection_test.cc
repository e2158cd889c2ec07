// grpcurl needs server reflection (grpc.reflection.v1alpha) to list services,
// describe them and encode JSON requests; this test speaks that protocol to the
// real server as grpcurl does.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace reflection = ::grpc::reflection::v1alpha;
using testing::ChildProcess;
using ::testing::Contains;
using testing::RunfilePath;
using testing::WaitFor;

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int starts = 0;
    const std::string dir =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/reflection-", ++starts);
    std::filesystem::create_directories(dir);
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir, "/reflection-state.db")},
        absl::StrCat(dir, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  // One request/response exchange on the reflection stream.
  reflection::ServerReflectionResponse Ask(
      const reflection::ServerReflectionRequest& request) {
    auto stub = reflection::ServerReflection::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    auto stream = stub->ServerReflectionInfo(&context);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    reflection::ServerReflectionResponse response;
    EXPECT_TRUE(stream->Read(&response));
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok())
        << status.error_code() << ": " << status.error_message();
    return response;
  }

  // grpc.health.v1.Health/Check for `service` ("" for the whole server).
  grpc::Status Check(const std::string& service,
                     grpc::health::v1::HealthCheckResponse* response) {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    return stub->Check(&context, request, response);
  }

  std::unique_ptr<ChildProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ReflectionTest, ListsTheServices) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  const auto response = Ask(request);
  std::set<std::string> services;
  for (const auto& service : response.list_services_response().service()) {
    services.insert(service.name());
  }
  EXPECT_THAT(services, Contains("ecliptix.fleet.v1.FleetService"));
  EXPECT_THAT(services, Contains("ecliptix.fleet.v1.AgentService"));
  EXPECT_THAT(services, Contains("grpc.health.v1.Health"));
}

TEST_F(ReflectionTest, DescribesFleetServiceWithItsDependencies) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol("ecliptix.fleet.v1.FleetService");
  const auto response = Ask(request);
  ASSERT_TRUE(response.has_file_descriptor_response())
      << response.DebugString();
  std::set<std::string> files;
  bool found_list = false;
  for (const std::string& bytes :
       response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.insert(file.name());
    for (const auto& service : file.service()) {
      for (const auto& method : service.method()) {
        if (method.name() == "ListDatabases") found_list = true;
      }
    }
  }
  EXPECT_TRUE(found_list);
  // grpcurl needs the imported files too, to build request and response
  // messages.
  EXPECT_THAT(files, Contains("ecliptix/fleet/v1/types.proto"));
}

// grpcurl calls grpc.health.v1.Health/Check only after reflection gives it the
// service's file: it must come back whole and build into a descriptor pool.
TEST_F(ReflectionTest, DescribesHealthSoGrpcurlCanCallIt) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol("grpc.health.v1.Health");
  const auto response = Ask(request);
  ASSERT_TRUE(response.has_file_descriptor_response())
      << response.DebugString();
  google::protobuf::DescriptorPool pool;
  for (const std::string& bytes :
       response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    ASSERT_NE(pool.BuildFile(file), nullptr) << file.name();
  }
  const google::protobuf::MethodDescriptor* check =
      pool.FindMethodByName("grpc.health.v1.Health.Check");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->input_type()->full_name(),
            "grpc.health.v1.HealthCheckRequest");
  ASSERT_NE(check->input_type()->FindFieldByName("service"), nullptr);
  EXPECT_NE(pool.FindMethodByName("grpc.health.v1.Health.Watch"), nullptr);
}

TEST_F(ReflectionTest, HealthIsServingForTheServerAndEachService) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  const auto listed = Ask(request);
  std::vector<std::string> names = {""};
  for (const auto& service : listed.list_services_response().service()) {
    if (absl::StartsWith(service.name(), "ecliptix.")) {
      names.push_back(service.name());
    }
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"ecliptix.fleet.v1.AgentService",
                                       "ecliptix.fleet.v1.FleetService",
                                       "ecliptix.fleet.v1.BundleService",
                                       "ecliptix.fleet.v1.RolloutService"}));
  for (const std::string& name : names) {
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = Check(name, &response);
    ASSERT_TRUE(status.ok()) << "\"" << name << "\": " << status.error_code()
                             << ": " << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING)
        << "\"" << name << "\"";
  }
}

TEST_F(ReflectionTest, HealthOfAnUnknownServiceIsNotFound) {
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_EQ(Check("ecliptix.fleet.v1.NoSuchService", &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ReflectionTest, HealthTurnsNotServingWhenShutdownStarts) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("ecliptix.fleet.v1.FleetService");
  auto watch = stub->Watch(&context, request);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  server_->Signal(SIGTERM);
  ASSERT_TRUE(watch->Read(&response)) << server_->Output();
  EXPECT_EQ(response.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // Closing the connection ends the watch on the server (gRPC 1.51's health
  // service does not finish a cancelled watch once shutdown has begun, which
  // would hold the server for its whole grace period).
  context.TryCancel();
  watch->Finish();
  watch.reset();
  stub.reset();
  channel_.reset();
  EXPECT_EQ(server_->Wait(absl::Seconds(20)), 0) << server_->Output();
}

}  // namespace
}  // namespace ecliptix
