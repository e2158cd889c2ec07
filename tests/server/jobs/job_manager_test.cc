// The job scheduler over a real orchestrator and store on a fake clock, with
// agents that record the commands they get and answer when the test says:
// when runs start, what missed fire times become after a restart, one active
// run per job, exactly one run per fire time across a crash, and the errors
// people get for bad jobs.
#include "server/jobs/job_manager.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_testing.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using testing::RecordingSession;

constexpr char kManifest[] = R"(name: "cleanup"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps { name: "t" kind: STEP_KIND_VERSIONED sql { sqlite: "sqlite/t.sql" } }
}
operations {
  name: "CleanupAuditLogs"
  batch { rows_done_column: "RowsDeleted" rows_left_column: "RowsRemaining" }
  parameters { name: "RetentionDays" type: "int" }
  parameters { name: "BatchSize" type: "int" default_value: "1000" }
  sql { sqlite: "SELECT 0 AS RowsDeleted, 0 AS RowsRemaining" }
}
)";

absl::Time Utc(int y, int m, int d, int hh, int mm) {
  return absl::FromCivil(absl::CivilMinute(y, m, d, hh, mm),
                         absl::UTCTimeZone());
}

class JobManagerTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    clock_.Advance(Utc(2026, 11, 30, 1, 0) - clock_.Now());
    Open();
    absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
        {testing::File("manifest.textproto", kManifest),
         testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_id_ = bundle->bundle_id();
    Connect();
    StartAll();
  }
  void TearDown() override { StopAll(); }

  void Open() {
    RolloutOptions options;
    options.tick = absl::Milliseconds(1);
    OpenCore(options);
    ASSERT_TRUE(registry_->Load().ok());
    ASSERT_TRUE(bundles_->Load().ok());
    JobOptions job_options;
    // The test ticks by itself.
    job_options.tick = absl::Hours(1000);
    jobs_ = std::make_unique<JobManager>(store_.get(), registry_.get(),
                                         bundles_.get(), orchestrator_.get(),
                                         &clock_, job_options);
  }
  void Connect() {
    agent_ = std::make_shared<RecordingSession>();
    v1::Hello hello = testing::MakeHello("db-1", {{"env", "prod"}});
    hello.add_capabilities("operations");
    ASSERT_TRUE(registry_->Register(hello, "peer", agent_).ok());
  }
  void StartAll() {
    ASSERT_TRUE(orchestrator_->Start().ok());
    ASSERT_TRUE(jobs_->Start().ok());
  }
  void StopAll() {
    if (jobs_) jobs_->Stop();
    if (orchestrator_) orchestrator_->Stop();
    if (registry_) registry_->Stop();
  }
  // The server process dies and starts again on the same store.
  void Restart() {
    StopAll();
    jobs_.reset();
    orchestrator_.reset();
    bundles_.reset();
    registry_.reset();
    store_.reset();
    Open();
    Connect();
    StartAll();
  }

  v1::CreateJobRequest Request(const std::string& schedule = "0 2 * * *") {
    v1::CreateJobRequest request;
    v1::JobSpec* spec = request.mutable_spec();
    spec->set_name("audit-cleanup");
    spec->set_bundle(bundle_id_);
    spec->set_operation("CleanupAuditLogs");
    (*spec->mutable_arguments())["RetentionDays"] = "30";
    spec->set_schedule(schedule);
    spec->set_selector("env=prod");
    request.set_requested_by("alice");
    return request;
  }

  std::vector<v1::Rollout> Runs() {
    v1::ListJobRunsRequest request;
    request.set_job("audit-cleanup");
    absl::StatusOr<v1::ListRolloutsResponse> runs =
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>(
            [&](auto done) { jobs_->ListRuns(request, std::move(done)); });
    EXPECT_TRUE(runs.ok()) << runs.status();
    if (!runs.ok()) return {};
    return {runs->rollouts().begin(), runs->rollouts().end()};
  }

  // Lets the orchestrator save what Tick started.
  void Settle() {
    ASSERT_TRUE(
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>([&](auto done) {
          orchestrator_->List(v1::ListRolloutsRequest(), std::move(done));
        }).ok());
  }

  void Abort(const std::string& run) {
    v1::RolloutActionRequest request;
    request.set_rollout_id(run);
    ASSERT_TRUE(RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
                  orchestrator_->Abort(request, std::move(done));
                }).ok());
  }

  std::string bundle_id_;
  std::shared_ptr<RecordingSession> agent_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(JobManagerTest, BadJobsAreRefusedWithTheReason) {
  auto refused = [&](v1::CreateJobRequest request) {
    return jobs_->Create(request).status();
  };
  v1::CreateJobRequest cron = Request("61 * * * *");
  EXPECT_EQ(refused(cron).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused(cron).message()),
              HasSubstr("minute 61 is out of range 0-59"));
  v1::CreateJobRequest zone = Request();
  zone.mutable_spec()->set_time_zone("Mars/Olympus");
  EXPECT_THAT(std::string(refused(zone).message()),
              HasSubstr("unknown time zone \"Mars/Olympus\""));
  v1::CreateJobRequest operation = Request();
  operation.mutable_spec()->set_operation("DropEverything");
  EXPECT_EQ(refused(operation).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(refused(operation).message()),
              HasSubstr("has no operation \"DropEverything\""));
  v1::CreateJobRequest missing = Request();
  missing.mutable_spec()->mutable_arguments()->clear();
  EXPECT_THAT(std::string(refused(missing).message()),
              HasSubstr("needs parameter \"RetentionDays\""));
  v1::CreateJobRequest typed = Request();
  (*typed.mutable_spec()->mutable_arguments())["RetentionDays"] = "a month";
  EXPECT_EQ(refused(typed).code(), absl::StatusCode::kInvalidArgument);
  v1::CreateJobRequest bundle = Request();
  bundle.mutable_spec()->set_bundle("nope@9");
  EXPECT_EQ(refused(bundle).code(), absl::StatusCode::kNotFound);
  v1::CreateJobRequest nowhere = Request();
  nowhere.mutable_spec()->clear_selector();
  EXPECT_THAT(std::string(refused(nowhere).message()), HasSubstr("selector"));
  v1::CreateJobRequest selector = Request();
  selector.mutable_spec()->set_selector("env in (");
  EXPECT_EQ(refused(selector).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(jobs_->List().empty());

  ASSERT_TRUE(jobs_->Create(Request()).ok());
  EXPECT_EQ(refused(Request()).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(jobs_->Get("j-99").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobManagerTest, FireTimeStartsOneRunAndAnActiveRunSkipsTheNext) {
  absl::StatusOr<v1::Job> job = jobs_->Create(Request());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FromProtoTimestamp(job->next_run_time()), Utc(2026, 11, 30, 2, 0));

  jobs_->Tick();  // 01:00: nothing due.
  Settle();
  EXPECT_TRUE(Runs().empty());

  clock_.Advance(absl::Hours(1) + absl::Seconds(2));  // 02:00:02
  jobs_->Tick();
  Settle();
  std::vector<v1::Rollout> runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  const v1::JobRunSpec& spec = runs[0].operation().job_run();
  EXPECT_EQ(FromProtoTimestamp(spec.scheduled_time()), Utc(2026, 11, 30, 2, 0));
  EXPECT_EQ(spec.trigger(), "schedule");
  EXPECT_EQ(spec.command().operation(), "CleanupAuditLogs");
  // The agent was sent the command (the run waits for it to answer).
  EXPECT_THAT(agent_->FirstCommand(), HasSubstr(runs[0].rollout_id()));
  jobs_->Tick();  // Again at the same time: nothing new.
  Settle();
  EXPECT_EQ(Runs().size(), 1u);

  // The next night the run is still going: that fire time is skipped.
  clock_.Advance(absl::Hours(24));
  jobs_->Tick();
  Settle();
  EXPECT_EQ(Runs().size(), 1u);
  absl::StatusOr<v1::Job> skipped = jobs_->Get("audit-cleanup");
  EXPECT_EQ(skipped->skipped_runs(), 1);
  EXPECT_THAT(skipped->last_skip_reason(),
              HasSubstr(absl::StrCat("previous run ", runs[0].rollout_id(),
                                     " still active")));

  // Once it ends, the next fire time runs.
  Abort(runs[0].rollout_id());
  Settle();
  clock_.Advance(absl::Hours(24));
  jobs_->Tick();
  Settle();
  EXPECT_EQ(Runs().size(), 2u);
}

TEST_F(JobManagerTest, RunNowIsRefusedWhileARunIsActive) {
  ASSERT_TRUE(jobs_->Create(Request()).ok());
  absl::StatusOr<v1::Rollout> run =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        jobs_->RunNow("audit-cleanup", "bob", std::move(done));
      });
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->operation().job_run().trigger(), "run now by bob");
  absl::StatusOr<v1::Rollout> again =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        jobs_->RunNow("audit-cleanup", "bob", std::move(done));
      });
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()),
              HasSubstr("one run of a job at a time"));
  EXPECT_EQ(jobs_->Delete("audit-cleanup", "bob").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobManagerTest, MissedFireTimesRunOnceAfterARestart) {
  ASSERT_TRUE(jobs_->Create(Request()).ok());
  // Down from 01:00 on the 30th until 10:00 on the 3rd: four 02:00s missed.
  Restart();
  clock_.Advance(Utc(2026, 12, 3, 10, 0) - clock_.Now());
  jobs_->Tick();
  Settle();
  std::vector<v1::Rollout> runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_THAT(runs[0].operation().job_run().trigger(),
              HasSubstr("missed run (4 fire time(s) while the server was "
                        "down"));
  absl::StatusOr<v1::Job> job = jobs_->Get("audit-cleanup");
  EXPECT_EQ(FromProtoTimestamp(job->next_run_time()), Utc(2026, 12, 4, 2, 0));
}

