// The gRPC adapter of MetricsService: each RPC hands its request to the
// MetricsManager, which answers on its query thread (never on a gRPC thread),
// and finishes with the answer or the manager's status.
#ifndef ECLIPTIX_SERVER_METRICS_METRICS_SERVICE_H_
#define ECLIPTIX_SERVER_METRICS_METRICS_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "server/metrics/health_report.h"
#include "server/metrics/metrics_manager.h"

namespace ecliptix::server {

class MetricsServiceImpl final
    : public fleet::v1::MetricsService::CallbackService {
 public:
  // Neither is owned; without `health` GetHealthReport is UNIMPLEMENTED.
  explicit MetricsServiceImpl(MetricsManager* metrics,
                              HealthReporter* health = nullptr)
      : metrics_(metrics), health_(health) {}

  grpc::ServerUnaryReactor* QuerySeries(
      grpc::CallbackServerContext* context,
      const fleet::v1::QuerySeriesRequest* request,
      fleet::v1::QuerySeriesResponse* response) override;
  grpc::ServerUnaryReactor* TopProcedures(
      grpc::CallbackServerContext* context,
      const fleet::v1::TopProceduresRequest* request,
      fleet::v1::TopProceduresResponse* response) override;
  grpc::ServerUnaryReactor* GetRate(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetRateRequest* request,
      fleet::v1::GetRateResponse* response) override;
  grpc::ServerUnaryReactor* GetHealthReport(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetHealthReportRequest* request,
      fleet::v1::HealthReport* response) override;

 private:
  MetricsManager* const metrics_;
  HealthReporter* const health_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_METRICS_SERVICE_H_
