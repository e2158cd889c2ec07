#include "server/jobs/cron.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::server {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::SizeIs;

CronSchedule MustParse(absl::string_view expression,
                       absl::string_view time_zone = "UTC") {
  absl::StatusOr<CronSchedule> schedule =
      CronSchedule::Parse(expression, time_zone);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  if (!schedule.ok()) std::abort();
  return *std::move(schedule);
}

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone(name, &zone)) << name;
  return zone;
}

absl::Time Utc(int year, int month, int day, int hour = 0, int minute = 0,
               int second = 0) {
  return absl::FromCivil(
      absl::CivilSecond(year, month, day, hour, minute, second),
      absl::UTCTimeZone());
}

// Unambiguous local times only (the tests build DST cases from UTC).
absl::Time Local(const CronSchedule& schedule, int year, int month, int day,
                 int hour = 0, int minute = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, 0),
                         schedule.zone());
}

// Fire times formatted in the schedule's zone with their UTC offset, so an
// expectation shows both the wall clock and the instant.
std::vector<std::string> Format(const CronSchedule& schedule,
                                const std::vector<absl::Time>& times) {
  std::vector<std::string> out;
  for (absl::Time t : times) {
    out.push_back(absl::FormatTime("%Y-%m-%d %H:%M %z", t, schedule.zone()));
  }
  return out;
}

std::string Format(const CronSchedule& schedule, absl::Time t) {
  return Format(schedule, std::vector<absl::Time>{t})[0];
}

// The next `count` fires after `after`, by chaining NextAfter.
std::vector<std::string> Next(const CronSchedule& schedule, absl::Time after,
                              int count) {
  std::vector<absl::Time> fires;
  for (int i = 0; i < count; ++i) {
    after = schedule.NextAfter(after);
    fires.push_back(after);
  }
  return Format(schedule, fires);
}

// "HH:MM" of every fire on 2026-01-05 (a Monday) in UTC.
std::vector<std::string> FiresOnOneDay(absl::string_view expression) {
  const CronSchedule schedule = MustParse(expression);
  std::vector<std::string> out;
  for (absl::Time t : schedule.FiresBetween(
           Utc(2026, 1, 4, 23, 59, 59), Utc(2026, 1, 5, 23, 59, 59), 10000)) {
    out.push_back(absl::FormatTime("%H:%M", t, absl::UTCTimeZone()));
  }
  return out;
}

// "MM-DD" of every fire in 2026 (UTC).
std::vector<std::string> DaysIn2026(absl::string_view expression) {
  const CronSchedule schedule = MustParse(expression);
  std::vector<std::string> out;
  for (absl::Time t :
       schedule.FiresBetween(Utc(2025, 12, 31, 23, 59, 59),
                             Utc(2026, 12, 31, 23, 59, 59), 100000)) {
    out.push_back(absl::FormatTime("%m-%d", t, absl::UTCTimeZone()));
  }
  return out;
}

// ---- Field forms --------------------------------------------------------

TEST(CronFieldTest, StarFiresEveryMinute) {
  const CronSchedule schedule = MustParse("* * * * *");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 1, 5, 10, 0, 30)),
            Utc(2026, 1, 5, 10, 1));
  EXPECT_THAT(FiresOnOneDay("* * * * *"), SizeIs(24 * 60));
}

TEST(CronFieldTest, Number) {
  EXPECT_THAT(FiresOnOneDay("5 * * * *"), SizeIs(24));
  EXPECT_THAT(FiresOnOneDay("5 3 * * *"), ElementsAre("03:05"));
}

TEST(CronFieldTest, Range) {
  EXPECT_THAT(FiresOnOneDay("10-12 3 * * *"),
              ElementsAre("03:10", "03:11", "03:12"));
}

TEST(CronFieldTest, StarStep) {
  EXPECT_THAT(FiresOnOneDay("*/20 1 * * *"),
              ElementsAre("01:00", "01:20", "01:40"));
  EXPECT_THAT(FiresOnOneDay("0 */8 * * *"),
              ElementsAre("00:00", "08:00", "16:00"));
  // A step wider than half the range still starts at the range's start.
  EXPECT_THAT(FiresOnOneDay("*/59 1 * * *"), ElementsAre("01:00", "01:59"));
}

TEST(CronFieldTest, RangeStep) {
  EXPECT_THAT(FiresOnOneDay("10-30/10 1 * * *"),
              ElementsAre("01:10", "01:20", "01:30"));
  EXPECT_THAT(FiresOnOneDay("0 1-10/4 * * *"),
              ElementsAre("01:00", "05:00", "09:00"));
}

TEST(CronFieldTest, List) {
  EXPECT_THAT(FiresOnOneDay("0 1,5,22 * * *"),
              ElementsAre("01:00", "05:00", "22:00"));
  EXPECT_THAT(FiresOnOneDay("1-3,50-59/5 4 * * *"),
              ElementsAre("04:01", "04:02", "04:03", "04:50", "04:55"));
  EXPECT_THAT(
      FiresOnOneDay("0,30 */8 * * *"),
      ElementsAre("00:00", "00:30", "08:00", "08:30", "16:00", "16:30"));
}

TEST(CronFieldTest, DayOfMonthAndMonth) {
  EXPECT_THAT(DaysIn2026("0 0 1,15 * *"), SizeIs(24));
  EXPECT_THAT(DaysIn2026("0 0 * 2-4 *"), SizeIs(28 + 31 + 30));
  EXPECT_THAT(DaysIn2026("0 0 1 */3 *"),
              ElementsAre("01-01", "04-01", "07-01", "10-01"));
  EXPECT_THAT(DaysIn2026("0 0 10-20/5 6 *"),
              ElementsAre("06-10", "06-15", "06-20"));
}

