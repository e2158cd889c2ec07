#include "client/ctl_job.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/ctl_format.h"
#include "client/ctl_rollout.h"
#include "client/ctl_rollout_view.h"
#include "common/rollout_names.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

absl::Status PrintJson(CommandRuntime& runtime,
                       const google::protobuf::Message& message) {
  ASSIGN_OR_RETURN(std::string json, MessageJson(message));
  runtime.out() << json << "\n";
  return absl::OkStatus();
}

std::string TimeText(const google::protobuf::Timestamp& timestamp,
                     CommandRuntime& runtime) {
  const absl::Time time = ToTime(timestamp);
  if (time == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", time, runtime.time_zone());
}

std::string Schedule(const v1::JobSpec& spec) {
  return absl::StrCat(spec.schedule(), " ",
                      spec.time_zone().empty() ? "UTC" : spec.time_zone());
}

std::string Where(const v1::JobSpec& spec) {
  return spec.all_databases() ? "(all)" : spec.selector();
}

std::string LastRun(const v1::Job& job) {
  if (job.last_run_id().empty()) return "-";
  return absl::StrCat(job.last_run_id(), " ",
                      RolloutStateName(job.last_run_state()));
}

std::string Rows(int64_t rows) { return rows < 0 ? "?" : absl::StrCat(rows); }

absl::StatusOr<absl::Duration> ParseDurationFlag(const Invocation& invocation,
                                                 absl::string_view name) {
  const std::string text = invocation.Flag(name);
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) ||
      duration < absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return CommandUsageError(absl::StrCat(
        "flag --", name, " wants a duration such as 500ms, 2s or 1m, got \"",
        text, "\""));
  }
  return duration;
}

absl::Status JobCreate(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  const v1::JobTemplate* template_job = nullptr;
  v1::GetBundleResponse bundle;
  if (!invocation.Flag("template").empty()) {
    if (invocation.Flag("bundle").empty()) {
      return CommandUsageError(
          "flag --template names a job template of a bundle: give --bundle "
          "too");
    }
    v1::GetBundleRequest request;
    const std::string name = invocation.Flag("bundle");
    if (name.find('@') != std::string::npos) {
      request.set_name_version(name);
    } else {
      request.set_bundle_id(name);
    }
    ASSIGN_OR_RETURN(bundle, client->GetBundle(request));
    std::vector<std::string> names;
    for (const v1::JobTemplate& candidate : bundle.info().manifest().jobs()) {
      names.push_back(candidate.name());
      if (candidate.name() == invocation.Flag("template"))
        template_job = &candidate;
    }
    if (template_job == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "bundle ", bundle.info().name(), "@", bundle.info().version(),
          " has no job template \"", invocation.Flag("template"), "\"",
          names.empty()
              ? " (it declares none)"
              : absl::StrCat("; it has ", absl::StrJoin(names, ", "))));
    }
  }
  ASSIGN_OR_RETURN(v1::JobSpec spec,
                   JobSpecFromFlags(invocation, template_job));
  v1::CreateJobRequest request;
  *request.mutable_spec() = std::move(spec);
  request.set_requested_by(runtime.user());
  ASSIGN_OR_RETURN(v1::Job job, client->CreateJob(request));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, job);
  runtime.out() << "job " << job.spec().name() << " (" << job.job_id()
                << ") created: " << job.spec().operation() << " at "
                << Schedule(job.spec()) << " on " << Where(job.spec())
                << "; next run " << TimeText(job.next_run_time(), runtime)
                << "\n";
  return absl::OkStatus();
}

absl::Status JobList(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::ListJobsResponse jobs, client->ListJobs());
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, jobs);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ID", "OPERATION", "SCHEDULE", "DATABASES", "ENABLED",
       "NEXT RUN", "LAST RUN", "SKIPPED"}};
  for (const v1::Job& job : jobs.jobs()) {
    rows.push_back(
        {job.spec().name(), job.job_id(), job.spec().operation(),
         Schedule(job.spec()), Where(job.spec()), job.enabled() ? "yes" : "no",
         job.enabled() ? TimeText(job.next_run_time(), runtime) : "-",
         LastRun(job), absl::StrCat(job.skipped_runs())});
  }
  runtime.out() << AlignedTable(rows);
  return absl::OkStatus();
}

