#include "server/metrics/metric_store.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/sql/session.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int64_t kMicrosPerMinute = 60'000'000;
constexpr int64_t kMicrosPerHour = 60 * kMicrosPerMinute;
constexpr size_t kMaxNameLength = 128;
constexpr size_t kMaxLabelValueLength = 1024;
constexpr int kMaxLabels = 16;
// Rows per statement when PostgreSQL takes them as arrays.
constexpr size_t kPostgresChunk = 5000;

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t CeilDiv(int64_t a, int64_t b) { return -FloorDiv(-a, b); }

int SlotOf(int64_t hour) {
  return static_cast<int>(hour - FloorDiv(hour, MetricStore::kRecentHours) *
                                     MetricStore::kRecentHours);
}

void EscapeInto(absl::string_view text, std::string* out) {
  for (char c : text) {
    if (c == '\\' || c == ',' || c == '=') out->push_back('\\');
    out->push_back(c);
  }
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

absl::Status ValidateSample(const v1::MetricSample& sample) {
  const std::string& metric = sample.metric();
  if (metric.empty()) return absl::InvalidArgumentError("metric is empty");
  if (metric.size() > kMaxNameLength || absl::ascii_isdigit(metric[0]) ||
      !std::all_of(metric.begin(), metric.end(), IsNameChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric \"", metric.substr(0, kMaxNameLength),
                     "\": letters, digits and '_' (not first a digit), at "
                     "most ",
                     kMaxNameLength, " characters"));
  }
  if (sample.labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric ", metric, ": more than ", kMaxLabels, " labels"));
  }
  for (const auto& [key, value] : sample.labels()) {
    if (key.empty() || key.size() > kMaxNameLength ||
        !std::all_of(key.begin(), key.end(), [](char c) {
          return IsNameChar(c) || c == '.' || c == '-' || c == '/';
        })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric ", metric, ": label name \"", key.substr(0, kMaxNameLength),
          "\" is not letters, digits, '_', '.', '-', '/'"));
    }
    if (value.size() > kMaxLabelValueLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", metric, ": label ", key, " is longer than ",
                       kMaxLabelValueLength, " characters"));
    }
  }
  if (!std::isfinite(sample.value())) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric ", metric, ": the value is not a finite number"));
  }
  return absl::OkStatus();
}

// sum, count, min and max of some values.
struct Aggregate {
  double sum = 0;
  int64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  void Add(double value) {
    sum += value;
    ++count;
    min = std::min(min, value);
    max = std::max(max, value);
  }
};

using BucketMap = absl::flat_hash_map<std::pair<int64_t, int64_t>, Aggregate>;

// PostgreSQL array literals of numbers ("{1,2,3}"): a whole chunk of rows
// travels as one parameter per column, one round trip per chunk.
std::string PgArray(const std::vector<long long>& values, size_t begin,
                    size_t end) {
  std::string text = "{";
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) text.push_back(',');
    absl::StrAppend(&text, values[i]);
  }
  text.push_back('}');
  return text;
}

std::string PgArray(const std::vector<double>& values, size_t begin,
                    size_t end) {
  std::string text = "{";
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) text.push_back(',');
    // Exact: 17 significant digits round-trip a double.
    absl::StrAppend(&text, absl::StrFormat("%.17g", values[i]));
  }
  text.push_back('}');
  return text;
}

void InsertSamples(soci::session& sql, bool postgres,
                   std::vector<long long>& ids, std::vector<long long>& times,
                   std::vector<double>& values) {
  if (ids.empty()) return;
  if (!postgres) {
    // SOCI's bulk binding: one prepared statement stepped per row, no
    // per-row overhead of SOCI's own.
    sql << "INSERT INTO metric_samples (series_id, time_us, value) VALUES "
           "(:series_id, :time_us, :value)",
        soci::use(ids), soci::use(times), soci::use(values);
    return;
  }
  for (size_t begin = 0; begin < ids.size(); begin += kPostgresChunk) {
    const size_t end = std::min(ids.size(), begin + kPostgresChunk);
    const std::string a = PgArray(ids, begin, end);
    const std::string b = PgArray(times, begin, end);
    const std::string c = PgArray(values, begin, end);
    sql << "INSERT INTO metric_samples (series_id, time_us, value) SELECT * "
           "FROM unnest(CAST(:a AS BIGINT[]), CAST(:b AS BIGINT[]), CAST(:c "
           "AS DOUBLE PRECISION[]))",
        soci::use(a), soci::use(b), soci::use(c);
  }
}