TEST(CronFieldTest, DayOfWeek) {
  // 2026-01-05 is a Monday.
  const CronSchedule weekdays = MustParse("0 0 * * 1-5");
  EXPECT_THAT(Format(weekdays, weekdays.FiresBetween(Utc(2026, 1, 4),
                                                     Utc(2026, 1, 11), 100)),
              ElementsAre("2026-01-05 00:00 +0000", "2026-01-06 00:00 +0000",
                          "2026-01-07 00:00 +0000", "2026-01-08 00:00 +0000",
                          "2026-01-09 00:00 +0000"));
  // 0 and 7 are both Sunday.
  EXPECT_EQ(DaysIn2026("0 0 * * 0"), DaysIn2026("0 0 * * 7"));
  EXPECT_THAT(DaysIn2026("0 0 * * 0"), SizeIs(52));
  EXPECT_EQ(DaysIn2026("0 0 * * 5-7"), DaysIn2026("0 0 * * 0,5,6"));
  // `*` is 0-7, so `*/2` is Sunday, Tuesday, Thursday, Saturday.
  EXPECT_EQ(DaysIn2026("0 0 * * */2"), DaysIn2026("0 0 * * 0,2,4,6"));
  EXPECT_EQ(DaysIn2026("0 0 * * 0-7"), DaysIn2026("0 0 * * *"));
}

TEST(CronFieldTest, NamesAreCaseInsensitive) {
  EXPECT_EQ(DaysIn2026("0 0 1 JAN,jul *"), DaysIn2026("0 0 1 1,7 *"));
  EXPECT_EQ(DaysIn2026("0 0 * Mar-May mon-FRI"), DaysIn2026("0 0 * 3-5 1-5"));
  EXPECT_EQ(DaysIn2026("0 0 * * sat,SUN"), DaysIn2026("0 0 * * 6,0"));
  EXPECT_EQ(DaysIn2026("0 0 * jan-dec/2 *"), DaysIn2026("0 0 * 1-12/2 *"));
  // A range of days ending on Sunday goes through the weekend.
  EXPECT_EQ(DaysIn2026("0 0 * * fri-sun"), DaysIn2026("0 0 * * 5,6,0"));
  EXPECT_EQ(DaysIn2026("0 0 1 dec *"), std::vector<std::string>{"12-01"});
}

TEST(CronFieldTest, SurroundingAndRepeatedWhitespaceIsAccepted) {
  const CronSchedule schedule = MustParse("  0\t2  * *   *  ");
  EXPECT_EQ(schedule.expression(), "0\t2  * *   *");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 1, 5)), Utc(2026, 1, 5, 2));
}

// ---- Macros -------------------------------------------------------------

TEST(CronMacroTest, EachMacroMatchesItsExpansion) {
  const struct {
    const char* macro;
    const char* fields;
  } kCases[] = {
      {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.macro);
    const CronSchedule macro = MustParse(c.macro, "Europe/Berlin");
    const CronSchedule fields = MustParse(c.fields, "Europe/Berlin");
    EXPECT_EQ(macro.expression(), c.macro);
    EXPECT_EQ(macro.FiresBetween(Utc(2025, 1, 1), Utc(2028, 1, 1), 100000),
              fields.FiresBetween(Utc(2025, 1, 1), Utc(2028, 1, 1), 100000));
  }
}

TEST(CronMacroTest, NextFires) {
  const absl::Time after = Utc(2026, 5, 13, 10, 30);  // a Wednesday
  EXPECT_EQ(MustParse("@hourly").NextAfter(after), Utc(2026, 5, 13, 11));
  EXPECT_EQ(MustParse("@daily").NextAfter(after), Utc(2026, 5, 14));
  EXPECT_EQ(MustParse("@weekly").NextAfter(after), Utc(2026, 5, 17));
  EXPECT_EQ(MustParse("@monthly").NextAfter(after), Utc(2026, 6, 1));
  EXPECT_EQ(MustParse("@yearly").NextAfter(after), Utc(2027, 1, 1));
  EXPECT_EQ(MustParse("@DAILY").NextAfter(after), Utc(2026, 5, 14));
}

// ---- Day-of-month and day-of-week --------------------------------------

TEST(CronDayRuleTest, BothRestrictedMeansEither) {
  // 2026: Fridays, plus every 13th (Feb, Mar and Nov 13th are Fridays).
  std::vector<std::string> expected;
  for (absl::CivilDay day(2026, 1, 1); day.year() == 2026; ++day) {
    if (day.day() == 13 || absl::GetWeekday(day) == absl::Weekday::friday) {
      expected.push_back(absl::FormatCivilTime(day).substr(5));
    }
  }
  EXPECT_THAT(expected, SizeIs(52 + 12 - 3));
  EXPECT_EQ(DaysIn2026("0 0 13 * fri"), expected);
  EXPECT_EQ(DaysIn2026("0 0 13 * 5"), expected);
}

TEST(CronDayRuleTest, OneRestrictedFieldDecidesAlone) {
  EXPECT_THAT(DaysIn2026("0 0 13 * *"), SizeIs(12));
  EXPECT_THAT(DaysIn2026("0 0 * * fri"), SizeIs(52));
}

