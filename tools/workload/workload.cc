// workload: calls the Ecliptix operations on demo databases at a chosen rate
// (workload_driver.h), printing progress and a summary.
//
//   bazel run //tools/workload -- --database=sqlite:///tmp/demo/eu-1.db
//       --database=sqlite:///tmp/demo/eu-2.db --rate=50 --duration=1m
//
// SIGINT or SIGTERM stops it cleanly: each database finishes the call in
// flight, the summary is printed; a second signal exits at once.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "tools/workload/workload_driver.h"
#include "tools/workload/workload_flags.h"

namespace {

using ::ecliptix::workload::WorkloadDriver;

absl::Mutex signal_mutex;
WorkloadDriver* running_driver ABSL_GUARDED_BY(signal_mutex) = nullptr;
bool stop_requested ABSL_GUARDED_BY(signal_mutex) = false;

// SIGINT and SIGTERM are blocked in every thread and taken here with
// sigwait, so stopping is ordinary code, not a signal handler.
void WaitForSignals(sigset_t signals) {
  while (true) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) continue;
    absl::MutexLock lock(&signal_mutex);
    if (running_driver == nullptr || stop_requested) {
      // Still connecting and checking the databases, or a second signal.
      std::fprintf(stderr, "workload: received signal %d; exiting now\n",
                   signal_number);
      std::_Exit(ecliptix::workload::kExitFailure);
    }
    stop_requested = true;
    std::fprintf(stderr,
                 "workload: received signal %d; stopping after the calls in "
                 "flight\n",
                 signal_number);
    running_driver->Stop();
  }
}

std::string Until(const ecliptix::workload::CommandLine& command_line) {
  const auto& options = command_line.options;
  std::string until;
  if (options.max_calls > 0) until = absl::StrCat(options.max_calls, " calls");
  if (options.duration != absl::InfiniteDuration()) {
    absl::StrAppend(&until, until.empty() ? "" : " or ",
                    absl::FormatDuration(options.duration));
  }
  return until.empty() ? "until SIGINT/SIGTERM" : absl::StrCat("for ", until);
}

}  // namespace

int main(int argc, char** argv) {
  namespace workload = ::ecliptix::workload;
  // Under `bazel run` the working directory is the runfiles tree: relative
  // database paths and --bundle_dir mean the directory the user was in.
  if (const char* directory = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(directory) != 0) {
      std::fprintf(stderr, "workload: cannot change to %s\n", directory);
      return workload::kExitFailure;
    }
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  workload::CommandLine command_line;
  if (int code =
          workload::ParseCommandLine(argc, argv, &command_line, stdout, stderr);
      code >= 0) {
    return code;
  }
  if (absl::Status status =
          ecliptix::ConfigureLogging(command_line.log_level, "text");
      !status.ok()) {
    std::fprintf(stderr, "workload: %s\n",
                 std::string(status.message()).c_str());
    return workload::kExitUsage;
  }
  std::thread(WaitForSignals, signals).detach();

  const workload::WorkloadOptions& options = command_line.options;
  absl::StatusOr<std::unique_ptr<WorkloadDriver>> driver =
      WorkloadDriver::Create(options);
  if (!driver.ok()) {
    std::fprintf(stderr, "workload: %s\n",
                 std::string(driver.status().message()).c_str());
    return workload::kExitFailure;
  }
  std::printf("workload: %zu database%s, %s, %s; seed %llu%s\n",
              options.database_urls.size(),
              options.database_urls.size() == 1 ? "" : "s",
              options.rate > 0
                  ? absl::StrFormat("%g calls/s", options.rate).c_str()
                  : "as fast as possible",
              Until(command_line).c_str(),
              static_cast<unsigned long long>(options.seed),
              command_line.seed_given ? "" : " (repeat the mix with --seed)");
  std::fflush(stdout);
  {
    absl::MutexLock lock(&signal_mutex);
    running_driver = driver->get();
  }
  const workload::WorkloadReport report = (*driver)->Run(stdout);
  std::fputs(workload::FormatSummary(report).c_str(), stdout);
  std::fflush(stdout);
  {
    // A first signal during the summary stops nothing and is ignored.
    absl::MutexLock lock(&signal_mutex);
    running_driver = nullptr;
  }
  return report.Total().failed_unexpectedly == 0 ? workload::kExitOk
                                                 : workload::kExitFailure;
}
