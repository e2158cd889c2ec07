#include "client/ctl_config.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/ctl_format.h"
#include "client/ctl_rollout.h"
#include "client/ctl_rollout_view.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"
#include "common/rollout_names.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

bool Blank(const std::string& text) {
  return absl::StripAsciiWhitespace(text).empty();
}

// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) items.emplace_back(item);
  }
  return items;
}

// A value on one line of a table.
std::string Cell(const std::string& text) {
  if (text.empty()) return "\"\"";
  return absl::StrReplaceAll(text, {{"\n", " "}, {"\r", " "}});
}

absl::Status PrintJson(CommandRuntime& runtime,
                       const google::protobuf::Message& message) {
  ASSIGN_OR_RETURN(std::string json, MessageJson(message));
  runtime.out() << json << "\n";
  return absl::OkStatus();
}

// Exactly one of --selector and --all: a forgotten selector must never
// mean every database.
absl::Status CheckSelection(const Invocation& invocation) {
  const bool selector = !Blank(invocation.Flag("selector"));
  const bool all = invocation.BoolFlag("all");
  if (!selector && !all) {
    return CommandUsageError(
        absl::StrCat("\"", invocation.CommandName(),
                     "\" needs --selector=SELECTOR (e.g. env=prod) or --all "
                     "(every database)"));
  }
  if (selector && all) {
    return CommandUsageError(
        "--selector and --all exclude each other: give one of them");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Reason(const Invocation& invocation) {
  const std::string reason = invocation.Flag("reason");
  if (Blank(reason)) {
    return CommandUsageError(absl::StrCat(
        "\"", invocation.CommandName(),
        "\" needs --reason=TEXT: why (it is audited and kept in the "
        "history)"));
  }
  return reason;
}

std::string Desired(const v1::ConfigEntry& entry) {
  return entry.desired_set() ? Cell(entry.desired_value()) : "-";
}

std::string Actual(const v1::ConfigEntry& entry) {
  if (!entry.actual_known()) return "?";
  if (entry.actual_missing()) return "<missing>";
  return Cell(entry.actual_value());
}

// ---- config ----

absl::Status ConfigGet(const Invocation& invocation, CommandRuntime& runtime) {
  v1::GetConfigRequest request;
  request.set_selector(invocation.Flag("selector"));
  for (const std::string& key : SplitList(invocation.Flag("key")))
    request.add_keys(key);
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::GetConfigResponse response, client->GetConfig(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, response);
  }
  if (response.entries().empty()) {
    // On stderr, so stdout stays empty for scripts that count lines.
    runtime.err() << "No configuration known for this selection; 'config "
                     "diff' reads it from the databases.\n";
    return absl::OkStatus();
  }
  runtime.out() << ConfigTable(response, runtime.Now());
  return absl::OkStatus();
}

absl::Status ConfigSet(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(v1::SetConfigRequest request,
                   SetConfigRequestFromFlags(invocation, runtime.user()));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, client->SetConfig(request));
  if (invocation.output == OutputFormat::kJson) {
    RETURN_IF_ERROR(PrintJson(runtime, rollout));
  } else {
    std::vector<std::string> settings;
    for (const v1::ConfigSetting& setting : request.settings())
      settings.push_back(absl::StrCat(setting.key(), "=", setting.value()));
    // The settings right under the first line, before the strategy.
    std::string text = RolloutCreatedText(rollout);
    const size_t first_line = text.find('\n');
    text.insert(
        first_line == std::string::npos ? text.size() : first_line + 1,
        absl::StrCat("  settings: ", absl::StrJoin(settings, ", "), "\n"));
    runtime.out() << text;
  }
  runtime.out().flush();
  if (!invocation.BoolFlag("watch")) return absl::OkStatus();
  if (invocation.output != OutputFormat::kJson) runtime.out() << "\n";
  return WatchRolloutUntilEnd(rollout.rollout_id(), invocation, runtime);
}

