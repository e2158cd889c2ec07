// MetricsCollector: runs the metric collectors of the bundle applied on the
// agent's database, each on its interval, and hands the samples to a sink
// (the MetricSender).
//
// Which bundle: the newest bundle id among the steps in effect in the schema
// history (ecliptix_schema_history), fetched through the BundleSource and
// re-read whenever that id changes; nothing is collected while no bundle is
// applied, nor when the bundle has no SQL for the engine.
//
// Each cycle (a wake-up where at least one collector is due) reads, once, the
// bundle's configuration key Monitoring.EnableMetrics through its get
// operation: '0' turns collection off until it reads otherwise (any other
// value, a missing key, or a bundle without that key leaves it on).
//
// A collector runs its query for the database's dialect on a read-only
// session of its own (executor/read_only_session.h), opened for that run and
// closed after it, so it never writes and runs beside deployments and jobs.
// Each row gives one sample per value column (NULL: no sample), labelled
// from the label columns (NULL: no such label), stamped with the time of the
// collection. Result columns are matched without regard to case.
//
// Incremental collectors (cursor_column set) get :Cursor bound as an integer:
// the highest value of the cursor column counted so far. After a run the new
// highest value is stored in the agent's table ecliptix_metric_cursors (on a
// writable connection of the collector's own) before the samples are handed
// on, so a restarted agent neither counts a row twice nor skips one. When
// storing fails the samples are dropped and the next run reads the same rows
// again. The first run of a collector that has no stored cursor starts from
// the rows' current highest value, counting nothing (the existing rows are
// history, not the last interval's activity), unless count_existing_rows is
// set.
//
// Beside the bundle's collectors the agent runs one of its own,
// operation_calls (operation_calls.h), every 60 s (scaled), while a bundle is
// applied and Monitoring.EnableMetrics allows: the calls of bundle operations
// the executor counted and their failures, on the collector's writable
// connection.
//
// A collector that fails (an error of the database, a column missing from
// the result, a cursor that is not an integer) is logged and tried again on
// its next interval; the others run regardless.
#ifndef ECLIPTIX_AGENT_METRICS_COLLECTOR_H_
#define ECLIPTIX_AGENT_METRICS_COLLECTOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/bundle_source.h"
#include "agent/executor/read_only_session.h"
#include "agent/metrics/cursor_store.h"
#include "agent/metrics/metric_sender.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/metrics.pb.h"

namespace ecliptix::agent {

// The configuration key that turns collection off when '0'.
inline constexpr char kEnableMetricsKey[] = "Monitoring.EnableMetrics";

struct MetricsCollectorOptions {
  // The agent's database (credentials included; never shown).
  std::string database_url;
  // Where bundles come from. Not owned.
  BundleSource* bundles = nullptr;
  // Where samples go. Not owned.
  MetricSink* sink = nullptr;
  // Each collector runs every interval * scale (e.g. 0.05: a 60 s collector
  // every 3 s). Positive.
  double interval_scale = 1.0;
  // The first run of an incremental collector counts every existing row.
  bool count_existing_rows = false;
  // How often to look again for an applied bundle while there is none or it
  // cannot be had (scaled too).
  absl::Duration bundle_poll_interval = absl::Seconds(60);
  // Deadline of each read-only session (state reads, one collector's query).
  absl::Duration query_timeout = absl::Seconds(30);
  // nullptr: the real clock. The thread (Start) waits in real time; tests
  // with a fake clock call CollectDue() / CollectAll() instead.
  Clock* clock = nullptr;
};

// What one cycle did (for logs and tests).
struct CycleReport {
  // The bundle applied on the database; empty when none.
  std::string bundle_id;
  // False when Monitoring.EnableMetrics was '0' (nothing ran then).
  bool enabled = true;
  // Collectors run, and the samples they handed on.
  std::vector<std::string> collectors_run;
  std::vector<fleet::v1::MetricSample> samples;
  // Collectors that failed, "<name>: <error>"; and failures of the cycle
  // itself (opening a session, reading the history, fetching the bundle).
  std::vector<std::string> errors;
  // When the next collector is due.
  absl::Time next_due = absl::InfiniteFuture();
};

class MetricsCollector {
 public:
  // INVALID_ARGUMENT for options out of range (no URL, sink or bundle source,
  // a scale that is not positive).
  static absl::StatusOr<std::unique_ptr<MetricsCollector>> Create(
      MetricsCollectorOptions options);
  // Stops the thread if it runs.
  ~MetricsCollector();

