// The health report: the runbook's success metrics (average procedure time
// under 100 ms, error rate under 0.1%, no blocking queries, every
// authentication attempt logged, lockout working) per database and
// fleet-wide over a range, each PASS, FAIL or NO_DATA with the measured value
// and its threshold. Built on the MetricsManager's queries (its "errors" rate,
// the metric store's totals); answers on the manager's query thread. No gRPC.
#ifndef ECLIPTIX_SERVER_METRICS_HEALTH_REPORT_H_
#define ECLIPTIX_SERVER_METRICS_HEALTH_REPORT_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/metrics.pb.h"
#include "server/metrics/metrics_manager.h"
#include "server/operations/success_gate.h"

namespace ecliptix::server {

// The runbook's thresholds.
struct HealthThresholds {
  // Average procedure time must stay under this (ms).
  double max_avg_procedure_ms = 100;
  // The "errors" rate (failed calls per call) must stay under this.
  double max_error_rate = 0.001;
  // Logged LOGIN_* events per LoginMembership call must reach this: the two
  // collectors run apart, so a collection can fall on either side of the
  // range's edges.
  double min_logged_per_login = 0.99;
  // Authentication.MaxFailedAttempts (the bundle's default), for messages.
  int max_failed_attempts = 5;
};

// What the report reads of one database (or of the fleet) over the range.
struct HealthFigures {
  // procedure_calls and procedure_execution_ms, summed.
  double calls = 0;
  double execution_ms = 0;
  // The "errors" rate; nullopt without calls.
  std::optional<double> error_rate;
  // The largest blocked_sessions sample; nullopt without samples.
  std::optional<double> blocked_sessions;
  // procedure_calls{procedure=LoginMembership}.
  double login_calls = 0;
  // auth_events by event.
  std::map<std::string, double> auth_events;
};

// The criteria of one row from its figures (pure, for tests and the fleet
// row alike).
fleet::v1::HealthRow EvaluateHealth(const std::string& database_id,
                                    const HealthFigures& figures,
                                    const HealthThresholds& thresholds);

// The rollouts' success gate's figures of `databases` over [start, end):
// procedure calls and execution time summed per database and pooled, and the
// manager's "errors" rate. The store counts whole minutes, so only the whole
// minutes inside the window count (`start` rounded up, `end` down): an edge
// rounded outwards would count samples from the other side of a change
// (before the wave ended, after the rollout was created). A window without a
// whole minute has no calls.
absl::StatusOr<operations::SuccessFigures> SuccessFiguresBetween(
    MetricsManager& metrics, const std::set<std::string>& databases,
    absl::Time start, absl::Time end);

class HealthReporter {
 public:
  using Callback = std::function<void(absl::StatusOr<fleet::v1::HealthReport>)>;

  // `metrics` is not owned.
  explicit HealthReporter(MetricsManager* metrics,
                          HealthThresholds thresholds = {})
      : metrics_(metrics), thresholds_(thresholds) {}

  // Answered on the manager's query thread.
  void GetHealthReport(fleet::v1::GetHealthReportRequest request,
                       Callback done);
  // The same on the calling thread. INVALID_ARGUMENT for a bad selector or a
  // negative range. Rows: every database the selector picks (all with
  // samples in the range for an empty selector), by id.
  absl::StatusOr<fleet::v1::HealthReport> ReportNow(
      const fleet::v1::GetHealthReportRequest& request);

 private:
  MetricsManager* const metrics_;
  const HealthThresholds thresholds_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_HEALTH_REPORT_H_
