// What the scheduler does with a job at a given moment: which fire times are
// due, whether a run starts (and for which fire time, with which trigger),
// what is skipped and why, and when the job fires next; and when a
// maintenance window closes. Pure functions of the job, its schedule and the
// time: the scheduler (job_manager.h) only carries them out.
#ifndef ECLIPTIX_SERVER_JOBS_JOB_SCHEDULE_H_
#define ECLIPTIX_SERVER_JOBS_JOB_SCHEDULE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/job_service.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "server/jobs/cron.h"

namespace ecliptix::server {

// A fire time later than this when the scheduler looks is "missed" (the
// server was down, or stopped): the missed-run policy decides.
inline constexpr absl::Duration kMissedRunGrace = absl::Minutes(1);

struct ScheduleDecision {
  // Nothing is due yet.
  bool due = false;
  // A run starts now for this fire time (the latest one due).
  bool start = false;
  absl::Time scheduled_time = absl::InfinitePast();
  // Why it starts: "schedule", or "missed run (N fire times while the server
  // was down, the last at ...)".
  std::string trigger;
  // Fire times not run, and why (the latest such reason).
  int64_t skipped = 0;
  std::string skip_reason;
  // The last fire time handled (run or skipped): Job.last_scheduled_time.
  absl::Time last_scheduled_time = absl::InfinitePast();
  // The next fire time after `now`.
  absl::Time next_run_time = absl::InfiniteFuture();
};

// What to do with `job` at `now`. `since` is the last fire time handled (or
// the job's creation or enabling). Fire times in (since, now] are due:
//   - none: nothing (next_run_time is when to look again);
//   - a previous run still active: every due fire time is skipped ("previous
//     run r-N still active");
//   - the latest within kMissedRunGrace of now: one run for it; earlier ones
//     (missed) are skipped under MISSED_RUN_POLICY_SKIP and folded into this
//     run under RUN_ONCE (the default);
//   - all missed: RUN_ONCE starts one run for them (trigger says how many),
//     SKIP skips them all.
ScheduleDecision Decide(const fleet::v1::Job& job, const CronSchedule& schedule,
                        absl::Time since, absl::Time now,
                        const std::string& active_run_id);

// The end of the window's occurrence that is open at `now`, or else of the
// next one to open (to the minute); InfiniteFuture for an unset window.
// INVALID_ARGUMENT for a malformed window.
absl::StatusOr<absl::Time> WindowClose(
    const fleet::v1::MaintenanceWindow& window, absl::Time now);

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_JOBS_JOB_SCHEDULE_H_
