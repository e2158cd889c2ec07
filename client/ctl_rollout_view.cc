#include "client/ctl_rollout_view.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "client/ctl_format.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int kBarWidth = 20;
constexpr size_t kMaxErrorInTable = 80;
constexpr size_t kMaxIdsInLine = 8;

constexpr char kReset[] = "\x1b[0m";
constexpr char kRed[] = "\x1b[31m";
constexpr char kGreen[] = "\x1b[32m";
constexpr char kYellow[] = "\x1b[33m";
constexpr char kBold[] = "\x1b[1m";

// "ROLLOUT_STATE_WAITING_FOR_GATE" -> "waiting-for-gate".
std::string EnumName(const std::string& full_name, absl::string_view prefix) {
  absl::string_view name = full_name;
  if (name.empty() || absl::EndsWith(name, "UNSPECIFIED")) return "unknown";
  absl::ConsumePrefix(&name, prefix);
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", "-"}});
}

std::string OrDash(const std::string& text) {
  return text.empty() ? std::string("-") : text;
}

std::string OneLine(absl::string_view text) {
  return std::string(absl::StripAsciiWhitespace(
      absl::StrReplaceAll(text, {{"\r\n", " "}, {"\n", " "}, {"\t", " "}})));
}

std::string Shorten(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return absl::StrCat(text.substr(0, max - 3), "...");
}

std::string PhaseStep(const std::string& phase, const std::string& step) {
  if (phase.empty()) return step.empty() ? std::string("-") : step;
  if (step.empty()) return phase;
  return absl::StrCat(phase, "/", step);
}

std::string IdList(const std::vector<std::string>& ids) {
  if (ids.empty()) return "none";
  if (ids.size() <= kMaxIdsInLine) return absl::StrJoin(ids, ", ");
  return absl::StrCat(
      absl::StrJoin(ids.begin(), ids.begin() + kMaxIdsInLine, ", "), " (+",
      ids.size() - kMaxIdsInLine, " more)");
}

std::string Bytes(int64_t bytes) {
  if (bytes < 10 * 1024) return absl::StrCat(bytes, " B");
  if (bytes < 10 * 1024 * 1024) return absl::StrCat(bytes / 1024, " KiB");
  return absl::StrCat(bytes / (1024 * 1024), " MiB");
}

bool IsFinalTarget(v1::TargetState state) {
  return state == v1::TARGET_STATE_SUCCEEDED ||
         state == v1::TARGET_STATE_FAILED ||
         state == v1::TARGET_STATE_SKIPPED ||
         state == v1::TARGET_STATE_ROLLED_BACK;
}

bool IsActiveTarget(v1::TargetState state) {
  return state == v1::TARGET_STATE_RUNNING ||
         state == v1::TARGET_STATE_ROLLING_BACK;
}

// Elapsed time of a target: until it finished, or until `now` while it runs;
// "-" before it starts.
std::string Elapsed(const v1::RolloutTarget& target, absl::Time now) {
  const absl::Time started = ToTime(target.started_time());
  if (started == absl::InfinitePast()) return "-";
  absl::Time end = ToTime(target.finished_time());
  if (end == absl::InfinitePast()) {
    if (!IsActiveTarget(target.state()) &&
        target.state() != v1::TARGET_STATE_UNKNOWN) {
      return "-";
    }
    end = now;
  }
  return ShortDuration(end - started);
}

const char* RolloutStateColor(v1::RolloutState state) {
  switch (state) {
    case v1::ROLLOUT_STATE_SUCCEEDED:
      return kGreen;
    case v1::ROLLOUT_STATE_FAILED:
    case v1::ROLLOUT_STATE_ABORTED:
    case v1::ROLLOUT_STATE_ROLLED_BACK:
    case v1::ROLLOUT_STATE_ROLLING_BACK:
      return kRed;
    default:
      return kYellow;
  }
}

const char* TargetStateColor(v1::TargetState state) {
  switch (state) {
    case v1::TARGET_STATE_SUCCEEDED:
      return kGreen;
    case v1::TARGET_STATE_FAILED:
    case v1::TARGET_STATE_UNKNOWN:
    case v1::TARGET_STATE_ROLLED_BACK:
    case v1::TARGET_STATE_ROLLING_BACK:
      return kRed;
    case v1::TARGET_STATE_RUNNING:
      return kYellow;
    default:
      return "";
  }
}

// `text` padded to `width`, wrapped in `color` when given (the padding stays
// outside, so columns line up).
std::string Colored(const std::string& text, const char* color, bool tty,
                    size_t width = 0) {
  std::string padding(width > text.size() ? width - text.size() : 0, ' ');
  if (!tty || color == nullptr || *color == '\0') return text + padding;
  return absl::StrCat(color, text, kReset, padding);
}

