// Measures a rollout across many databases on a real ecliptix-server with
// simulated agents that answer every command at once (a no-op deployment:
// each step reported applied, then the command finished), so what is timed is
// the control plane alone: time until the rollout settles, bytes the server
// writes, its peak memory, how fast events reach a watcher, and how long
// `GetRollout`, `ListRollouts`, a pause and a resume take while the rollout
// runs. The same measurement at a quarter of the size, in the same run, is the
// baseline: growing linearly, time and bytes grow 4x.
//
//   bazel run -c opt //tools/bench:rollout_load -- --targets=2000 --steps=1
//
// Only loopback addresses are used; the server is killed when this ends.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
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
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "tools/bench/bench_process.h"

ABSL_FLAG(int, targets, 1000, "databases in the rollout (the baseline: 1/4)");
ABSL_FLAG(int, steps, 1, "steps of the bundle's one phase");
ABSL_FLAG(int, channels, 32, "connections the agent streams are spread over");
ABSL_FLAG(int, streams_per_queue, 256,
          "agent streams per completion queue (and thread) of this process");
ABSL_FLAG(bool, print_phase_times, false,
          "print, for each measurement, the server's pid and when its rollout "
          "started and settled on CLOCK_MONOTONIC (the clock of `perf record "
          "-k CLOCK_MONOTONIC`), to profile that phase alone");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10),
          "give up on a rollout after this long");
ABSL_FLAG(std::string, server_binary, "server/ecliptix-server",
          "path of ecliptix-server");

namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::bench::Child;
using ::ecliptix::bench::CpuSeconds;
using ::ecliptix::bench::FreePort;
using ::ecliptix::bench::RssKb;
using ::ecliptix::bench::StartServer;

Child StartEcliptixServer(const std::string& dir, int port) {
  return StartServer({absl::GetFlag(FLAGS_server_binary),
                      absl::StrCat("--listen=127.0.0.1:", port),
                      absl::StrCat("--store=sqlite://", dir, "/state.db"),
                      "--heartbeat_interval=60s", "--heartbeat_timeout=600s",
                      "--log_level=warn"},
                     port, dir + "/server.log");
}

double MonotonicSeconds() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec + now.tv_nsec / 1e9;
}

// From /proc/PID/io: bytes the process asked to write (wchar) and bytes that
// reached storage (write_bytes).
struct WriteCounters {
  long long wchar = 0;
  long long write_bytes = 0;
};

WriteCounters Writes(pid_t pid) {
  WriteCounters counters;
  std::ifstream io(absl::StrCat("/proc/", pid, "/io"));
  std::string key;
  long long value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") counters.wchar = value;
    if (key == "write_bytes:") counters.write_bytes = value;
  }
  return counters;
}

// A simulated agent: Hello, then every command answered at once: acked, each
// step of the phase reported applied, finished OK. One write in flight.
//
// On gRPC's async API rather than the callback API: with gRPC 1.51 every
// callback operation of a process completes through one completion queue,
// and a build without NDEBUG (Debian's) scans that queue's list of
// outstanding operations on every completion, so 10,000 callback streams
// would cost this process O(streams) per message. An AgentPool spreads the
// streams over queues of a bounded size instead. Every operation of one
// agent completes on its queue's one thread: an agent needs no lock.
class FakeAgent {
 public:
  enum class Op { kStart, kRead, kWrite, kFinish };
  // What a completion queue hands back: which agent, which operation.
  struct Tag {
    FakeAgent* agent;
    Op op;
  };

  FakeAgent(v1::AgentService::Stub* stub, grpc::CompletionQueue* queue,
            int index, int steps, std::atomic<int>* welcomed,
            std::atomic<int>* ended)
      : steps_(steps),
        welcomed_(welcomed),
        ended_(ended),
        database_id_(absl::StrFormat("bench-%06d", index)) {
    stream_ = stub->PrepareAsyncConnect(&context_, queue);
    stream_->StartCall(&start_tag_);
  }