// Adds `buckets` to a rollup table (`column` is minute or hour).
void UpsertRollups(soci::session& sql, bool postgres, const char* table,
                   const char* column, const BucketMap& buckets) {
  if (buckets.empty()) return;
  std::vector<long long> ids, keys, counts;
  std::vector<double> sums, mins, maxes;
  ids.reserve(buckets.size());
  keys.reserve(buckets.size());
  counts.reserve(buckets.size());
  sums.reserve(buckets.size());
  mins.reserve(buckets.size());
  maxes.reserve(buckets.size());
  for (const auto& [key, aggregate] : buckets) {
    ids.push_back(key.first);
    keys.push_back(key.second);
    sums.push_back(aggregate.sum);
    counts.push_back(aggregate.count);
    mins.push_back(aggregate.min);
    maxes.push_back(aggregate.max);
  }
  // Table and column names are this file's constants, never input.
  const std::string conflict = absl::StrFormat(
      " ON CONFLICT (series_id, %s) DO UPDATE SET value_sum = %s.value_sum + "
      "excluded.value_sum, value_count = %s.value_count + "
      "excluded.value_count, value_min = %s(%s.value_min, "
      "excluded.value_min), value_max = %s(%s.value_max, excluded.value_max)",
      column, table, table, postgres ? "LEAST" : "MIN", table,
      postgres ? "GREATEST" : "MAX", table);
  if (!postgres) {
    sql << absl::StrCat("INSERT INTO ", table, " (series_id, ", column,
                        ", value_sum, value_count, value_min, value_max) "
                        "VALUES (:series_id, :bucket, :sum, :count, :min, "
                        ":max)",
                        conflict),
        soci::use(ids), soci::use(keys), soci::use(sums), soci::use(counts),
        soci::use(mins), soci::use(maxes);
    return;
  }
  for (size_t begin = 0; begin < ids.size(); begin += kPostgresChunk) {
    const size_t end = std::min(ids.size(), begin + kPostgresChunk);
    const std::string a = PgArray(ids, begin, end);
    const std::string b = PgArray(keys, begin, end);
    const std::string c = PgArray(sums, begin, end);
    const std::string d = PgArray(counts, begin, end);
    const std::string e = PgArray(mins, begin, end);
    const std::string f = PgArray(maxes, begin, end);
    sql << absl::StrCat(
        "INSERT INTO ", table, " (series_id, ", column,
        ", value_sum, value_count, value_min, value_max) SELECT * FROM "
        "unnest(CAST(:a AS BIGINT[]), CAST(:b AS BIGINT[]), CAST(:c AS "
        "DOUBLE PRECISION[]), CAST(:d AS BIGINT[]), CAST(:e AS DOUBLE "
        "PRECISION[]), CAST(:f AS DOUBLE PRECISION[]))",
        conflict),
        soci::use(a), soci::use(b), soci::use(c), soci::use(d), soci::use(e),
        soci::use(f);
  }
}

absl::Status CheckStep(absl::Duration step, Resolution resolution) {
  if (step <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("step: must be positive");
  }
  if (resolution == Resolution::kRaw) {
    if (step % absl::Microseconds(1) != absl::ZeroDuration()) {
      return absl::InvalidArgumentError("step: whole microseconds");
    }
    return absl::OkStatus();
  }
  const absl::Duration unit =
      resolution == Resolution::kMinute ? absl::Minutes(1) : absl::Hours(1);
  if (step % unit != absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("step: rollups need whole ",
                     resolution == Resolution::kMinute ? "minutes" : "hours",
                     ", not ", absl::FormatDuration(step)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string LabelKey(const Labels& labels) {
  std::string key;
  for (const auto& [name, value] : labels) {
    if (!key.empty()) key.push_back(',');
    EscapeInto(name, &key);
    key.push_back('=');
    EscapeInto(value, &key);
  }
  return key;
}

absl::StatusOr<Labels> ParseLabelKey(absl::string_view key) {
  Labels labels;
  std::string name, value;
  std::string* current = &name;
  bool escaped = false;
  bool seen_equals = false;
  auto finish = [&]() -> bool {
    if (!seen_equals) return false;
    labels[name] = value;
    name.clear();
    value.clear();
    current = &name;
    seen_equals = false;
    return true;
  };
  for (char c : key) {
    if (escaped) {
      current->push_back(c);
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '=' && !seen_equals) {
      seen_equals = true;
      current = &value;
    } else if (c == ',') {
      if (!finish()) break;
    } else if (c == '=') {
      return absl::InvalidArgumentError(
          absl::StrCat("label key \"", key, "\": unescaped '='"));
    } else {
      current->push_back(c);
    }
  }
  if (key.empty()) return labels;
  if (escaped || !finish()) {
    return absl::InvalidArgumentError(
        absl::StrCat("label key \"", key, "\" is not name=value,..."));
  }
  return labels;
}

std::string MetricStore::SeriesKey(absl::string_view database_id,
                                   absl::string_view metric,
                                   absl::string_view label_key) {
  // Database ids and metric names hold no NUL.
  return absl::StrCat(database_id, absl::string_view("\0", 1), metric,
                      absl::string_view("\0", 1), label_key);
}

absl::StatusOr<std::unique_ptr<MetricStore>> MetricStore::Open(
    const std::string& url, absl::Time now) {
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(url));
  if (parsed.backend == sql::Backend::kOdbc) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric store \"", parsed.redacted,
                     "\": sqlite:// or postgresql://, not ODBC"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> writer,
                   sql::OpenSession(parsed));
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> reader,
                   sql::OpenSession(parsed));
  if (parsed.backend == sql::Backend::kSqlite) {
    RETURN_IF_ERROR(sql::Guard("prepare the metric store", [&] {
      // Samples land in every series' own part of the tables: a larger
      // cache keeps those pages in memory between transactions (64 MB).
      *writer << "PRAGMA cache_size=-65536";
      *reader << "PRAGMA cache_size=-16384";
    }));
  }
  std::unique_ptr<MetricStore> store(
      new MetricStore(std::move(parsed), std::move(writer), std::move(reader)));
  RETURN_IF_ERROR(store->Load(now));
  return store;
}

