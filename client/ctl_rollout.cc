#include "client/ctl_rollout.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/ctl_format.h"
#include "client/ctl_rollout_view.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

const std::vector<std::string>& DayNames() {
  static const auto* names = new std::vector<std::string>{
      "mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  return *names;
}

// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> SplitList(absl::string_view text) {
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) items.emplace_back(item);
  }
  return items;
}

// A number with an optional "%" suffix.
struct Amount {
  bool percent = false;
  double value = 0;
};

std::optional<Amount> ParseAmount(absl::string_view text) {
  Amount amount;
  absl::string_view number = absl::StripAsciiWhitespace(text);
  amount.percent = absl::ConsumeSuffix(&number, "%");
  number = absl::StripAsciiWhitespace(number);
  if (number.empty() || !absl::SimpleAtod(number, &amount.value) ||
      !std::isfinite(amount.value)) {
    return std::nullopt;
  }
  if (!amount.percent && amount.value != std::floor(amount.value)) {
    return std::nullopt;
  }
  return amount;
}

absl::Status CheckWaves(const std::vector<std::string>& waves,
                        const std::string& flag) {
  for (const std::string& wave : waves) {
    const std::optional<Amount> amount = ParseAmount(wave);
    if (!amount) {
      return CommandUsageError(absl::StrCat(
          "flag --waves: \"", wave,
          "\" is not a count of databases or a percentage; write cumulative "
          "wave sizes like --waves=1,25%,100% (got \"",
          flag, "\")"));
    }
    if (amount->value <= 0) {
      return CommandUsageError(absl::StrCat(
          "flag --waves: wave \"", wave,
          "\" is empty; every wave needs at least one database (e.g. 1 or "
          "10%)"));
    }
    if (amount->percent && amount->value > 100) {
      return CommandUsageError(absl::StrCat(
          "flag --waves: wave \"", wave,
          "\" is more than 100%; waves are cumulative, so the last one is at "
          "most 100%"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> DurationFlag(const Invocation& invocation,
                                            absl::string_view name,
                                            bool allow_zero) {
  const std::string text = invocation.Flag(name);
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) ||
      duration < absl::ZeroDuration() ||
      (!allow_zero && duration == absl::ZeroDuration()) ||
      duration == absl::InfiniteDuration()) {
    return CommandUsageError(absl::StrCat(
        "flag --", name, " wants a ", allow_zero ? "" : "positive ",
        "duration such as 30s, 5m or 1h30m, got \"", text, "\""));
  }
  return duration;
}

// "09:30" -> true; hours 00..24 (24:00 only), minutes 00..59.
bool IsClock(absl::string_view text) {
  if (text.size() != 5 || text[2] != ':') return false;
  int hours, minutes;
  if (!absl::ascii_isdigit(text[0]) || !absl::ascii_isdigit(text[1]) ||
      !absl::ascii_isdigit(text[3]) || !absl::ascii_isdigit(text[4]) ||
      !absl::SimpleAtoi(text.substr(0, 2), &hours) ||
      !absl::SimpleAtoi(text.substr(3, 2), &minutes)) {
    return false;
  }
  return minutes <= 59 && (hours < 24 || (hours == 24 && minutes == 0));
}

// "mon", "Monday" -> 0; -1 when not a day.
int DayIndex(absl::string_view text) {
  const std::string day = absl::AsciiStrToLower(text);
  static const char* const kFull[] = {"monday",   "tuesday", "wednesday",
                                      "thursday", "friday",  "saturday",
                                      "sunday"};
  for (int i = 0; i < 7; ++i) {
    if (day == DayNames()[i] || day == kFull[i]) return i;
  }
  return -1;
}

// "mon-fri" -> mon..fri; "fri-mon" wraps over the weekend; "sat" -> sat.
// Empty when `text` is not a day or a day range.
std::vector<std::string> ParseDays(absl::string_view text) {
  std::vector<absl::string_view> ends = absl::StrSplit(text, '-');
  if (ends.size() == 1) {
    const int day = DayIndex(ends[0]);
    if (day < 0) return {};
    return {DayNames()[day]};
  }
  if (ends.size() != 2) return {};
  const int first = DayIndex(ends[0]);
  const int last = DayIndex(ends[1]);
  if (first < 0 || last < 0) return {};
  std::vector<std::string> days;
  for (int day = first;; day = (day + 1) % 7) {
    days.push_back(DayNames()[day]);
    if (day == last) break;
  }
  return days;
}

absl::StatusOr<v1::GateKind> ParseGateArg(absl::string_view name,
                                          absl::string_view where) {
  std::optional<v1::GateKind> kind = ParseGateName(name);
  if (!kind) {
    return CommandUsageError(absl::StrCat(where, ": unknown gate \"", name,
                                          "\"; gates: ", GateNames()));
  }
  return *kind;
}

std::string Actor(CommandRuntime& runtime) { return runtime.user(); }

absl::Status PrintJson(CommandRuntime& runtime,
                       const google::protobuf::Message& message) {
  ASSIGN_OR_RETURN(std::string json, MessageJson(message));
  runtime.out() << json << "\n";
  return absl::OkStatus();
}

// The outcome of a finished rollout as an exit code: 0 only if it succeeded.
int ExitCodeFor(v1::RolloutState state) {
  return state == v1::ROLLOUT_STATE_SUCCEEDED ? kExitOk : kExitFailure;
}

// "succeeded after 1m05s: 5 succeeded, 1 skipped".
std::string OutcomeLine(const v1::Rollout& rollout) {
  std::map<v1::TargetState, int> counts;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    ++counts[target.state()];
  }
  std::vector<std::string> parts;
  for (const auto& [state, count] : counts) {
    parts.push_back(absl::StrCat(count, " ", TargetStateName(state)));
  }
  std::string line = absl::StrCat("rollout ", rollout.rollout_id(), " ",
                                  RolloutStateName(rollout.state()));
  const absl::Time created = ToTime(rollout.create_time());
  const absl::Time finished = ToTime(rollout.finish_time());
  if (created != absl::InfinitePast() && finished != absl::InfinitePast()) {
    absl::StrAppend(&line, " after ", ShortDuration(finished - created));
  }
  if (!parts.empty()) absl::StrAppend(&line, ": ", absl::StrJoin(parts, ", "));
  return line;
}

// Follows a rollout until it ends (or the user interrupts): a live frame on a
// terminal, a line per event otherwise, a JSON object per event with -o json.
// When it ends, prints the targets and sets the exit code from the outcome.
absl::Status FollowRollout(const std::string& rollout_id,
                           int64_t after_sequence, const Invocation& invocation,
                           CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  const bool json = invocation.output == OutputFormat::kJson;
  const bool tty = !json && runtime.out_is_terminal();
  // Resuming after a sequence brings no snapshot: start from the rollout as it
  // is now (events it already includes are shown but not applied twice).
  RolloutView::Options options;
  options.zone = runtime.time_zone();
  std::optional<RolloutView> view;
  if (after_sequence > 0) {
    ASSIGN_OR_RETURN(v1::Rollout rollout, client->GetRollout(rollout_id));
    view.emplace(std::move(rollout), options);
  } else {
    view.emplace(options);
  }
  int frame_lines = 0;
  absl::Status print_status;
  InterruptState* interrupts = runtime.interrupts();
  if (interrupts != nullptr) interrupts->BeginWatch(client);
  const absl::Status status = client->WatchRolloutResuming(
      rollout_id,
      [&](const v1::RolloutEvent& event) {
        const std::vector<std::string> lines = view->Apply(event);
        if (json) {
          absl::StatusOr<std::string> text = MessageJson(event);
          if (!text.ok()) {
            print_status = text.status();
            return false;
          }
          runtime.out() << *text << "\n";
        } else if (tty) {
          std::string text;
          if (RolloutView::IsNotable(event) || event.has_snapshot()) {
            for (const std::string& line : lines)
              absl::StrAppend(&text, line, "\n");
          }
          // Lines that wrap would break the redraw: cut them to the width.
          const int width = runtime.terminal_width();
          const std::string frame =
              view->Render(runtime.Now(), width > 0 ? width : 80, true);
          runtime.out() << RedrawFrame(absl::StrCat(text, frame), frame_lines);
          frame_lines = CountLines(frame);
        } else {
          for (const std::string& line : lines) runtime.out() << line << "\n";
        }
        runtime.out().flush();
        return interrupts == nullptr || !interrupts->interrupted();
      },
      kMaxWatchReconnects, after_sequence);
  if (interrupts != nullptr) interrupts->EndWatch();
  RETURN_IF_ERROR(print_status);
  RETURN_IF_ERROR(status);
  // Stopped by the user before the end: nothing to conclude.
  if (!view->finished()) return absl::OkStatus();
  const v1::Rollout& rollout = view->rollout();
  if (!json) {
    runtime.out() << "\n"
                  << TargetTable(rollout, runtime.Now()) << "\n"
                  << OutcomeLine(rollout) << "\n";
  }
  runtime.set_exit_code(ExitCodeFor(rollout.state()));
  return absl::OkStatus();
}

absl::Status RolloutCreate(const Invocation& invocation,
                           CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(v1::CreateRolloutRequest request,
                   CreateRequestFromFlags(invocation, runtime.user()));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, client->CreateRollout(request));
  if (invocation.output == OutputFormat::kJson) {
    RETURN_IF_ERROR(PrintJson(runtime, rollout));
  } else {
    runtime.out() << RolloutCreatedText(rollout);
  }
  runtime.out().flush();
  if (!invocation.BoolFlag("watch")) return absl::OkStatus();
  if (invocation.output != OutputFormat::kJson) runtime.out() << "\n";
  return FollowRollout(rollout.rollout_id(), 0, invocation, runtime);
}

absl::Status RolloutPlan(const Invocation& invocation,
                         CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(v1::CreateRolloutRequest request,
                   CreateRequestFromFlags(invocation, runtime.user()));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::RolloutPlan plan, client->PlanRollout(request));
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, plan);
  runtime.out() << PlanText(plan);
  return absl::OkStatus();
}

