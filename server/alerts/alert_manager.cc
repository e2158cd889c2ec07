#include "server/alerts/alert_manager.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int kDefaultLimit = 100;
constexpr int kMaxLimit = 1000;
// How often the thread looks at the clock (and at queued queries) at most
// this long apart: the evaluation period is measured on the injected clock,
// which may be a fake one that moves in jumps.
constexpr absl::Duration kMaxPoll = absl::Seconds(1);
// Retention runs at most this often.
constexpr absl::Duration kRetentionPeriod = absl::Hours(1);

constexpr v1::AlertRule kRules[] = {
    v1::ALERT_RULE_FAILED_LOGINS, v1::ALERT_RULE_SUSPICIOUS_ACTIVITY,
    v1::ALERT_RULE_ERROR_RATE, v1::ALERT_RULE_SLOW_PROCEDURES};

// A number as people read it: whole numbers as such, others with up to 2
// decimals ("12", "0.4", "2.35"), tiny ones with 2 significant digits.
std::string Number(double value) {
  if (std::fabs(value - std::round(value)) < 1e-9) {
    return absl::StrFormat("%.0f", value);
  }
  std::string text = std::fabs(value) >= 0.01 ? absl::StrFormat("%.2f", value)
                                              : absl::StrFormat("%.2g", value);
  if (text.find('.') != std::string::npos &&
      text.find('e') == std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

std::string Percent(double fraction) {
  return absl::StrCat(Number(fraction * 100), "%");
}

bool Finite(double value) { return std::isfinite(value); }

}  // namespace

absl::Status ValidateAlertOptions(const AlertOptions& options) {
  if (!Finite(options.failed_logins_per_minute) ||
      options.failed_logins_per_minute < 0) {
    return absl::InvalidArgumentError(
        "--alert_failed_logins_per_minute must be a number >= 0 (failed "
        "logins per minute above it fire an alert)");
  }
  if (!Finite(options.error_rate) || options.error_rate < 0 ||
      options.error_rate >= 1) {
    return absl::InvalidArgumentError(
        "--alert_error_rate must be a fraction of calls from 0 to below 1 "
        "(0.001 is 0.1%)");
  }
  if (!Finite(options.avg_procedure_ms) || options.avg_procedure_ms < 0) {
    return absl::InvalidArgumentError(
        "--alert_avg_procedure_ms must be a number of milliseconds >= 0");
  }
  if (options.window < absl::Minutes(1) ||
      options.window > MetricStore::kMinuteTotalsUpTo) {
    return absl::InvalidArgumentError(
        absl::StrCat("--alert_window must be from 1m to ",
                     absl::FormatDuration(MetricStore::kMinuteTotalsUpTo),
                     " (metrics are counted in whole minutes), got ",
                     absl::FormatDuration(options.window)));
  }
  if (options.evaluation_period <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--alert_evaluation_period must be positive, got ",
                     absl::FormatDuration(options.evaluation_period)));
  }
  if (options.resolve_after < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--alert_resolve_after must not be negative, got ",
                     absl::FormatDuration(options.resolve_after)));
  }
  if (options.history_retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the retention of resolved alerts must be positive");
  }
  return absl::OkStatus();
}

std::string AlertRuleName(v1::AlertRule rule) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::AlertRule_Name(rule), "ALERT_RULE_"));
}

AlertManager::AlertManager(AlertStore* store, MetricsManager* metrics,
                           Registry* registry, Clock* clock,
                           AlertOptions options)
    : store_(store),
      metrics_(metrics),
      registry_(registry),
      clock_(clock),
      options_(options) {}

AlertManager::~AlertManager() { Stop(); }

absl::Status AlertManager::Load() {
  RETURN_IF_ERROR(ValidateAlertOptions(options_));
  absl::MutexLock evaluation(&evaluation_mutex_);
  ASSIGN_OR_RETURN(AlertStore::Loaded loaded, store_->Load());
  absl::MutexLock lock(&mutex_);
  active_.clear();
  for (v1::Alert& alert : loaded.active) {
    Key key{alert.rule(), alert.database_id()};
    active_[key] = std::move(alert);
  }
  next_alert_number_ = loaded.next_alert_number;
  next_sequence_ = loaded.next_sequence;
  loaded_ = true;
  if (!active_.empty()) {
    Logger("alerts")->info("{} active alerts loaded", active_.size());
  }
  return absl::OkStatus();
}

