#include "tools/workload/workload_flags.h"

#include <random>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace ecliptix::workload {
namespace {

std::string MixHelp() {
  std::vector<std::string> parts;
  for (const std::string& name : WorkloadOperations()) {
    parts.push_back(absl::StrCat(name, "=", DefaultMix().at(name)));
  }
  return absl::StrJoin(parts, ",");
}

constexpr char kDescription[] =
    "Calls the Ecliptix bundle's operations on databases where the bundle is "
    "deployed, at a chosen rate, so that maintenance jobs, fleet queries and "
    "metrics have real rows: memberships first (a pool per database), then "
    "logins (some failing, up to lockouts), OTP verification flows, "
    "authentication contexts (some short-lived), status changes, phone "
    "validations and circuit breaker results. Prints progress every few "
    "seconds and a summary at the end.\n"
    "Exit codes: 0 nothing failed unexpectedly, 1 something did (or a "
    "database is unreachable or lacks the bundle), 2 bad command line.";

}  // namespace

int ParseCommandLine(int argc, const char* const argv[], CommandLine* parsed,
                     std::FILE* out, std::FILE* err) {
  WorkloadOptions& options = parsed->options;
  CLI::App app{kDescription, "workload"};
  app.add_option("--database", options.database_urls,
                 "a database to call, repeatable: sqlite:///path.db, "
                 "postgresql://user@host:port/db, odbc://...")
      ->required()
      ->type_name("URL");
  app.add_option("--bundle_dir", options.bundle_dir,
                 "the bundle deployed on the databases")
      ->capture_default_str()
      ->type_name("DIR");
  app.add_option("--rate", options.rate,
                 "calls per second over all databases (0: as fast as they go)")
      ->capture_default_str();
  std::string duration_text;
  app.add_option("--duration", duration_text,
                 "stop after this long, e.g. 30s or 10m (default: until "
                 "SIGINT/SIGTERM, then a clean stop)")
      ->type_name("DURATION");
  app.add_option("--calls", options.max_calls,
                 "stop after this many calls in total (0: no limit)")
      ->capture_default_str();
  CLI::Option* seed = app.add_option(
      "--seed", options.seed,
      "seeds the choices, for a reproducible mix (default: random, printed)");
  std::string mix_text;
  app.add_option("--mix", mix_text,
                 absl::StrCat("weights of the operations, Operation=weight,...;"
                              " operations left out get 0 (default: ",
                              MixHelp(), ")"))
      ->type_name("MIX");
  app.add_option("--error_percent", options.error_percent,
                 "share of calls made with input the operation refuses "
                 "(malformed phone numbers, unknown flows and memberships, "
                 "malformed tokens, ...), counted as failed on purpose")
      ->capture_default_str();
  app.add_option("--failed_login_percent", options.failed_login_percent,
                 "share of logins with a wrong secret or an unknown number; "
                 "most hammer one number until it is locked out "
                 "(LOGIN_BLOCKED, SUSPICIOUS_ACTIVITY)")
      ->capture_default_str();
  app.add_option("--pool_size", options.pool_size,
                 "memberships created on each database before anything else")
      ->capture_default_str();
  std::string progress_text = "5s";
  app.add_option("--progress_interval", progress_text,
                 "how often a progress line is printed")
      ->capture_default_str()
      ->type_name("DURATION");
  bool no_error_log = false;
  app.add_flag("--no_error_log", no_error_log,
               "do not write an ErrorLog row for each failed call");
  app.add_option("--log_level", parsed->log_level,
                 "trace, debug, info, warn, error or off")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), out);
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    std::fprintf(err, "workload: %s (see --help)\n", error.what());
    return kExitUsage;
  }

  auto usage = [err](const std::string& message) {
    std::fprintf(err, "workload: %s\n", message.c_str());
    return kExitUsage;
  };
  if (!duration_text.empty()) {
    if (!absl::ParseDuration(duration_text, &options.duration)) {
      return usage(
          absl::StrCat("--duration takes a duration such as 30s or "
                       "10m, not \"",
                       duration_text, "\""));
    }
  }
  if (!absl::ParseDuration(progress_text, &options.progress_interval)) {
    return usage(
        absl::StrCat("--progress_interval takes a duration such as 5s, not \"",
                     progress_text, "\""));
  }
  if (!mix_text.empty()) {
    absl::StatusOr<Mix> mix = ParseMix(mix_text);
    if (!mix.ok()) return usage(std::string(mix.status().message()));
    options.mix = *std::move(mix);
  }
  options.error_log = !no_error_log;
  parsed->seed_given = seed->count() > 0;
  if (!parsed->seed_given) {
    std::random_device device;
    options.seed = (uint64_t{device()} << 32 | device()) % 1000000000;
  }
  const std::string& level = parsed->log_level;
  if (level != "trace" && level != "debug" && level != "info" &&
      level != "warn" && level != "error" && level != "off") {
    return usage(
        absl::StrCat("--log_level is trace, debug, info, warn, "
                     "error or off, not \"",
                     level, "\""));
  }
  if (absl::Status status = ValidateOptions(options); !status.ok()) {
    return usage(std::string(status.message()));
  }
  return -1;
}

}  // namespace ecliptix::workload
