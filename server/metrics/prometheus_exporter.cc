#include "server/metrics/prometheus_exporter.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/version.h"

namespace ecliptix::server {
namespace metrics_internal {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// From well under a millisecond (a unary read) to the life of a stream.
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,    1,     2.5,    5,     10,   30,    60,   300, 1800};
  return *kBuckets;
}

// A commit of a few rows to a local SQLite file up to a slow remote database.
const prometheus::Histogram::BucketBoundaries& StoreBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *kBuckets;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

MetricFamily NewFamily(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddGauge(MetricFamily& family, std::vector<ClientMetric::Label> labels,
              double value) {
  ClientMetric& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  metric.gauge.value = value;
}

}  // namespace

// RPC counts and latencies; one entry per method, created on its first call.
class RpcMetrics {
 public:
  struct Method {
    std::map<std::string, std::string> labels;
    prometheus::Counter* started = nullptr;
    prometheus::Histogram* handling = nullptr;
    // By status code, created on first use (guarded by RpcMetrics::mutex_).
    std::array<prometheus::Counter*, 17> handled{};
  };

  explicit RpcMetrics(std::shared_ptr<prometheus::Registry> registry)
      : registry_(registry),
        started_(prometheus::BuildCounter()
                     .Name("ecliptix_grpc_server_started_total")
                     .Help("RPCs started on the server, by service, method "
                           "and type.")
                     .Register(*registry)),
        handled_(prometheus::BuildCounter()
                     .Name("ecliptix_grpc_server_handled_total")
                     .Help("RPCs completed on the server, by service, method, "
                           "type and status code.")
                     .Register(*registry)),
        handling_(prometheus::BuildHistogram()
                      .Name("ecliptix_grpc_server_handling_seconds")
                      .Help("Time from an RPC's start to its status, in "
                            "seconds (a stream's whole life).")
                      .Register(*registry)) {}

  Method& For(const char* full_name,
              grpc::experimental::ServerRpcInfo::Type type) {
    const absl::string_view name =
        full_name != nullptr ? full_name : "/unknown/unknown";
    absl::MutexLock lock(&mutex_);
    auto it = methods_.find(name);
    if (it != methods_.end()) return *it->second;
    auto method = std::make_unique<Method>();
    // "/ecliptix.fleet.v1.FleetService/ListDatabases"
    const absl::string_view path = absl::StripPrefix(name, "/");
    const size_t slash = path.rfind('/');
    method->labels = {
        {"grpc_service",
         std::string(slash == absl::string_view::npos ? "unknown"
                                                      : path.substr(0, slash))},
        {"grpc_method", std::string(slash == absl::string_view::npos
                                        ? path
                                        : path.substr(slash + 1))},
        {"grpc_type", TypeName(type)}};
    method->started = &started_.Add(method->labels);
    method->handling = &handling_.Add(method->labels, RpcBuckets());
    Method& ref = *method;
    methods_.emplace(std::string(name), std::move(method));
    return ref;
  }

  void Handled(Method& method, grpc::StatusCode code, double seconds) {
    const size_t index = static_cast<size_t>(code) < method.handled.size()
                             ? static_cast<size_t>(code)
                             : static_cast<size_t>(grpc::StatusCode::UNKNOWN);
    prometheus::Counter* counter;
    {
      absl::MutexLock lock(&mutex_);
      counter = method.handled[index];
      if (counter == nullptr) {
        std::map<std::string, std::string> labels = method.labels;
        labels["grpc_code"] =
            absl::StatusCodeToString(static_cast<absl::StatusCode>(index));
        counter = method.handled[index] = &handled_.Add(labels);
      }
    }
    counter->Increment();
    method.handling->Observe(seconds);
  }

 private:
  static std::string TypeName(grpc::experimental::ServerRpcInfo::Type type) {
    using Type = grpc::experimental::ServerRpcInfo::Type;
    switch (type) {
      case Type::UNARY:
        return "unary";
      case Type::CLIENT_STREAMING:
        return "client_stream";
      case Type::SERVER_STREAMING:
        return "server_stream";
      case Type::BIDI_STREAMING:
        return "bidi_stream";
    }
    return "unknown";
  }