  // Only ever on the thread that drains this agent's queue.
  void Handle(Op op, bool ok) {
    switch (op) {
      case Op::kStart:
        if (!ok) break;
        {
          v1::AgentMessage hello;
          v1::Hello* body = hello.mutable_hello();
          body->set_database_id(database_id_);
          body->set_engine(v1::ENGINE_SQLITE);
          body->set_engine_version("3.40.1");
          body->set_agent_version("bench");
          (*body->mutable_labels())["env"] = "bench";
          Send(std::move(hello));
        }
        reading_ = true;
        stream_->Read(&reply_, &read_tag_);
        break;
      case Op::kRead:
        if (!ok) {
          reading_ = false;
          break;
        }
        if (reply_.has_welcome()) {
          welcomed_->fetch_add(1);
        } else if (reply_.has_command()) {
          Answer(reply_.command());
        }
        stream_->Read(&reply_, &read_tag_);
        break;
      case Op::kWrite:
        queue_.pop_front();
        if (!ok) queue_.clear();  // The stream is broken: the read ends too.
        writing_ = !queue_.empty();
        if (writing_) stream_->Write(queue_.front(), &write_tag_);
        break;
      case Op::kFinish:
        ended_->fetch_add(1);
        return;
    }
    // Finish once nothing else is in flight: the stream's status comes last.
    if (!reading_ && !writing_ && !finishing_) {
      finishing_ = true;
      stream_->Finish(&status_, &finish_tag_);
    }
  }

  // Thread-safe: every pending operation then completes, not ok.
  void Cancel() { context_.TryCancel(); }

 private:
  void Answer(const v1::Command& command) {
    const std::string& id = command.command_id();
    v1::AgentMessage ack;
    ack.mutable_command_ack()->set_command_id(id);
    Send(std::move(ack));
    if (command.has_run_phase()) {
      for (int i = 0; i < steps_; ++i) {
        v1::AgentMessage event;
        event.mutable_command_event()->set_command_id(id);
        v1::DeploymentEvent* deployment =
            event.mutable_command_event()->mutable_deployment();
        deployment->set_bundle_id(command.run_phase().bundle_id());
        deployment->set_phase(command.run_phase().phase());
        deployment->set_step(absl::StrCat("step-", i));
        deployment->mutable_step_finished()->set_outcome(
            v1::STEP_OUTCOME_APPLIED);
        Send(std::move(event));
      }
    }
    v1::AgentMessage finished;
    finished.mutable_command_event()->set_command_id(id);
    finished.mutable_command_event()->mutable_finished();
    Send(std::move(finished));
  }

  void Send(v1::AgentMessage message) {
    message.set_sequence(++sequence_);
    queue_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      stream_->Write(queue_.front(), &write_tag_);
    }
  }

  const int steps_;
  std::atomic<int>* welcomed_;
  std::atomic<int>* ended_;
  const std::string database_id_;
  Tag start_tag_{this, Op::kStart};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream_;
  v1::ServerMessage reply_;
  grpc::Status status_;
  std::deque<v1::AgentMessage> queue_;
  bool reading_ = false;
  bool writing_ = false;
  bool finishing_ = false;
  uint64_t sequence_ = 0;
};

// N agents over completion queues of at most `per_queue` streams, one thread
// blocked in Next on each. A thread per queue rather than a few threads
// polling several queues each (AsyncNext with a deadline): a blocked thread
// costs nothing, polling would add either latency or spinning, and the count
// stays small (40 threads for 10,000 agents at 256 a queue).
class AgentPool {
 public:
  AgentPool(const std::vector<std::unique_ptr<v1::AgentService::Stub>>& stubs,
            int count, int steps, int per_queue, std::atomic<int>* welcomed)
      : queues_((count + per_queue - 1) / per_queue) {
    for (auto& queue : queues_) {
      queue = std::make_unique<grpc::CompletionQueue>();
    }
    agents_.reserve(count);
    for (int i = 0; i < count; ++i) {
      agents_.push_back(std::make_unique<FakeAgent>(
          stubs[i % stubs.size()].get(), queues_[i % queues_.size()].get(), i,
          steps, welcomed, &ended_));
    }
    for (auto& queue : queues_) {
      threads_.emplace_back([queue = queue.get()] {
        void* tag = nullptr;
        bool ok = false;
        while (queue->Next(&tag, &ok)) {
          auto* which = static_cast<FakeAgent::Tag*>(tag);
          which->agent->Handle(which->op, ok);
        }
      });
    }
  }

  // Cancels every stream and waits for each to end before shutting the
  // queues down: an agent may still start its Finish until then.
  ~AgentPool() {
    for (auto& agent : agents_) agent->Cancel();
    while (ended_.load() < static_cast<int>(agents_.size())) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    for (auto& queue : queues_) queue->Shutdown();
    for (auto& thread : threads_) thread.join();
  }

  int queues() const { return static_cast<int>(queues_.size()); }

