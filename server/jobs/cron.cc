#include "server/jobs/cron.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace ecliptix::server {
namespace {

// The Gregorian calendar repeats every 400 years (146097 days, a whole number
// of weeks), so a schedule that matches some minute matches one within any
// 400-year stretch. Shorter bounds are wrong: `0 0 29 2 *` goes 8 years
// without firing after 2096, and `0 0 29 2 */7` (leap day on a Sunday) 40.
constexpr int kSearchYears = 401;

// A malformed local-time layout (several transitions within minutes) could in
// theory make the first matching minute fire before `after`; the search then
// moves on, at most this many times.
constexpr int kMaxRetries = 1500;

constexpr std::array<absl::string_view, 12> kMonthNames = {
    "jan", "feb", "mar", "apr", "may", "jun",
    "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<absl::string_view, 7> kDayNames = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct FieldSpec {
  absl::string_view name;  // as the error messages say it
  int min;
  int max;
  // Names for min, min + 1, ...; nullptr when the field takes numbers only.
  const absl::string_view* names;
  int name_count;
  absl::string_view what;   // "a month": the message for a bad value
  absl::string_view usage;  // "1-12 or jan-dec"
};

constexpr FieldSpec kMinute = {"minute", 0, 59, nullptr, 0, "a number", "0-59"};
constexpr FieldSpec kHour = {"hour", 0, 23, nullptr, 0, "a number", "0-23"};
constexpr FieldSpec kDayOfMonth = {"day-of-month", 1,     31, nullptr, 0,
                                   "a number",     "1-31"};
constexpr FieldSpec kMonth = {
    "month", 1, 12, kMonthNames.data(), 12, "a month", "1-12 or jan-dec"};
constexpr FieldSpec kDayOfWeek = {"day-of-week",
                                  0,
                                  7,
                                  kDayNames.data(),
                                  7,
                                  "a day of the week",
                                  "0-7 (0 and 7 are Sunday) or sun-sat"};

constexpr absl::string_view kFieldsHelp =
    "5 fields (minute hour day-of-month month day-of-week) or a macro such as "
    "@daily";

struct Macro {
  absl::string_view name;
  absl::string_view fields;
};
constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

std::string Quote(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

bool AllDigits(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

// A decimal number of at most 9 digits (anything longer is out of every
// range anyway and is reported with its text).
std::optional<int> ParseNumber(absl::string_view text) {
  if (!AllDigits(text) || text.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : text) value = value * 10 + (c - '0');
  return value;
}

absl::Status FieldError(const FieldSpec& spec, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(spec.name, " ", message));
}

// One value of a field: a number in range or a name. Names count from
// spec.min (jan = 1, sun = 0).
absl::StatusOr<int> ParseValue(const FieldSpec& spec, absl::string_view text) {
  if (AllDigits(text)) {
    std::optional<int> value = ParseNumber(text);
    if (!value || *value < spec.min || *value > spec.max) {
      return FieldError(spec, absl::StrCat(text, " is out of range ", spec.min,
                                           "-", spec.max));
    }
    return *value;
  }
  for (int i = 0; i < spec.name_count; ++i) {
    if (absl::EqualsIgnoreCase(text, spec.names[i])) return spec.min + i;
  }
  return FieldError(spec, absl::StrCat(Quote(text), " is not ", spec.what,
                                       ": use ", spec.usage));
}

// "a-max,min-b": how to write a range that wraps around.
std::string WrapHint(int start, int end, int lo, int hi) {
  return absl::StrCat(
      start >= hi ? absl::StrCat(start) : absl::StrCat(start, "-", hi), ",",
      end == lo ? absl::StrCat(lo) : absl::StrCat(lo, "-", end));
}

// One list item: `*`, `n`, `a-b`, `*/s` or `a-b/s`. Sets its bits in `bits`.
absl::Status ParseItem(const FieldSpec& spec, absl::string_view item,
                       uint64_t* bits) {
  std::vector<absl::string_view> parts = absl::StrSplit(item, '/');
  if (parts.size() > 2) {
    return FieldError(spec,
                      absl::StrCat(Quote(item), " has more than one \"/\""));
  }
  const absl::string_view range = parts[0];
  int start = spec.min;
  int end = spec.max;
  bool is_range = true;
  if (range != "*") {
    std::vector<absl::string_view> ends = absl::StrSplit(range, '-');
    if (ends.size() > 2) {
      return FieldError(spec,
                        absl::StrCat(Quote(range), " is not a valid range"));
    }
    if (ends.size() == 2 && (ends[0].empty() || ends[1].empty())) {
      return FieldError(spec,
                        absl::StrCat("range ", Quote(range), " is incomplete"));
    }
    absl::StatusOr<int> first = ParseValue(spec, ends[0]);
    if (!first.ok()) return first.status();
    start = end = *first;
    is_range = ends.size() == 2;
    if (is_range) {
      absl::StatusOr<int> last = ParseValue(spec, ends[1]);
      if (!last.ok()) return last.status();
      end = *last;
      // `fri-sun`: a range of days ending on Sunday means Sunday = 7.
      if (&spec == &kDayOfWeek && end == 0 && start > 0) end = 7;
      if (start > end) {
        const int hint_max = &spec == &kDayOfWeek ? 6 : spec.max;
        return FieldError(
            spec, absl::StrCat("range ", Quote(range),
                               " is reversed (its start is after its end); to "
                               "wrap around, write ",
                               WrapHint(start, end, spec.min, hint_max)));
      }
    }
  }
  int step = 1;
  if (parts.size() == 2) {
    const absl::string_view step_text = parts[1];
    if (step_text.empty()) {
      return FieldError(spec, absl::StrCat("step is missing in ", Quote(item)));
    }
    if (!AllDigits(step_text)) {
      return FieldError(spec, absl::StrCat("step ", Quote(step_text), " in ",
                                           Quote(item), " is not a number"));
    }
    std::optional<int> value = ParseNumber(step_text);
    if (!value || *value < 1 || *value > spec.max) {
      return FieldError(spec, absl::StrCat("step ", step_text,
                                           " is out of range 1-", spec.max));
    }
    if (!is_range) {
      return FieldError(
          spec,
          absl::StrCat(Quote(item), " has a step but no range: write ", range,
                       "-", spec.max, "/", step_text, " or */", step_text));
    }
    step = *value;
  }
  for (int value = start; value <= end; value += step) {
    *bits |= uint64_t{1} << value;
  }
  return absl::OkStatus();
}

// A whole field: a comma-separated list of items.
absl::StatusOr<uint64_t> ParseField(const FieldSpec& spec,
                                    absl::string_view text) {
  uint64_t bits = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (item.empty()) {
      return FieldError(
          spec, absl::StrCat("has an empty item in list ", Quote(text)));
    }
    absl::Status status = ParseItem(spec, item, &bits);
    if (!status.ok()) return status;
  }
  return bits;
}

// The longest a month can be in any year.
int MaxDaysInMonth(int month) {
  constexpr std::array<int, 13> kDays = {0,  31, 29, 31, 30, 31, 30,
                                         31, 31, 30, 31, 30, 31};
  return kDays[month];
}

// Sunday = 0, as cron counts.
int CronWeekday(absl::CivilDay day) {
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday:
      return 0;
    case absl::Weekday::monday:
      return 1;
    case absl::Weekday::tuesday:
      return 2;
    case absl::Weekday::wednesday:
      return 3;
    case absl::Weekday::thursday:
      return 4;
    case absl::Weekday::friday:
      return 5;
    case absl::Weekday::saturday:
      return 6;
  }
  return 0;
}

