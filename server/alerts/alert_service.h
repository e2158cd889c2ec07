// The gRPC adapter of AlertService: ListAlerts is answered on the
// AlertManager's thread (never on a gRPC thread); WatchAlerts is a
// WatchReactor over the manager's watch (the active alerts, then every fired
// and resolved event).
#ifndef ECLIPTIX_SERVER_ALERTS_ALERT_SERVICE_H_
#define ECLIPTIX_SERVER_ALERTS_ALERT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/alerts.grpc.pb.h"
#include "server/alerts/alert_manager.h"

namespace ecliptix::server {

class AlertServiceImpl final : public fleet::v1::AlertService::CallbackService {
 public:
  // `alerts` is not owned.
  explicit AlertServiceImpl(AlertManager* alerts) : alerts_(alerts) {}

  grpc::ServerUnaryReactor* ListAlerts(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListAlertsRequest* request,
      fleet::v1::ListAlertsResponse* response) override;
  grpc::ServerWriteReactor<fleet::v1::AlertEvent>* WatchAlerts(
      grpc::CallbackServerContext* context,
      const fleet::v1::WatchAlertsRequest* request) override;

 private:
  AlertManager* const alerts_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ALERTS_ALERT_SERVICE_H_