// Cuts `line` to `width` visible columns, keeping escape sequences whole.
std::string FitWidth(const std::string& line, int width) {
  if (width <= 0) return line;
  std::string out;
  int visible = 0;
  bool cut = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {
      const size_t end = line.find('m', i);
      if (end == std::string::npos) break;
      out.append(line, i, end - i + 1);
      i = end;
      continue;
    }
    // UTF-8 continuation bytes take no column.
    const bool starts_char =
        (static_cast<unsigned char>(line[i]) & 0xC0) != 0x80;
    if (starts_char) {
      if (visible == width) {
        cut = true;
        continue;
      }
      ++visible;
    } else if (cut) {
      continue;
    }
    if (!cut) out.push_back(line[i]);
  }
  if (cut && out.find('\x1b') != std::string::npos) out += kReset;
  return out;
}

struct WaveCounts {
  int total = 0;
  int finished = 0;
  int succeeded = 0;
  int failed = 0;
  int skipped = 0;
  int rolled_back = 0;
  int running = 0;
  int unknown = 0;
};

std::map<int, WaveCounts> CountWaves(const v1::Rollout& rollout) {
  std::map<int, WaveCounts> waves;
  for (int wave = 1; wave <= rollout.wave_count(); ++wave) waves[wave];
  for (const v1::RolloutTarget& target : rollout.targets()) {
    WaveCounts& counts = waves[target.wave()];
    ++counts.total;
    if (IsFinalTarget(target.state())) ++counts.finished;
    switch (target.state()) {
      case v1::TARGET_STATE_SUCCEEDED:
        ++counts.succeeded;
        break;
      case v1::TARGET_STATE_FAILED:
        ++counts.failed;
        break;
      case v1::TARGET_STATE_SKIPPED:
        ++counts.skipped;
        break;
      case v1::TARGET_STATE_ROLLED_BACK:
        ++counts.rolled_back;
        break;
      case v1::TARGET_STATE_RUNNING:
      case v1::TARGET_STATE_ROLLING_BACK:
        ++counts.running;
        break;
      case v1::TARGET_STATE_UNKNOWN:
        ++counts.unknown;
        break;
      default:
        break;
    }
  }
  return waves;
}

// "1 succeeded, 1 failed" (only the non-zero ones); "nothing ran" when none.
std::string OutcomeText(const WaveCounts& counts) {
  std::vector<std::string> parts;
  if (counts.succeeded > 0) {
    parts.push_back(absl::StrCat(counts.succeeded, " succeeded"));
  }
  if (counts.failed > 0)
    parts.push_back(absl::StrCat(counts.failed, " failed"));
  if (counts.skipped > 0) {
    parts.push_back(absl::StrCat(counts.skipped, " skipped"));
  }
  if (counts.rolled_back > 0) {
    parts.push_back(absl::StrCat(counts.rolled_back, " rolled back"));
  }
  if (counts.unknown > 0) {
    parts.push_back(absl::StrCat(counts.unknown, " unknown"));
  }
  if (counts.running > 0) {
    parts.push_back(absl::StrCat(counts.running, " running"));
  }
  if (parts.empty()) return "nothing ran";
  return absl::StrJoin(parts, ", ");
}

std::string WaveBar(int wave, const WaveCounts& counts) {
  const int filled =
      counts.total == 0 ? 0 : counts.finished * kBarWidth / counts.total;
  std::string line = absl::StrCat("wave ", wave, " [", std::string(filled, '#'),
                                  std::string(kBarWidth - filled, '-'), "] ",
                                  counts.finished, "/", counts.total, " done");
  if (counts.running > 0)
    absl::StrAppend(&line, ", ", counts.running, " running");
  if (counts.failed > 0) absl::StrAppend(&line, ", ", counts.failed, " failed");
  if (counts.skipped > 0) {
    absl::StrAppend(&line, ", ", counts.skipped, " skipped");
  }
  if (counts.rolled_back > 0) {
    absl::StrAppend(&line, ", ", counts.rolled_back, " rolled back");
  }
  if (counts.unknown > 0) {
    absl::StrAppend(&line, ", ", counts.unknown, " unknown");
  }
  return line;
}

std::string WaveText(const v1::Rollout& rollout) {
  return absl::StrCat("wave ", rollout.current_wave(), "/",
                      rollout.wave_count());
}

std::string FailuresText(const v1::Rollout& rollout) {
  return absl::StrCat("failures ", rollout.failures(), "/",
                      rollout.failure_budget());
}

std::string GateState(const v1::GateStatus& gate) {
  return gate.satisfied() ? "satisfied" : "waiting";
}

std::string StepOutcomeName(v1::StepOutcome outcome) {
  return EnumName(v1::StepOutcome_Name(outcome), "STEP_OUTCOME_");
}

}  // namespace

std::string ShortDuration(absl::Duration duration) {
  if (duration < absl::ZeroDuration()) duration = absl::ZeroDuration();
  if (duration < absl::Seconds(1)) {
    return absl::StrCat(absl::ToInt64Milliseconds(duration), " ms");
  }
  if (duration < absl::Seconds(60)) {
    return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(duration));
  }
  const int64_t seconds = absl::ToInt64Seconds(duration);
  if (duration < absl::Hours(1)) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%dh%02dm", seconds / 3600, (seconds / 60) % 60);
}