TEST_F(JobManagerTest, MissedFireTimesAreSkippedUnderTheSkipPolicy) {
  v1::CreateJobRequest request = Request();
  request.mutable_spec()->set_missed_run_policy(v1::MISSED_RUN_POLICY_SKIP);
  ASSERT_TRUE(jobs_->Create(request).ok());
  Restart();
  clock_.Advance(Utc(2026, 12, 3, 10, 0) - clock_.Now());
  jobs_->Tick();
  Settle();
  EXPECT_TRUE(Runs().empty());
  absl::StatusOr<v1::Job> job = jobs_->Get("audit-cleanup");
  EXPECT_EQ(job->skipped_runs(), 4);
  EXPECT_THAT(job->last_skip_reason(), HasSubstr("skip policy"));
  // The schedule goes on.
  clock_.Advance(Utc(2026, 12, 4, 2, 0) - clock_.Now() + absl::Seconds(1));
  jobs_->Tick();
  Settle();
  EXPECT_EQ(Runs().size(), 1u);
}

TEST_F(JobManagerTest, RunSavedBeforeACrashIsNotStartedAgain) {
  ASSERT_TRUE(jobs_->Create(Request()).ok());
  // The 02:00 run is created and saved, but the server dies before the job
  // records the fire time: the store still says "nothing since 01:00".
  absl::StatusOr<v1::Job> job = jobs_->Get("audit-cleanup");
  clock_.Advance(absl::Hours(1) + absl::Seconds(2));
  jobs_->Tick();
  Settle();
  ASSERT_EQ(Runs().size(), 1u);
  ASSERT_TRUE(store_->SaveJob(*job, 1).ok());  // The job as before the run.

  Restart();
  jobs_->Tick();
  Settle();
  EXPECT_EQ(Runs().size(), 1u) << "the fire time ran twice";
  absl::StatusOr<v1::Job> recovered = jobs_->Get("audit-cleanup");
  EXPECT_EQ(FromProtoTimestamp(recovered->last_scheduled_time()),
            Utc(2026, 11, 30, 2, 0));
  EXPECT_EQ(recovered->last_run_id(), Runs()[0].rollout_id());
}

