#include "agent/metrics/collector.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "agent/executor/history.h"
#include "agent/executor/operation.h"
#include "agent/metrics/operation_calls.h"
#include "agent/target/open_target.h"
#include "common/bundle/manifest_rules.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// A collector without an interval runs this often.
constexpr absl::Duration kDefaultInterval = absl::Seconds(60);
// However small the scale, a collector does not spin.
constexpr absl::Duration kMinScaledInterval = absl::Milliseconds(10);

std::shared_ptr<spdlog::logger> Log() {
  static auto* logger =
      new std::shared_ptr<spdlog::logger>(Logger("agent.metrics"));
  return *logger;
}

// The history's table and outcomes come from history.h; what is asked of it
// here is one value, so it is read directly rather than row by row.
constexpr char kHistoryExistsSqlite[] =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
    "name = 'ecliptix_schema_history'";
constexpr char kHistoryExistsPostgresql[] =
    "SELECT CASE WHEN to_regclass('ecliptix_schema_history') IS NULL THEN 0 "
    "ELSE 1 END";
constexpr char kHistoryExistsMssql[] =
    "SELECT CASE WHEN OBJECT_ID(N'ecliptix_schema_history', N'U') IS NULL "
    "THEN 0 ELSE 1 END";

std::string AppliedBundleQuery(v1::Dialect dialect) {
  const std::string where =
      absl::StrCat(" bundle_id FROM ", kHistoryTable,
                   " WHERE is_current = 1 AND outcome IN ('", kOutcomeApplied,
                   "', '", kOutcomeBaselined, "') ORDER BY id DESC");
  if (dialect == v1::DIALECT_MSSQL) return absl::StrCat("SELECT TOP 1", where);
  return absl::StrCat("SELECT", where, " LIMIT 1");
}

const std::string& QueryFor(const v1::MetricCollector& collector,
                            v1::Dialect dialect) {
  switch (dialect) {
    case v1::DIALECT_POSTGRESQL:
      return collector.query().postgresql();
    case v1::DIALECT_MSSQL:
      return collector.query().mssql();
    default:
      return collector.query().sqlite();
  }
}

// The index of `column` in `columns` (case-insensitive), or -1.
int FindColumn(const std::vector<std::string>& columns,
               const std::string& column) {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (absl::EqualsIgnoreCase(columns[i], column)) return static_cast<int>(i);
  }
  return -1;
}

// Integers as engines print them: "42", and "42.0" from engines that widen
// aggregates to a decimal type.
bool ParseCursor(const std::string& text, int64_t* value) {
  if (absl::SimpleAtoi(text, value)) return true;
  double number = 0;
  if (!absl::SimpleAtod(text, &number) || std::floor(number) != number ||
      std::abs(number) > 9.0e15) {
    return false;
  }
  *value = static_cast<int64_t>(number);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsCollector>> MetricsCollector::Create(
    MetricsCollectorOptions options) {
  if (options.database_url.empty()) {
    return absl::InvalidArgumentError("metrics: database URL is empty");
  }
  if (options.bundles == nullptr || options.sink == nullptr) {
    return absl::InvalidArgumentError(
        "metrics: a bundle source and a sink are required");
  }
  if (!(options.interval_scale > 0) || !std::isfinite(options.interval_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: the interval scale must be positive, not ",
                     options.interval_scale));
  }
  if (options.query_timeout <= absl::ZeroDuration() ||
      options.bundle_poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "metrics: the query timeout and the bundle poll interval must be "
        "positive");
  }
  if (options.clock == nullptr) options.clock = Clock::Real();
  return absl::WrapUnique(new MetricsCollector(std::move(options)));
}

MetricsCollector::MetricsCollector(MetricsCollectorOptions options)
    : options_(std::move(options)) {}

MetricsCollector::~MetricsCollector() { Stop(); }

