// ecliptixctl's commands: the table of nouns and verbs with their handlers, and
// RunCtl, which parses a command line, runs the command and turns the outcome
// into output and an exit code. main() only adds the process around it
// (environment, signals), so tests drive RunCtl directly.
#ifndef ECLIPTIX_CLIENT_CTL_COMMANDS_H_
#define ECLIPTIX_CLIENT_CTL_COMMANDS_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ctl_args.h"
#include "client/ctl_format.h"
#include "client/fleet_client.h"

namespace ecliptix::client::ctl {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command failed (an RPC error)
inline constexpr int kExitUsage = 2;    // the command line is wrong

// Lets a thread that receives SIGINT/SIGTERM stop a running watch cleanly.
class InterruptState {
 public:
  // Cancels the running watch and returns true; returns false when there is
  // none to stop (or this is the second interrupt), and the caller should just
  // exit.
  bool Interrupt();
  bool interrupted() const;

  void BeginWatch(FleetClient* client);
  void EndWatch();

 private:
  mutable absl::Mutex mutex_;
  bool interrupted_ ABSL_GUARDED_BY(mutex_) = false;
  FleetClient* watch_client_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

// What RunCtl needs from its process.
struct CtlContext {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // $ECLIPTIX_SERVER, "" when unset.
  std::string env_server;
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Optional: where a signal-handling thread finds the running watch.
  InterruptState* interrupts = nullptr;
  // Whether `out` is a terminal (live views redraw themselves in place), and
  // its width in columns (asked again for each frame; 0 when unknown).
  bool out_is_terminal = false;
  std::function<int()> terminal_width = [] { return 0; };
  // Who runs the command, for the audit (requested_by, actor): $USER@host.
  std::string user;
  // The zone of the times printed for events.
  absl::TimeZone time_zone = absl::LocalTimeZone();
};

// What a handler uses.
class CommandRuntime {
 public:
  CommandRuntime(const Invocation& invocation, CtlContext& context)
      : invocation_(invocation), context_(context) {}

  std::ostream& out() { return *context_.out; }
  std::ostream& err() { return *context_.err; }
  absl::Time Now() { return context_.now(); }
  InterruptState* interrupts() { return context_.interrupts; }
  bool out_is_terminal() const { return context_.out_is_terminal; }
  int terminal_width() const { return context_.terminal_width(); }
  const std::string& user() const { return context_.user; }
  absl::TimeZone time_zone() const { return context_.time_zone; }
  // The exit code when the handler returns OK (kExitOk unless set), for
  // commands whose outcome is not an error of ecliptixctl, e.g. a watched
  // rollout that failed.
  void set_exit_code(int code) { exit_code_ = code; }
  int exit_code() const { return exit_code_; }
  // Created on first use, so commands that need no server (version) never make
  // a channel.
  absl::StatusOr<FleetClient*> Client();

 private:
  const Invocation& invocation_;
  CtlContext& context_;
  std::unique_ptr<FleetClient> client_;
  int exit_code_ = 0;
};

// Prints each event of a watch as it comes, as `line(event)` or as JSON with
// -o json, flushed at once (whoever reads stdout, a pipe or a test, sees each
// event as it happens), until --count events, an interrupt, or the stream's
// end. `watch` runs the streaming call with the callback it is given.
template <typename Event>
absl::Status PrintWatchedEvents(
    const Invocation& invocation, CommandRuntime& runtime, FleetClient* client,
    const std::function<absl::Status(std::function<bool(const Event&)>)>& watch,
    const std::function<std::string(const Event&)>& line) {
  const int64_t count = invocation.CountFlag("count", 0);
  int64_t seen = 0;
  absl::Status print_status;
  InterruptState* interrupts = runtime.interrupts();
  if (interrupts != nullptr) interrupts->BeginWatch(client);
  const absl::Status status = watch([&](const Event& event) {
    if (invocation.output == OutputFormat::kJson) {
      absl::StatusOr<std::string> json = MessageJson(event);
      if (!json.ok()) {
        print_status = json.status();
        return false;
      }
      runtime.out() << *json << "\n";
    } else {
      runtime.out() << line(event) << "\n";
    }
    runtime.out().flush();
    ++seen;
    if (count > 0 && seen >= count) return false;
    return interrupts == nullptr || !interrupts->interrupted();
  });
  if (interrupts != nullptr) interrupts->EndWatch();
  if (!print_status.ok()) return print_status;
  return status;
}

// A usage error found by a handler (a flag value that does not parse): printed
// like the parser's and exits kExitUsage, unlike other INVALID_ARGUMENT errors
// (the server's), which exit kExitFailure.
absl::Status CommandUsageError(absl::string_view message);
bool IsCommandUsageError(const absl::Status& status);

// $USER (or $LOGNAME) @ the host name; "" when neither variable is set.
std::string DefaultUser();

// Every noun and verb of ecliptixctl.
const CommandTable& Commands();

// Runs one command line (argv without the program name); returns the exit code.
// Errors are one line on `err`: "ecliptixctl: <CODE>: <message>".
int RunCtl(const std::vector<std::string>& args, CtlContext& context);

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_COMMANDS_H_