absl::Status RolloutList(const Invocation& invocation,
                         CommandRuntime& runtime) {
  v1::ListRolloutsRequest request;
  if (!invocation.Flag("state").empty()) {
    ASSIGN_OR_RETURN(std::vector<v1::RolloutState> states,
                     ParseStatesFlag(invocation.Flag("state")));
    for (v1::RolloutState state : states) request.add_states(state);
  }
  const int64_t limit = invocation.CountFlag("limit", 0);
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::ListRolloutsResponse all;
  while (limit == 0 || all.rollouts_size() < limit) {
    ASSIGN_OR_RETURN(v1::ListRolloutsResponse page,
                     client->ListRollouts(request));
    for (v1::Rollout& rollout : *page.mutable_rollouts()) {
      if (limit > 0 && all.rollouts_size() >= limit) break;
      *all.add_rollouts() = std::move(rollout);
    }
    if (page.next_page_token().empty()) break;
    if (page.next_page_token() == request.page_token()) {
      return absl::InternalError(
          absl::StrCat("ecliptix-server returned the same page token twice (\"",
                       page.next_page_token(), "\")"));
    }
    request.set_page_token(page.next_page_token());
  }
  if (invocation.output == OutputFormat::kJson) return PrintJson(runtime, all);
  if (all.rollouts().empty()) {
    runtime.err() << "No rollouts found.\n";
    return absl::OkStatus();
  }
  runtime.out() << RolloutTable({all.rollouts().begin(), all.rollouts().end()},
                                runtime.Now());
  return absl::OkStatus();
}

