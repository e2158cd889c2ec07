// ecliptix-agent: runs next to one database, keeps its credentials, and holds
// one control stream to ecliptix-server. Exit codes: 0 after a clean shutdown
// (SIGTERM/SIGINT), 2 for a bad command line (flags, URL, labels, database id),
// 1 when the agent cannot start (database unreachable, database id conflict,
// ...).
//
// With a command as first argument (plan, apply, revert, repair, backup,
// restore, history, call) it runs in local mode instead: one operation on the
// database, no server (agent/executor/local_commands.h). SIGINT/SIGTERM then
// cancel the running step (rolled back); a second signal exits at once.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/executor/local_commands.h"
#include "common/identifiers.h"
#include "common/labels.h"
#include "common/logging.h"
#include "common/sql/database_url.h"
#include "common/version.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7070",
          "Address (host:port) of ecliptix-server.");
ABSL_FLAG(std::string, database, "",
          "Required. The database this agent manages: sqlite:///path/file.db, "
          "postgresql://user:password@host:port/dbname or odbc://<ODBC "
          "connection string>.");
ABSL_FLAG(std::string, labels, "",
          "Labels of the database, k=v,k=v (e.g. env=prod,region=eu).");
ABSL_FLAG(
    std::string, database_id, "",
    "Stable id for a database that has none yet; by default one is generated. "
    "A database "
    "that already has an id keeps it (a different value here is an error).");
ABSL_FLAG(absl::Duration, initial_backoff, absl::Seconds(1),
          "First delay before reconnecting to the server, e.g. 1s or 500ms.");
ABSL_FLAG(absl::Duration, max_backoff, absl::Seconds(30),
          "Longest delay between reconnects.");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error or off.");
ABSL_FLAG(std::string, log_format, "text",
          "text or json (one JSON object per line).");
ABSL_FLAG(std::string, backup_dir, "",
          "Where backups taken before deployments go (kept on this host). "
          "Default: next to a SQLite file (.ecliptix-backups), else "
          "./ecliptix-backups.");
// Off by default until ecliptix-server stores samples: an agent keeps what
// the server does not acknowledge, within its bound.
ABSL_FLAG(bool, collect_metrics, true,
          "Run the metric collectors of the bundle applied on the database and "
          "stream their samples to the server (--collect_metrics=false: none "
          "for this database). The bundle's Monitoring.EnableMetrics = 0 also "
          "stops them.");
ABSL_FLAG(double, metrics_interval_scale, 1.0,
          "Multiplies every collector's interval, e.g. 0.05 runs a 60 s "
          "collector every 3 s (demos and tests).");
ABSL_FLAG(bool, metrics_count_existing_rows, false,
          "The first collection of an incremental collector (calls, errors, "
          "logins) counts the rows already in the database; by default it "
          "starts after them.");

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

[[noreturn]] void Fail(int code, absl::string_view reason) {
  std::fprintf(stderr, "ecliptix-agent: %.*s\n",
               static_cast<int>(reason.size()), reason.data());
  std::fflush(stderr);
  std::exit(code);
}

// absl's parser reports bad flags on several lines and exits 1; the agent's
// contract is one line and exit 2. So the command line is checked here first
// and absl parses only what is known good.
void CheckCommandLine(int argc, char* argv[]) {
  // Flags absl itself handles (usage and flag-file machinery).
  static const char* const kAbslFlags[] = {
      "help",       "helpfull",        "helpshort", "helppackage",
      "version",    "only_check_args", "flagfile",  "fromenv",
      "tryfromenv", "undefok"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc)
        Fail(kExitUsage,
             absl::StrCat("unexpected argument \"", argv[i + 1], "\""));
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      Fail(kExitUsage, absl::StrCat("unexpected argument \"", arg,
                                    "\": flags take the form --name=value"));
    }
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t equals = arg.find('=');
    absl::string_view name = arg.substr(0, equals);
    bool absl_flag = false;
    for (const char* known : kAbslFlags) absl_flag |= name == known;
    if (absl_flag) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") &&
        equals == absl::string_view::npos) {
      absl::CommandLineFlag* positive =
          absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) {
      Fail(kExitUsage, absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    std::string value;
    if (equals != absl::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (flag->IsOfType<bool>()) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];  // absl also accepts "--name value".
    } else {
      Fail(kExitUsage,
           absl::StrCat("flag --", name, " needs a value: --", name, "=VALUE"));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      Fail(kExitUsage, absl::StrCat("invalid value \"", value, "\" for --",
                                    name, ": ", error));
    }
  }
}

// Set by the signal thread, read by main.
absl::Mutex signal_mutex;
ecliptix::agent::Agent* running_agent ABSL_GUARDED_BY(signal_mutex) = nullptr;

// SIGTERM and SIGINT are blocked in every thread and taken here with sigwait,
// so shutdown runs as ordinary code instead of inside a signal handler.
void WaitForSignals(sigset_t signals) {
  int count = 0;
  while (true) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    auto logger = ecliptix::Logger("agent");
    absl::MutexLock lock(&signal_mutex);
    if (running_agent == nullptr || ++count > 1) {
      // Still starting (e.g. connecting to the database), or a second signal:
      // nothing to clean up that is worth waiting for.
      logger->warn("received signal {}; exiting now", signal_number);
      logger->flush();
      std::_Exit(running_agent == nullptr ? kExitOk : kExitFailure);
    }
    logger->info("received signal {}; shutting down", signal_number);
    running_agent->Shutdown();
  }
}