 private:
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
  std::vector<std::thread> threads_;
  std::atomic<int> ended_{0};
};

// Steps share their SQL files beyond 500 (a bundle holds 1,000 files at
// most): the agents here run nothing.
std::vector<v1::BundleFile> MakeBundle(int steps) {
  constexpr int kFiles = 500;
  std::string manifest =
      "name: \"bench\"\nversion: \"1.0.0\"\ndialects: DIALECT_SQLITE\n"
      "phases {\n  name: \"one\"\n";
  std::vector<v1::BundleFile> files;
  for (int i = 0; i < steps; ++i) {
    const std::string path = absl::StrCat("sqlite/step-", i % kFiles, ".sql");
    absl::StrAppend(&manifest, "  steps { name: \"step-", i,
                    "\" kind: STEP_KIND_VERSIONED sql { sqlite: \"", path,
                    "\" } }\n");
    if (i >= kFiles) continue;
    v1::BundleFile file;
    file.set_path(path);
    file.set_content(absl::StrCat("SELECT ", i, ";\n"));
    files.push_back(std::move(file));
  }
  manifest += "}\n";
  v1::BundleFile file;
  file.set_path("manifest.textproto");
  file.set_content(manifest);
  files.push_back(std::move(file));
  return files;
}

struct Figures {
  bool ok = false;
  double settle_seconds = 0;
  double written_mb = 0;  // wchar
  double stored_mb = 0;   // write_bytes
  double peak_rss_mb = 0;
  double events_per_second = 0;
  long long events = 0;
  double get_max_ms = 0;
  double get_median_ms = 0;
  double list_max_ms = 0;
  double pause_ms = 0;
  double resume_ms = 0;
  // CPU seconds (all threads) of the server and of this process, which
  // plays every agent: while the agents connect, and from the rollout's
  // creation until it is seen settled.
  double connect_seconds = 0;
  double connect_server_cpu = 0;
  double connect_bench_cpu = 0;
  double server_cpu = 0;
  double bench_cpu = 0;
  std::string error;
};