absl::Status JobGet(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Job job, client->GetJob(invocation.args[0]));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, job);
  const v1::JobSpec& spec = job.spec();
  std::vector<std::string> arguments;
  for (const auto& [key, value] : spec.arguments())
    arguments.push_back(absl::StrCat(key, "=", value));
  std::sort(arguments.begin(), arguments.end());
  std::ostream& out = runtime.out();
  out << "Job:            " << spec.name() << " (" << job.job_id() << ")\n";
  if (!spec.description().empty())
    out << "Description:    " << spec.description() << "\n";
  out << "Operation:      " << spec.operation() << "("
      << absl::StrJoin(arguments, ", ") << ") of bundle " << job.bundle_id()
      << "\n"
      << "Schedule:       " << Schedule(spec) << "\n"
      << "Databases:      " << Where(spec) << "\n"
      << "Enabled:        " << (job.enabled() ? "yes" : "no") << "\n"
      << "Next run:       "
      << (job.enabled() ? TimeText(job.next_run_time(), runtime) : "-") << "\n"
      << "Last run:       " << LastRun(job) << "\n"
      << "Missed runs:    "
      << (spec.missed_run_policy() == v1::MISSED_RUN_POLICY_SKIP ? "skip"
                                                                 : "run once")
      << "\n";
  if (spec.has_window()) {
    out << "Window:         " << spec.window().start() << "-"
        << spec.window().end() << " "
        << (spec.window().time_zone().empty() ? "UTC"
                                              : spec.window().time_zone())
        << (spec.window().days().empty()
                ? ""
                : absl::StrCat(" ", absl::StrJoin(spec.window().days(), ",")))
        << "\n";
  }
  if (spec.has_pause_between_batches() || spec.max_batches() > 0) {
    out << "Batches:        pause "
        << absl::FormatDuration(
               absl::Seconds(spec.pause_between_batches().seconds()) +
               absl::Nanoseconds(spec.pause_between_batches().nanos()))
        << (spec.max_batches() > 0
                ? absl::StrCat(", at most ", spec.max_batches(), " per run")
                : "")
        << "\n";
  }
  out << "Skipped runs:   " << job.skipped_runs();
  if (!job.last_skip_reason().empty())
    out << " (last: " << job.last_skip_reason() << ")";
  out << "\nCreated:        " << TimeText(job.create_time(), runtime) << " by "
      << job.created_by() << "\n";
  return absl::OkStatus();
}

absl::Status JobRun(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::RunJobNowRequest request;
  request.set_job(invocation.args[0]);
  request.set_actor(runtime.user());
  ASSIGN_OR_RETURN(v1::Rollout run, client->RunJobNow(request));
  if (invocation.BoolFlag("watch"))
    return WatchRolloutUntilEnd(run.rollout_id(), invocation, runtime);
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, run);
  runtime.out() << "run " << run.rollout_id() << " of job "
                << invocation.args[0] << " started on " << run.targets_size()
                << " database(s); follow it with `ecliptixctl rollout watch "
                << run.rollout_id() << "`\n";
  return absl::OkStatus();
}

absl::Status JobRuns(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::ListJobRunsRequest request;
  request.set_job(invocation.args[0]);
  request.set_page_size(
      static_cast<int32_t>(invocation.CountFlag("limit", 20)));
  ASSIGN_OR_RETURN(v1::ListRolloutsResponse runs, client->ListJobRuns(request));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, runs);
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "STATE", "TRIGGER", "SCHEDULED", "CREATED", "FINISHED"}};
  for (const v1::Rollout& run : runs.rollouts()) {
    const v1::JobRunSpec& spec = run.operation().job_run();
    rows.push_back({run.rollout_id(), RolloutStateName(run.state()),
                    spec.trigger(), TimeText(spec.scheduled_time(), runtime),
                    TimeText(run.create_time(), runtime),
                    TimeText(run.finish_time(), runtime)});
  }
  runtime.out() << AlignedTable(rows);
  return absl::OkStatus();
}

absl::Status JobHistory(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::GetDatabaseJobHistoryRequest request;
  request.set_database_id(invocation.args[0]);
  request.set_limit(static_cast<int32_t>(invocation.CountFlag("limit", 20)));
  ASSIGN_OR_RETURN(v1::DatabaseJobHistory history,
                   client->GetDatabaseJobHistory(request));
  if (invocation.output == OutputFormat::kJson)
    return PrintJson(runtime, history);
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "JOB", "OPERATION", "STATE", "ROWS DONE", "ROWS LEFT", "BATCHES",
       "STARTED", "ERROR"}};
  for (const v1::DatabaseJobRun& run : history.runs()) {
    rows.push_back({run.run_id(), run.job_name(), run.operation(),
                    TargetStateName(run.state()), Rows(run.rows_done()),
                    run.batches() == 0 ? "-" : Rows(run.rows_left()),
                    absl::StrCat(run.batches()),
                    TimeText(run.started_time(), runtime), run.error()});
  }
  runtime.out() << AlignedTable(rows);
  return absl::OkStatus();
}

