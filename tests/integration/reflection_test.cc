// grpcurl needs server reflection (grpc.reflection.v1alpha) to list services,
// describe them and encode JSON requests; this test speaks that protocol to the
// real server as grpcurl does.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
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

TEST_F(ReflectionTest, HealthSaysServing) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace ecliptix