absl::Status RolloutGet(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, client->GetRollout(invocation.args[0]));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, rollout);
  }
  runtime.out() << RolloutDetails(rollout, runtime.Now());
  return absl::OkStatus();
}

absl::Status RolloutWatch(const Invocation& invocation,
                          CommandRuntime& runtime) {
  return FollowRollout(invocation.args[0], invocation.CountFlag("after", 0),
                       invocation, runtime);
}

// Pause, resume, abort and retry: the same request, another RPC.
using ActionCall = absl::StatusOr<v1::Rollout> (FleetClient::*)(
    const v1::RolloutActionRequest&);

absl::Status RunAction(const Invocation& invocation, CommandRuntime& runtime,
                       ActionCall call) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::RolloutActionRequest request;
  request.set_rollout_id(invocation.args[0]);
  request.set_actor(Actor(runtime));
  request.set_reason(invocation.Flag("reason"));
  ASSIGN_OR_RETURN(v1::Rollout rollout, (client->*call)(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, rollout);
  }
  runtime.out() << RolloutStatusLine(rollout) << "\n";
  return absl::OkStatus();
}

absl::Status RolloutPause(const Invocation& invocation,
                          CommandRuntime& runtime) {
  return RunAction(invocation, runtime, &FleetClient::PauseRollout);
}

absl::Status RolloutResume(const Invocation& invocation,
                           CommandRuntime& runtime) {
  return RunAction(invocation, runtime, &FleetClient::ResumeRollout);
}

absl::Status RolloutAbort(const Invocation& invocation,
                          CommandRuntime& runtime) {
  return RunAction(invocation, runtime, &FleetClient::AbortRollout);
}

absl::Status RolloutRetry(const Invocation& invocation,
                          CommandRuntime& runtime) {
  return RunAction(invocation, runtime, &FleetClient::RetryFailed);
}

