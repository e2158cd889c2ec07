#include "server/alerts/alert_service.h"

#include <memory>
#include <utility>

#include "common/grpc_status.h"
#include "server/streams/watch_reactor.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Alerts are few (one per rule and database at most); a watcher that lets
// this many queue up is not reading.
constexpr size_t kMaxQueuedEvents = 100'000;

}  // namespace

grpc::ServerUnaryReactor* AlertServiceImpl::ListAlerts(
    grpc::CallbackServerContext* context, const v1::ListAlertsRequest* request,
    v1::ListAlertsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  alerts_->ListAlerts(
      *request,
      [reactor, response](absl::StatusOr<v1::ListAlertsResponse> result) {
        if (result.ok()) *response = *std::move(result);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::AlertEvent>* AlertServiceImpl::WatchAlerts(
    grpc::CallbackServerContext* context,
    const v1::WatchAlertsRequest* request) {
  return new WatchReactor<v1::AlertEvent>(
      kMaxQueuedEvents, [alerts = alerts_, selector = request->selector()](
                            std::shared_ptr<AlertEventSink> sink) {
        return alerts->Watch(selector, std::move(sink));
      });
}

}  // namespace ecliptix::server