absl::Status ConfigDiff(const Invocation& invocation, CommandRuntime& runtime) {
  RETURN_IF_ERROR(CheckSelection(invocation));
  v1::DiffConfigRequest request;
  request.set_selector(invocation.Flag("selector"));
  request.set_all_databases(invocation.BoolFlag("all"));
  for (const std::string& key : SplitList(invocation.Flag("key")))
    request.add_keys(key);
  if (invocation.flags.count("wait")) {
    absl::Duration wait;
    if (!absl::ParseDuration(invocation.Flag("wait"), &wait) ||
        wait <= absl::ZeroDuration() || wait == absl::InfiniteDuration()) {
      return CommandUsageError(
          absl::StrCat("flag --wait wants a positive duration such as 10s or "
                       "2m, got \"",
                       invocation.Flag("wait"), "\""));
    }
    *request.mutable_timeout() = ToProtoDuration(wait);
  }
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::GetConfigResponse response, client->DiffConfig(request));
  // Anything found, or a database that could not be read, is not "no drift".
  const bool clean =
      response.entries().empty() && response.unread_databases().empty();
  runtime.set_exit_code(clean ? kExitOk : kExitFailure);
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, response);
  }
  if (clean) {
    runtime.out() << "no drift\n";
    return absl::OkStatus();
  }
  if (response.entries().empty()) {
    runtime.out() << "no drift on the databases read\n";
  } else {
    runtime.out() << DriftTable(response);
  }
  for (const std::string& unread : response.unread_databases())
    runtime.out() << "not read: " << Cell(unread) << "\n";
  return absl::OkStatus();
}

absl::Status ConfigHistory(const Invocation& invocation,
                           CommandRuntime& runtime) {
  v1::GetConfigHistoryRequest request;
  request.set_key(invocation.Flag("key"));
  request.set_database_id(invocation.Flag("database"));
  request.set_limit(static_cast<int32_t>(invocation.CountFlag("limit", 0)));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::GetConfigHistoryResponse response,
                   client->GetConfigHistory(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(runtime, response);
  }
  if (response.changes().empty()) {
    runtime.err() << "No configuration changes found.\n";
    return absl::OkStatus();
  }
  runtime.out() << HistoryTable(response);
  return absl::OkStatus();
}

// ---- emergency ----

// Follows an emergency switch until it ends: a line per database as each
// one is done, then a summary; exit 0 only if every database switched.
absl::Status FollowSwitch(const std::string& rollout_id, bool enabled,
                          CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::Rollout rollout;
  std::set<std::string> printed;
  auto print = [&](const v1::RolloutTarget& target) {
    const std::string line = EmergencyLine(target);
    if (line.empty() || !printed.insert(target.database_id()).second) return;
    runtime.out() << line << "\n";
  };
  InterruptState* interrupts = runtime.interrupts();
  if (interrupts != nullptr) interrupts->BeginWatch(client);
  const absl::Status status = client->WatchRolloutResuming(
      rollout_id,
      [&](const v1::RolloutEvent& event) {
        ApplyRolloutEvent(event, &rollout);
        if (event.has_snapshot()) {
          for (const v1::RolloutTarget& target : rollout.targets())
            print(target);
        } else if (event.has_target()) {
          for (const v1::RolloutTarget& target : rollout.targets()) {
            if (target.database_id() == event.target().database_id())
              print(target);
          }
        }
        runtime.out().flush();
        return interrupts == nullptr || !interrupts->interrupted();
      },
      kMaxWatchReconnects);
  if (interrupts != nullptr) interrupts->EndWatch();
  RETURN_IF_ERROR(status);
  // Stopped by the user before the end: the switch goes on.
  if (!IsFinalState(rollout.state())) return absl::OkStatus();
  std::vector<std::string> not_switched;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    if (target.state() != v1::TARGET_STATE_SUCCEEDED)
      not_switched.push_back(target.database_id());
  }
  const int switched = rollout.targets_size() - not_switched.size();
  runtime.out() << "logging " << (enabled ? "on" : "off") << " on " << switched
                << " of " << rollout.targets_size()
                << (rollout.targets_size() == 1 ? " database" : " databases");
  if (!not_switched.empty()) {
    runtime.out() << "; not switched: " << absl::StrJoin(not_switched, ", ");
  }
  runtime.out() << "\n";
  runtime.set_exit_code(not_switched.empty() ? kExitOk : kExitFailure);
  return absl::OkStatus();
}