std::string StrategyText(const v1::Strategy& strategy) {
  std::vector<std::string> parts;
  parts.push_back(
      strategy.waves().empty()
          ? std::string("one wave")
          : absl::StrCat("waves ", absl::StrJoin(strategy.waves(), ",")));
  if (strategy.max_parallel() > 0) {
    parts.push_back(absl::StrCat("max parallel ", strategy.max_parallel()));
  }
  parts.push_back(absl::StrCat(
      "failure budget ",
      strategy.failure_budget().empty() ? "0" : strategy.failure_budget()));
  const absl::Duration pause =
      FromProtoDuration(strategy.pause_between_waves());
  if (pause > absl::ZeroDuration()) {
    parts.push_back(absl::StrCat("pause ", absl::FormatDuration(pause)));
  }
  if (strategy.approval_required()) parts.push_back("approval between waves");
  if (strategy.auto_rollback() == v1::AUTO_ROLLBACK_FAILED_TARGETS) {
    parts.push_back("auto-rollback failed targets");
  } else if (strategy.auto_rollback() == v1::AUTO_ROLLBACK_ROLLOUT) {
    parts.push_back("auto-rollback all on failure");
  }
  const absl::Duration deadline =
      FromProtoDuration(strategy.offline_deadline());
  parts.push_back(absl::StrCat(
      "offline: ",
      strategy.offline_policy() == v1::OFFLINE_POLICY_SKIP ? "skip" : "fail",
      " after ",
      deadline > absl::ZeroDuration() ? absl::FormatDuration(deadline)
                                      : std::string("5m")));
  if (!strategy.order_by_labels().empty()) {
    std::string order = absl::StrCat(
        "order by ", absl::StrJoin(strategy.order_by_labels(), ","));
    if (!strategy.order_values().empty()) {
      absl::StrAppend(&order, " (", strategy.order_by_labels(0), ": ",
                      absl::StrJoin(strategy.order_values(), ","), " first)");
    }
    parts.push_back(std::move(order));
  }
  if (strategy.backup_first()) parts.push_back("backup first");
  if (strategy.adopt()) parts.push_back("adopt existing objects");
  if (!strategy.phases().empty()) {
    parts.push_back(
        absl::StrCat("phases ", absl::StrJoin(strategy.phases(), ",")));
  }
  return absl::StrJoin(parts, "; ");
}

std::string RolloutStatusLine(const v1::Rollout& rollout) {
  std::string line = absl::StrCat(
      rollout.rollout_id(), " ", OrDash(rollout.bundle_name_version()), ": ",
      RolloutStateName(rollout.state()), ", ", WaveText(rollout), ", ",
      FailuresText(rollout));
  if (!rollout.waiting_reason().empty()) {
    absl::StrAppend(&line, "; ", OneLine(rollout.waiting_reason()));
  }
  return line;
}

std::string RolloutCreatedText(const v1::Rollout& rollout) {
  std::map<int, int> per_wave;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    ++per_wave[target.wave()];
  }
  std::vector<std::string> sizes;
  for (const auto& [wave, count] : per_wave)
    sizes.push_back(absl::StrCat(count));
  std::string text = absl::StrCat(
      "rollout ", rollout.rollout_id(),
      " created: ", OrDash(rollout.bundle_name_version()), " to ",
      rollout.targets_size(),
      rollout.targets_size() == 1 ? " database" : " databases", " in ",
      rollout.wave_count(), rollout.wave_count() == 1 ? " wave" : " waves");
  if (!sizes.empty())
    absl::StrAppend(&text, " (", absl::StrJoin(sizes, ", "), ")");
  absl::StrAppend(&text, ", ", RolloutStateName(rollout.state()), "\n");
  absl::StrAppend(&text, "  strategy: ", StrategyText(rollout.strategy()),
                  "\n");
  for (const v1::GateStatus& gate : rollout.gates()) {
    absl::StrAppend(&text, "  gate ", GateName(gate.kind()), ": ",
                    GateState(gate));
    if (!gate.detail().empty()) {
      absl::StrAppend(&text, " (", OneLine(gate.detail()), ")");
    }
    absl::StrAppend(&text, "\n");
  }
  if (!rollout.waiting_reason().empty()) {
    absl::StrAppend(&text, "  waiting: ", OneLine(rollout.waiting_reason()),
                    "\n");
  }
  absl::StrAppend(&text, "  follow it: ecliptixctl rollout watch ",
                  rollout.rollout_id(), "\n");
  return text;
}

