// Bundles through the real server: push with ecliptixctl, idempotent re-push,
// immutability, the size limit, malformed uploads, and persistence across a
// restart.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/fleet_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path());
  std::ofstream(path) << content;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/bundle-", ++counter);
    std::filesystem::create_directories(dir_);
    bundle_dir_ = dir_ + "/demo";
    WriteFile(bundle_dir_ + "/manifest.textproto", R"(name: "demo"
version: "1.0.0"
dialects: DIALECT_SQLITE
require_revert: true
phases {
  name: "one"
  steps {
    name: "create"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/create.sql" }
    revert { sqlite: "sqlite/drop.sql" }
  }
}
)");
    WriteFile(bundle_dir_ + "/sqlite/create.sql", "CREATE TABLE t (x);\n");
    WriteFile(bundle_dir_ + "/sqlite/drop.sql", "DROP TABLE t;\n");
    StartServer({});
  }

  void StartServer(std::vector<std::string> extra_flags) {
    server_.reset();
    std::vector<std::string> argv = {
        RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
        absl::StrCat("--store=sqlite://", dir_, "/state.db")};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    auto server = ChildProcess::Start(
        argv, absl::StrCat(dir_, "/server-", ++starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    address_ = absl::StrCat("127.0.0.1:", port);
    client::ClientOptions options;
    options.server_address = address_;
    client_ = *client::FleetClient::Create(options);
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {RunfilePath("client/ecliptixctl"),
                                     absl::StrCat("--server=", address_)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = RunCommand(argv);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  std::string dir_;
  std::string bundle_dir_;
  int starts_ = 0;
  std::string address_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<client::FleetClient> client_;
};

TEST_F(BundleTest, PushIsIdempotentAndBundlesAreImmutable) {
  auto first = Ctl({"bundle", "push", bundle_dir_});
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("pushed demo@1.0.0"));
  auto again = Ctl({"bundle", "push", bundle_dir_});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output, first.output);

  WriteFile(bundle_dir_ + "/sqlite/create.sql", "CREATE TABLE t (y);\n");
  auto changed = Ctl({"bundle", "push", bundle_dir_});
  EXPECT_EQ(changed.exit_code, 1);
  EXPECT_THAT(changed.output, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(changed.output,
              HasSubstr("give the changed bundle a new version"));

  auto list = Ctl({"bundle", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_THAT(list.output, HasSubstr("demo"));
  auto show = Ctl({"bundle", "show", "demo@1.0.0"});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_THAT(show.output, HasSubstr("create (versioned, revert)"));
}

TEST_F(BundleTest, BundlesSurviveARestart) {
  ASSERT_EQ(Ctl({"bundle", "push", bundle_dir_}).exit_code, 0);
  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->Wait(absl::Seconds(20)).has_value());
  StartServer({});
  v1::GetBundleRequest request;
  request.set_name_version("demo@1.0.0");
  request.set_include_files(true);
  auto bundle = client_->GetBundle(request);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->files_size(), 3);
  EXPECT_EQ(bundle->info().manifest().phases(0).steps(0).name(), "create");
}

TEST_F(BundleTest, InvalidBundlesAreRefusedWithEveryProblem) {
  WriteFile(bundle_dir_ + "/manifest.textproto", R"(name: "demo"
version: "1.0.0"
dialects: DIALECT_SQLITE
require_revert: true
phases {
  name: "one"
  steps { name: "create" kind: STEP_KIND_VERSIONED sql { sqlite: "sqlite/missing.sql" } }
}
)");
  auto validate = Ctl({"bundle", "validate", bundle_dir_});
  EXPECT_EQ(validate.exit_code, 1);
  EXPECT_THAT(validate.output, HasSubstr("manifest.textproto:7:"));
  EXPECT_THAT(validate.output,
              HasSubstr("\"sqlite/missing.sql\" is not in the bundle"));
  EXPECT_THAT(validate.output, HasSubstr("no revert script for sqlite"));

  // The server checks too, whatever the client did.
  v1::BundleFile manifest;
  manifest.set_path("manifest.textproto");
  manifest.set_content("name: \"x\" version: \"1\" dialects: DIALECT_SQLITE");
  v1::BundleFile traversal;
  traversal.set_path("../../etc/passwd");
  traversal.set_content("root");
  auto upload = client_->UploadBundle({manifest, traversal});
  EXPECT_EQ(upload.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(upload.status().message(), HasSubstr("'..' in path"));
  EXPECT_THAT(upload.status().message(), HasSubstr("at least one phase"));

  auto none = client_->UploadBundle({});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("files is required"));
  EXPECT_THAT(none.status().message(), HasSubstr("manifest.textproto"));

  EXPECT_EQ(Ctl({"bundle", "show", "nope@1"}).exit_code, 1);
  auto list = Ctl({"bundle", "list"});
  EXPECT_THAT(list.output, HasSubstr("No bundles found"));
}

TEST_F(BundleTest, OversizeUploadIsRefused) {
  StartServer({"--max_bundle_bytes=1000"});
  WriteFile(
      bundle_dir_ + "/sqlite/create.sql",
      absl::StrCat("CREATE TABLE t (x);\n-- ", std::string(2000, 'x'), "\n"));
  auto push = Ctl({"bundle", "push", bundle_dir_});
  EXPECT_EQ(push.exit_code, 1);
  EXPECT_THAT(push.output, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(push.output, HasSubstr("at most 1000"));
}

}  // namespace
}  // namespace ecliptix
