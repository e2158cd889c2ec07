// The deployment handler with a real executor on a SQLite file and a bundle
// source that the test holds back, so a cancel can be sent while a command is
// still fetching its bundle.
#include "agent/deployment_handler.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/bundle_source.h"
#include "agent/executor/executor.h"
#include "agent/target/open_target.h"
#include "common/bundle/bundle.h"
#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;

// Serves one bundle; each fetch waits until the test releases the source.
class HeldBundleSource : public BundleSource {
 public:
  explicit HeldBundleSource(std::shared_ptr<const bundle::Bundle> bundle)
      : bundle_(std::move(bundle)) {}
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) override {
    if (!fetching_.HasBeenNotified()) fetching_.Notify();
    released_.WaitForNotification();
    return bundle_;
  }
  void WaitUntilFetching() { fetching_.WaitForNotification(); }
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }

 private:
  const std::shared_ptr<const bundle::Bundle> bundle_;
  absl::Notification fetching_;
  absl::Notification released_;
};

class RecordingReporter : public CommandReporter {
 public:
  void Report(v1::CommandEvent event) override {
    absl::MutexLock lock(&mutex_);
    events_.push_back(std::move(event));
  }
  void Finish(const absl::Status& status) override {
    {
      absl::MutexLock lock(&mutex_);
      status_ = status;
    }
    finished_.Notify();
  }
  absl::Status Wait() {
    finished_.WaitForNotification();
    absl::MutexLock lock(&mutex_);
    return status_;
  }
  size_t events() {
    absl::MutexLock lock(&mutex_);
    return events_.size();
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::CommandEvent> events_ ABSL_GUARDED_BY(mutex_);
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
  absl::Notification finished_;
};

class DeploymentHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(absl::StrCat(dir_, "/bundle/sqlite"));
    Write("bundle/manifest.textproto", R"(name: "cancel"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps {
    name: "kept"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/kept.sql" }
    revert { sqlite: "sqlite/kept_revert.sql" }
  }
}
)");
    Write("bundle/sqlite/kept.sql", "CREATE TABLE kept (id INTEGER);\n");
    Write("bundle/sqlite/kept_revert.sql", "DROP TABLE kept;\n");
    absl::StatusOr<bundle::Bundle> loaded =
        bundle::Bundle::LoadDirectory(absl::StrCat(dir_, "/bundle"));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    bundle_ = std::make_shared<const bundle::Bundle>(*std::move(loaded));

    absl::StatusOr<std::unique_ptr<Target>> database =
        OpenTarget(absl::StrCat("sqlite://", dir_, "/target.db"));
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
    ExecutorOptions options;
    options.backup_dir = absl::StrCat(dir_, "/backups");
    executor_ = std::make_unique<Executor>(database_.get(), options);
    source_ = std::make_unique<HeldBundleSource>(bundle_);
    handler_ =
        std::make_unique<DeploymentHandler>(executor_.get(), source_.get());
  }

  void TearDown() override {
    if (source_ != nullptr) source_->Release();
    handler_.reset();
  }

  void Write(const std::string& path, const std::string& content) {
    std::ofstream(absl::StrCat(dir_, "/", path)) << content;
  }

  bool KeptExists() {
    absl::StatusOr<QueryResult> result = database_->Query(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'kept'");
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() && !result->rows.empty() &&
           result->rows[0].values[0] != "0";
  }

  // Accepts and starts `command`; its outcome goes to the returned reporter.
  std::shared_ptr<RecordingReporter> Start(const v1::Command& command) {
    auto reporter = std::make_shared<RecordingReporter>();
    const absl::Status accepted = handler_->Accept(command);
    EXPECT_TRUE(accepted.ok()) << accepted;
    if (accepted.ok()) handler_->Run(command, reporter);
    return reporter;
  }

  v1::Command Cancel(const std::string& id, const std::string& target) {
    v1::Command command;
    command.set_command_id(id);
    command.mutable_cancel()->set_command_id(target);
    return command;
  }

  std::string dir_;
  std::shared_ptr<const bundle::Bundle> bundle_;
  std::unique_ptr<Target> database_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<HeldBundleSource> source_;
  std::unique_ptr<DeploymentHandler> handler_;
};

TEST_F(DeploymentHandlerTest, CancelWhileARevertFetchesItsBundleStopsIt) {
  ASSERT_TRUE(
      executor_
          ->RunPhase(*bundle_, "one", false, [](const v1::DeploymentEvent&) {})
          .ok());
  ASSERT_TRUE(KeptExists());

  v1::Command revert;
  revert.set_command_id("revert-1");
  revert.mutable_revert_phase()->set_bundle_id(bundle_->id());
  revert.mutable_revert_phase()->set_phase("one");
  std::shared_ptr<RecordingReporter> reverting = Start(revert);
  source_->WaitUntilFetching();
  // The cancel comes while the bundle is on its way, before anything runs.
  EXPECT_TRUE(Start(Cancel("cancel-1", "revert-1"))->Wait().ok());
  source_->Release();

  const absl::Status status = reverting->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(KeptExists()) << "the cancelled revert ran";
  EXPECT_EQ(reverting->events(), 0u);

  // The cancel belonged to that command: the next one runs.
  revert.set_command_id("revert-2");
  EXPECT_TRUE(Start(revert)->Wait().ok());
  EXPECT_FALSE(KeptExists());
}

TEST_F(DeploymentHandlerTest, CancelWhileARepairFetchesItsBundleStopsIt) {
  v1::Command repair;
  repair.set_command_id("repair-1");
  repair.mutable_repair()->set_bundle_id(bundle_->id());
  std::shared_ptr<RecordingReporter> repairing = Start(repair);
  source_->WaitUntilFetching();
  EXPECT_TRUE(Start(Cancel("cancel-1", "repair-1"))->Wait().ok());
  source_->Release();
  const absl::Status status = repairing->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
}

TEST_F(DeploymentHandlerTest, CancelOfAFinishedCommandDoesNotStopTheNext) {
  source_->Release();
  v1::Command run;
  run.set_command_id("run-1");
  run.mutable_run_phase()->set_bundle_id(bundle_->id());
  run.mutable_run_phase()->set_phase("one");
  ASSERT_TRUE(Start(run)->Wait().ok());
  // Late (the server repeats a cancel after a reconnect): harmless.
  EXPECT_TRUE(Start(Cancel("cancel-1", "run-1"))->Wait().ok());
  v1::Command revert;
  revert.set_command_id("revert-1");
  revert.mutable_revert_phase()->set_bundle_id(bundle_->id());
  revert.mutable_revert_phase()->set_phase("one");
  EXPECT_TRUE(Start(revert)->Wait().ok());
  EXPECT_FALSE(KeptExists());
}

}  // namespace
}  // namespace ecliptix::agent