  // Keeps the families alive for interceptors that outlive the exporter.
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
  absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<Method>, std::less<>> methods_
      ABSL_GUARDED_BY(mutex_);
};

namespace {

// One per RPC: counts it started when created, handled when its status is
// sent (or, for a call that ends without one, CANCELLED when destroyed).
class RpcInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(std::shared_ptr<RpcMetrics> metrics,
                 grpc::experimental::ServerRpcInfo* info)
      : metrics_(std::move(metrics)),
        method_(metrics_->For(info->method(), info->type())),
        start_(std::chrono::steady_clock::now()) {
    method_.started->Increment();
  }
  ~RpcInterceptor() override {
    if (!handled_) {
      metrics_->Handled(method_, grpc::StatusCode::CANCELLED,
                        SecondsSince(start_));
    }
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!handled_ &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      handled_ = true;
      metrics_->Handled(method_, methods->GetSendStatus().error_code(),
                        SecondsSince(start_));
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<RpcMetrics> metrics_;
  RpcMetrics::Method& method_;
  const std::chrono::steady_clock::time_point start_;
  // Hooks of one call run one at a time.
  bool handled_ = false;
};

class RpcInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(std::shared_ptr<RpcMetrics> metrics)
      : metrics_(std::move(metrics)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, info);
  }

 private:
  const std::shared_ptr<RpcMetrics> metrics_;
};

}  // namespace

// State store write latencies by operation.
class StoreWriteMetrics {
 public:
  explicit StoreWriteMetrics(std::shared_ptr<prometheus::Registry> registry)
      : registry_(registry),
        family_(prometheus::BuildHistogram()
                    .Name("ecliptix_state_store_write_seconds")
                    .Help("State store writes, in seconds, waiting for the "
                          "store included, by operation.")
                    .Register(*registry)) {}

  void Observe(const char* operation, absl::Duration elapsed) {
    prometheus::Histogram* histogram;
    {
      absl::MutexLock lock(&mutex_);
      auto it = by_operation_.find(absl::string_view(operation));
      if (it == by_operation_.end()) {
        it = by_operation_
                 .emplace(operation, &family_.Add({{"operation", operation}},
                                                  StoreBuckets()))
                 .first;
      }
      histogram = it->second;
    }
    histogram->Observe(absl::ToDoubleSeconds(elapsed));
  }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& family_;
  absl::Mutex mutex_;
  std::map<std::string, prometheus::Histogram*, std::less<>> by_operation_
      ABSL_GUARDED_BY(mutex_);
};

// The control plane's figures, read on every scrape.
class ControlPlaneCollectable : public prometheus::Collectable {
 public:
  void Set(PrometheusExporter::ControlPlaneReader reader) {
    absl::MutexLock lock(&mutex_);
    reader_ = std::move(reader);
  }

  std::vector<MetricFamily> Collect() const override {
    // Held while reading: a reader replaced (or its owner gone) is not
    // called any more once Set returns.
    absl::MutexLock lock(&mutex_);
    if (!reader_) return {};
    const ControlPlaneFigures figures = reader_();
    std::vector<MetricFamily> families;

    MetricFamily& agents = families.emplace_back(NewFamily(
        "ecliptix_agents_connected",
        "Databases whose agent is connected, by engine.", MetricType::Gauge));
    for (const auto& [engine, count] : figures.agents_connected)
      AddGauge(agents, {{"engine", engine}}, count);

    MetricFamily& commands = families.emplace_back(NewFamily(
        "ecliptix_commands_in_flight",
        "Targets of fleet operations whose command runs on their agent, or "
        "waits to be sent again to an agent that is away.",
        MetricType::Gauge));
    AddGauge(commands, {}, figures.commands_in_flight);

    MetricFamily& rollouts = families.emplace_back(NewFamily(
        "ecliptix_rollouts",
        "Fleet operations the server knows, by operation kind (deploy, job, "
        "config, config-read, query) and state.",
        MetricType::Gauge));
    for (const auto& [key, count] : figures.rollouts) {
      AddGauge(rollouts, {{"operation", key.first}, {"state", key.second}},
               count);
    }

    MetricFamily& jobs = families.emplace_back(
        NewFamily("ecliptix_jobs", "Maintenance jobs, enabled or disabled.",
                  MetricType::Gauge));
    AddGauge(jobs, {{"state", "enabled"}}, figures.jobs_enabled);
    AddGauge(jobs, {{"state", "disabled"}}, figures.jobs_disabled);

    MetricFamily& running = families.emplace_back(NewFamily(
        "ecliptix_jobs_running", "Maintenance jobs with a run in progress.",
        MetricType::Gauge));
    AddGauge(running, {}, figures.jobs_running);
    return families;
  }