absl::Status SwitchLogging(const Invocation& invocation,
                           CommandRuntime& runtime, bool enabled) {
  RETURN_IF_ERROR(CheckSelection(invocation));
  ASSIGN_OR_RETURN(std::string reason, Reason(invocation));
  v1::EmergencyLoggingRequest request;
  request.set_selector(invocation.Flag("selector"));
  request.set_all_databases(invocation.BoolFlag("all"));
  request.set_reason(reason);
  request.set_requested_by(runtime.user());
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::Rollout rollout, enabled
                                            ? client->EnableLogging(request)
                                            : client->DisableLogging(request));
  const bool watch = invocation.BoolFlag("watch");
  if (invocation.output == OutputFormat::kJson) {
    RETURN_IF_ERROR(PrintJson(runtime, rollout));
    runtime.out().flush();
    // Every event as JSON, as `rollout watch -o json`.
    if (watch)
      return WatchRolloutUntilEnd(rollout.rollout_id(), invocation, runtime);
    return absl::OkStatus();
  }
  // The values the server chose (enable-logging: the bundle's defaults).
  std::vector<std::string> values;
  for (const v1::ConfigSetting& setting :
       rollout.operation().config_change().settings())
    values.push_back(absl::StrCat(setting.key(), "=", setting.value()));
  runtime.out() << "rollout " << rollout.rollout_id() << ": logging "
                << (enabled ? "on" : "off") << " ("
                << absl::StrJoin(values, ", ") << ") on "
                << rollout.targets_size()
                << (rollout.targets_size() == 1 ? " database" : " databases")
                << " at once\n";
  if (!watch) {
    runtime.out() << "follow it: ecliptixctl rollout watch "
                  << rollout.rollout_id() << "\n";
    return absl::OkStatus();
  }
  runtime.out().flush();
  return FollowSwitch(rollout.rollout_id(), enabled, runtime);
}

absl::Status EmergencyDisable(const Invocation& invocation,
                              CommandRuntime& runtime) {
  return SwitchLogging(invocation, runtime, /*enabled=*/false);
}

absl::Status EmergencyEnable(const Invocation& invocation,
                             CommandRuntime& runtime) {
  return SwitchLogging(invocation, runtime, /*enabled=*/true);
}

std::vector<FlagSpec> SelectionFlags() {
  return {
      {"selector", Kind::kString, "SELECTOR", kSelectorOrAllHelp},
      {"all", Kind::kBool, "", "every database of the fleet (no --selector)"},
  };
}

FlagSpec KeyFlag(const std::string& help) {
  return {"key", Kind::kString, "KEY", help, /*repeated=*/true};
}

std::vector<FlagSpec> SwitchFlags() {
  std::vector<FlagSpec> flags = SelectionFlags();
  flags.push_back({"reason", Kind::kString, "TEXT", "why (required; audited)"});
  flags.push_back({"watch", Kind::kBool, "",
                   "print a line per database as each one is done, until all "
                   "are (exit 1 if one failed)"});
  return flags;
}

constexpr char kSwitchDescription[] =
    "The runbook's emergency switch ('Disable new logging immediately'):\n"
    "Monitoring.EnableMetrics and Audit.LogValidations on every selected "
    "database at once (one wave,\nno gates, every database tried whatever "
    "the others do, nothing rolled back by itself;\na database whose agent "
    "is offline for 10 s counts as failed). Audited as a warning.\n"
    "Prints the rollout's id; with --watch, then one line per database as it "
    "is done, e.g.\n"
    "  db-1 ok 210 ms\n"
    "  db-2 failed: failed in step set: ...\n"
    "and a summary; exits 0 if every database switched, 1 otherwise.\n"
    "With -o json: the Rollout (and with --watch, every RolloutEvent).\n";

}  // namespace

