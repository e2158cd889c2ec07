// The alerts core: the runbook's monitoring rules (failed logins per minute,
// any suspicious activity, error rate, average procedure time) evaluated per
// database over the metric store, every evaluation period of the injected
// clock, on a thread of its own. Keeps one state per (rule, database): an
// alert FIRES when its rule starts to hold and RESOLVES when it stops, once
// each (while a rule keeps holding nothing more is said). Every change is
// saved in the AlertStore before anyone hears of it, so active alerts survive
// a restart and do not fire again after it. Watchers get the active alerts,
// then the changes. The measurements come from the MetricsManager's own rate
// and total queries; no arithmetic over samples here. No gRPC.
#ifndef ECLIPTIX_SERVER_ALERTS_ALERT_MANAGER_H_
#define ECLIPTIX_SERVER_ALERTS_ALERT_MANAGER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/labels.h"
#include "ecliptix/fleet/v1/alerts.pb.h"
#include "server/alerts/alert_store.h"
#include "server/fleet/registry.h"
#include "server/metrics/metrics_manager.h"
#include "server/streams/event_sink.h"

namespace ecliptix::server {

// Thresholds and timing, from ecliptix-server's --alert_* flags. The defaults
// are the runbook's: lockout after 5 failed attempts
// (Authentication.MaxFailedAttempts), error rate under 0.1%, average
// procedure time under 100 ms.
struct AlertOptions {
  // Failed logins per minute (over the window) above this fire.
  double failed_logins_per_minute = 5;
  // Failed procedure calls per call above this fire (0.001 = 0.1%).
  double error_rate = 0.001;
  // Average procedure execution time (ms) above this fires.
  double avg_procedure_ms = 100;
  // Rules look at the last `window` of metrics (whole minutes: the start is
  // rounded down to one).
  absl::Duration window = absl::Minutes(5);
  // How often the rules are evaluated.
  absl::Duration evaluation_period = absl::Seconds(15);
  // An active alert resolves once its rule has held at no evaluation for this
  // long (0: at the first evaluation where it does not hold), so a figure that
  // hovers at its threshold does not fire and resolve again and again.
  absl::Duration resolve_after = absl::Minutes(1);
  // Resolved alerts (and their events) are kept this long.
  absl::Duration history_retention = absl::Hours(24 * 30);
};

// INVALID_ARGUMENT naming the flag (--alert_...) at fault.
absl::Status ValidateAlertOptions(const AlertOptions& options);

// "failed_logins", "suspicious_activity", "error_rate", "slow_procedures".
std::string AlertRuleName(fleet::v1::AlertRule rule);

using AlertEventSink = EventSink<fleet::v1::AlertEvent>;

class AlertManager {
 public:
  template <typename T>
  using Callback = std::function<void(absl::StatusOr<T>)>;

  // None of the pointers is owned. `registry` may be null (databases have no
  // labels; a non-empty selector matches none), for tests.
  AlertManager(AlertStore* store, MetricsManager* metrics, Registry* registry,
               Clock* clock, AlertOptions options);
  ~AlertManager();

  // Validates the options and loads the active alerts and the numbering
  // (Start does it when it was not done).
  absl::Status Load();
  // Load, then evaluates every evaluation period (the first one period after
  // the start) on the manager's thread, which also answers ListAlerts.
  absl::Status Start();
  // Stops the thread; queued ListAlerts get UNAVAILABLE, watches end
  // UNAVAILABLE.
  void Stop();

  // One evaluation, on the calling thread (serialized with the thread's).
  // Returns the FIRED and RESOLVED events it made, saved and delivered. A
  // failed measurement or save changes nothing (the next evaluation tries
  // again).
  absl::StatusOr<std::vector<fleet::v1::AlertEvent>> EvaluateNow();

  // ListAlerts, answered on the manager's thread (never on a gRPC thread).
  void ListAlerts(fleet::v1::ListAlertsRequest request,
                  Callback<fleet::v1::ListAlertsResponse> done);
  // The same on the calling thread. INVALID_ARGUMENT names the field.
  absl::StatusOr<fleet::v1::ListAlertsResponse> ListAlertsNow(
      const fleet::v1::ListAlertsRequest& request);

  // Delivers the active alerts of databases matching `selector` (TYPE_SNAPSHOT
  // each, then TYPE_SNAPSHOT_COMPLETE) and then every matching event to
  // `sink`, until it reports itself closed. INVALID_ARGUMENT "selector: ..."
  // for a bad selector.
  absl::Status Watch(const std::string& selector,
                     std::shared_ptr<AlertEventSink> sink);

  // The active alerts, by database and rule.
  std::vector<fleet::v1::Alert> ActiveAlerts() const;

 private:
  using Key = std::pair<fleet::v1::AlertRule, std::string>;
  struct Watcher {
    LabelSelector selector;
    std::shared_ptr<AlertEventSink> sink;
  };
  // A measured value per (rule, database), and whether the rule holds there.
  // A ListAlerts waiting for the thread: answered by `run`, or refused.
  struct Query {
    std::function<void()> run;
    std::function<void()> refuse;
  };
  struct Measurement {
    double value = 0;
    bool holds = false;
  };

  // Evaluates the rules every evaluation_period from `first_evaluation` on,
  // and answers queued queries, until Stop().
  void Loop(absl::Time first_evaluation);
  absl::StatusOr<std::map<Key, Measurement>> Measure();
  double ThresholdOf(fleet::v1::AlertRule rule) const;
  std::string FiredMessage(fleet::v1::AlertRule rule,
                           const std::string& database_id, double value) const;
  std::string ResolvedMessage(fleet::v1::AlertRule rule,
                              const std::string& database_id,
                              double value) const;
  // Hands `events` to the watchers whose selector matches their database.
  void DeliverLocked(const std::vector<fleet::v1::AlertEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::map<std::string, Labels> LabelsOf(
      const std::vector<std::string>& database_ids) const;

  AlertStore* const store_;
  MetricsManager* const metrics_;
  Registry* const registry_;
  Clock* const clock_;
  const AlertOptions options_;

  // One evaluation at a time.
  absl::Mutex evaluation_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);
  // Active alerts whose rule did not hold at the last evaluations: since
  // when (in memory: after a restart the wait starts again).
  std::map<Key, absl::Time> quiet_since_ ABSL_GUARDED_BY(evaluation_mutex_);

  mutable absl::Mutex mutex_;
  bool loaded_ ABSL_GUARDED_BY(mutex_) = false;
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::map<Key, fleet::v1::Alert> active_ ABSL_GUARDED_BY(mutex_);
  int64_t next_alert_number_ ABSL_GUARDED_BY(mutex_) = 1;
  int64_t next_sequence_ ABSL_GUARDED_BY(mutex_) = 1;
  std::vector<Watcher> watchers_ ABSL_GUARDED_BY(mutex_);
  std::deque<Query> queries_ ABSL_GUARDED_BY(mutex_);
  absl::Time next_retention_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ALERTS_ALERT_MANAGER_H_
