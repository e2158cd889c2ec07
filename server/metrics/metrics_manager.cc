#include "server/metrics/metrics_manager.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/required_field.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// The metrics the server's own queries read (see TopProceduresNow and
// GetRateNow), with how they combine.
const std::map<std::string, v1::MetricKind>& KnownMetrics() {
  static const auto* known = new std::map<std::string, v1::MetricKind>{
      {"procedure_calls", v1::METRIC_KIND_DELTA},
      {"procedure_execution_ms", v1::METRIC_KIND_DELTA},
      {"procedure_max_ms", v1::METRIC_KIND_GAUGE},
      {"procedure_errors", v1::METRIC_KIND_DELTA},
      // Counted by the agent itself (agent/metrics/operation_calls.h).
      {"operation_calls", v1::METRIC_KIND_DELTA},
      {"operation_failures", v1::METRIC_KIND_DELTA},
      {"auth_events", v1::METRIC_KIND_DELTA},
      {"table_rows", v1::METRIC_KIND_GAUGE},
      {"database_size_bytes", v1::METRIC_KIND_GAUGE},
  };
  return *known;
}

constexpr int kMaxTopLimit = 1000;
constexpr int kTargetPoints = 120;

// The smallest of these at least `wanted` (then whole days): steps people
// read easily and that line up from one query to the next.
absl::Duration NiceStep(absl::Duration wanted) {
  static const absl::Duration kSteps[] = {
      absl::Seconds(1),  absl::Seconds(2),  absl::Seconds(5),
      absl::Seconds(10), absl::Seconds(15), absl::Seconds(30),
      absl::Minutes(1),  absl::Minutes(2),  absl::Minutes(5),
      absl::Minutes(10), absl::Minutes(15), absl::Minutes(30),
      absl::Hours(1),    absl::Hours(2),    absl::Hours(3),
      absl::Hours(6),    absl::Hours(12),   absl::Hours(24)};
  for (absl::Duration step : kSteps) {
    if (step >= wanted) return step;
  }
  return absl::Hours(24) * std::ceil(wanted / absl::Hours(24));
}

absl::Duration RoundUp(absl::Duration duration, absl::Duration unit) {
  const int64_t units = absl::IDivDuration(duration, unit, &duration);
  return unit * (units + (duration > absl::ZeroDuration() ? 1 : 0));
}

}  // namespace

MetricsManager::MetricsManager(MetricStore* store, Registry* registry,
                               const BundleCatalog* bundles, Clock* clock,
                               MetricsOptions options)
    : store_(store),
      registry_(registry),
      bundles_(bundles),
      clock_(clock),
      options_(options) {}

MetricsManager::~MetricsManager() { Stop(); }

absl::Status MetricsManager::Start() {
  if (options_.raw_retention <= absl::ZeroDuration() ||
      options_.rollup_retention < options_.raw_retention) {
    return absl::InvalidArgumentError(
        "metrics: the raw retention must be positive and the rollup retention "
        "at least as long");
  }
  if (options_.max_queued_samples == 0 ||
      options_.max_samples_per_transaction == 0 ||
      options_.retention_series_per_step <= 0) {
    return absl::InvalidArgumentError("metrics: queue sizes must be positive");
  }
  {
    absl::MutexLock lock(&mutex_);
    if (started_) return absl::OkStatus();
    started_ = true;
  }
  if (registry_ != nullptr) {
    registry_->SetMetricBatchObserver([this](const std::string& database_id,
                                             const v1::MetricBatch& batch,
                                             std::function<void()> resume) {
      return Post(database_id, batch, std::move(resume));
    });
  }
  next_retention_ = absl::Now() + options_.retention_period;
  next_latest_save_ = absl::Now() + options_.latest_save_period;
  {
    absl::MutexLock lock(&query_mutex_);
    queries_running_ = true;
  }
  writer_ = std::thread([this] { WriterLoop(); });
  query_thread_ = std::thread([this] { QueryLoop(); });
  Logger("metrics")->info("metrics: raw samples kept {}, rollups {}",
                          absl::FormatDuration(options_.raw_retention),
                          absl::FormatDuration(options_.rollup_retention));
  return absl::OkStatus();
}

