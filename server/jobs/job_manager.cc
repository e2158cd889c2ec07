#include "server/jobs/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"
#include "common/rollout_names.h"
#include "common/status_macros.h"
#include "server/jobs/job_schedule.h"
#include "server/operations/day2_actions.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

bool IsValidJobName(absl::string_view name) {
  return !name.empty() && name.size() <= 128 &&
         absl::ascii_isalnum(name.front()) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

// The job's run command, as every database gets it (not_after_time is set
// per run).
v1::RunOperationCommand CommandOf(const v1::JobSpec& spec) {
  v1::RunOperationCommand command;
  command.set_operation(spec.operation());
  *command.mutable_arguments() = spec.arguments();
  *command.mutable_pause_between_batches() = spec.pause_between_batches();
  command.set_max_batches(spec.max_batches());
  return command;
}

bool HasWindow(const v1::MaintenanceWindow& window) {
  return !window.start().empty() || !window.end().empty();
}

// Unless the job says otherwise, a run tries every database once: one
// cleanup failing is no reason to leave the others uncleaned, and an
// offline database is skipped (the next run cleans it).
v1::Strategy RunStrategy(const v1::JobSpec& spec) {
  v1::Strategy strategy = spec.strategy();
  if (strategy.failure_budget().empty()) strategy.set_failure_budget("100%");
  if (strategy.offline_policy() == v1::OFFLINE_POLICY_UNSPECIFIED)
    strategy.set_offline_policy(v1::OFFLINE_POLICY_SKIP);
  return strategy;
}

}  // namespace

JobManager::JobManager(StateStore* store, Registry* registry,
                       BundleCatalog* bundles,
                       RolloutOrchestrator* orchestrator, Clock* clock,
                       JobOptions options)
    : store_(store),
      registry_(registry),
      bundles_(bundles),
      orchestrator_(orchestrator),
      clock_(clock),
      options_(options) {
  orchestrator_->AddCommitObserver(
      [this](const v1::Rollout& rollout, const std::vector<v1::RolloutEvent>&) {
        if (rollout.operation().has_job_run()) OnCommitted(rollout);
      });
}

JobManager::~JobManager() { Stop(); }

absl::Status JobManager::Start() {
  ASSIGN_OR_RETURN(std::vector<StateStore::StoredJob> stored,
                   store_->LoadJobs());
  // Runs still active, by job.
  v1::ListRolloutsRequest active_request;
  for (v1::RolloutState state :
       {v1::ROLLOUT_STATE_PENDING, v1::ROLLOUT_STATE_WAITING_FOR_GATE,
        v1::ROLLOUT_STATE_RUNNING, v1::ROLLOUT_STATE_PAUSED,
        v1::ROLLOUT_STATE_ROLLING_BACK})
    active_request.add_states(state);
  active_request.set_page_size(INT32_MAX);
  ASSIGN_OR_RETURN(
      v1::ListRolloutsResponse active,
      RolloutOrchestrator::Await<v1::ListRolloutsResponse>(
          [&](RolloutOrchestrator::Callback<v1::ListRolloutsResponse> done) {
            orchestrator_->List(active_request, std::move(done));
          }));
  for (StateStore::StoredJob& saved : stored) {
    absl::StatusOr<CronSchedule> schedule = CronSchedule::Parse(
        saved.job.spec().schedule(), saved.job.spec().time_zone());
    if (!schedule.ok()) return schedule.status();
    // The newest run: a run created before the job recorded its fire time
    // (the server died in between) is recorded now, not started again.
    v1::ListRolloutsRequest newest;
    newest.set_job_id(saved.job.job_id());
    newest.set_page_size(1);
    absl::StatusOr<v1::ListRolloutsResponse> runs =
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>(
            [&](RolloutOrchestrator::Callback<v1::ListRolloutsResponse> done) {
              orchestrator_->List(newest, std::move(done));
            });
    if (!runs.ok()) return runs.status();
    absl::MutexLock lock(&mutex_);
    Entry& entry = jobs_[saved.job.job_id()];
    entry.job = std::move(saved.job);
    entry.number = saved.number;
    entry.schedule = *std::move(schedule);
    next_number_ = std::max(next_number_, saved.number + 1);
    if (!runs->rollouts().empty()) {
      const v1::Rollout& run = runs->rollouts(0);
      entry.job.set_last_run_id(run.rollout_id());
      entry.job.set_last_run_state(run.state());
      const v1::JobRunSpec& spec = run.operation().job_run();
      if (spec.has_scheduled_time() &&
          FromProtoTimestamp(spec.scheduled_time()) >
              FromProtoTimestamp(entry.job.last_scheduled_time())) {
        *entry.job.mutable_last_scheduled_time() = spec.scheduled_time();
        if (!entry.job.enabled()) entry.job.clear_next_run_time();
        RETURN_IF_ERROR(SaveLocked(entry));
      }
    }
    for (const v1::Rollout& run : active.rollouts()) {
      if (run.operation().job_run().job_id() == entry.job.job_id())
        entry.active_run = run.rollout_id();
    }
  }
  {
    absl::MutexLock lock(&mutex_);
    started_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void JobManager::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void JobManager::Post(std::function<void()> task) {
  absl::MutexLock lock(&mutex_);
  tasks_.push_back(std::move(task));
}

void JobManager::Loop() {
  absl::Time next_tick = clock_->Now();
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !tasks_.empty();
      };
      mutex_.AwaitWithTimeout(absl::Condition(&ready), options_.tick);
      if (stopping_) return;
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
    }
    if (task) task();
    if (clock_->Now() >= next_tick) {
      Tick();
      next_tick = clock_->Now() + options_.tick;
    }
  }
}

