// The gRPC adapter of AgentService: one ConnectReactor per agent stream
// (callback API, no thread per stream). It validates and converts messages and
// calls the Registry; it holds no fleet state itself.
#ifndef ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_
#define ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "server/fleet/registry.h"

namespace ecliptix::server {

class AgentServiceImpl final : public fleet::v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(Registry* registry) : registry_(registry) {}

  grpc::ServerBidiReactor<fleet::v1::AgentMessage, fleet::v1::ServerMessage>*
  Connect(grpc::CallbackServerContext* context) override;

 private:
  Registry* const registry_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_
