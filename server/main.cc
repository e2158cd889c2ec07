// ecliptix-server: the central control plane of an Ecliptix fleet.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/metrics/prometheus_exporter.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070",
          "HOST:PORT to serve agents and clients on (port 0 picks a free one). "
          "The default stays on "
          "loopback; use 0.0.0.0:7070 to reach agents on other hosts.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus metrics on, at /metrics (port 0 picks "
          "a free one; IPv4). Empty (the default): no metrics endpoint.");
ABSL_FLAG(std::string, store, "",
          "State store URL: sqlite:///path/state.db or "
          "postgresql://user@host:port/db. Default: "
          "sqlite://<data_dir>/state.db");
ABSL_FLAG(std::string, data_dir, "ecliptix-data",
          "Directory for the default SQLite state store; created if missing.");
ABSL_FLAG(int64_t, max_bundle_bytes, 16 << 20,
          "The largest bundle upload accepted, in bytes (sum of its files).");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error or off");
ABSL_FLAG(std::string, log_format, "text",
          "text or json (one JSON object per line)");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(10),
          "How often agents send heartbeats (told to them at connect).");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(30),
          "An agent silent for longer is marked lost and its stream closed.");
ABSL_FLAG(absl::Duration, rollout_retention, absl::Hours(24),
          "How long a finished rollout stays in the server's memory; after "
          "that it is read from the store when asked for.");

ABSL_FLAG(absl::Duration, metrics_raw_retention, absl::Hours(24),
          "How long raw metric samples are kept; series queries read them for "
          "ranges that start within it.");
ABSL_FLAG(absl::Duration, metrics_rollup_retention, absl::Hours(24 * 30),
          "How long minute and hour rollups of metric samples are kept (at "
          "least --metrics_raw_retention).");

ABSL_FLAG(double, alert_failed_logins_per_minute, 5,
          "Alert when a database's failed logins per minute (over "
          "--alert_window) are above this (the runbook locks an account out "
          "after 5 failed attempts).");
ABSL_FLAG(double, alert_error_rate, 0.001,
          "Alert when a database's failed procedure calls per call (over "
          "--alert_window) are above this fraction (0.001 = 0.1%).");
ABSL_FLAG(double, alert_avg_procedure_ms, 100,
          "Alert when a database's average procedure execution time (over "
          "--alert_window) is above this many milliseconds.");
ABSL_FLAG(absl::Duration, alert_window, absl::Minutes(5),
          "How far back alert rules look at metrics (1m to 6h, whole "
          "minutes). Any SUSPICIOUS_ACTIVITY in it fires an alert too.");
ABSL_FLAG(absl::Duration, alert_evaluation_period, absl::Seconds(15),
          "How often alert rules are evaluated.");
ABSL_FLAG(absl::Duration, alert_resolve_after, absl::Minutes(1),
          "An active alert resolves once its rule has not held for this long "
          "(0s: at the first evaluation where it does not), so a figure "
          "hovering at its threshold does not fire and resolve repeatedly.");