TEST(CronDayRuleTest, FieldStartingWithStarNarrowsTheOther) {
  // As crontab(5): `*/2` starts with `*`, so both fields must match:
  // odd-numbered Fridays only.
  std::vector<std::string> expected;
  for (absl::CivilDay day(2026, 1, 1); day.year() == 2026; ++day) {
    if (day.day() % 2 == 1 && absl::GetWeekday(day) == absl::Weekday::friday) {
      expected.push_back(absl::FormatCivilTime(day).substr(5));
    }
  }
  EXPECT_EQ(DaysIn2026("0 0 */2 * fri"), expected);
}

TEST(CronDayRuleTest, EitherRuleMakesImpossibleDayFireOnWeekdays) {
  // Feb 30 never exists, but with a restricted day-of-week the schedule
  // fires on the Mondays of February.
  EXPECT_THAT(DaysIn2026("0 0 30 2 mon"),
              ElementsAre("02-02", "02-09", "02-16", "02-23"));
}

// ---- Errors -------------------------------------------------------------

struct InvalidCase {
  const char* expression;
  const char* time_zone;
  const char* message;
};

class CronInvalidTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(CronInvalidTest, IsRefusedWithMessage) {
  const InvalidCase& c = GetParam();
  absl::StatusOr<CronSchedule> schedule =
      CronSchedule::Parse(c.expression, c.time_zone);
  ASSERT_FALSE(schedule.ok()) << c.expression;
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(schedule.status().message(), c.message);
}

constexpr char kFields[] =
    "5 fields (minute hour day-of-month month day-of-week) or a macro such as "
    "@daily";

std::string FieldsHelp(absl::string_view prefix) {
  return absl::StrCat(prefix, kFields);
}

const std::string kEmpty =
    FieldsHelp("cron expression \"\": is empty: expected ");
const std::string kFourFields =
    FieldsHelp("cron expression \"* * * *\": has 4 fields, expected ");
const std::string kSixFields =
    FieldsHelp("cron expression \"* * * * * *\": has 6 fields, expected ");
const std::string kOneField =
    FieldsHelp("cron expression \"daily\": has 1 field, expected ");