absl::Status SetEnabled(const Invocation& invocation, CommandRuntime& runtime,
                        bool enabled) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::SetJobEnabledRequest request;
  request.set_job(invocation.args[0]);
  request.set_enabled(enabled);
  request.set_actor(runtime.user());
  ASSIGN_OR_RETURN(v1::Job job, client->SetJobEnabled(request));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, job);
  runtime.out() << "job " << job.spec().name() << " "
                << (enabled
                        ? absl::StrCat("enabled; next run ",
                                       TimeText(job.next_run_time(), runtime))
                        : std::string("disabled"))
                << "\n";
  return absl::OkStatus();
}

absl::Status JobEnable(const Invocation& invocation, CommandRuntime& runtime) {
  return SetEnabled(invocation, runtime, true);
}

absl::Status JobDisable(const Invocation& invocation, CommandRuntime& runtime) {
  return SetEnabled(invocation, runtime, false);
}

absl::Status JobDelete(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::DeleteJobRequest request;
  request.set_job(invocation.args[0]);
  request.set_actor(runtime.user());
  ASSIGN_OR_RETURN(v1::Job job, client->DeleteJob(request));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, job);
  runtime.out() << "job " << job.spec().name() << " (" << job.job_id()
                << ") deleted; its runs stay in `ecliptixctl rollout list`\n";
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> JobSpecFromFlags(
    const Invocation& invocation, const v1::JobTemplate* template_job) {
  v1::JobSpec spec;
  spec.set_name(invocation.args[0]);
  spec.set_bundle(invocation.Flag("bundle"));
  spec.set_description(invocation.Flag("description"));
  if (template_job != nullptr) {
    spec.set_operation(template_job->operation());
    *spec.mutable_arguments() = template_job->arguments();
    spec.set_schedule(template_job->schedule());
    if (spec.description().empty())
      spec.set_description(template_job->description());
  }
  if (!invocation.Flag("operation").empty())
    spec.set_operation(invocation.Flag("operation"));
  if (!invocation.Flag("schedule").empty())
    spec.set_schedule(invocation.Flag("schedule"));
  spec.set_time_zone(invocation.Flag("time_zone"));
  for (absl::string_view argument :
       absl::StrSplit(invocation.Flag("arg"), ',', absl::SkipEmpty())) {
    const size_t equals = argument.find('=');
    if (equals == absl::string_view::npos || equals == 0) {
      return CommandUsageError(absl::StrCat(
          "flag --arg wants NAME=VALUE, e.g. --arg=RetentionDays=365, got \"",
          argument, "\""));
    }
    (*spec.mutable_arguments())[std::string(argument.substr(0, equals))] =
        std::string(argument.substr(equals + 1));
  }
  spec.set_selector(invocation.Flag("selector"));
  spec.set_all_databases(invocation.BoolFlag("all"));
  if (spec.selector().empty() && !spec.all_databases()) {
    return CommandUsageError(
        "give --selector (e.g. --selector=env=prod) or --all for every "
        "database");
  }
  if (!spec.selector().empty() && spec.all_databases()) {
    return CommandUsageError("--selector and --all exclude each other");
  }
  const std::string missed = invocation.Flag("missed", "run-once");
  if (missed == "skip") {
    spec.set_missed_run_policy(v1::MISSED_RUN_POLICY_SKIP);
  } else if (missed == "run-once") {
    spec.set_missed_run_policy(v1::MISSED_RUN_POLICY_RUN_ONCE);
  } else {
    return CommandUsageError(absl::StrCat(
        "flag --missed is skip or run-once, not \"", missed, "\""));
  }
  if (!invocation.Flag("window").empty()) {
    ASSIGN_OR_RETURN(*spec.mutable_window(),
                     ParseWindowFlag(invocation.Flag("window")));
  }
  if (!invocation.Flag("batch_pause").empty()) {
    ASSIGN_OR_RETURN(absl::Duration pause,
                     ParseDurationFlag(invocation, "batch_pause"));
    spec.mutable_pause_between_batches()->set_seconds(
        absl::IDivDuration(pause, absl::Seconds(1), &pause));
    spec.mutable_pause_between_batches()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(pause)));
  }
  spec.set_max_batches(
      static_cast<int32_t>(invocation.CountFlag("max_batches", 0)));
  v1::Strategy* strategy = spec.mutable_strategy();
  for (absl::string_view wave :
       absl::StrSplit(invocation.Flag("waves"), ',', absl::SkipEmpty()))
    strategy->add_waves(std::string(wave));
  strategy->set_max_parallel(
      static_cast<int32_t>(invocation.CountFlag("max_parallel", 0)));
  strategy->set_failure_budget(invocation.Flag("failure_budget"));
  return spec;
}