void MetricsManager::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (registry_ != nullptr) registry_->SetMetricBatchObserver(nullptr);
  // The writer stores what is queued, then ends.
  if (writer_.joinable()) writer_.join();
  std::vector<std::function<void()>> held;
  {
    absl::MutexLock lock(&mutex_);
    held.swap(held_);
  }
  for (auto& resume : held) resume();
  {
    // Queries already queued still run; later ones are refused.
    absl::MutexLock lock(&query_mutex_);
    queries_stopping_ = true;
  }
  if (query_thread_.joinable()) query_thread_.join();
}

bool MetricsManager::Post(const std::string& database_id,
                          const v1::MetricBatch& batch,
                          std::function<void()> resume) {
  if (batch.agent_instance().empty() || batch.sequence() == 0) {
    Logger("metrics")->warn(
        "database {}: a metric batch without {} refused", database_id,
        batch.agent_instance().empty() ? "agent_instance" : "sequence");
    absl::MutexLock lock(&mutex_);
    ++stats_.batches_refused;
    return true;
  }
  absl::MutexLock lock(&mutex_);
  if (stopping_ || !started_) return true;
  const size_t samples = std::max<size_t>(1, batch.samples_size());
  // Taken even when full: it was read already. The stream then waits, so
  // each stream adds one batch at most beyond the bound.
  queue_.push_back({{database_id, batch}, samples});
  queued_samples_ += samples;
  if (queued_samples_ < options_.max_queued_samples) return true;
  held_.push_back(std::move(resume));
  ++stats_.streams_held;
  return false;
}

void MetricsManager::Flush() {
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return (queue_.empty() && !writing_) || !started_;
  };
  mutex_.Await(absl::Condition(&idle));
}

void MetricsManager::WriterLoop() {
  for (;;) {
    std::vector<IncomingBatch> work;
    std::vector<std::function<void()>> resumed;
    bool stopping;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !queue_.empty();
      };
      mutex_.AwaitWithDeadline(
          absl::Condition(&ready),
          retention_running_ || rollup_pending_
              ? absl::Now()
              : std::min(next_retention_, next_latest_save_));
      stopping = stopping_;
      size_t samples = 0;
      while (!queue_.empty() &&
             (work.empty() || samples + queue_.front().samples <=
                                  options_.max_samples_per_transaction)) {
        samples += queue_.front().samples;
        work.push_back(std::move(queue_.front().batch));
        queue_.pop_front();
      }
      queued_samples_ -= samples;
      // Room again: held streams are read on (at half, not at the first
      // free slot, so that a stream is not held and resumed per batch).
      if (queued_samples_ <= options_.max_queued_samples / 2 || stopping) {
        resumed.swap(held_);
      }
      writing_ = !work.empty();
      if (work.empty() && stopping) break;
    }
    for (auto& resume : resumed) resume();
    if (!work.empty()) {
      Store(work);
      absl::MutexLock lock(&mutex_);
      writing_ = false;
    }
    if (stopping) continue;
    // Rolling up keeps writes cheap (they store raw samples only): a step
    // between writes, and at once again while there is more.
    absl::StatusOr<bool> more =
        store_->RollUp(clock_->Now(), options_.rollup_series_per_step);
    if (!more.ok()) {
      Logger("metrics")->error("metric rollups: {}", more.status().ToString());
    }
    rollup_pending_ = more.ok() && *more;
    if (absl::Now() >= next_latest_save_) {
      SaveLatestValues();
      next_latest_save_ = absl::Now() + options_.latest_save_period;
    }
    if (retention_running_ || absl::Now() >= next_retention_) {
      retention_running_ = true;
      if (RetentionStep()) {
        retention_running_ = false;
        next_retention_ = absl::Now() + options_.retention_period;
      }
    }
  }
  // Everything is stored: the latest values too, for the next start.
  SaveLatestValues();
}

void MetricsManager::SaveLatestValues() {
  if (absl::Status status = store_->SaveLatestValues(); !status.ok()) {
    Logger("metrics")->error("metric latest values: {}", status.ToString());
  }
}

