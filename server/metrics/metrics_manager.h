// The metrics core. Ingestion: agents' metric batches come from the registry
// (never through the rollout orchestrator's queue) into a bounded queue; a
// writer thread of its own stores them in the MetricStore, many batches per
// transaction, and acknowledges each agent process's highest stored batch on
// its database's stream. When the queue is full the streams that bring more
// are not read until it is down to half (flow control), so memory stays
// bounded however fast agents send. Retention runs on the same thread, a few
// thousand series per step between writes. Queries (MetricsService) run on a
// query thread, never on a gRPC thread: selectors are resolved through the
// registry, metric kinds come from the metrics the server knows and from the
// uploaded bundles' collectors. No gRPC here.
#ifndef ECLIPTIX_SERVER_METRICS_METRICS_MANAGER_H_
#define ECLIPTIX_SERVER_METRICS_METRICS_MANAGER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "ecliptix/fleet/v1/metrics.pb.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/metrics/metric_store.h"

namespace ecliptix::server {

struct MetricsOptions {
  // Raw samples are kept this long; QuerySeries reads them for ranges that
  // start within it.
  absl::Duration raw_retention = absl::Hours(24);
  // Minute and hour rollups are kept this long.
  absl::Duration rollup_retention = absl::Hours(24 * 30);
  // How often a retention round starts (each round walks every series).
  absl::Duration retention_period = absl::Minutes(5);
  // Series per retention step (one transaction deleting one hour of their
  // rows); writes go on between steps.
  int retention_series_per_step = 5000;
  // Series rolled up per step (one transaction), between writes.
  int rollup_series_per_step = 5000;
  // How often the latest value of each series is saved (for the next start;
  // memory has them exactly).
  absl::Duration latest_save_period = absl::Seconds(30);
  // Samples waiting to be stored, at most (plus one batch per stream): past
  // it, streams that bring more are held until the queue is half empty.
  size_t max_queued_samples = 200'000;
  // Samples per transaction, at most (a batch is never split). Bounds how
  // long other writers of a SQLite store wait for its lock.
  size_t max_samples_per_transaction = 50'000;
  // Queries waiting for the query thread, at most: past it RESOURCE_EXHAUSTED.
  size_t max_queued_queries = 64;
};

// What ingestion did since the start.
struct IngestStats {
  int64_t batches_stored = 0;
  int64_t batches_repeated = 0;
  int64_t batches_refused = 0;
  int64_t samples_stored = 0;
  int64_t samples_refused = 0;
  int64_t transactions = 0;
  int64_t write_failures = 0;
  // Times a stream was held because the queue was full.
  int64_t streams_held = 0;
};

class MetricsManager {
 public:
  template <typename T>
  using Callback = std::function<void(absl::StatusOr<T>)>;

  // None of the pointers is owned; `bundles` may be null (no declared
  // collectors), and `registry` too (no acknowledgements, selectors match
  // nothing but the empty one; for tests and benchmarks).
  MetricsManager(MetricStore* store, Registry* registry,
                 const BundleCatalog* bundles, Clock* clock,
                 MetricsOptions options);
  ~MetricsManager();

  // INVALID_ARGUMENT for options that make no sense (a raw retention longer
  // than the rollups'). Then takes metric batches from the registry and
  // starts the writer and query threads.
  absl::Status Start();
  // Stores what is queued, then stops both threads. Streams held by flow
  // control are read again; batches that come later are dropped
  // unacknowledged (agents send them again to the next server). Queued
  // queries are answered; later ones get UNAVAILABLE.
  void Stop();

  // A batch from the agent of `database_id`. Returns true when the caller may
  // read its stream on; false when the queue is full: `resume` is then called
  // once, from the writer thread, when there is room. A batch without
  // agent_instance or sequence is refused (logged, never acknowledged).
  bool Post(const std::string& database_id, const fleet::v1::MetricBatch& batch,
            std::function<void()> resume);
  // Returns once everything posted before the call is stored (or failed).
  void Flush();

