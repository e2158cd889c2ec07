#include "server/metrics/health_report.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

v1::HealthCriterion Criterion(const std::string& name, const std::string& unit,
                              double threshold) {
  v1::HealthCriterion criterion;
  criterion.set_name(name);
  criterion.set_unit(unit);
  criterion.set_threshold(threshold);
  criterion.set_verdict(v1::HEALTH_VERDICT_NO_DATA);
  return criterion;
}

void Judge(v1::HealthCriterion& criterion, bool pass, double value,
           std::string message) {
  criterion.set_verdict(pass ? v1::HEALTH_VERDICT_PASS
                             : v1::HEALTH_VERDICT_FAIL);
  criterion.set_value(value);
  criterion.set_message(std::move(message));
}

// "1 lockout", "2 lockouts": a count of `noun`, rounded.
std::string Counted(double count, const std::string& noun) {
  const int64_t whole = std::llround(count);
  return absl::StrCat(whole, " ", noun, whole == 1 ? "" : "s");
}

double Event(const HealthFigures& figures, const std::string& event) {
  auto it = figures.auth_events.find(event);
  return it == figures.auth_events.end() ? 0 : it->second;
}

constexpr char kLogin[] = "LoginMembership";

}  // namespace

v1::HealthRow EvaluateHealth(const std::string& database_id,
                             const HealthFigures& figures,
                             const HealthThresholds& thresholds) {
  v1::HealthRow row;
  row.set_database_id(database_id);

  v1::HealthCriterion time =
      Criterion("avg_procedure_time", "ms", thresholds.max_avg_procedure_ms);
  if (figures.calls > 0) {
    const double avg = figures.execution_ms / figures.calls;
    Judge(time, avg < thresholds.max_avg_procedure_ms, avg,
          absl::StrFormat("%.1f ms per call over %.0f calls (limit %g ms)", avg,
                          figures.calls, thresholds.max_avg_procedure_ms));
  } else {
    time.set_message("no procedure calls in the range");
  }
  *row.add_criteria() = std::move(time);

  v1::HealthCriterion errors = Criterion("error_rate", "failed calls per call",
                                         thresholds.max_error_rate);
  if (figures.error_rate.has_value()) {
    const double rate = *figures.error_rate;
    Judge(errors, rate < thresholds.max_error_rate, rate,
          absl::StrFormat("%.3f%% of calls failed (limit %g%%)", rate * 100,
                          thresholds.max_error_rate * 100));
  } else {
    errors.set_message("no procedure calls in the range");
  }
  *row.add_criteria() = std::move(errors);

  v1::HealthCriterion blocking = Criterion("blocking_queries", "sessions", 0);
  if (figures.blocked_sessions.has_value()) {
    const double blocked = *figures.blocked_sessions;
    Judge(blocking, blocked <= 0, blocked,
          blocked <= 0 ? std::string("no session waited for a lock")
                       : absl::StrFormat(
                             "up to %.0f sessions waited for a lock", blocked));
  } else {
    blocking.set_message(
        "no blocked_sessions samples (collector not deployed or not run yet)");
  }
  *row.add_criteria() = std::move(blocking);

  v1::HealthCriterion logged =
      Criterion("auth_attempts_logged", "logged per call",
                thresholds.min_logged_per_login);
  const double logins = Event(figures, "LOGIN_SUCCESS") +
                        Event(figures, "LOGIN_FAILED") +
                        Event(figures, "LOGIN_BLOCKED");
  if (figures.login_calls > 0) {
    const double fraction = logins / figures.login_calls;
    Judge(logged, fraction >= thresholds.min_logged_per_login, fraction,
          absl::StrFormat("%.0f LOGIN_* events for %.0f %s calls", logins,
                          figures.login_calls, kLogin));
  } else {
    logged.set_message(absl::StrCat("no ", kLogin, " calls in the range"));
  }
  *row.add_criteria() = std::move(logged);

  // The login that reaches Authentication.MaxFailedAttempts starts a lockout
  // (audited SUSPICIOUS_ACTIVITY); later attempts on that number are refused
  // (LOGIN_BLOCKED). Samples are per database, not per number, so a broken
  // lockout shows only as its absence: never FAIL from these figures.
  v1::HealthCriterion lockout =
      Criterion("lockout", "events", thresholds.max_failed_attempts);
  const double blocked = Event(figures, "LOGIN_BLOCKED");
  const double started = Event(figures, "SUSPICIOUS_ACTIVITY");
  if (blocked > 0) {
    Judge(lockout, true, blocked,
          absl::StrCat(Counted(blocked, "login"), " refused during a lockout (",
                       Counted(started, "lockout"), " started after ",
                       thresholds.max_failed_attempts, " failed attempts)"));
  } else if (started > 0) {
    lockout.set_value(started);
    lockout.set_message(absl::StrCat(Counted(started, "lockout"),
                                     " started; no locked number tried again "
                                     "yet"));
  } else {
    lockout.set_message(
        absl::StrFormat("not exercised: no number reached %d failed attempts "
                        "(Authentication.MaxFailedAttempts)",
                        thresholds.max_failed_attempts));
  }
  *row.add_criteria() = std::move(lockout);

  bool any_pass = false, any_fail = false;
  for (const v1::HealthCriterion& criterion : row.criteria()) {
    any_pass |= criterion.verdict() == v1::HEALTH_VERDICT_PASS;
    any_fail |= criterion.verdict() == v1::HEALTH_VERDICT_FAIL;
  }
  row.set_verdict(any_fail   ? v1::HEALTH_VERDICT_FAIL
                  : any_pass ? v1::HEALTH_VERDICT_PASS
                             : v1::HEALTH_VERDICT_NO_DATA);
  return row;
}

