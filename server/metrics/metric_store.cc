#include "server/metrics/metric_store.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
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
// Raw samples are keyed by 10 minutes (`bucket`), rollups by hour.
constexpr int64_t kMicrosPerBucket = 10 * kMicrosPerMinute;
constexpr int64_t kBucketsPerHour = kMicrosPerHour / kMicrosPerBucket;
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

// Puts the rows in index order (bucket, series, time).
void SortSamples(std::vector<long long>& buckets, std::vector<long long>& ids,
                 std::vector<long long>& times, std::vector<long long>& seqs,
                 std::vector<double>& values) {
  std::vector<uint32_t> order(ids.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return std::tie(buckets[a], ids[a], times[a]) <
           std::tie(buckets[b], ids[b], times[b]);
  });
  auto permute = [&order](auto& column) {
    std::remove_reference_t<decltype(column)> sorted;
    sorted.reserve(column.size());
    for (uint32_t i : order) sorted.push_back(column[i]);
    column.swap(sorted);
  };
  permute(buckets);
  permute(ids);
  permute(times);
  permute(seqs);
  permute(values);
}

void InsertSamples(soci::session& sql, bool postgres,
                   std::vector<long long>& buckets, std::vector<long long>& ids,
                   std::vector<long long>& times, std::vector<long long>& seqs,
                   std::vector<double>& values) {
  if (ids.empty()) return;
  if (!postgres) {
    // SOCI's bulk binding: one prepared statement stepped per row, no
    // per-row overhead of SOCI's own.
    sql << "INSERT INTO metric_samples (bucket, series_id, time_us, seq, "
           "value) VALUES (:bucket, :series_id, :time_us, :seq, :value)",
        soci::use(buckets), soci::use(ids), soci::use(times), soci::use(seqs),
        soci::use(values);
    return;
  }
  for (size_t begin = 0; begin < ids.size(); begin += kPostgresChunk) {
    const size_t end = std::min(ids.size(), begin + kPostgresChunk);
    const std::string a = PgArray(buckets, begin, end);
    const std::string b = PgArray(ids, begin, end);
    const std::string c = PgArray(times, begin, end);
    const std::string d = PgArray(seqs, begin, end);
    const std::string e = PgArray(values, begin, end);
    sql << "INSERT INTO metric_samples (bucket, series_id, time_us, seq, "
           "value) SELECT * FROM unnest(CAST(:a AS BIGINT[]), CAST(:b AS "
           "BIGINT[]), CAST(:c AS BIGINT[]), CAST(:d AS BIGINT[]), CAST(:e AS "
           "DOUBLE PRECISION[]))",
        soci::use(a), soci::use(b), soci::use(c), soci::use(d), soci::use(e);
  }
}