JobManager::Entry* JobManager::FindLocked(const std::string& job) {
  if (auto it = jobs_.find(job); it != jobs_.end()) return &it->second;
  for (auto& [id, entry] : jobs_)
    if (entry.job.spec().name() == job) return &entry;
  return nullptr;
}

absl::Status JobManager::SaveLocked(const Entry& entry) {
  return store_->SaveJob(entry.job, entry.number);
}

absl::StatusOr<v1::Job> JobManager::Create(
    const v1::CreateJobRequest& request) {
  const v1::JobSpec& spec = request.spec();
  if (!IsValidJobName(spec.name()))
    return absl::InvalidArgumentError(
        "name: required; letters, digits, '.', '_', '-', starting with a "
        "letter or digit, e.g. cleanup-audit-logs");
  if (absl::StripAsciiWhitespace(spec.bundle()).empty())
    return absl::InvalidArgumentError(
        "bundle: required (name@version, sha256:... or a unique prefix)");
  if (spec.operation().empty())
    return absl::InvalidArgumentError(
        "operation: required, e.g. CleanupAuditLogs");
  if (spec.schedule().empty())
    return absl::InvalidArgumentError(
        "schedule: required, a cron expression such as \"0 2 * * *\"");
  const bool has_selector =
      !absl::StripAsciiWhitespace(spec.selector()).empty();
  if (has_selector == spec.all_databases())
    return absl::InvalidArgumentError(
        has_selector ? "selector and all_databases exclude each other"
                     : "selector: required (a label selector such as "
                       "env=prod), or all_databases for every database");
  ASSIGN_OR_RETURN(CronSchedule schedule,
                   CronSchedule::Parse(spec.schedule(), spec.time_zone()));
  ASSIGN_OR_RETURN(v1::BundleInfo bundle, bundles_->Resolve(spec.bundle()));
  RETURN_IF_ERROR(ValidateStrategy(spec.strategy()));
  v1::FleetOperation operation;
  *operation.mutable_job_run()->mutable_command() = CommandOf(spec);
  RETURN_IF_ERROR(operations::CheckOperation(operation, spec.strategy(),
                                             bundle.manifest()));
  if (has_selector)
    RETURN_IF_ERROR(registry_->Select(spec.selector()).status());
  const absl::Time now = clock_->Now();
  if (HasWindow(spec.window()))
    RETURN_IF_ERROR(CheckWindow(spec.window(), now).status());
  if (!v1::MissedRunPolicy_IsValid(spec.missed_run_policy()))
    return absl::InvalidArgumentError("missed_run_policy: unknown value");

  absl::MutexLock lock(&mutex_);
  for (const auto& [id, entry] : jobs_) {
    if (entry.job.spec().name() == spec.name())
      return absl::AlreadyExistsError(
          absl::StrCat("a job named ", spec.name(), " exists (", id,
                       "); delete it first or choose another name"));
  }
  Entry entry;
  entry.number = next_number_;
  entry.schedule = schedule;
  v1::Job& job = entry.job;
  job.set_job_id(absl::StrCat("j-", entry.number));
  *job.mutable_spec() = spec;
  job.set_bundle_id(bundle.bundle_id());
  job.set_enabled(true);
  job.set_created_by(request.requested_by());
  *job.mutable_create_time() = ToProtoTimestamp(now);
  // Fire times count from creation.
  *job.mutable_last_scheduled_time() = ToProtoTimestamp(now);
  *job.mutable_next_run_time() = ToProtoTimestamp(schedule.NextAfter(now));
  RETURN_IF_ERROR(SaveLocked(entry));
  ++next_number_;
  Logger("audit")->info(
      "{} created job {} ({}): {} of {} on \"{}\" at \"{}\" {}",
      request.requested_by(), job.job_id(), spec.name(), spec.operation(),
      bundle.name(), spec.all_databases() ? "every database" : spec.selector(),
      spec.schedule(), schedule.time_zone());
  const v1::Job created = job;
  jobs_[created.job_id()] = std::move(entry);
  return created;
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job) {
  absl::MutexLock lock(&mutex_);
  Entry* entry = FindLocked(job);
  if (entry == nullptr)
    return absl::NotFoundError(absl::StrCat(
        "no job \"", job, "\"; `ecliptixctl job list` shows the jobs"));
  return entry->job;
}