absl::Status MetricStore::Load(absl::Time now) {
  absl::MutexLock write_lock(&write_mutex_);
  absl::MutexLock read_lock(&read_mutex_);
  soci::session& sql = *reader_;
  {
    absl::Status probe = sql::Guard("read metric series", [&] {
      int count = 0;
      sql << "SELECT COUNT(*) FROM metric_series", soci::into(count);
    });
    if (!probe.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state store ", url_.redacted,
          " has no metric tables (schema version 6): ", probe.message()));
    }
  }
  const int64_t now_hour = FloorDiv(absl::ToUnixMicros(now), kMicrosPerHour);
  absl::MutexLock lock(&state_mutex_);
  recent_floor_ = now_hour - (kRecentHours - 1);
  newest_hour_ = now_hour;
  return sql::Guard("load metric series", [&] {
    {
      long long id = 0;
      std::string database_id, metric, label_key;
      soci::statement statement =
          (sql.prepare << "SELECT series_id, database_id, metric, labels FROM "
                          "metric_series ORDER BY series_id",
           soci::into(id), soci::into(database_id), soci::into(metric),
           soci::into(label_key));
      statement.execute();
      while (statement.fetch()) {
        auto series = std::make_unique<Series>();
        series->id = id;
        series->database_id = database_id;
        series->metric = metric;
        series->label_key = label_key;
        absl::StatusOr<Labels> labels = ParseLabelKey(label_key);
        if (labels.ok()) series->labels = *std::move(labels);
        by_key_[SeriesKey(database_id, metric, label_key)] = series.get();
        by_metric_[metric].insert(id);
        next_series_id_ = std::max<int64_t>(next_series_id_, id + 1);
        series_[id] = std::move(series);
      }
    }
    {
      std::string database_id, instance;
      long long sequence = 0;
      soci::statement statement =
          (sql.prepare << "SELECT database_id, agent_instance, sequence FROM "
                          "metric_batches",
           soci::into(database_id), soci::into(instance), soci::into(sequence));
      statement.execute();
      while (statement.fetch()) {
        highest_[absl::StrCat(database_id, absl::string_view("\0", 1),
                              instance)] = static_cast<uint64_t>(sequence);
      }
    }
    // Per series: its recent hours, and its newest sample (the newest hour
    // when raw samples have expired).
    long long id = 0, floor = recent_floor_, hour = 0, time_us = 0;
    double sum = 0, max = 0, value = 0;
    soci::indicator indicator = soci::i_ok;
    soci::statement hours =
        (sql.prepare << "SELECT hour, value_sum, value_max FROM "
                        "metric_rollups_hourly WHERE series_id = :id AND hour "
                        ">= :floor",
         soci::use(id), soci::use(floor), soci::into(hour), soci::into(sum),
         soci::into(max));
    soci::statement latest =
        (sql.prepare << "SELECT time_us, value FROM metric_samples WHERE "
                        "series_id = :id ORDER BY time_us DESC LIMIT 1",
         soci::use(id), soci::into(time_us), soci::into(value));
    soci::statement last_hour =
        (sql.prepare << "SELECT MAX(hour) FROM metric_rollups_hourly WHERE "
                        "series_id = :id",
         soci::use(id), soci::into(hour, indicator));
    for (auto& [series_id, series] : series_) {
      id = series_id;
      hours.execute();
      while (hours.fetch()) PutHourLocked(*series, hour, sum, max);
      if (latest.execute(true)) {
        series->last_time = absl::FromUnixMicros(time_us);
        series->last_value = value;
        series->has_latest = true;
      } else {
        indicator = soci::i_null;
        last_hour.execute(true);
        if (indicator == soci::i_ok) {
          series->last_time = absl::FromUnixMicros((hour + 1) * kMicrosPerHour);
        }
      }
    }
    Logger("metrics")->info(
        "metric store: {} series, {} agent processes' batches known",
        series_.size(), highest_.size());
  });
}

