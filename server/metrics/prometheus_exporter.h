// The Prometheus exporter of ecliptix-server: an HTTP endpoint (/metrics, the
// text exposition format, prometheus-cpp over civetweb) with
//   - the control plane's own figures, read on every scrape through a reader
//     the server sets (agents connected, commands in flight, rollouts, jobs);
//   - RPC counts and latencies, recorded by a gRPC server interceptor;
//   - state store write latencies, recorded through StateStore's observer;
//   - the fleet's latest figures, read on every scrape through FleetFigures,
//     as ecliptix_db_<metric>{database, <database labels>, <sample labels>}.
// Owns the HTTP server and every metric it records; reads nothing by itself.
#ifndef ECLIPTIX_SERVER_METRICS_PROMETHEUS_EXPORTER_H_
#define ECLIPTIX_SERVER_METRICS_PROMETHEUS_EXPORTER_H_

#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/labels.h"
#include "server/metrics/fleet_figures.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace ecliptix::server {

// The control plane as one scrape sees it.
struct ControlPlaneFigures {
  // Databases whose agent is connected, by engine ("sqlite", "postgresql",
  // "mssql"); engines listed with 0 are exported as 0, so the series exist
  // before the first agent comes.
  std::map<std::string, int64_t> agents_connected;
  // Targets whose command runs or waits to be sent again.
  int64_t commands_in_flight = 0;
  // Rollouts by (operation kind, state): ("deploy", "running") ...
  std::map<std::pair<std::string, std::string>, int64_t> rollouts;
  int64_t jobs_enabled = 0;
  int64_t jobs_disabled = 0;
  // Jobs with a run in progress.
  int64_t jobs_running = 0;
};

namespace metrics_internal {
class ControlPlaneCollectable;
class FleetCollectable;
class RpcMetrics;
class StoreWriteMetrics;
}  // namespace metrics_internal

class PrometheusExporter {
 public:
  // Called on every scrape, from an HTTP server thread: must be thread-safe
  // and cheap.
  using ControlPlaneReader = std::function<ControlPlaneFigures()>;
  // The labels of those of `database_ids` that are known.
  using DatabaseLabelsReader = std::function<std::map<std::string, Labels>(
      const std::vector<std::string>& database_ids)>;

  // Binds `listen_address` (HOST:PORT; port 0 picks a free one, see port())
  // and serves /metrics at once. INVALID_ARGUMENT for an address that is not
  // HOST:PORT; UNAVAILABLE, saying why, when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<PrometheusExporter>> Start(
      const std::string& listen_address);
  // Stops serving (see StopServing).
  ~PrometheusExporter();
  PrometheusExporter(const PrometheusExporter&) = delete;
  PrometheusExporter& operator=(const PrometheusExporter&) = delete;

  // Whether `listen_address` is one Start could try to bind (HOST:PORT, an
  // IPv4 host or a name that resolves to one): INVALID_ARGUMENT otherwise,
  // as Start would answer. For checking a flag before anything starts.
  static absl::Status CheckListenAddress(const std::string& listen_address);

  // The bound port.
  int port() const { return port_; }
  // Stops the HTTP server, waiting for scrapes in progress: no reader is
  // called after it returns. Takes up to 2 s (civetweb polls its sockets in
  // 2 s rounds): to stop readers at once, set them to none first. What the
  // interceptor and the store observer record is still taken (they may
  // outlive serving).
  void StopServing();

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators: counts
  // every RPC by service, method, type and status code, and times it (from
  // the call's start to its status; a stream's whole life). Shares the
  // exporter's metrics: safe to outlive it.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewRpcInterceptorFactory();
  // For StateStore::SetWriteObserver; safe to outlive the exporter.
  std::function<void(const char* operation, absl::Duration elapsed)>
  StoreWriteObserver();

  // Replaces the reader of the control plane's figures (none: not exported).
  // Waits for a scrape in progress, so the previous reader is not called
  // after this returns.
  void SetControlPlane(ControlPlaneReader reader);
  // Replaces the source of the fleet's latest figures (nullptr: none), not
  // owned: it must stay valid until replaced or until StopServing. Waits for
  // a scrape in progress, as SetControlPlane does. `labels` gives the
  // databases' labels (none: only database="...").
  void SetFleetFigures(const FleetFigures* figures,
                       DatabaseLabelsReader labels);

  // What a scrape would answer now, in the text format.
  std::string Render() const;

 private:
  PrometheusExporter();

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<metrics_internal::RpcMetrics> rpc_;
  std::shared_ptr<metrics_internal::StoreWriteMetrics> store_writes_;
  std::shared_ptr<metrics_internal::ControlPlaneCollectable> control_plane_;
  std::shared_ptr<metrics_internal::FleetCollectable> fleet_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// The name Prometheus accepts for `name` ([a-zA-Z_:][a-zA-Z0-9_:]* for a
// metric, [a-zA-Z_][a-zA-Z0-9_]* for a label): every other character becomes
// '_', and a leading digit gets a '_' before it. Exposed for tests.
std::string PrometheusMetricName(const std::string& name);
std::string PrometheusLabelName(const std::string& name);

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_PROMETHEUS_EXPORTER_H_
