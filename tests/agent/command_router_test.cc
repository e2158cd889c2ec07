// The agent's command routing for day-2 commands, with the real handlers
// (DeploymentHandler, ReadHandler) on a database where the reference bundle
// is deployed, on SQLite and on PostgreSQL (skipped unless
// ECLIPTIX_TEST_POSTGRES_URL is passed with --test_env): maintenance jobs and
// configuration changes take the one-at-a-time slot of deployments, reads run
// beside them, and a cancel reaches whichever runs the command it names.
#include "agent/command_router.h"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/bundle_source.h"
#include "agent/deployment_handler.h"
#include "agent/executor/executor.h"
#include "agent/read_handler.h"
#include "agent/target/open_target.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/reference_database.h"
#include "tests/testing/postgres.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;
using testing::Engine;
using ::testing::HasSubstr;

// Serves the test bundle for any id. HoldNextFetch() makes the next fetch
// wait until Release(), so that a command can be kept holding the slot.
class GatedBundleSource : public BundleSource {
 public:
  explicit GatedBundleSource(std::shared_ptr<const bundle::Bundle> bundle)
      : bundle_(std::move(bundle)) {}

  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) override {
    absl::MutexLock lock(&mutex_);
    if (hold_next_) {
      hold_next_ = false;
      holding_ = true;
      mutex_.Await(absl::Condition(
          +[](bool* holding) { return !*holding; }, &holding_));
    }
    return bundle_;
  }
  void HoldNextFetch() {
    absl::MutexLock lock(&mutex_);
    hold_next_ = true;
  }
  void WaitUntilHolding() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(&holding_));
  }
  void Release() {
    absl::MutexLock lock(&mutex_);
    hold_next_ = false;
    holding_ = false;
  }

 private:
  const std::shared_ptr<const bundle::Bundle> bundle_;
  absl::Mutex mutex_;
  bool hold_next_ ABSL_GUARDED_BY(mutex_) = false;
  bool holding_ ABSL_GUARDED_BY(mutex_) = false;
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
  bool finished() const { return finished_.HasBeenNotified(); }
  std::vector<v1::CommandEvent> events() {
    absl::MutexLock lock(&mutex_);
    return events_;
  }
  bool AwaitEvents(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mutex_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return events_.size() >= count;
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::CommandEvent> events_ ABSL_GUARDED_BY(mutex_);
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
  absl::Notification finished_;
};

class CommandRouterTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() != Engine::kSqlite &&
        !::ecliptix::testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set; pass it with "
                      "--test_env to run the PostgreSQL cases";
    }
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/",
        absl::StrReplaceAll(
            ::testing::UnitTest::GetInstance()->current_test_info()->name(),
            {{"/", "_"}}));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    bundle_ = testing::TestBundle();
    ASSERT_NE(bundle_, nullptr);
    absl::StatusOr<std::string> url =
        testing::DeployedDatabase(GetParam(), dir_);
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
    absl::StatusOr<std::unique_ptr<Target>> probe = OpenTarget(url_);
    ASSERT_TRUE(probe.ok()) << probe.status();
    probe_ = *std::move(probe);
    ExecutorOptions options;
    options.backup_dir = absl::StrCat(dir_, "/backups");
    executor_ = std::make_unique<Executor>(database_.get(), options);
    source_ = std::make_unique<GatedBundleSource>(bundle_);
    changes_ =
        std::make_unique<DeploymentHandler>(executor_.get(), source_.get());
    reads_ = std::make_unique<ReadHandler>(url_, source_.get());
    router_ = std::make_unique<CommandRouter>(changes_.get(), reads_.get());
  }

  void TearDown() override {
    if (source_ != nullptr) source_->Release();
    router_.reset();
    reads_.reset();
    changes_.reset();
  }

  // Accepts and starts `command`; its outcome goes to the returned reporter.
  std::shared_ptr<RecordingReporter> Start(const v1::Command& command) {
    auto reporter = std::make_shared<RecordingReporter>();
    const absl::Status accepted = router_->Accept(command);
    EXPECT_TRUE(accepted.ok()) << command.command_id() << ": " << accepted;
    if (accepted.ok()) router_->Run(command, reporter);
    return reporter;
  }

  v1::Command Deploy(const std::string& id) const {
    v1::Command command;
    command.set_command_id(id);
    command.mutable_run_phase()->set_bundle_id(bundle_->id());
    command.mutable_run_phase()->set_phase(
        bundle_->manifest().phases(0).name());
    return command;
  }
  v1::Command Cleanup(const std::string& id) const {
    v1::Command command;
    command.set_command_id(id);
    v1::RunOperationCommand* run = command.mutable_run_operation();
    run->set_bundle_id(bundle_->id());
    run->set_operation("CleanupAuditLogs");
    (*run->mutable_arguments())["RetentionDays"] = "365";
    (*run->mutable_arguments())["BatchSize"] = "7";
    return command;
  }
  v1::Command Query(const std::string& id, const std::string& query) const {
    v1::Command command;
    command.set_command_id(id);
    command.mutable_run_query()->set_bundle_id(bundle_->id());
    command.mutable_run_query()->set_query(query);
    return command;
  }
  v1::Command Cancel(const std::string& id, const std::string& target) const {
    v1::Command command;
    command.set_command_id(id);
    command.mutable_cancel()->set_command_id(target);
    return command;
  }

  int64_t OldRows() {
    return testing::QueryInt(
        *probe_, absl::StrCat("SELECT COUNT(*) FROM ",
                              testing::Table(GetParam(), "AuditLog"),
                              " WHERE TableName = 'TestOld'"));
  }

  std::string dir_;
  std::string url_;
  std::shared_ptr<const bundle::Bundle> bundle_;
  std::unique_ptr<Target> database_;
  std::unique_ptr<Target> probe_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<GatedBundleSource> source_;
  std::unique_ptr<DeploymentHandler> changes_;
  std::unique_ptr<ReadHandler> reads_;
  std::unique_ptr<CommandRouter> router_;
};

TEST_P(CommandRouterTest, ChangesWaitForTheSlotAndReadsRunBeside) {
  source_->HoldNextFetch();
  std::shared_ptr<RecordingReporter> deploying = Start(Deploy("deploy-1"));
  source_->WaitUntilHolding();

  // The deployment holds the slot: a job and a configuration change are
  // refused.
  absl::Status busy = router_->Accept(Cleanup("job-1"));
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition) << busy;
  EXPECT_THAT(busy.message(), HasSubstr("busy with command deploy-1"));
  v1::Command apply;
  apply.set_command_id("apply-1");
  apply.mutable_apply_config()->set_bundle_id(bundle_->id());
  v1::ConfigSetting* setting = apply.mutable_apply_config()->add_settings();
  setting->set_key("Authentication.MaxFailedAttempts");
  setting->set_value("7");
  busy = router_->Accept(apply);
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition) << busy;

  // A query and a configuration read run meanwhile, on sessions of their own.
  std::shared_ptr<RecordingReporter> query =
      Start(Query("query-1", "ConfigurationCount"));
  ASSERT_TRUE(query->Wait().ok()) << query->Wait();
  const std::vector<v1::CommandEvent> rows = query->events();
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_TRUE(rows[0].has_query_rows());
  EXPECT_TRUE(rows[0].query_rows().last());
  ASSERT_EQ(rows[0].query_rows().rows_size(), 1);
  EXPECT_NE(rows[0].query_rows().rows(0).values(0).text(), "0");
  v1::Command read;
  read.set_command_id("read-1");
  read.mutable_read_config()->set_bundle_id(bundle_->id());
  read.mutable_read_config()->add_keys("Authentication.MaxFailedAttempts");
  std::shared_ptr<RecordingReporter> reading = Start(read);
  ASSERT_TRUE(reading->Wait().ok()) << reading->Wait();
  ASSERT_EQ(reading->events().size(), 1u);
  EXPECT_EQ(reading->events()[0].config_value().value(), "5");
  EXPECT_FALSE(deploying->finished());

  source_->Release();
  EXPECT_TRUE(deploying->Wait().ok()) << deploying->Wait();
  // The slot is free again.
  std::shared_ptr<RecordingReporter> applying = Start(apply);
  EXPECT_TRUE(applying->Wait().ok()) << applying->Wait();
  ASSERT_EQ(applying->events().size(), 1u);
  EXPECT_EQ(applying->events()[0].config_value().value(), "7");
  EXPECT_EQ(applying->events()[0].config_value().previous_value(), "5");
}

