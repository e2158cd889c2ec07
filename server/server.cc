#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/rollout_names.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// What one scrape reads of the control plane: counters each component keeps
// as it goes, none of them a copy of the fleet or of a rollout. Every engine,
// and every operation kind in every state, is listed (with 0 when none), so
// the series exist from the start.
ControlPlaneFigures ReadControlPlane(const Registry& registry,
                                     const RolloutOrchestrator& rollouts,
                                     JobManager& jobs) {
  ControlPlaneFigures figures;
  const std::map<v1::Engine, int64_t> connected = registry.ConnectedByEngine();
  for (int engine = v1::Engine_MIN; engine <= v1::Engine_MAX; ++engine) {
    if (!v1::Engine_IsValid(engine) || engine == v1::ENGINE_UNSPECIFIED)
      continue;
    auto it = connected.find(static_cast<v1::Engine>(engine));
    figures.agents_connected[absl::AsciiStrToLower(absl::StripPrefix(
        v1::Engine_Name(static_cast<v1::Engine>(engine)), "ENGINE_"))] =
        it != connected.end() ? it->second : 0;
  }
  const RolloutOrchestrator::Stats stats = rollouts.GetStats();
  figures.commands_in_flight = stats.commands_in_flight;
  for (const char* kind : {"deploy", "job", "config", "config-read", "query"}) {
    for (int state = v1::RolloutState_MIN; state <= v1::RolloutState_MAX;
         ++state) {
      if (!v1::RolloutState_IsValid(state) ||
          state == v1::ROLLOUT_STATE_UNSPECIFIED)
        continue;
      figures.rollouts[{
          kind, RolloutStateName(static_cast<v1::RolloutState>(state))}] = 0;
    }
  }
  for (const auto& [key, count] : stats.rollouts)
    figures.rollouts[{key.first, RolloutStateName(key.second)}] += count;
  const JobManager::Counts counts = jobs.CountJobs();
  figures.jobs_enabled = counts.enabled;
  figures.jobs_disabled = counts.disabled;
  figures.jobs_running = counts.running;
  return figures;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  server->options_ = options;
  // Metrics first: a bad address stops the start before anything else runs.
  if (!options.metrics_listen_address.empty()) {
    ASSIGN_OR_RETURN(server->exporter_,
                     PrometheusExporter::Start(options.metrics_listen_address));
  }
  ASSIGN_OR_RETURN(server->store_, StateStore::Open(options.store_url));
  if (server->exporter_ != nullptr)
    server->store_->SetWriteObserver(server->exporter_->StoreWriteObserver());
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
  // Metrics: sessions of their own on the same database, whose schema the
  // StateStore has just migrated. Before the rollouts: their success gate
  // reads them.
  ASSIGN_OR_RETURN(server->metric_store_,
                   MetricStore::Open(options.store_url, options.clock->Now()));
  server->metrics_manager_ = std::make_unique<MetricsManager>(
      server->metric_store_.get(), server->registry_.get(),
      server->bundles_.get(), options.clock, options.metrics);
  RETURN_IF_ERROR(server->metrics_manager_->Start());
  server->health_ =
      std::make_unique<HealthReporter>(server->metrics_manager_.get());
  server->metrics_service_ = std::make_unique<MetricsServiceImpl>(
      server->metrics_manager_.get(), server->health_.get());
  server->rollouts_ = std::make_unique<RolloutOrchestrator>(
      server->store_.get(), server->registry_.get(), server->bundles_.get(),
      options.clock, options.rollouts);
  server->rollouts_->SetSuccessFigures(
      [metrics = server->metrics_manager_.get()](
          const std::set<std::string>& databases, absl::Time start,
          absl::Time end) {
        return SuccessFiguresBetween(*metrics, databases, start, end);
      });
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
  // Alerts: rules over the metrics, in a session of their own.
  ASSIGN_OR_RETURN(server->alert_store_, AlertStore::Open(options.store_url));
  server->alert_manager_ = std::make_unique<AlertManager>(
      server->alert_store_.get(), server->metrics_manager_.get(),
      server->registry_.get(), options.clock, options.alerts);
  RETURN_IF_ERROR(server->alert_manager_->Start());
  server->alert_service_ =
      std::make_unique<AlertServiceImpl>(server->alert_manager_.get());

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
  builder.RegisterService(server->metrics_service_.get());
  builder.RegisterService(server->alert_service_.get());
  if (server->exporter_ != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(server->exporter_->NewRpcInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
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
  if (server->exporter_ != nullptr) {
    server->exporter_->SetControlPlane([raw = server.get()] {
      return ReadControlPlane(*raw->registry_, *raw->rollouts_, *raw->jobs_);
    });
    Logger("server")->info("serving Prometheus metrics on http://{}:{}/metrics",
                           options.metrics_listen_address.substr(
                               0, options.metrics_listen_address.rfind(':')),
                           server->exporter_->port());
  }
  server->ExportFleetFigures(server->metric_store_.get());
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
      fleet::v1::MetricsService::service_full_name(),
      fleet::v1::AlertService::service_full_name(),
  };
}

void Server::ExportFleetFigures(const FleetFigures* figures) {
  if (exporter_ == nullptr) return;
  // Under the lock Shutdown lets go of the figures under: not set again after.
  absl::MutexLock lock(&mutex_);
  if (stopping_) return;
  exporter_->SetFleetFigures(figures,
                             [registry = registry_.get()](
                                 const std::vector<std::string>& database_ids) {
                               return registry->LabelsOf(database_ids);
                             });
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
    // Scrapes stop reading the components stopped below at once (a scrape
    // in progress is waited for).
    if (exporter_ != nullptr) {
      exporter_->SetControlPlane(nullptr);
      exporter_->SetFleetFigures(nullptr, nullptr);
    }
  }
  // The HTTP server stops meanwhile (civetweb notices within its 2 s polling
  // round).
  std::thread metrics_stopper;
  if (exporter_ != nullptr)
    metrics_stopper = std::thread([this] { exporter_->StopServing(); });
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
  // Alert watchers are told to watch again (elsewhere or later); what fired
  // is saved already. Before the metrics it reads stop.
  if (alert_manager_ != nullptr) alert_manager_->Stop();
  // What agents sent is stored and acknowledged; held streams are read again.
  if (metrics_manager_ != nullptr) metrics_manager_->Stop();
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  // Its streams have ended with the server's calls: its queues stop.
  if (agent_service_ != nullptr) agent_service_->Stop();
  if (registry_ != nullptr) registry_->Stop();
  if (metrics_stopper.joinable()) metrics_stopper.join();
  Logger("server")->info("stopped");
  absl::MutexLock lock(&mutex_);
  stopped_ = true;
}

void Server::Wait() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(&stopped_));
}

}  // namespace ecliptix::server
