#include "tests/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ecliptix::testing {

std::string RunfilePath(const std::string& workspace_relative_path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return workspace_relative_path;
  return absl::StrCat(srcdir, "/",
                      workspace != nullptr ? workspace : "ecliptix_fleet", "/",
                      workspace_relative_path);
}

std::string PlainRunfilesCopy(const std::string& workspace_relative_path,
                              const std::string& leaf) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string copy =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", leaf);
  if (!std::filesystem::exists(copy)) {
    std::filesystem::copy(RunfilePath(workspace_relative_path), copy,
                          std::filesystem::copy_options::recursive);
  }
  return copy;
}

absl::StatusOr<ChildProcess> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& output_path) {
  if (argv.empty()) return absl::InvalidArgumentError("no command");
  const int output = open(output_path.c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (output < 0)
    return absl::InternalError(absl::StrCat("cannot open ", output_path));
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(output);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    // Child: the test's own signal mask must not leak into the binary under
    // test.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // A crashed or killed test must not leave servers and agents behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(output, STDOUT_FILENO);
    dup2(output, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(output);
  return ChildProcess(pid, output_path);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      output_path_(std::move(other.output_path_)),
      exit_code_(other.exit_code_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_code_) {
      kill(pid_, SIGKILL);
      Wait(absl::Seconds(10));
    }
    pid_ = other.pid_;
    output_path_ = std::move(other.output_path_);
    exit_code_ = other.exit_code_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

void ChildProcess::Signal(int signal_number) {
  if (pid_ > 0 && !exit_code_) kill(pid_, signal_number);
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_code_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

bool ChildProcess::running() { return !Wait(absl::ZeroDuration()).has_value(); }

std::string ChildProcess::Output() const {
  std::ifstream file(output_path_);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

int LoggedServerPort(const std::string& server_output) {
  static const std::regex kPort(R"(\(port (\d+)\))");
  std::smatch match;
  if (!std::regex_search(server_output, match, kPort)) return 0;
  return std::stoi(match[1].str());
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  static int counter = 0;
  const std::string output_path = absl::StrCat(
      std::getenv("TEST_TMPDIR") != nullptr ? std::getenv("TEST_TMPDIR")
                                            : "/tmp",
      "/command-", getpid(), "-", ++counter, ".out");
  auto process = ChildProcess::Start(argv, output_path);
  if (!process.ok()) return process.status();
  std::optional<int> code = process->Wait(timeout);
  if (!code) {
    process->Signal(SIGKILL);
    process->Wait(absl::Seconds(5));
    return absl::DeadlineExceededError(absl::StrCat(
        argv[0], " did not finish in ", absl::FormatDuration(timeout),
        "; output: ", process->Output()));
  }
  return CommandResult{*code, process->Output()};
}

}  // namespace ecliptix::testing
