// The storage of metrics: series, raw samples, 1-minute and 1-hour rollups and
// the highest batch stored per agent process, in the state store's database
// (schema version 6, server/storage/state_store.cc) through SOCI sessions of
// its own (one writes, one reads), so that ingestion and queries never wait
// for the state store's lock. It also keeps in memory what makes the frequent
// questions cheap: every series (number, database, metric, labels), its latest
// value, and per-hour sums and maxima of the last 26 hours (about 0.7 KB per
// series). Knows nothing of gRPC or of the registry: a series belongs to a
// database id; which databases a selector means is the caller's business.
// Thread-safe; writes are serialized.
#ifndef ECLIPTIX_SERVER_METRICS_METRIC_STORE_H_
#define ECLIPTIX_SERVER_METRICS_METRIC_STORE_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/labels.h"
#include "common/sql/database_url.h"
#include "ecliptix/fleet/v1/metrics.pb.h"
#include "server/metrics/fleet_figures.h"
#include "soci/soci.h"

namespace ecliptix::server {

// The canonical text of a sample's labels, the series' key in the store:
// "k=v,k=v" with keys sorted and '\', ',' and '=' escaped with '\'. Any
// label text round-trips (ParseLabelKey).
std::string LabelKey(const Labels& labels);
// INVALID_ARGUMENT for text LabelKey does not produce.
absl::StatusOr<Labels> ParseLabelKey(absl::string_view key);

// A batch as it came from a database's agent.
struct IncomingBatch {
  std::string database_id;
  fleet::v1::MetricBatch batch;
};

// What the agent of `database_id` is told: every batch of ack.agent_instance
// up to ack.sequence is stored.
struct AckFor {
  std::string database_id;
  fleet::v1::MetricAck ack;
};

// The outcome of one Write.
struct WriteSummary {
  // One per (database, agent_instance) of the batches written.
  std::vector<AckFor> acks;
  int64_t batches_stored = 0;
  // At or below the highest stored sequence of their agent_instance:
  // acknowledged again, not stored.
  int64_t batches_repeated = 0;
  int64_t samples_stored = 0;
  // Samples left out (bad metric name or labels, a value that is not a
  // finite number); the rest of their batch is stored.
  int64_t samples_refused = 0;
  // Why the first refused sample was refused.
  std::string first_refusal;
  // Samples agents dropped before sending (MetricBatch.dropped_samples).
  int64_t samples_dropped_by_agents = 0;
};

// Which series a query reads.
struct SeriesFilter {
  std::string metric;
  // Labels the series' own labels must hold (a subset).
  Labels labels;
  // Only these databases; nullopt: every database.
  std::optional<std::set<std::string>> databases;
};

// Where points come from.
enum class Resolution { kRaw, kMinute, kHour };

struct Point {
  // The start of its step.
  absl::Time time;
  double value = 0;
};

struct SeriesPoints {
  std::string database_id;
  Labels labels;
  // In time order; steps without samples have no point.
  std::vector<Point> points;
};

// A series' figures over a range.
struct SeriesTotal {
  std::string database_id;
  std::string metric;
  // Shared with the store's own copy (never null): thousands of totals cost
  // no copies of label maps.
  std::shared_ptr<const Labels> labels;
  // Sum of the values (a delta metric's amount over the range).
  double sum = 0;
  // Largest value.
  double max = 0;
};

// Figures over a range, and the range they really cover: rollups count whole
// minutes or whole hours, so `start` is the asked start rounded down to one.
struct Totals {
  // Series with at least one sample in the range, by database, metric, labels.
  std::vector<SeriesTotal> series;
  absl::Time start;
  absl::Time end;
  Resolution resolution = Resolution::kMinute;
};

class MetricStore : public FleetFigures {
 public:
  // Ranges of QueryTotals up to this long are counted in whole minutes (from
  // the minute rollups); longer ones in whole hours (from memory for the last
  // 26 hours, else from the hour rollups).
  static constexpr absl::Duration kMinuteTotalsUpTo = absl::Hours(6);
  // Hours kept in memory per series.
  static constexpr int kRecentHours = 26;
  // At most this many points per series in a QueryPoints answer.
  static constexpr int64_t kMaxPoints = 10'000;
  // QueryPoints reads ranges of at most this many hours (400 days).
  static constexpr int64_t kMaxRangeHours = 24 * 400;

