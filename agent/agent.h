// Agent: one ecliptix-agent in a process. It owns the target database (and its
// credentials), the database's stable id and the control stream to the server,
// which runs on a thread of its own. Usable in-process (tests, embedding) as
// well as from main.cc.
#ifndef ECLIPTIX_AGENT_AGENT_H_
#define ECLIPTIX_AGENT_AGENT_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/bundle_source.h"
#include "agent/command_router.h"
#include "agent/control_stream.h"
#include "agent/deployment_handler.h"
#include "agent/executor/executor.h"
#include "agent/metrics/collector.h"
#include "agent/metrics/metric_sender.h"
#include "agent/read_handler.h"
#include "agent/target/target.h"
#include "common/labels.h"

namespace ecliptix::agent {

struct AgentOptions {
  // host:port of ecliptix-server.
  std::string server_address;
  // sqlite:///..., postgresql://..., odbc://... (see
  // common/sql/database_url.h).
  std::string database_url;
  Labels labels;
  // Empty: the id stored in the database, or a generated one for a new
  // database.
  std::string database_id;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  // nullptr = insecure; pluggable for TLS later.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Where backups go; empty: DefaultBackupDir() of the database.
  std::string backup_dir;
  // Run the applied bundle's metric collectors and stream their samples
  // (capability "metrics").
  bool collect_metrics = true;
  // Collectors run every interval * scale (e.g. 0.05: 60 s becomes 3 s).
  double metrics_interval_scale = 1.0;
  // The first run of an incremental collector counts the rows already there
  // (by default it starts after them).
  bool metrics_count_existing_rows = false;
};

class Agent {
 public:
  // Validates the options (INVALID_ARGUMENT), opens the database (its status as
  // is: UNAVAILABLE when unreachable), ensures the database id
  // (FAILED_PRECONDITION when it conflicts with options.database_id), then
  // starts the control stream on its own thread. The server need not be up: the
  // stream keeps retrying.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);

  // Shuts down and waits.
  ~Agent();

  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Ends the session cleanly and stops reconnecting. Idempotent; any thread.
  void Shutdown();
  // Blocks until the control stream has stopped (after Shutdown()).
  void Wait();

  const std::string& database_id() const { return database_id_; }
  const Target& database() const { return *database_; }
  ControlStream& control_stream() { return *control_stream_; }
  // nullptr when metrics are not collected.
  MetricSender* metric_sender() { return metric_sender_.get(); }

 private:
  Agent(AgentOptions options, std::unique_ptr<Target> database,
        std::string database_id);

  const AgentOptions options_;
  std::unique_ptr<Target> database_;
  const std::string database_id_;
  // Declared in dependency order: destroyed from the control stream down to
  // the database.
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<ServerBundleSource> bundle_source_;
  // Metrics (when collected): the sender, the collector and the listener
  // outlive the control stream that calls them; the collector feeds the
  // sender.
  std::unique_ptr<BundleSource> metrics_bundles_;
  std::unique_ptr<MetricSender> metric_sender_;
  std::unique_ptr<MetricsCollector> metrics_collector_;
  std::unique_ptr<StreamListener> metrics_listener_;
  std::unique_ptr<DeploymentHandler> deployment_handler_;
  std::unique_ptr<ReadHandler> read_handler_;
  std::unique_ptr<CommandRouter> router_;
  std::unique_ptr<ControlStream> control_stream_;

  absl::Mutex thread_mutex_;
  std::thread thread_ ABSL_GUARDED_BY(thread_mutex_);
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_AGENT_H_
