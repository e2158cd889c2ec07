// The gRPC adapter of RolloutService: each call is handed to the
// RolloutOrchestrator, whose callback finishes the RPC (no gRPC thread waits);
// WatchRollout streams through a WatchRolloutReactor.
#ifndef ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_SERVICE_H_
#define ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "server/rollouts/rollout_orchestrator.h"

namespace ecliptix::server {

class RolloutServiceImpl final
    : public fleet::v1::RolloutService::CallbackService {
 public:
  explicit RolloutServiceImpl(RolloutOrchestrator* orchestrator)
      : orchestrator_(orchestrator) {}

  grpc::ServerUnaryReactor* CreateRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::CreateRolloutRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* PlanRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::CreateRolloutRequest* request,
      fleet::v1::RolloutPlan* response) override;
  grpc::ServerUnaryReactor* GetRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetRolloutRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* ListRollouts(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListRolloutsRequest* request,
      fleet::v1::ListRolloutsResponse* response) override;
  grpc::ServerWriteReactor<fleet::v1::RolloutEvent>* WatchRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::WatchRolloutRequest* request) override;
  grpc::ServerUnaryReactor* PauseRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::RolloutActionRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* ResumeRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::RolloutActionRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* AbortRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::RolloutActionRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* RollbackRollout(
      grpc::CallbackServerContext* context,
      const fleet::v1::RollbackRolloutRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* AttestGate(
      grpc::CallbackServerContext* context,
      const fleet::v1::AttestGateRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* RetryFailed(
      grpc::CallbackServerContext* context,
      const fleet::v1::RolloutActionRequest* request,
      fleet::v1::Rollout* response) override;

 private:
  RolloutOrchestrator* const orchestrator_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_SERVICE_H_