  // MetricsService, answered on the query thread.
  void QuerySeries(fleet::v1::QuerySeriesRequest request,
                   Callback<fleet::v1::QuerySeriesResponse> done);
  void TopProcedures(fleet::v1::TopProceduresRequest request,
                     Callback<fleet::v1::TopProceduresResponse> done);
  void GetRate(fleet::v1::GetRateRequest request,
               Callback<fleet::v1::GetRateResponse> done);

  // The same on the calling thread. INVALID_ARGUMENT names the field.
  absl::StatusOr<fleet::v1::QuerySeriesResponse> QuerySeriesNow(
      const fleet::v1::QuerySeriesRequest& request);
  absl::StatusOr<fleet::v1::TopProceduresResponse> TopProceduresNow(
      const fleet::v1::TopProceduresRequest& request);
  absl::StatusOr<fleet::v1::GetRateResponse> GetRateNow(
      const fleet::v1::GetRateRequest& request);

  // Rolls up every hour over, then a whole retention round, now, on the
  // calling thread (the writer thread does the same in steps).
  absl::Status EnforceRetentionNow();

  // How a metric's values combine: deltas are summed per step, gauges
  // averaged. The metrics the server's queries use, then those declared by
  // uploaded bundles' collectors, then any stored metric (a gauge).
  // INVALID_ARGUMENT for a metric nobody knows.
  absl::StatusOr<fleet::v1::MetricKind> KindOf(const std::string& metric) const;

  // GetRateNow of `rate` ("errors", "failed_logins", "suspicious_activity")
  // over [start, end) on `databases` (nullopt: every database) instead of a
  // selector and the last `range`: what the health report and the rollouts'
  // success gate read for windows that do not end now.
  absl::StatusOr<fleet::v1::GetRateResponse> GetRateBetween(
      const std::string& rate,
      const std::optional<std::set<std::string>>& databases, absl::Time start,
      absl::Time end);

  // Runs `task` on the query thread, or fails `refuse` at once (for cores
  // built on the manager's queries, such as the health report).
  void PostQuery(std::function<void()> task,
                 std::function<void(absl::Status)> refuse);
  // The databases a selector picks; nullopt for every database (empty
  // selector). INVALID_ARGUMENT "selector: ..." for a bad one.
  absl::StatusOr<std::optional<std::set<std::string>>> SelectDatabases(
      const std::string& selector) const;

  IngestStats stats() const;
  MetricStore& store() { return *store_; }
  Clock* clock() const { return clock_; }

 private:
  struct Queued {
    IncomingBatch batch;
    size_t samples;
  };

  void WriterLoop();
  // Stores `work`, retrying with backoff while the store fails and the
  // manager is not stopping; then sends the acknowledgements.
  void Store(const std::vector<IncomingBatch>& work);
  // One retention step; true when the round is complete.
  bool RetentionStep();
  // MetricStore::SaveLatestValues, errors logged.
  void SaveLatestValues();
  void QueryLoop();

  MetricStore* const store_;
  Registry* const registry_;
  const BundleCatalog* const bundles_;
  Clock* const clock_;
  const MetricsOptions options_;

  mutable absl::Mutex mutex_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mutex_);
  size_t queued_samples_ ABSL_GUARDED_BY(mutex_) = 0;
  std::vector<std::function<void()>> held_ ABSL_GUARDED_BY(mutex_);
  // Batches taken by the writer and not yet stored.
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  IngestStats stats_ ABSL_GUARDED_BY(mutex_);
  std::thread writer_;

  mutable absl::Mutex query_mutex_;
  std::deque<std::function<void()>> queries_ ABSL_GUARDED_BY(query_mutex_);
  bool queries_running_ ABSL_GUARDED_BY(query_mutex_) = false;
  bool queries_stopping_ ABSL_GUARDED_BY(query_mutex_) = false;
  std::thread query_thread_;

  // The retention round in progress (writer thread only).
  int64_t retention_cursor_ = 0;
  bool retention_running_ = false;
  // Hours over wait to be rolled up (writer thread only).
  bool rollup_pending_ = false;
  absl::Time next_retention_;
  absl::Time next_latest_save_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_METRICS_MANAGER_H_
