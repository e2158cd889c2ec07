#include "agent/agent.h"

#include <cmath>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "agent/target/open_target.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/sql/database_url.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace ecliptix::agent {
namespace {

absl::Status ValidateOptions(const AgentOptions& options) {
  if (options.server_address.empty()) {
    return absl::InvalidArgumentError("server address is empty: use host:port");
  }
  if (options.database_url.empty()) {
    return absl::InvalidArgumentError("database URL is empty");
  }
  for (const auto& [key, value] : options.labels) {
    RETURN_IF_ERROR(ValidateLabelKey(key));
    RETURN_IF_ERROR(ValidateLabelValue(value));
  }
  if (!options.database_id.empty())
    RETURN_IF_ERROR(ValidateDatabaseId(options.database_id));
  if (!(options.metrics_interval_scale > 0) ||
      !std::isfinite(options.metrics_interval_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics interval scale must be positive, not ",
                     options.metrics_interval_scale));
  }
  if (options.initial_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("initial backoff must be positive, not ",
                     absl::FormatDuration(options.initial_backoff)));
  }
  if (options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        absl::StrCat("max backoff (", absl::FormatDuration(options.max_backoff),
                     ") is shorter than initial backoff (",
                     absl::FormatDuration(options.initial_backoff), ")"));
  }
  return absl::OkStatus();
}

// Bundles for the metrics collector: fetched only while the control stream
// is connected, since a fetch waits out a server that is away (minutes) and
// the collector simply tries again on its next look.
class ConnectedBundleSource : public BundleSource {
 public:
  explicit ConnectedBundleSource(BundleSource* source) : source_(source) {}
  // Before the collector starts.
  void set_stream(const ControlStream* stream) { stream_ = stream; }
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) override {
    if (stream_ == nullptr || !stream_->connected()) {
      return absl::UnavailableError(
          absl::StrCat("cannot fetch bundle ", bundle_id,
                       " while not connected to the server"));
    }
    return source_->Fetch(bundle_id);
  }

 private:
  BundleSource* const source_;
  const ControlStream* stream_ = nullptr;
};

// The metric sender on the control stream, which also wakes the collector
// when a session starts: a bundle it could not fetch while the server was
// away can be fetched now.
class MetricsStreamListener : public StreamListener {
 public:
  MetricsStreamListener(MetricSender* sender, MetricsCollector* collector)
      : sender_(sender), collector_(collector) {}
  std::vector<std::string> Capabilities() const override {
    return sender_->Capabilities();
  }
  void SessionStarted(Writer writer) override {
    sender_->SessionStarted(std::move(writer));
    collector_->Wake();
  }
  void SessionEnded() override { sender_->SessionEnded(); }
  void Received(const fleet::v1::ServerMessage& message) override {
    sender_->Received(message);
  }

 private:
  MetricSender* const sender_;
  MetricsCollector* const collector_;
};

}  // namespace