absl::Status AlertManager::Start() {
  bool loaded;
  {
    absl::MutexLock lock(&mutex_);
    if (started_) return absl::FailedPreconditionError("alerts: started twice");
    loaded = loaded_;
  }
  if (!loaded) RETURN_IF_ERROR(Load());
  absl::MutexLock lock(&mutex_);
  started_ = true;
  // Counted from here, not from when the thread first runs: a clock that
  // moves meanwhile must not push the first evaluation back.
  const absl::Time first_evaluation =
      clock_->Now() + options_.evaluation_period;
  thread_ = std::thread([this, first_evaluation] { Loop(first_evaluation); });
  return absl::OkStatus();
}

void AlertManager::Stop() {
  std::vector<std::shared_ptr<AlertEventSink>> sinks;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (Watcher& watcher : watchers_) sinks.push_back(watcher.sink);
    watchers_.clear();
  }
  if (thread_.joinable()) thread_.join();
  // Queries queued after the thread's last round.
  std::deque<Query> refused;
  {
    absl::MutexLock lock(&mutex_);
    refused.swap(queries_);
  }
  for (Query& query : refused) query.refuse();
  for (auto& sink : sinks) {
    sink->End(absl::UnavailableError("ecliptix-server is shutting down"));
  }
}

void AlertManager::Loop(absl::Time first_evaluation) {
  absl::Time next_evaluation = first_evaluation;
  const absl::Duration poll = std::min(options_.evaluation_period, kMaxPoll);
  while (true) {
    std::deque<Query> queries;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !queries_.empty();
      };
      mutex_.AwaitWithTimeout(absl::Condition(&ready), poll);
      if (stopping_) return;
      queries.swap(queries_);
    }
    for (Query& query : queries) query.run();
    if (clock_->Now() < next_evaluation) continue;
    absl::StatusOr<std::vector<v1::AlertEvent>> events = EvaluateNow();
    if (!events.ok()) {
      Logger("alerts")->warn("alert evaluation failed: {}",
                             events.status().ToString());
    }
    next_evaluation = clock_->Now() + options_.evaluation_period;
  }
}

double AlertManager::ThresholdOf(v1::AlertRule rule) const {
  switch (rule) {
    case v1::ALERT_RULE_FAILED_LOGINS:
      return options_.failed_logins_per_minute;
    case v1::ALERT_RULE_ERROR_RATE:
      return options_.error_rate;
    case v1::ALERT_RULE_SLOW_PROCEDURES:
      return options_.avg_procedure_ms;
    default:
      return 0;  // Suspicious activity: any at all.
  }
}