absl::StatusOr<std::vector<v1::ConfigSetting>> ParseSettings(
    const std::vector<std::string>& words) {
  std::vector<v1::ConfigSetting> settings;
  std::set<std::string> seen;
  for (const std::string& word : words) {
    const size_t equals = word.find('=');
    if (equals == std::string::npos) {
      return CommandUsageError(absl::StrCat(
          "\"", word,
          "\" is not KEY=VALUE; e.g. Authentication.MaxFailedAttempts=5"));
    }
    const std::string key(absl::StripAsciiWhitespace(word.substr(0, equals)));
    if (key.empty()) {
      return CommandUsageError(absl::StrCat(
          "\"", word,
          "\" has no key; write KEY=VALUE, e.g. Audit.RetentionDays=365"));
    }
    if (!seen.insert(key).second) {
      return CommandUsageError(
          absl::StrCat("key ", key, " is given twice; give each key once"));
    }
    v1::ConfigSetting& setting = settings.emplace_back();
    setting.set_key(key);
    setting.set_value(word.substr(equals + 1));
  }
  return settings;
}

absl::StatusOr<v1::SetConfigRequest> SetConfigRequestFromFlags(
    const Invocation& invocation, const std::string& requested_by) {
  ASSIGN_OR_RETURN(std::vector<v1::ConfigSetting> settings,
                   ParseSettings(invocation.args));
  RETURN_IF_ERROR(CheckSelection(invocation));
  ASSIGN_OR_RETURN(std::string reason, Reason(invocation));
  v1::SetConfigRequest request;
  for (v1::ConfigSetting& setting : settings)
    *request.add_settings() = std::move(setting);
  request.set_selector(invocation.Flag("selector"));
  request.set_all_databases(invocation.BoolFlag("all"));
  request.set_reason(reason);
  request.set_bundle(invocation.Flag("bundle"));
  request.set_requested_by(requested_by);
  // The flags `rollout create` takes, with the defaults of a configuration
  // change: canary first, nothing tolerated, everything put back.
  ASSIGN_OR_RETURN(v1::Strategy strategy, StrategyFromFlags(invocation));
  if (strategy.waves().empty()) {
    strategy.add_waves("1");
    strategy.add_waves("100%");
  }
  if (strategy.failure_budget().empty()) strategy.set_failure_budget("0");
  strategy.set_auto_rollback(invocation.BoolFlag("no_auto_rollback")
                                 ? v1::AUTO_ROLLBACK_UNSPECIFIED
                                 : v1::AUTO_ROLLBACK_ROLLOUT);
  *request.mutable_strategy() = std::move(strategy);
  return request;
}

std::string ConfigTable(const v1::GetConfigResponse& response, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "KEY", "DESIRED", "ACTUAL", "DRIFT", "UPDATED"}};
  for (const v1::ConfigEntry& entry : response.entries()) {
    rows.push_back({entry.database_id(), entry.key(), Desired(entry),
                    Actual(entry), entry.drift() ? "yes" : "-",
                    entry.actual_known()
                        ? RelativeTime(ToTime(entry.actual_time()), now)
                        : "never"});
  }
  return AlignedTable(rows);
}

std::string DriftTable(const v1::GetConfigResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "KEY", "DESIRED", "ACTUAL", "FINDING"}};
  for (const v1::ConfigEntry& entry : response.entries()) {
    std::string finding = "unknown";
    if (entry.drift()) {
      finding = "drift";
    } else if (entry.actual_known() && entry.actual_missing()) {
      finding = "missing";
    }
    rows.push_back({entry.database_id(), entry.key(), Desired(entry),
                    Actual(entry), finding});
  }
  return AlignedTable(rows);
}

