// The gRPC adapter of FleetService: unary queries answered from the Registry,
// and one WatchFleetReactor per watcher (callback API).
#ifndef ECLIPTIX_SERVER_FLEET_FLEET_SERVICE_H_
#define ECLIPTIX_SERVER_FLEET_FLEET_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "server/fleet/registry.h"

namespace ecliptix::server {

class FleetServiceImpl final : public fleet::v1::FleetService::CallbackService {
 public:
  explicit FleetServiceImpl(Registry* registry) : registry_(registry) {}

  grpc::ServerUnaryReactor* ListDatabases(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListDatabasesRequest* request,
      fleet::v1::ListDatabasesResponse* response) override;
  grpc::ServerUnaryReactor* GetDatabase(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetDatabaseRequest* request,
      fleet::v1::Database* response) override;
  grpc::ServerWriteReactor<fleet::v1::FleetEvent>* WatchFleet(
      grpc::CallbackServerContext* context,
      const fleet::v1::WatchFleetRequest* request) override;

 private:
  Registry* const registry_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_FLEET_FLEET_SERVICE_H_