 private:
  mutable absl::Mutex mutex_;
  PrometheusExporter::ControlPlaneReader reader_ ABSL_GUARDED_BY(mutex_);
};

// The fleet's latest figures, read on every scrape.
class FleetCollectable : public prometheus::Collectable {
 public:
  void Set(const FleetFigures* figures,
           PrometheusExporter::DatabaseLabelsReader labels) {
    absl::MutexLock lock(&mutex_);
    figures_ = figures;
    labels_ = std::move(labels);
  }

  std::vector<MetricFamily> Collect() const override {
    absl::MutexLock lock(&mutex_);
    if (figures_ == nullptr) return {};
    const std::vector<LatestSample> samples = figures_->Latest();

    std::vector<std::string> database_ids;
    for (const LatestSample& sample : samples)
      database_ids.push_back(sample.database_id);
    std::sort(database_ids.begin(), database_ids.end());
    database_ids.erase(std::unique(database_ids.begin(), database_ids.end()),
                       database_ids.end());
    const std::map<std::string, Labels> database_labels =
        labels_ ? labels_(database_ids) : std::map<std::string, Labels>{};

    struct Point {
      double value = 0;
      absl::Time time = absl::InfinitePast();
    };
    // Counter families (a delta metric's running totals) by name.
    std::set<std::string> counters;
    // Metric name -> label set -> the newest sample (two series may meet
    // once their names are made acceptable to Prometheus).
    std::map<std::string, std::map<std::vector<ClientMetric::Label>, Point>>
        series;
    std::map<std::string, std::string> metric_of;
    std::map<std::string, absl::Time> newest;
    for (const LatestSample& sample : samples) {
      if (sample.metric.empty() || sample.database_id.empty()) continue;
      std::string name =
          absl::StrCat("ecliptix_db_", PrometheusMetricName(sample.metric));
      if (sample.counter) {
        // Prometheus' convention for a counter's name.
        if (!absl::EndsWith(name, "_total")) absl::StrAppend(&name, "_total");
        counters.insert(name);
      }
      metric_of.emplace(name, sample.metric);
      std::vector<ClientMetric::Label> labels;
      std::set<std::string> used;
      // The first comer keeps a name: database, then the database's labels,
      // then the sample's; a later one with the same name is exported as
      // exported_<name> (as Prometheus does with clashing target labels).
      auto add = [&](const std::string& key, const std::string& value) {
        std::string label = PrometheusLabelName(key);
        if (label.empty()) return;
        while (!used.insert(label).second) label = "exported_" + label;
        labels.push_back({label, value});
      };
      add("database", sample.database_id);
      if (auto it = database_labels.find(sample.database_id);
          it != database_labels.end()) {
        for (const auto& [key, value] : it->second) add(key, value);
      }
      for (const auto& [key, value] : sample.labels) add(key, value);
      Point& point = series[name][labels];
      if (sample.time >= point.time) {
        point = {sample.counter ? sample.total : sample.value, sample.time};
      }
      absl::Time& last =
          newest.try_emplace(sample.database_id, sample.time).first->second;
      last = std::max(last, sample.time);
    }

    std::vector<MetricFamily> families;
    for (const auto& [name, points] : series) {
      if (counters.count(name) > 0) {
        MetricFamily& family = families.emplace_back(NewFamily(
            name,
            absl::StrCat("The sum of every ", metric_of[name],
                         " amount each database's agent reported (a running "
                         "total kept by the server), with the database's "
                         "labels and the sample's."),
            MetricType::Counter));
        for (const auto& [labels, point] : points) {
          ClientMetric& metric = family.metric.emplace_back();
          metric.label = labels;
          metric.counter.value = point.value;
        }
        continue;
      }
      MetricFamily& family = families.emplace_back(NewFamily(
          name,
          absl::StrCat("The newest ", metric_of[name],
                       " sample each database's agent reported, with the "
                       "database's labels and the sample's."),
          MetricType::Gauge));
      for (const auto& [labels, point] : points)
        AddGauge(family, labels, point.value);
    }
    if (!newest.empty()) {
      MetricFamily& family = families.emplace_back(NewFamily(
          "ecliptix_fleet_last_sample_timestamp_seconds",
          "When each database's newest sample was taken (Unix time): how old "
          "its ecliptix_db_ figures are.",
          MetricType::Gauge));
      for (const auto& [database_id, time] : newest) {
        AddGauge(family, {{"database", database_id}},
                 absl::ToDoubleSeconds(time - absl::UnixEpoch()));
      }
    }
    return families;
  }