TEST_P(CommandRouterTest, JobHoldsTheSlotUntilCancelled) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  v1::Command job = Cleanup("job-1");
  *job.mutable_run_operation()->mutable_pause_between_batches() =
      ToProtoDuration(absl::Milliseconds(300));
  std::shared_ptr<RecordingReporter> running = Start(job);
  ASSERT_TRUE(running->AwaitEvents(2, absl::Seconds(60)));

  const absl::Status busy = router_->Accept(Deploy("deploy-1"));
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition) << busy;
  EXPECT_THAT(busy.message(), HasSubstr("busy with command job-1"));

  EXPECT_TRUE(Start(Cancel("cancel-1", "job-1"))->Wait().ok());
  const absl::Status status = running->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  int64_t batches = 0;
  for (const v1::CommandEvent& event : running->events()) {
    ASSERT_TRUE(event.has_operation_batch());
    ++batches;
  }
  EXPECT_GE(batches, 2);
  EXPECT_EQ(OldRows(), 50 - 7 * batches);

  // The cancel belonged to that job: the next one runs to the end.
  std::shared_ptr<RecordingReporter> again = Start(Cleanup("job-2"));
  EXPECT_TRUE(again->Wait().ok()) << again->Wait();
  EXPECT_EQ(OldRows(), 0);
  EXPECT_EQ(again->events().back().operation_batch().stop_reason(),
            "nothing left");
}

TEST_P(CommandRouterTest, CancelReachesARunningQuery) {
  if (GetParam() == Engine::kPostgresqlOdbc) {
    GTEST_SKIP() << "ODBC statements cannot be interrupted (target.h)";
  }
  v1::Command slow = Query("query-1", "SlowQuery");
  *slow.mutable_run_query()->mutable_timeout() =
      ToProtoDuration(absl::Seconds(120));
  std::shared_ptr<RecordingReporter> running = Start(slow);
  if (GetParam() == Engine::kPostgresql) {
    // Until the query is in the database, so that the cancel interrupts it.
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (testing::QueryInt(*probe_,
                             "SELECT COUNT(*) FROM pg_stat_activity WHERE "
                             "datname = current_database() AND query LIKE "
                             "'%pg_sleep%' AND state = 'active' AND pid <> "
                             "pg_backend_pid()") == 0 &&
           absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  EXPECT_TRUE(Start(Cancel("cancel-1", "query-1"))->Wait().ok());
  const absl::Status status = running->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(running->events().empty());
}

TEST_P(CommandRouterTest, RefusesMalformedCommands) {
  v1::Command query = Query("query-1", "");
  EXPECT_EQ(router_->Accept(query).code(), absl::StatusCode::kInvalidArgument);
  v1::Command job = Cleanup("job-1");
  job.mutable_run_operation()->clear_operation();
  EXPECT_EQ(router_->Accept(job).code(), absl::StatusCode::kInvalidArgument);
  v1::Command apply;
  apply.set_command_id("apply-1");
  apply.mutable_apply_config()->set_bundle_id(bundle_->id());
  EXPECT_EQ(router_->Accept(apply).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router_->Accept(Cancel("cancel-1", "")).code(),
            absl::StatusCode::kInvalidArgument);
  // A query of an operation that is not read-only is accepted (the bundle is
  // not at hand yet), then refused.
  std::shared_ptr<RecordingReporter> refused =
      Start(Query("query-2", "CleanupAuditLogs"));
  EXPECT_EQ(refused->Wait().code(), absl::StatusCode::kPermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(Engines, CommandRouterTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kPostgresqlOdbc),
                         testing::EngineParamName);

}  // namespace
}  // namespace ecliptix::agent