// Adds `buckets` (by series and minute, or series and hour) to a rollup
// table.
// `replace`: the rows become the buckets (rolling up); otherwise the buckets
// are added to them (late samples).
void UpsertRollups(soci::session& sql, bool postgres, bool minutes,
                   const BucketMap& buckets, bool replace = false) {
  if (buckets.empty()) return;
  std::vector<long long> hours, ids, keys, counts;
  std::vector<double> sums, mins, maxes;
  for (auto* column : {&hours, &ids, &keys, &counts})
    column->reserve(buckets.size());
  for (auto* column : {&sums, &mins, &maxes}) column->reserve(buckets.size());
  // In index order (hour, series, minute): each row lands next to the last.
  std::vector<const BucketMap::value_type*> ordered;
  ordered.reserve(buckets.size());
  for (const auto& entry : buckets) ordered.push_back(&entry);
  std::sort(ordered.begin(), ordered.end(), [&](auto* a, auto* b) {
    const int64_t hour_a =
        minutes ? FloorDiv(a->first.second, 60) : a->first.second;
    const int64_t hour_b =
        minutes ? FloorDiv(b->first.second, 60) : b->first.second;
    return std::tie(hour_a, a->first.first, a->first.second) <
           std::tie(hour_b, b->first.first, b->first.second);
  });
  for (const auto* entry : ordered) {
    const auto& [key, aggregate] = *entry;
    ids.push_back(key.first);
    hours.push_back(minutes ? FloorDiv(key.second, 60) : key.second);
    keys.push_back(key.second);
    sums.push_back(aggregate.sum);
    counts.push_back(aggregate.count);
    mins.push_back(aggregate.min);
    maxes.push_back(aggregate.max);
  }
  // Table and column names are this file's constants, never input.
  const char* table = minutes ? "metric_rollups" : "metric_rollups_hourly";
  const std::string columns =
      minutes ? "hour, series_id, minute" : "hour, series_id";
  const std::string conflict =
      replace
          ? absl::StrFormat(
                " ON CONFLICT (%s) DO UPDATE SET value_sum = "
                "excluded.value_sum, value_count = excluded.value_count, "
                "value_min = excluded.value_min, value_max = "
                "excluded.value_max",
                columns)
          : absl::StrFormat(
                " ON CONFLICT (%s) DO UPDATE SET value_sum = %s.value_sum + "
                "excluded.value_sum, value_count = %s.value_count + "
                "excluded.value_count, value_min = %s(%s.value_min, "
                "excluded.value_min), value_max = %s(%s.value_max, "
                "excluded.value_max)",
                columns, table, table, postgres ? "LEAST" : "MIN", table,
                postgres ? "GREATEST" : "MAX", table);
  if (!postgres) {
    const std::string insert = absl::StrCat(
        "INSERT INTO ", table, " (", columns,
        ", value_sum, value_count, value_min, value_max) VALUES (:hour, "
        ":series_id, ",
        minutes ? ":minute, " : "", ":sum, :count, :min, :max)", conflict);
    if (minutes) {
      sql << insert, soci::use(hours), soci::use(ids), soci::use(keys),
          soci::use(sums), soci::use(counts), soci::use(mins), soci::use(maxes);
    } else {
      sql << insert, soci::use(hours), soci::use(ids), soci::use(sums),
          soci::use(counts), soci::use(mins), soci::use(maxes);
    }
    return;
  }
  for (size_t begin = 0; begin < ids.size(); begin += kPostgresChunk) {
    const size_t end = std::min(ids.size(), begin + kPostgresChunk);
    const std::string a = PgArray(hours, begin, end);
    const std::string b = PgArray(ids, begin, end);
    const std::string c = PgArray(keys, begin, end);
    const std::string d = PgArray(sums, begin, end);
    const std::string e = PgArray(counts, begin, end);
    const std::string f = PgArray(mins, begin, end);
    const std::string g = PgArray(maxes, begin, end);
    const std::string rest =
        "CAST(:d AS DOUBLE PRECISION[]), CAST(:e AS BIGINT[]), CAST(:f AS "
        "DOUBLE PRECISION[]), CAST(:g AS DOUBLE PRECISION[]))";
    if (minutes) {
      sql << absl::StrCat("INSERT INTO ", table, " (", columns,
                          ", value_sum, value_count, value_min, value_max) "
                          "SELECT * FROM unnest(CAST(:a AS BIGINT[]), CAST(:b "
                          "AS BIGINT[]), CAST(:c AS BIGINT[]), ",
                          rest, conflict),
          soci::use(a), soci::use(b), soci::use(c), soci::use(d), soci::use(e),
          soci::use(f), soci::use(g);
    } else {
      sql << absl::StrCat("INSERT INTO ", table, " (", columns,
                          ", value_sum, value_count, value_min, value_max) "
                          "SELECT * FROM unnest(CAST(:a AS BIGINT[]), CAST(:b "
                          "AS BIGINT[]), ",
                          rest, conflict),
          soci::use(a), soci::use(b), soci::use(d), soci::use(e), soci::use(f),
          soci::use(g);
    }
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

namespace {

// LabelKey of a sample's labels, appended to `out`.
void AppendLabelKey(
    const google::protobuf::Map<std::string, std::string>& labels,
    std::string* out) {
  if (labels.empty()) return;
  auto append = [out](const std::string& name, const std::string& value) {
    EscapeInto(name, out);
    out->push_back('=');
    EscapeInto(value, out);
  };
  if (labels.size() == 1) {
    append(labels.begin()->first, labels.begin()->second);
    return;
  }
  // As LabelKey: keys sorted (a protobuf map has no order).
  std::vector<
      const google::protobuf::Map<std::string, std::string>::value_type*>
      sorted;
  sorted.reserve(labels.size());
  for (const auto& label : labels) sorted.push_back(&label);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->first < b->first; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) out->push_back(',');
    append(sorted[i]->first, sorted[i]->second);
  }
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
  // Random high bits for this process's samples: two samples of a series at
  // one time never share a key, whichever process stored them.
  next_seq_ = static_cast<int64_t>(std::random_device()() & 0x7fffffff) << 32;
  recent_floor_ = now_hour - (kRecentHours - 1);
  newest_hour_ = now_hour;
  return sql::Guard("load metric series", [&] {
    {
      long long id = 0, last_time_us = 0;
      double last_value = 0, counter_total = 0;
      int counter = 0;
      std::string database_id, metric, label_key;
      soci::statement statement =
          (sql.prepare << "SELECT series_id, database_id, metric, labels, "
                          "last_time_us, last_value, counter, counter_total "
                          "FROM metric_series ORDER BY series_id",
           soci::into(id), soci::into(database_id), soci::into(metric),
           soci::into(label_key), soci::into(last_time_us),
           soci::into(last_value), soci::into(counter),
           soci::into(counter_total));
      statement.execute();
      while (statement.fetch()) {
        auto series = std::make_unique<Series>();
        series->id = id;
        series->database_id = database_id;
        series->metric = metric;
        series->label_key = label_key;
        absl::StatusOr<Labels> labels = ParseLabelKey(label_key);
        series->labels = std::make_shared<const Labels>(
            labels.ok() ? *std::move(labels) : Labels());
        series->last_time = absl::FromUnixMicros(last_time_us);
        series->last_value = last_value;
        series->has_latest = true;
        series->counter = counter != 0;
        series->counter_total = counter_total;
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
    // Where rolling up got to; the first time, the oldest raw hour (or now).
    {
      std::string name;
      long long value = 0;
      bool have_hour = false;
      soci::statement state =
          (sql.prepare << "SELECT name, value FROM metric_state",
           soci::into(name), soci::into(value));
      state.execute();
      while (state.fetch()) {
        if (name == "roll_hour") {
          roll_hour_ = value;
          have_hour = true;
        } else if (name == "roll_series") {
          roll_series_ = value;
        }
      }
      if (!have_hour) {
        long long hour = 0;
        soci::indicator indicator = soci::i_ok;
        sql << "SELECT MIN(bucket) FROM metric_samples",
            soci::into(hour, indicator);
        roll_hour_ = indicator == soci::i_ok ? FloorDiv(hour, kBucketsPerHour)
                                             : now_hour;
        roll_series_ = 0;
      }
    }
    // The recent hours of every series: the hour rollups of the hours rolled
    // up, the raw samples of the rest (the current hour, normally).
    long long id = 0, floor = recent_floor_, roll = roll_hour_, hour = 0;
    long long raw_from = std::max(recent_floor_, roll_hour_) * kBucketsPerHour;
    long long bucket = 0;
    double sum = 0, max = 0;
    soci::statement hours =
        (sql.prepare << "SELECT series_id, hour, value_sum, value_max FROM "
                        "metric_rollups_hourly WHERE hour >= :floor AND hour "
                        "< :roll",
         soci::use(floor), soci::use(roll), soci::into(id), soci::into(hour),
         soci::into(sum), soci::into(max));
    soci::statement raw =
        (sql.prepare << "SELECT series_id, bucket, SUM(value), MAX(value) "
                        "FROM metric_samples WHERE bucket >= :from GROUP BY "
                        "bucket, series_id",
         soci::use(raw_from), soci::into(id), soci::into(bucket),
         soci::into(sum), soci::into(max));
    hours.execute();
    while (hours.fetch()) {
      auto it = series_.find(id);
      if (it != series_.end()) PutHourLocked(*it->second, hour, sum, max);
    }
    raw.execute();
    while (raw.fetch()) {
      auto it = series_.find(id);
      if (it != series_.end()) {
        PutHourLocked(*it->second, FloorDiv(bucket, kBucketsPerHour), sum, max);
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
    // A delta metric's amounts stored now, added to its running total.
    bool counter = false;
    double counter_sum = 0;
  };
  std::vector<NewSeries> created;
  absl::flat_hash_map<std::string, int64_t> created_by_key;
  std::map<std::string, Instance> instances;
  std::vector<std::string> instance_order;
  absl::flat_hash_map<int64_t, Latest> latest;
  std::vector<long long> raw_buckets, raw_ids, raw_times, raw_seqs;
  std::vector<double> raw_values;
  // Per series and hour, for memory; and the rollups of samples whose hour
  // is rolled up already (late ones).
  BucketMap hours, late_minutes, late_hours;
  int64_t next_id, roll_hour, roll_series, next_seq;
  {
    // Only this writer changes what is read here.
    absl::ReaderMutexLock lock(&state_mutex_);
    next_id = next_series_id_;
    next_seq = next_seq_;
    roll_hour = roll_hour_;
    roll_series = roll_series_;
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
        // The series key built in place: no allocation for a known series.
        key.clear();
        key.append(incoming.database_id);
        key.push_back('\0');
        key.append(sample.metric());
        key.push_back('\0');
        const size_t label_key_start = key.size();
        AppendLabelKey(sample.labels(), &key);
        int64_t id;
        if (auto found = by_key_.find(key); found != by_key_.end()) {
          id = found->second->id;
        } else if (auto made = created_by_key.find(key);
                   made != created_by_key.end()) {
          id = made->second;
        } else {
          id = next_id++;
          created_by_key.emplace(key, id);
          created.push_back(
              {id, incoming.database_id, sample.metric(),
               key.substr(label_key_start),
               Labels(sample.labels().begin(), sample.labels().end())});
        }
        const int64_t time_us =
            sample.has_time()
                ? absl::ToUnixMicros(FromProtoTimestamp(sample.time()))
                : now_us;
        const double value = sample.value();
        const int64_t hour = FloorDiv(time_us, kMicrosPerHour);
        raw_buckets.push_back(FloorDiv(time_us, kMicrosPerBucket));
        raw_ids.push_back(id);
        raw_times.push_back(time_us);
        raw_seqs.push_back(next_seq++);
        raw_values.push_back(value);
        hours[{id, hour}].Add(value);
        if (hour < roll_hour || (hour == roll_hour && id <= roll_series)) {
          late_minutes[{id, FloorDiv(time_us, kMicrosPerMinute)}].Add(value);
          late_hours[{id, hour}].Add(value);
        }
        auto [newest, first] = latest.try_emplace(id);
        if (first || time_us >= newest->second.time_us) {
          newest->second.time_us = time_us;
          newest->second.value = value;
        }
        if (sample.kind() == v1::METRIC_KIND_DELTA) {
          newest->second.counter = true;
          // A counter only grows: an amount that is not a finite count
          // (NaN, negative) is stored but not added.
          if (std::isfinite(value) && value > 0) {
            newest->second.counter_sum += value;
          }
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
      // Created with its latest value: a series never has none saved.
      const Latest& newest = latest[series.id];
      long long last_time_us = newest.time_us;
      double last_value = newest.value;
      int counter = newest.counter ? 1 : 0;
      double counter_total = newest.counter_sum;
      sql << "INSERT INTO metric_series (series_id, database_id, metric, "
             "labels, created_us, last_time_us, last_value, counter, "
             "counter_total) VALUES (:id, :database_id, :metric, :labels, "
             ":created_us, :last_time_us, :last_value, :counter, "
             ":counter_total)",
          soci::use(id), soci::use(series.database_id),
          soci::use(series.metric), soci::use(series.label_key),
          soci::use(created_us), soci::use(last_time_us), soci::use(last_value),
          soci::use(counter), soci::use(counter_total);
    }
    SortSamples(raw_buckets, raw_ids, raw_times, raw_seqs, raw_values);
    InsertSamples(sql, pg, raw_buckets, raw_ids, raw_times, raw_seqs,
                  raw_values);
    UpsertRollups(sql, pg, /*minutes=*/true, late_minutes);
    UpsertRollups(sql, pg, /*minutes=*/false, late_hours);
    // The new highest sequences, in one statement.
    std::vector<std::string> database_ids, agent_instances;
    std::vector<long long> sequences, stored_times;
    for (const std::string& key : instance_order) {
      const Instance& instance = instances[key];
      if (instance.highest == instance.stored) continue;
      database_ids.push_back(instance.database_id);
      agent_instances.push_back(instance.agent_instance);
      sequences.push_back(static_cast<long long>(instance.highest));
      stored_times.push_back(now_us);
    }
    if (!database_ids.empty()) {
      sql << "INSERT INTO metric_batches (database_id, agent_instance, "
             "sequence, stored_us) VALUES (:database_id, :agent_instance, "
             ":sequence, :stored_us) ON CONFLICT (database_id, agent_instance) "
             "DO UPDATE SET sequence = excluded.sequence, stored_us = "
             "excluded.stored_us",
          soci::use(database_ids), soci::use(agent_instances),
          soci::use(sequences), soci::use(stored_times);
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
      series->labels = std::make_shared<const Labels>(std::move(made.labels));
      by_key_[SeriesKey(series->database_id, series->metric,
                        series->label_key)] = series.get();
      by_metric_[series->metric].insert(made.id);
      series_[made.id] = std::move(series);
    }
    next_series_id_ = next_id;
    next_seq_ = next_seq;
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
        series.latest_dirty = true;
      }
      if (newest.counter) {
        series.counter = true;
        series.counter_total += newest.counter_sum;
        series.latest_dirty = true;
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
    const SeriesFilter& filter, bool sorted) const {
  std::vector<const Series*> matched;
  auto ids = by_metric_.find(filter.metric);
  if (ids == by_metric_.end()) return matched;
  for (int64_t id : ids->second) {
    const Series& series = *series_.at(id);
    if (filter.databases && filter.databases->count(series.database_id) == 0)
      continue;
    bool labels_match = true;
    for (const auto& [name, value] : filter.labels) {
      auto label = series.labels->find(name);
      if (label == series.labels->end() || label->second != value) {
        labels_match = false;
        break;
      }
    }
    if (labels_match) matched.push_back(&series);
  }
  if (!sorted) return matched;
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
  const int64_t start_us = absl::ToUnixMicros(start);
  const int64_t end_us = absl::ToUnixMicros(end);
  const long long first_hour = FloorDiv(start_us, kMicrosPerHour);
  const long long last_hour = FloorDiv(end_us - 1, kMicrosPerHour);
  if (last_hour - first_hour > kMaxRangeHours) {
    return absl::InvalidArgumentError(absl::StrCat(
        "start_time: ranges of at most ", kMaxRangeHours / 24, " days"));
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
      wanted.push_back({series->id, series->database_id, *series->labels});
    }
  }
  std::vector<SeriesPoints> result;
  if (wanted.empty()) return result;
  const int64_t step_us = absl::ToInt64Microseconds(step);
  // Bounds and step in the rollup table's unit (minutes, hours), and in
  // microseconds for the raw samples (the same steps: aligned to multiples of
  // the step since the epoch). Each hour is one seek: (hour, series) leads
  // every index. Hours not rolled up yet are read from the raw samples.
  int64_t unit_us = 1;
  std::string rollup_query;
  int64_t roll_hour;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    roll_hour = roll_hour_;
  }
  switch (resolution) {
    case Resolution::kRaw:
      break;
    case Resolution::kMinute:
      unit_us = kMicrosPerMinute;
      rollup_query =
          "SELECT minute / :divisor, SUM(value_sum), SUM(value_count) FROM "
          "metric_rollups WHERE hour = :hour AND series_id = :id AND minute "
          ">= :from AND minute < :to GROUP BY 1";
      break;
    case Resolution::kHour:
      unit_us = kMicrosPerHour;
      rollup_query =
          "SELECT hour / :divisor, SUM(value_sum), SUM(value_count) FROM "
          "metric_rollups_hourly WHERE hour = :hour AND series_id = :id AND "
          "hour >= :from AND hour < :to GROUP BY 1";
      break;
  }
  long long id = 0, hour = 0;
  long long divisor = step_us / unit_us, from = FloorDiv(start_us, unit_us),
            to = CeilDiv(end_us, unit_us);
  long long raw_divisor = step_us, raw_from = from * unit_us,
            raw_to = to * unit_us;
  absl::MutexLock read_lock(&read_mutex_);
  RETURN_IF_ERROR(sql::Guard("read metric series", [&] {
    long long bucket = 0, count = 0, raw_bucket = 0;
    double sum = 0;
    soci::statement raw =
        (reader_->prepare << "SELECT time_us / :divisor, SUM(value), "
                             "COUNT(*) FROM metric_samples WHERE bucket = "
                             ":bucket AND series_id = :id AND time_us >= "
                             ":from AND time_us < :to GROUP BY 1",
         soci::use(raw_divisor), soci::use(raw_bucket), soci::use(id),
         soci::use(raw_from), soci::use(raw_to), soci::into(bucket),
         soci::into(sum), soci::into(count));
    // The raw buckets of the range (a seek each).
    const long long first_bucket = FloorDiv(raw_from, kMicrosPerBucket);
    const long long last_bucket = FloorDiv(raw_to - 1, kMicrosPerBucket);
    std::optional<soci::statement> rollups;
    if (!rollup_query.empty()) {
      rollups.emplace((reader_->prepare << rollup_query, soci::use(divisor),
                       soci::use(hour), soci::use(id), soci::use(from),
                       soci::use(to), soci::into(bucket), soci::into(sum),
                       soci::into(count)));
    }
    for (Wanted& series : wanted) {
      id = series.id;
      // Steps may span hours: summed here.
      std::map<long long, std::pair<double, long long>> buckets;
      auto take = [&](soci::statement& reading) {
        reading.execute();
        while (reading.fetch()) {
          auto& [bucket_sum, bucket_count] = buckets[bucket];
          bucket_sum += sum;
          bucket_count += count;
        }
      };
      for (hour = first_hour; hour <= last_hour; ++hour) {
        if (rollups && hour < roll_hour) {
          take(*rollups);
          continue;
        }
        for (raw_bucket = std::max(first_bucket, hour * kBucketsPerHour);
             raw_bucket <=
             std::min(last_bucket, (hour + 1) * kBucketsPerHour - 1);
             ++raw_bucket) {
          take(raw);
        }
      }
      SeriesPoints points;
      for (const auto& [key, figures] : buckets) {
        if (figures.second <= 0) continue;
        points.points.push_back(
            {absl::FromUnixMicros(key * step_us),
             average ? figures.first / static_cast<double>(figures.second)
                     : figures.first});
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
    std::shared_ptr<const Labels> labels;
  };
  std::vector<Wanted> wanted;
  int64_t all_series = 0;
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
      std::vector<const Series*> more = MatchLocked(filter, /*sorted=*/false);
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
    all_series = static_cast<int64_t>(series_.size());
  }
  if (wanted.empty()) return totals;
  // Read per (hour, series) when few series are wanted, else each hour's rows
  // of every series at once, keeping the wanted ones.
  const long long first_hour = FloorDiv(from * unit_us, kMicrosPerHour);
  const long long last_hour = FloorDiv(to * unit_us - 1, kMicrosPerHour);
  const bool scan = static_cast<int64_t>(wanted.size()) * 3 >= all_series;
  const bool minutes = totals.resolution == Resolution::kMinute;
  int64_t roll_hour;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    roll_hour = roll_hour_;
  }
  // Every query takes (hour, [series], from, to) and gives series, sum, max;
  // hours not rolled up yet are read from the raw samples.
  const std::string series_condition = scan ? "" : " AND series_id = :id";
  const std::string query =
      minutes ? absl::StrCat(
                    "SELECT series_id, value_sum, value_max FROM "
                    "metric_rollups WHERE hour = :hour",
                    series_condition, " AND minute >= :from AND minute < :to")
              : absl::StrCat(
                    "SELECT series_id, value_sum, value_max FROM "
                    "metric_rollups_hourly WHERE hour = :hour",
                    series_condition, " AND hour >= :from AND hour < :to");
  const std::string raw_query = absl::StrCat(
      "SELECT series_id, value, value FROM metric_samples WHERE bucket = "
      ":bucket",
      series_condition, " AND time_us >= :from AND time_us < :to");
  absl::flat_hash_map<int64_t, size_t> index;
  for (size_t i = 0; i < wanted.size(); ++i) index[wanted[i].id] = i;
  std::vector<std::pair<double, double>> figures(wanted.size());
  std::vector<bool> found(wanted.size(), false);
  absl::MutexLock read_lock(&read_mutex_);
  RETURN_IF_ERROR(sql::Guard("read metric totals", [&] {
    long long id = 0, series_id = 0, hour = 0, bucket = 0, first = from,
              last = to;
    long long first_us = from * unit_us, last_us = to * unit_us;
    double sum = 0, max = 0;
    auto prepare = [&](const std::string& text, long long& period,
                       long long& low, long long& high) {
      return scan
                 ? soci::statement((reader_->prepare << text, soci::use(period),
                                    soci::use(low), soci::use(high),
                                    soci::into(series_id), soci::into(sum),
                                    soci::into(max)))
                 : soci::statement((reader_->prepare << text, soci::use(period),
                                    soci::use(id), soci::use(low),
                                    soci::use(high), soci::into(series_id),
                                    soci::into(sum), soci::into(max)));
    };
    soci::statement rolled = prepare(query, hour, first, last);
    soci::statement unrolled = prepare(raw_query, bucket, first_us, last_us);
    const long long first_bucket = FloorDiv(first_us, kMicrosPerBucket);
    const long long last_bucket = FloorDiv(last_us - 1, kMicrosPerBucket);
    auto take = [&] {
      auto it = index.find(series_id);
      if (it == index.end()) return;
      auto& [total_sum, total_max] = figures[it->second];
      total_max = found[it->second] ? std::max(total_max, max) : max;
      total_sum += sum;
      found[it->second] = true;
    };
    auto read = [&](soci::statement& statement) {
      if (scan) {
        statement.execute();
        while (statement.fetch()) take();
        return;
      }
      for (const Wanted& series : wanted) {
        id = series.id;
        statement.execute();
        while (statement.fetch()) take();
      }
    };
    for (hour = first_hour; hour <= last_hour; ++hour) {
      if (hour < roll_hour) {
        read(rolled);
        continue;
      }
      for (bucket = std::max(first_bucket, hour * kBucketsPerHour);
           bucket <= std::min(last_bucket, (hour + 1) * kBucketsPerHour - 1);
           ++bucket) {
        read(unrolled);
      }
    }
  }));
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (!found[i]) continue;
    SeriesTotal& total = totals.series.emplace_back();
    total.database_id = std::move(wanted[i].database_id);
    total.metric = std::move(wanted[i].metric);
    total.labels = std::move(wanted[i].labels);
    total.sum = figures[i].first;
    total.max = figures[i].second;
  }
  return totals;
}

std::vector<LatestSample> MetricStore::Latest() const {
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
  std::vector<LatestSample> values;
  values.reserve(ordered.size());
  for (const Series* series : ordered) {
    values.push_back({series->database_id, series->metric, *series->labels,
                      series->last_value, series->last_time, series->counter,
                      series->counter_total});
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

absl::StatusOr<bool> MetricStore::RollUp(absl::Time now, int max_series) {
  absl::MutexLock write_lock(&write_mutex_);
  max_series = std::max(max_series, 1);
  // The last hour over.
  const long long last =
      FloorDiv(absl::ToUnixMicros(now - kRollUpGrace), kMicrosPerHour) - 1;
  long long hour, low, last_series;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    hour = roll_hour_;
    low = roll_series_;
    last_series = next_series_id_ - 1;
  }
  if (hour > last) return false;
  long long high = low + max_series;
  long long next_hour = hour, next_series = high;
  RETURN_IF_ERROR(sql::Guard("roll up metric samples", [&] {
    soci::session& sql = *writer_;
    if (low == 0) {
      // A new hour: skip the hours without samples at once.
      long long first = 0;
      soci::indicator indicator = soci::i_ok;
      long long from_bucket = hour * kBucketsPerHour;
      sql << "SELECT MIN(bucket) FROM metric_samples WHERE bucket >= :bucket",
          soci::use(from_bucket), soci::into(first, indicator);
      first = FloorDiv(first, kBucketsPerHour);
      if (indicator != soci::i_ok || first > last) {
        next_hour = last + 1;
        next_series = 0;
      } else {
        hour = first;
        next_hour = first;
      }
    }
    soci::transaction transaction(sql);
    if (next_hour == hour) {
      // Minutes from the raw samples, read in index order bucket by bucket
      // (a range each, a bucket holds whole minutes), and the hour from
      // them; written in index order, replacing (nothing of these series
      // and hour is in the rollups yet).
      BucketMap minutes, hours;
      constexpr size_t kFetch = 10'000;
      std::vector<long long> ids(kFetch), times(kFetch);
      std::vector<double> values(kFetch);
      long long bucket = 0;
      soci::statement read =
          (sql.prepare << "SELECT series_id, time_us, value FROM "
                          "metric_samples WHERE bucket = :bucket AND "
                          "series_id > :low AND series_id <= :high",
           soci::use(bucket), soci::use(low), soci::use(high), soci::into(ids),
           soci::into(times), soci::into(values));
      for (bucket = hour * kBucketsPerHour;
           bucket < (hour + 1) * kBucketsPerHour; ++bucket) {
        ids.resize(kFetch);
        times.resize(kFetch);
        values.resize(kFetch);
        read.execute();
        while (read.fetch()) {
          for (size_t i = 0; i < ids.size(); ++i) {
            minutes[{ids[i], FloorDiv(times[i], kMicrosPerMinute)}].Add(
                values[i]);
            hours[{ids[i], hour}].Add(values[i]);
          }
        }
      }
      UpsertRollups(sql, postgres(), /*minutes=*/true, minutes,
                    /*replace=*/true);
      UpsertRollups(sql, postgres(), /*minutes=*/false, hours,
                    /*replace=*/true);
      if (high >= last_series) {
        next_hour = hour + 1;
        next_series = 0;
      }
    }
    for (const auto& [name, value] :
         {std::pair<std::string, long long>{"roll_hour", next_hour},
          {"roll_series", next_series}}) {
      long long stored = value;
      sql << "INSERT INTO metric_state (name, value) VALUES (:name, :value) "
             "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
          soci::use(name), soci::use(stored);
    }
    transaction.commit();
  }));
  absl::MutexLock lock(&state_mutex_);
  roll_hour_ = next_hour;
  roll_series_ = next_series;
  return next_hour <= last;
}

absl::Status MetricStore::RollUpAll(absl::Time now) {
  for (;;) {
    ASSIGN_OR_RETURN(bool more, RollUp(now, 100'000));
    if (!more) return absl::OkStatus();
  }
}

absl::Status MetricStore::SaveLatestValues() {
  absl::MutexLock write_lock(&write_mutex_);
  std::vector<long long> ids, times, counters;
  std::vector<double> values, totals;
  {
    absl::MutexLock lock(&state_mutex_);
    for (auto& [id, series] : series_) {
      if (!series->latest_dirty) continue;
      ids.push_back(id);
      times.push_back(absl::ToUnixMicros(series->last_time));
      values.push_back(series->last_value);
      counters.push_back(series->counter ? 1 : 0);
      totals.push_back(series->counter_total);
      series->latest_dirty = false;
    }
  }
  if (ids.empty()) return absl::OkStatus();
  absl::Status status = sql::Guard("save latest metric values", [&] {
    soci::session& sql = *writer_;
    soci::transaction transaction(sql);
    if (!postgres()) {
      sql << "UPDATE metric_series SET last_time_us = :time, last_value = "
             ":value, counter = :counter, counter_total = :total WHERE "
             "series_id = :id",
          soci::use(times), soci::use(values), soci::use(counters),
          soci::use(totals), soci::use(ids);
    } else {
      for (size_t begin = 0; begin < ids.size(); begin += kPostgresChunk) {
        const size_t end = std::min(ids.size(), begin + kPostgresChunk);
        const std::string a = PgArray(ids, begin, end);
        const std::string b = PgArray(times, begin, end);
        const std::string c = PgArray(values, begin, end);
        const std::string d = PgArray(counters, begin, end);
        const std::string e = PgArray(totals, begin, end);
        sql << "UPDATE metric_series AS s SET last_time_us = u.t, last_value "
               "= u.v, counter = u.k, counter_total = u.n FROM "
               "unnest(CAST(:a AS BIGINT[]), CAST(:b AS BIGINT[]), CAST(:c AS "
               "DOUBLE PRECISION[]), CAST(:d AS INTEGER[]), CAST(:e AS DOUBLE "
               "PRECISION[])) AS u(id, t, v, k, n) WHERE s.series_id = u.id",
            soci::use(a), soci::use(b), soci::use(c), soci::use(d),
            soci::use(e);
      }
    }
    transaction.commit();
  });
  if (!status.ok()) {
    // Saved next time.
    absl::MutexLock lock(&state_mutex_);
    for (long long id : ids) {
      auto it = series_.find(id);
      if (it != series_.end()) it->second->latest_dirty = true;
    }
  }
  return status;
}

absl::StatusOr<bool> MetricStore::EnforceRetention(absl::Time raw_cutoff,
                                                   absl::Time rollup_cutoff,
                                                   int64_t* cursor,
                                                   int max_series) {
  absl::MutexLock write_lock(&write_mutex_);
  max_series = std::max(max_series, 1);
  // Rows are deleted by the table's period (10-minute buckets of raw
  // samples, hours of rollups) before `cutoff` (in those periods).
  struct Table {
    const char* name;
    const char* period;
    long long cutoff;
    int64_t period_us;
  };
  long long last_series = 0;
  long long roll_hour = 0;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    last_series = next_series_id_ - 1;
    roll_hour = roll_hour_;
  }
  const long long rollup_hour =
      FloorDiv(absl::ToUnixMicros(rollup_cutoff), kMicrosPerHour);
  const Table tables[] = {
      // Raw samples of an hour not rolled up yet stay until it is.
      {"metric_samples", "bucket",
       std::min<long long>(
           FloorDiv(absl::ToUnixMicros(raw_cutoff), kMicrosPerBucket),
           roll_hour * kBucketsPerHour),
       kMicrosPerBucket},
      {"metric_rollups", "hour", rollup_hour, kMicrosPerHour},
      {"metric_rollups_hourly", "hour", rollup_hour, kMicrosPerHour},
  };
  int64_t deleted = 0;
  bool step_done = false;
  // The oldest expired period of the first table that has one: its rows of
  // the series after the cursor, max_series of them. (Table and column names
  // are this file's constants.)
  RETURN_IF_ERROR(sql::Guard("enforce metric retention", [&] {
    soci::session& sql = *writer_;
    for (const Table& table : tables) {
      long long oldest = 0;
      soci::indicator indicator = soci::i_ok;
      sql << absl::StrCat("SELECT MIN(", table.period, ") FROM ", table.name),
          soci::into(oldest, indicator);
      if (indicator != soci::i_ok || oldest >= table.cutoff) continue;
      long long low = *cursor, high = *cursor + max_series;
      soci::statement statement =
          (sql.prepare << absl::StrCat("DELETE FROM ", table.name, " WHERE ",
                                       table.period,
                                       " = :period AND series_id > :low AND "
                                       "series_id <= :high"),
           soci::use(oldest), soci::use(low), soci::use(high));
      statement.execute(true);
      deleted = statement.get_affected_rows();
      // Past the last series: the period is empty, the next call takes the
      // next one.
      *cursor = high >= last_series ? 0 : high;
      step_done = true;
      return;
    }
  }));
  if (step_done) {
    absl::MutexLock lock(&state_mutex_);
    rows_deleted_ += deleted;
    return false;
  }
  // Every expired period is gone: forget series whose last sample is older
  // than everything kept (nothing of them is left; a new sample makes them
  // again), and agent processes silent for as long.
  // (What is left of a series is in hours from the earlier of the rollups'
  // cutoff and the first hour not rolled up yet.)
  const absl::Time kept_from =
      absl::FromUnixMicros(std::min(tables[1].cutoff * tables[1].period_us,
                                    tables[0].cutoff * tables[0].period_us));
  std::vector<long long> expired;
  {
    absl::ReaderMutexLock lock(&state_mutex_);
    for (const auto& [id, series] : series_) {
      if (series->last_time < kept_from) expired.push_back(id);
    }
  }
  long long stored_before = absl::ToUnixMicros(rollup_cutoff);
  std::vector<std::string> silent_instances;
  RETURN_IF_ERROR(sql::Guard("forget expired metric series", [&] {
    soci::session& sql = *writer_;
    soci::transaction transaction(sql);
    long long id = 0;
    if (!expired.empty()) {
      soci::statement forget =
          (sql.prepare << "DELETE FROM metric_series WHERE series_id = :id",
           soci::use(id));
      for (long long series_id : expired) {
        id = series_id;
        forget.execute(true);
      }
    }
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
    transaction.commit();
  }));
  absl::MutexLock lock(&state_mutex_);
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
  *cursor = 0;
  return true;
}

}  // namespace ecliptix::server
