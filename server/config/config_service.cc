#include "server/config/config_service.h"

#include <utility>

#include "common/grpc_status.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// A callback that fills the response and finishes the RPC.
template <typename T>
ConfigManager::Callback<T> Finisher(grpc::ServerUnaryReactor* reactor,
                                    T* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

// Changes are recorded with who asked: the named person, or the client's
// address.
template <typename Request>
Request WithRequester(grpc::CallbackServerContext* context,
                      const Request& request) {
  Request copy = request;
  if (copy.requested_by().empty()) copy.set_requested_by(context->peer());
  return copy;
}

}  // namespace

grpc::ServerUnaryReactor* ConfigServiceImpl::SetConfig(
    grpc::CallbackServerContext* context, const v1::SetConfigRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  config_->Set(WithRequester(context, *request), Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::GetConfig(
    grpc::CallbackServerContext* context, const v1::GetConfigRequest* request,
    v1::GetConfigResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // From memory: no wait.
  Finisher(reactor, response)(config_->Get(*request));
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::DiffConfig(
    grpc::CallbackServerContext* context, const v1::DiffConfigRequest* request,
    v1::GetConfigResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  config_->Diff(*request, context->peer(), Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::GetConfigHistory(
    grpc::CallbackServerContext* context,
    const v1::GetConfigHistoryRequest* request,
    v1::GetConfigHistoryResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  config_->History(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::DisableLogging(
    grpc::CallbackServerContext* context,
    const v1::EmergencyLoggingRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  config_->SetLogging(WithRequester(context, *request), /*enabled=*/false,
                      Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::EnableLogging(
    grpc::CallbackServerContext* context,
    const v1::EmergencyLoggingRequest* request, v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  config_->SetLogging(WithRequester(context, *request), /*enabled=*/true,
                      Finisher(reactor, response));
  return reactor;
}

}  // namespace ecliptix::server