absl::StatusOr<std::map<AlertManager::Key, AlertManager::Measurement>>
AlertManager::Measure() {
  std::map<Key, Measurement> measured;
  auto rate = [&](const char* name, v1::AlertRule rule) -> absl::Status {
    v1::GetRateRequest request;
    request.set_rate(name);
    *request.mutable_range() = ToProtoDuration(options_.window);
    ASSIGN_OR_RETURN(v1::GetRateResponse response,
                     metrics_->GetRateNow(request));
    const double threshold = ThresholdOf(rule);
    for (const auto& [database_id, value] : response.by_database()) {
      measured[{rule, database_id}] = {value, value > threshold};
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(rate("failed_logins", v1::ALERT_RULE_FAILED_LOGINS));
  RETURN_IF_ERROR(
      rate("suspicious_activity", v1::ALERT_RULE_SUSPICIOUS_ACTIVITY));
  RETURN_IF_ERROR(rate("errors", v1::ALERT_RULE_ERROR_RATE));
  // The average procedure time per database: the store's totals over the
  // window, as TopProcedures reads them, summed over procedures.
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(Totals totals,
                   metrics_->store().QueryTotals(
                       {"procedure_calls", "procedure_execution_ms"},
                       std::nullopt, now - options_.window, now, now));
  std::map<std::string, std::pair<double, double>> by_database;
  for (const SeriesTotal& total : totals.series) {
    auto& [calls, execution_ms] = by_database[total.database_id];
    (total.metric == "procedure_calls" ? calls : execution_ms) += total.sum;
  }
  for (const auto& [database_id, figures] : by_database) {
    if (figures.first <= 0) continue;  // No calls, no average.
    const double average = figures.second / figures.first;
    measured[{v1::ALERT_RULE_SLOW_PROCEDURES, database_id}] = {
        average, average > options_.avg_procedure_ms};
  }
  return measured;
}

std::string AlertManager::FiredMessage(v1::AlertRule rule,
                                       const std::string& database_id,
                                       double value) const {
  switch (rule) {
    case v1::ALERT_RULE_FAILED_LOGINS:
      return absl::StrCat(Number(value), " failed logins/min on ", database_id,
                          " (threshold ", Number(ThresholdOf(rule)), ")");
    case v1::ALERT_RULE_SUSPICIOUS_ACTIVITY:
      return absl::StrCat("suspicious activity on ", database_id, ": ",
                          Number(value), " events/min over the last ",
                          absl::FormatDuration(options_.window));
    case v1::ALERT_RULE_ERROR_RATE:
      return absl::StrCat("error rate ", Percent(value), " on ", database_id,
                          " (threshold ", Percent(ThresholdOf(rule)), ")");
    case v1::ALERT_RULE_SLOW_PROCEDURES:
      return absl::StrCat("average procedure time ", Number(value), " ms on ",
                          database_id, " (threshold ",
                          Number(ThresholdOf(rule)), " ms)");
    default:
      return "";
  }
}

std::string AlertManager::ResolvedMessage(v1::AlertRule rule,
                                          const std::string& database_id,
                                          double value) const {
  switch (rule) {
    case v1::ALERT_RULE_FAILED_LOGINS:
      return absl::StrCat("failed logins back to ", Number(value), "/min on ",
                          database_id, " (threshold ",
                          Number(ThresholdOf(rule)), ")");
    case v1::ALERT_RULE_SUSPICIOUS_ACTIVITY:
      return absl::StrCat("no suspicious activity on ", database_id,
                          " in the last ",
                          absl::FormatDuration(options_.window));
    case v1::ALERT_RULE_ERROR_RATE:
      return absl::StrCat("error rate back to ", Percent(value), " on ",
                          database_id, " (threshold ",
                          Percent(ThresholdOf(rule)), ")");
    case v1::ALERT_RULE_SLOW_PROCEDURES:
      return absl::StrCat("average procedure time back to ", Number(value),
                          " ms on ", database_id, " (threshold ",
                          Number(ThresholdOf(rule)), " ms)");
    default:
      return "";
  }
}

absl::StatusOr<std::vector<v1::AlertEvent>> AlertManager::EvaluateNow() {
  absl::MutexLock evaluation(&evaluation_mutex_);
  {
    absl::MutexLock lock(&mutex_);
    if (!loaded_) {
      return absl::FailedPreconditionError("alerts: not loaded");
    }
  }
  // A failed measurement changes nothing: alerts must not resolve because
  // the metric store could not answer.
  ASSIGN_OR_RETURN(auto measured, Measure());
  const absl::Time now = clock_->Now();
  const google::protobuf::Timestamp now_proto = ToProtoTimestamp(now);
  std::vector<v1::AlertEvent> events;
  std::map<Key, v1::Alert> active;
  int64_t next_alert_number, next_sequence;
  {
    absl::MutexLock lock(&mutex_);
    active = active_;
    next_alert_number = next_alert_number_;
    next_sequence = next_sequence_;
  }
  // Fired: rules that hold where no alert is active.
  for (const auto& [key, measurement] : measured) {
    if (!measurement.holds || active.count(key) > 0) continue;
    v1::AlertEvent& event = events.emplace_back();
    event.set_type(v1::AlertEvent::TYPE_FIRED);
    *event.mutable_event_time() = now_proto;
    event.set_sequence(next_sequence++);
    v1::Alert& alert = *event.mutable_alert();
    alert.set_alert_id(AlertId(next_alert_number++));
    alert.set_rule(key.first);
    alert.set_database_id(key.second);
    alert.set_state(v1::ALERT_STATE_ACTIVE);
    alert.set_value(measurement.value);
    alert.set_threshold(ThresholdOf(key.first));
    *alert.mutable_fired_time() = now_proto;
    alert.set_message(FiredMessage(key.first, key.second, measurement.value));
    event.set_message(alert.message());
  }
  // Resolved: active alerts whose rule has not held for resolve_after (a
  // database without figures in the window measures 0).
  for (const auto& [key, alert] : active) {
    auto found = measured.find(key);
    if (found != measured.end() && found->second.holds) {
      quiet_since_.erase(key);
      continue;
    }
    const absl::Time quiet_since =
        quiet_since_.try_emplace(key, now).first->second;
    if (now - quiet_since < options_.resolve_after) continue;
    const double value = found != measured.end() ? found->second.value : 0;
    v1::AlertEvent& event = events.emplace_back();
    event.set_type(v1::AlertEvent::TYPE_RESOLVED);
    *event.mutable_event_time() = now_proto;
    event.set_sequence(next_sequence++);
    v1::Alert& resolved = *event.mutable_alert();
    resolved = alert;
    resolved.set_state(v1::ALERT_STATE_RESOLVED);
    *resolved.mutable_resolved_time() = now_proto;
    resolved.set_resolved_value(value);
    event.set_message(ResolvedMessage(key.first, key.second, value));
  }
  // Saved before anyone hears of them: a crash after this point does not
  // fire them again.
  RETURN_IF_ERROR(store_->Save(events));
  for (const v1::AlertEvent& event : events) {
    if (event.type() == v1::AlertEvent::TYPE_FIRED) {
      Logger("alerts")->warn(
          "alert {} fired ({}): {}", event.alert().alert_id(),
          AlertRuleName(event.alert().rule()), event.message());
    } else {
      Logger("alerts")->info(
          "alert {} resolved ({}): {}", event.alert().alert_id(),
          AlertRuleName(event.alert().rule()), event.message());
    }
  }
  bool retention_due = false;
  {
    absl::MutexLock lock(&mutex_);
    for (const v1::AlertEvent& event : events) {
      Key key{event.alert().rule(), event.alert().database_id()};
      if (event.type() == v1::AlertEvent::TYPE_FIRED) {
        active_[key] = event.alert();
      } else {
        active_.erase(key);
        quiet_since_.erase(key);
      }
    }
    next_alert_number_ = next_alert_number;
    next_sequence_ = next_sequence;
    DeliverLocked(events);
    if (now >= next_retention_) {
      retention_due = true;
      next_retention_ = now + kRetentionPeriod;
    }
  }
  if (retention_due) {
    absl::StatusOr<int64_t> deleted =
        store_->DeleteResolvedBefore(now - options_.history_retention);
    if (!deleted.ok()) {
      Logger("alerts")->warn("deleting old alerts failed: {}",
                             deleted.status().ToString());
    } else if (*deleted > 0) {
      Logger("alerts")->info(
          "{} alerts resolved before {} deleted", *deleted,
          absl::FormatTime(now - options_.history_retention));
    }
  }
  return events;
}

std::map<std::string, Labels> AlertManager::LabelsOf(
    const std::vector<std::string>& database_ids) const {
  if (registry_ == nullptr) return {};
  return registry_->LabelsOf(database_ids);
}

void AlertManager::DeliverLocked(const std::vector<v1::AlertEvent>& events) {
  if (events.empty() || watchers_.empty()) return;
  std::vector<std::string> ids;
  for (const v1::AlertEvent& event : events) {
    ids.push_back(event.alert().database_id());
  }
  const std::map<std::string, Labels> labels = LabelsOf(ids);
  static const Labels kNone;
  for (const v1::AlertEvent& event : events) {
    auto found = labels.find(event.alert().database_id());
    const Labels& database_labels =
        found != labels.end() ? found->second : kNone;
    for (Watcher& watcher : watchers_) {
      if (watcher.sink == nullptr ||
          !watcher.selector.Matches(database_labels)) {
        continue;
      }
      // A closed sink is forgotten.
      if (!watcher.sink->Deliver(event)) watcher.sink = nullptr;
    }
  }
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [](const Watcher& watcher) {
                                   return watcher.sink == nullptr;
                                 }),
                  watchers_.end());
}

