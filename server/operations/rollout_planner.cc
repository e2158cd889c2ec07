#include "server/operations/rollout_planner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/bundle/bundle.h"
#include "common/labels.h"
#include "common/rollout_names.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// A wave size: a count ("3") or a percentage ("25%").
struct WaveSize {
  bool percent = false;
  double value = 0;
};

absl::StatusOr<WaveSize> ParseWaveSize(absl::string_view text, int index) {
  text = absl::StripAsciiWhitespace(text);
  WaveSize size;
  absl::string_view number = text;
  if (absl::ConsumeSuffix(&number, "%")) size.percent = true;
  if (!absl::SimpleAtod(number, &size.value) || std::isnan(size.value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.waves[", index, "] \"", text,
        "\" is not a count or a percentage; write waves like 1,25%,100%"));
  }
  if (size.value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.waves[", index, "] \"", text,
        "\" is empty; every wave needs at least one database (e.g. 1 or 10%)"));
  }
  if (size.percent && size.value > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("strategy.waves[", index, "] \"", text,
                     "\" is more than 100%; waves are cumulative, so the last "
                     "one is at most 100%"));
  }
  if (!size.percent && size.value != std::floor(size.value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("strategy.waves[", index, "] \"", text,
                     "\" must be a whole number of databases"));
  }
  return size;
}

absl::StatusOr<int> ParseMinutes(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  int hours = 0, minutes = 0;
  if (parts.size() != 2 || parts[0].size() != 2 || parts[1].size() != 2 ||
      !absl::SimpleAtoi(parts[0], &hours) ||
      !absl::SimpleAtoi(parts[1], &minutes) || hours < 0 || hours > 24 ||
      minutes < 0 || minutes > 59 || (hours == 24 && minutes != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time \"", text, "\" is not HH:MM (00:00 to 24:00)"));
  }
  return hours * 60 + minutes;
}

