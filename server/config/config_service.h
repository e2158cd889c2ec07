// The gRPC adapter of ConfigService: each call names who asks (the client's
// address when the request does not) and is handed to the ConfigManager,
// whose callback finishes the RPC (no gRPC thread waits for agents or the
// store).
#ifndef ECLIPTIX_SERVER_CONFIG_CONFIG_SERVICE_H_
#define ECLIPTIX_SERVER_CONFIG_CONFIG_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/config_service.grpc.pb.h"
#include "server/config/config_manager.h"

namespace ecliptix::server {

class ConfigServiceImpl final
    : public fleet::v1::ConfigService::CallbackService {
 public:
  explicit ConfigServiceImpl(ConfigManager* config) : config_(config) {}

  grpc::ServerUnaryReactor* SetConfig(
      grpc::CallbackServerContext* context,
      const fleet::v1::SetConfigRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* GetConfig(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetConfigRequest* request,
      fleet::v1::GetConfigResponse* response) override;
  grpc::ServerUnaryReactor* DiffConfig(
      grpc::CallbackServerContext* context,
      const fleet::v1::DiffConfigRequest* request,
      fleet::v1::GetConfigResponse* response) override;
  grpc::ServerUnaryReactor* GetConfigHistory(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetConfigHistoryRequest* request,
      fleet::v1::GetConfigHistoryResponse* response) override;
  grpc::ServerUnaryReactor* DisableLogging(
      grpc::CallbackServerContext* context,
      const fleet::v1::EmergencyLoggingRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* EnableLogging(
      grpc::CallbackServerContext* context,
      const fleet::v1::EmergencyLoggingRequest* request,
      fleet::v1::Rollout* response) override;

 private:
  ConfigManager* const config_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_CONFIG_CONFIG_SERVICE_H_
