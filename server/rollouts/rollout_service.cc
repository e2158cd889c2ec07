#include "server/rollouts/rollout_service.h"

#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "common/grpc_status.h"
#include "common/required_field.h"
#include "common/status_macros.h"
#include "server/streams/watch_reactor.h"

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

// Finishes the RPC with `status` unless it is OK; true when it did.
bool Refused(grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  if (status.ok()) return false;
  reactor->Finish(ToGrpcStatus(status));
  return true;
}

absl::Status CheckRolloutId(const std::string& rollout_id) {
  if (!rollout_id.empty()) return absl::OkStatus();
  return RequiredFieldError(
      "rollout_id",
      "the rollout's id (r-N), as `ecliptixctl rollout list` "
      "shows");
}

// A forgotten selector must never mean "deploy everywhere": every database
// is asked for explicitly with all_databases.
absl::Status CheckCreate(const v1::CreateRolloutRequest& request) {
  if (absl::StripAsciiWhitespace(request.bundle()).empty()) {
    return RequiredFieldError("bundle",
                              "name@version, the bundle id (sha256:...) or a "
                              "unique prefix of it");
  }
  const bool has_selector =
      !absl::StripAsciiWhitespace(request.selector()).empty();
  if (!has_selector && !request.all_databases()) {
    return RequiredFieldError(
        "selector",
        "a label selector such as env=prod; set all_databases "
        "(ecliptixctl: --all) to mean every database");
  }
  if (has_selector && request.all_databases()) {
    return absl::InvalidArgumentError(
        "selector and all_databases exclude each other: give a selector, or "
        "set all_databases alone to mean every database");
  }
  return absl::OkStatus();
}

absl::Status CheckAttest(const v1::AttestGateRequest& request) {
  if (absl::Status status = CheckRolloutId(request.rollout_id()); !status.ok())
    return status;
  if (request.gate() == v1::GATE_KIND_UNSPECIFIED) {
    return RequiredFieldError(
        "gate", "which checklist gate, e.g. GATE_KIND_TEAM_NOTIFIED");
  }
  if (request.attested_by().empty()) {
    return RequiredFieldError("attested_by", "who vouches for the gate");
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* RolloutServiceImpl::CreateRollout(
    grpc::CallbackServerContext* context,
    const v1::CreateRolloutRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckCreate(*request))) return reactor;
  v1::CreateRolloutRequest copy = *request;
  if (copy.requested_by().empty()) copy.set_requested_by(context->peer());
  orchestrator_->Create(std::move(copy), Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::PlanRollout(
    grpc::CallbackServerContext* context,
    const v1::CreateRolloutRequest* request, v1::RolloutPlan* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckCreate(*request))) return reactor;
  orchestrator_->Plan(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::GetRollout(
    grpc::CallbackServerContext* context, const v1::GetRolloutRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
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
  return new WatchReactor<v1::RolloutEvent>(
      kMaxQueuedRolloutEvents,
      [orchestrator = orchestrator_,
       request = *request](std::shared_ptr<RolloutEventSink> sink) {
        RETURN_IF_ERROR(CheckRolloutId(request.rollout_id()));
        orchestrator->Watch(request.rollout_id(), request.after_sequence(),
                            std::move(sink));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* RolloutServiceImpl::PauseRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
  orchestrator_->Pause(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::ResumeRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
  orchestrator_->Resume(WithActor(context, *request),
                        Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::AbortRollout(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
  orchestrator_->Abort(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::RollbackRollout(
    grpc::CallbackServerContext* context,
    const v1::RollbackRolloutRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
  orchestrator_->Rollback(WithActor(context, *request),
                          Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::AttestGate(
    grpc::CallbackServerContext* context, const v1::AttestGateRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckAttest(*request))) return reactor;
  orchestrator_->Attest(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::RetryFailed(
    grpc::CallbackServerContext* context,
    const v1::RolloutActionRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (Refused(reactor, CheckRolloutId(request->rollout_id()))) return reactor;
  orchestrator_->Retry(WithActor(context, *request),
                       Finisher(reactor, response));
  return reactor;
}

}  // namespace ecliptix::server
