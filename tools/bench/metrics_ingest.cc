// Measures the server's metric storage on a fresh SQLite store: a day of
// samples from N databases (each collection: per procedure its calls,
// execution time, maximum and errors, plus four authentication events) goes
// through the metrics core as agents' batches would (MetricsManager::Post,
// with its bounded queue, writer thread and transactions of many batches),
// and the figures are printed next to baselines measured in the same run:
//   - samples stored per second, against a bare SQLite insert loop of the
//     same rows (series number, time, value) into a table without any index,
//     in transactions of the same size: the floor of what SQLite does here;
//   - TopProcedures over the day (fleet-wide and per database), against the
//     same figures computed by one SQL statement over the raw samples, and
//     against the hour rollups read from the database instead of memory.
//
//   bazel build -c opt //tools/bench:metrics_ingest
//   bazel-bin/tools/bench/metrics_ingest --databases=1000 --procedures=10
//
// Every sample of a collection has the collection's time; collections are
// --interval apart over --hours. What a top-N over a day costs depends on the
// number of series (databases x procedures x 4), not on the interval.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/proto_time.h"
#include "common/sql/database_url.h"
#include "common/sql/session.h"
#include "ecliptix/fleet/v1/metrics.pb.h"
#include "server/metrics/metric_store.h"
#include "server/metrics/metrics_manager.h"
#include "server/storage/state_store.h"
#include "soci/soci.h"

ABSL_FLAG(int, databases, 1000, "databases sending samples");
ABSL_FLAG(int, procedures, 10, "procedures per database");
ABSL_FLAG(absl::Duration, interval, absl::Minutes(10),
          "time between two collections of a database");
ABSL_FLAG(absl::Duration, hours, absl::Hours(24), "time span of the samples");
ABSL_FLAG(std::string, dir, "/tmp/ecliptix-metrics-bench",
          "directory for the SQLite files (emptied first)");
ABSL_FLAG(int, repeat, 5, "runs of each query (the median is shown)");

namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ecliptix::server::MetricsManager;
using ecliptix::server::MetricsOptions;
using ecliptix::server::MetricStore;

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "metrics_ingest: %s\n", message.c_str());
  std::exit(1);
}

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

std::string Mb(uintmax_t bytes) {
  return absl::StrFormat("%.0f MB", bytes / 1e6);
}

uintmax_t FileBytes(const std::string& path) {
  uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code error;
    const uintmax_t size =
        std::filesystem::file_size(absl::StrCat(path, suffix), error);
    if (!error) total += size;
  }
  return total;
}

// One collection of one database.
v1::MetricBatch Collection(int database, int procedures, uint64_t sequence,
                           absl::Time time) {
  v1::MetricBatch batch;
  batch.set_agent_instance(absl::StrCat("bench-", database));
  batch.set_sequence(sequence);
  const google::protobuf::Timestamp stamp = ecliptix::ToProtoTimestamp(time);
  auto add = [&](const char* metric, double value, const char* label,
                 std::string label_value) {
    v1::MetricSample* sample = batch.add_samples();
    sample->set_metric(metric);
    sample->set_value(value);
    *sample->mutable_time() = stamp;
    (*sample->mutable_labels())[label] = std::move(label_value);
  };
  for (int p = 0; p < procedures; ++p) {
    const std::string name = absl::StrCat("Procedure", p);
    // Procedure p of database d: slower with p, a little with d.
    const double calls = 50 + (sequence + p) % 7;
    const double avg = 1 + p * 3 + database % 5;
    add("procedure_calls", calls, "procedure", name);
    add("procedure_execution_ms", calls * avg, "procedure", name);
    add("procedure_max_ms", avg * 4, "procedure", name);
    add("procedure_errors", (sequence + database + p) % 97 == 0 ? 1 : 0,
        "procedure", name);
  }
  for (const char* event : {"LOGIN_SUCCESS", "LOGIN_FAILED", "LOGIN_BLOCKED",
                            "SUSPICIOUS_ACTIVITY"}) {
    add("auth_events", (sequence + database) % 5, "event", event);
  }
  return batch;
}