void MetricsCollector::Start() {
  absl::MutexLock lock(&mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mutex_);
        cycle_running_ = true;
      }
      const CycleReport report = Cycle(/*all=*/false);
      absl::MutexLock lock(&mutex_);
      cycle_running_ = false;
      ++cycles_done_;
      if (stopping_) return;
      // The clock may be a fake one: the wait is in real time, and at least a
      // moment, so that a clock that does not move cannot make this spin.
      const absl::Duration wait =
          std::max(report.next_due - Now(), kMinScaledInterval);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || woken_;
      };
      mutex_.AwaitWithTimeout(absl::Condition(&woken), wait);
      if (stopping_) return;
      woken_ = false;
    }
  });
}

void MetricsCollector::Wake() {
  absl::MutexLock lock(&mutex_);
  woken_ = true;
  look_now_ = true;
}

void MetricsCollector::WakeAndWait(absl::Duration timeout) {
  absl::MutexLock lock(&mutex_);
  if (stopping_ || !thread_.joinable()) return;
  woken_ = true;
  look_now_ = true;
  // A cycle running now may have looked already: the one after it has not.
  const int64_t until = cycles_done_ + (cycle_running_ ? 2 : 1);
  auto done = [this, until]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || cycles_done_ >= until;
  };
  mutex_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

void MetricsCollector::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    if (session_ != nullptr) session_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

CycleReport MetricsCollector::CollectDue() { return Cycle(/*all=*/false); }

CycleReport MetricsCollector::CollectAll() { return Cycle(/*all=*/true); }

absl::Time MetricsCollector::Now() const { return options_.clock->Now(); }

absl::Duration MetricsCollector::Scaled(absl::Duration interval) const {
  return std::max(interval * options_.interval_scale, kMinScaledInterval);
}

absl::StatusOr<std::unique_ptr<ReadOnlySession>>
MetricsCollector::OpenSession() {
  ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlySession> session,
                   ReadOnlySession::Open(options_.database_url,
                                         absl::Now() + options_.query_timeout));
  absl::MutexLock lock(&mutex_);
  if (stopping_) return absl::CancelledError("metrics collection is stopping");
  session_ = session.get();
  return session;
}

void MetricsCollector::CloseSession(std::unique_ptr<ReadOnlySession> session) {
  {
    absl::MutexLock lock(&mutex_);
    session_ = nullptr;
  }
  session.reset();
}