// The lowest set bit of `bits` at or above `from`, or -1.
int NextBit(uint64_t bits, int from) {
  if (from >= 64) return -1;
  const uint64_t rest = bits >> from;
  if (rest == 0) return -1;
  return from + __builtin_ctzll(rest);
}

// Time zone names are IANA names. absl::LoadTimeZone also accepts paths and
// "localtime", which would make a schedule depend on the machine it runs on.
bool LooksLikeZoneName(absl::string_view name) {
  if (name.empty() || name.front() == '/' || absl::StrContains(name, "..") ||
      name == "localtime") {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' ||
           c == '_' || c == '-' || c == '+' || c == '.';
  });
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(absl::string_view expression,
                                                 absl::string_view time_zone) {
  expression = absl::StripAsciiWhitespace(expression);
  const std::string prefix =
      absl::StrCat("cron expression ", Quote(expression), ": ");
  auto invalid = [&prefix](absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, message));
  };

  std::vector<absl::string_view> fields =
      absl::StrSplit(expression, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.empty()) {
    return invalid(absl::StrCat("is empty: expected ", kFieldsHelp));
  }
  if (absl::StartsWith(fields[0], "@")) {
    if (fields.size() > 1) {
      return invalid(absl::StrCat("a macro stands alone, found more after ",
                                  Quote(fields[0])));
    }
    if (absl::EqualsIgnoreCase(fields[0], "@reboot")) {
      return invalid(
          "@reboot is not supported: maintenance jobs run on a schedule, not "
          "when the server starts");
    }
    const Macro* macro = nullptr;
    for (const Macro& candidate : kMacros) {
      if (absl::EqualsIgnoreCase(fields[0], candidate.name)) macro = &candidate;
    }
    if (macro == nullptr) {
      return invalid(absl::StrCat(
          "unknown macro ", Quote(fields[0]),
          " (expected @yearly, @annually, @monthly, @weekly, @daily, "
          "@midnight or @hourly)"));
    }
    fields = absl::StrSplit(macro->fields, ' ');
  }
  if (fields.size() != 5) {
    return invalid(absl::StrCat("has ", fields.size(), " field",
                                fields.size() == 1 ? "" : "s", ", expected ",
                                kFieldsHelp));
  }

  CronSchedule schedule;
  schedule.expression_ = std::string(expression);
  const std::array<const FieldSpec*, 5> specs = {&kMinute, &kHour, &kDayOfMonth,
                                                 &kMonth, &kDayOfWeek};
  std::array<uint64_t, 5> bits = {};
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StatusOr<uint64_t> field = ParseField(*specs[i], fields[i]);
    if (!field.ok()) return invalid(field.status().message());
    bits[i] = *field;
  }
  schedule.minutes_ = bits[0];
  schedule.hours_ = static_cast<uint32_t>(bits[1]);
  schedule.days_of_month_ = static_cast<uint32_t>(bits[2]);
  schedule.months_ = static_cast<uint32_t>(bits[3]);
  // Day-of-week 7 is Sunday, like 0.
  schedule.days_of_week_ =
      static_cast<uint32_t>((bits[4] | (bits[4] >> 7)) & 0x7f);
  schedule.day_of_month_star_ = absl::StartsWith(fields[2], "*");
  schedule.day_of_week_star_ = absl::StartsWith(fields[4], "*");

  // Every date falls on every weekday somewhere in the 400-year cycle, so the
  // schedule fires unless the days of month it needs exist in none of its
  // months. With the "either" rule the weekdays alone make it fire.
  const bool either =
      !schedule.day_of_month_star_ && !schedule.day_of_week_star_;
  if (!either) {
    bool some_day_exists = false;
    for (int month = 1; month <= 12 && !some_day_exists; ++month) {
      if ((schedule.months_ >> month & 1) == 0) continue;
      for (int day = 1; day <= MaxDaysInMonth(month); ++day) {
        if (schedule.days_of_month_ >> day & 1) some_day_exists = true;
      }
    }
    if (!some_day_exists) {
      return invalid(absl::StrCat(
          "never fires: none of the days in day-of-month ", Quote(fields[2]),
          " exist in the months in month ", Quote(fields[3]),
          " (February has at most 29 days; April, June, September and "
          "November have 30)"));
    }
  }

  schedule.time_zone_ = time_zone.empty() ? "UTC" : std::string(time_zone);
  if (!LooksLikeZoneName(schedule.time_zone_) ||
      !absl::LoadTimeZone(schedule.time_zone_, &schedule.zone_)) {
    return invalid(
        absl::StrCat("unknown time zone ", Quote(schedule.time_zone_),
                     " (expected an IANA name such as \"Europe/Berlin\", "
                     "\"America/New_York\" or \"UTC\")"));
  }
  return schedule;
}