absl::Status AlertManager::Watch(const std::string& selector,
                                 std::shared_ptr<AlertEventSink> sink) {
  absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(selector);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("selector: ", parsed.status().message()));
  }
  absl::MutexLock lock(&mutex_);
  if (stopping_) {
    return absl::UnavailableError("ecliptix-server is shutting down");
  }
  // The snapshot and the registration under one lock: no event falls
  // between them.
  std::vector<std::string> ids;
  for (const auto& [key, alert] : active_) ids.push_back(key.second);
  const std::map<std::string, Labels> labels = LabelsOf(ids);
  static const Labels kNone;
  const google::protobuf::Timestamp now = ToProtoTimestamp(clock_->Now());
  for (const auto& [key, alert] : active_) {
    auto found = labels.find(key.second);
    if (!parsed->Matches(found != labels.end() ? found->second : kNone)) {
      continue;
    }
    v1::AlertEvent event;
    event.set_type(v1::AlertEvent::TYPE_SNAPSHOT);
    *event.mutable_alert() = alert;
    *event.mutable_event_time() = now;
    event.set_message(alert.message());
    if (!sink->Deliver(event)) return absl::OkStatus();
  }
  v1::AlertEvent complete;
  complete.set_type(v1::AlertEvent::TYPE_SNAPSHOT_COMPLETE);
  *complete.mutable_event_time() = now;
  if (!sink->Deliver(complete)) return absl::OkStatus();
  watchers_.push_back({*std::move(parsed), std::move(sink)});
  return absl::OkStatus();
}