absl::Status RolloutRollback(const Invocation& invocation,
                             CommandRuntime& runtime) {
  v1::RollbackRolloutRequest request;
  request.set_rollout_id(invocation.args[0]);
  request.set_actor(Actor(runtime));
  request.set_reason(invocation.Flag("reason"));
  request.set_phase(invocation.Flag("phase"));
  request.set_wave(static_cast<int32_t>(invocation.CountFlag("wave", 0)));
  request.set_restore(invocation.BoolFlag("restore"));
  request.set_accept_data_loss(invocation.BoolFlag("accept_data_loss"));
  if (request.restore() && !request.phase().empty()) {
    return CommandUsageError(
        "flag --restore puts whole databases back: it cannot be combined "
        "with --phase");
  }
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, client->RollbackRollout(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, rollout);
  }
  runtime.out() << RolloutStatusLine(rollout) << "\n";
  return absl::OkStatus();
}

absl::Status RolloutAttest(const Invocation& invocation,
                           CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(v1::GateKind gate,
                   ParseGateArg(invocation.args[1], "rollout attest"));
  const std::string by =
      std::string(absl::StripAsciiWhitespace(invocation.Flag("by")));
  if (by.empty()) {
    return CommandUsageError(
        "rollout attest needs --by=NAME: who checked the gate (recorded in "
        "the audit log)");
  }
  v1::AttestGateRequest request;
  request.set_rollout_id(invocation.args[0]);
  request.set_gate(gate);
  request.set_attested_by(by);
  request.set_comment(invocation.Flag("comment"));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, client->AttestGate(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, rollout);
  }
  runtime.out() << RolloutStatusLine(rollout) << "\n";
  for (const v1::GateStatus& status : rollout.gates()) {
    if (status.kind() != gate) continue;
    runtime.out() << "gate " << GateName(gate) << ": "
                  << (status.satisfied() ? "satisfied" : "waiting");
    if (!status.detail().empty())
      runtime.out() << " (" << status.detail() << ")";
    runtime.out() << "\n";
  }
  return absl::OkStatus();
}

std::vector<FlagSpec> StrategyFlags(bool with_watch) {
  std::vector<FlagSpec> flags = {
      {"selector", Kind::kString, "SELECTOR", kSelectorOrAllHelp},
      {"all", Kind::kBool, "", "every database of the fleet (no --selector)"},
      {"waves", Kind::kString, "SIZES",
       "cumulative wave sizes, counts or percentages, e.g. 1,25%,100% "
       "(default: one wave of everything)"},
      {"max_parallel", Kind::kCount, "N",
       "at most N databases of a wave deploy at once (0: the whole wave)"},
      {"failure_budget", Kind::kString, "N|P%",
       "failures tolerated before the rollout stops, e.g. 2 or 10% (default "
       "0)"},
      {"pause", Kind::kString, "DURATION",
       "wait between waves, e.g. 30s or 5m"},
      {"approval", Kind::kBool, "",
       "wait for 'rollout resume' after each wave but the last"},
      {"auto_rollback", Kind::kString, "none|failed|all",
       "revert nothing (default), what failed targets applied, or every "
       "target when the rollout fails"},
      {"offline_deadline", Kind::kString, "DURATION",
       "how long to wait for an offline database once its wave starts "
       "(default 5m)"},
      {"offline", Kind::kString, "fail|skip",
       "what an offline database past the deadline counts as (default fail)"},
      {"order_by", Kind::kString, "LABELS",
       "order databases into waves by these label keys, e.g. env,region"},
      {"order_values", Kind::kString, "VALUES",
       "values of the first --order_by label that go first, e.g. "
       "staging,prod"},
      {"backup", Kind::kBool, "",
       "back up each database before its first step"},
      {"adopt", Kind::kBool, "",
       "adopt databases that already hold the bundle's objects: steps whose "
       "objects all exist are recorded as baselined without running (and "
       "never reverted)"},
      {"phases", Kind::kString, "PHASES",
       "deploy only these phases of the bundle (default: all)"},
      {"success_gate", Kind::kBool, "",
       "after each wave but the last, watch its databases for --soak and "
       "halt when their average procedure time or error rate broke the "
       "runbook's limits (100 ms, 0.1%) and is more than twice their own "
       "before the rollout and the unchanged databases'"},
      {"soak", Kind::kString, "DURATION",
       "with --success_gate: how long each wave is watched (default 5m, at "
       "least 2m)"},
      {"baseline", Kind::kString, "DURATION",
       "with --success_gate: the window before the rollout compared with "
       "(default 1h, at least 2m)"},
      {"gate", Kind::kString, "GATE",
       absl::StrCat("a checklist gate that must hold before the rollout "
                    "starts: ",
                    GateNames(),
                    "; comma list; backup holds with --backup or, for "
                    "ODBC databases, an attestation; window needs --window"),
       /*repeated=*/true},
      {"window", Kind::kString, "[ZONE,]HH:MM-HH:MM[,DAYS]",
       "maintenance window, e.g. Europe/Berlin,02:00-04:00,mon-fri (implies "
       "--gate=window)"},
      {"description", Kind::kString, "TEXT", "shown to people"},
  };
  if (with_watch) {
    flags.push_back({"watch", Kind::kBool, "",
                     "then follow it like 'rollout watch' (and exit like it)"});
  }
  return flags;
}