void MetricStore::PutHourLocked(Series& series, int64_t hour, double sum,
                                double max) {
  if (hour < newest_hour_ - (kRecentHours - 1)) return;
  HourSlot& slot = series.hours[SlotOf(hour)];
  if (slot.hour != hour) {
    // An older hour's slot (the ring moved on), or empty.
    slot.hour = static_cast<int32_t>(hour);
    slot.sum = 0;
    slot.max = static_cast<float>(max);
  }
  slot.sum += sum;
  slot.max = std::max(slot.max, static_cast<float>(max));
}

absl::StatusOr<WriteSummary> MetricStore::Write(
    const std::vector<IncomingBatch>& batches, absl::Time now) {
  absl::MutexLock write_lock(&write_mutex_);
  WriteSummary summary;
  const int64_t now_us = absl::ToUnixMicros(now);
  struct NewSeries {
    int64_t id;
    std::string database_id;
    std::string metric;
    std::string label_key;
    Labels labels;
  };
  struct Instance {
    std::string database_id;
    std::string agent_instance;
    uint64_t stored = 0;   // highest stored before this write
    uint64_t highest = 0;  // after it
  };
  struct Latest {
    int64_t time_us = 0;
    double value = 0;
  };
  std::vector<NewSeries> created;
  absl::flat_hash_map<std::string, int64_t> created_by_key;
  std::map<std::string, Instance> instances;
  std::vector<std::string> instance_order;
  absl::flat_hash_map<int64_t, Latest> latest;
  std::vector<long long> raw_ids, raw_times;
  std::vector<double> raw_values;
  BucketMap minutes, hours;
  int64_t next_id;
  {
    // Only this writer changes what is read here.
    absl::ReaderMutexLock lock(&state_mutex_);
    next_id = next_series_id_;
    std::string key;
    for (const IncomingBatch& incoming : batches) {
      const v1::MetricBatch& batch = incoming.batch;
      std::string instance_key =
          absl::StrCat(incoming.database_id, absl::string_view("\0", 1),
                       batch.agent_instance());
      auto [it, inserted] = instances.try_emplace(instance_key);
      Instance& instance = it->second;
      if (inserted) {
        instance.database_id = incoming.database_id;
        instance.agent_instance = batch.agent_instance();
        auto found = highest_.find(instance_key);
        instance.stored = found == highest_.end() ? 0 : found->second;
        instance.highest = instance.stored;
        instance_order.push_back(instance_key);
      }
      if (batch.sequence() <= instance.highest) {
        ++summary.batches_repeated;
        continue;
      }
      instance.highest = batch.sequence();
      ++summary.batches_stored;
      summary.samples_dropped_by_agents += batch.dropped_samples();
      for (const v1::MetricSample& sample : batch.samples()) {
        if (absl::Status status = ValidateSample(sample); !status.ok()) {
          if (summary.samples_refused++ == 0) {
            summary.first_refusal = std::string(status.message());
          }
          continue;
        }
        Labels labels(sample.labels().begin(), sample.labels().end());
        std::string label_key = LabelKey(labels);
        key = SeriesKey(incoming.database_id, sample.metric(), label_key);
        int64_t id;
        if (auto found = by_key_.find(key); found != by_key_.end()) {
          id = found->second->id;
        } else if (auto made = created_by_key.find(key);
                   made != created_by_key.end()) {
          id = made->second;
        } else {
          id = next_id++;
          created_by_key.emplace(key, id);
          created.push_back({id, incoming.database_id, sample.metric(),
                             std::move(label_key), std::move(labels)});
        }
        const int64_t time_us =
            sample.has_time()
                ? absl::ToUnixMicros(FromProtoTimestamp(sample.time()))
                : now_us;
        const double value = sample.value();
        raw_ids.push_back(id);
        raw_times.push_back(time_us);
        raw_values.push_back(value);
        minutes[{id, FloorDiv(time_us, kMicrosPerMinute)}].Add(value);
        hours[{id, FloorDiv(time_us, kMicrosPerHour)}].Add(value);
        auto [newest, first] = latest.try_emplace(id);
        if (first || time_us >= newest->second.time_us) {
          newest->second = {time_us, value};
        }
        ++summary.samples_stored;
      }
    }
  }
  const bool pg = postgres();
  RETURN_IF_ERROR(sql::Guard("store metric samples", [&] {
    soci::session& sql = *writer_;
    soci::transaction transaction(sql);
    for (NewSeries& series : created) {
      long long id = series.id;
      long long created_us = now_us;
      sql << "INSERT INTO metric_series (series_id, database_id, metric, "
             "labels, created_us) VALUES (:id, :database_id, :metric, "
             ":labels, :created_us)",
          soci::use(id), soci::use(series.database_id),
          soci::use(series.metric), soci::use(series.label_key),
          soci::use(created_us);
    }
    InsertSamples(sql, pg, raw_ids, raw_times, raw_values);
    UpsertRollups(sql, pg, "metric_rollups", "minute", minutes);
    UpsertRollups(sql, pg, "metric_rollups_hourly", "hour", hours);
    for (const std::string& key : instance_order) {
      const Instance& instance = instances[key];
      if (instance.highest == instance.stored) continue;
      long long sequence = static_cast<long long>(instance.highest);
      long long stored_us = now_us;
      sql << "INSERT INTO metric_batches (database_id, agent_instance, "
             "sequence, stored_us) VALUES (:database_id, :agent_instance, "
             ":sequence, :stored_us) ON CONFLICT (database_id, agent_instance) "
             "DO UPDATE SET sequence = excluded.sequence, stored_us = "
             "excluded.stored_us",
          soci::use(instance.database_id), soci::use(instance.agent_instance),
          soci::use(sequence), soci::use(stored_us);
    }
    transaction.commit();
  }));
  // Committed: memory follows.
  {
    absl::MutexLock lock(&state_mutex_);
    for (NewSeries& made : created) {
      auto series = std::make_unique<Series>();
      series->id = made.id;
      series->database_id = std::move(made.database_id);
      series->metric = std::move(made.metric);
      series->label_key = std::move(made.label_key);
      series->labels = std::move(made.labels);
      by_key_[SeriesKey(series->database_id, series->metric,
                        series->label_key)] = series.get();
      by_metric_[series->metric].insert(made.id);
      series_[made.id] = std::move(series);
    }
    next_series_id_ = next_id;
    // The ring of recent hours moves with the clock, not with a sample from
    // an agent whose clock runs ahead.
    const int64_t now_hour = FloorDiv(now_us, kMicrosPerHour);
    for (const auto& [key, aggregate] : hours) {
      if (key.second > newest_hour_ && key.second <= now_hour + 1) {
        newest_hour_ = key.second;
      }
    }
    for (const auto& [key, aggregate] : hours) {
      if (key.second > newest_hour_) {
        // Ahead of the clock: not in memory, so memory cannot answer for
        // that hour (the hour rollups do).
        hours_not_in_memory_.insert(key.second);
        continue;
      }
      auto it = series_.find(key.first);
      if (it != series_.end()) {
        PutHourLocked(*it->second, key.second, aggregate.sum, aggregate.max);
      }
    }
    while (!hours_not_in_memory_.empty() &&
           *hours_not_in_memory_.begin() < newest_hour_ - (kRecentHours - 1)) {
      hours_not_in_memory_.erase(hours_not_in_memory_.begin());
    }
    for (const auto& [id, newest] : latest) {
      auto it = series_.find(id);
      if (it == series_.end()) continue;
      Series& series = *it->second;
      const absl::Time time = absl::FromUnixMicros(newest.time_us);
      if (!series.has_latest || time >= series.last_time) {
        series.last_time = time;
        series.last_value = newest.value;
        series.has_latest = true;
      }
    }
    for (const std::string& key : instance_order) {
      const Instance& instance = instances[key];
      highest_[key] = instance.highest;
      AckFor& ack = summary.acks.emplace_back();
      ack.database_id = instance.database_id;
      ack.ack.set_agent_instance(instance.agent_instance);
      ack.ack.set_sequence(instance.highest);
    }
  }
  return summary;
}