std::vector<v1::Alert> AlertManager::ActiveAlerts() const {
  absl::MutexLock lock(&mutex_);
  std::vector<v1::Alert> alerts;
  alerts.reserve(active_.size());
  for (const auto& [key, alert] : active_) alerts.push_back(alert);
  // By database, then rule.
  std::stable_sort(alerts.begin(), alerts.end(),
                   [](const v1::Alert& a, const v1::Alert& b) {
                     if (a.database_id() != b.database_id())
                       return a.database_id() < b.database_id();
                     return a.rule() < b.rule();
                   });
  return alerts;
}

void AlertManager::ListAlerts(v1::ListAlertsRequest request,
                              Callback<v1::ListAlertsResponse> done) {
  {
    absl::MutexLock lock(&mutex_);
    if (started_ && !stopping_) {
      queries_.push_back(
          {[this, request = std::move(request), done] {
             done(ListAlertsNow(request));
           },
           [done] {
             done(absl::UnavailableError("ecliptix-server is shutting down"));
           }});
      return;
    }
  }
  done(absl::UnavailableError("ecliptix-server is shutting down"));
}

absl::StatusOr<v1::ListAlertsResponse> AlertManager::ListAlertsNow(
    const v1::ListAlertsRequest& request) {
  if (request.limit() < 0 || request.limit() > kMaxLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "limit: from 0 (meaning ", kDefaultLimit, ") to ", kMaxLimit));
  }
  const int limit = request.limit() == 0 ? kDefaultLimit : request.limit();
  // The databases the selector picks; nullopt: every one.
  std::optional<std::set<std::string>> databases;
  if (!absl::StripAsciiWhitespace(request.selector()).empty()) {
    absl::StatusOr<LabelSelector> parsed =
        LabelSelector::Parse(request.selector());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("selector: ", parsed.status().message()));
    }
    databases.emplace();
    if (registry_ != nullptr) {
      for (const v1::Database& database : registry_->Select(*parsed)) {
        databases->insert(database.database_id());
      }
    }
  }
  v1::ListAlertsResponse response;
  for (v1::Alert& alert : ActiveAlerts()) {
    if (databases.has_value() && databases->count(alert.database_id()) == 0)
      continue;
    *response.add_alerts() = std::move(alert);
  }
  if (request.include_resolved()) {
    ASSIGN_OR_RETURN(std::vector<v1::Alert> resolved,
                     store_->LoadResolved(databases, limit));
    for (v1::Alert& alert : resolved) *response.add_alerts() = std::move(alert);
  }
  return response;
}

}  // namespace ecliptix::server
