// Cron schedules of maintenance jobs: parsing a 5-field cron expression in an
// IANA time zone, and the instants at which it fires. Pure: no clock, no
// threads, no I/O besides loading the zone's tzdata once in Parse; every
// answer is a function of the schedule and the absl::Time it is given.
//
// Syntax (Vixie cron / cronie, crontab(5)):
//   minute hour day-of-month month day-of-week
//   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
// Each field is a comma-separated list of items; an item is `*`, a number,
// a range `a-b`, or a range with a step: `*/n`, `a-b/n`. Months may be named
// jan-dec and days sun-sat (any case; `fri-sun` ends on Sunday). Macros:
// @hourly, @daily = @midnight, @weekly (Sunday 00:00), @monthly, @yearly =
// @annually.
//
// Day-of-month and day-of-week, as in crontab(5): when both fields are
// restricted, that is neither starts with `*`, a day matches when EITHER
// matches (`0 0 13 * fri` fires on every 13th and on every Friday).
// Otherwise both must match, so a field starting with `*` (including `*/2`)
// narrows the other one: `0 0 */2 * fri` fires on odd-numbered Fridays.
//
// Time zones and daylight saving. The fields are local wall-clock times in
// the schedule's zone. Equivalently: a matching local minute fires at the
// first instant at which the zone's wall clock shows that minute or later.
//   - A local time that does not exist because the clock jumps forward
//     (02:30 on the night clocks go 02:00 -> 03:00 in Europe/Berlin or
//     America/New_York) fires once, at the instant of the jump (the moment
//     the clock shows 03:00).
//   - A local time that occurs twice because the clock falls back (01:30 on
//     the first Sunday of November in America/New_York) fires once, at its
//     first occurrence; the second pass through that hour fires nothing.
//   - Each matching local minute fires at most once, and minutes that fall
//     on the same instant (02:15 and 03:00 both at the jump) fire once.
#ifndef ECLIPTIX_SERVER_JOBS_CRON_H_
#define ECLIPTIX_SERVER_JOBS_CRON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace ecliptix::server {

class CronSchedule {
 public:
  // Parses `expression` in `time_zone` (an IANA name such as "Europe/Berlin";
  // empty means "UTC"). INVALID_ARGUMENT, naming the field and its allowed
  // range, for a malformed expression, an unknown zone, or an expression that
  // can never fire (`0 0 30 2 *`).
  static absl::StatusOr<CronSchedule> Parse(absl::string_view expression,
                                            absl::string_view time_zone);

  // The first fire instant strictly after `after`. It skips whole months,
  // days and hours that cannot match, so a yearly schedule takes a few dozen
  // steps and the rarest one (leap day on a given weekday) about a thousand.
  // InfiniteFuture() for an infinite `after`.
  absl::Time NextAfter(absl::Time after) const;

  // The fire instants in (after, until], in order, at most `limit` of them
  // (empty when limit <= 0). Successive windows (a, b], (b, c] never count a
  // fire twice; ask for limit + 1 to learn whether more were left out.
  std::vector<absl::Time> FiresBetween(absl::Time after, absl::Time until,
                                       int limit) const;

  // The expression as given (surrounding whitespace removed).
  const std::string& expression() const { return expression_; }
  // The zone's name: "UTC" when Parse was given an empty one.
  const std::string& time_zone() const { return time_zone_; }
  absl::TimeZone zone() const { return zone_; }

 private:
  CronSchedule() = default;

  bool DayMatches(absl::CivilDay day) const;
  // The first matching local minute at or after `from`, searching one full
  // 400-year Gregorian cycle (after which the calendar repeats).
  std::optional<absl::CivilMinute> NextMatchingMinute(
      absl::CivilMinute from) const;
  // When local minute `minute` fires (see the daylight-saving rules above).
  absl::Time FireInstant(absl::CivilMinute minute) const;
  // The earliest local minute that can fire strictly after `after`.
  absl::CivilMinute FirstCandidateAfter(absl::Time after) const;

  std::string expression_;
  std::string time_zone_;
  absl::TimeZone zone_;
  // Bit i set: value i matches.
  uint64_t minutes_ = 0;        // 0-59
  uint32_t hours_ = 0;          // 0-23
  uint32_t days_of_month_ = 0;  // 1-31
  uint32_t months_ = 0;         // 1-12
  uint32_t days_of_week_ = 0;   // 0-6, Sunday = 0 (7 folded into 0)
  // The field starts with `*`: it does not turn the day rule into "either".
  bool day_of_month_star_ = false;
  bool day_of_week_star_ = false;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_JOBS_CRON_H_
