// Maintenance jobs end to end: a real ecliptix-server process, real
// ecliptix-agent processes on SQLite files (and PostgreSQL databases when the
// tests have a server), the reference bundle deployed by a rollout, and
// JobService over loopback gRPC. What a cleanup did is checked in each
// database's AuditLog; how it went, in the run's targets and events.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/job_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tests/testing/query.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kBundle[] = "ecliptix-production-enhancements@1.0.0";

enum class Engine { kSqlite, kPostgresql };

class JobTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/job-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (postgresql() && !testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test "
                      "sets it)";
    }
    StartServer();
    for (int i = 1; i <= kDatabases; ++i) {
      const std::string id = absl::StrFormat("db-%02d", i);
      if (postgresql()) {
        auto scratch = testing::CreateScratchDatabase("jobs");
        ASSERT_TRUE(scratch.ok()) << scratch.status();
        urls_[id] = scratch->url;
      } else {
        urls_[id] = absl::StrCat("sqlite://", dir_, "/", id, ".db");
      }
      StartAgent(id);
    }
    ASSERT_TRUE(
        WaitFor([&] { return Connected() == kDatabases; }, absl::Seconds(30)));
    // The reference bundle, deployed everywhere.
    ASSERT_EQ(Ctl({"bundle", "push",
                   testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix")})
                  .exit_code,
              0);
    const testing::CommandResult deployed =
        Ctl({"rollout", "create", kBundle, "--all", "--watch"});
    ASSERT_EQ(deployed.exit_code, 0) << deployed.output;
  }

  void TearDown() override {
    for (auto& [id, agent] : agents_) agent->Signal(SIGTERM);
    if (server_ != nullptr) server_->Signal(SIGTERM);
  }

  bool postgresql() const { return GetParam() == Engine::kPostgresql; }
  std::string AuditLog() const {
    return postgresql() ? "dbo.AuditLog" : "AuditLog";
  }
  std::string DaysAgo(int days) const {
    return postgresql() ? absl::StrCat("now() - interval '", days, " days'")
                        : absl::StrCat("datetime('now', '-", days, " days')");
  }

  void StartServer() {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"),
         absl::StrCat("--listen=127.0.0.1:", port_),
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=3s"},
        absl::StrCat(dir_, "/server-", ++server_starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    port_ = port;
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel_);
    rollouts_ = v1::RolloutService::NewStub(channel_);
    fleet_ = v1::FleetService::NewStub(channel_);
  }

  void StartAgent(const std::string& id) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=", urls_[id]), "--labels=env=prod",
         absl::StrCat("--database_id=", id), "--initial_backoff=100ms",
         "--max_backoff=500ms"},
        absl::StrCat(dir_, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[id] = std::make_unique<ChildProcess>(std::move(*agent));
  }

  int Connected() {
    grpc::ClientContext context;
    v1::ListDatabasesResponse response;
    if (!fleet_->ListDatabases(&context, v1::ListDatabasesRequest(), &response)
             .ok())
      return 0;
    int connected = 0;
    for (const auto& database : response.databases())
      connected +=
          database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
    return connected;
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", port_), "--timeout=60s"});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  // `old` AuditLog rows past a 30-day retention and `recent` ones inside it,
  // marked TableName = 'Seed'.
  void Seed(const std::string& id, int old, int recent) {
    std::string sql;
    for (int i = 0; i < old; ++i) {
      absl::StrAppend(&sql, "INSERT INTO ", AuditLog(),
                      " (TableName, OperationType, CreatedAt) VALUES ('Seed', "
                      "'UPDATE', ",
                      DaysAgo(40 + i % 5), ");\n");
    }
    for (int i = 0; i < recent; ++i) {
      absl::StrAppend(&sql, "INSERT INTO ", AuditLog(),
                      " (TableName, OperationType, CreatedAt) VALUES ('Seed', "
                      "'UPDATE', ",
                      DaysAgo(i % 20), ");\n");
    }
    const absl::Status status = testing::ExecuteSql(urls_[id], sql);
    ASSERT_TRUE(status.ok()) << status;
  }

  int Count(const std::string& id, const std::string& where) {
    int count = -1;
    const std::string text = testing::QueryScalar(
        urls_[id],
        absl::StrCat("SELECT COUNT(*) FROM ", AuditLog(), " WHERE ", where));
    EXPECT_TRUE(absl::SimpleAtoi(text, &count)) << text;
    return count;
  }
  int SeedRowsPastRetention(const std::string& id) {
    return Count(
        id, absl::StrCat("TableName = 'Seed' AND CreatedAt < ", DaysAgo(30)));
  }
  int SeedRowsKept(const std::string& id) {
    return Count(
        id, absl::StrCat("TableName = 'Seed' AND CreatedAt >= ", DaysAgo(30)));
  }

  v1::JobSpec Cleanup(const std::string& name, int batch_size,
                      const std::string& selector = "env=prod") {
    v1::JobSpec spec;
    spec.set_name(name);
    spec.set_bundle(kBundle);
    spec.set_operation("CleanupAuditLogs");
    (*spec.mutable_arguments())["RetentionDays"] = "30";
    (*spec.mutable_arguments())["BatchSize"] = absl::StrCat(batch_size);
    // Far from now: runs start by hand here.
    spec.set_schedule("0 2 1 1 *");
    spec.set_selector(selector);
    return spec;
  }

  grpc::Status CreateJob(const v1::JobSpec& spec, v1::Job* job = nullptr) {
    grpc::ClientContext context;
    v1::CreateJobRequest request;
    *request.mutable_spec() = spec;
    v1::Job ignored;
    return jobs_->CreateJob(&context, request, job ? job : &ignored);
  }

  v1::Rollout RunNow(const std::string& job) {
    grpc::ClientContext context;
    v1::RunJobNowRequest request;
    request.set_job(job);
    request.set_actor("test");
    v1::Rollout run;
    const grpc::Status status = jobs_->RunJobNow(&context, request, &run);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return run;
  }

  v1::Rollout Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(id);
    v1::Rollout rollout;
    rollouts_->GetRollout(&context, request, &rollout);
    return rollout;
  }

  ::testing::AssertionResult WaitForState(
      const std::string& id, v1::RolloutState state,
      absl::Duration timeout = absl::Seconds(90)) {
    if (WaitFor([&] { return Get(id).state() == state; }, timeout))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << id << " is " << v1::RolloutState_Name(Get(id).state()) << ", not "
           << v1::RolloutState_Name(state) << "\n"
           << Get(id).DebugString();
  }

  const v1::RolloutTarget* Target(const v1::Rollout& run,
                                  const std::string& id) {
    for (const v1::RolloutTarget& target : run.targets())
      if (target.database_id() == id) return &target;
    return nullptr;
  }

  static constexpr int kDatabases = 3;
  std::string dir_;
  int port_ = 0;
  int server_starts_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::map<std::string, std::string> urls_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::RolloutService::Stub> rollouts_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
};