std::string HistoryTable(const v1::GetConfigHistoryResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"TIME", "DATABASE", "KEY", "CHANGE", "ROLLOUT", "BY", "REASON"}};
  for (const v1::ConfigChange& change : response.changes()) {
    std::string text = absl::StrCat(Cell(change.previous_value()), " -> ",
                                    Cell(change.value()));
    if (change.rollback()) absl::StrAppend(&text, " (rollback)");
    rows.push_back({TimestampText(change.change_time()), change.database_id(),
                    change.key(), text, change.rollout_id(),
                    change.actor().empty() ? "-" : change.actor(),
                    change.reason().empty() ? "-" : Cell(change.reason())});
  }
  return AlignedTable(rows);
}

std::string EmergencyLine(const v1::RolloutTarget& target) {
  const std::string& id = target.database_id();
  const std::string error =
      target.error().empty() ? "" : absl::StrCat(": ", Cell(target.error()));
  switch (target.state()) {
    case v1::TARGET_STATE_SUCCEEDED: {
      std::string line = absl::StrCat(id, " ok");
      if (target.has_started_time() && target.has_finished_time()) {
        absl::StrAppend(
            &line, " ",
            ShortDuration(FromProtoTimestamp(target.finished_time()) -
                          FromProtoTimestamp(target.started_time())));
      }
      return line;
    }
    case v1::TARGET_STATE_FAILED:
      return absl::StrCat(id, " failed", error);
    case v1::TARGET_STATE_SKIPPED:
      return absl::StrCat(id, " skipped", error);
    case v1::TARGET_STATE_UNKNOWN:
      return absl::StrCat(id, " unknown", error);
    case v1::TARGET_STATE_ROLLED_BACK:
      return absl::StrCat(id, " rolled back", error);
    default:
      return "";
  }
}