NounSpec JobNoun() {
  const std::vector<FlagSpec> create_flags = {
      {"bundle", Kind::kString, "BUNDLE",
       "name@version, id or unique prefix (required)"},
      {"template", Kind::kString, "NAME",
       "start from the bundle's job template NAME (e.g. cleanup-audit-logs): "
       "its operation, arguments and schedule, which other flags override"},
      {"operation", Kind::kString, "NAME",
       "the bundle operation to run, e.g. CleanupAuditLogs"},
      {"arg", Kind::kString, "NAME=VALUE",
       "an argument of the operation (repeatable)", true},
      {"schedule", Kind::kString, "CRON",
       "cron expression: minute hour day-of-month month day-of-week, e.g. "
       "'0 2 * * *'; @daily, @weekly ... too"},
      {"time_zone", Kind::kString, "ZONE",
       "IANA time zone of the schedule, e.g. Europe/Berlin (default UTC)"},
      {"selector", Kind::kString, "SELECTOR", kSelectorOrAllHelp},
      {"all", Kind::kBool, "", "every database of the fleet (no --selector)"},
      {"window", Kind::kString, "[ZONE,]HH:MM-HH:MM[,DAYS]",
       "runs wait for this maintenance window and start no batch after it "
       "closes"},
      {"missed", Kind::kString, "skip|run-once",
       "fire times missed while the server was down: skip them, or run once "
       "to catch up (default run-once)"},
      {"batch_pause", Kind::kString, "DURATION",
       "pause between two batches on a database, e.g. 500ms"},
      {"max_batches", Kind::kCount, "N",
       "at most N batches per database and run (0: until nothing is left)"},
      {"waves", Kind::kString, "SIZES",
       "waves of each run, e.g. 1,25%,100% (default one wave)"},
      {"max_parallel", Kind::kCount, "N",
       "databases of a wave at once (0: all)"},
      {"failure_budget", Kind::kString, "N|P%",
       "failures before a run stops (default 100%: every database is tried)"},
      {"description", Kind::kString, "TEXT", "shown to people"},
  };
  return {
      "job",
      "Maintenance jobs: a bundle operation on a cron schedule over a "
      "selector (the runbook's daily cleanups, weekly analysis).",
      {
          {"create",
           {"NAME"},
           "Create a job",
           "Each run is a fleet operation (a rollout of kind job): `rollout "
           "list`, `rollout watch`, `rollout pause|abort` work on it. Batch "
           "operations (cleanups) run again and again on each database until "
           "nothing is left, with one progress event per batch.\n"
           "Examples:\n"
           "  ecliptixctl job create audit-cleanup "
           "--bundle=ecliptix-production-"
           "enhancements@1.0.0 --template=cleanup-audit-logs --all "
           "--time_zone=Europe/Berlin\n"
           "  ecliptixctl job create contexts --bundle=B "
           "--operation=CleanupExpiredContexts --arg=BatchSize=1000 "
           "--arg=OlderThanHours=48 --schedule='0 2 * * *' "
           "--selector=env=prod --window=Europe/Berlin,01:00-05:00\n",
           create_flags,
           JobCreate},
          {"list", {}, "List jobs", "", {}, JobList},
          {"get", {"JOB"}, "Show one job (by name or id)", "", {}, JobGet},
          {"run",
           {"JOB"},
           "Start a run now, whatever the schedule",
           "Refused while a run of the job is active. With --watch, follows "
           "the run until it ends; the exit code is 0 only if it succeeded.\n",
           {{"watch", Kind::kBool, "", "follow the run until it ends"}},
           JobRun},
          {"runs",
           {"JOB"},
           "List the runs of a job, newest first",
           "",
           {{"limit", Kind::kCount, "N", "at most N runs (default 20)"}},
           JobRuns},
          {"history",
           {"DATABASE_ID"},
           "What the jobs did on one database, newest first",
           "Rows done (deleted) and left, batches and outcome per run.\n",
           {{"limit", Kind::kCount, "N", "at most N runs (default 20)"}},
           JobHistory},
          {"enable",
           {"JOB"},
           "Start the schedule again",
           "Fire times while the job was disabled are not run.\n",
           {},
           JobEnable},
          {"disable", {"JOB"}, "Stop the schedule", "", {}, JobDisable},
          {"delete",
           {"JOB"},
           "Delete a job",
           "Refused while a run is active; its runs stay in the rollout "
           "history.\n",
           {},
           JobDelete},
      }};
}

}  // namespace ecliptix::client::ctl