bool CronSchedule::DayMatches(absl::CivilDay day) const {
  const bool by_month_day = (days_of_month_ >> day.day() & 1) != 0;
  const bool by_weekday = (days_of_week_ >> CronWeekday(day) & 1) != 0;
  if (!day_of_month_star_ && !day_of_week_star_) {
    return by_month_day || by_weekday;
  }
  return by_month_day && by_weekday;
}

std::optional<absl::CivilMinute> CronSchedule::NextMatchingMinute(
    absl::CivilMinute from) const {
  const absl::civil_year_t last_year = from.year() + kSearchYears;
  absl::CivilMinute at = from;
  while (at.year() <= last_year) {
    const int month = NextBit(months_, at.month());
    if (month < 0) {
      at = absl::CivilMinute(absl::CivilYear(at) + 1);
      continue;
    }
    if (month != at.month()) {
      at = absl::CivilMinute(at.year(), month, 1, 0, 0);
      continue;
    }
    const absl::CivilDay day(at);
    if (!DayMatches(day)) {
      at = absl::CivilMinute(day + 1);
      continue;
    }
    const int hour = NextBit(hours_, at.hour());
    if (hour < 0) {
      at = absl::CivilMinute(day + 1);
      continue;
    }
    if (hour != at.hour()) {
      at = absl::CivilMinute(at.year(), at.month(), at.day(), hour, 0);
      continue;
    }
    const int minute = NextBit(minutes_, at.minute());
    if (minute < 0) {
      at = absl::CivilMinute(absl::CivilHour(at) + 1);
      continue;
    }
    return absl::CivilMinute(at.year(), at.month(), at.day(), at.hour(),
                             minute);
  }
  return std::nullopt;
}