std::string TargetTable(const v1::Rollout& rollout, absl::Time now) {
  if (rollout.operation().has_job_run() || rollout.operation().has_query()) {
    // What a job run or a query did: rows, not steps.
    const bool job = rollout.operation().has_job_run();
    std::vector<std::vector<std::string>> rows = {
        {"DATABASE", "WAVE", "STATE", job ? "ROWS DONE" : "ROWS",
         job ? "ROWS LEFT" : "", job ? "BATCHES" : "", "ELAPSED", "ERROR"}};
    for (const v1::RolloutTarget& target : rollout.targets()) {
      rows.push_back(
          {target.database_id(), absl::StrCat(target.wave()),
           TargetStateName(target.state()),
           absl::StrCat(job ? target.rows_done() : target.rows_returned()),
           job && target.batches() > 0 ? absl::StrCat(target.rows_left()) : "",
           job ? absl::StrCat(target.batches()) : "", Elapsed(target, now),
           Shorten(OneLine(target.error()), kMaxErrorInTable)});
    }
    return AlignedTable(rows);
  }
  if (rollout.operation().has_config_change() ||
      rollout.operation().has_config_read()) {
    // A configuration change has no phases or steps: outcome per database.
    std::vector<std::vector<std::string>> rows = {
        {"DATABASE", "WAVE", "STATE", "ELAPSED", "ERROR"}};
    for (const v1::RolloutTarget& target : rollout.targets()) {
      rows.push_back({target.database_id(), absl::StrCat(target.wave()),
                      TargetStateName(target.state()), Elapsed(target, now),
                      Shorten(OneLine(target.error()), kMaxErrorInTable)});
    }
    return AlignedTable(rows);
  }
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "WAVE", "STATE", "PHASE/STEP", "APPLIED/SKIPPED", "ELAPSED",
       "ERROR"}};
  for (const v1::RolloutTarget& target : rollout.targets()) {
    rows.push_back(
        {target.database_id(), absl::StrCat(target.wave()),
         TargetStateName(target.state()),
         PhaseStep(target.phase(), target.step()),
         absl::StrCat(target.steps_applied(), "/", target.steps_skipped()),
         Elapsed(target, now),
         Shorten(OneLine(target.error()), kMaxErrorInTable)});
  }
  return AlignedTable(rows);
}

std::string RolloutDetails(const v1::Rollout& rollout, absl::Time now) {
  auto when = [now](const google::protobuf::Timestamp& timestamp) {
    const absl::Time time = ToTime(timestamp);
    if (time == absl::InfinitePast()) return std::string("-");
    return absl::StrCat(TimestampText(timestamp), " (", RelativeTime(time, now),
                        ")");
  };
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Rollout", rollout.rollout_id()},
      {"Bundle", absl::StrCat(OrDash(rollout.bundle_name_version()), " (",
                              OrDash(rollout.bundle_id()), ")")},
      {"State", absl::StrCat(RolloutStateName(rollout.state()), ", ",
                             WaveText(rollout))},
  };
  if (!rollout.waiting_reason().empty()) {
    fields.emplace_back("Waiting", OneLine(rollout.waiting_reason()));
  }
  if (ToTime(rollout.resume_time()) != absl::InfinitePast()) {
    fields.emplace_back("Next wave", when(rollout.resume_time()));
  }
  fields.emplace_back("Selector", rollout.selector().empty()
                                      ? std::string("<all databases>")
                                      : rollout.selector());
  fields.emplace_back("Strategy", StrategyText(rollout.strategy()));
  fields.emplace_back("Phases", rollout.phases().empty()
                                    ? std::string("-")
                                    : absl::StrJoin(rollout.phases(), ", "));
  fields.emplace_back("Failures", absl::StrCat(rollout.failures(), " (budget ",
                                               rollout.failure_budget(), ")"));
  fields.emplace_back("Created",
                      absl::StrCat(when(rollout.create_time()), " by ",
                                   OrDash(rollout.created_by())));
  fields.emplace_back("Finished", when(rollout.finish_time()));
  if (!rollout.description().empty()) {
    fields.emplace_back("Description", OneLine(rollout.description()));
  }
  size_t width = 0;
  for (const auto& field : fields) width = std::max(width, field.first.size());
  std::string text;
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&text, key, ":", std::string(width - key.size() + 2, ' '),
                    value, "\n");
  }
  if (!rollout.gates().empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const v1::GateStatus& gate : rollout.gates()) {
      std::string detail = OneLine(gate.detail());
      if (!gate.attested_by().empty() &&
          detail.find(gate.attested_by()) == std::string::npos) {
        absl::StrAppend(&detail, detail.empty() ? "" : "; ", "attested by ",
                        gate.attested_by(), " at ",
                        TimestampText(gate.attested_time()));
      }
      if (!gate.comment().empty()) {
        absl::StrAppend(&detail, " (", OneLine(gate.comment()), ")");
      }
      rows.push_back(
          {absl::StrCat("  ", GateName(gate.kind())), GateState(gate), detail});
    }
    absl::StrAppend(&text, "Gates:\n", AlignedTable(rows));
  }
  if (!rollout.targets().empty()) {
    absl::StrAppend(&text, "\n", TargetTable(rollout, now));
  }
  return text;
}

std::string RolloutTable(const std::vector<v1::Rollout>& rollouts,
                         absl::Time now) {
  std::vector<std::vector<std::string>> rows = {{"ROLLOUT", "BUNDLE", "STATE",
                                                 "WAVE", "FAILURES", "CREATED",
                                                 "BY", "DESCRIPTION"}};
  for (const v1::Rollout& rollout : rollouts) {
    rows.push_back(
        {rollout.rollout_id(), OrDash(rollout.bundle_name_version()),
         RolloutStateName(rollout.state()),
         absl::StrCat(rollout.current_wave(), "/", rollout.wave_count()),
         absl::StrCat(rollout.failures(), "/", rollout.failure_budget()),
         RelativeTime(ToTime(rollout.create_time()), now),
         OrDash(rollout.created_by()),
         Shorten(OneLine(rollout.description()), 50)});
  }
  return AlignedTable(rows);
}