Agent::Agent(AgentOptions options, std::unique_ptr<Target> database,
             std::string database_id)
    : options_(std::move(options)),
      database_(std::move(database)),
      database_id_(std::move(database_id)) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  // Everything the caller got wrong is reported before touching the database.
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(std::unique_ptr<Target> database,
                   OpenTarget(options.database_url));
  ASSIGN_OR_RETURN(std::string database_id,
                   database->EnsureDatabaseId(options.database_id));

  Logger("agent")->info(
      "ecliptix-agent {} starting: database {} ({}), engine {} {} via {}, "
      "labels [{}], server {}",
      kVersion, database_id, database->redacted_url(),
      EngineName(database->engine()), database->engine_version(),
      ConnectorName(database->connector()), FormatLabels(options.labels),
      options.server_address);

  ControlStreamOptions stream_options;
  stream_options.server_address = options.server_address;
  stream_options.credentials = options.credentials;
  stream_options.backoff.initial = options.initial_backoff;
  stream_options.backoff.max = options.max_backoff;
  fleet::v1::Hello& hello = stream_options.hello;
  hello.set_database_id(database_id);
  hello.set_engine(database->engine());
  hello.set_engine_version(database->engine_version());
  hello.set_connector(database->connector());
  for (const auto& [key, value] : options.labels)
    (*hello.mutable_labels())[key] = value;

  ASSIGN_OR_RETURN(::ecliptix::sql::DatabaseUrl url,
                   ::ecliptix::sql::ParseDatabaseUrl(options.database_url));
  ExecutorOptions executor_options;
  executor_options.backup_dir =
      options.backup_dir.empty() ? DefaultBackupDir(url) : options.backup_dir;
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      options.server_address, options.credentials != nullptr
                                  ? options.credentials
                                  : grpc::InsecureChannelCredentials());

  auto agent = absl::WrapUnique(new Agent(
      std::move(options), std::move(database), std::move(database_id)));
  agent->executor_ = std::make_unique<Executor>(agent->database_.get(),
                                                std::move(executor_options));
  agent->bundle_source_ =
      std::make_unique<ServerBundleSource>(std::move(channel));
  agent->deployment_handler_ = std::make_unique<DeploymentHandler>(
      agent->executor_.get(), agent->bundle_source_.get());
  // Reads open sessions of their own from the same URL.
  agent->read_handler_ = std::make_unique<ReadHandler>(
      agent->options_.database_url, agent->bundle_source_.get());
  agent->router_ = std::make_unique<CommandRouter>(
      agent->deployment_handler_.get(), agent->read_handler_.get());
  stream_options.handler = agent->router_.get();
  if (agent->options_.collect_metrics) {
    // The collector's bundle source asks the stream whether it is connected,
    // and the stream wakes the collector: the source learns the stream once
    // both exist, before either thread starts.
    auto bundles =
        std::make_unique<ConnectedBundleSource>(agent->bundle_source_.get());
    agent->metric_sender_ = std::make_unique<MetricSender>();
    MetricsCollectorOptions metrics;
    metrics.database_url = agent->options_.database_url;
    metrics.bundles = bundles.get();
    metrics.sink = agent->metric_sender_.get();
    metrics.interval_scale = agent->options_.metrics_interval_scale;
    metrics.count_existing_rows = agent->options_.metrics_count_existing_rows;
    ASSIGN_OR_RETURN(agent->metrics_collector_,
                     MetricsCollector::Create(std::move(metrics)));
    agent->metrics_bundles_ = std::move(bundles);
    agent->metrics_listener_ = std::make_unique<MetricsStreamListener>(
        agent->metric_sender_.get(), agent->metrics_collector_.get());
    // A deployment that applied a bundle: its collectors take their starting
    // point before the deployment is reported done, so from tables the
    // application has not written to yet, rather than up to an interval
    // later, after rows they would take for history.
    agent->deployment_handler_->SetAfterCommand(
        [collector = agent->metrics_collector_.get()] {
          collector->WakeAndWait(absl::Seconds(10));
        });
    stream_options.listener = agent->metrics_listener_.get();
  }
  agent->control_stream_ =
      std::make_unique<ControlStream>(std::move(stream_options));
  if (agent->options_.collect_metrics) {
    static_cast<ConnectedBundleSource*>(agent->metrics_bundles_.get())
        ->set_stream(agent->control_stream_.get());
    agent->metric_sender_->Start();
    agent->metrics_collector_->Start();
    Logger("agent")->info(
        "collecting metrics as agent instance {} (intervals x{})",
        agent->metric_sender_->agent_instance(),
        agent->options_.metrics_interval_scale);
  }
  {
    absl::MutexLock lock(&agent->thread_mutex_);
    ControlStream* stream = agent->control_stream_.get();
    agent->thread_ = std::thread([stream] { stream->Run(); });
  }
  return agent;
}

Agent::~Agent() {
  Shutdown();
  Wait();
  // The sender's and the handlers' threads write through the control stream
  // until they end: they are joined while it still exists.
  if (metric_sender_ != nullptr) metric_sender_->Stop();
  router_.reset();
  read_handler_.reset();
  deployment_handler_.reset();
}

void Agent::Shutdown() {
  if (metrics_collector_ != nullptr) metrics_collector_->Stop();
  if (router_ != nullptr) router_->CancelAll();
  if (control_stream_ != nullptr) control_stream_->Stop();
}

void Agent::Wait() {
  absl::MutexLock lock(&thread_mutex_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace ecliptix::agent
