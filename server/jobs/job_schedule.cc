#include "server/jobs/job_schedule.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// More fire times than this in one look are counted, not listed.
constexpr int kMaxDueFires = 100000;

std::string FormatFire(absl::Time time, const CronSchedule& schedule) {
  return absl::FormatTime("%Y-%m-%d %H:%M %Z", time, schedule.zone());
}

}  // namespace

ScheduleDecision Decide(const v1::Job& job, const CronSchedule& schedule,
                        absl::Time since, absl::Time now,
                        const std::string& active_run_id) {
  ScheduleDecision decision;
  decision.last_scheduled_time = since;
  decision.next_run_time = schedule.NextAfter(std::max(since, now));
  const std::vector<absl::Time> due =
      schedule.FiresBetween(since, now, kMaxDueFires);
  if (due.empty()) return decision;
  decision.due = true;
  decision.last_scheduled_time = due.back();
  decision.next_run_time = schedule.NextAfter(now);
  const int64_t count = static_cast<int64_t>(due.size());
  if (!active_run_id.empty()) {
    decision.skipped = count;
    decision.skip_reason =
        absl::StrCat("previous run ", active_run_id, " still active at ",
                     FormatFire(due.back(), schedule));
    return decision;
  }
  const bool latest_on_time = now - due.back() <= kMissedRunGrace;
  const bool skip_missed =
      job.spec().missed_run_policy() == v1::MISSED_RUN_POLICY_SKIP;
  const int64_t missed = latest_on_time ? count - 1 : count;
  if (latest_on_time) {
    decision.start = true;
    decision.scheduled_time = due.back();
    decision.trigger = "schedule";
    if (missed > 0 && skip_missed) {
      decision.skipped = missed;
      decision.skip_reason =
          absl::StrCat(missed,
                       " fire time(s) missed while the server was down (skip "
                       "policy), the last at ",
                       FormatFire(due[due.size() - 2], schedule));
    } else if (missed > 0) {
      decision.trigger =
          absl::StrCat("schedule, catching up ", missed,
                       " fire time(s) missed while the server was down");
    }
    return decision;
  }
  if (skip_missed) {
    decision.skipped = missed;
    decision.skip_reason =
        absl::StrCat(missed,
                     " fire time(s) missed while the server was down (skip "
                     "policy), the last at ",
                     FormatFire(due.back(), schedule));
    return decision;
  }
  decision.start = true;
  decision.scheduled_time = due.back();
  decision.trigger =
      absl::StrCat("missed run (", missed,
                   " fire time(s) while the server was down, the "
                   "last at ",
                   FormatFire(due.back(), schedule), ")");
  return decision;
}

absl::StatusOr<absl::Time> WindowClose(const v1::MaintenanceWindow& window,
                                       absl::Time now) {
  if (window.start().empty() && window.end().empty())
    return absl::InfiniteFuture();
  // Minute steps: a window opens at least once a week, so at most two
  // weeks of minutes are looked at, once per run.
  absl::Time t = absl::FromUnixSeconds(absl::ToUnixSeconds(now) / 60 * 60);
  const absl::Time limit = now + absl::Hours(24 * 15);
  bool opened = false;
  for (; t < limit; t += absl::Minutes(1)) {
    absl::StatusOr<WindowCheck> check = CheckWindow(window, t);
    if (!check.ok()) return check.status();
    if (check->inside) {
      opened = true;
    } else if (opened) {
      return t;
    }
  }
  return absl::InfiniteFuture();
}

}  // namespace ecliptix::server