CycleReport MetricsCollector::Cycle(bool all) {
  CycleReport report;
  const absl::Time now = Now();
  const absl::Time poll_at = now + Scaled(options_.bundle_poll_interval);
  report.next_due = poll_at;
  bool look_now = false;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return report;
    look_now = std::exchange(look_now_, false);
  }
  // Nothing due: not even the database is touched.
  if (!all && !look_now && !schedule_.empty()) {
    absl::Time next = absl::InfiniteFuture();
    for (const Scheduled& scheduled : schedule_)
      next = std::min(next, scheduled.next_due);
    if (next > now) {
      report.bundle_id = bundle_id_;
      report.next_due = next;
      return report;
    }
  }

  // A failure of the cycle itself: reported, logged once while it lasts, and
  // the next look is a poll interval away.
  auto fail = [&](const absl::Status& status, bool server_away = false) {
    report.errors.push_back(std::string(status.message()));
    if (status.ToString() != last_logged_error_) {
      last_logged_error_ = status.ToString();
      // A server that is away is expected (at start, during restarts): the
      // next session wakes the collector.
      Log()->log(server_away ? spdlog::level::info : spdlog::level::warn,
                 "metrics: {}", last_logged_error_);
    }
    report.next_due = poll_at;
    return report;
  };

  absl::StatusOr<std::unique_ptr<ReadOnlySession>> session = OpenSession();
  if (!session.ok()) {
    return fail(WithContext("opening a read-only session", session.status()));
  }
  absl::StatusOr<std::string> applied = AppliedBundleId(**session);
  if (!applied.ok()) {
    CloseSession(*std::move(session));
    return fail(applied.status());
  }
  if (applied->empty()) {
    CloseSession(*std::move(session));
    if (!bundle_id_.empty()) {
      Log()->info("metrics: no bundle is applied any more; not collecting");
    }
    bundle_.reset();
    bundle_id_.clear();
    schedule_.clear();
    last_logged_error_.clear();
    return report;
  }
  if (*applied != bundle_id_) {
    if (absl::Status status = UseBundle(*applied, now); !status.ok()) {
      CloseSession(*std::move(session));
      bundle_.reset();
      bundle_id_.clear();
      schedule_.clear();
      return fail(status, status.code() == absl::StatusCode::kUnavailable);
    }
    // The dialect is the engine's; a bundle without SQL for it collects
    // nothing.
    absl::StatusOr<v1::Dialect> dialect =
        BundleDialect(*bundle_, (*session)->database());
    if (!dialect.ok()) {
      CloseSession(*std::move(session));
      schedule_.clear();
      report.bundle_id = bundle_id_;
      return fail(dialect.status());
    }
    dialect_ = *dialect;
  }
  report.bundle_id = bundle_id_;
  last_logged_error_.clear();

  std::vector<Scheduled*> due;
  for (Scheduled& scheduled : schedule_) {
    if (all || scheduled.next_due <= now ||
        (look_now && !scheduled.succeeded)) {
      due.push_back(&scheduled);
    }
  }
  if (!due.empty()) {
    report.enabled = Enabled(**session);
    if (report.enabled == disabled_) {
      disabled_ = !report.enabled;
      Log()->info(disabled_ ? "metrics: {} is 0: not collecting"
                            : "metrics: {} is on again: collecting",
                  kEnableMetricsKey);
    }
  }
  CloseSession(*std::move(session));
  for (Scheduled* scheduled : due) {
    // On the interval's grid, unless runs were missed: then from now on.
    scheduled->next_due += scheduled->interval;
    if (scheduled->next_due <= now)
      scheduled->next_due = now + scheduled->interval;
  }
  report.next_due = poll_at;
  for (const Scheduled& scheduled : schedule_)
    report.next_due = std::min(report.next_due, scheduled.next_due);
  if (due.empty() || !report.enabled) return report;

  for (Scheduled* scheduled : due) {
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) break;
    }
    // spec is null for the agent's own collector of operation calls.
    const std::string name = scheduled->spec == nullptr
                                 ? std::string(kOperationCallsCollector)
                                 : scheduled->spec->name();
    std::vector<v1::MetricSample> samples;
    absl::Status status = scheduled->spec == nullptr
                              ? RunOperationCalls(Now(), &samples)
                              : RunCollector(*scheduled->spec, Now(), &samples);
    if (!status.ok()) {
      {
        // Interrupted by Stop(): not a failure of the collector.
        absl::MutexLock lock(&mutex_);
        if (stopping_) break;
      }
      report.errors.push_back(absl::StrCat(name, ": ", status.message()));
      // Right after a deployment command, a collector that never ran may
      // wait for tables a later phase creates: not worth a warning yet.
      if (look_now && !scheduled->succeeded) {
        Log()->info("metrics: collector {} cannot run yet: {}", name,
                    status.ToString());
      } else {
        Log()->warn("metrics: collector {} failed: {}", name,
                    status.ToString());
      }
      continue;
    }
    scheduled->succeeded = true;
    report.collectors_run.push_back(name);
    Log()->debug("metrics: collector {}: {} samples", name, samples.size());
    if (samples.empty()) continue;
    report.samples.insert(report.samples.end(), samples.begin(), samples.end());
    options_.sink->Add(std::move(samples));
  }
  return report;
}

absl::StatusOr<std::string> MetricsCollector::AppliedBundleId(
    ReadOnlySession& session) {
  const v1::Dialect dialect =
      bundle::DialectForEngine(session.database().engine());
  const char* exists = kHistoryExistsSqlite;
  if (dialect == v1::DIALECT_POSTGRESQL) exists = kHistoryExistsPostgresql;
  if (dialect == v1::DIALECT_MSSQL) exists = kHistoryExistsMssql;
  absl::StatusOr<QueryResult> found = session.Query(exists);
  RETURN_IF_ERROR(WithContext(absl::StrCat("looking for table ", kHistoryTable),
                              found.status()));
  if (found->rows.empty() || found->rows[0].values.empty() ||
      found->rows[0].nulls[0] || found->rows[0].values[0] == "0") {
    return std::string();
  }
  absl::StatusOr<QueryResult> newest =
      session.Query(AppliedBundleQuery(dialect));
  RETURN_IF_ERROR(WithContext(absl::StrCat("reading table ", kHistoryTable),
                              newest.status()));
  if (newest->rows.empty() || newest->rows[0].values.empty() ||
      newest->rows[0].nulls[0]) {
    return std::string();
  }
  return newest->rows[0].values[0];
}