absl::StatusOr<operations::SuccessFigures> SuccessFiguresBetween(
    MetricsManager& metrics, const std::set<std::string>& databases,
    absl::Time start, absl::Time end) {
  operations::SuccessFigures figures;
  const absl::Time minute_start =
      absl::UnixEpoch() +
      absl::Ceil(start - absl::UnixEpoch(), absl::Minutes(1));
  const absl::Time minute_end =
      absl::UnixEpoch() +
      absl::Floor(end - absl::UnixEpoch(), absl::Minutes(1));
  if (databases.empty() || minute_start >= minute_end) return figures;
  const std::optional<std::set<std::string>> selected = databases;
  ASSIGN_OR_RETURN(Totals totals,
                   metrics.store().QueryTotals(
                       {"procedure_calls", "procedure_execution_ms"}, selected,
                       minute_start, minute_end, metrics.clock()->Now()));
  for (const SeriesTotal& total : totals.series) {
    operations::WindowFigures& database =
        figures.by_database[total.database_id];
    if (total.metric == "procedure_calls") {
      database.calls += total.sum;
      figures.pooled.calls += total.sum;
    } else {
      database.execution_ms += total.sum;
      figures.pooled.execution_ms += total.sum;
    }
  }
  ASSIGN_OR_RETURN(
      v1::GetRateResponse rates,
      metrics.GetRateBetween("errors", selected, minute_start, minute_end));
  for (const auto& [id, rate] : rates.by_database()) {
    figures.by_database[id].error_rate = rate;
  }
  if (!rates.by_database().empty()) figures.pooled.error_rate = rates.fleet();
  return figures;
}

void HealthReporter::GetHealthReport(v1::GetHealthReportRequest request,
                                     Callback done) {
  metrics_->PostQuery([this, request = std::move(request),
                       done]() { done(ReportNow(request)); },
                      [done](absl::Status status) { done(status); });
}

absl::StatusOr<v1::HealthReport> HealthReporter::ReportNow(
    const v1::GetHealthReportRequest& request) {
  absl::Duration range = FromProtoDuration(request.range());
  if (range < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("range: must not be negative");
  }
  if (range == absl::ZeroDuration()) range = absl::Hours(1);
  ASSIGN_OR_RETURN(std::optional<std::set<std::string>> databases,
                   metrics_->SelectDatabases(request.selector()));
  const absl::Time end = metrics_->clock()->Now();
  const absl::Time start = end - range;

  std::map<std::string, HealthFigures> by_database;
  if (databases.has_value()) {
    for (const std::string& id : *databases) by_database[id];
  }
  HealthFigures fleet;
  ASSIGN_OR_RETURN(Totals totals,
                   metrics_->store().QueryTotals(
                       {"procedure_calls", "procedure_execution_ms",
                        "blocked_sessions", "auth_events"},
                       databases, start, end, end));
  for (const SeriesTotal& total : totals.series) {
    HealthFigures& figures = by_database[total.database_id];
    if (total.metric == "procedure_calls") {
      figures.calls += total.sum;
      fleet.calls += total.sum;
      auto procedure = total.labels->find("procedure");
      if (procedure != total.labels->end() && procedure->second == kLogin) {
        figures.login_calls += total.sum;
        fleet.login_calls += total.sum;
      }
    } else if (total.metric == "procedure_execution_ms") {
      figures.execution_ms += total.sum;
      fleet.execution_ms += total.sum;
    } else if (total.metric == "blocked_sessions") {
      figures.blocked_sessions =
          std::max(figures.blocked_sessions.value_or(0), total.max);
      fleet.blocked_sessions =
          std::max(fleet.blocked_sessions.value_or(0), total.max);
    } else {
      auto event = total.labels->find("event");
      if (event == total.labels->end()) continue;
      figures.auth_events[event->second] += total.sum;
      fleet.auth_events[event->second] += total.sum;
    }
  }
  // The error rate is the manager's "errors" rate, whatever it counts.
  ASSIGN_OR_RETURN(v1::GetRateResponse rates,
                   metrics_->GetRateBetween("errors", databases, start, end));
  for (const auto& [id, rate] : rates.by_database()) {
    by_database[id].error_rate = rate;
  }
  if (!rates.by_database().empty()) fleet.error_rate = rates.fleet();

  v1::HealthReport report;
  *report.mutable_start_time() = ToProtoTimestamp(start);
  *report.mutable_end_time() = ToProtoTimestamp(end);
  for (const auto& [id, figures] : by_database) {
    *report.add_databases() = EvaluateHealth(id, figures, thresholds_);
  }
  *report.mutable_fleet() = EvaluateHealth("", fleet, thresholds_);
  return report;
}

}  // namespace ecliptix::server
