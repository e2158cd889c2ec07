#include "server/alerts/alert_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/proto_time.h"
#include "common/sql/session.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kAlertPrefix[] = "al-";

long long Micros(const google::protobuf::Timestamp& timestamp) {
  return absl::ToUnixMicros(FromProtoTimestamp(timestamp));
}

google::protobuf::Timestamp FromMicros(long long micros) {
  return ToProtoTimestamp(absl::FromUnixMicros(micros));
}

// The columns every alert query reads, in this order (see ReadAlerts).
constexpr char kAlertColumns[] =
    "alert_id, rule, database_id, value, threshold, message, fired_us, "
    "resolved_us, resolved_value";

// Runs a prepared SELECT of kAlertColumns and appends its rows.
struct AlertRow {
  long long number = 0;
  int rule = 0;
  std::string database_id;
  double value = 0;
  double threshold = 0;
  std::string message;
  long long fired_us = 0;
  long long resolved_us = 0;
  double resolved_value = 0;

  v1::Alert ToAlert() const {
    v1::Alert alert;
    alert.set_alert_id(AlertId(number));
    alert.set_rule(static_cast<v1::AlertRule>(rule));
    alert.set_database_id(database_id);
    alert.set_value(value);
    alert.set_threshold(threshold);
    alert.set_message(message);
    *alert.mutable_fired_time() = FromMicros(fired_us);
    if (resolved_us != 0) {
      alert.set_state(v1::ALERT_STATE_RESOLVED);
      *alert.mutable_resolved_time() = FromMicros(resolved_us);
      alert.set_resolved_value(resolved_value);
    } else {
      alert.set_state(v1::ALERT_STATE_ACTIVE);
    }
    return alert;
  }
};

}  // namespace

std::string AlertId(int64_t number) {
  return absl::StrCat(kAlertPrefix, number);
}

int64_t AlertNumber(const std::string& alert_id) {
  absl::string_view rest = alert_id;
  int64_t number = 0;
  if (!absl::ConsumePrefix(&rest, kAlertPrefix) ||
      !absl::SimpleAtoi(rest, &number) || number <= 0) {
    return -1;
  }
  return number;
}

absl::StatusOr<std::unique_ptr<AlertStore>> AlertStore::Open(
    const std::string& url) {
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(url));
  if (parsed.backend == sql::Backend::kOdbc) {
    return absl::InvalidArgumentError(
        absl::StrCat("alert store \"", parsed.redacted,
                     "\": sqlite:// or postgresql://, not ODBC"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> session,
                   sql::OpenSession(parsed));
  return std::unique_ptr<AlertStore>(
      new AlertStore(std::move(parsed), std::move(session)));
}

absl::StatusOr<AlertStore::Loaded> AlertStore::Load() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  Loaded loaded;
  RETURN_IF_ERROR(sql::Guard("load the active alerts", [&] {
    AlertRow row;
    soci::statement statement =
        (sql.prepare << "SELECT " << kAlertColumns
                     << " FROM alerts WHERE resolved_us = 0 "
                        "ORDER BY database_id, rule",
         soci::into(row.number), soci::into(row.rule),
         soci::into(row.database_id), soci::into(row.value),
         soci::into(row.threshold), soci::into(row.message),
         soci::into(row.fired_us), soci::into(row.resolved_us),
         soci::into(row.resolved_value));
    statement.execute();
    while (statement.fetch()) loaded.active.push_back(row.ToAlert());
    long long highest = 0;
    soci::indicator indicator;
    sql << "SELECT MAX(alert_id) FROM alerts", soci::into(highest, indicator);
    loaded.next_alert_number = (indicator == soci::i_null ? 0 : highest) + 1;
    sql << "SELECT MAX(sequence) FROM alert_events",
        soci::into(highest, indicator);
    loaded.next_sequence = (indicator == soci::i_null ? 0 : highest) + 1;
  }));
  return loaded;
}