std::string PlanText(const v1::RolloutPlan& plan) {
  const v1::Rollout& rollout = plan.rollout();
  std::map<int, std::vector<std::string>> waves;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    waves[target.wave()].push_back(target.database_id());
  }
  std::string text = absl::StrCat(
      "Plan: ", OrDash(rollout.bundle_name_version()), " to ",
      rollout.targets_size(),
      rollout.targets_size() == 1 ? " database" : " databases", " in ",
      rollout.wave_count(), rollout.wave_count() == 1 ? " wave" : " waves");
  if (!plan.offline_databases().empty()) {
    absl::StrAppend(&text, " (", plan.offline_databases_size(), " offline)");
  }
  absl::StrAppend(&text, "\nStrategy: ", StrategyText(rollout.strategy()),
                  "\n");
  if (!rollout.phases().empty()) {
    absl::StrAppend(&text, "Phases: ", absl::StrJoin(rollout.phases(), ", "),
                    "\n");
  }
  for (const v1::GateStatus& gate : rollout.gates()) {
    absl::StrAppend(&text, "Gate ", GateName(gate.kind()), ": ",
                    GateState(gate));
    if (!gate.detail().empty()) {
      absl::StrAppend(&text, " (", OneLine(gate.detail()), ")");
    }
    absl::StrAppend(&text, "\n");
  }
  absl::StrAppend(&text, "\nWaves:\n");
  for (const auto& [wave, ids] : waves) {
    absl::StrAppend(&text, "  wave ", wave, " (", ids.size(),
                    "): ", absl::StrJoin(ids, ", "), "\n");
  }
  absl::StrAppend(&text, "\nPending steps:\n");
  if (plan.targets().empty()) absl::StrAppend(&text, "  none\n");
  for (const v1::TargetPlan& target : plan.targets()) {
    absl::StrAppend(&text, "  ", target.database_id(), " (wave ", target.wave(),
                    ")");
    if (!target.error().empty()) {
      absl::StrAppend(
          &text, ": cannot read its history: ", OneLine(target.error()), "\n");
      continue;
    }
    if (target.pending_steps().empty()) {
      absl::StrAppend(&text, ": nothing to do, every step is applied\n");
      continue;
    }
    absl::StrAppend(&text, ": ", target.pending_steps_size(),
                    target.pending_steps_size() == 1 ? " step" : " steps",
                    "\n");
    std::vector<std::vector<std::string>> rows;
    for (const v1::DeploymentEvent& step : target.pending_steps()) {
      rows.push_back(
          {absl::StrCat("    ", PhaseStep(step.phase(), step.step())),
           OneLine(step.step_planned().reason())});
    }
    absl::StrAppend(&text, AlignedTable(rows));
  }
  if (!plan.offline_databases().empty()) {
    absl::StrAppend(&text, "\nOffline (pending steps unknown): ",
                    absl::StrJoin(plan.offline_databases(), ", "), "\n");
  }
  return text;
}

RolloutView::RolloutView(Options options) : options_(std::move(options)) {}

RolloutView::RolloutView(v1::Rollout rollout, Options options)
    : options_(std::move(options)),
      rollout_(std::move(rollout)),
      applied_sequence_(rollout_.last_event_sequence()) {}

v1::RolloutTarget& RolloutView::Target(const std::string& database_id) {
  return FindOrAddTarget(&rollout_, database_id);
}

bool RolloutView::IsNotable(const v1::RolloutEvent& event) {
  switch (event.kind_case()) {
    case v1::RolloutEvent::kStateChanged:
    case v1::RolloutEvent::kWave:
    case v1::RolloutEvent::kGate:
      return true;
    case v1::RolloutEvent::kTarget:
      return event.target().state() == v1::TARGET_STATE_FAILED ||
             event.target().state() == v1::TARGET_STATE_SKIPPED ||
             event.target().state() == v1::TARGET_STATE_UNKNOWN ||
             event.target().state() == v1::TARGET_STATE_ROLLED_BACK;
    case v1::RolloutEvent::kDeployment:
      return event.deployment().event().has_step_failed() ||
             event.deployment().event().has_backup_completed();
    default:
      return false;
  }
}

std::vector<std::string> RolloutView::Apply(const v1::RolloutEvent& event) {
  // Described after the update, so "wave 1 finished" can count its outcome.
  if (event.has_snapshot() || event.sequence() > applied_sequence_) {
    Update(event);
  }
  std::string text = Describe(event);
  if (text.empty()) return {};
  const absl::Time time = ToTime(event.event_time());
  const std::string clock =
      time == absl::InfinitePast()
          ? std::string("--:--:--")
          : absl::FormatTime("%H:%M:%S", time, options_.zone);
  return {absl::StrCat(clock, " ", text)};
}