INSTANTIATE_TEST_SUITE_P(
    Messages, CronInvalidTest,
    ::testing::Values(
        // Out of range, per field.
        InvalidCase{"61 * * * *", "",
                    "cron expression \"61 * * * *\": minute 61 is out of "
                    "range 0-59"},
        InvalidCase{"0 24 * * *", "",
                    "cron expression \"0 24 * * *\": hour 24 is out of range "
                    "0-23"},
        InvalidCase{"0 0 0 * *", "",
                    "cron expression \"0 0 0 * *\": day-of-month 0 is out of "
                    "range 1-31"},
        InvalidCase{"0 0 32 * *", "",
                    "cron expression \"0 0 32 * *\": day-of-month 32 is out "
                    "of range 1-31"},
        InvalidCase{"0 0 * 13 *", "",
                    "cron expression \"0 0 * 13 *\": month 13 is out of range "
                    "1-12"},
        InvalidCase{"0 0 * * 8", "",
                    "cron expression \"0 0 * * 8\": day-of-week 8 is out of "
                    "range 0-7"},
        InvalidCase{"0 1-99999999999 * * *", "",
                    "cron expression \"0 1-99999999999 * * *\": hour "
                    "99999999999 is out of range 0-23"},
        // Field count.
        InvalidCase{"", "", kEmpty.c_str()},
        InvalidCase{"   ", "", kEmpty.c_str()},
        InvalidCase{"* * * *", "", kFourFields.c_str()},
        InvalidCase{"* * * * * *", "", kSixFields.c_str()},
        InvalidCase{"daily", "", kOneField.c_str()},
        // Lists.
        InvalidCase{"1,,2 * * * *", "",
                    "cron expression \"1,,2 * * * *\": minute has an empty "
                    "item in list \"1,,2\""},
        InvalidCase{"0 0 1, * *", "",
                    "cron expression \"0 0 1, * *\": day-of-month has an "
                    "empty item in list \"1,\""},
        InvalidCase{"0 ,3 * * *", "",
                    "cron expression \"0 ,3 * * *\": hour has an empty item "
                    "in list \",3\""},
        // Steps.
        InvalidCase{"*/0 * * * *", "",
                    "cron expression \"*/0 * * * *\": minute step 0 is out of "
                    "range 1-59"},
        InvalidCase{"0 1-5/0 * * *", "",
                    "cron expression \"0 1-5/0 * * *\": hour step 0 is out of "
                    "range 1-23"},
        InvalidCase{"*/60 * * * *", "",
                    "cron expression \"*/60 * * * *\": minute step 60 is out "
                    "of range 1-59"},
        InvalidCase{"*/ * * * *", "",
                    "cron expression \"*/ * * * *\": minute step is missing "
                    "in \"*/\""},
        InvalidCase{"*/x * * * *", "",
                    "cron expression \"*/x * * * *\": minute step \"x\" in "
                    "\"*/x\" is not a number"},
        InvalidCase{"*/5/2 * * * *", "",
                    "cron expression \"*/5/2 * * * *\": minute \"*/5/2\" has "
                    "more than one \"/\""},
        InvalidCase{"5/15 * * * *", "",
                    "cron expression \"5/15 * * * *\": minute \"5/15\" has a "
                    "step but no range: write 5-59/15 or */15"},
        // Ranges.
        InvalidCase{"0 22-2 * * *", "",
                    "cron expression \"0 22-2 * * *\": hour range \"22-2\" is "
                    "reversed (its start is after its end); to wrap around, "
                    "write 22-23,0-2"},
        InvalidCase{"0 0 * * sat-mon", "",
                    "cron expression \"0 0 * * sat-mon\": day-of-week range "
                    "\"sat-mon\" is reversed (its start is after its end); to "
                    "wrap around, write 6,0-1"},
        InvalidCase{"0 0 * nov-feb *", "",
                    "cron expression \"0 0 * nov-feb *\": month range "
                    "\"nov-feb\" is reversed (its start is after its end); to "
                    "wrap around, write 11-12,1-2"},
        InvalidCase{"1-2-3 * * * *", "",
                    "cron expression \"1-2-3 * * * *\": minute \"1-2-3\" is "
                    "not a valid range"},
        InvalidCase{"1- * * * *", "",
                    "cron expression \"1- * * * *\": minute range \"1-\" is "
                    "incomplete"},
        InvalidCase{"*-5 * * * *", "",
                    "cron expression \"*-5 * * * *\": minute \"*\" is not a "
                    "number: use 0-59"},
        // Names and garbage.
        InvalidCase{"0 0 * foo *", "",
                    "cron expression \"0 0 * foo *\": month \"foo\" is not a "
                    "month: use 1-12 or jan-dec"},
        InvalidCase{"0 0 * * funday", "",
                    "cron expression \"0 0 * * funday\": day-of-week "
                    "\"funday\" is not a day of the week: use 0-7 (0 and 7 "
                    "are Sunday) or sun-sat"},
        InvalidCase{"0 0 * * monday", "",
                    "cron expression \"0 0 * * monday\": day-of-week "
                    "\"monday\" is not a day of the week: use 0-7 (0 and 7 "
                    "are Sunday) or sun-sat"},
        InvalidCase{"jan * * * *", "",
                    "cron expression \"jan * * * *\": minute \"jan\" is not a "
                    "number: use 0-59"},
        InvalidCase{"0 0 * * mon-fri;", "",
                    "cron expression \"0 0 * * mon-fri;\": day-of-week "
                    "\"fri;\" is not a day of the week: use 0-7 (0 and 7 are "
                    "Sunday) or sun-sat"},
        InvalidCase{"5x * * * *", "",
                    "cron expression \"5x * * * *\": minute \"5x\" is not a "
                    "number: use 0-59"},
        InvalidCase{"-5 * * * *", "",
                    "cron expression \"-5 * * * *\": minute range \"-5\" is "
                    "incomplete"},
        InvalidCase{"0 0 1 1 * #", "",
                    "cron expression \"0 0 1 1 * #\": has 6 fields, expected "
                    "5 fields (minute hour day-of-month month day-of-week) or "
                    "a macro such as @daily"},
        // Never fires.
        InvalidCase{"0 0 30 2 *", "",
                    "cron expression \"0 0 30 2 *\": never fires: none of the "
                    "days in day-of-month \"30\" exist in the months in month "
                    "\"2\" (February has at most 29 days; April, June, "
                    "September and November have 30)"},
        InvalidCase{"0 0 31 apr,jun,sep,nov *", "",
                    "cron expression \"0 0 31 apr,jun,sep,nov *\": never "
                    "fires: none of the days in day-of-month \"31\" exist in "
                    "the months in month \"apr,jun,sep,nov\" (February has at "
                    "most 29 days; April, June, September and November have "
                    "30)"},
        InvalidCase{"0 0 30-31 2 */7", "",
                    "cron expression \"0 0 30-31 2 */7\": never fires: none "
                    "of the days in day-of-month \"30-31\" exist in the "
                    "months in month \"2\" (February has at most 29 days; "
                    "April, June, September and November have 30)"},
        // Macros.
        InvalidCase{"@often", "",
                    "cron expression \"@often\": unknown macro \"@often\" "
                    "(expected @yearly, @annually, @monthly, @weekly, @daily, "
                    "@midnight or @hourly)"},
        InvalidCase{"@daily 5", "",
                    "cron expression \"@daily 5\": a macro stands alone, "
                    "found more after \"@daily\""},
        InvalidCase{"@reboot", "",
                    "cron expression \"@reboot\": @reboot is not supported: "
                    "maintenance jobs run on a schedule, not when the server "
                    "starts"},
        // Time zones.
        InvalidCase{"0 2 * * *", "Mars/Olympus",
                    "cron expression \"0 2 * * *\": unknown time zone "
                    "\"Mars/Olympus\" (expected an IANA name such as "
                    "\"Europe/Berlin\", \"America/New_York\" or \"UTC\")"},
        InvalidCase{"0 2 * * *", "localtime",
                    "cron expression \"0 2 * * *\": unknown time zone "
                    "\"localtime\" (expected an IANA name such as "
                    "\"Europe/Berlin\", \"America/New_York\" or \"UTC\")"},
        InvalidCase{"0 2 * * *", "/usr/share/zoneinfo/UTC",
                    "cron expression \"0 2 * * *\": unknown time zone "
                    "\"/usr/share/zoneinfo/UTC\" (expected an IANA name such "
                    "as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"},
        InvalidCase{"0 2 * * *", "../zoneinfo/UTC",
                    "cron expression \"0 2 * * *\": unknown time zone "
                    "\"../zoneinfo/UTC\" (expected an IANA name such as "
                    "\"Europe/Berlin\", \"America/New_York\" or \"UTC\")"}));