std::vector<FlagSpec> ReasonFlag() {
  return {{"reason", Kind::kString, "TEXT", "why, for the audit log"}};
}

constexpr char kWatchDescription[] =
    "Prints the rollout's progress until it reaches a final state. On a "
    "terminal, a live view\n"
    "redrawn after each event: the rollout's state, one progress bar per "
    "wave, and the databases\n"
    "that are running or just finished. Otherwise one line per event, e.g.\n"
    "  12:00:01 wave 1 started: db-1\n"
    "  12:00:02 db-1 infrastructure/production-infrastructure applied (35 "
    "ms)\n"
    "  12:00:05 rollout succeeded\n"
    "At the end, a table of every database.\n"
    "With -o json: one RolloutEvent object per line.\n"
    "A dropped connection is resumed where it stopped. Ctrl-C stops watching "
    "(exit 0);\nthe rollout goes on.\n"
    "Exit status: 0 if the rollout succeeded, 1 if it failed, was aborted or "
    "was rolled back\n(or on an error).\n";

}  // namespace

absl::Status WatchRolloutUntilEnd(const std::string& rollout_id,
                                  const Invocation& invocation,
                                  CommandRuntime& runtime) {
  return FollowRollout(rollout_id, 0, invocation, runtime);
}

absl::StatusOr<v1::MaintenanceWindow> ParseWindowFlag(absl::string_view text) {
  auto error = [&](absl::string_view why) {
    return CommandUsageError(
        absl::StrCat("flag --window: ", why, " in \"", text,
                     "\"; write [ZONE,]HH:MM-HH:MM[,DAYS], e.g. "
                     "Europe/Berlin,02:00-04:00,mon-fri"));
  };
  v1::MaintenanceWindow window;
  bool have_time = false;
  const std::vector<std::string> tokens = SplitList(text);
  if (tokens.empty()) return error("no time range");
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    std::vector<std::string> days = ParseDays(token);
    if (!days.empty()) {
      if (!have_time) return error("days come after the time range");
      for (std::string& day : days) {
        if (std::find(window.days().begin(), window.days().end(), day) ==
            window.days().end()) {
          window.add_days(std::move(day));
        }
      }
      continue;
    }
    if (token.size() == 11 && token[5] == '-' &&
        absl::ascii_isdigit(token[0])) {
      if (have_time) return error("two time ranges");
      const std::string start = token.substr(0, 5);
      const std::string end = token.substr(6);
      if (!IsClock(start) || !IsClock(end)) {
        return error(absl::StrCat("\"", token,
                                  "\" is not HH:MM-HH:MM (00:00 to 24:00)"));
      }
      if (start == end) return error("the window starts when it ends");
      window.set_start(start);
      window.set_end(end);
      have_time = true;
      continue;
    }
    if (i == 0 && !absl::ascii_isdigit(token[0])) {
      absl::TimeZone zone;
      if (!absl::LoadTimeZone(token, &zone)) {
        return error(absl::StrCat("unknown time zone \"", token,
                                  "\" (use an IANA name such as "
                                  "Europe/Berlin, or UTC)"));
      }
      window.set_time_zone(token);
      continue;
    }
    return error(absl::StrCat("\"", token,
                              "\" is neither a time range nor a day (mon..sun, "
                              "or a range such as mon-fri)"));
  }
  if (!have_time) return error("no time range");
  return window;
}