void RolloutView::Update(const v1::RolloutEvent& event) {
  // The rollout changes exactly as the server's copy does; the view keeps,
  // besides, what only a live display wants.
  ApplyRolloutEvent(event, &rollout_);
  switch (event.kind_case()) {
    case v1::RolloutEvent::kSnapshot:
      applied_sequence_ =
          std::max(event.sequence(), event.snapshot().last_event_sequence());
      statements_.clear();
      return;
    case v1::RolloutEvent::kTarget:
      if (!IsActiveTarget(event.target().state())) {
        statements_.erase(event.target().database_id());
      }
      break;
    case v1::RolloutEvent::kDeployment: {
      const v1::DeploymentEvent& deployment = event.deployment().event();
      const std::string& id = event.deployment().database_id();
      // The server knows the phase from the command it sent; the view learns
      // it from the agent's events.
      if (!deployment.phase().empty()) Target(id).set_phase(deployment.phase());
      switch (deployment.kind_case()) {
        case v1::DeploymentEvent::kStepStarted:
          statements_[id] = {0, deployment.step_started().statement_count()};
          break;
        case v1::DeploymentEvent::kStatementProgress:
          statements_[id] = {deployment.statement_progress().statement_index(),
                             deployment.statement_progress().statement_count()};
          break;
        case v1::DeploymentEvent::kStepFinished:
        case v1::DeploymentEvent::kStepFailed:
          statements_.erase(id);
          break;
        default:
          break;
      }
      break;
    }
    default:
      break;
  }
  applied_sequence_ = std::max(applied_sequence_, event.sequence());
}

std::string RolloutView::Describe(const v1::RolloutEvent& event) const {
  switch (event.kind_case()) {
    case v1::RolloutEvent::kSnapshot: {
      const v1::Rollout& rollout = event.snapshot();
      return absl::StrCat(
          "rollout ", RolloutStatusLine(rollout), ", ", rollout.targets_size(),
          rollout.targets_size() == 1 ? " database" : " databases");
    }
    case v1::RolloutEvent::kStateChanged: {
      const v1::RolloutStateChanged& changed = event.state_changed();
      std::string text =
          absl::StrCat("rollout ", RolloutStateName(changed.state()));
      if (!changed.actor().empty())
        absl::StrAppend(&text, " by ", changed.actor());
      if (!changed.reason().empty()) {
        absl::StrAppend(&text, ": ", OneLine(changed.reason()));
      }
      return text;
    }
    case v1::RolloutEvent::kWave: {
      const v1::WaveEvent& wave = event.wave();
      if (wave.started()) {
        return absl::StrCat(
            "wave ", wave.wave(), " started: ",
            IdList({wave.database_ids().begin(), wave.database_ids().end()}));
      }
      const std::map<int, WaveCounts> counts = CountWaves(rollout_);
      auto it = counts.find(wave.wave());
      return absl::StrCat("wave ", wave.wave(), " finished: ",
                          it == counts.end() ? std::string("nothing ran")
                                             : OutcomeText(it->second));
    }
    case v1::RolloutEvent::kTarget: {
      const v1::TargetStateChanged& changed = event.target();
      std::string text = absl::StrCat(changed.database_id(), " ",
                                      TargetStateName(changed.state()));
      if (changed.state() == v1::TARGET_STATE_SUCCEEDED) {
        for (const v1::RolloutTarget& target : rollout_.targets()) {
          if (target.database_id() != changed.database_id()) continue;
          if (rollout_.operation().has_job_run()) {
            absl::StrAppend(&text, " (", target.rows_done(), " rows in ",
                            target.batches(),
                            target.batches() == 1 ? " batch)" : " batches)");
          } else if (rollout_.operation().has_query()) {
            absl::StrAppend(&text, " (", target.rows_returned(), " rows)");
          } else if (!rollout_.operation().has_config_change() &&
                     !rollout_.operation().has_config_read()) {
            absl::StrAppend(&text, " (", target.steps_applied(), " applied, ",
                            target.steps_skipped(), " skipped)");
          }
        }
      }
      if (!changed.error().empty()) {
        absl::StrAppend(&text, ": ", OneLine(changed.error()));
      }
      return text;
    }
    case v1::RolloutEvent::kDeployment: {
      const v1::DeploymentEvent& deployment = event.deployment().event();
      const std::string prefix =
          absl::StrCat(event.deployment().database_id(), " ",
                       PhaseStep(deployment.phase(), deployment.step()));
      switch (deployment.kind_case()) {
        case v1::DeploymentEvent::kStepStarted:
          return absl::StrCat(prefix, " started");
        case v1::DeploymentEvent::kStatementProgress:
          return "";
        case v1::DeploymentEvent::kNotice:
          return absl::StrCat(prefix, ": ", OneLine(deployment.notice()));
        case v1::DeploymentEvent::kStepFinished: {
          const v1::StepFinished& finished = deployment.step_finished();
          std::string text = absl::StrCat(
              prefix, " ", StepOutcomeName(finished.outcome()), " (",
              ShortDuration(FromProtoDuration(finished.duration())));
          if (finished.rows_affected() > 0) {
            absl::StrAppend(&text, ", ", finished.rows_affected(),
                            finished.rows_affected() == 1 ? " row" : " rows");
          }
          return absl::StrCat(text, ")");
        }
        case v1::DeploymentEvent::kStepFailed: {
          const v1::StepFailed& failed = deployment.step_failed();
          std::string text = absl::StrCat(prefix, " failed: ");
          if (!failed.file().empty()) {
            absl::StrAppend(&text, failed.file());
            if (failed.line() > 0) absl::StrAppend(&text, ":", failed.line());
            absl::StrAppend(&text, ": ");
          }
          if (!failed.sql_state().empty()) {
            absl::StrAppend(&text, "[", failed.sql_state(), "] ");
          }
          absl::StrAppend(&text, OneLine(failed.message()));
          if (failed.rolled_back()) absl::StrAppend(&text, " (rolled back)");
          return text;
        }
        case v1::DeploymentEvent::kBackupCompleted: {
          const v1::BackupCompleted& backup = deployment.backup_completed();
          return absl::StrCat(event.deployment().database_id(),
                              " backup completed: ", backup.backup_id(), " (",
                              Bytes(backup.size_bytes()), ")");
        }
        case v1::DeploymentEvent::kStepPlanned:
          return absl::StrCat(prefix, " pending: ",
                              OneLine(deployment.step_planned().reason()));
        default:
          return absl::StrCat(prefix, " (unknown progress event)");
      }
    }
    case v1::RolloutEvent::kOperationBatch: {
      const v1::OperationBatch& batch = event.operation_batch().batch();
      std::string text = absl::StrCat(
          event.operation_batch().database_id(), " batch ", batch.batch(), ": ",
          batch.rows_done(), batch.rows_done() == 1 ? " row" : " rows");
      if (batch.rows_left() >= 0)
        absl::StrAppend(&text, ", ", batch.rows_left(), " left");
      absl::StrAppend(&text, ", ",
                      static_cast<int64_t>(batch.rows_per_second()), " rows/s");
      if (!batch.stop_reason().empty())
        absl::StrAppend(&text, " (", batch.stop_reason(), ")");
      return text;
    }
    case v1::RolloutEvent::kConfigValue: {
      const v1::ConfigValueReport& value = event.config_value().value();
      std::string text =
          absl::StrCat(event.config_value().database_id(), " ", value.key(),
                       " = ", value.present() ? value.value() : "(missing)");
      if (rollout_.operation().has_config_change()) {
        absl::StrAppend(
            &text, " (was ",
            value.previous_missing() ? "missing" : value.previous_value(),
            event.config_value().rollback() ? ", rollback)" : ")");
      }
      return text;
    }
    case v1::RolloutEvent::kQueryRows: {
      const v1::QueryRows& rows = event.query_rows().rows();
      std::string text =
          absl::StrCat(event.query_rows().database_id(), " ", rows.rows_size(),
                       rows.rows_size() == 1 ? " row" : " rows");
      if (rows.rows_truncated() > 0)
        absl::StrAppend(&text, " (", rows.rows_truncated(),
                        " more left out by the row limit)");
      return text;
    }
    case v1::RolloutEvent::kGate: {
      const v1::GateStatus& gate = event.gate();
      std::string text =
          absl::StrCat("gate ", GateName(gate.kind()), " ",
                       gate.satisfied() ? "satisfied" : "waiting");
      if (!gate.detail().empty()) {
        absl::StrAppend(&text, ": ", OneLine(gate.detail()));
      }
      return text;
    }
    default:
      return absl::StrCat("event ", event.sequence(),
                          " of a kind this ecliptixctl does not know");
  }
}

