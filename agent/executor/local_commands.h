// The agent's local mode: `ecliptix-agent <command> --flag=value ...` runs one
// executor operation against a database directly, without a server (plan,
// apply, revert, repair, backup, restore, history, call, run-job), printing
// progress as it happens. Owns the commands' flags, their parsing and their
// output.
#ifndef ECLIPTIX_AGENT_EXECUTOR_LOCAL_COMMANDS_H_
#define ECLIPTIX_AGENT_EXECUTOR_LOCAL_COMMANDS_H_

#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"

namespace ecliptix::agent {

// Exit codes: 0 success, 1 the operation failed, 2 a bad command line.
inline constexpr int kLocalExitOk = 0;
inline constexpr int kLocalExitFailure = 1;
inline constexpr int kLocalExitUsage = 2;

// Whether `command` names a local-mode command.
bool IsLocalCommand(absl::string_view command);

// The commands and their flags, for --help.
std::string LocalUsage();

// Runs `argv[1]` (a local command) with the flags that follow. Progress and
// results go to `out`, errors (one line each, "ecliptix-agent: ...") to `err`.
// Returns the exit code.
int RunLocalCommand(int argc, char* argv[], std::FILE* out, std::FILE* err);

// Cancels the operation of the command running now (if any), from any thread:
// what main's signal thread calls on SIGINT/SIGTERM.
void CancelRunningLocalCommand();

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_LOCAL_COMMANDS_H_