absl::Status AlertStore::Save(const std::vector<v1::AlertEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  return sql::Guard("save alerts", [&] {
    soci::transaction transaction(sql);
    for (const v1::AlertEvent& event : events) {
      const v1::Alert& alert = event.alert();
      const long long number = AlertNumber(alert.alert_id());
      const long long event_us = Micros(event.event_time());
      if (event.type() == v1::AlertEvent::TYPE_FIRED) {
        const int rule = alert.rule();
        const std::string& database_id = alert.database_id();
        const double value = alert.value();
        const double threshold = alert.threshold();
        const std::string& message = alert.message();
        const long long fired_us = Micros(alert.fired_time());
        sql << "INSERT INTO alerts (alert_id, rule, database_id, value, "
               "threshold, message, fired_us, resolved_us, resolved_value) "
               "VALUES (:id, :rule, :database_id, :value, :threshold, "
               ":message, :fired_us, 0, 0)",
            soci::use(number), soci::use(rule), soci::use(database_id),
            soci::use(value), soci::use(threshold), soci::use(message),
            soci::use(fired_us);
      } else if (event.type() == v1::AlertEvent::TYPE_RESOLVED) {
        const long long resolved_us = Micros(alert.resolved_time());
        const double resolved_value = alert.resolved_value();
        sql << "UPDATE alerts SET resolved_us = :resolved_us, "
               "resolved_value = :resolved_value WHERE alert_id = :id",
            soci::use(resolved_us), soci::use(resolved_value),
            soci::use(number);
      } else {
        continue;  // Snapshots are not events of the log.
      }
      const long long sequence = event.sequence();
      const int type = event.type();
      const double value = event.type() == v1::AlertEvent::TYPE_FIRED
                               ? alert.value()
                               : alert.resolved_value();
      const std::string& message = event.message();
      sql << "INSERT INTO alert_events (sequence, alert_id, type, value, "
             "message, event_us) VALUES (:sequence, :id, :type, :value, "
             ":message, :event_us)",
          soci::use(sequence), soci::use(number), soci::use(type),
          soci::use(value), soci::use(message), soci::use(event_us);
    }
    transaction.commit();
  });
}

absl::StatusOr<std::vector<v1::Alert>> AlertStore::LoadResolved(
    const std::optional<std::set<std::string>>& databases, int limit) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::Alert> alerts;
  std::vector<std::pair<long long, long long>> order;  // resolved_us, id
  RETURN_IF_ERROR(sql::Guard("load resolved alerts", [&] {
    AlertRow row;
    std::string database_id;
    const std::string query = absl::StrCat(
        "SELECT ", kAlertColumns, " FROM alerts WHERE resolved_us > 0",
        databases.has_value() ? " AND database_id = :database_id" : "",
        " ORDER BY resolved_us DESC, alert_id DESC LIMIT :limit");
    soci::statement statement(sql);
    statement.exchange(soci::into(row.number));
    statement.exchange(soci::into(row.rule));
    statement.exchange(soci::into(row.database_id));
    statement.exchange(soci::into(row.value));
    statement.exchange(soci::into(row.threshold));
    statement.exchange(soci::into(row.message));
    statement.exchange(soci::into(row.fired_us));
    statement.exchange(soci::into(row.resolved_us));
    statement.exchange(soci::into(row.resolved_value));
    if (databases.has_value()) statement.exchange(soci::use(database_id));
    statement.exchange(soci::use(limit));
    statement.alloc();
    statement.prepare(query);
    statement.define_and_bind();
    auto run = [&] {
      statement.execute();
      while (statement.fetch()) alerts.push_back(row.ToAlert());
    };
    if (!databases.has_value()) {
      run();
      return;
    }
    // One indexed query per database, then the newest `limit` of them all.
    for (const std::string& id : *databases) {
      database_id = id;
      run();
    }
  }));
  std::sort(alerts.begin(), alerts.end(),
            [](const v1::Alert& a, const v1::Alert& b) {
              const long long a_us = Micros(a.resolved_time());
              const long long b_us = Micros(b.resolved_time());
              if (a_us != b_us) return a_us > b_us;
              return AlertNumber(a.alert_id()) > AlertNumber(b.alert_id());
            });
  if (alerts.size() > static_cast<size_t>(limit)) alerts.resize(limit);
  return alerts;
}

absl::StatusOr<int64_t> AlertStore::DeleteResolvedBefore(absl::Time cutoff) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  const long long cutoff_us = absl::ToUnixMicros(cutoff);
  int64_t deleted = 0;
  RETURN_IF_ERROR(sql::Guard("delete old alerts", [&] {
    soci::transaction transaction(sql);
    sql << "DELETE FROM alert_events WHERE alert_id IN (SELECT alert_id FROM "
           "alerts WHERE resolved_us > 0 AND resolved_us < :cutoff)",
        soci::use(cutoff_us);
    soci::statement statement =
        (sql.prepare << "DELETE FROM alerts WHERE resolved_us > 0 AND "
                        "resolved_us < :cutoff",
         soci::use(cutoff_us));
    statement.execute(true);
    deleted = statement.get_affected_rows();
    transaction.commit();
  }));
  return deleted;
}

}  // namespace ecliptix::server