TEST_F(JobManagerTest, RunLeavesOutDatabasesAnotherOperationIsChanging) {
  auto second = std::make_shared<RecordingSession>();
  v1::Hello hello = testing::MakeHello("db-2", {{"env", "prod"}});
  hello.add_capabilities("operations");
  ASSERT_TRUE(registry_->Register(hello, "peer", second).ok());
  // A deployment holds db-1.
  v1::CreateRolloutRequest deploy;
  deploy.set_bundle(bundle_id_);
  deploy.set_selector("env=prod");
  absl::StatusOr<v1::Rollout> deployment =
      RolloutOrchestrator::Await<v1::Rollout>(
          [&](auto done) { orchestrator_->Create(deploy, std::move(done)); });
  ASSERT_TRUE(deployment.ok()) << deployment.status();
  ASSERT_TRUE(jobs_->Create(Request()).ok());
  absl::StatusOr<v1::Rollout> refused =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        jobs_->RunNow("audit-cleanup", "bob", std::move(done));
      });
  // Both databases are in the deployment: nothing to run on.
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("every selected database is being changed"));

  // The deployment ends; a third database joins and a new deployment holds
  // only db-1.
  Abort(deployment->rollout_id());
  deploy.set_selector("env=prod,id=one");
  v1::Hello tagged =
      testing::MakeHello("db-3", {{"env", "prod"}, {"id", "one"}});
  tagged.add_capabilities("operations");
  ASSERT_TRUE(
      registry_->Register(tagged, "peer", std::make_shared<RecordingSession>())
          .ok());
  absl::StatusOr<v1::Rollout> narrow = RolloutOrchestrator::Await<v1::Rollout>(
      [&](auto done) { orchestrator_->Create(deploy, std::move(done)); });
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  absl::StatusOr<v1::Rollout> run =
      RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
        jobs_->RunNow("audit-cleanup", "bob", std::move(done));
      });
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->targets_size(), 2);
  for (const v1::RolloutTarget& target : run->targets())
    EXPECT_NE(target.database_id(), "db-3");
  EXPECT_THAT(run->description(),
              HasSubstr(absl::StrCat("left out: db-3 (busy in ",
                                     narrow->rollout_id(), ")")));
}

TEST_F(JobManagerTest, DisabledJobsDoNotRunAndEnablingCountsFromNow) {
  ASSERT_TRUE(jobs_->Create(Request()).ok());
  ASSERT_TRUE(jobs_->SetEnabled("audit-cleanup", false, "bob").ok());
  clock_.Advance(absl::Hours(49));
  jobs_->Tick();
  Settle();
  EXPECT_TRUE(Runs().empty());
  absl::StatusOr<v1::Job> enabled =
      jobs_->SetEnabled("audit-cleanup", true, "bob");
  ASSERT_TRUE(enabled.ok());
  jobs_->Tick();
  Settle();
  EXPECT_TRUE(Runs().empty()) << "fire times while disabled ran";
  EXPECT_EQ(FromProtoTimestamp(enabled->next_run_time()),
            Utc(2026, 12, 3, 2, 0));
}

}  // namespace
}  // namespace ecliptix::server