std::vector<v1::Job> JobManager::List() {
  absl::MutexLock lock(&mutex_);
  std::vector<v1::Job> jobs;
  for (const auto& [id, entry] : jobs_) jobs.push_back(entry.job);
  std::sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
    return a.spec().name() < b.spec().name();
  });
  return jobs;
}

absl::StatusOr<v1::Job> JobManager::Delete(const std::string& job,
                                           const std::string& actor) {
  absl::MutexLock lock(&mutex_);
  Entry* entry = FindLocked(job);
  if (entry == nullptr)
    return absl::NotFoundError(absl::StrCat("no job \"", job, "\""));
  if (!entry->active_run.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", entry->job.spec().name(), " has run ", entry->active_run,
        " in progress; wait for it or stop it with `ecliptixctl rollout "
        "abort ",
        entry->active_run, "`"));
  RETURN_IF_ERROR(store_->DeleteJob(entry->job.job_id()));
  const v1::Job deleted = entry->job;
  jobs_.erase(deleted.job_id());
  Logger("audit")->info("{} deleted job {} ({})", actor, deleted.job_id(),
                        deleted.spec().name());
  return deleted;
}

absl::StatusOr<v1::Job> JobManager::SetEnabled(const std::string& job,
                                               bool enabled,
                                               const std::string& actor) {
  absl::MutexLock lock(&mutex_);
  Entry* entry = FindLocked(job);
  if (entry == nullptr)
    return absl::NotFoundError(absl::StrCat("no job \"", job, "\""));
  if (entry->job.enabled() != enabled) {
    v1::Job before = entry->job;
    entry->job.set_enabled(enabled);
    const absl::Time now = clock_->Now();
    if (enabled) {
      // Fire times while disabled are not run.
      *entry->job.mutable_last_scheduled_time() = ToProtoTimestamp(now);
      *entry->job.mutable_next_run_time() =
          ToProtoTimestamp(entry->schedule->NextAfter(now));
    } else {
      entry->job.clear_next_run_time();
    }
    if (absl::Status saved = SaveLocked(*entry); !saved.ok()) {
      entry->job = std::move(before);
      return saved;
    }
    Logger("audit")->info("{} {} job {} ({})", actor,
                          enabled ? "enabled" : "disabled", entry->job.job_id(),
                          entry->job.spec().name());
  }
  return entry->job;
}

v1::CreateRolloutRequest JobManager::RunRequest(
    const v1::Job& job, absl::Time scheduled_time, const std::string& trigger,
    const std::string& actor) const {
  const v1::JobSpec& spec = job.spec();
  v1::CreateRolloutRequest request;
  request.set_bundle(job.bundle_id());
  request.set_selector(spec.selector());
  request.set_all_databases(spec.all_databases());
  *request.mutable_strategy() = RunStrategy(spec);
  request.set_requested_by(actor);
  request.set_description(absl::StrCat("job ", spec.name(), ": ",
                                       spec.operation(), " (", trigger, ")"));
  v1::JobRunSpec* run = request.mutable_operation()->mutable_job_run();
  run->set_job_id(job.job_id());
  run->set_job_name(spec.name());
  *run->mutable_command() = CommandOf(spec);
  if (scheduled_time != absl::InfinitePast())
    *run->mutable_scheduled_time() = ToProtoTimestamp(scheduled_time);
  run->set_trigger(trigger);
  if (HasWindow(spec.window())) {
    // The run waits for the window (a gate), and its batches stop when the
    // window closes.
    v1::GateSpec* gate = request.add_gates();
    gate->set_kind(v1::GATE_KIND_MAINTENANCE_WINDOW);
    *gate->mutable_window() = spec.window();
    if (absl::StatusOr<absl::Time> close =
            WindowClose(spec.window(), clock_->Now());
        close.ok() && *close != absl::InfiniteFuture()) {
      *run->mutable_command()->mutable_not_after_time() =
          ToProtoTimestamp(*close);
    }
  }
  return request;
}