 private:
  mutable absl::Mutex mutex_;
  const FleetFigures* figures_ ABSL_GUARDED_BY(mutex_) = nullptr;
  PrometheusExporter::DatabaseLabelsReader labels_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace metrics_internal

namespace {

// civetweb reports why it could not start only through its log callback, on
// the thread that starts it: Start collects those lines here.
thread_local std::vector<std::string>* civet_start_messages = nullptr;

int CivetLog(const mg_connection*, const char* message) {
  if (civet_start_messages != nullptr) {
    civet_start_messages->push_back(message);
  } else {
    Logger("metrics")->warn("HTTP server: {}", message);
  }
  return 1;  // Handled: civetweb writes nothing itself.
}

const CivetCallbacks* CivetLogCallbacks() {
  static const CivetCallbacks* const kCallbacks = [] {
    auto* callbacks = new CivetCallbacks();
    callbacks->log_message = &CivetLog;
    return callbacks;
  }();
  return kCallbacks;
}

// HOST:PORT as civetweb's listening_ports wants it: an IPv4 address (a host
// name is resolved here) and a port. This civetweb build has no IPv6.
absl::StatusOr<std::string> CivetListenAddress(const std::string& address) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\" ", why,
                     " (HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464)"));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return invalid("has no port");
  const std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  if (port_text.empty() ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return invalid("has no valid port");
  }
  if (host.empty()) return invalid("has no host");
  if (host.find(':') != std::string::npos || absl::StartsWith(host, "[")) {
    return invalid(
        "has a host that is not an IPv4 address or a name (the metrics "
        "server does not support IPv6)");
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int error = getaddrinfo(host.c_str(), nullptr, &hints, &found);
      error != 0 || found == nullptr) {
    return invalid(
        absl::StrCat("has a host that does not resolve to an IPv4 "
                     "address: ",
                     gai_strerror(error)));
  }
  char numeric[INET_ADDRSTRLEN] = {};
  const auto* ipv4 = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
  inet_ntop(AF_INET, &ipv4->sin_addr, numeric, sizeof(numeric));
  freeaddrinfo(found);
  return absl::StrCat(numeric, ":", port);
}

}  // namespace

PrometheusExporter::PrometheusExporter()
    : registry_(std::make_shared<prometheus::Registry>()),
      rpc_(std::make_shared<metrics_internal::RpcMetrics>(registry_)),
      store_writes_(
          std::make_shared<metrics_internal::StoreWriteMetrics>(registry_)),
      control_plane_(
          std::make_shared<metrics_internal::ControlPlaneCollectable>()),
      fleet_(std::make_shared<metrics_internal::FleetCollectable>()) {
  prometheus::BuildGauge()
      .Name("ecliptix_server_info")
      .Help("Always 1; the server's version as a label.")
      .Register(*registry_)
      .Add({{"version", kVersion}})
      .Set(1);
}