  // Opens two sessions on the state store's database (whose schema the
  // StateStore has migrated to version 6 or later) and loads the series, their
  // latest values and recent hours. `now` places the recent hours.
  // INVALID_ARGUMENT for a URL that is not sqlite:// or postgresql://,
  // UNAVAILABLE when the database cannot be reached, FAILED_PRECONDITION when
  // the schema has no metric tables.
  static absl::StatusOr<std::unique_ptr<MetricStore>> Open(
      const std::string& url, absl::Time now);

  MetricStore(const MetricStore&) = delete;
  MetricStore& operator=(const MetricStore&) = delete;

  // Stores the batches in one transaction: each batch whose sequence is above
  // the highest stored for its (database, agent_instance), with its samples as
  // raw rows (and in the rollups when their hour is rolled up already, see
  // RollUp), and the new highest sequences. Repeated batches (at or below the
  // highest stored) only get their acknowledgement. Nothing of a failed Write
  // is kept; the caller may retry it whole. A sample without a time is stamped
  // `now`.
  absl::StatusOr<WriteSummary> Write(const std::vector<IncomingBatch>& batches,
                                     absl::Time now);

  // Points of the series `filter` matches over [start, end), one per step
  // (aligned to multiples of `step` since the Unix epoch) that has samples:
  // the sum of the values, or their average when `average`. Steps must be
  // whole minutes (kMinute) or hours (kHour) for rollups. Series ordered by
  // database and labels; those without points are left out.
  // INVALID_ARGUMENT for a step that does not suit `resolution` or that gives
  // more than kMaxPoints points.
  absl::StatusOr<std::vector<SeriesPoints>> QueryPoints(
      const SeriesFilter& filter, absl::Time start, absl::Time end,
      absl::Duration step, bool average, Resolution resolution);

  // The sum and maximum of every series of `metrics` on `databases` (nullopt:
  // every database) over [start, end). See kMinuteTotalsUpTo for the
  // granularity. `now` tells which hours memory holds.
  absl::StatusOr<Totals> QueryTotals(
      const std::vector<std::string>& metrics,
      const std::optional<std::set<std::string>>& databases, absl::Time start,
      absl::Time end, absl::Time now);

  // FleetFigures: the newest value of every series (database, metric, labels,
  // value, time) and a delta metric's running total, for the Prometheus
  // endpoint: from memory, no database access, exact for samples stored since
  // this store was opened (and as saved by SaveLatestValues before). Ordered
  // by database, metric, labels.
  std::vector<LatestSample> Latest() const override;

  // Whether any series of `metric` is stored.
  bool HasMetric(absl::string_view metric) const;
  // The metrics stored, sorted.
  std::vector<std::string> MetricNames() const;
  int64_t series_count() const;

  // Rollups are made from the raw samples of an hour once it is over by this
  // much (a sample that comes after its series' hour was rolled up is added
  // to the rollups as it is stored).
  static constexpr absl::Duration kRollUpGrace = absl::Minutes(2);
  // Rolls up the raw samples of the first hour over (by kRollUpGrace at
  // `now`) and not rolled up yet, for at most `max_series` series, into
  // minute and hour rollups, with two statements in one transaction, and
  // saves where it got to. Returns whether there may be more to roll up.
  // Writes store raw samples only, so rolling up is what keeps a write
  // cheap; queries read the raw samples of hours not rolled up yet, so
  // rolling up late costs speed, never accuracy. ecliptix-server calls it from
  // its writer thread between writes.
  absl::StatusOr<bool> RollUp(absl::Time now, int max_series);
  // RollUp until nothing is left.
  absl::Status RollUpAll(absl::Time now);

  // Saves the latest value of every series whose value changed since the
  // last call (memory has them exactly; the database has them as of the last
  // call, for the next start). ecliptix-server calls it every 30 seconds and
  // when it stops.
  absl::Status SaveLatestValues();

  // One step of retention, one transaction: deletes the hours of raw samples
  // that end before `raw_cutoff`, and of rollups before `rollup_cutoff`
  // (whole hours: a sample stays up to an hour past its retention), the
  // oldest such hour first, for at most `max_series` series after `*cursor`
  // (a series number), and moves the cursor on. Returns false while expired
  // hours remain. When none does, forgets the series with nothing left (last
  // sample before `rollup_cutoff`'s hour) and the stored sequences of agent
  // processes silent since `rollup_cutoff`, sets `*cursor` to 0 and returns
  // true: a round is complete.
  absl::StatusOr<bool> EnforceRetention(absl::Time raw_cutoff,
                                        absl::Time rollup_cutoff,
                                        int64_t* cursor, int max_series);