void JobManager::StartRun(const std::string& job_id, absl::Time fire,
                          const std::string& trigger, const std::string& actor,
                          Callback<v1::Rollout> done) {
  v1::CreateRolloutRequest request;
  {
    absl::MutexLock lock(&mutex_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end())
      return done(absl::NotFoundError(absl::StrCat("no job ", job_id)));
    request = RunRequest(it->second.job, fire, trigger, actor);
  }
  // Not under the lock: Create may answer at once.
  orchestrator_->Create(
      std::move(request), [this, job_id, fire, trigger, done = std::move(done)](
                              absl::StatusOr<v1::Rollout> run) {
        {
          absl::MutexLock lock(&mutex_);
          auto it = jobs_.find(job_id);
          if (it != jobs_.end()) {
            Entry& entry = it->second;
            if (run.ok()) {
              entry.active_run = run->rollout_id();
              entry.job.set_last_run_id(run->rollout_id());
              entry.job.set_last_run_state(run->state());
            } else if (fire != absl::InfinitePast()) {
              entry.job.set_skipped_runs(entry.job.skipped_runs() + 1);
              entry.job.set_last_skip_reason(
                  absl::StrCat("run not started: ", run.status().message()));
            }
            // The fire time is handled only now that its run is saved (see
            // the header).
            if (fire != absl::InfinitePast())
              *entry.job.mutable_last_scheduled_time() = ToProtoTimestamp(fire);
            if (absl::Status saved = SaveLocked(entry); !saved.ok()) {
              Logger("jobs")->error("could not save job {}: {}", job_id,
                                    saved.ToString());
            }
          }
        }
        if (run.ok()) {
          Logger("jobs")->info("job {}: run {} started ({})", job_id,
                               run->rollout_id(), trigger);
        } else {
          Logger("jobs")->warn("job {}: run not started ({}): {}", job_id,
                               trigger, run.status().ToString());
        }
        done(std::move(run));
      });
}

void JobManager::RunNow(const std::string& job, const std::string& actor,
                        Callback<v1::Rollout> done) {
  std::string job_id;
  {
    absl::MutexLock lock(&mutex_);
    Entry* entry = FindLocked(job);
    if (entry == nullptr)
      return done(absl::NotFoundError(absl::StrCat("no job \"", job, "\"")));
    if (!entry->active_run.empty())
      return done(absl::FailedPreconditionError(absl::StrCat(
          "job ", entry->job.spec().name(), " has run ", entry->active_run,
          " in progress: one run of a job at a time")));
    job_id = entry->job.job_id();
  }
  Logger("audit")->info("{} started a run of job {}", actor, job_id);
  StartRun(job_id, absl::InfinitePast(), absl::StrCat("run now by ", actor),
           actor, std::move(done));
}

JobManager::Counts JobManager::CountJobs() {
  Counts counts;
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, entry] : jobs_) {
    ++(entry.job.enabled() ? counts.enabled : counts.disabled);
    if (!entry.active_run.empty()) ++counts.running;
  }
  return counts;
}

void JobManager::Tick() {
  const absl::Time now = clock_->Now();
  struct Start {
    std::string job_id;
    absl::Time fire;
    std::string trigger;
  };
  std::vector<Start> starts;
  {
    absl::MutexLock lock(&mutex_);
    for (auto& [id, entry] : jobs_) {
      v1::Job& job = entry.job;
      if (!job.enabled() || !job.has_next_run_time() ||
          FromProtoTimestamp(job.next_run_time()) > now)
        continue;
      const ScheduleDecision decision = Decide(
          job, *entry.schedule, FromProtoTimestamp(job.last_scheduled_time()),
          now, entry.active_run);
      *job.mutable_next_run_time() = ToProtoTimestamp(decision.next_run_time);
      if (!decision.due) continue;
      if (decision.skipped > 0) {
        job.set_skipped_runs(job.skipped_runs() + decision.skipped);
        job.set_last_skip_reason(decision.skip_reason);
        Logger("jobs")->warn("job {} ({}): {}", id, job.spec().name(),
                             decision.skip_reason);
      }
      if (decision.start) {
        // last_scheduled_time moves when the run is saved (StartRun).
        starts.push_back({id, decision.scheduled_time, decision.trigger});
      } else {
        *job.mutable_last_scheduled_time() =
            ToProtoTimestamp(decision.last_scheduled_time);
      }
      if (absl::Status saved = SaveLocked(entry); !saved.ok()) {
        Logger("jobs")->error("could not save job {}: {}", id,
                              saved.ToString());
      }
    }
  }
  for (Start& start : starts) {
    StartRun(start.job_id, start.fire, start.trigger, "scheduler",
             [](absl::StatusOr<v1::Rollout>) {});
  }
}

