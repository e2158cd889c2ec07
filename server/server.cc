#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace ecliptix::server {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  server->options_ = options;
  ASSIGN_OR_RETURN(server->store_, StateStore::Open(options.store_url));
  server->registry_ = std::make_unique<Registry>(
      server->store_.get(), options.clock, options.registry);
  RETURN_IF_ERROR(server->registry_->Load());
  server->agent_service_ =
      std::make_unique<AgentServiceImpl>(server->registry_.get());
  server->fleet_service_ =
      std::make_unique<FleetServiceImpl>(server->registry_.get());
  server->bundles_ = std::make_unique<BundleCatalog>(
      server->store_.get(), options.clock, options.max_bundle_bytes);
  RETURN_IF_ERROR(server->bundles_->Load());
  server->bundle_service_ =
      std::make_unique<BundleServiceImpl>(server->bundles_.get());
  server->rollouts_ = std::make_unique<RolloutOrchestrator>(
      server->store_.get(), server->registry_.get(), server->bundles_.get(),
      options.clock, options.rollouts);
  // Observers of the orchestrator before it starts.
  server->jobs_ = std::make_unique<JobManager>(
      server->store_.get(), server->registry_.get(), server->bundles_.get(),
      server->rollouts_.get(), options.clock, options.jobs);
  // Configuration records what configuration operations report: it observes
  // the orchestrator from its first commit on.
  server->config_ = std::make_unique<ConfigManager>(
      server->store_.get(), server->registry_.get(), server->bundles_.get(),
      server->rollouts_.get(), options.config);
  RETURN_IF_ERROR(server->config_->Start());
  RETURN_IF_ERROR(server->rollouts_->Start());
  server->rollout_service_ =
      std::make_unique<RolloutServiceImpl>(server->rollouts_.get());
  RETURN_IF_ERROR(server->jobs_->Start());
  server->job_service_ = std::make_unique<JobServiceImpl>(server->jobs_.get());
  server->config_service_ =
      std::make_unique<ConfigServiceImpl>(server->config_.get());
  server->queries_ = std::make_unique<QueryRunner>(
      server->rollouts_.get(), server->bundles_.get(), server->registry_.get(),
      options.clock);
  server->queries_->Start();
  server->query_service_ =
      std::make_unique<QueryServiceImpl>(server->queries_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address,
                           options.credentials != nullptr
                               ? options.credentials
                               : grpc::InsecureServerCredentials(),
                           &server->port_);
  server->agent_service_->AddTo(&builder);
  builder.RegisterService(server->fleet_service_.get());
  builder.RegisterService(server->bundle_service_.get());
  builder.RegisterService(server->rollout_service_.get());
  builder.RegisterService(server->job_service_.get());
  builder.RegisterService(server->config_service_.get());
  builder.RegisterService(server->query_service_.get());
  // Uploads up to the bundle limit, plus room for paths and framing; our own
  // check then answers with a precise message instead of gRPC's generic one.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(options.max_bundle_bytes * 2 + (1 << 20), INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(
      std::min<int64_t>(options.max_bundle_bytes * 2 + (1 << 20), INT32_MAX)));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address,
                     ": the address is invalid or already in use"));
  }
  server->agent_service_->Start();
  // grpc.health.v1: the whole server ("") and each of its services by name.
  grpc::HealthCheckServiceInterface* health =
      server->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* service : ServiceNames()) {
    health->SetServingStatus(service, true);
  }
  server->heartbeat_thread_ =
      std::thread([raw = server.get()] { raw->HeartbeatLoop(); });
  Logger("server")->info(
      "listening on {} (port {}), state store schema version {}",
      options.listen_address, server->port_, server->store_->schema_version());
  return server;
}

std::vector<const char*> Server::ServiceNames() {
  return {
      fleet::v1::AgentService::service_full_name(),
      fleet::v1::FleetService::service_full_name(),
      fleet::v1::BundleService::service_full_name(),
      fleet::v1::RolloutService::service_full_name(),
      fleet::v1::JobService::service_full_name(),
      fleet::v1::ConfigService::service_full_name(),
      fleet::v1::QueryService::service_full_name(),
  };
}

Server::~Server() { Shutdown(); }

void Server::HeartbeatLoop() {
  absl::MutexLock lock(&mutex_);
  while (!stopping_) {
    // Wakes early on Shutdown; the deadline itself comes from the injectable
    // clock.
    mutex_.AwaitWithTimeout(absl::Condition(&stopping_),
                            options_.heartbeat_check_period);
    if (stopping_) break;
    mutex_.Unlock();
    registry_->CheckHeartbeats();
    mutex_.Lock();
  }
}

void Server::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) {
      mutex_.Await(absl::Condition(&stopped_));
      return;
    }
    stopping_ = true;
  }
  // Health checkers hear first that the server is going away: every service,
  // and "", is NOT_SERVING from here on.
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  // Running queries end UNAVAILABLE before the orchestrator stops under them.
  if (queries_ != nullptr) queries_->Stop();
  // Rollout watchers are told to watch again (elsewhere or later); the state is
  // saved already.
  // The scheduler first: it starts runs through the orchestrator.
  if (jobs_ != nullptr) jobs_->Stop();
  if (rollouts_ != nullptr) rollouts_->Stop();
  // Waiting configuration reads are answered; what is recorded is saved.
  if (config_ != nullptr) config_->Stop();
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  // Its streams have ended with the server's calls: its queues stop.
  if (agent_service_ != nullptr) agent_service_->Stop();
  if (registry_ != nullptr) registry_->Stop();
  Logger("server")->info("stopped");
  absl::MutexLock lock(&mutex_);
  stopped_ = true;
}

void Server::Wait() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(&stopped_));
}

}  // namespace ecliptix::server
