// Maintenance jobs: the job definitions (kept in the state store), the
// scheduler that starts their runs when their cron schedule fires (missed
// fire times by the job's policy, one active run per job), and the queries on
// runs and per-database history. A run is a fleet operation of the wave
// engine (RolloutOrchestrator::Create with operation.job_run): waves, max
// parallel, failure budget, pause / abort, events and resumption after a
// crash are the engine's. Knows no gRPC (job_service.h adapts it).
//
// Exactly once per fire time: a run is created (and saved by the
// orchestrator) before the job records the fire time as handled; a server
// that dies in between finds, at start, the run newer than the job's record
// and records it instead of starting another.
#ifndef ECLIPTIX_SERVER_JOBS_JOB_MANAGER_H_
#define ECLIPTIX_SERVER_JOBS_JOB_MANAGER_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/job_service.pb.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/jobs/cron.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/storage/state_store.h"

namespace ecliptix::server {

struct JobOptions {
  // How often schedules are looked at.
  absl::Duration tick = absl::Seconds(1);
};

class JobManager {
 public:
  template <typename T>
  using Callback = std::function<void(absl::StatusOr<T>)>;

  // None of the pointers is owned. Construct before the orchestrator starts
  // (it observes the orchestrator's runs), Start after.
  JobManager(StateStore* store, Registry* registry, BundleCatalog* bundles,
             RolloutOrchestrator* orchestrator, Clock* clock,
             JobOptions options);
  ~JobManager();

  // Loads the jobs, settles what a crash left (see above) and starts the
  // scheduler thread.
  absl::Status Start();
  void Stop();

  // INVALID_ARGUMENT for a bad name, schedule, time zone, selector, strategy,
  // window or argument; NOT_FOUND for an unknown bundle or operation;
  // ALREADY_EXISTS for a name in use.
  absl::StatusOr<fleet::v1::Job> Create(
      const fleet::v1::CreateJobRequest& request);
  // By id or name; NOT_FOUND otherwise.
  absl::StatusOr<fleet::v1::Job> Get(const std::string& job);
  // By name.
  std::vector<fleet::v1::Job> List();
  // FAILED_PRECONDITION while a run is active.
  absl::StatusOr<fleet::v1::Job> Delete(const std::string& job,
                                        const std::string& actor);
  // Enabling counts the schedule from now: fire times while disabled are
  // not run.
  absl::StatusOr<fleet::v1::Job> SetEnabled(const std::string& job,
                                            bool enabled,
                                            const std::string& actor);
  // Starts a run now. FAILED_PRECONDITION while one is active.
  void RunNow(const std::string& job, const std::string& actor,
              Callback<fleet::v1::Rollout> done);
  void ListRuns(const fleet::v1::ListJobRunsRequest& request,
                Callback<fleet::v1::ListRolloutsResponse> done);
  void History(const fleet::v1::GetDatabaseJobHistoryRequest& request,
               Callback<fleet::v1::DatabaseJobHistory> done);

  // For the metrics exporter, on every scrape: counted under the lock.
  struct Counts {
    int64_t enabled = 0;
    int64_t disabled = 0;
    // Jobs with a run in progress.
    int64_t running = 0;
  };
  Counts CountJobs();

  // Looks at every schedule now (the scheduler thread does this every
  // tick); for tests.
  void Tick();

 private:
  struct Entry {
    fleet::v1::Job job;
    long long number = 0;
    // Always set (optional: CronSchedule has no empty state).
    std::optional<CronSchedule> schedule;
    // The run in progress (a rollout id), empty when none.
    std::string active_run;
  };

  Entry* FindLocked(const std::string& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status SaveLocked(const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The request that starts one run of `job`.
  fleet::v1::CreateRolloutRequest RunRequest(const fleet::v1::Job& job,
                                             absl::Time scheduled_time,
                                             const std::string& trigger,
                                             const std::string& actor) const;
  // Creates the run; then records it on the job (or why it did not start).
  // `fire` is the fire time it handles (InfinitePast for a run by hand).
  void StartRun(const std::string& job_id, absl::Time fire,
                const std::string& trigger, const std::string& actor,
                Callback<fleet::v1::Rollout> done);
  void OnCommitted(const fleet::v1::Rollout& rollout);
  void Loop();
  // Runs `task` on the scheduler thread (work that waits on the
  // orchestrator).
  void Post(std::function<void()> task);

  StateStore* const store_;
  Registry* const registry_;
  BundleCatalog* const bundles_;
  RolloutOrchestrator* const orchestrator_;
  Clock* const clock_;
  const JobOptions options_;

  absl::Mutex mutex_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mutex_);
  long long next_number_ ABSL_GUARDED_BY(mutex_) = 1;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_JOBS_JOB_MANAGER_H_