absl::StatusOr<std::vector<v1::RolloutState>> ParseStatesFlag(
    absl::string_view text) {
  std::vector<v1::RolloutState> states;
  auto add = [&states](v1::RolloutState state) {
    if (std::find(states.begin(), states.end(), state) == states.end()) {
      states.push_back(state);
    }
  };
  const std::vector<std::string> names = SplitList(text);
  for (const std::string& name : names) {
    if (absl::AsciiStrToLower(name) == "active") {
      for (v1::RolloutState state :
           {v1::ROLLOUT_STATE_PENDING, v1::ROLLOUT_STATE_WAITING_FOR_GATE,
            v1::ROLLOUT_STATE_RUNNING, v1::ROLLOUT_STATE_PAUSED,
            v1::ROLLOUT_STATE_ROLLING_BACK}) {
        add(state);
      }
      continue;
    }
    std::optional<v1::RolloutState> state = ParseRolloutState(name);
    if (!state) {
      return CommandUsageError(absl::StrCat(
          "flag --state: unknown rollout state \"", name,
          "\"; states: active, pending, waiting-for-gate, running, paused, "
          "succeeded, failed, aborted, rolled-back, rolling-back"));
    }
    add(*state);
  }
  if (states.empty()) {
    return CommandUsageError("flag --state is empty; e.g. --state=running");
  }
  return states;
}

absl::StatusOr<v1::Strategy> StrategyFromFlags(const Invocation& invocation) {
  v1::Strategy strategy;
  if (invocation.flags.count("waves")) {
    const std::vector<std::string> waves = SplitList(invocation.Flag("waves"));
    if (waves.empty()) {
      return CommandUsageError(
          "flag --waves is empty; write cumulative wave sizes like "
          "--waves=1,25%,100%");
    }
    RETURN_IF_ERROR(CheckWaves(waves, invocation.Flag("waves")));
    for (const std::string& wave : waves) strategy.add_waves(wave);
  }
  strategy.set_max_parallel(
      static_cast<int32_t>(invocation.CountFlag("max_parallel", 0)));
  if (invocation.flags.count("failure_budget")) {
    const std::string budget = std::string(
        absl::StripAsciiWhitespace(invocation.Flag("failure_budget")));
    const std::optional<Amount> amount = ParseAmount(budget);
    if (!amount || amount->value < 0 ||
        (amount->percent && amount->value > 100)) {
      return CommandUsageError(absl::StrCat(
          "flag --failure_budget wants a count of databases (0, 2) or a "
          "percentage (0% to 100%), got \"",
          invocation.Flag("failure_budget"), "\""));
    }
    strategy.set_failure_budget(budget);
  }
  if (invocation.flags.count("pause")) {
    ASSIGN_OR_RETURN(absl::Duration pause,
                     DurationFlag(invocation, "pause", /*allow_zero=*/true));
    *strategy.mutable_pause_between_waves() = ToProtoDuration(pause);
  }
  strategy.set_approval_required(invocation.BoolFlag("approval"));
  if (invocation.flags.count("auto_rollback")) {
    const std::string value =
        absl::AsciiStrToLower(invocation.Flag("auto_rollback"));
    if (value == "none") {
      strategy.set_auto_rollback(v1::AUTO_ROLLBACK_UNSPECIFIED);
    } else if (value == "failed") {
      strategy.set_auto_rollback(v1::AUTO_ROLLBACK_FAILED_TARGETS);
    } else if (value == "all") {
      strategy.set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
    } else {
      return CommandUsageError(absl::StrCat(
          "flag --auto_rollback: unknown value \"",
          invocation.Flag("auto_rollback"),
          "\"; use none (default), failed (revert failed targets) or all "
          "(revert every target when the rollout fails)"));
    }
  }
  if (invocation.flags.count("offline_deadline")) {
    ASSIGN_OR_RETURN(
        absl::Duration deadline,
        DurationFlag(invocation, "offline_deadline", /*allow_zero=*/false));
    *strategy.mutable_offline_deadline() = ToProtoDuration(deadline);
  }
  if (invocation.flags.count("offline")) {
    const std::string value = absl::AsciiStrToLower(invocation.Flag("offline"));
    if (value == "fail") {
      strategy.set_offline_policy(v1::OFFLINE_POLICY_FAIL);
    } else if (value == "skip") {
      strategy.set_offline_policy(v1::OFFLINE_POLICY_SKIP);
    } else {
      return CommandUsageError(absl::StrCat(
          "flag --offline: unknown value \"", invocation.Flag("offline"),
          "\"; use fail (an offline database counts as failed) or skip"));
    }
  }
  for (const std::string& label : SplitList(invocation.Flag("order_by"))) {
    strategy.add_order_by_labels(label);
  }
  for (const std::string& value : SplitList(invocation.Flag("order_values"))) {
    strategy.add_order_values(value);
  }
  if (!strategy.order_values().empty() && strategy.order_by_labels().empty()) {
    return CommandUsageError(
        "flag --order_values needs --order_by: the values are of its first "
        "label (e.g. --order_by=env --order_values=staging,prod)");
  }
  if (!invocation.BoolFlag("success_gate") &&
      (invocation.flags.count("soak") || invocation.flags.count("baseline"))) {
    return CommandUsageError("flags --soak and --baseline need --success_gate");
  }
  if (invocation.BoolFlag("success_gate")) {
    v1::SuccessGate* gate = strategy.mutable_success_gate();
    if (invocation.flags.count("soak")) {
      ASSIGN_OR_RETURN(absl::Duration soak,
                       DurationFlag(invocation, "soak", /*allow_zero=*/false));
      *gate->mutable_soak() = ToProtoDuration(soak);
    }
    if (invocation.flags.count("baseline")) {
      ASSIGN_OR_RETURN(
          absl::Duration baseline,
          DurationFlag(invocation, "baseline", /*allow_zero=*/false));
      *gate->mutable_baseline() = ToProtoDuration(baseline);
    }
  }
  strategy.set_backup_first(invocation.BoolFlag("backup"));
  strategy.set_adopt(invocation.BoolFlag("adopt"));
  for (const std::string& phase : SplitList(invocation.Flag("phases"))) {
    strategy.add_phases(phase);
  }
  return strategy;
}

