#include "server/rollout_service.h"

#include <memory>
#include <utility>

#include "common/grpc_status.h"
#include "server/stream_writer.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr size_t kMaxQueuedRolloutEvents = 1'000'000;

// A callback that fills the response and finishes the RPC.
template <typename T>
RolloutOrchestrator::Callback<T> Finisher(grpc::ServerUnaryReactor* reactor,
                                          T* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

// Actions are recorded with who did them: the named actor, or the client's
// address.
template <typename Request>
Request WithActor(grpc::CallbackServerContext* context,
                  const Request& request) {
  Request copy = request;
  if (copy.actor().empty()) copy.set_actor(context->peer());
  return copy;
}

class WatchSink : public RolloutEventSink {
 public:
  WatchSink(StreamWriter<v1::RolloutEvent>::StartWriteFn start_write,
            StreamWriter<v1::RolloutEvent>::FinishFn finish)
      : writer_(std::move(start_write), std::move(finish),
                kMaxQueuedRolloutEvents) {}
  bool Deliver(const v1::RolloutEvent& event) override {
    return writer_.Write(event);
  }
  void End(const absl::Status& status) override {
    writer_.Finish(ToGrpcStatus(status));
  }
  StreamWriter<v1::RolloutEvent>& writer() { return writer_; }

 private:
  StreamWriter<v1::RolloutEvent> writer_;
};

class WatchRolloutReactor final
    : public grpc::ServerWriteReactor<v1::RolloutEvent> {
 public:
  WatchRolloutReactor(RolloutOrchestrator* orchestrator,
                      const v1::WatchRolloutRequest& request)
      : sink_(std::make_shared<WatchSink>(
            [this](const v1::RolloutEvent* event) { StartWrite(event); },
            [this](const grpc::Status& status) { Finish(status); })) {
    orchestrator->Watch(request.rollout_id(), request.after_sequence(), sink_);
  }
  void OnWriteDone(bool ok) override { sink_->writer().OnWriteDone(ok); }
  void OnCancel() override {
    sink_->writer().Abort(
        grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }
  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<WatchSink> sink_;
};

}  // namespace

grpc::ServerUnaryReactor* RolloutServiceImpl::CreateRollout(
    grpc::CallbackServerContext* context,
    const v1::CreateRolloutRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::CreateRolloutRequest copy = *request;
  if (copy.requested_by().empty()) copy.set_requested_by(context->peer());
  orchestrator_->Create(std::move(copy), Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::PlanRollout(
    grpc::CallbackServerContext* context,
    const v1::CreateRolloutRequest* request, v1::RolloutPlan* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Plan(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::GetRollout(
    grpc::CallbackServerContext* context, const v1::GetRolloutRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Get(request->rollout_id(), Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::ListRollouts(
    grpc::CallbackServerContext* context,
    const v1::ListRolloutsRequest* request,
    v1::ListRolloutsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->List(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerWriteReactor<v1::RolloutEvent>* RolloutServiceImpl::WatchRollout(
    grpc::CallbackServerContext* context,
    const v1::WatchRolloutRequest* request) {
  return new WatchRolloutReactor(orchestrator_, *request);
}

grpc::ServerUnaryReactor* RolloutServiceImpl::PauseRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Pause(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::ResumeRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Resume(WithActor(context, *request),
                        Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::AbortRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Abort(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::RollbackRollout(
    grpc::CallbackServerContext* context,
    const v1::RollbackRolloutRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Rollback(WithActor(context, *request),
                          Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::AttestGate(
    grpc::CallbackServerContext* context, const v1::AttestGateRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Attest(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::RetryFailed(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  orchestrator_->Retry(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

}  // namespace ecliptix::server