// Local mode: the first signal cancels the running operation (it fails and
// rolls back, and the command exits 1); a second one exits now.
void CancelOnSignals(sigset_t signals) {
  int count = 0;
  while (true) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (++count > 1) std::_Exit(kExitFailure);
    std::fprintf(stderr, "ecliptix-agent: received signal %d; cancelling\n",
                 signal_number);
    ecliptix::agent::CancelRunningLocalCommand();
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  // Block before any thread exists so every thread (gRPC's included) inherits
  // the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A first argument that is not a flag selects local mode.
  if (argc > 1 && argv[1][0] != '-') {
    if (!ecliptix::agent::IsLocalCommand(argv[1])) {
      Fail(kExitUsage,
           absl::StrCat("unknown command \"", argv[1],
                        "\": use plan, apply, revert, repair, backup, "
                        "restore, history or call, or flags only for the "
                        "agent daemon"));
    }
    std::thread(CancelOnSignals, signals).detach();
    return ecliptix::agent::RunLocalCommand(argc, argv, stdout, stderr);
  }

  absl::SetProgramUsageMessage(
      absl::StrCat("ecliptix-agent ", ecliptix::kVersion,
                   ": manages one database for ecliptix-server.\n"
                   "Usage: ecliptix-agent --database=URL [--server=host:port] "
                   "[--labels=k=v,...] [flags]\n",
                   ecliptix::agent::LocalUsage()));
  // absl's --help lists flags of files named after the program; ours live in
  // agent/main.cc.
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "agent/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.version_string = [] {
    return absl::StrCat("ecliptix-agent ", ecliptix::kVersion, "\n");
  };
  absl::SetFlagsUsageConfig(usage_config);
  CheckCommandLine(argc, argv);
  absl::ParseCommandLine(argc, argv);

  if (absl::Status status = ecliptix::ConfigureLogging(
          absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_format));
      !status.ok()) {
    Fail(kExitUsage, status.message());
  }

  ecliptix::agent::AgentOptions options;
  options.server_address = absl::GetFlag(FLAGS_server);
  options.database_url = absl::GetFlag(FLAGS_database);
  options.database_id = absl::GetFlag(FLAGS_database_id);
  options.initial_backoff = absl::GetFlag(FLAGS_initial_backoff);
  options.max_backoff = absl::GetFlag(FLAGS_max_backoff);
  options.backup_dir = absl::GetFlag(FLAGS_backup_dir);
  options.collect_metrics = absl::GetFlag(FLAGS_collect_metrics);
  options.metrics_interval_scale = absl::GetFlag(FLAGS_metrics_interval_scale);
  options.metrics_count_existing_rows =
      absl::GetFlag(FLAGS_metrics_count_existing_rows);
  if (options.server_address.empty())
    Fail(kExitUsage, "--server is empty: use host:port");
  if (options.database_url.empty()) {
    Fail(kExitUsage,
         "--database is required, e.g. --database=sqlite:///var/lib/app.db");
  }
  if (auto url = ecliptix::sql::ParseDatabaseUrl(options.database_url);
      !url.ok()) {
    Fail(kExitUsage, url.status().message());
  }
  absl::StatusOr<ecliptix::Labels> labels =
      ecliptix::ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok())
    Fail(kExitUsage, absl::StrCat("--labels: ", labels.status().message()));
  options.labels = *std::move(labels);
  if (!options.database_id.empty()) {
    if (absl::Status status = ecliptix::ValidateDatabaseId(options.database_id);
        !status.ok()) {
      Fail(kExitUsage, absl::StrCat("--database_id: ", status.message()));
    }
  }
  if (options.initial_backoff <= absl::ZeroDuration()) {
    Fail(kExitUsage, "--initial_backoff must be positive");
  }
  if (options.max_backoff < options.initial_backoff) {
    Fail(kExitUsage,
         "--max_backoff must not be shorter than --initial_backoff");
  }
  if (!(options.metrics_interval_scale > 0) ||
      !std::isfinite(options.metrics_interval_scale)) {
    Fail(kExitUsage, "--metrics_interval_scale must be positive");
  }

  std::thread signal_thread(WaitForSignals, signals);
  signal_thread
      .detach();  // It lives until the process ends, blocked in sigwait.

  // Everything the command line controls was checked above: what fails now is
  // the environment.
  absl::StatusOr<std::unique_ptr<ecliptix::agent::Agent>> agent =
      ecliptix::agent::Agent::Start(std::move(options));
  if (!agent.ok()) Fail(kExitFailure, agent.status().message());
  {
    absl::MutexLock lock(&signal_mutex);
    running_agent = agent->get();
  }
  (*agent)->Wait();
  {
    absl::MutexLock lock(&signal_mutex);
    running_agent = nullptr;
  }
  ecliptix::Logger("agent")->info("stopped");
  return kExitOk;
}