absl::StatusOr<v1::CreateRolloutRequest> CreateRequestFromFlags(
    const Invocation& invocation, const std::string& requested_by) {
  v1::CreateRolloutRequest request;
  const std::string bundle =
      std::string(absl::StripAsciiWhitespace(invocation.args.at(0)));
  if (bundle.empty()) {
    return CommandUsageError(
        "BUNDLE is empty: give name@version, the id (sha256:...) or a unique "
        "prefix of it");
  }
  request.set_bundle(bundle);
  request.set_selector(invocation.Flag("selector"));
  request.set_all_databases(invocation.BoolFlag("all"));
  request.set_requested_by(requested_by);
  request.set_description(invocation.Flag("description"));

  ASSIGN_OR_RETURN(*request.mutable_strategy(), StrategyFromFlags(invocation));

  std::set<v1::GateKind> seen;
  std::vector<v1::GateKind> gates;
  for (const std::string& name : SplitList(invocation.Flag("gate"))) {
    ASSIGN_OR_RETURN(v1::GateKind kind, ParseGateArg(name, "flag --gate"));
    if (seen.insert(kind).second) gates.push_back(kind);
  }
  std::optional<v1::MaintenanceWindow> window;
  if (invocation.flags.count("window")) {
    ASSIGN_OR_RETURN(window, ParseWindowFlag(invocation.Flag("window")));
    if (seen.insert(v1::GATE_KIND_MAINTENANCE_WINDOW).second) {
      gates.push_back(v1::GATE_KIND_MAINTENANCE_WINDOW);
    }
  } else if (seen.count(v1::GATE_KIND_MAINTENANCE_WINDOW)) {
    return CommandUsageError(
        "flag --gate=window needs --window=[ZONE,]HH:MM-HH:MM[,DAYS], e.g. "
        "--window=Europe/Berlin,02:00-04:00,mon-fri");
  }
  for (v1::GateKind kind : gates) {
    v1::GateSpec* gate = request.add_gates();
    gate->set_kind(kind);
    if (kind == v1::GATE_KIND_MAINTENANCE_WINDOW) {
      *gate->mutable_window() = *window;
    }
  }
  return request;
}

