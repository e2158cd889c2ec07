#include "server/jobs/job_schedule.h"

#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

absl::Time Utc(int y, int m, int d, int hh, int mm, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss),
                         absl::UTCTimeZone());
}

v1::Job JobWith(v1::MissedRunPolicy policy) {
  v1::Job job;
  job.mutable_spec()->set_missed_run_policy(policy);
  return job;
}

CronSchedule Daily() { return *CronSchedule::Parse("0 2 * * *", "UTC"); }

TEST(JobScheduleTest, NothingDueBeforeTheFireTime) {
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_UNSPECIFIED), Daily(),
             Utc(2026, 11, 30, 0, 30), Utc(2026, 11, 30, 1, 59), "");
  EXPECT_FALSE(decision.due);
  EXPECT_FALSE(decision.start);
  EXPECT_EQ(decision.next_run_time, Utc(2026, 11, 30, 2, 0));
}

TEST(JobScheduleTest, OnTimeRunStartsForItsFireTime) {
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_SKIP), Daily(),
             Utc(2026, 11, 29, 2, 0), Utc(2026, 11, 30, 2, 0, 3), "");
  EXPECT_TRUE(decision.start);
  EXPECT_EQ(decision.scheduled_time, Utc(2026, 11, 30, 2, 0));
  EXPECT_EQ(decision.trigger, "schedule");
  EXPECT_EQ(decision.skipped, 0);
  EXPECT_EQ(decision.next_run_time, Utc(2026, 12, 1, 2, 0));
}

TEST(JobScheduleTest, ActiveRunSkipsTheFireTime) {
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_RUN_ONCE), Daily(),
             Utc(2026, 11, 29, 2, 0), Utc(2026, 11, 30, 2, 0, 1), "r-7");
  EXPECT_TRUE(decision.due);
  EXPECT_FALSE(decision.start);
  EXPECT_EQ(decision.skipped, 1);
  EXPECT_THAT(decision.skip_reason, HasSubstr("previous run r-7 still active"));
  EXPECT_EQ(decision.last_scheduled_time, Utc(2026, 11, 30, 2, 0));
}

TEST(JobScheduleTest, MissedRunsRunOnceByDefault) {
  // The server was down from before the 27th's run until the 30th, 10:00.
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_UNSPECIFIED), Daily(),
             Utc(2026, 11, 27, 1, 0), Utc(2026, 11, 30, 10, 0), "");
  EXPECT_TRUE(decision.start);
  EXPECT_EQ(decision.scheduled_time, Utc(2026, 11, 30, 2, 0));
  EXPECT_THAT(decision.trigger,
              HasSubstr("missed run (4 fire time(s) while the server was "
                        "down"));
  EXPECT_EQ(decision.skipped, 0);
  EXPECT_EQ(decision.next_run_time, Utc(2026, 12, 1, 2, 0));
}

TEST(JobScheduleTest, MissedRunsSkippedUnderTheSkipPolicy) {
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_SKIP), Daily(),
             Utc(2026, 11, 27, 1, 0), Utc(2026, 11, 30, 10, 0), "");
  EXPECT_TRUE(decision.due);
  EXPECT_FALSE(decision.start);
  EXPECT_EQ(decision.skipped, 4);
  EXPECT_THAT(decision.skip_reason, HasSubstr("skip policy"));
  EXPECT_EQ(decision.last_scheduled_time, Utc(2026, 11, 30, 2, 0));
  EXPECT_EQ(decision.next_run_time, Utc(2026, 12, 1, 2, 0));
}

TEST(JobScheduleTest, OnTimeRunAfterMissedOnes) {
  const CronSchedule hourly = *CronSchedule::Parse("0 * * * *", "UTC");
  const absl::Time since = Utc(2026, 11, 30, 6, 30);
  const absl::Time now = Utc(2026, 11, 30, 9, 0, 10);
  const ScheduleDecision catch_up =
      Decide(JobWith(v1::MISSED_RUN_POLICY_RUN_ONCE), hourly, since, now, "");
  EXPECT_TRUE(catch_up.start);
  EXPECT_EQ(catch_up.scheduled_time, Utc(2026, 11, 30, 9, 0));
  EXPECT_THAT(catch_up.trigger, HasSubstr("catching up 2 fire time(s)"));
  const ScheduleDecision skip =
      Decide(JobWith(v1::MISSED_RUN_POLICY_SKIP), hourly, since, now, "");
  EXPECT_TRUE(skip.start);
  EXPECT_EQ(skip.trigger, "schedule");
  EXPECT_EQ(skip.skipped, 2);
}

TEST(JobScheduleTest, FireTimesFollowTheZone) {
  // 02:00 in Berlin is 01:00 UTC in winter.
  const CronSchedule berlin =
      *CronSchedule::Parse("0 2 * * *", "Europe/Berlin");
  const ScheduleDecision decision =
      Decide(JobWith(v1::MISSED_RUN_POLICY_SKIP), berlin,
             Utc(2026, 11, 30, 0, 0), Utc(2026, 11, 30, 1, 0, 5), "");
  EXPECT_TRUE(decision.start);
  EXPECT_EQ(decision.scheduled_time, Utc(2026, 11, 30, 1, 0));
}

TEST(JobScheduleTest, WindowCloseOfTheOpenOrNextWindow) {
  v1::MaintenanceWindow window;
  window.set_time_zone("Europe/Berlin");
  window.set_start("01:00");
  window.set_end("05:00");
  // Inside: 02:00 Berlin (01:00 UTC) closes at 05:00 Berlin.
  EXPECT_EQ(*WindowClose(window, Utc(2026, 11, 30, 1, 0)),
            Utc(2026, 11, 30, 4, 0));
  // Outside: the next window, the following night.
  EXPECT_EQ(*WindowClose(window, Utc(2026, 11, 30, 12, 0)),
            Utc(2026, 12, 1, 4, 0));
  v1::MaintenanceWindow overnight;
  overnight.set_start("22:00");
  overnight.set_end("02:00");
  EXPECT_EQ(*WindowClose(overnight, Utc(2026, 11, 30, 23, 30)),
            Utc(2026, 12, 1, 2, 0));
  EXPECT_EQ(*WindowClose(v1::MaintenanceWindow(), Utc(2026, 11, 30, 1, 0)),
            absl::InfiniteFuture());
  v1::MaintenanceWindow bad;
  bad.set_start("25:00");
  bad.set_end("02:00");
  EXPECT_EQ(WindowClose(bad, Utc(2026, 11, 30, 1, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ecliptix::server