std::string RolloutView::Render(absl::Time now, int width, bool tty) const {
  std::vector<std::string> lines;
  // Header.
  absl::Time end = ToTime(rollout_.finish_time());
  if (end == absl::InfinitePast()) end = now;
  const absl::Time created = ToTime(rollout_.create_time());
  std::string header = absl::StrCat(
      tty ? kBold : "", OrDash(rollout_.rollout_id()), tty ? kReset : "", " ",
      OrDash(rollout_.bundle_name_version()), "  ",
      Colored(RolloutStateName(rollout_.state()),
              RolloutStateColor(rollout_.state()), tty),
      "  ", WaveText(rollout_), "  ", FailuresText(rollout_));
  if (created != absl::InfinitePast()) {
    absl::StrAppend(&header, "  ", ShortDuration(end - created));
  }
  lines.push_back(std::move(header));
  // What holds it.
  if (!rollout_.waiting_reason().empty()) {
    std::string hold = absl::StrCat("  ", RolloutStateName(rollout_.state()),
                                    ": ", OneLine(rollout_.waiting_reason()));
    lines.push_back(std::move(hold));
  }
  const absl::Time resume = ToTime(rollout_.resume_time());
  if (rollout_.state() == v1::ROLLOUT_STATE_PAUSED &&
      resume != absl::InfinitePast()) {
    lines.push_back(
        absl::StrCat("  next wave in ", ShortDuration(resume - now)));
  }
  if (rollout_.state() == v1::ROLLOUT_STATE_WAITING_FOR_GATE ||
      rollout_.state() == v1::ROLLOUT_STATE_PENDING) {
    for (const v1::GateStatus& gate : rollout_.gates()) {
      if (gate.satisfied()) continue;
      std::string line = absl::StrCat("  gate ", GateName(gate.kind()), ": ",
                                      OneLine(gate.detail()));
      lines.push_back(std::string(absl::StripTrailingAsciiWhitespace(line)));
    }
  }
  // One bar per wave.
  for (const auto& [wave, counts] : CountWaves(rollout_)) {
    if (wave <= 0) continue;
    lines.push_back(WaveBar(wave, counts));
  }
  // Databases worth a look: running, then failed, then recently finished.
  std::vector<const v1::RolloutTarget*> shown;
  for (const v1::RolloutTarget& target : rollout_.targets()) {
    if (IsActiveTarget(target.state())) shown.push_back(&target);
  }
  std::stable_sort(shown.begin(), shown.end(),
                   [](const v1::RolloutTarget* a, const v1::RolloutTarget* b) {
                     return ToTime(a->started_time()) <
                            ToTime(b->started_time());
                   });
  const size_t running = shown.size();
  for (const v1::RolloutTarget& target : rollout_.targets()) {
    if (target.state() == v1::TARGET_STATE_FAILED ||
        target.state() == v1::TARGET_STATE_UNKNOWN) {
      shown.push_back(&target);
    }
  }
  std::vector<const v1::RolloutTarget*> recent;
  for (const v1::RolloutTarget& target : rollout_.targets()) {
    if (target.state() == v1::TARGET_STATE_FAILED ||
        target.state() == v1::TARGET_STATE_UNKNOWN ||
        !IsFinalTarget(target.state())) {
      continue;
    }
    const absl::Time finished = ToTime(target.finished_time());
    if (finished != absl::InfinitePast() && now - finished <= options_.recent) {
      recent.push_back(&target);
    }
  }
  std::stable_sort(recent.begin(), recent.end(),
                   [](const v1::RolloutTarget* a, const v1::RolloutTarget* b) {
                     return ToTime(a->finished_time()) >
                            ToTime(b->finished_time());
                   });
  shown.insert(shown.end(), recent.begin(), recent.end());
  const size_t limit =
      static_cast<size_t>(std::max(options_.max_database_lines, 0));
  const size_t hidden = shown.size() > limit ? shown.size() - limit : 0;
  if (hidden > 0) shown.resize(limit);
  size_t id_width = 0, state_width = 0, step_width = 0;
  for (const v1::RolloutTarget* target : shown) {
    id_width = std::max(id_width, target->database_id().size());
    state_width =
        std::max(state_width, TargetStateName(target->state()).size());
    step_width =
        std::max(step_width, PhaseStep(target->phase(), target->step()).size());
  }
  for (const v1::RolloutTarget* target : shown) {
    std::string line = absl::StrCat(
        "  ", target->database_id(),
        std::string(id_width - target->database_id().size() + 2, ' '),
        Colored(TargetStateName(target->state()),
                TargetStateColor(target->state()), tty, state_width),
        "  ");
    const std::string step = PhaseStep(target->phase(), target->step());
    absl::StrAppend(&line, step, std::string(step_width - step.size() + 2, ' '),
                    Elapsed(*target, now));
    auto statements = statements_.find(target->database_id());
    if (IsActiveTarget(target->state()) && statements != statements_.end() &&
        statements->second.second > 0) {
      absl::StrAppend(&line, "  statement ", statements->second.first, "/",
                      statements->second.second);
    }
    if (!target->error().empty() && !IsActiveTarget(target->state())) {
      absl::StrAppend(&line, "  ", OneLine(target->error()));
    }
    lines.push_back(std::string(absl::StripTrailingAsciiWhitespace(line)));
  }
  if (hidden > 0) {
    const size_t hidden_running = running > limit ? running - limit : 0;
    lines.push_back(hidden_running > 0
                        ? absl::StrCat("  ... and ", hidden, " more (",
                                       hidden_running, " running)")
                        : absl::StrCat("  ... and ", hidden, " more"));
  }
  std::string text;
  for (const std::string& line : lines) {
    absl::StrAppend(&text, tty ? FitWidth(line, width) : line, "\n");
  }
  return text;
}

std::string RedrawFrame(absl::string_view frame, int previous_lines) {
  std::string text;
  // Up to the first line of the last frame, at its first column.
  if (previous_lines > 0)
    absl::StrAppend(&text, "\x1b[", previous_lines, "A\r");
  // Each line replaces the old one; what the old frame had below is erased.
  size_t start = 0;
  while (start < frame.size()) {
    size_t end = frame.find('\n', start);
    if (end == absl::string_view::npos) end = frame.size();
    absl::StrAppend(&text, "\x1b[2K", frame.substr(start, end - start), "\n");
    start = end + 1;
  }
  absl::StrAppend(&text, "\x1b[J");
  return text;
}

int CountLines(absl::string_view text) {
  int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  if (!text.empty() && text.back() != '\n') ++lines;
  return lines;
}

}  // namespace ecliptix::client::ctl