  MetricsCollector(const MetricsCollector&) = delete;
  MetricsCollector& operator=(const MetricsCollector&) = delete;

  // Runs the cycles on a thread of its own until Stop().
  void Start();
  // Interrupts what runs and joins the thread. Idempotent; any thread.
  void Stop();
  // Makes the thread run a cycle now rather than at its next due time, one
  // that looks at the applied bundle again even when no collector is due (the
  // server came back: a bundle that could not be fetched can be now; a
  // deployment finished: a new bundle's collectors start at once, before the
  // application writes to its tables). Any thread; never blocks.
  void Wake();
  // Wake, then waits (up to `timeout`) until the cycle it asked for has run:
  // after a deployment, so that a new bundle's collectors have their
  // starting point before the deployment is reported done. Not from the
  // collector's own thread.
  void WakeAndWait(absl::Duration timeout);

  // One cycle now, on the caller's thread: the collectors that are due
  // (CollectDue) or all of them (CollectAll, for tests). Not concurrently
  // with the thread.
  CycleReport CollectDue();
  CycleReport CollectAll();

 private:
  // A collector of the current bundle and when it runs next.
  struct Scheduled {
    // nullptr: the agent's own collector of operation calls.
    const fleet::v1::MetricCollector* spec = nullptr;
    absl::Duration interval;
    absl::Time next_due;
    // Has run without error since its bundle was taken up. One that has not
    // (its tables come in a later phase of the deployment) runs on every
    // Wake, not only when due.
    bool succeeded = false;
  };

  explicit MetricsCollector(MetricsCollectorOptions options);

  CycleReport Cycle(bool all);
  // Opens a read-only session that Stop() can interrupt.
  absl::StatusOr<std::unique_ptr<ReadOnlySession>> OpenSession();
  void CloseSession(std::unique_ptr<ReadOnlySession> session);
  // The bundle id of the newest step in effect; empty when none.
  absl::StatusOr<std::string> AppliedBundleId(ReadOnlySession& session);
  // Makes `bundle_id` the current bundle (fetching it when it changed).
  absl::Status UseBundle(const std::string& bundle_id, absl::Time now);
  // Whether Monitoring.EnableMetrics allows collection.
  bool Enabled(ReadOnlySession& session);
  // Runs one collector; its samples in `samples`.
  absl::Status RunCollector(const fleet::v1::MetricCollector& spec,
                            absl::Time now,
                            std::vector<fleet::v1::MetricSample>* samples);
  // Runs the agent's collector of operation calls.
  absl::Status RunOperationCalls(absl::Time now,
                                 std::vector<fleet::v1::MetricSample>* samples);
  // The stored cursor of an incremental collector (loaded once, then kept in
  // memory).
  absl::StatusOr<std::optional<int64_t>> LoadCursor(const std::string& name);
  absl::Status SaveCursor(const std::string& name, int64_t cursor);
  // The writable connection for the cursor table, opened on first use and
  // again after a failure.
  absl::StatusOr<CursorStore*> Cursors();
  absl::Duration Scaled(absl::Duration interval) const;
  absl::Time Now() const;

  const MetricsCollectorOptions options_;

  // The current bundle and its schedule. Used by one cycle at a time.
  std::shared_ptr<const bundle::Bundle> bundle_;
  std::string bundle_id_;
  fleet::v1::Dialect dialect_ = fleet::v1::DIALECT_UNSPECIFIED;
  std::vector<Scheduled> schedule_;
  // Cursors by (bundle name, collector name), as stored.
  std::map<std::pair<std::string, std::string>, int64_t> cursors_;
  std::unique_ptr<Target> state_database_;
  std::unique_ptr<CursorStore> cursor_store_;
  // The last cycle-level error logged, so a database that stays down is
  // reported once rather than every cycle.
  std::string last_logged_error_;
  // Monitoring.EnableMetrics was '0' at the last look.
  bool disabled_ = false;

  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool woken_ ABSL_GUARDED_BY(mutex_) = false;
  // Set by Wake, taken by the next cycle: look at the applied bundle.
  bool look_now_ ABSL_GUARDED_BY(mutex_) = false;
  // The thread's cycles: one runs now; how many have ended (WakeAndWait).
  bool cycle_running_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t cycles_done_ ABSL_GUARDED_BY(mutex_) = 0;
  // The session of the running read, for Stop() to interrupt.
  ReadOnlySession* session_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::thread thread_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_METRICS_COLLECTOR_H_
