// What the benchmarks share: a free loopback port, a server child process
// started and waited for, and a process's resident memory and CPU time.
#ifndef ECLIPTIX_TOOLS_BENCH_BENCH_PROCESS_H_
#define ECLIPTIX_TOOLS_BENCH_BENCH_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace ecliptix::bench {

struct Child {
  pid_t pid = -1;
  int port = 0;  // 0 when it never listened.
};

// A loopback port nothing listens on.
int FreePort();
// Whether something accepts connections on the loopback port.
bool Listening(int port);
// Starts `argv` (argv[0] a path), killed when this process dies; stdout and
// stderr go to `log`. Waits up to 30 s for it to listen on `port`.
Child StartServer(const std::vector<std::string>& argv, int port,
                  const std::string& log);
// Resident memory of a process, in KB (0 when unknown).
long RssKb(pid_t pid);
// CPU time (user + system, all threads) a process has used, in seconds.
double CpuSeconds(pid_t pid);

}  // namespace ecliptix::bench

#endif  // ECLIPTIX_TOOLS_BENCH_BENCH_PROCESS_H_