void MetricsManager::Store(const std::vector<IncomingBatch>& work) {
  absl::Duration backoff = absl::Seconds(1);
  for (;;) {
    absl::StatusOr<WriteSummary> summary = store_->Write(work, clock_->Now());
    if (summary.ok()) {
      {
        absl::MutexLock lock(&mutex_);
        stats_.batches_stored += summary->batches_stored;
        stats_.batches_repeated += summary->batches_repeated;
        stats_.samples_stored += summary->samples_stored;
        stats_.samples_refused += summary->samples_refused;
        ++stats_.transactions;
      }
      if (summary->samples_refused > 0) {
        Logger("metrics")->warn("{} metric samples refused; the first: {}",
                                summary->samples_refused,
                                summary->first_refusal);
      }
      if (summary->samples_dropped_by_agents > 0) {
        Logger("metrics")->warn(
            "agents report {} metric samples dropped while this server was "
            "away (their buffers were full)",
            summary->samples_dropped_by_agents);
      }
      if (registry_ != nullptr) {
        for (AckFor& ack : summary->acks) {
          // A database whose agent went away gets its batches again, and
          // their acknowledgement, after it reconnects.
          registry_->SendMetricAck(ack.database_id, std::move(ack.ack))
              .IgnoreError();
        }
      }
      return;
    }
    Logger("metrics")->error(
        "could not store {} metric batches (retrying in {}): {}", work.size(),
        absl::FormatDuration(backoff), summary.status().ToString());
    absl::MutexLock lock(&mutex_);
    ++stats_.write_failures;
    if (stopping_) {
      Logger("metrics")->warn(
          "{} metric batches not stored; their agents send them again",
          work.size());
      return;
    }
    // Meanwhile the queue fills and holds the streams: agents keep their
    // batches.
    mutex_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, absl::Seconds(30));
  }
}

bool MetricsManager::RetentionStep() {
  const absl::Time now = clock_->Now();
  absl::StatusOr<bool> done = store_->EnforceRetention(
      now - options_.raw_retention, now - options_.rollup_retention,
      &retention_cursor_, options_.retention_series_per_step);
  if (!done.ok()) {
    Logger("metrics")->error("metric retention: {}", done.status().ToString());
    retention_cursor_ = 0;
    return true;
  }
  return *done;
}

absl::Status MetricsManager::EnforceRetentionNow() {
  const absl::Time now = clock_->Now();
  // Raw samples go only once rolled up.
  RETURN_IF_ERROR(store_->RollUpAll(now));
  int64_t cursor = 0;
  for (;;) {
    ASSIGN_OR_RETURN(bool done, store_->EnforceRetention(
                                    now - options_.raw_retention,
                                    now - options_.rollup_retention, &cursor,
                                    options_.retention_series_per_step));
    if (done) return absl::OkStatus();
  }
}

IngestStats MetricsManager::stats() const {
  absl::MutexLock lock(&mutex_);
  return stats_;
}

void MetricsManager::QueryLoop() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&query_mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(query_mutex_) {
        return queries_stopping_ || !queries_.empty();
      };
      query_mutex_.Await(absl::Condition(&ready));
      if (queries_.empty()) return;
      task = std::move(queries_.front());
      queries_.pop_front();
    }
    task();
  }
}

void MetricsManager::PostQuery(std::function<void()> task,
                               std::function<void(absl::Status)> refuse) {
  absl::Status refusal;
  {
    absl::MutexLock lock(&query_mutex_);
    if (queries_stopping_ || !queries_running_) {
      refusal = absl::UnavailableError(
          "the metrics service is stopping or not started; try again");
    } else if (queries_.size() >= options_.max_queued_queries) {
      refusal = absl::ResourceExhaustedError(absl::StrCat(
          options_.max_queued_queries,
          " metric queries are waiting already; try again shortly"));
    } else {
      queries_.push_back(std::move(task));
      return;
    }
  }
  refuse(refusal);
}

void MetricsManager::QuerySeries(v1::QuerySeriesRequest request,
                                 Callback<v1::QuerySeriesResponse> done) {
  PostQuery([this, request = std::move(request),
             done]() { done(QuerySeriesNow(request)); },
            [done](absl::Status status) { done(status); });
}

void MetricsManager::TopProcedures(v1::TopProceduresRequest request,
                                   Callback<v1::TopProceduresResponse> done) {
  PostQuery([this, request = std::move(request),
             done]() { done(TopProceduresNow(request)); },
            [done](absl::Status status) { done(status); });
}

void MetricsManager::GetRate(v1::GetRateRequest request,
                             Callback<v1::GetRateResponse> done) {
  PostQuery([this, request = std::move(request),
             done]() { done(GetRateNow(request)); },
            [done](absl::Status status) { done(status); });
}