absl::StatusOr<std::unique_ptr<PrometheusExporter>> PrometheusExporter::Start(
    const std::string& listen_address) {
  absl::StatusOr<std::string> civet_address =
      CivetListenAddress(listen_address);
  if (!civet_address.ok()) return civet_address.status();
  std::unique_ptr<PrometheusExporter> exporter(new PrometheusExporter());
  std::vector<std::string> messages;
  civet_start_messages = &messages;
  // prometheus-cpp (civetweb) reports failures with exceptions: they end
  // here, as a status.
  try {
    exporter->exposer_ = std::make_unique<prometheus::Exposer>(
        *civet_address, /*num_threads=*/2, CivetLogCallbacks());
  } catch (const std::exception& error) {
    civet_start_messages = nullptr;
    // civetweb's own first line says why ("cannot bind to ...: 98 (Address
    // already in use)"); the exception only that it failed.
    return absl::UnavailableError(
        absl::StrCat("cannot serve Prometheus metrics on ", listen_address,
                     ": ", messages.empty() ? error.what() : messages[0]));
  }
  civet_start_messages = nullptr;
  const std::vector<int> ports = exporter->exposer_->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve Prometheus metrics on ", listen_address, ": no port"));
  }
  exporter->port_ = ports[0];
  exporter->exposer_->RegisterCollectable(exporter->registry_);
  exporter->exposer_->RegisterCollectable(exporter->control_plane_);
  exporter->exposer_->RegisterCollectable(exporter->fleet_);
  return exporter;
}

absl::Status PrometheusExporter::CheckListenAddress(
    const std::string& listen_address) {
  return CivetListenAddress(listen_address).status();
}

PrometheusExporter::~PrometheusExporter() { StopServing(); }

void PrometheusExporter::StopServing() { exposer_.reset(); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
PrometheusExporter::NewRpcInterceptorFactory() {
  return std::make_unique<metrics_internal::RpcInterceptorFactory>(rpc_);
}

std::function<void(const char*, absl::Duration)>
PrometheusExporter::StoreWriteObserver() {
  return
      [metrics = store_writes_](const char* operation, absl::Duration elapsed) {
        metrics->Observe(operation, elapsed);
      };
}

void PrometheusExporter::SetControlPlane(ControlPlaneReader reader) {
  control_plane_->Set(std::move(reader));
}

void PrometheusExporter::SetFleetFigures(const FleetFigures* figures,
                                         DatabaseLabelsReader labels) {
  fleet_->Set(figures, std::move(labels));
}

std::string PrometheusExporter::Render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const prometheus::Collectable* collectable :
       {static_cast<const prometheus::Collectable*>(control_plane_.get()),
        static_cast<const prometheus::Collectable*>(fleet_.get())}) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    std::move(more.begin(), more.end(), std::back_inserter(families));
  }
  return prometheus::TextSerializer().Serialize(families);
}

namespace {

std::string SanitizedName(const std::string& name, bool colon_allowed) {
  std::string result;
  result.reserve(name.size() + 1);
  for (char c : name) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                    c == '_' || (colon_allowed && c == ':');
    result.push_back(ok ? c : '_');
  }
  if (!result.empty() &&
      absl::ascii_isdigit(static_cast<unsigned char>(result[0])))
    result.insert(result.begin(), '_');
  return result;
}

}  // namespace

std::string PrometheusMetricName(const std::string& name) {
  return SanitizedName(name, /*colon_allowed=*/true);
}

std::string PrometheusLabelName(const std::string& name) {
  std::string result = SanitizedName(name, /*colon_allowed=*/false);
  // Names starting with "__" are Prometheus's own.
  while (absl::StartsWith(result, "__")) result.erase(0, 1);
  return result;
}

}  // namespace ecliptix::server
