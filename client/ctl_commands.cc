#include "client/ctl_commands.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/ctl_alerts.h"
#include "client/ctl_bundle.h"
#include "client/ctl_config.h"
#include "client/ctl_format.h"
#include "client/ctl_health.h"
#include "client/ctl_job.h"
#include "client/ctl_metrics.h"
#include "client/ctl_query.h"
#include "client/ctl_rollout.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace ecliptix::client::ctl {
namespace {

using fleet::v1::Database;
using fleet::v1::FleetEvent;
using Kind = FlagSpec::Kind;

absl::Status FleetList(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(
      std::vector<Database> databases,
      client->ListAllDatabases(
          invocation.Flag("selector"),
          static_cast<int32_t>(invocation.CountFlag("page_size", 0))));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, DatabasesJson(databases));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  if (databases.empty()) {
    // On stderr, so stdout stays empty for scripts that count lines.
    runtime.err() << "No databases found.\n";
    return absl::OkStatus();
  }
  // The ALERTS column: active alerts by database. A server without
  // AlertService (an older one) lists databases without it.
  fleet::v1::ListAlertsRequest alerts_request;
  alerts_request.set_selector(invocation.Flag("selector"));
  absl::StatusOr<fleet::v1::ListAlertsResponse> alerts =
      client->ListAlerts(alerts_request);
  if (!alerts.ok() &&
      alerts.status().code() != absl::StatusCode::kUnimplemented)
    return alerts.status();
  const std::map<std::string, std::vector<std::string>> names =
      alerts.ok() ? ActiveAlertNames(*alerts)
                  : std::map<std::string, std::vector<std::string>>();
  runtime.out() << DatabaseTable(databases, runtime.Now(),
                                 alerts.ok() ? &names : nullptr);
  return absl::OkStatus();
}

absl::Status FleetGet(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(Database database, client->GetDatabase(invocation.args[0]));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(database));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  runtime.out() << DatabaseDetails(database, runtime.Now());
  return absl::OkStatus();
}

absl::Status FleetWatch(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  fleet::v1::WatchFleetRequest request;
  request.set_selector(invocation.Flag("selector"));
  return PrintWatchedEvents<FleetEvent>(
      invocation, runtime, client,
      [&](std::function<bool(const FleetEvent&)> on_event) {
        return client->WatchFleet(request, std::move(on_event));
      },
      EventLine);
}

absl::Status Version(const Invocation& invocation, CommandRuntime& runtime) {
  if (invocation.output == OutputFormat::kJson) {
    runtime.out() << "{\"clientVersion\":\"" << kVersion << "\"}\n";
  } else {
    runtime.out() << kProgram << " " << kVersion << "\n";
  }
  return absl::OkStatus();
}

absl::Status Help(const Invocation&, CommandRuntime& runtime) {
  // ParseCommandLine answers "help" itself; this only runs if that ever
  // changes.
  runtime.out() << UsageText(Commands());
  return absl::OkStatus();
}

constexpr char kUsagePayload[] = "type.ecliptix.io/ctl.UsageError";

void PrintError(std::ostream& err, const absl::Status& status) {
  // One line, whatever the server put in its message.
  err << kProgram << ": " << absl::StatusCodeToString(status.code()) << ": "
      << absl::StrReplaceAll(status.message(), {{"\n", " "}}) << "\n";
}

}  // namespace

absl::Status CommandUsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsCommandUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

std::string DefaultUser() {
  const char* user = std::getenv("USER");
  if (user == nullptr || *user == '\0') user = std::getenv("LOGNAME");
  if (user == nullptr || *user == '\0') return "";
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return user;
  }
  return absl::StrCat(user, "@", host);
}

bool InterruptState::Interrupt() {
  absl::MutexLock lock(&mutex_);
  const bool first = !interrupted_;
  interrupted_ = true;
  if (!first || watch_client_ == nullptr) return false;
  watch_client_->CancelWatches();
  return true;
}

bool InterruptState::interrupted() const {
  absl::MutexLock lock(&mutex_);
  return interrupted_;
}

void InterruptState::BeginWatch(FleetClient* client) {
  absl::MutexLock lock(&mutex_);
  watch_client_ = client;
}

void InterruptState::EndWatch() {
  absl::MutexLock lock(&mutex_);
  watch_client_ = nullptr;
}

absl::StatusOr<FleetClient*> CommandRuntime::Client() {
  if (client_ == nullptr) {
    ClientOptions options;
    options.server_address = invocation_.server;
    options.rpc_timeout = invocation_.timeout;
    ASSIGN_OR_RETURN(client_, FleetClient::Create(std::move(options)));
  }
  return client_.get();
}

const CommandTable& Commands() {
  static const auto* table = new CommandTable{
      {"fleet",
       "The databases ecliptix-server knows: their engines, labels and "
       "connection state.",
       {
           {"list",
            {},
            "List databases matching a selector (every page)",
            "Columns: DATABASE ID, ENGINE, VERSION (short; 'fleet get' shows "
            "it "
            "whole), STATE, LABELS, LAST SEEN, ALERTS (active alerts: "
            "their number and rules).\n"
            "With -o json: one object {\"databases\":[...]}.\n"
            "Example: ecliptixctl fleet list --selector='env=prod,region in "
            "(eu,us)'\n",
            {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
             {"page_size", Kind::kCount, "N",
              "databases per request (0: the server's default); all pages are "
              "fetched"}},
            FleetList},
           {"get",
            {"DATABASE_ID"},
            "Show one database",
            "Exits 1 with NOT_FOUND when the server has never seen it.\n",
            {},
            FleetGet},
           {"watch",
            {},
            "Print the fleet, then every change as it happens",
            "One line per event: time, event type, database id, state, labels, "
            "reason.\nFirst a SNAPSHOT event per database and "
            "SNAPSHOT_COMPLETE, then live events.\n"
            "Runs until Ctrl-C or SIGTERM (exit 0), or until --count events.\n"
            "With -o json: one FleetEvent object per line.\n",
            {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
             {"count", Kind::kCount, "N",
              "exit after N events, snapshot events included (0: never)"}},
            FleetWatch},
       }},
      BundleNoun(),
      RolloutNoun(),
      JobNoun(),
      ConfigNoun(),
      EmergencyNoun(),
      QueryNoun(),
      MetricsNoun(),
      AlertsNoun(),
      HealthNoun(),
      {"version",
       "Print the version of ecliptixctl.",
       {{"", {}, "Print the version of ecliptixctl", "", {}, Version}}},
      {"help",
       "Show help.",
       {{"", {"[NOUN [VERB]]"}, "Show help for a command", "", {}, Help}}},
  };
  return *table;
}

int RunCtl(const std::vector<std::string>& args, CtlContext& context) {
  if (args.empty()) {
    *context.err << UsageText(Commands());
    return kExitUsage;
  }
  absl::StatusOr<Invocation> invocation =
      ParseCommandLine(Commands(), args, context.env_server);
  if (!invocation.ok()) {
    PrintError(*context.err, invocation.status());
    return kExitUsage;
  }
  if (invocation->help) {
    *context.out << *invocation->help;
    return kExitOk;
  }
  CommandRuntime runtime(*invocation, context);
  const absl::Status status = invocation->verb->run(*invocation, runtime);
  context.out->flush();
  if (!status.ok()) {
    PrintError(*context.err, status);
    return IsCommandUsageError(status) ? kExitUsage : kExitFailure;
  }
  return runtime.exit_code();
}

}  // namespace ecliptix::client::ctl
