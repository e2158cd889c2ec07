// The floor for tools/bench/agent_load: AgentService on the callback API doing
// nothing but answering each stream's first message once and holding the
// stream, as a bare gRPC 1.51 server does.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>

#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"

namespace {

namespace v1 = ::ecliptix::fleet::v1;

class HoldReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  HoldReactor() { StartRead(&incoming_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (!answered_) {
      answered_ = true;
      reply_.mutable_welcome()->set_session_id("bare");
      StartWrite(&reply_);
    }
    StartRead(&incoming_);
  }
  void OnWriteDone(bool) override {}
  void OnDone() override { delete this; }

 private:
  v1::AgentMessage incoming_;
  v1::ServerMessage reply_;
  bool answered_ = false;
};

class BareService final : public v1::AgentService::CallbackService {
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext*) override {
    return new HoldReactor();
  }
};

}  // namespace

int main(int argc, char** argv) {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const std::string address = argc > 1 ? argv[1] : "127.0.0.1:0";
  BareService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  std::printf("listening (port %d)\n", port);
  std::fflush(stdout);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now());
  return 0;
}