std::vector<const MetricStore::Series*> MetricStore::MatchLocked(
    const SeriesFilter& filter) const {
  std::vector<const Series*> matched;
  auto ids = by_metric_.find(filter.metric);
  if (ids == by_metric_.end()) return matched;
  for (int64_t id : ids->second) {
    const Series& series = *series_.at(id);
    if (filter.databases && filter.databases->count(series.database_id) == 0)
      continue;
    bool labels_match = true;
    for (const auto& [name, value] : filter.labels) {
      auto label = series.labels.find(name);
      if (label == series.labels.end() || label->second != value) {
        labels_match = false;
        break;
      }
    }
    if (labels_match) matched.push_back(&series);
  }
  std::sort(matched.begin(), matched.end(),
            [](const Series* a, const Series* b) {
              return std::tie(a->database_id, a->metric, a->label_key) <
                     std::tie(b->database_id, b->metric, b->label_key);
            });
  return matched;
}

absl::StatusOr<std::vector<SeriesPoints>> MetricStore::QueryPoints(
    const SeriesFilter& filter, absl::Time start, absl::Time end,
    absl::Duration step, bool average, Resolution resolution) {
  RETURN_IF_ERROR(CheckStep(step, resolution));
  if (end <= start) {
    return absl::InvalidArgumentError("start_time: must be before end_time");
  }
  if ((end - start) / step > kMaxPoints) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step: ", absl::FormatDuration(step), " gives more than ", kMaxPoints,
        " points over ", absl::FormatDuration(end - start)));
  }
  struct Wanted {
    int64_t id;
    std::string database_id;
    Labels labels;
  };
  std::vector<Wanted> wanted;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    for (const Series* series : MatchLocked(filter)) {
      wanted.push_back({series->id, series->database_id, series->labels});
    }
  }
  std::vector<SeriesPoints> result;
  if (wanted.empty()) return result;
  const int64_t start_us = absl::ToUnixMicros(start);
  const int64_t end_us = absl::ToUnixMicros(end);
  const int64_t step_us = absl::ToInt64Microseconds(step);
  // Bounds and step in the table's unit (microseconds, minutes, hours).
  long long id = 0, from = 0, to = 0, divisor = 0;
  int64_t unit_us = 1;
  std::string query;
  switch (resolution) {
    case Resolution::kRaw:
      query =
          "SELECT time_us / :divisor, SUM(value), COUNT(*) FROM "
          "metric_samples WHERE series_id = :id AND time_us >= :from AND "
          "time_us < :to GROUP BY 1 ORDER BY 1";
      break;
    case Resolution::kMinute:
      unit_us = kMicrosPerMinute;
      query =
          "SELECT minute / :divisor, SUM(value_sum), SUM(value_count) FROM "
          "metric_rollups WHERE series_id = :id AND minute >= :from AND "
          "minute < :to GROUP BY 1 ORDER BY 1";
      break;
    case Resolution::kHour:
      unit_us = kMicrosPerHour;
      query =
          "SELECT hour / :divisor, SUM(value_sum), SUM(value_count) FROM "
          "metric_rollups_hourly WHERE series_id = :id AND hour >= :from AND "
          "hour < :to GROUP BY 1 ORDER BY 1";
      break;
  }
  divisor = step_us / unit_us;
  from = FloorDiv(start_us, unit_us);
  to = CeilDiv(end_us, unit_us);
  absl::MutexLock read_lock(&read_mutex_);
  RETURN_IF_ERROR(sql::Guard("read metric series", [&] {
    long long bucket = 0, count = 0;
    double sum = 0;
    soci::statement statement =
        (reader_->prepare << query, soci::use(divisor), soci::use(id),
         soci::use(from), soci::use(to), soci::into(bucket), soci::into(sum),
         soci::into(count));
    for (Wanted& series : wanted) {
      id = series.id;
      SeriesPoints points;
      statement.execute();
      while (statement.fetch()) {
        if (count <= 0) continue;
        points.points.push_back(
            {absl::FromUnixMicros(bucket * step_us),
             average ? sum / static_cast<double>(count) : sum});
      }
      if (points.points.empty()) continue;
      points.database_id = std::move(series.database_id);
      points.labels = std::move(series.labels);
      result.push_back(std::move(points));
    }
  }));
  return result;
}