absl::StatusOr<v1::MetricKind> MetricsManager::KindOf(
    const std::string& metric) const {
  if (auto known = KnownMetrics().find(metric); known != KnownMetrics().end()) {
    return known->second;
  }
  if (bundles_ != nullptr) {
    v1::ListBundlesRequest request;
    request.set_page_size(1000);
    for (;;) {
      absl::StatusOr<v1::ListBundlesResponse> page = bundles_->List(request);
      if (!page.ok()) break;
      for (const v1::BundleInfo& bundle : page->bundles()) {
        for (const v1::MetricCollector& collector :
             bundle.manifest().collectors()) {
          for (const v1::MetricColumn& column : collector.values()) {
            if (column.metric() != metric) continue;
            return column.kind() == v1::METRIC_KIND_DELTA
                       ? v1::METRIC_KIND_DELTA
                       : v1::METRIC_KIND_GAUGE;
          }
        }
      }
      if (page->next_page_token().empty()) break;
      request.set_page_token(page->next_page_token());
    }
  }
  if (store_->HasMetric(metric)) return v1::METRIC_KIND_GAUGE;
  std::vector<std::string> names;
  for (const auto& [name, kind] : KnownMetrics()) names.push_back(name);
  return absl::InvalidArgumentError(absl::StrCat(
      "metric: \"", metric,
      "\" is not collected by any agent nor declared by an uploaded bundle; "
      "the server's own: ",
      absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::optional<std::set<std::string>>>
MetricsManager::SelectDatabases(const std::string& selector) const {
  if (absl::StripAsciiWhitespace(selector).empty()) {
    return std::optional<std::set<std::string>>();
  }
  std::set<std::string> ids;
  if (registry_ == nullptr) return std::optional<std::set<std::string>>(ids);
  absl::StatusOr<std::vector<v1::Database>> databases =
      registry_->Select(selector);
  if (!databases.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("selector: ", databases.status().message()));
  }
  for (const v1::Database& database : *databases) {
    ids.insert(database.database_id());
  }
  return std::optional<std::set<std::string>>(std::move(ids));
}

absl::StatusOr<v1::QuerySeriesResponse> MetricsManager::QuerySeriesNow(
    const v1::QuerySeriesRequest& request) {
  if (request.metric().empty()) {
    return RequiredFieldError("metric", "e.g. procedure_calls");
  }
  ASSIGN_OR_RETURN(v1::MetricKind kind, KindOf(request.metric()));
  SeriesFilter filter;
  filter.metric = request.metric();
  filter.labels = Labels(request.labels().begin(), request.labels().end());
  ASSIGN_OR_RETURN(filter.databases, SelectDatabases(request.selector()));
  const absl::Time now = clock_->Now();
  const absl::Time end =
      request.has_end_time() ? FromProtoTimestamp(request.end_time()) : now;
  const absl::Time start = request.has_start_time()
                               ? FromProtoTimestamp(request.start_time())
                               : end - absl::Hours(1);
  if (start >= end) {
    return absl::InvalidArgumentError(
        "start_time: must be before end_time (unset end_time means now, "
        "unset start_time an hour before end_time)");
  }
  absl::Duration step = FromProtoDuration(request.step());
  if (step < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("step: must not be negative");
  }
  // Raw samples while the range is within their retention, rollups before.
  const bool raw = start >= now - options_.raw_retention;
  if (step == absl::ZeroDuration()) {
    step = NiceStep((end - start) / kTargetPoints);
  }
  Resolution resolution = Resolution::kRaw;
  if (raw) {
    step =
        std::max(RoundUp(step, absl::Microseconds(1)), absl::Microseconds(1));
  } else {
    step = RoundUp(step, absl::Minutes(1));
    resolution = step % absl::Hours(1) == absl::ZeroDuration()
                     ? Resolution::kHour
                     : Resolution::kMinute;
  }
  ASSIGN_OR_RETURN(
      std::vector<SeriesPoints> found,
      store_->QueryPoints(filter, start, end, step,
                          kind == v1::METRIC_KIND_GAUGE, resolution));
  v1::QuerySeriesResponse response;
  *response.mutable_step() = ToProtoDuration(step);
  for (const SeriesPoints& points : found) {
    v1::Series* series = response.add_series();
    series->set_database_id(points.database_id);
    series->mutable_labels()->insert(points.labels.begin(),
                                     points.labels.end());
    for (const Point& point : points.points) {
      v1::SeriesPoint* added = series->add_points();
      *added->mutable_time() = ToProtoTimestamp(point.time);
      added->set_value(point.value);
    }
  }
  return response;
}

absl::StatusOr<v1::TopProceduresResponse> MetricsManager::TopProceduresNow(
    const v1::TopProceduresRequest& request) {
  absl::Duration range = FromProtoDuration(request.range());
  if (range < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("range: must not be negative");
  }
  if (range == absl::ZeroDuration()) range = absl::Hours(24);
  if (request.limit() < 0 || request.limit() > kMaxTopLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit: from 0 (meaning 10) to ", kMaxTopLimit));
  }
  const int limit = request.limit() == 0 ? 10 : request.limit();
  enum class Order { kAvg, kMax, kCalls } order;
  const std::string order_by = absl::AsciiStrToLower(request.order_by());
  if (order_by.empty() || order_by == "avg") {
    order = Order::kAvg;
  } else if (order_by == "max") {
    order = Order::kMax;
  } else if (order_by == "calls") {
    order = Order::kCalls;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "order_by: \"", request.order_by(), "\" is not avg, max or calls"));
  }
  ASSIGN_OR_RETURN(std::optional<std::set<std::string>> databases,
                   SelectDatabases(request.selector()));
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(
      Totals totals,
      store_->QueryTotals({"procedure_calls", "procedure_execution_ms",
                           "procedure_max_ms", "procedure_errors"},
                          databases, now - range, now, now));
  struct Figures {
    double calls = 0;
    double execution_ms = 0;
    double max_ms = 0;
    double errors = 0;
  };
  // By database (empty fleet-wide) and procedure.
  absl::flat_hash_map<std::pair<std::string, std::string>, Figures>
      by_procedure;
  for (const SeriesTotal& total : totals.series) {
    auto procedure = total.labels->find("procedure");
    if (procedure == total.labels->end()) continue;
    Figures& figures = by_procedure[{
        request.per_database() ? total.database_id : "", procedure->second}];
    if (total.metric == "procedure_calls") {
      figures.calls += total.sum;
    } else if (total.metric == "procedure_execution_ms") {
      figures.execution_ms += total.sum;
    } else if (total.metric == "procedure_max_ms") {
      figures.max_ms = std::max(figures.max_ms, total.max);
    } else {
      figures.errors += total.sum;
    }
  }
  struct Row {
    const std::pair<std::string, std::string>* key;
    int64_t calls;
    double avg_ms;
    double max_ms;
    int64_t errors;
  };
  std::vector<Row> rows;
  rows.reserve(by_procedure.size());
  for (const auto& [key, figures] : by_procedure) {
    rows.push_back(
        {&key, static_cast<int64_t>(std::llround(figures.calls)),
         figures.calls > 0 ? figures.execution_ms / figures.calls : 0,
         figures.max_ms, static_cast<int64_t>(std::llround(figures.errors))});
  }
  auto figure = [order](const Row& row) {
    switch (order) {
      case Order::kAvg:
        return row.avg_ms;
      case Order::kMax:
        return row.max_ms;
      case Order::kCalls:
        return static_cast<double>(row.calls);
    }
    return 0.0;
  };
  // Slowest first; ties by calls, then names, so the order is stable. Only
  // the first `limit` are put in order.
  const size_t shown = std::min(rows.size(), static_cast<size_t>(limit));
  std::partial_sort(rows.begin(), rows.begin() + shown, rows.end(),
                    [&](const Row& a, const Row& b) {
                      if (figure(a) != figure(b)) return figure(a) > figure(b);
                      if (a.calls != b.calls) return a.calls > b.calls;
                      return *a.key < *b.key;
                    });
  v1::TopProceduresResponse response;
  for (size_t i = 0; i < shown; ++i) {
    v1::ProcedureFigures* row = response.add_procedures();
    row->set_database_id(rows[i].key->first);
    row->set_procedure(rows[i].key->second);
    row->set_calls(rows[i].calls);
    row->set_avg_ms(rows[i].avg_ms);
    row->set_max_ms(rows[i].max_ms);
    row->set_errors(rows[i].errors);
  }
  return response;
}