NounSpec ConfigNoun() {
  std::vector<FlagSpec> set_flags = SelectionFlags();
  set_flags.push_back(
      {"reason", Kind::kString, "TEXT",
       "why the configuration changes (required; audited, kept in the "
       "history)"});
  set_flags.push_back({"bundle", Kind::kString, "BUNDLE",
                       "the bundle whose schema holds the keys (name@version "
                       "or id; default: the newest uploaded bundle declaring "
                       "every key)"});
  set_flags.push_back({"waves", Kind::kString, "SIZES",
                       "cumulative wave sizes, counts or percentages (default "
                       "1,100%: one canary database first)"});
  set_flags.push_back(
      {"max_parallel", Kind::kCount, "N",
       "at most N databases of a wave at once (0: the whole wave)"});
  set_flags.push_back({"failure_budget", Kind::kString, "N|P%",
                       "failures tolerated before the change stops, e.g. 2 or "
                       "10% (default 0)"});
  set_flags.push_back({"no_auto_rollback", Kind::kBool, "",
                       "when the change fails, leave the databases it changed "
                       "as they are (default: each gets its previous value "
                       "back)"});
  set_flags.push_back(
      {"watch", Kind::kBool, "",
       "then follow it like 'rollout watch' (and exit like it)"});

  std::vector<FlagSpec> diff_flags = SelectionFlags();
  diff_flags.push_back(
      KeyFlag("only this key (default: every key of the "
              "schema)"));
  diff_flags.push_back({"wait", Kind::kString, "DURATION",
                        "how long the server waits for the agents (default "
                        "30s)"});

  return {
      "config",
      "Fleet configuration: the typed keys a bundle declares, changed in waves "
      "like a rollout,\nwith what each database actually stores, so drift is "
      "visible.",
      {
          {"get",
           {},
           "Show desired and actual values per database and key",
           "Answers from what ecliptix-server knows (it does not ask the "
           "databases: 'config diff'\ndoes). Columns: DATABASE, KEY, DESIRED "
           "('-': never set by ecliptix), ACTUAL ('?': never\nread, "
           "<missing>: the database lacks the key), DRIFT, UPDATED (when the "
           "value was read).\nWith --key, every selected database is shown for "
           "that key, known or not.\n"
           "With -o json: the GetConfigResponse.\n"
           "Example: ecliptixctl config get --selector=env=prod "
           "--key=Audit.RetentionDays\n",
           {{"selector", Kind::kString, "SELECTOR",
             "label selector (default: every database)"},
            KeyFlag("only this key")},
           ConfigGet},
          {"set",
           {"KEY=VALUE..."},
           "Change configuration keys, canary first",
           "Each value is checked against the bundle's schema before anything "
           "is sent: an unknown\nkey, a value of the wrong type or out of "
           "range "
           "is refused (INVALID_ARGUMENT, exit 1)\nand nothing changes. Then "
           "the change goes out as a rollout: by default one canary\ndatabase, "
           "then the rest; the first failure stops it and every database it "
           "changed gets\nits previous value back. Prints the rollout's id; "
           "'rollout get|watch|abort|rollback' work\non it. With --watch, then "
           "follows it and exits like 'rollout watch': 0 if it\nsucceeded, 1 "
           "otherwise.\n"
           "Example: ecliptixctl config set Authentication.MaxFailedAttempts=5 "
           "\\\n  Audit.RetentionDays=365 --selector=env=prod "
           "--reason='runbook values' --watch\n",
           set_flags,
           ConfigSet},
          {"diff",
           {},
           "Read the databases now and show what differs from the desired "
           "values",
           "The agents read every key (or --key) from their databases; then "
           "one line per key whose\nvalue differs from what ecliptix set "
           "(drift), is missing, or could not be known.\nColumns: DATABASE, "
           "KEY, DESIRED, ACTUAL, FINDING. Databases that could not be read\n"
           "(agent offline, a failed read, no answer in time) follow as "
           "'not read: ...'.\n"
           "Exit status: 0 and 'no drift' when every database was read and "
           "nothing differs;\n1 otherwise (drift, a missing key, a database "
           "not read, or an error), so scripts can\nalert on it. 'config set' "
           "with the desired value repairs drift.\n"
           "With -o json: the GetConfigResponse (same exit status).\n"
           "Example: ecliptixctl config diff --all "
           "--key=Audit.LogValidations\n",
           diff_flags,
           ConfigDiff},
          {"history",
           {},
           "Show past configuration changes, newest first",
           "Columns: TIME, DATABASE, KEY, CHANGE (previous -> new; "
           "'(rollback)' when a rollback stored\nthe previous value again), "
           "ROLLOUT, BY, REASON. With -o json: the\n"
           "GetConfigHistoryResponse.\n",
           {KeyFlag("only this key"),
            {"database", Kind::kString, "DATABASE_ID", "only this database"},
            {"limit", Kind::kCount, "N", "at most N changes (0: 50)"}},
           ConfigHistory},
      }};
}

NounSpec EmergencyNoun() {
  return {"emergency",
          "The runbook's emergency switch: stop the high-frequency logging "
          "(metrics and validation\naudit rows) on many databases at once, "
          "and turn it back on.",
          {
              {"disable-logging",
               {},
               "Set Monitoring.EnableMetrics and Audit.LogValidations to 0 at "
               "once",
               absl::StrCat(kSwitchDescription,
                            "Example: ecliptixctl emergency disable-logging "
                            "--selector=env=prod \\\n"
                            "  --reason='audit log fills the disk' --watch\n"),
               SwitchFlags(),
               EmergencyDisable},
              {"enable-logging",
               {},
               "Set Monitoring.EnableMetrics and Audit.LogValidations back to "
               "the bundle's defaults (1 and 0)",
               absl::StrCat(kSwitchDescription,
                            "Example: ecliptixctl emergency enable-logging "
                            "--all --reason='disk extended' --watch\n"),
               SwitchFlags(),
               EmergencyEnable},
          }};
}

}  // namespace ecliptix::client::ctl