const std::vector<std::string>& DayNames() {
  static const auto* names = new std::vector<std::string>{
      "mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  return *names;
}

int DayIndex(absl::Weekday weekday) {
  switch (weekday) {
    case absl::Weekday::monday:
      return 0;
    case absl::Weekday::tuesday:
      return 1;
    case absl::Weekday::wednesday:
      return 2;
    case absl::Weekday::thursday:
      return 3;
    case absl::Weekday::friday:
      return 4;
    case absl::Weekday::saturday:
      return 5;
    case absl::Weekday::sunday:
      return 6;
  }
  return 0;
}

absl::Status ValidateWindow(const v1::MaintenanceWindow& window) {
  absl::TimeZone zone;
  if (!window.time_zone().empty() &&
      !absl::LoadTimeZone(window.time_zone(), &zone)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maintenance window time zone \"", window.time_zone(),
        "\" is unknown; use an IANA name such as Europe/Berlin or UTC"));
  }
  absl::StatusOr<int> start = ParseMinutes(window.start());
  if (!start.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("window start: ", start.status().message()));
  absl::StatusOr<int> end = ParseMinutes(window.end());
  if (!end.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("window end: ", end.status().message()));
  if (*start == *end) {
    return absl::InvalidArgumentError(
        "maintenance window start and end are equal");
  }
  for (const std::string& day : window.days()) {
    if (std::find(DayNames().begin(), DayNames().end(),
                  absl::AsciiStrToLower(day)) == DayNames().end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "maintenance window day \"", day, "\" is not one of mon..sun"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateStrategy(const v1::Strategy& strategy) {
  double last_percent = 0, last_count = 0;
  for (int i = 0; i < strategy.waves_size(); ++i) {
    absl::StatusOr<WaveSize> size = ParseWaveSize(strategy.waves(i), i);
    if (!size.ok()) return size.status();
    // Cumulative sizes must not shrink within the same unit.
    double& last = size->percent ? last_percent : last_count;
    if (size->value < last) {
      return absl::InvalidArgumentError(absl::StrCat(
          "strategy.waves \"", absl::StrJoin(strategy.waves(), ","),
          "\" shrinks at \"", strategy.waves(i),
          "\"; wave sizes are cumulative (1,25%,100% means 1, then up to 25%, "
          "then all)"));
    }
    last = size->value;
  }
  if (strategy.max_parallel() < 0) {
    return absl::InvalidArgumentError(
        "strategy.max_parallel must not be negative (0: whole wave)");
  }
  if (absl::StatusOr<int> budget =
          FailureBudget(strategy.failure_budget(), 100);
      !budget.ok()) {
    return budget.status();
  }
  if (strategy.pause_between_waves().seconds() < 0 ||
      strategy.offline_deadline().seconds() < 0) {
    return absl::InvalidArgumentError(
        "strategy durations must not be negative");
  }
  if (strategy.has_success_gate()) {
    const auto& gate = strategy.success_gate();
    // The figures count the whole minutes inside a window: 2 minutes hold at
    // least one wherever they start.
    auto too_short = [](const google::protobuf::Duration& duration) {
      return duration.seconds() < 0 || duration.nanos() < 0 ||
             ((duration.seconds() != 0 || duration.nanos() != 0) &&
              duration.seconds() < 120);
    };
    if (too_short(gate.soak()) || too_short(gate.baseline())) {
      return absl::InvalidArgumentError(
          "strategy.success_gate: soak and baseline must be at least 2 "
          "minutes (the figures count whole minutes), or 0 for 5 minutes and "
          "1 hour");
    }
  }
  for (const std::string& key : strategy.order_by_labels()) {
    if (absl::Status status = ValidateLabelKey(key); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("strategy.order_by_labels: ", status.message()));
    }
  }
  if (!strategy.order_values().empty() && strategy.order_by_labels().empty()) {
    return absl::InvalidArgumentError(
        "strategy.order_values needs order_by_labels (the label whose values "
        "they order)");
  }
  if (!v1::AutoRollback_IsValid(strategy.auto_rollback()) ||
      !v1::OfflinePolicy_IsValid(strategy.offline_policy())) {
    return absl::InvalidArgumentError(
        "strategy: unknown auto_rollback or offline_policy");
  }
  return absl::OkStatus();
}

absl::Status ValidateGates(const std::vector<v1::GateSpec>& gates) {
  std::set<int> seen;
  for (const v1::GateSpec& gate : gates) {
    if (gate.kind() == v1::GATE_KIND_UNSPECIFIED ||
        !v1::GateKind_IsValid(gate.kind())) {
      return absl::InvalidArgumentError(
          absl::StrCat("gates: unknown kind; use one of ", GateNames()));
    }
    if (!seen.insert(gate.kind()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("gates: ", GateName(gate.kind()), " is given twice"));
    }
    if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW) {
      if (!gate.has_window()) {
        return absl::InvalidArgumentError(
            "gates: the maintenance window gate needs a window (time zone, "
            "start, end, days)");
      }
      if (absl::Status status = ValidateWindow(gate.window()); !status.ok())
        return status;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> FailureBudget(const std::string& budget, int target_count) {
  absl::string_view text = absl::StripAsciiWhitespace(budget);
  if (text.empty()) return 0;
  absl::string_view number = text;
  const bool percent = absl::ConsumeSuffix(&number, "%");
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || value < 0 ||
      (percent && value > 100) || (!percent && value != std::floor(value))) {
    return absl::InvalidArgumentError(
        absl::StrCat("strategy.failure_budget \"", budget,
                     "\" is not a count (0, 2) or a percentage (0% to 100%) of "
                     "the databases"));
  }
  if (!percent) return static_cast<int>(value);
  return static_cast<int>(std::floor(value * target_count / 100.0));
}

absl::StatusOr<std::vector<v1::RolloutTarget>> AssignWaves(
    const v1::Strategy& strategy, const std::vector<v1::Database>& databases) {
  if (absl::Status status = ValidateStrategy(strategy); !status.ok())
    return status;
  std::vector<const v1::Database*> ordered;
  for (const v1::Database& database : databases) ordered.push_back(&database);
  std::map<std::string, int> value_rank;
  for (int i = 0; i < strategy.order_values_size(); ++i)
    value_rank[strategy.order_values(i)] = i;
  auto key = [&](const v1::Database* database) {
    std::vector<std::string> parts;
    for (int i = 0; i < strategy.order_by_labels_size(); ++i) {
      auto it = database->labels().find(strategy.order_by_labels(i));
      const std::string value =
          it == database->labels().end() ? "" : it->second;
      if (i == 0) {
        auto rank = value_rank.find(value);
        // Listed values first, in the listed order; the rest alphabetically
        // after them.
        parts.push_back(rank != value_rank.end()
                            ? absl::StrFormat("0%06d", rank->second)
                            : absl::StrCat("1", value));
      } else {
        parts.push_back(value);
      }
    }
    parts.push_back(database->database_id());
    return parts;
  };
  std::stable_sort(ordered.begin(), ordered.end(),
                   [&](const v1::Database* a, const v1::Database* b) {
                     return key(a) < key(b);
                   });

  const int total = static_cast<int>(ordered.size());
  std::vector<int> cumulative;
  for (int i = 0; i < strategy.waves_size(); ++i) {
    const WaveSize size = *ParseWaveSize(strategy.waves(i), i);
    const int count =
        size.percent ? static_cast<int>(std::ceil(size.value * total / 100.0))
                     : static_cast<int>(size.value);
    cumulative.push_back(std::min(count, total));
  }
  if (cumulative.empty() || cumulative.back() < total)
    cumulative.push_back(total);

  std::vector<v1::RolloutTarget> targets;
  int wave = 0, assigned = 0;
  for (int boundary : cumulative) {
    if (boundary <= assigned)
      continue;  // An empty wave (sizes overlapping) is dropped.
    ++wave;
    for (; assigned < boundary; ++assigned) {
      const v1::Database& database = *ordered[assigned];
      v1::RolloutTarget& target = targets.emplace_back();
      target.set_database_id(database.database_id());
      target.set_wave(wave);
      target.set_state(v1::TARGET_STATE_PENDING);
      target.mutable_labels()->insert(database.labels().begin(),
                                      database.labels().end());
    }
  }
  return targets;
}

absl::StatusOr<std::vector<std::string>> PhasesToDeploy(
    const v1::Strategy& strategy, const v1::BundleManifest& manifest) {
  std::set<std::string> wanted(strategy.phases().begin(),
                               strategy.phases().end());
  std::vector<std::string> phases;
  for (const v1::Phase& phase : manifest.phases()) {
    if (wanted.empty() || wanted.erase(phase.name()) > 0)
      phases.push_back(phase.name());
  }
  if (!wanted.empty()) {
    std::vector<std::string> known;
    for (const v1::Phase& phase : manifest.phases())
      known.push_back(phase.name());
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.phases: bundle ", manifest.name(), " has no phase \"",
        *wanted.begin(), "\"; its phases are ", absl::StrJoin(known, ", ")));
  }
  return phases;
}