TEST(CronInvalidMessageTest, ControlCharactersAreEscaped) {
  absl::StatusOr<CronSchedule> schedule =
      CronSchedule::Parse("0 0 * * mon\x01", "");
  ASSERT_FALSE(schedule.ok());
  EXPECT_EQ(schedule.status().message(),
            "cron expression \"0 0 * * mon\\x01\": day-of-week \"mon\\x01\" "
            "is not a day of the week: use 0-7 (0 and 7 are Sunday) or "
            "sun-sat");
}

// ---- Time zones and daylight saving --------------------------------------

// The transition of `zone` in the given month of 2026, looked up in tzdata.
absl::TimeZone::CivilTransition TransitionIn(const absl::TimeZone& zone,
                                             int month) {
  absl::TimeZone::CivilTransition transition;
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 1, 1, 0, 0, 0), zone);
  while (zone.NextTransition(t, &transition)) {
    if (transition.to.year() > 2026) break;
    if (transition.from.month() == month) return transition;
    t = zone.At(transition.to).trans;
  }
  ADD_FAILURE() << "no transition in month " << month;
  return transition;
}

TEST(CronZoneTest, TransitionDatesOf2026AreTheOnesTheTestsUse) {
  const absl::TimeZone new_york = Zone("America/New_York");
  const absl::TimeZone berlin = Zone("Europe/Berlin");
  auto text = [](const absl::TimeZone::CivilTransition& t) {
    return absl::StrCat(absl::FormatCivilTime(t.from), " -> ",
                        absl::FormatCivilTime(t.to));
  };
  EXPECT_EQ(text(TransitionIn(new_york, 3)),
            "2026-03-08T02:00:00 -> 2026-03-08T03:00:00");
  EXPECT_EQ(text(TransitionIn(new_york, 11)),
            "2026-11-01T02:00:00 -> 2026-11-01T01:00:00");
  EXPECT_EQ(text(TransitionIn(berlin, 3)),
            "2026-03-29T02:00:00 -> 2026-03-29T03:00:00");
  EXPECT_EQ(text(TransitionIn(berlin, 10)),
            "2026-10-25T03:00:00 -> 2026-10-25T02:00:00");
}

TEST(CronZoneTest, EmptyZoneIsUtc) {
  const CronSchedule schedule = MustParse("0 2 * * *", "");
  EXPECT_EQ(schedule.time_zone(), "UTC");
  EXPECT_EQ(schedule.expression(), "0 2 * * *");
  EXPECT_THAT(Next(schedule, Utc(2026, 3, 7, 12), 3),
              ElementsAre("2026-03-08 02:00 +0000", "2026-03-09 02:00 +0000",
                          "2026-03-10 02:00 +0000"));
  EXPECT_EQ(MustParse("0 2 * * *", "UTC").NextAfter(Utc(2026, 3, 7, 12)),
            Utc(2026, 3, 8, 2));
}

TEST(CronZoneTest, LocalTimeInAZoneWithoutTransitions) {
  const CronSchedule schedule = MustParse("0 9 * * *", "Asia/Tokyo");
  EXPECT_EQ(schedule.time_zone(), "Asia/Tokyo");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 3, 7, 12)), Utc(2026, 3, 8, 0));
}

TEST(CronDstTest, DailyAtTwoAcrossNewYorkSpringForward) {
  // 02:00 does not exist on 2026-03-08: the job runs at the jump, 03:00 EDT.
  const CronSchedule schedule = MustParse("0 2 * * *", "America/New_York");
  EXPECT_THAT(Next(schedule, Local(schedule, 2026, 3, 6, 12), 4),
              ElementsAre("2026-03-07 02:00 -0500", "2026-03-08 03:00 -0400",
                          "2026-03-09 02:00 -0400", "2026-03-10 02:00 -0400"));
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 3, 7, 12)), Utc(2026, 3, 8, 7));
}

TEST(CronDstTest, DailyAtTwoAcrossBerlinSpringForward) {
  const CronSchedule schedule = MustParse("0 2 * * *", "Europe/Berlin");
  EXPECT_THAT(Next(schedule, Local(schedule, 2026, 3, 27, 12), 4),
              ElementsAre("2026-03-28 02:00 +0100", "2026-03-29 03:00 +0200",
                          "2026-03-30 02:00 +0200", "2026-03-31 02:00 +0200"));
  // The jump is at 01:00 UTC.
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 3, 28, 12)), Utc(2026, 3, 29, 1));
}

TEST(CronDstTest, DailyAtTwoAcrossNewYorkFallBack) {
  // 02:00 exists once on 2026-11-01 (01:00-01:59 repeats): 25 hours apart.
  const CronSchedule schedule = MustParse("0 2 * * *", "America/New_York");
  EXPECT_THAT(Next(schedule, Local(schedule, 2026, 10, 30, 12), 4),
              ElementsAre("2026-10-31 02:00 -0400", "2026-11-01 02:00 -0500",
                          "2026-11-02 02:00 -0500", "2026-11-03 02:00 -0500"));
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 10, 31, 6)), Utc(2026, 11, 1, 7));
}