INSTANTIATE_TEST_SUITE_P(Engines, JobTest,
                         ::testing::Values(Engine::kSqlite,
                                           Engine::kPostgresql),
                         [](const auto& info) {
                           return info.param == Engine::kSqlite ? "SQLite"
                                                                : "PostgreSQL";
                         });

TEST_P(JobTest, CleanupDeletesExactlyTheRowsPastRetentionInBatches) {
  for (const auto& [id, url] : urls_) Seed(id, 50, 10);
  ASSERT_TRUE(CreateJob(Cleanup("audit-cleanup", 7)).ok());
  const v1::Rollout run = RunNow("audit-cleanup");
  ASSERT_TRUE(WaitForState(run.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  const v1::Rollout done = Get(run.rollout_id());
  for (const auto& [id, url] : urls_) {
    EXPECT_EQ(SeedRowsPastRetention(id), 0) << id;
    EXPECT_EQ(SeedRowsKept(id), 10) << id;
    const v1::RolloutTarget* target = Target(done, id);
    ASSERT_NE(target, nullptr) << id;
    EXPECT_EQ(target->state(), v1::TARGET_STATE_SUCCEEDED);
    EXPECT_EQ(target->rows_done(), 50) << id;
    EXPECT_EQ(target->rows_left(), 0) << id;
    // 50 rows, 7 per batch.
    EXPECT_EQ(target->batches(), 8) << id;
  }

  // Again: nothing left, one batch that deletes nothing; nothing else lost.
  const v1::Rollout again = RunNow("audit-cleanup");
  ASSERT_TRUE(WaitForState(again.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED));
  const v1::Rollout second = Get(again.rollout_id());
  for (const auto& [id, url] : urls_) {
    EXPECT_EQ(SeedRowsKept(id), 10) << id;
    const v1::RolloutTarget* target = Target(second, id);
    ASSERT_NE(target, nullptr);
    EXPECT_EQ(target->rows_done(), 0) << id;
    EXPECT_EQ(target->batches(), 1) << id;
  }

  // The database's history shows both runs, newest first.
  grpc::ClientContext context;
  v1::GetDatabaseJobHistoryRequest request;
  request.set_database_id("db-01");
  v1::DatabaseJobHistory history;
  ASSERT_TRUE(jobs_->GetDatabaseJobHistory(&context, request, &history).ok());
  ASSERT_EQ(history.runs_size(), 2);
  EXPECT_EQ(history.runs(0).run_id(), again.rollout_id());
  EXPECT_EQ(history.runs(1).rows_done(), 50);
  EXPECT_EQ(history.runs(1).job_name(), "audit-cleanup");

  // With ecliptixctl.
  const testing::CommandResult listed = Ctl({"job", "history", "db-01"});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, HasSubstr("CleanupAuditLogs"));
}

TEST_P(JobTest, AbortStopsBetweenBatchesAndKeepsWhatWasDone) {
  Seed("db-01", 400, 5);
  v1::JobSpec spec = Cleanup("slow-cleanup", 1, "env=prod");
  spec.mutable_pause_between_batches()->set_nanos(20'000'000);
  ASSERT_TRUE(CreateJob(spec).ok());
  const v1::Rollout run = RunNow("slow-cleanup");
  ASSERT_TRUE(WaitFor(
      [&] {
        const v1::RolloutTarget* target =
            Target(Get(run.rollout_id()), "db-01");
        return target != nullptr && target->batches() >= 3;
      },
      absl::Seconds(60)));
  {
    grpc::ClientContext context;
    v1::RolloutActionRequest abort;
    abort.set_rollout_id(run.rollout_id());
    abort.set_actor("test");
    v1::Rollout ignored;
    ASSERT_TRUE(rollouts_->AbortRollout(&context, abort, &ignored).ok());
  }
  ASSERT_TRUE(WaitForState(run.rollout_id(), v1::ROLLOUT_STATE_ABORTED));
  // Whole batches only: what the run reports deleted is what is gone, and
  // the rest is still there.
  const v1::Rollout aborted = Get(run.rollout_id());
  const v1::RolloutTarget* target = Target(aborted, "db-01");
  ASSERT_NE(target, nullptr);
  const int left = SeedRowsPastRetention("db-01");
  EXPECT_GT(left, 0);
  EXPECT_LT(left, 400);
  EXPECT_EQ(SeedRowsKept("db-01"), 5);
  // Deleted rows are each a batch of 1; the target's count may trail the
  // agent's by the batch that was running when the abort came.
  EXPECT_LE(target->rows_done(), 400 - left);
  EXPECT_GE(target->rows_done() + 1, 400 - left);
}

TEST_P(JobTest, ServerKilledDuringARunResumesItWithoutRunningItTwice) {
  Seed("db-02", 150, 3);
  v1::JobSpec spec = Cleanup("crash-cleanup", 1, "env=prod");
  spec.mutable_pause_between_batches()->set_nanos(20'000'000);
  ASSERT_TRUE(CreateJob(spec).ok());
  const v1::Rollout run = RunNow("crash-cleanup");
  ASSERT_TRUE(WaitFor(
      [&] {
        const v1::RolloutTarget* target =
            Target(Get(run.rollout_id()), "db-02");
        return target != nullptr && target->batches() >= 3;
      },
      absl::Seconds(60)));
  server_->Signal(SIGKILL);
  server_->Wait(absl::Seconds(10));
  StartServer();
  ASSERT_TRUE(WaitForState(run.rollout_id(), v1::ROLLOUT_STATE_SUCCEEDED,
                           absl::Seconds(120)));
  EXPECT_EQ(SeedRowsPastRetention("db-02"), 0);
  EXPECT_EQ(SeedRowsKept("db-02"), 3);
  const v1::RolloutTarget* target = Target(Get(run.rollout_id()), "db-02");
  ASSERT_NE(target, nullptr);
  // One run of the command from its first batch to its last: had it started
  // again after the restart, its own count would restart from 1.
  EXPECT_EQ(target->rows_done(), 150);
  EXPECT_EQ(target->batches(), 150);
  // Each deleting batch wrote one CLEANUP audit row: 150, not more.
  EXPECT_EQ(Count("db-02",
                  "TableName = 'AuditLog' AND OperationType = "
                  "'CLEANUP'"),
            150);
}

TEST_P(JobTest, BadJobsAreRefusedAndNothingRuns) {
  auto code = [&](const v1::JobSpec& spec) {
    return CreateJob(spec).error_code();
  };
  v1::JobSpec cron = Cleanup("bad-cron", 10);
  cron.set_schedule("61 * * * *");
  grpc::Status status = CreateJob(cron);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("minute 61 is out of range 0-59"));
  v1::JobSpec operation = Cleanup("bad-operation", 10);
  operation.set_operation("TruncateEverything");
  EXPECT_EQ(code(operation), grpc::StatusCode::NOT_FOUND);
  v1::JobSpec argument = Cleanup("bad-argument", 10);
  (*argument.mutable_arguments())["RetentionDays"] = "forever";
  EXPECT_EQ(code(argument), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext context;
  v1::RunJobNowRequest run;
  run.set_job("no-such-job");
  v1::Rollout ignored;
  EXPECT_EQ(jobs_->RunJobNow(&context, run, &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const testing::CommandResult listed = Ctl({"job", "list"});
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_THAT(listed.output, ::testing::Not(HasSubstr("bad-")));
}

}  // namespace
}  // namespace ecliptix