namespace {

[[noreturn]] void Fail(int code, const std::string& message) {
  std::fprintf(stderr, "ecliptix-server: %s\n", message.c_str());
  std::exit(code);
}

// Each agent holds a connection: raise the descriptor limit as far as the hard
// limit allows.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Abseil as Debian builds it (without NDEBUG) checks every mutex acquisition
  // against a process-wide lock graph: a lookup under one global spin lock per
  // Lock, in a fixed-size table that slows down as live mutexes (several per
  // agent stream) grow. A debugging aid: the tests that run the server in
  // their own process keep it; the server does without, as a release build of
  // Abseil does.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Signals are taken by a dedicated thread with sigwait: no work in a signal
  // handler. Blocked first, so that every thread started later (gRPC's, the
  // store writer's) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::SetProgramUsageMessage(absl::StrCat(
      "the central gRPC server of an Ecliptix fleet (version ",
      ecliptix::kVersion,
      ").\nUsage: ecliptix-server [--listen=HOST:PORT] [--store=URL] [flags]"));
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    Fail(2, absl::StrCat("unexpected argument \"", positional[1],
                         "\"; flags take --name=value"));
  }
  if (absl::Status status = ecliptix::ConfigureLogging(
          absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_format));
      !status.ok()) {
    Fail(2, std::string(status.message()));
  }
  const absl::Duration interval = absl::GetFlag(FLAGS_heartbeat_interval);
  const absl::Duration timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  if (interval <= absl::ZeroDuration() || timeout <= interval) {
    Fail(2,
         "--heartbeat_timeout must be longer than --heartbeat_interval, and "
         "both positive");
  }

  RaiseFileLimit();

  ecliptix::server::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.metrics_listen_address = absl::GetFlag(FLAGS_metrics_listen);
  if (!options.metrics_listen_address.empty()) {
    if (absl::Status status =
            ecliptix::server::PrometheusExporter::CheckListenAddress(
                options.metrics_listen_address);
        !status.ok()) {
      Fail(2, absl::StrCat("--metrics_listen: ", status.message()));
    }
  }
  options.store_url = absl::GetFlag(FLAGS_store);
  if (options.store_url.empty()) {
    const std::filesystem::path data_dir = absl::GetFlag(FLAGS_data_dir);
    std::error_code error;
    std::filesystem::create_directories(data_dir, error);
    if (error) {
      Fail(1, absl::StrCat("cannot create data directory ", data_dir.string(),
                           ": ", error.message()));
    }
    options.store_url = absl::StrCat(
        "sqlite://", std::filesystem::absolute(data_dir).string(), "/state.db");
  }
  options.max_bundle_bytes = absl::GetFlag(FLAGS_max_bundle_bytes);
  if (options.max_bundle_bytes <= 0)
    Fail(2, "--max_bundle_bytes must be positive");
  options.registry.heartbeat_interval = interval;
  options.registry.heartbeat_timeout = timeout;
  options.rollouts.retention = absl::GetFlag(FLAGS_rollout_retention);
  if (options.rollouts.retention < absl::ZeroDuration())
    Fail(2, "--rollout_retention must not be negative");

  options.metrics.raw_retention = absl::GetFlag(FLAGS_metrics_raw_retention);
  options.metrics.rollup_retention =
      absl::GetFlag(FLAGS_metrics_rollup_retention);
  if (options.metrics.raw_retention <= absl::ZeroDuration() ||
      options.metrics.rollup_retention < options.metrics.raw_retention) {
    Fail(2,
         "--metrics_raw_retention must be positive and "
         "--metrics_rollup_retention at least as long");
  }

  options.alerts.failed_logins_per_minute =
      absl::GetFlag(FLAGS_alert_failed_logins_per_minute);
  options.alerts.error_rate = absl::GetFlag(FLAGS_alert_error_rate);
  options.alerts.avg_procedure_ms = absl::GetFlag(FLAGS_alert_avg_procedure_ms);
  options.alerts.window = absl::GetFlag(FLAGS_alert_window);
  options.alerts.evaluation_period =
      absl::GetFlag(FLAGS_alert_evaluation_period);
  options.alerts.resolve_after = absl::GetFlag(FLAGS_alert_resolve_after);
  if (absl::Status status =
          ecliptix::server::ValidateAlertOptions(options.alerts);
      !status.ok()) {
    Fail(2, std::string(status.message()));
  }

  absl::StatusOr<std::unique_ptr<ecliptix::server::Server>> server =
      ecliptix::server::Server::Start(options);
  if (!server.ok()) Fail(1, std::string(server.status().message()));

  std::thread signal_thread([&] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    ecliptix::Logger("server")->info("received {}, shutting down",
                                     strsignal(signal_number));
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_thread.join();
  return 0;
}