bool MetricStore::RecentTotalsLocked(const std::vector<const Series*>& series,
                                     int64_t first_hour, int64_t last_hour,
                                     std::vector<SeriesTotal>* totals) const {
  if (first_hour < recent_floor_ ||
      first_hour < newest_hour_ - (kRecentHours - 1)) {
    return false;
  }
  if (auto gap = hours_not_in_memory_.lower_bound(first_hour);
      gap != hours_not_in_memory_.end() && *gap <= last_hour) {
    return false;
  }
  for (const Series* one : series) {
    bool found = false;
    double sum = 0;
    float max = 0;
    for (int64_t hour = first_hour; hour <= last_hour; ++hour) {
      const HourSlot& slot = one->hours[SlotOf(hour)];
      if (slot.hour != hour) continue;
      sum += slot.sum;
      max = found ? std::max(max, slot.max) : slot.max;
      found = true;
    }
    if (!found) continue;
    SeriesTotal& total = totals->emplace_back();
    total.database_id = one->database_id;
    total.metric = one->metric;
    total.labels = one->labels;
    total.sum = sum;
    total.max = max;
  }
  return true;
}

absl::StatusOr<Totals> MetricStore::QueryTotals(
    const std::vector<std::string>& metrics,
    const std::optional<std::set<std::string>>& databases, absl::Time start,
    absl::Time end, absl::Time now) {
  if (end <= start) {
    return absl::InvalidArgumentError("range: must be positive");
  }
  Totals totals;
  const int64_t start_us = absl::ToUnixMicros(start);
  const int64_t end_us = absl::ToUnixMicros(end);
  struct Wanted {
    int64_t id;
    std::string database_id;
    std::string metric;
    Labels labels;
  };
  std::vector<Wanted> wanted;
  int64_t unit_us;
  if (end - start <= kMinuteTotalsUpTo) {
    totals.resolution = Resolution::kMinute;
    unit_us = kMicrosPerMinute;
  } else {
    totals.resolution = Resolution::kHour;
    unit_us = kMicrosPerHour;
  }
  const long long from = FloorDiv(start_us, unit_us);
  const long long to = CeilDiv(end_us, unit_us);
  totals.start = absl::FromUnixMicros(from * unit_us);
  totals.end = end;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    std::vector<const Series*> matched;
    for (const std::string& metric : metrics) {
      SeriesFilter filter;
      filter.metric = metric;
      filter.databases = databases;
      std::vector<const Series*> more = MatchLocked(filter);
      matched.insert(matched.end(), more.begin(), more.end());
    }
    // The last 26 hours from memory: no database access at all.
    if (totals.resolution == Resolution::kHour &&
        end <= now + absl::Minutes(1) &&
        RecentTotalsLocked(matched, from, to - 1, &totals.series)) {
      return totals;
    }
    for (const Series* series : matched) {
      wanted.push_back(
          {series->id, series->database_id, series->metric, series->labels});
    }
  }
  const std::string query =
      totals.resolution == Resolution::kMinute
          ? "SELECT COUNT(*), SUM(value_sum), MAX(value_max) FROM "
            "metric_rollups WHERE series_id = :id AND minute >= :from AND "
            "minute < :to"
          : "SELECT COUNT(*), SUM(value_sum), MAX(value_max) FROM "
            "metric_rollups_hourly WHERE series_id = :id AND hour >= :from "
            "AND hour < :to";
  absl::MutexLock read_lock(&read_mutex_);
  RETURN_IF_ERROR(sql::Guard("read metric totals", [&] {
    long long id = 0, count = 0, first = from, last = to;
    double sum = 0, max = 0;
    soci::indicator sum_indicator = soci::i_ok, max_indicator = soci::i_ok;
    soci::statement statement =
        (reader_->prepare << query, soci::use(id), soci::use(first),
         soci::use(last), soci::into(count), soci::into(sum, sum_indicator),
         soci::into(max, max_indicator));
    for (Wanted& series : wanted) {
      id = series.id;
      statement.execute(true);
      if (count == 0 || sum_indicator != soci::i_ok) continue;
      SeriesTotal& total = totals.series.emplace_back();
      total.database_id = std::move(series.database_id);
      total.metric = std::move(series.metric);
      total.labels = std::move(series.labels);
      total.sum = sum;
      total.max = max_indicator == soci::i_ok ? max : 0;
    }
  }));
  return totals;
}