namespace {

// The AuditLog event a rate counts; empty for "errors" (failed calls).
absl::StatusOr<std::string> RateEvent(const std::string& requested) {
  const std::string rate = absl::AsciiStrToLower(requested);
  if (rate == "failed_logins") return std::string("LOGIN_FAILED");
  if (rate == "suspicious_activity") return std::string("SUSPICIOUS_ACTIVITY");
  if (rate == "errors") return std::string();
  return absl::InvalidArgumentError(
      absl::StrCat("rate: \"", requested,
                   "\" is not errors, failed_logins or suspicious_activity"));
}

}  // namespace

absl::StatusOr<v1::GetRateResponse> MetricsManager::GetRateNow(
    const v1::GetRateRequest& request) {
  if (request.rate().empty()) {
    return RequiredFieldError("rate",
                              "errors, failed_logins or suspicious_activity");
  }
  // An unknown rate is named before the selector is looked at.
  RETURN_IF_ERROR(RateEvent(request.rate()).status());
  absl::Duration range = FromProtoDuration(request.range());
  if (range < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("range: must not be negative");
  }
  if (range == absl::ZeroDuration()) range = absl::Hours(1);
  ASSIGN_OR_RETURN(std::optional<std::set<std::string>> databases,
                   SelectDatabases(request.selector()));
  const absl::Time end = clock_->Now();
  return GetRateBetween(request.rate(), databases, end - range, end);
}

