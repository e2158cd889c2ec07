#include "server/metrics/metrics_service.h"

#include <utility>

#include "common/grpc_status.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// A callback that fills the response and finishes the RPC.
template <typename T>
MetricsManager::Callback<T> Finisher(grpc::ServerUnaryReactor* reactor,
                                     T* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

}  // namespace

grpc::ServerUnaryReactor* MetricsServiceImpl::QuerySeries(
    grpc::CallbackServerContext* context, const v1::QuerySeriesRequest* request,
    v1::QuerySeriesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  metrics_->QuerySeries(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* MetricsServiceImpl::TopProcedures(
    grpc::CallbackServerContext* context,
    const v1::TopProceduresRequest* request,
    v1::TopProceduresResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  metrics_->TopProcedures(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetRate(
    grpc::CallbackServerContext* context, const v1::GetRateRequest* request,
    v1::GetRateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  metrics_->GetRate(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* MetricsServiceImpl::GetHealthReport(
    grpc::CallbackServerContext* context,
    const v1::GetHealthReportRequest* request, v1::HealthReport* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (health_ == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                 "this server has no health report"));
    return reactor;
  }
  health_->GetHealthReport(*request, Finisher(reactor, response));
  return reactor;
}

}  // namespace ecliptix::server