absl::Status MetricsCollector::UseBundle(const std::string& bundle_id,
                                         absl::Time now) {
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> fetched =
      options_.bundles->Fetch(bundle_id);
  RETURN_IF_ERROR(WithContext(
      absl::StrCat("getting bundle ", bundle_id, " (applied on the database)"),
      fetched.status()));
  bundle_ = *std::move(fetched);
  bundle_id_ = bundle_id;
  schedule_.clear();
  std::vector<std::string> names;
  for (const v1::MetricCollector& spec : bundle_->manifest().collectors()) {
    Scheduled& scheduled = schedule_.emplace_back();
    scheduled.spec = &spec;
    absl::Duration interval = FromProtoDuration(spec.interval());
    if (interval <= absl::ZeroDuration()) interval = kDefaultInterval;
    scheduled.interval = Scaled(interval);
    // A new bundle's collectors run at once.
    scheduled.next_due = now;
    names.push_back(spec.name());
  }
  // The agent's own collector of operation calls, beside the bundle's.
  Scheduled& calls = schedule_.emplace_back();
  calls.interval = Scaled(kDefaultInterval);
  calls.next_due = now;
  Log()->info("metrics: bundle {} {} ({}) is applied; {} collectors{}{}",
              bundle_->manifest().name(), bundle_->manifest().version(),
              bundle_id, names.size(), names.empty() ? "" : ": ",
              absl::StrJoin(names, ", "));
  return absl::OkStatus();
}

bool MetricsCollector::Enabled(ReadOnlySession& session) {
  const v1::BundleManifest& manifest = bundle_->manifest();
  const std::string& get = manifest.config().get_operation();
  if (get.empty() ||
      bundle::FindConfigKey(manifest, kEnableMetricsKey) == nullptr) {
    return true;
  }
  absl::StatusOr<OperationResult> result =
      session.Run(*bundle_, get, {{"ConfigKey", kEnableMetricsKey}},
                  /*max_rows=*/1);
  if (!result.ok()) {
    // Collection is the agent's own read; a configuration that cannot be
    // read does not stop it.
    Log()->warn("metrics: cannot read {}: {}; collecting", kEnableMetricsKey,
                result.status().ToString());
    return true;
  }
  const bool enabled = result->rows.empty() || result->rows[0].empty() ||
                       result->nulls[0][0] || result->rows[0][0] != "0";
  return enabled;
}

absl::StatusOr<CursorStore*> MetricsCollector::Cursors() {
  if (cursor_store_ == nullptr) {
    ASSIGN_OR_RETURN(state_database_, OpenTarget(options_.database_url));
    cursor_store_ = std::make_unique<CursorStore>(state_database_.get());
  }
  return cursor_store_.get();
}

absl::StatusOr<std::optional<int64_t>> MetricsCollector::LoadCursor(
    const std::string& name) {
  const auto key = std::make_pair(bundle_->manifest().name(), name);
  if (auto it = cursors_.find(key); it != cursors_.end()) {
    return std::optional<int64_t>(it->second);
  }
  ASSIGN_OR_RETURN(CursorStore * store, Cursors());
  absl::StatusOr<std::optional<int64_t>> stored = store->Load(key.first, name);
  if (!stored.ok()) {
    // Reconnect next time.
    cursor_store_.reset();
    state_database_.reset();
    return stored.status();
  }
  if (stored->has_value()) cursors_[key] = **stored;
  return stored;
}

absl::Status MetricsCollector::SaveCursor(const std::string& name,
                                          int64_t cursor) {
  const auto key = std::make_pair(bundle_->manifest().name(), name);
  ASSIGN_OR_RETURN(CursorStore * store, Cursors());
  if (absl::Status status = store->Save(key.first, name, cursor);
      !status.ok()) {
    cursor_store_.reset();
    state_database_.reset();
    return status;
  }
  cursors_[key] = cursor;
  return absl::OkStatus();
}