absl::StatusOr<v1::GetRateResponse> MetricsManager::GetRateBetween(
    const std::string& rate,
    const std::optional<std::set<std::string>>& databases, absl::Time start,
    absl::Time end) {
  ASSIGN_OR_RETURN(const std::string event, RateEvent(rate));
  const absl::Time now = clock_->Now();
  v1::GetRateResponse response;
  if (event.empty()) {
    // Failed calls per call. Where the agent reports operation calls
    // (operation_calls / operation_failures, counted by the agent's executor
    // because a refused call is rolled back whole on PostgreSQL and SQLite,
    // ErrorLog row included), those are the figures; otherwise the bundle's
    // procedure_errors (ErrorLog) per procedure_calls (PerformanceMetrics).
    ASSIGN_OR_RETURN(
        Totals totals,
        store_->QueryTotals({"procedure_calls", "procedure_errors",
                             "operation_calls", "operation_failures"},
                            databases, start, end, now));
    struct Counts {
      double procedure_calls = 0, procedure_errors = 0;
      double operation_calls = 0, operation_failures = 0;
      bool reports_operations = false;
    };
    std::map<std::string, Counts> by_database;
    for (const SeriesTotal& total : totals.series) {
      Counts& counts = by_database[total.database_id];
      if (total.metric == "procedure_calls") {
        counts.procedure_calls += total.sum;
      } else if (total.metric == "procedure_errors") {
        counts.procedure_errors += total.sum;
      } else if (total.metric == "operation_calls") {
        counts.operation_calls += total.sum;
        counts.reports_operations = true;
      } else {
        counts.operation_failures += total.sum;
        counts.reports_operations = true;
      }
    }
    double calls = 0, errors = 0;
    for (const auto& [database_id, counts] : by_database) {
      const double database_calls = counts.reports_operations
                                        ? counts.operation_calls
                                        : counts.procedure_calls;
      const double database_errors = counts.reports_operations
                                         ? counts.operation_failures
                                         : counts.procedure_errors;
      calls += database_calls;
      errors += database_errors;
      // Without calls there is no rate to speak of.
      if (database_calls > 0) {
        (*response.mutable_by_database())[database_id] =
            database_errors / database_calls;
      }
    }
    response.set_fleet(calls > 0 ? errors / calls : 0);
    response.set_unit("failed calls per call");
    return response;
  }
  ASSIGN_OR_RETURN(
      Totals totals,
      store_->QueryTotals({"auth_events"}, databases, start, end, now));
  const double minutes =
      std::max(1.0, absl::ToDoubleMinutes(totals.end - totals.start));
  double all = 0;
  for (const SeriesTotal& total : totals.series) {
    // Every database that reported authentication events has a rate, 0 when
    // none of them was this one.
    double& value = (*response.mutable_by_database())[total.database_id];
    auto label = total.labels->find("event");
    if (label == total.labels->end() || label->second != event) continue;
    value += total.sum / minutes;
    all += total.sum;
  }
  response.set_fleet(all / minutes);
  response.set_unit("per minute");
  return response;
}

}  // namespace ecliptix::server