NounSpec RolloutNoun() {
  return {
      "rollout",
      "Rollouts: one bundle to every database matching a selector, in waves, "
      "with a failure\nbudget, checklist gates, pause / resume / abort, "
      "rollback, and a live view.\n\n"
      "'rollout watch' and 'rollout create --watch' follow a rollout until it "
      "ends and exit 0 if it\nsucceeded, 1 if it failed, was aborted or was "
      "rolled back.",
      {
          {"create",
           {"BUNDLE"},
           "Start a rollout of a bundle",
           "BUNDLE is name@version, the id (sha256:...), or a unique prefix of "
           "it.\n"
           "Give --selector, or --all for every database (neither, or both, "
           "is INVALID_ARGUMENT).\n"
           "Prints the rollout's id and a summary (with -o json: the "
           "Rollout). The server refuses\n"
           "a bad strategy (INVALID_ARGUMENT), an unknown bundle (NOT_FOUND), "
           "a selector that\n"
           "matches nothing or a database already in an active rollout "
           "(FAILED_PRECONDITION).\n"
           "With --watch, then follows it and exits like 'rollout watch': 0 if "
           "it succeeded, 1 if\n"
           "it failed, was aborted or was rolled back.\n"
           "Example: ecliptixctl rollout create ecliptix@1.2.0 "
           "--selector=env=prod \\\n"
           "  --waves=1,25%,100% --failure_budget=1 --pause=5m "
           "--gate=backup,team --watch\n",
           StrategyFlags(/*with_watch=*/true),
           RolloutCreate},
          {"plan",
           {"BUNDLE"},
           "Show what a rollout would do, without starting it",
           "The waves with their databases, then per database the steps that "
           "would run (read from\n"
           "its history table by its agent), and the databases whose agents "
           "are offline.\n"
           "Takes the flags of 'rollout create'. With -o json: the "
           "RolloutPlan.\n",
           StrategyFlags(/*with_watch=*/false),
           RolloutPlan},
          {"list",
           {},
           "List rollouts, newest first",
           "Columns: ROLLOUT, BUNDLE, STATE, WAVE (current/count), FAILURES "
           "(failures/budget),\nCREATED, BY, DESCRIPTION. With -o json: "
           "{\"rollouts\":[...]}.\n",
           {{"state", Kind::kString, "STATES",
             "only rollouts in these states (comma list): active, pending, "
             "waiting-for-gate, running, paused, succeeded, failed, aborted, "
             "rolled-back, rolling-back"},
            {"limit", Kind::kCount, "N", "at most N rollouts (0: all)"}},
           RolloutList},
          {"get",
           {"ROLLOUT_ID"},
           "Show a rollout: strategy, gates and every database",
           "Target columns: DATABASE, WAVE, STATE, PHASE/STEP, "
           "APPLIED/SKIPPED (steps), ELAPSED, ERROR.\n",
           {},
           RolloutGet},
          {"watch",
           {"ROLLOUT_ID"},
           "Follow a rollout live until it ends",
           kWatchDescription,
           {{"after", Kind::kCount, "SEQ",
             "start after event SEQ (no snapshot; events up to SEQ are not "
             "sent again)"}},
           RolloutWatch},
          {"pause",
           {"ROLLOUT_ID"},
           "Pause: running commands finish, nothing new starts",
           "",
           ReasonFlag(),
           RolloutPause},
          {"resume",
           {"ROLLOUT_ID"},
           "Resume a paused rollout, or release a wave waiting for approval",
           "",
           ReasonFlag(),
           RolloutResume},
          {"abort",
           {"ROLLOUT_ID"},
           "Abort: cancel running commands (their steps roll back), start "
           "nothing more",
           "",
           ReasonFlag(),
           RolloutAbort},
          {"retry",
           {"ROLLOUT_ID"},
           "Run again the databases that failed or never ran",
           "Databases whose outcome is unknown are settled from their history "
           "tables first;\napplied steps are skipped.\n",
           ReasonFlag(),
           RolloutRetry},
          {"rollback",
           {"ROLLOUT_ID"},
           "Revert what the rollout applied, in reverse phase order",
           "Without flags, every phase on every database; --phase and --wave "
           "narrow it.\n"
           "Steps adopted as baselined are never reverted. A revert that "
           "would drop or empty\n"
           "tables holding rows is refused on that database (the message "
           "names the tables,\n"
           "their row counts and the backup to restore) unless "
           "--accept_data_loss.\n"
           "--restore is the runbook's emergency rollback: each database the "
           "rollout changed\n"
           "gets back the backup taken before its first step (the rollout "
           "needs --backup);\n"
           "whatever was written there since that backup is discarded.\n",
           {{"phase", Kind::kString, "PHASE", "only this phase"},
            {"wave", Kind::kCount, "N",
             "only the databases of wave N (0: all)"},
            {"restore", Kind::kBool, "",
             "restore each changed database's pre-rollout backup instead of "
             "running revert scripts"},
            {"accept_data_loss", Kind::kBool, "",
             "let revert scripts drop or empty tables holding rows (audited)"},
            {"reason", Kind::kString, "TEXT", "why, for the audit log"}},
           RolloutRollback},
          {"attest",
           {"ROLLOUT_ID", "GATE"},
           "Attest a checklist gate a person vouches for",
           absl::StrCat(
               "GATE is one of: ", GateNames(),
               ". Recorded in the audit log with --by and --comment.\n"
               "monitoring and team are attested by people; rollback-plan "
               "too when a step has no revert\nscript; backup when the "
               "databases are backed up outside the agent (ODBC / SQL\n"
               "Server: see the README's backup rule). staging and window "
               "are decided by evidence only.\n"),
           {{"by", Kind::kString, "NAME", "who checked it (required)"},
            {"comment", Kind::kString, "TEXT", "what was checked"}},
           RolloutAttest},
      }};
}

}  // namespace ecliptix::client::ctl