absl::StatusOr<WindowCheck> CheckWindow(const v1::MaintenanceWindow& window,
                                        absl::Time now) {
  if (absl::Status status = ValidateWindow(window); !status.ok()) return status;
  absl::TimeZone zone = absl::UTCTimeZone();
  if (!window.time_zone().empty())
    absl::LoadTimeZone(window.time_zone(), &zone);
  const absl::TimeZone::CivilInfo civil = zone.At(now);
  const int minute = civil.cs.hour() * 60 + civil.cs.minute();
  const int start = *ParseMinutes(window.start());
  const int end = *ParseMinutes(window.end());
  // A window that crosses midnight belongs to the day it opens.
  const bool crosses_midnight = end < start;
  bool in_time;
  int day = DayIndex(absl::GetWeekday(civil.cs));
  if (!crosses_midnight) {
    in_time = minute >= start && minute < end;
  } else if (minute >= start) {
    in_time = true;
  } else {
    in_time = minute < end;
    day = (day + 6) % 7;  // Opened yesterday.
  }
  bool day_ok = window.days().empty();
  for (const std::string& name : window.days()) {
    if (absl::AsciiStrToLower(name) == DayNames()[day]) day_ok = true;
  }
  WindowCheck check;
  check.inside = in_time && day_ok;
  const std::string zone_name =
      window.time_zone().empty() ? "UTC" : window.time_zone();
  const std::string days =
      window.days().empty() ? "every day" : absl::StrJoin(window.days(), ",");
  check.detail = absl::StrCat(
      check.inside ? "inside" : "outside", " the window ", window.start(), "-",
      window.end(), " ", zone_name, " (", days, "); it is ",
      absl::FormatTime("%a %H:%M", now, zone), " there");
  return check;
}

std::vector<std::string> StepsWithoutRevert(
    const v1::BundleManifest& manifest,
    const std::vector<std::string>& phases) {
  std::vector<std::string> missing;
  for (const v1::Phase& phase : manifest.phases()) {
    if (std::find(phases.begin(), phases.end(), phase.name()) == phases.end())
      continue;
    for (const v1::Step& step : phase.steps()) {
      for (int dialect : manifest.dialects()) {
        if (bundle::PathFor(step.revert(), static_cast<v1::Dialect>(dialect))
                .empty()) {
          missing.push_back(absl::StrCat(phase.name(), "/", step.name()));
          break;
        }
      }
    }
  }
  return missing;
}

}  // namespace ecliptix::server