absl::Time CronSchedule::FireInstant(absl::CivilMinute minute) const {
  const absl::TimeZone::TimeInfo info = zone_.At(absl::CivilSecond(minute));
  switch (info.kind) {
    case absl::TimeZone::TimeInfo::SKIPPED:
      // The clock jumped over this minute: fire when it jumped.
      return info.trans;
    case absl::TimeZone::TimeInfo::REPEATED:
      // `pre` is the first occurrence (the earlier offset).
    case absl::TimeZone::TimeInfo::UNIQUE:
      return info.pre;
  }
  return info.pre;
}

absl::CivilMinute CronSchedule::FirstCandidateAfter(absl::Time after) const {
  // Minutes up to the one the clock shows at `after` have fired by then.
  absl::CivilMinute candidate = absl::ToCivilMinute(after, zone_) + 1;
  // In the second pass of a repeated hour, the minutes up to the end of that
  // hour fired during the first pass: continue from where the clock stood
  // when it fell back.
  const absl::TimeZone::TimeInfo info = zone_.At(absl::CivilSecond(candidate));
  if (info.kind == absl::TimeZone::TimeInfo::REPEATED && info.pre <= after) {
    const absl::CivilSecond fell_back_from =
        absl::ToCivilSecond(info.trans - absl::Seconds(1), zone_) + 1;
    absl::CivilMinute end(fell_back_from);
    if (absl::CivilSecond(end) < fell_back_from) end += 1;
    candidate = std::max(candidate, end);
  }
  return candidate;
}

absl::Time CronSchedule::NextAfter(absl::Time after) const {
  if (after == absl::InfiniteFuture() || after == absl::InfinitePast()) {
    return absl::InfiniteFuture();
  }
  // The fire instant never decreases as the local minute grows, so the first
  // matching minute that fires after `after` gives the earliest instant.
  absl::CivilMinute from = FirstCandidateAfter(after);
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    const std::optional<absl::CivilMinute> match = NextMatchingMinute(from);
    if (!match.has_value()) return absl::InfiniteFuture();
    const absl::Time fire = FireInstant(*match);
    if (fire > after) return fire;
    from = *match + 1;
  }
  return absl::InfiniteFuture();
}

std::vector<absl::Time> CronSchedule::FiresBetween(absl::Time after,
                                                   absl::Time until,
                                                   int limit) const {
  std::vector<absl::Time> fires;
  absl::Time at = after;
  while (static_cast<int>(fires.size()) < limit) {
    at = NextAfter(at);
    if (at == absl::InfiniteFuture() || at > until) break;
    fires.push_back(at);
  }
  return fires;
}

}  // namespace ecliptix::server
