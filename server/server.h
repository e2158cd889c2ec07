// The server handle: opens the state store, loads the registry, serves
// AgentService and FleetService (plus health checking and reflection) on one
// port, runs the heartbeat deadline checker, and, when asked, serves
// Prometheus metrics on another.
#ifndef ECLIPTIX_SERVER_SERVER_H_
#define ECLIPTIX_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/alerts/alert_manager.h"
#include "server/alerts/alert_service.h"
#include "server/bundles/bundle_catalog.h"
#include "server/bundles/bundle_service.h"
#include "server/config/config_manager.h"
#include "server/config/config_service.h"
#include "server/fleet/agent_service.h"
#include "server/fleet/fleet_service.h"
#include "server/fleet/registry.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/job_service.h"
#include "server/metrics/health_report.h"
#include "server/metrics/metric_store.h"
#include "server/metrics/metrics_manager.h"
#include "server/metrics/metrics_service.h"
#include "server/metrics/prometheus_exporter.h"
#include "server/queries/query_runner.h"
#include "server/queries/query_service.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/rollouts/rollout_service.h"
#include "server/storage/state_store.h"

namespace ecliptix::server {

struct ServerOptions {
  // HOST:PORT; port 0 picks a free port (see Server::port()).
  std::string listen_address = "127.0.0.1:7070";
  // HOST:PORT to serve Prometheus metrics on (/metrics); port 0 picks a free
  // port (see Server::metrics_port()). Empty: no metrics, no RPC
  // interceptor.
  std::string metrics_listen_address;
  // sqlite:///path/state.db or postgresql://...
  std::string store_url;
  RegistryOptions registry;
  RolloutOptions rollouts;
  JobOptions jobs;
  ConfigOptions config;
  MetricsOptions metrics;
  AlertOptions alerts;
  // How often heartbeat deadlines are checked.
  absl::Duration heartbeat_check_period = absl::Seconds(1);
  // The largest bundle upload accepted (sum of file sizes).
  int64_t max_bundle_bytes = 16 << 20;
  // Not owned; the real clock by default.
  Clock* clock = Clock::Real();
  // nullptr: plaintext. TLS comes through here.
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

class Server {
 public:
  // UNAVAILABLE when the address cannot be bound or the store cannot be
  // reached; the store's own errors otherwise.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  // The full names of the services registered (e.g.
  // "ecliptix.fleet.v1.FleetService"); each has its own grpc.health.v1 status,
  // SERVING from start until Shutdown begins.
  static std::vector<const char*> ServiceNames();

  int port() const { return port_; }
  // The port /metrics is served on; 0 without metrics_listen_address.
  int metrics_port() const {
    return exporter_ != nullptr ? exporter_->port() : 0;
  }
  // nullptr without metrics_listen_address.
  PrometheusExporter* metrics_exporter() { return exporter_.get(); }
  // Exports `figures` on /metrics, each database's with its labels from the
  // registry (nullptr: none); nothing without metrics_listen_address. Not
  // owned: valid until replaced or until Shutdown, which lets go of it.
  void ExportFleetFigures(const FleetFigures* figures);
  // Stops accepting, ends every stream (agents reconnect elsewhere or later),
  // flushes the registry.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  // Blocks until Shutdown has completed.
  void Wait();

  Registry& registry() { return *registry_; }
  BundleCatalog& bundles() { return *bundles_; }
  RolloutOrchestrator& rollouts() { return *rollouts_; }
  JobManager& jobs() { return *jobs_; }
  ConfigManager& config() { return *config_; }
  QueryRunner& queries() { return *queries_; }
  MetricsManager& metrics() { return *metrics_manager_; }
  AlertManager& alerts() { return *alert_manager_; }

 private:
  Server() = default;
  void HeartbeatLoop();

  ServerOptions options_;
  // First: destroyed last, after everything that records into it.
  std::unique_ptr<PrometheusExporter> exporter_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<BundleCatalog> bundles_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<BundleServiceImpl> bundle_service_;
  // Before the rollouts, whose success gate reads the metrics manager.
  std::unique_ptr<MetricStore> metric_store_;
  std::unique_ptr<MetricsManager> metrics_manager_;
  std::unique_ptr<HealthReporter> health_;
  std::unique_ptr<MetricsServiceImpl> metrics_service_;
  std::unique_ptr<RolloutOrchestrator> rollouts_;
  std::unique_ptr<RolloutServiceImpl> rollout_service_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<ConfigManager> config_;
  std::unique_ptr<ConfigServiceImpl> config_service_;
  std::unique_ptr<FleetServiceImpl> fleet_service_;
  std::unique_ptr<QueryRunner> queries_;
  std::unique_ptr<QueryServiceImpl> query_service_;
  std::unique_ptr<AlertStore> alert_store_;
  std::unique_ptr<AlertManager> alert_manager_;
  std::unique_ptr<AlertServiceImpl> alert_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;

  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread heartbeat_thread_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_SERVER_H_