void JobManager::OnCommitted(const v1::Rollout& rollout) {
  absl::MutexLock lock(&mutex_);
  auto it = jobs_.find(rollout.operation().job_run().job_id());
  if (it == jobs_.end()) return;
  Entry& entry = it->second;
  if (entry.job.last_run_id() == rollout.rollout_id())
    entry.job.set_last_run_state(rollout.state());
  if (entry.active_run == rollout.rollout_id() &&
      !IsActiveRolloutState(rollout.state()))
    entry.active_run.clear();
  if (entry.active_run.empty() && IsActiveRolloutState(rollout.state()))
    entry.active_run = rollout.rollout_id();  // A retry of a finished run.
}

void JobManager::ListRuns(const v1::ListJobRunsRequest& request,
                          Callback<v1::ListRolloutsResponse> done) {
  std::string job_id;
  {
    absl::MutexLock lock(&mutex_);
    Entry* entry = FindLocked(request.job());
    if (entry == nullptr)
      return done(
          absl::NotFoundError(absl::StrCat("no job \"", request.job(), "\"")));
    job_id = entry->job.job_id();
  }
  v1::ListRolloutsRequest list;
  list.set_job_id(job_id);
  list.set_page_size(request.page_size());
  list.set_page_token(request.page_token());
  orchestrator_->List(list, std::move(done));
}

void JobManager::History(const v1::GetDatabaseJobHistoryRequest& request,
                         Callback<v1::DatabaseJobHistory> done) {
  if (request.database_id().empty())
    return done(absl::InvalidArgumentError("database_id: required"));
  if (request.limit() < 0)
    return done(absl::InvalidArgumentError("limit must not be negative"));
  // Waits on the orchestrator: on the scheduler thread, not a gRPC one.
  Post([this, request, done = std::move(done)] {
    const int limit = request.limit() == 0 ? 50 : request.limit();
    v1::DatabaseJobHistory history;
    history.set_database_id(request.database_id());
    v1::ListRolloutsRequest list;
    list.set_database_id(request.database_id());
    list.set_page_size(100);
    while (history.runs_size() < limit) {
      absl::StatusOr<v1::ListRolloutsResponse> page =
          RolloutOrchestrator::Await<v1::ListRolloutsResponse>(
              [&](RolloutOrchestrator::Callback<v1::ListRolloutsResponse> cb) {
                orchestrator_->List(list, std::move(cb));
              });
      if (!page.ok()) return done(page.status());
      for (const v1::Rollout& header : page->rollouts()) {
        if (!header.operation().has_job_run()) continue;
        if (history.runs_size() >= limit) break;
        absl::StatusOr<v1::Rollout> run =
            RolloutOrchestrator::Await<v1::Rollout>(
                [&](RolloutOrchestrator::Callback<v1::Rollout> cb) {
                  orchestrator_->Get(header.rollout_id(), std::move(cb));
                });
        if (!run.ok()) continue;
        for (const v1::RolloutTarget& target : run->targets()) {
          if (target.database_id() != request.database_id()) continue;
          v1::DatabaseJobRun* entry = history.add_runs();
          entry->set_run_id(run->rollout_id());
          entry->set_job_id(run->operation().job_run().job_id());
          entry->set_job_name(run->operation().job_run().job_name());
          entry->set_operation(
              run->operation().job_run().command().operation());
          entry->set_state(target.state());
          entry->set_rows_done(target.rows_done());
          entry->set_rows_left(target.rows_left());
          entry->set_batches(target.batches());
          *entry->mutable_started_time() = target.started_time();
          *entry->mutable_finished_time() = target.finished_time();
          entry->set_error(target.error());
        }
      }
      if (page->next_page_token().empty()) break;
      list.set_page_token(page->next_page_token());
    }
    done(std::move(history));
  });
}

}  // namespace ecliptix::server
