// The workload tool's command line (CLI11): its flags, their help text and
// their conversion into WorkloadOptions.
#ifndef ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_FLAGS_H_
#define ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_FLAGS_H_

#include <cstdio>
#include <string>

#include "tools/workload/workload_driver.h"

namespace ecliptix::workload {

// Exit codes: 0 nothing failed unexpectedly, 1 something did (or the run
// could not start), 2 a bad command line.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct CommandLine {
  WorkloadOptions options;
  // Whether --seed was given (otherwise options.seed is a random one, printed
  // so that the run can be repeated).
  bool seed_given = false;
  std::string log_level = "warn";
};

// Parses argv. Returns -1 when the workload should run with `parsed`;
// otherwise the exit code: kExitOk after --help (printed to `out`),
// kExitUsage after a one-line error on `err`.
int ParseCommandLine(int argc, const char* const argv[], CommandLine* parsed,
                     std::FILE* out, std::FILE* err);

}  // namespace ecliptix::workload

#endif  // ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_FLAGS_H_