std::vector<LatestValue> MetricStore::LatestValues() const {
  std::vector<const Series*> ordered;
  absl::ReaderMutexLock lock(&state_mutex_);
  ordered.reserve(series_.size());
  for (const auto& [id, series] : series_) {
    if (series->has_latest) ordered.push_back(series.get());
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const Series* a, const Series* b) {
              return std::tie(a->database_id, a->metric, a->label_key) <
                     std::tie(b->database_id, b->metric, b->label_key);
            });
  std::vector<LatestValue> values;
  values.reserve(ordered.size());
  for (const Series* series : ordered) {
    values.push_back({series->database_id, series->metric, series->labels,
                      series->last_value, series->last_time});
  }
  return values;
}

bool MetricStore::HasMetric(absl::string_view metric) const {
  absl::ReaderMutexLock lock(&state_mutex_);
  auto it = by_metric_.find(std::string(metric));
  return it != by_metric_.end() && !it->second.empty();
}

std::vector<std::string> MetricStore::MetricNames() const {
  absl::ReaderMutexLock lock(&state_mutex_);
  std::vector<std::string> names;
  for (const auto& [metric, ids] : by_metric_) {
    if (!ids.empty()) names.push_back(metric);
  }
  return names;
}

int64_t MetricStore::series_count() const {
  absl::ReaderMutexLock lock(&state_mutex_);
  return static_cast<int64_t>(series_.size());
}