TEST(CronDstTest, DailyAtTwoAcrossBerlinFallBack) {
  // 02:00-02:59 repeats on 2026-10-25: the job runs at the first 02:00 only.
  const CronSchedule schedule = MustParse("0 2 * * *", "Europe/Berlin");
  EXPECT_THAT(Next(schedule, Local(schedule, 2026, 10, 23, 12), 4),
              ElementsAre("2026-10-24 02:00 +0200", "2026-10-25 02:00 +0200",
                          "2026-10-26 02:00 +0100", "2026-10-27 02:00 +0100"));
  const absl::Time first = Utc(2026, 10, 25, 0);  // 02:00 CEST
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 10, 24, 12)), first);
  // Not again at 02:00 CET, an hour later.
  EXPECT_EQ(schedule.NextAfter(first), Utc(2026, 10, 26, 1));
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 10, 25, 0, 30)), Utc(2026, 10, 26, 1));
}

TEST(CronDstTest, SkippedTimeFiresOnceAtTheJump) {
  for (const char* zone : {"America/New_York", "Europe/Berlin"}) {
    SCOPED_TRACE(zone);
    const CronSchedule schedule = MustParse("30 2 * * *", zone);
    const absl::TimeZone::CivilTransition transition =
        TransitionIn(schedule.zone(), 3);
    const absl::Time jump = schedule.zone().At(transition.to).pre;
    const absl::CivilDay night(transition.from);
    const absl::Time evening_before =
        Local(schedule, night.year(), night.month(), night.day() - 1, 20);

    EXPECT_EQ(schedule.NextAfter(evening_before), jump);
    EXPECT_EQ(schedule.NextAfter(jump - absl::Seconds(1)), jump);
    // Once: the next run is 02:30 the following night.
    const absl::Time next = schedule.NextAfter(jump);
    EXPECT_EQ(absl::FormatTime("%H:%M", next, schedule.zone()), "02:30");
    EXPECT_EQ(absl::ToCivilDay(next, schedule.zone()), night + 1);
    EXPECT_THAT(
        schedule.FiresBetween(evening_before, next - absl::Seconds(1), 10),
        ElementsAre(jump));
  }
}

TEST(CronDstTest, RepeatedTimeFiresOnceAtFirstOccurrence) {
  // 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
  const CronSchedule schedule = MustParse("30 1 * * *", "America/New_York");
  const absl::Time first = Utc(2026, 11, 1, 5, 30);
  const absl::Time following_day = Utc(2026, 11, 2, 6, 30);  // 01:30 EST
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 10, 31, 12)), first);
  EXPECT_EQ(Format(schedule, first), "2026-11-01 01:30 -0400");
  EXPECT_EQ(schedule.NextAfter(first), following_day);
  // Between the two occurrences, and during the second pass.
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 11, 1, 5, 45)), following_day);
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 11, 1, 6, 10)), following_day);
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 11, 1, 6, 30)), following_day);
  EXPECT_THAT(
      schedule.FiresBetween(Utc(2026, 10, 31, 12), Utc(2026, 11, 2, 12), 10),
      ElementsAre(first, following_day));
}

TEST(CronDstTest, SecondPassOfRepeatedHourResumesWhenTheHourEnds) {
  const CronSchedule every_minute = MustParse("* * * * *", "America/New_York");
  // 01:30 EST, second pass: every local minute up to 01:59 already fired.
  EXPECT_EQ(every_minute.NextAfter(Utc(2026, 11, 1, 6, 30)),
            Utc(2026, 11, 1, 7));
  const CronSchedule hourly = MustParse("0 * * * *", "America/New_York");
  EXPECT_THAT(Next(hourly, Utc(2026, 11, 1, 3, 30), 3),
              ElementsAre("2026-11-01 00:00 -0400", "2026-11-01 01:00 -0400",
                          "2026-11-01 02:00 -0500"));
}

// Every quarter hour between `from` and `to` in absolute time, except the
// ones whose local time already occurred earlier (the second pass through a
// repeated hour).
std::vector<absl::Time> ExpectedQuarterHours(const absl::TimeZone& zone,
                                             absl::Time from, absl::Time to) {
  std::vector<absl::Time> out;
  for (absl::Time t = from + absl::Minutes(15); t <= to;
       t += absl::Minutes(15)) {
    const absl::TimeZone::TimeInfo info = zone.At(absl::ToCivilSecond(t, zone));
    if (info.kind == absl::TimeZone::TimeInfo::REPEATED && info.pre != t) {
      continue;
    }
    out.push_back(t);
  }
  return out;
}

TEST(CronDstTest, QuarterHoursAcrossSpringForward) {
  for (const char* zone : {"America/New_York", "Europe/Berlin"}) {
    SCOPED_TRACE(zone);
    const CronSchedule schedule = MustParse("*/15 * * * *", zone);
    const absl::TimeZone::CivilTransition transition =
        TransitionIn(schedule.zone(), 3);
    const absl::Time jump = schedule.zone().At(transition.to).pre;
    const absl::Time from = jump - absl::Hours(6);
    const absl::Time to = jump + absl::Hours(6);
    const std::vector<absl::Time> fires = schedule.FiresBetween(from, to, 1000);
    // The clock jumps a whole hour on a quarter hour, so no absolute quarter
    // hour is missing and none repeats: 02:00-02:45 all fold into 03:00.
    EXPECT_EQ(fires, ExpectedQuarterHours(schedule.zone(), from, to));
    EXPECT_THAT(fires, SizeIs(48));
    const std::vector<std::string> local =
        Format(schedule, schedule.FiresBetween(jump - absl::Minutes(30),
                                               jump + absl::Minutes(30), 10));
    EXPECT_EQ(local.size(), 4u);
    EXPECT_EQ(local[0].substr(11, 5), "01:45");
    EXPECT_EQ(local[1].substr(11, 5), "03:00");
    EXPECT_EQ(local[2].substr(11, 5), "03:15");
    EXPECT_EQ(local[3].substr(11, 5), "03:30");
  }
}

