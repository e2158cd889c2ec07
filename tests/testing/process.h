// Child processes for integration tests: the real ecliptix-server /
// ecliptix-agent / ecliptixctl binaries, started with arguments, their output
// captured to a file, stopped with a chosen signal.
#ifndef ECLIPTIX_TESTS_TESTING_PROCESS_H_
#define ECLIPTIX_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ecliptix::testing {

// The path of a binary built by Bazel and listed in the test's `data`, e.g.
// "agent/ecliptix-agent".
std::string RunfilePath(const std::string& workspace_relative_path);

// A plain copy of a runfiles directory (e.g. "bundles/ecliptix") at
// TEST_TMPDIR/`leaf`, made once: Bazel's runfiles are symbolic links, which
// bundles refuse.
std::string PlainRunfilesCopy(const std::string& workspace_relative_path,
                              const std::string& leaf);

class ChildProcess {
 public:
  // Starts `argv[0]` with stdout and stderr appended to `output_path`.
  static absl::StatusOr<ChildProcess> Start(
      const std::vector<std::string>& argv, const std::string& output_path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  // Kills (SIGKILL) a child still running.
  ~ChildProcess();

  void Signal(int signal_number);
  // The exit code (or 128 + signal) once the process ends, or nullopt after
  // `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  bool running();
  // Everything the process wrote so far.
  std::string Output() const;
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, std::string output_path)
      : pid_(pid), output_path_(std::move(output_path)) {}
  pid_t pid_ = -1;
  std::string output_path_;
  std::optional<int> exit_code_;
};

// Runs a command to completion (or kills it after `timeout`) and returns its
// exit code and output.
struct CommandResult {
  int exit_code;
  std::string output;
};
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv,
    absl::Duration timeout = absl::Seconds(30));

// The port ecliptix-server logs at start ("... (port N) ..."), or 0 when not
// logged yet.
int LoggedServerPort(const std::string& server_output);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
template <typename Condition>
bool WaitFor(Condition condition, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_TESTING_PROCESS_H_