int64_t MetricStore::rows_deleted() const {
  absl::ReaderMutexLock lock(&state_mutex_);
  return rows_deleted_;
}

absl::StatusOr<bool> MetricStore::EnforceRetention(absl::Time raw_cutoff,
                                                   absl::Time rollup_cutoff,
                                                   int64_t* cursor,
                                                   int max_series) {
  absl::MutexLock write_lock(&write_mutex_);
  std::vector<long long> ids;
  std::vector<long long> expired;  // no data since rollup_cutoff
  bool round_done = false;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    auto it = series_.upper_bound(*cursor);
    for (; it != series_.end() && static_cast<int>(ids.size()) < max_series;
         ++it) {
      ids.push_back(it->first);
      if (it->second->last_time < rollup_cutoff) expired.push_back(it->first);
    }
    round_done = it == series_.end();
  }
  long long raw_us = absl::ToUnixMicros(raw_cutoff);
  const int64_t rollup_us = absl::ToUnixMicros(rollup_cutoff);
  long long minute = FloorDiv(rollup_us, kMicrosPerMinute);
  long long hour = FloorDiv(rollup_us, kMicrosPerHour);
  long long stored_before = rollup_us;
  int64_t deleted = 0;
  std::vector<std::string> silent_instances;
  RETURN_IF_ERROR(sql::Guard("enforce metric retention", [&] {
    soci::session& sql = *writer_;
    soci::transaction transaction(sql);
    long long id = 0;
    soci::statement raw =
        (sql.prepare << "DELETE FROM metric_samples WHERE series_id = :id AND "
                        "time_us < :cutoff",
         soci::use(id), soci::use(raw_us));
    soci::statement minutes =
        (sql.prepare << "DELETE FROM metric_rollups WHERE series_id = :id AND "
                        "minute < :cutoff",
         soci::use(id), soci::use(minute));
    soci::statement hours =
        (sql.prepare << "DELETE FROM metric_rollups_hourly WHERE series_id = "
                        ":id AND hour < :cutoff",
         soci::use(id), soci::use(hour));
    for (long long series_id : ids) {
      id = series_id;
      raw.execute(true);
      deleted += raw.get_affected_rows();
      minutes.execute(true);
      deleted += minutes.get_affected_rows();
      hours.execute(true);
      deleted += hours.get_affected_rows();
    }
    // Series whose last sample is older than every rollup kept have no rows
    // left: forget them (a new sample makes them again).
    for (long long series_id : expired) {
      id = series_id;
      sql << "DELETE FROM metric_series WHERE series_id = :id", soci::use(id);
    }
    if (round_done) {
      std::string database_id, instance;
      soci::statement silent =
          (sql.prepare << "SELECT database_id, agent_instance FROM "
                          "metric_batches WHERE stored_us < :before",
           soci::use(stored_before), soci::into(database_id),
           soci::into(instance));
      silent.execute();
      while (silent.fetch()) {
        silent_instances.push_back(
            absl::StrCat(database_id, absl::string_view("\0", 1), instance));
      }
      sql << "DELETE FROM metric_batches WHERE stored_us < :before",
          soci::use(stored_before);
    }
    transaction.commit();
  }));
  absl::MutexLock lock(&state_mutex_);
  rows_deleted_ += deleted;
  for (long long series_id : expired) {
    auto it = series_.find(series_id);
    if (it == series_.end()) continue;
    Series& series = *it->second;
    by_key_.erase(
        SeriesKey(series.database_id, series.metric, series.label_key));
    auto ids_of_metric = by_metric_.find(series.metric);
    if (ids_of_metric != by_metric_.end()) {
      ids_of_metric->second.erase(series_id);
      if (ids_of_metric->second.empty()) by_metric_.erase(ids_of_metric);
    }
    series_.erase(it);
  }
  for (const std::string& key : silent_instances) highest_.erase(key);
  *cursor = round_done ? 0 : ids.back();
  return round_done;
}

}  // namespace ecliptix::server
