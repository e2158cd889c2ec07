// ecliptixctl: the command-line client of ecliptix-server. The commands live in
// ctl_commands; this file adds the process: the environment and a clean stop on
// Ctrl-C / SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "client/ctl_commands.h"

int main(int argc, char** argv) {
  using ecliptix::client::ctl::InterruptState;

  // SIGINT/SIGTERM are blocked in every thread (gRPC's threads, created later,
  // inherit the mask) and taken by one thread with sigwait: unlike a signal
  // handler, it may lock and call into gRPC to cancel a watch, which then ends
  // normally. Anything else is simply ended.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Leaked on purpose: the signal thread may still use it while the process
  // exits.
  auto* interrupts = new InterruptState();
  std::thread([signals, interrupts]() mutable {
    int signal_number = 0;
    while (sigwait(&signals, &signal_number) == 0) {
      if (!interrupts->Interrupt()) {
        std::cout.flush();
        std::_Exit(128 + signal_number);
      }
    }
  }).detach();

  ecliptix::client::ctl::CtlContext context;
  context.out = &std::cout;
  context.err = &std::cerr;
  if (const char* server = std::getenv(ecliptix::client::ctl::kServerEnvVar)) {
    context.env_server = server;
  }
  context.interrupts = interrupts;
  context.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  context.terminal_width = [] {
    winsize size = {};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
      return static_cast<int>(size.ws_col);
    }
    return 0;
  };
  context.user = ecliptix::client::ctl::DefaultUser();
  return ecliptix::client::ctl::RunCtl(
      std::vector<std::string>(argv + 1, argv + argc), context);
}