template <typename Fn>
double MedianMs(int repeat, Fn&& fn) {
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const absl::Time start = absl::Now();
    fn();
    times.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const int databases = absl::GetFlag(FLAGS_databases);
  const int procedures = absl::GetFlag(FLAGS_procedures);
  const absl::Duration interval = absl::GetFlag(FLAGS_interval);
  const absl::Duration span = absl::GetFlag(FLAGS_hours);
  const int repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string url = absl::StrCat("sqlite://", dir, "/state.db");
  const int collections = static_cast<int>(span / interval);
  const int per_collection = procedures * 4 + 4;
  const int64_t total =
      static_cast<int64_t>(collections) * databases * per_collection;
  std::printf(
      "%d databases x %d procedures: %d series; %d collections %s apart "
      "(%s): %lld samples\n",
      databases, procedures, databases * per_collection, collections,
      absl::FormatDuration(interval).c_str(),
      absl::FormatDuration(span).c_str(), static_cast<long long>(total));

  // The store as ecliptix-server opens it, on a clock that follows the
  // collections (so hours close and are rolled up as they would live), at
  // the day's end for the queries.
  const absl::Time end = absl::FromUnixSeconds(1'700'000'040) + span;
  ecliptix::FakeClock clock(end - span);
  auto state = ecliptix::server::StateStore::Open(url);
  if (!state.ok()) Fail(state.status().ToString());
  auto store = MetricStore::Open(url, clock.Now());
  if (!store.ok()) Fail(store.status().ToString());
  MetricsOptions options;
  // Retention would find nothing to delete; it is not what is measured.
  options.retention_period = absl::Hours(1000);
  MetricsManager manager(store->get(), nullptr, nullptr, &clock, options);
  if (absl::Status status = manager.Start(); !status.ok()) {
    Fail(status.ToString());
  }

  // Ingestion, held back by the queue's flow control like an agent stream.
  const absl::Time ingest_start = absl::Now();
  for (int c = 0; c < collections; ++c) {
    const absl::Time time = end - span + interval * c;
    clock.Advance(time + absl::Seconds(5) - clock.Now());
    for (int d = 0; d < databases; ++d) {
      absl::Notification resumed;
      if (!manager.Post(absl::StrCat("db-", d),
                        Collection(d, procedures, c + 1, time),
                        [&resumed] { resumed.Notify(); })) {
        resumed.WaitForNotification();
      }
    }
  }
  manager.Flush();
  clock.Advance(end - clock.Now());
  const double ingest_seconds =
      absl::ToDoubleSeconds(absl::Now() - ingest_start);
  const ecliptix::server::IngestStats stats = manager.stats();
  if (stats.samples_stored != total) {
    Fail(absl::StrCat("stored ", stats.samples_stored, " samples of ", total));
  }
  const uintmax_t store_bytes = FileBytes(absl::StrCat(dir, "/state.db"));

  // Baseline: the same rows into a bare table, same transaction size.
  const std::string bare_path = absl::StrCat(dir, "/bare.db");
  double bare_seconds = 0;
  {
    auto parsed =
        ecliptix::sql::ParseDatabaseUrl(absl::StrCat("sqlite://", bare_path));
    auto session = ecliptix::sql::OpenSession(*parsed);
    if (!session.ok()) Fail(session.status().ToString());
    soci::session& sql = **session;
    sql << "PRAGMA journal_mode=WAL";
    sql << "CREATE TABLE bare (series_id BIGINT NOT NULL, time_us BIGINT NOT "
           "NULL, value DOUBLE PRECISION NOT NULL)";
    const size_t chunk = options.max_samples_per_transaction;
    std::vector<long long> ids, times;
    std::vector<double> values;
    const absl::Time start = absl::Now();
    auto flush = [&] {
      if (ids.empty()) return;
      soci::transaction transaction(sql);
      sql << "INSERT INTO bare (series_id, time_us, value) VALUES (:a, :b, "
             ":c)",
          soci::use(ids), soci::use(times), soci::use(values);
      transaction.commit();
      ids.clear();
      times.clear();
      values.clear();
    };
    for (int c = 0; c < collections; ++c) {
      const long long time_us = absl::ToUnixMicros(end - span + interval * c);
      for (int d = 0; d < databases; ++d) {
        const v1::MetricBatch batch =
            Collection(d, procedures, c + 1, end - span + interval * c);
        for (int s = 0; s < batch.samples_size(); ++s) {
          ids.push_back(static_cast<long long>(d) * per_collection + s);
          times.push_back(time_us);
          values.push_back(batch.samples(s).value());
        }
        if (ids.size() >= chunk) flush();
      }
    }
    flush();
    bare_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  }

  std::printf(
      "\n| metric | ecliptix (metrics core) | bare SQLite insert | "
      "ratio |\n|---|---|---|---|\n");
  std::printf("| samples stored per second | %.0f | %.0f | %.2f |\n",
              total / ingest_seconds, total / bare_seconds,
              bare_seconds / ingest_seconds);
  std::printf("| time for %lld samples | %.1f s | %.1f s | |\n",
              static_cast<long long>(total), ingest_seconds, bare_seconds);
  std::printf("| file size | %s | %s | |\n", Mb(store_bytes).c_str(),
              Mb(FileBytes(bare_path)).c_str());
  std::printf(
      "| transactions | %lld | %lld | |\n",
      static_cast<long long>(stats.transactions),
      static_cast<long long>((total + options.max_samples_per_transaction - 1) /
                             options.max_samples_per_transaction));
  std::printf("| streams held by flow control | %lld | - | |\n",
              static_cast<long long>(stats.streams_held));

  // Queries over the day.
  v1::TopProceduresRequest top;
  top.set_limit(10);
  *top.mutable_range() = ecliptix::ToProtoDuration(span);
  v1::TopProceduresResponse answer;
  const double top_ms = MedianMs(repeat, [&] {
    auto response = manager.TopProceduresNow(top);
    if (!response.ok()) Fail(response.status().ToString());
    answer = *std::move(response);
  });
  top.set_per_database(true);
  const double top_per_database_ms = MedianMs(repeat, [&] {
    auto response = manager.TopProceduresNow(top);
    if (!response.ok()) Fail(response.status().ToString());
  });
  top.set_per_database(false);
  top.set_selector("");
  // The last hour: what a dashboard asks most, read from the minute rollups
  // (and the raw samples of the hour not rolled up yet).
  *top.mutable_range() = ecliptix::ToProtoDuration(absl::Hours(1));
  const double top_hour_ms = MedianMs(repeat, [&] {
    auto response = manager.TopProceduresNow(top);
    if (!response.ok()) Fail(response.status().ToString());
  });
  // The same inputs from the hour rollups in the database (what a range
  // longer than memory's 26 hours reads).
  const double hourly_ms = MedianMs(repeat, [&] {
    auto totals = manager.store().QueryTotals(
        {"procedure_calls", "procedure_execution_ms", "procedure_max_ms",
         "procedure_errors"},
        std::nullopt, end - span, end, end - absl::Minutes(2));
    if (!totals.ok()) Fail(totals.status().ToString());
  });
  v1::GetRateRequest rate;
  rate.set_rate("errors");
  const double rate_ms = MedianMs(repeat, [&] {
    auto response = manager.GetRateNow(rate);
    if (!response.ok()) Fail(response.status().ToString());
  });
  // Baseline: one SQL statement over the raw samples (no rollups).
  double raw_ms = 0;
  {
    auto parsed = ecliptix::sql::ParseDatabaseUrl(url);
    auto session = ecliptix::sql::OpenSession(*parsed);
    if (!session.ok()) Fail(session.status().ToString());
    soci::session& sql = **session;
    const long long from = absl::ToUnixMicros(end - span);
    raw_ms = MedianMs(std::min(repeat, 2), [&] {
      std::string labels;
      double calls = 0, execution = 0, max = 0;
      soci::statement statement =
          (sql.prepare
               << "SELECT s.labels, SUM(CASE WHEN s.metric = "
                  "'procedure_calls' THEN v.value ELSE 0 END), SUM(CASE WHEN "
                  "s.metric = 'procedure_execution_ms' THEN v.value ELSE 0 "
                  "END), MAX(CASE WHEN s.metric = 'procedure_max_ms' THEN "
                  "v.value ELSE 0 END) FROM metric_samples v JOIN "
                  "metric_series s ON s.series_id = v.series_id WHERE "
                  "v.time_us >= :from AND s.metric LIKE 'procedure%' GROUP BY "
                  "s.labels",
           soci::use(from), soci::into(labels), soci::into(calls),
           soci::into(execution), soci::into(max));
      statement.execute();
      while (statement.fetch()) {
      }
    });
  }
  std::printf(
      "\n| query over %s (median of %d) | ecliptix | baseline: one SQL over "
      "raw samples |\n|---|---|---|\n",
      absl::FormatDuration(span).c_str(), repeat);
  std::printf("| TopProcedures, fleet-wide | %.1f ms | %.0f ms |\n", top_ms,
              raw_ms);
  std::printf("| TopProcedures, per database | %.1f ms | - |\n",
              top_per_database_ms);
  std::printf("| TopProcedures, fleet-wide, last hour | %.1f ms | - |\n",
              top_hour_ms);
  std::printf(
      "| the same figures from the hour rollups (SQL) | %.1f ms | - "
      "|\n",
      hourly_ms);
  std::printf("| GetRate errors (last hour, minute rollups) | %.1f ms | - |\n",
              rate_ms);
  if (answer.procedures_size() > 0) {
    std::printf("\nslowest: %s avg %.1f ms over %lld calls\n",
                answer.procedures(0).procedure().c_str(),
                answer.procedures(0).avg_ms(),
                static_cast<long long>(answer.procedures(0).calls()));
  }
  std::printf("series in memory: %lld; peak RSS of this process: %ld MB\n",
              static_cast<long long>(manager.store().series_count()),
              PeakRssKb() / 1024);
  manager.Stop();
  return 0;
}