Figures Measure(int targets, int steps) {
  Figures figures;
  const std::string dir =
      absl::StrCat("/tmp/ecliptix-rollout-bench-", getpid(), "-", targets);
  std::system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str());
  const int port = FreePort();
  const Child child = StartEcliptixServer(dir, port);
  const pid_t server = child.pid;
  if (child.port == 0) {
    figures.error = absl::StrCat("the server did not start (see ", dir, ")");
    return figures;
  }
  const std::string address = absl::StrCat("127.0.0.1:", port);
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (int i = 0; i < absl::GetFlag(FLAGS_channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);
    stubs.push_back(v1::AgentService::NewStub(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args)));
  }
  std::atomic<int> welcomed{0};
  const absl::Time connect_start = absl::Now();
  const double connect_server_cpu = CpuSeconds(server);
  const double connect_bench_cpu = CpuSeconds(getpid());
  auto agents = std::make_unique<AgentPool>(
      stubs, targets, steps, absl::GetFlag(FLAGS_streams_per_queue), &welcomed);
  const absl::Time connect_deadline = absl::Now() + absl::Seconds(120);
  while (welcomed.load() < targets && absl::Now() < connect_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  figures.connect_seconds = absl::ToDoubleSeconds(absl::Now() - connect_start);
  figures.connect_server_cpu = CpuSeconds(server) - connect_server_cpu;
  figures.connect_bench_cpu = CpuSeconds(getpid()) - connect_bench_cpu;
  if (welcomed.load() < targets) {
    figures.error = absl::StrCat(welcomed.load(), " of ", targets,
                                 " agents welcomed after 120 s");
  }
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto bundles = v1::BundleService::NewStub(channel);
  auto rollouts = v1::RolloutService::NewStub(channel);
  v1::BundleInfo bundle;
  {
    grpc::ClientContext context;
    v1::UploadBundleRequest request;
    for (auto& file : MakeBundle(steps)) *request.add_files() = file;
    grpc::Status status = bundles->UploadBundle(&context, request, &bundle);
    if (!status.ok()) figures.error = status.error_message();
  }
  absl::SleepFor(absl::Seconds(1));  // Registry writes settle.
  const WriteCounters before = Writes(server);
  const double server_cpu_before = CpuSeconds(server);
  const double bench_cpu_before = CpuSeconds(getpid());
  const absl::Time start = absl::Now();
  const double start_monotonic = MonotonicSeconds();
  v1::Rollout rollout;
  if (figures.error.empty()) {
    grpc::ClientContext context;
    v1::CreateRolloutRequest request;
    request.set_bundle(bundle.bundle_id());
    request.set_selector("env=bench");
    grpc::Status status = rollouts->CreateRollout(&context, request, &rollout);
    if (!status.ok()) figures.error = status.error_message();
  }
  // A watcher counting events until the rollout ends.
  std::atomic<long long> events{0};
  std::atomic<bool> watch_done{false};
  std::atomic<int64_t> last_event_ns{absl::ToUnixNanos(start)};
  const bool created = figures.error.empty();
  std::thread watcher([&] {
    if (!created) {
      watch_done = true;
      return;
    }
    grpc::ClientContext context;
    v1::WatchRolloutRequest request;
    request.set_rollout_id(rollout.rollout_id());
    auto reader = rollouts->WatchRollout(&context, request);
    v1::RolloutEvent event;
    while (reader->Read(&event)) {
      events.fetch_add(1);
      last_event_ns = absl::ToUnixNanos(absl::Now());
    }
    reader->Finish();
    watch_done = true;
  });
  std::vector<double> get_ms, list_ms;
  long peak_rss = RssKb(server);
  int round = 0;
  // A person's action while agents flood the server: its latency, whatever
  // its answer (a rollout already finished refuses a pause).
  auto act = [&](const char* verb) {
    grpc::ClientContext context;
    v1::RolloutActionRequest request;
    request.set_rollout_id(rollout.rollout_id());
    request.set_actor("bench");
    v1::Rollout answer;
    const absl::Time asked = absl::Now();
    if (std::string(verb) == "pause") {
      rollouts->PauseRollout(&context, request, &answer);
    } else {
      rollouts->ResumeRollout(&context, request, &answer);
    }
    return absl::ToDoubleMilliseconds(absl::Now() - asked);
  };
  const absl::Time deadline = start + absl::GetFlag(FLAGS_timeout);
  // Rounds are 20 ms apart. The state is read with ListRollouts (headers, no
  // targets), so that watching the rollout does not itself cost the server
  // O(targets) every round; the whole rollout (GetRollout) is asked every
  // 10th round, for its latency. A pause after 0.2 s, the resume 0.2 s later.
  while (figures.error.empty() && absl::Now() < deadline) {
    grpc::ClientContext list_context;
    v1::ListRolloutsRequest list;
    v1::ListRolloutsResponse listed;
    const absl::Time list_asked = absl::Now();
    grpc::Status status = rollouts->ListRollouts(&list_context, list, &listed);
    list_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - list_asked));
    peak_rss = std::max(peak_rss, RssKb(server));
    v1::Rollout current;
    for (const v1::Rollout& header : listed.rollouts()) {
      if (header.rollout_id() == rollout.rollout_id()) current = header;
    }
    if (status.ok() && round % 10 == 0) {
      grpc::ClientContext context;
      v1::GetRolloutRequest request;
      request.set_rollout_id(rollout.rollout_id());
      const absl::Time asked = absl::Now();
      status = rollouts->GetRollout(&context, request, &current);
      get_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - asked));
    }
    if (!status.ok()) {
      figures.error = status.error_message();
      break;
    }
    if (current.state() == v1::ROLLOUT_STATE_SUCCEEDED) {
      figures.settle_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      if (absl::GetFlag(FLAGS_print_phase_times)) {
        std::fprintf(stderr,
                     "rollout_load: %d databases: server pid %d, rollout "
                     "from %.6f to %.6f (CLOCK_MONOTONIC)\n",
                     targets, server, start_monotonic, MonotonicSeconds());
      }
      figures.server_cpu = CpuSeconds(server) - server_cpu_before;
      figures.bench_cpu = CpuSeconds(getpid()) - bench_cpu_before;
      figures.ok = true;
      break;
    }
    if (current.state() == v1::ROLLOUT_STATE_FAILED) {
      figures.error = "the rollout failed: " + current.waiting_reason();
      break;
    }
    ++round;
    if (round == 10) figures.pause_ms = act("pause");
    if (round == 20) figures.resume_ms = act("resume");
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (!figures.ok && figures.error.empty()) figures.error = "timed out";
  // The watch ends with the rollout; its rate is over the time events came.
  const absl::Time watch_deadline = absl::Now() + absl::Seconds(60);
  while (!watch_done.load() && absl::Now() < watch_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const WriteCounters after = Writes(server);
  figures.written_mb = (after.wchar - before.wchar) / 1e6;
  figures.stored_mb = (after.write_bytes - before.write_bytes) / 1e6;
  figures.peak_rss_mb = peak_rss / 1024.0;
  figures.events = events.load();
  const double watch_seconds =
      absl::ToDoubleSeconds(absl::FromUnixNanos(last_event_ns.load()) - start);
  figures.events_per_second =
      watch_seconds > 0 ? figures.events / watch_seconds : 0;
  std::sort(get_ms.begin(), get_ms.end());
  if (!list_ms.empty())
    figures.list_max_ms = *std::max_element(list_ms.begin(), list_ms.end());
  if (!get_ms.empty()) {
    figures.get_max_ms = get_ms.back();
    figures.get_median_ms = get_ms[get_ms.size() / 2];
  }
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  if (watch_done.load()) {
    watcher.join();
  } else {
    watcher.detach();  // The server is gone: its stream ends soon.
  }
  agents.reset();
  std::system(absl::StrCat("rm -rf ", dir).c_str());
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // As in the server: Abseil's lock graph (on in Debian's build) costs every
  // Lock more as mutexes grow, and gRPC holds several per agent stream.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const int targets = absl::GetFlag(FLAGS_targets);
  const int steps = absl::GetFlag(FLAGS_steps);
  const int quarter = std::max(1, targets / 4);
  std::printf(
      "one rollout, %d step%s per database, simulated agents answering at "
      "once; baseline: %d databases\n",
      steps, steps == 1 ? "" : "s", quarter);
  const Figures base = Measure(quarter, steps);
  const Figures full = Measure(targets, steps);
  for (const Figures* figures : {&base, &full}) {
    if (!figures->error.empty()) {
      std::fprintf(stderr, "rollout_load: %s\n", figures->error.c_str());
    }
  }
  auto ratio = [](double a, double b) {
    return b > 0 ? absl::StrFormat("%8.2f", a / b) : std::string("     n/a");
  };
  const std::string small = absl::StrCat(quarter, " dbs");
  const std::string large = absl::StrCat(targets, " dbs");
  std::printf("\n%-34s %14s %14s %8s\n", "metric", small.c_str(), large.c_str(),
              "ratio");
  auto row = [&](const char* name, double a, double b, const char* format) {
    std::printf("%-34s %14s %14s %s\n", name,
                absl::StrFormat(format, a).c_str(),
                absl::StrFormat(format, b).c_str(), ratio(b, a).c_str());
  };
  row("settle time (s)", base.settle_seconds, full.settle_seconds, "%.2f");
  row("server CPU while settling (s)", base.server_cpu, full.server_cpu,
      "%.2f");
  row("bench CPU while settling (s)", base.bench_cpu, full.bench_cpu, "%.2f");
  row("agents connect (s)", base.connect_seconds, full.connect_seconds, "%.2f");
  row("server CPU while connecting (s)", base.connect_server_cpu,
      full.connect_server_cpu, "%.2f");
  row("bench CPU while connecting (s)", base.connect_bench_cpu,
      full.connect_bench_cpu, "%.2f");
  row("server writes, wchar (MB)", base.written_mb, full.written_mb, "%.1f");
  row("server writes to storage (MB)", base.stored_mb, full.stored_mb, "%.1f");
  row("server peak RSS (MB)", base.peak_rss_mb, full.peak_rss_mb, "%.0f");
  row("events to a watcher", static_cast<double>(base.events),
      static_cast<double>(full.events), "%.0f");
  row("events per second to a watcher", base.events_per_second,
      full.events_per_second, "%.0f");
  row("GetRollout while running, median (ms)", base.get_median_ms,
      full.get_median_ms, "%.1f");
  row("GetRollout while running, max (ms)", base.get_max_ms, full.get_max_ms,
      "%.1f");
  row("ListRollouts while running, max (ms)", base.list_max_ms,
      full.list_max_ms, "%.1f");
  row("PauseRollout at 0.2 s (ms)", base.pause_ms, full.pause_ms, "%.1f");
  row("ResumeRollout at 0.4 s (ms)", base.resume_ms, full.resume_ms, "%.1f");
  std::printf("(ratio: %d dbs / %d dbs; linear growth is %.2f)\n", targets,
              quarter, static_cast<double>(targets) / quarter);
  return base.ok && full.ok ? 0 : 1;
}