TEST(CronDstTest, QuarterHoursAcrossFallBack) {
  for (const auto& [zone, month] :
       {std::pair<const char*, int>{"America/New_York", 11},
        std::pair<const char*, int>{"Europe/Berlin", 10}}) {
    SCOPED_TRACE(zone);
    const CronSchedule schedule = MustParse("*/15 * * * *", zone);
    const absl::TimeZone::CivilTransition transition =
        TransitionIn(schedule.zone(), month);
    const absl::Time fall_back = schedule.zone().At(transition.to).trans;
    const absl::Time from = fall_back - absl::Hours(6);
    const absl::Time to = fall_back + absl::Hours(6);
    const std::vector<absl::Time> fires = schedule.FiresBetween(from, to, 1000);
    // The repeated hour runs once: 48 quarter hours minus the 4 of its
    // second pass.
    EXPECT_EQ(fires, ExpectedQuarterHours(schedule.zone(), from, to));
    EXPECT_THAT(fires, SizeIs(44));
    // No gap except the second pass: after the last quarter of the first
    // pass comes the quarter at which the repeated hour ends.
    const auto last_first_pass =
        std::find(fires.begin(), fires.end(), fall_back - absl::Minutes(15));
    ASSERT_NE(last_first_pass, fires.end());
    EXPECT_EQ(*(last_first_pass + 1), fall_back + absl::Hours(1));
  }
  const CronSchedule new_york = MustParse("*/15 * * * *", "America/New_York");
  EXPECT_THAT(
      Format(new_york, new_york.FiresBetween(Utc(2026, 11, 1, 4, 30),
                                             Utc(2026, 11, 1, 7, 15), 10)),
      ElementsAre("2026-11-01 00:45 -0400", "2026-11-01 01:00 -0400",
                  "2026-11-01 01:15 -0400", "2026-11-01 01:30 -0400",
                  "2026-11-01 01:45 -0400", "2026-11-01 02:00 -0500",
                  "2026-11-01 02:15 -0500"));
}

TEST(CronDstTest, FiresPerLocalDayOnTransitionDays) {
  const CronSchedule hourly = MustParse("0 * * * *", "America/New_York");
  const CronSchedule quarterly = MustParse("*/15 * * * *", "America/New_York");
  auto day = [&](int month, int day_of_month) {
    return std::pair<absl::Time, absl::Time>(
        Local(hourly, 2026, month, day_of_month) - absl::Seconds(1),
        Local(hourly, 2026, month, day_of_month + 1) - absl::Seconds(1));
  };
  const auto [spring_from, spring_to] = day(3, 8);
  const auto [fall_from, fall_to] = day(11, 1);
  // 23-hour day: 02:00 folds into 03:00.
  EXPECT_THAT(hourly.FiresBetween(spring_from, spring_to, 100), SizeIs(23));
  EXPECT_THAT(quarterly.FiresBetween(spring_from, spring_to, 1000), SizeIs(92));
  // 25-hour day: every local hour once.
  EXPECT_THAT(hourly.FiresBetween(fall_from, fall_to, 100), SizeIs(24));
  EXPECT_THAT(quarterly.FiresBetween(fall_from, fall_to, 1000), SizeIs(96));
}

// ---- Calendar -----------------------------------------------------------

TEST(CronCalendarTest, MonthEnds) {
  EXPECT_THAT(DaysIn2026("0 0 31 * *"),
              ElementsAre("01-31", "03-31", "05-31", "07-31", "08-31", "10-31",
                          "12-31"));
  EXPECT_THAT(DaysIn2026("0 0 30 * *"), SizeIs(11));
  EXPECT_THAT(DaysIn2026("59 23 28-31 2 *"), ElementsAre("02-28"));
  const CronSchedule schedule = MustParse("0 0 31 * *");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 1, 31)), Utc(2026, 3, 31));
  EXPECT_EQ(MustParse("59 23 31 12 *").NextAfter(Utc(2026, 12, 31, 23, 59)),
            Utc(2027, 12, 31, 23, 59));
  EXPECT_EQ(MustParse("0 0 1 * *").NextAfter(Utc(2026, 12, 31, 23, 59, 59)),
            Utc(2027, 1, 1));
}

TEST(CronCalendarTest, LeapDay) {
  const CronSchedule schedule = MustParse("0 0 29 2 *");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 1, 1)), Utc(2028, 2, 29));
  EXPECT_EQ(schedule.NextAfter(Utc(2028, 2, 29)), Utc(2032, 2, 29));
  // 2100 is not a leap year: eight years without a run.
  EXPECT_EQ(schedule.NextAfter(Utc(2096, 3, 1)), Utc(2104, 2, 29));
  EXPECT_THAT(MustParse("0 0 28-31 2 *")
                  .FiresBetween(Utc(2028, 1, 1), Utc(2028, 12, 31), 10),
              ElementsAre(Utc(2028, 2, 28), Utc(2028, 2, 29)));
}