  // Rows deleted by retention since the store was opened (for logs and tests).
  int64_t rows_deleted() const;

 private:
  struct HourSlot {
    // Hours since the epoch; -1: empty.
    int32_t hour = -1;
    float max = 0;
    double sum = 0;
  };
  struct Series {
    int64_t id = 0;
    std::string database_id;
    std::string metric;
    std::string label_key;
    std::shared_ptr<const Labels> labels;
    // InfinitePast when unknown.
    absl::Time last_time = absl::InfinitePast();
    double last_value = 0;
    bool has_latest = false;
    // A delta metric's series, and the sum of every amount stored for it.
    bool counter = false;
    double counter_total = 0;
    // Changed since SaveLatestValues.
    bool latest_dirty = false;
    std::array<HourSlot, kRecentHours> hours;
  };

  MetricStore(sql::DatabaseUrl url, std::unique_ptr<soci::session> writer,
              std::unique_ptr<soci::session> reader)
      : url_(std::move(url)),
        writer_(std::move(writer)),
        reader_(std::move(reader)) {}
  absl::Status Load(absl::Time now);
  bool postgres() const { return url_.backend == sql::Backend::kPostgresql; }
  // Series matching `filter`, ordered by database, labels when `sorted`.
  std::vector<const Series*> MatchLocked(const SeriesFilter& filter,
                                         bool sorted = true) const
      ABSL_SHARED_LOCKS_REQUIRED(state_mutex_);
  static std::string SeriesKey(absl::string_view database_id,
                               absl::string_view metric,
                               absl::string_view label_key);
  // Sums and maxima from memory; false when memory does not hold all of
  // [first_hour, last_hour].
  bool RecentTotalsLocked(const std::vector<const Series*>& series,
                          int64_t first_hour, int64_t last_hour,
                          std::vector<SeriesTotal>* totals) const
      ABSL_SHARED_LOCKS_REQUIRED(state_mutex_);
  void PutHourLocked(Series& series, int64_t hour, double sum, double max)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mutex_);

  const sql::DatabaseUrl url_;

  // Held for a whole Write or retention step: one writer at a time.
  absl::Mutex write_mutex_ ABSL_ACQUIRED_BEFORE(state_mutex_);
  std::unique_ptr<soci::session> writer_ ABSL_GUARDED_BY(write_mutex_);
  absl::Mutex read_mutex_ ABSL_ACQUIRED_BEFORE(state_mutex_);
  std::unique_ptr<soci::session> reader_ ABSL_GUARDED_BY(read_mutex_);

  // What is in memory. Changed only by the writer (holding write_mutex_ too),
  // after its transaction committed.
  mutable absl::Mutex state_mutex_;
  std::map<int64_t, std::unique_ptr<Series>> series_
      ABSL_GUARDED_BY(state_mutex_);
  absl::flat_hash_map<std::string, Series*> by_key_
      ABSL_GUARDED_BY(state_mutex_);
  std::map<std::string, std::set<int64_t>> by_metric_
      ABSL_GUARDED_BY(state_mutex_);
  int64_t next_series_id_ ABSL_GUARDED_BY(state_mutex_) = 1;
  // The next raw sample's `seq` (keeps samples of one series and time apart).
  int64_t next_seq_ ABSL_GUARDED_BY(state_mutex_) = 0;
  // Highest stored sequence by database id + '\0' + agent_instance.
  absl::flat_hash_map<std::string, uint64_t> highest_
      ABSL_GUARDED_BY(state_mutex_);
  // Memory holds every hour from recent_floor_ on (hours loaded at Open, or
  // written since) and the 26 hours up to newest_hour_.
  int64_t recent_floor_ ABSL_GUARDED_BY(state_mutex_) = 0;
  int64_t newest_hour_ ABSL_GUARDED_BY(state_mutex_) = 0;
  // Hours of the last 26 with samples that memory did not take (they were
  // ahead of the clock when written): answered from the hour rollups.
  std::set<int64_t> hours_not_in_memory_ ABSL_GUARDED_BY(state_mutex_);
  int64_t rows_deleted_ ABSL_GUARDED_BY(state_mutex_) = 0;
  // Hours before roll_hour_ are in the rollups, and so are the series up to
  // roll_series_ of roll_hour_; the rest is in the raw samples only.
  int64_t roll_hour_ ABSL_GUARDED_BY(state_mutex_) = 0;
  int64_t roll_series_ ABSL_GUARDED_BY(state_mutex_) = 0;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_METRIC_STORE_H_
