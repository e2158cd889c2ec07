// Measures what N connected agents cost ecliptix-server, against a bare
// callback-API server doing the least gRPC allows (bare_server), both measured
// in the same run on the same machine: time to register every agent, resident
// memory per agent stream, and CPU while idle.
//
//   bazel run //tools/bench:agent_load -- --agents=2000
//
// Only loopback addresses are used; every child process is killed when this one
// ends.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "tools/bench/bench_process.h"

ABSL_FLAG(int, agents, 2000, "agent streams to open");
ABSL_FLAG(int, channels, 32,
          "separate connections the streams are spread over");
ABSL_FLAG(absl::Duration, idle, absl::Seconds(10),
          "how long idle CPU is measured");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(180),
          "give up after this long per server");
ABSL_FLAG(std::string, server_binary, "server/ecliptix-server",
          "path of ecliptix-server");
ABSL_FLAG(std::string, bare_binary, "tools/bench/bare_server",
          "path of bare_server");

namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::bench::Child;
using ::ecliptix::bench::CpuSeconds;
using ::ecliptix::bench::FreePort;
using ::ecliptix::bench::RssKb;
using ::ecliptix::bench::StartServer;

// One agent: Hello, wait for the first answer, then hold the stream open.
class AgentStream
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  AgentStream(v1::AgentService::Stub* stub, int index,
              std::atomic<int>* welcomed)
      : welcomed_(welcomed) {
    hello_.set_sequence(1);
    v1::Hello* hello = hello_.mutable_hello();
    hello->set_database_id(absl::StrFormat("bench-%06d", index));
    hello->set_engine(v1::ENGINE_SQLITE);
    hello->set_engine_version("3.40.1");
    hello->set_agent_version("bench");
    (*hello->mutable_labels())["env"] = index % 2 ? "prod" : "staging";
    stub->async()->Connect(&context_, this);
    StartWrite(&hello_);
    StartRead(&reply_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (!counted_) {
      counted_ = true;
      welcomed_->fetch_add(1);
    }
    StartRead(&reply_);
  }
  void OnWriteDone(bool) override {}
  void OnDone(const grpc::Status&) override {}
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  v1::AgentMessage hello_;
  v1::ServerMessage reply_;
  std::atomic<int>* welcomed_;
  bool counted_ = false;
};

struct Figures {
  double register_seconds = 0;
  double kb_per_stream = 0;
  double idle_cpu_percent = 0;
  int connected = 0;
  bool ok = false;
};

Figures Measure(const Child& server, bool check_fleet) {
  Figures figures;
  const int agents = absl::GetFlag(FLAGS_agents);
  const int channel_count = absl::GetFlag(FLAGS_channels);
  const std::string address = absl::StrCat("127.0.0.1:", server.port);
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (int i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // A connection of its own per channel.
    stubs.push_back(v1::AgentService::NewStub(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args)));
  }
  absl::SleepFor(absl::Milliseconds(500));
  const long rss_before = RssKb(server.pid);
  std::atomic<int> welcomed{0};
  std::vector<std::unique_ptr<AgentStream>> streams;
  const absl::Time start = absl::Now();
  for (int i = 0; i < agents; ++i) {
    streams.push_back(std::make_unique<AgentStream>(
        stubs[i % channel_count].get(), i, &welcomed));
  }
  const absl::Time deadline = start + absl::GetFlag(FLAGS_timeout);
  while (welcomed.load() < agents && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  figures.register_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  figures.ok = welcomed.load() == agents;
  absl::SleepFor(absl::Seconds(1));
  figures.kb_per_stream =
      static_cast<double>(RssKb(server.pid) - rss_before) / agents;
  const double cpu_before = CpuSeconds(server.pid);
  const absl::Duration idle = absl::GetFlag(FLAGS_idle);
  absl::SleepFor(idle);
  figures.idle_cpu_percent = 100.0 * (CpuSeconds(server.pid) - cpu_before) /
                             absl::ToDoubleSeconds(idle);
  if (check_fleet) {
    auto fleet = v1::FleetService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::ListDatabasesRequest request;
    request.set_page_size(1);
    v1::ListDatabasesResponse response;
    if (fleet->ListDatabases(&context, request, &response).ok()) {
      figures.connected = response.total_size();
    }
  } else {
    figures.connected = welcomed.load();
  }
  for (auto& stream : streams) stream->Cancel();
  absl::SleepFor(absl::Milliseconds(500));
  return figures;
}

void Stop(const Child& child) {
  if (child.pid <= 0) return;
  kill(child.pid, SIGKILL);
  waitpid(child.pid, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const std::string dir = absl::StrCat("/tmp/ecliptix-bench-", getpid());
  std::system(absl::StrCat("mkdir -p ", dir).c_str());
  const int agents = absl::GetFlag(FLAGS_agents);
  std::printf("%d agent streams over %d connections on loopback\n", agents,
              absl::GetFlag(FLAGS_channels));

  const int bare_port = FreePort();
  Child bare = StartServer(
      {absl::GetFlag(FLAGS_bare_binary), absl::StrCat("127.0.0.1:", bare_port)},
      bare_port, dir + "/bare.log");
  if (bare.port == 0) {
    std::fprintf(stderr, "agent_load: bare_server did not start (see %s)\n",
                 dir.c_str());
    return 1;
  }
  const Figures floor = Measure(bare, /*check_fleet=*/false);
  Stop(bare);

  const int server_port = FreePort();
  Child server =
      StartServer({absl::GetFlag(FLAGS_server_binary),
                   absl::StrCat("--listen=127.0.0.1:", server_port),
                   absl::StrCat("--store=sqlite://", dir, "/state.db"),
                   "--heartbeat_interval=10s", "--heartbeat_timeout=120s",
                   "--log_level=warn"},
                  server_port, dir + "/server.log");
  if (server.port == 0) {
    std::fprintf(stderr, "agent_load: ecliptix-server did not start (see %s)\n",
                 dir.c_str());
    return 1;
  }
  const Figures ours = Measure(server, /*check_fleet=*/true);
  Stop(server);

  // "n/a" where the floor is zero (an idle bare server uses no measurable CPU).
  auto ratio = [](double a, double b) {
    return b > 0 ? absl::StrFormat("%8.2f", a / b) : std::string("     n/a");
  };
  std::printf("\n%-28s %14s %16s %8s\n", "metric", "bare gRPC",
              "ecliptix-server", "ratio");
  std::printf("%-28s %14.2f %16.2f %s\n", "register all agents (s)",
              floor.register_seconds, ours.register_seconds,
              ratio(ours.register_seconds, floor.register_seconds).c_str());
  std::printf("%-28s %14.1f %16.1f %s\n", "RSS per agent stream (KB)",
              floor.kb_per_stream, ours.kb_per_stream,
              ratio(ours.kb_per_stream, floor.kb_per_stream).c_str());
  std::printf("%-28s %14.1f %16.1f %s\n", "idle CPU, no heartbeats (%)",
              floor.idle_cpu_percent, ours.idle_cpu_percent,
              ratio(ours.idle_cpu_percent, floor.idle_cpu_percent).c_str());
  std::printf("%-28s %14d %16d\n", "agents registered", floor.connected,
              ours.connected);
  std::system(absl::StrCat("rm -rf ", dir).c_str());
  return floor.ok && ours.ok && ours.connected == agents ? 0 : 1;
}