TEST(CronCalendarTest, LeapDayOnASundayIsDecadesApart) {
  // Day-of-week starts with `*`, so both fields must match: Feb 29 that is
  // a Sunday (2032, 2060, 2088, then 2128 because 2100 is not a leap year).
  const CronSchedule schedule = MustParse("0 0 29 2 */7");
  EXPECT_EQ(schedule.NextAfter(Utc(2026, 1, 1)), Utc(2032, 2, 29));
  EXPECT_EQ(schedule.NextAfter(Utc(2088, 3, 1)), Utc(2128, 2, 29));
  // Both restricted: every Sunday of February too.
  EXPECT_EQ(MustParse("0 0 29 2 0").NextAfter(Utc(2026, 1, 1)),
            Utc(2026, 2, 1));
}

TEST(CronCalendarTest, NextAfterIsStrictlyAfter) {
  const CronSchedule schedule = MustParse("0 2 * * *", "Europe/Berlin");
  const absl::Time fire = schedule.NextAfter(Utc(2026, 5, 31, 12));
  EXPECT_EQ(fire, Utc(2026, 6, 1, 0));  // 02:00 CEST
  EXPECT_EQ(schedule.NextAfter(fire), Utc(2026, 6, 2, 0));
  EXPECT_EQ(schedule.NextAfter(fire - absl::Nanoseconds(1)), fire);
  EXPECT_EQ(schedule.NextAfter(fire + absl::Nanoseconds(1)),
            Utc(2026, 6, 2, 0));
}

TEST(CronCalendarTest, InfiniteInputsHaveNoNextFire) {
  const CronSchedule schedule = MustParse("* * * * *");
  EXPECT_EQ(schedule.NextAfter(absl::InfiniteFuture()), absl::InfiniteFuture());
  EXPECT_EQ(schedule.NextAfter(absl::InfinitePast()), absl::InfiniteFuture());
  EXPECT_THAT(schedule.FiresBetween(Utc(2026, 1, 1), absl::InfiniteFuture(), 3),
              SizeIs(3));
}

TEST(CronCalendarTest, YearlyScheduleChainsOverCenturies) {
  // The search skips whole months, days and hours: 300 yearly fires.
  const CronSchedule schedule = MustParse("0 0 1 1 *", "Europe/Berlin");
  const std::vector<absl::Time> fires =
      schedule.FiresBetween(Utc(2026, 1, 1), Utc(2400, 1, 1), 300);
  ASSERT_THAT(fires, SizeIs(300));
  EXPECT_EQ(Format(schedule, fires.back()), "2326-01-01 00:00 +0100");
}

// ---- FiresBetween -------------------------------------------------------

TEST(CronFiresBetweenTest, CountsHalfOpenWindow) {
  const CronSchedule hourly = MustParse("0 * * * *");
  // (00:00, 05:00]: 01:00 ... 05:00.
  EXPECT_THAT(
      hourly.FiresBetween(Utc(2026, 1, 1), Utc(2026, 1, 1, 5), 100),
      ElementsAre(Utc(2026, 1, 1, 1), Utc(2026, 1, 1, 2), Utc(2026, 1, 1, 3),
                  Utc(2026, 1, 1, 4), Utc(2026, 1, 1, 5)));
  // Consecutive windows split the runs without counting one twice.
  const absl::Time a = Utc(2026, 1, 1);
  const absl::Time b = Utc(2026, 1, 3, 7);
  const absl::Time c = Utc(2026, 1, 9, 13, 30);
  EXPECT_EQ(hourly.FiresBetween(a, b, 10000).size() +
                hourly.FiresBetween(b, c, 10000).size(),
            hourly.FiresBetween(a, c, 10000).size());
}

TEST(CronFiresBetweenTest, LimitTruncates) {
  const CronSchedule every_five = MustParse("*/5 * * * *");
  const absl::Time down = Utc(2026, 4, 1, 12);
  const absl::Time up = Utc(2026, 4, 2, 12);
  EXPECT_THAT(every_five.FiresBetween(down, up, 1000), SizeIs(288));
  EXPECT_THAT(every_five.FiresBetween(down, up, 3),
              ElementsAre(Utc(2026, 4, 1, 12, 5), Utc(2026, 4, 1, 12, 10),
                          Utc(2026, 4, 1, 12, 15)));
  EXPECT_THAT(every_five.FiresBetween(down, up, 0), IsEmpty());
  EXPECT_THAT(every_five.FiresBetween(down, up, -1), IsEmpty());
}

TEST(CronFiresBetweenTest, EmptyWindows) {
  const CronSchedule daily = MustParse("0 2 * * *", "America/New_York");
  const absl::Time t = Utc(2026, 4, 1, 12);
  EXPECT_THAT(daily.FiresBetween(t, t, 10), IsEmpty());
  EXPECT_THAT(daily.FiresBetween(t, t - absl::Hours(48), 10), IsEmpty());
  EXPECT_THAT(daily.FiresBetween(t, t + absl::Hours(12), 10), IsEmpty());
  EXPECT_THAT(daily.FiresBetween(t, t + absl::Hours(24), 10), SizeIs(1));
}

TEST(CronScheduleTest, IsCopyable) {
  const CronSchedule original = MustParse("0 2 * * *", "Europe/Berlin");
  CronSchedule copy = original;
  EXPECT_EQ(copy.expression(), "0 2 * * *");
  EXPECT_EQ(copy.time_zone(), "Europe/Berlin");
  EXPECT_EQ(copy.NextAfter(Utc(2026, 6, 1, 12)),
            original.NextAfter(Utc(2026, 6, 1, 12)));
}

}  // namespace
}  // namespace ecliptix::server