absl::Status MetricsCollector::RunOperationCalls(
    absl::Time now, std::vector<v1::MetricSample>* samples) {
  // The cursors' writable connection serves here too.
  RETURN_IF_ERROR(Cursors().status());
  absl::StatusOr<std::vector<v1::MetricSample>> collected =
      CollectOperationCalls(*state_database_, now);
  if (!collected.ok()) {
    // Reconnect next time.
    cursor_store_.reset();
    state_database_.reset();
    return collected.status();
  }
  *samples = *std::move(collected);
  return absl::OkStatus();
}

absl::Status MetricsCollector::RunCollector(
    const v1::MetricCollector& spec, absl::Time now,
    std::vector<v1::MetricSample>* samples) {
  const bool incremental = !spec.cursor_column().empty();
  int64_t cursor = 0;
  // The first run of an incremental collector only finds where to start.
  bool baseline = false;
  if (incremental) {
    ASSIGN_OR_RETURN(std::optional<int64_t> stored, LoadCursor(spec.name()));
    if (stored.has_value()) {
      cursor = *stored;
    } else {
      baseline = !options_.count_existing_rows;
    }
  }
  std::vector<SqlParam> params;
  if (incremental) params.push_back(SqlParam::Int("Cursor", cursor));

  ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlySession> session, OpenSession());
  absl::StatusOr<QueryResult> result =
      session->Query(QueryFor(spec, dialect_), params);
  CloseSession(std::move(session));
  RETURN_IF_ERROR(result.status());

  // Columns are looked up only when there are rows: some drivers describe no
  // columns for an empty result.
  int cursor_index = -1;
  std::vector<int> value_index;
  std::vector<int> label_index;
  if (!result->rows.empty()) {
    std::vector<std::string> missing;
    auto find = [&](const std::string& column) {
      const int index = FindColumn(result->columns, column);
      if (index < 0) missing.push_back(column);
      return index;
    };
    if (incremental) cursor_index = find(spec.cursor_column());
    for (const v1::MetricColumn& value : spec.values())
      value_index.push_back(find(value.column()));
    for (const v1::MetricLabel& label : spec.labels())
      label_index.push_back(find(label.column()));
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the query's result has no column ", absl::StrJoin(missing, ", "),
          " (it has ", absl::StrJoin(result->columns, ", "), ")"));
    }
  }

  int64_t highest = cursor;
  std::vector<v1::MetricSample> collected;
  const google::protobuf::Timestamp time = ToProtoTimestamp(now);
  for (const SqlRow& row : result->rows) {
    if (incremental && !row.nulls[cursor_index]) {
      int64_t value = 0;
      if (!ParseCursor(row.values[cursor_index], &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("cursor column ", spec.cursor_column(), " holds \"",
                         row.values[cursor_index], "\": not an integer"));
      }
      highest = std::max(highest, value);
    }
    std::map<std::string, std::string> labels;
    for (int i = 0; i < spec.labels_size(); ++i) {
      if (row.nulls[label_index[i]]) continue;
      labels[spec.labels(i).label()] = row.values[label_index[i]];
    }
    for (int i = 0; i < spec.values_size(); ++i) {
      if (row.nulls[value_index[i]]) continue;
      const std::string& text = row.values[value_index[i]];
      double value = 0;
      if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("value column ", spec.values(i).column(), " holds \"",
                         text, "\": not a number"));
      }
      v1::MetricSample& sample = collected.emplace_back();
      sample.set_metric(spec.values(i).metric());
      sample.mutable_labels()->insert(labels.begin(), labels.end());
      sample.set_value(value);
      sample.set_kind(spec.values(i).kind());
      *sample.mutable_time() = time;
    }
  }

  // Stored before the samples go anywhere: a failure here leaves the cursor
  // where it was, and the same rows are read again next time.
  if (incremental && (baseline || highest != cursor)) {
    RETURN_IF_ERROR(SaveCursor(spec.name(), highest));
  }
  if (baseline) {
    Log()->info(
        "metrics: collector {} starts after {} {} (rows already there are not "
        "counted)",
        spec.name(), spec.cursor_column(), highest);
    return absl::OkStatus();
  }
  *samples = std::move(collected);
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
