#include "server/storage/state_store.h"

#include <chrono>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/sql/session.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using google::protobuf::util::TimeUtil;

struct Migration {
  int version;
  const char* description;
  // Statements valid in both SQLite and PostgreSQL.
  std::vector<const char*> statements;
  // Then these, on that engine only (the same tables, each in its best form).
  std::vector<const char*> sqlite_statements = {};
  std::vector<const char*> postgresql_statements = {};
};

const std::vector<Migration>& Migrations() {
  static const auto* migrations = new std::vector<Migration>{
      {1,
       "agent registry",
       {
           R"(CREATE TABLE databases (
                database_id TEXT PRIMARY KEY,
                engine INTEGER NOT NULL,
                engine_version TEXT NOT NULL,
                connector INTEGER NOT NULL,
                agent_version TEXT NOT NULL,
                agent_host TEXT NOT NULL,
                agent_peer TEXT NOT NULL,
                capabilities TEXT NOT NULL,
                connection_state INTEGER NOT NULL,
                first_seen_us BIGINT NOT NULL,
                connected_us BIGINT NOT NULL,
                last_seen_us BIGINT NOT NULL))",
           R"(CREATE TABLE database_labels (
                database_id TEXT NOT NULL REFERENCES databases (database_id) ON DELETE CASCADE,
                label_key TEXT NOT NULL,
                label_value TEXT NOT NULL,
                PRIMARY KEY (database_id, label_key)))",
       }},
      {2,
       "bundles",
       {
           // Manifests are stored as binary protobuf and file contents
           // base64-encoded, in TEXT columns that both engines handle alike.
           R"(CREATE TABLE bundles (
                bundle_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                manifest TEXT NOT NULL,
                size_bytes BIGINT NOT NULL,
                file_count INTEGER NOT NULL,
                uploaded_us BIGINT NOT NULL,
                UNIQUE (name, version)))",
           R"(CREATE TABLE bundle_files (
                bundle_id TEXT NOT NULL REFERENCES bundles (bundle_id) ON DELETE CASCADE,
                path TEXT NOT NULL,
                content TEXT NOT NULL,
                PRIMARY KEY (bundle_id, path)))",
       }},
      {3,
       "rollouts",
       {
           // The whole Rollout message (targets included) as base64 protobuf:
           // saved with its new events in one transaction after every change.
           R"(CREATE TABLE rollouts (
                rollout_id TEXT PRIMARY KEY,
                number BIGINT NOT NULL,
                state INTEGER NOT NULL,
                data TEXT NOT NULL))",
           R"(CREATE TABLE rollout_events (
                rollout_id TEXT NOT NULL REFERENCES rollouts (rollout_id) ON DELETE CASCADE,
                sequence BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (rollout_id, sequence)))",
       }},
      {4,
       "rollout targets in rows of their own",
       {
           // rollouts.data holds the header only (the Rollout without
           // targets) once `whole` is 0; rows of schema 3 (whole = 1) are
           // split by LoadRollouts. A change saves the header and the
           // targets it touched, not the whole rollout.
           "ALTER TABLE rollouts ADD COLUMN whole INTEGER NOT NULL DEFAULT 1",
           "ALTER TABLE rollouts ADD COLUMN waves_ended INTEGER NOT NULL "
           "DEFAULT 0",
           "ALTER TABLE rollouts ADD COLUMN rollback_pending INTEGER NOT NULL "
           "DEFAULT 0",
           R"(CREATE TABLE rollout_targets (
                rollout_id TEXT NOT NULL REFERENCES rollouts (rollout_id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (rollout_id, position)))",
       }},
      {5,
       "maintenance jobs, fleet configuration, operation filters",
       {
           // Which job a run belongs to, and which database a target row
           // is: ListRollouts filters by both without decoding rows.
           "ALTER TABLE rollouts ADD COLUMN job_id TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE rollout_targets ADD COLUMN database_id TEXT NOT NULL "
           "DEFAULT ''",
           "CREATE INDEX rollout_targets_by_database ON rollout_targets "
           "(database_id, rollout_id)",
           // A Job message as base64 protobuf.
           R"(CREATE TABLE jobs (
                job_id TEXT PRIMARY KEY,
                number BIGINT NOT NULL,
                name TEXT NOT NULL UNIQUE,
                data TEXT NOT NULL))",
           // Desired and last read value of each key on each database.
           R"(CREATE TABLE config_values (
                database_id TEXT NOT NULL,
                config_key TEXT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (database_id, config_key)))",
           // Every change of a key on a database (a ConfigChange message).
           R"(CREATE TABLE config_history (
                rollout_id TEXT NOT NULL,
                database_id TEXT NOT NULL,
                config_key TEXT NOT NULL,
                rollback INTEGER NOT NULL,
                change_time BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (rollout_id, database_id, config_key, rollback)))",
       }},
      {6,
       "metrics: series, raw samples, minute and hour rollups, batches stored",
       {
           // Owned by server/metrics/metric_store.cc. A series is a database,
           // a metric and the sample's own labels (canonical key); samples
           // and rollups refer to it by number, so rows stay small. The
           // latest value is saved now and then (memory has it exactly).
           R"(CREATE TABLE metric_series (
                series_id BIGINT PRIMARY KEY,
                database_id TEXT NOT NULL,
                metric TEXT NOT NULL,
                labels TEXT NOT NULL,
                created_us BIGINT NOT NULL,
                last_time_us BIGINT NOT NULL,
                last_value DOUBLE PRECISION NOT NULL,
                UNIQUE (database_id, metric, labels)))",
           // Where rolling raw samples up into the rollups has got to
           // (roll_hour, roll_series): hours are rolled up once they are
           // over, a few thousand series per transaction.
           R"(CREATE TABLE metric_state (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL))",
           // The highest batch stored per agent process: a batch sent again
           // after a reconnect is acknowledged, not stored twice.
           R"(CREATE TABLE metric_batches (
                database_id TEXT NOT NULL,
                agent_instance TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                stored_us BIGINT NOT NULL,
                PRIMARY KEY (database_id, agent_instance)))",
       },
       // Raw samples, as received (kept --metrics_raw_retention, and until
       // rolled up); `seq` keeps two samples of a series at one time apart.
       // Minute rollups per series and minute since the epoch (kept
       // --metrics_rollup_retention), made from the raw samples of an hour
       // once it is over; hour rollups the same per hour, so that long ranges
       // read 60 times fewer rows. Every key leads with time (raw samples by
       // 10 minutes since the epoch, `bucket`; rollups by hour): a write
       // lands in the newest part of each b-tree rather than in a page per
       // series, and retention deletes whole periods. SQLite keeps each table
       // in its key's b-tree (WITHOUT ROWID): one b-tree written per row.
       {
           R"(CREATE TABLE metric_samples (
                bucket BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                time_us BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (bucket, series_id, time_us, seq)) WITHOUT ROWID)",
           R"(CREATE TABLE metric_rollups (
                hour BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                minute BIGINT NOT NULL,
                value_sum DOUBLE PRECISION NOT NULL,
                value_count BIGINT NOT NULL,
                value_min DOUBLE PRECISION NOT NULL,
                value_max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (hour, series_id, minute)) WITHOUT ROWID)",
           R"(CREATE TABLE metric_rollups_hourly (
                hour BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                value_sum DOUBLE PRECISION NOT NULL,
                value_count BIGINT NOT NULL,
                value_min DOUBLE PRECISION NOT NULL,
                value_max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (hour, series_id)) WITHOUT ROWID)",
       },
       {
           R"(CREATE TABLE metric_samples (
                bucket BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                time_us BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (bucket, series_id, time_us, seq)))",
           R"(CREATE TABLE metric_rollups (
                hour BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                minute BIGINT NOT NULL,
                value_sum DOUBLE PRECISION NOT NULL,
                value_count BIGINT NOT NULL,
                value_min DOUBLE PRECISION NOT NULL,
                value_max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (hour, series_id, minute)))",
           R"(CREATE TABLE metric_rollups_hourly (
                hour BIGINT NOT NULL,
                series_id BIGINT NOT NULL,
                value_sum DOUBLE PRECISION NOT NULL,
                value_count BIGINT NOT NULL,
                value_min DOUBLE PRECISION NOT NULL,
                value_max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (hour, series_id)))",
       }},
      {7,
       "alerts and their events",
       {
           // Owned by server/alerts/alert_store.cc. One row per alert: a rule
           // that held on a database from fired_us to resolved_us (0 while
           // active). At most one active alert per rule and database, which
           // the partial unique index enforces.
           R"(CREATE TABLE alerts (
                alert_id BIGINT PRIMARY KEY,
                rule INTEGER NOT NULL,
                database_id TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                threshold DOUBLE PRECISION NOT NULL,
                message TEXT NOT NULL,
                fired_us BIGINT NOT NULL,
                resolved_us BIGINT NOT NULL DEFAULT 0,
                resolved_value DOUBLE PRECISION NOT NULL DEFAULT 0))",
           "CREATE UNIQUE INDEX alerts_active ON alerts (rule, database_id) "
           "WHERE resolved_us = 0",
           // ListAlerts' resolved alerts, newest first, fleet-wide or per
           // database; retention deletes by resolved_us.
           "CREATE INDEX alerts_by_resolved ON alerts (resolved_us)",
           "CREATE INDEX alerts_by_database ON alerts (database_id, "
           "resolved_us)",
           // Every fired and resolved event, numbered: the feed of
           // WatchAlerts and the history of an alert.
           R"(CREATE TABLE alert_events (
                sequence BIGINT PRIMARY KEY,
                alert_id BIGINT NOT NULL,
                type INTEGER NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                message TEXT NOT NULL,
                event_us BIGINT NOT NULL))",
           "CREATE INDEX alert_events_by_alert ON alert_events "
           "(alert_id, sequence)",
       }},
      {8,
       "metric counters",
       {
           // Owned by server/metrics/metric_store.cc. A series of a delta
           // metric (calls, errors, failed logins) has a running total of
           // every amount stored, which Prometheus reads as a counter; saved
           // with the latest value, so it goes on across restarts.
           "ALTER TABLE metric_series ADD COLUMN counter INTEGER NOT NULL "
           "DEFAULT 0",
           "ALTER TABLE metric_series ADD COLUMN counter_total DOUBLE "
           "PRECISION NOT NULL DEFAULT 0",
       }},
  };
  return *migrations;
}

long long ToMicros(const google::protobuf::Timestamp& timestamp) {
  return TimeUtil::TimestampToMicroseconds(timestamp);
}

google::protobuf::Timestamp FromMicros(long long micros) {
  return TimeUtil::MicrosecondsToTimestamp(micros);
}

}  // namespace

int StateStore::LatestSchemaVersion() { return Migrations().back().version; }

class StateStore::WriteTimer {
 public:
  WriteTimer(const StateStore* store, const char* operation)
      : store_(store),
        operation_(operation),
        start_(std::chrono::steady_clock::now()) {}
  ~WriteTimer() {
    if (!store_->write_observer_) return;
    // A monotonic clock: the wall clock may step during a write.
    store_->write_observer_(
        operation_,
        absl::FromChrono(std::chrono::steady_clock::now() - start_));
  }

 private:
  const StateStore* const store_;
  const char* const operation_;
  const std::chrono::steady_clock::time_point start_;
};

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(
    const std::string& url) {
  ASSIGN_OR_RETURN(sql::DatabaseUrl parsed, sql::ParseDatabaseUrl(url));
  if (parsed.backend == sql::Backend::kOdbc) {
    return absl::InvalidArgumentError(
        absl::StrCat("state store \"", parsed.redacted,
                     "\": the server keeps its state in SQLite "
                     "(sqlite:///path) or PostgreSQL "
                     "(postgresql://...), not through ODBC"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<soci::session> session,
                   sql::OpenSession(parsed));
  std::unique_ptr<StateStore> store(
      new StateStore(std::move(parsed), std::move(session)));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status StateStore::Migrate() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  int current = 0;
  RETURN_IF_ERROR(sql::Guard("prepare state store", [&] {
    if (url_.backend == sql::Backend::kSqlite) {
      // WAL lets readers go on while the registry writes; foreign keys are off
      // by default in SQLite.
      sql << "PRAGMA journal_mode=WAL";
      sql << "PRAGMA foreign_keys=ON";
    }
    sql << R"(CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at TEXT NOT NULL))";
    soci::indicator indicator;
    sql << "SELECT MAX(version) FROM schema_migrations",
        soci::into(current, indicator);
    if (indicator == soci::i_null) current = 0;
  }));
  if (current > LatestSchemaVersion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state store ", url_.redacted, " has schema version ", current,
        " but this ecliptix-server knows only up to ", LatestSchemaVersion(),
        ": upgrade ecliptix-server, or point --store at another database"));
  }
  for (const Migration& migration : Migrations()) {
    if (migration.version <= current) continue;
    RETURN_IF_ERROR(sql::Guard(
        absl::StrCat("migrate state store to version ", migration.version),
        [&] {
          soci::transaction transaction(sql);
          for (const char* statement : migration.statements) sql << statement;
          for (const char* statement : url_.backend == sql::Backend::kSqlite
                                           ? migration.sqlite_statements
                                           : migration.postgresql_statements) {
            sql << statement;
          }
          const std::string applied_at = absl::FormatTime(absl::Now());
          const std::string description = migration.description;
          sql << "INSERT INTO schema_migrations (version, description, "
                 "applied_at) "
                 "VALUES (:version, :description, :applied_at)",
              soci::use(migration.version), soci::use(description),
              soci::use(applied_at);
          transaction.commit();
        }));
    Logger("store")->info("state store migrated to schema version {} ({})",
                          migration.version, migration.description);
    current = migration.version;
  }
  schema_version_ = current;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Database>> StateStore::LoadDatabases() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::Database> databases;
  RETURN_IF_ERROR(sql::Guard("load the agent registry", [&] {
    std::string id, engine_version, agent_version, agent_host, agent_peer,
        capabilities;
    int engine = 0, connector = 0, state = 0;
    long long first_seen = 0, connected = 0, last_seen = 0;
    soci::statement statement =
        (sql.prepare << "SELECT database_id, engine, engine_version, "
                        "connector, agent_version, "
                        "agent_host, agent_peer, capabilities, "
                        "connection_state, first_seen_us, "
                        "connected_us, last_seen_us FROM databases ORDER BY "
                        "database_id",
         soci::into(id), soci::into(engine), soci::into(engine_version),
         soci::into(connector), soci::into(agent_version),
         soci::into(agent_host), soci::into(agent_peer),
         soci::into(capabilities), soci::into(state), soci::into(first_seen),
         soci::into(connected), soci::into(last_seen));
    statement.execute();
    while (statement.fetch()) {
      v1::Database& database = databases.emplace_back();
      database.set_database_id(id);
      database.set_engine(static_cast<v1::Engine>(engine));
      database.set_engine_version(engine_version);
      database.set_connector(static_cast<v1::Connector>(connector));
      database.set_agent_version(agent_version);
      database.set_agent_host(agent_host);
      database.set_agent_peer(agent_peer);
      for (absl::string_view capability :
           absl::StrSplit(capabilities, ',', absl::SkipEmpty())) {
        database.add_capabilities(std::string(capability));
      }
      database.set_connection_state(static_cast<v1::ConnectionState>(state));
      *database.mutable_first_seen_time() = FromMicros(first_seen);
      *database.mutable_connected_time() = FromMicros(connected);
      *database.mutable_last_seen_time() = FromMicros(last_seen);
    }
    std::string label_key, label_value;
    soci::statement labels =
        (sql.prepare << "SELECT database_id, label_key, label_value FROM "
                        "database_labels "
                        "ORDER BY database_id, label_key",
         soci::into(id), soci::into(label_key), soci::into(label_value));
    labels.execute();
    size_t index = 0;
    while (labels.fetch()) {
      // Both result sets are ordered by database id: walk them together.
      while (index < databases.size() && databases[index].database_id() < id)
        ++index;
      if (index < databases.size() && databases[index].database_id() == id) {
        (*databases[index].mutable_labels())[label_key] = label_value;
      }
    }
  }));
  return databases;
}

void StateStore::UpsertLocked(const v1::Database& database) {
  soci::session& sql = *session_;
  const std::string id = database.database_id();
  const int engine = database.engine();
  const std::string engine_version = database.engine_version();
  const int connector = database.connector();
  const std::string agent_version = database.agent_version();
  const std::string agent_host = database.agent_host();
  const std::string agent_peer = database.agent_peer();
  const std::string capabilities = absl::StrJoin(database.capabilities(), ",");
  const int state = database.connection_state();
  const long long first_seen = ToMicros(database.first_seen_time());
  const long long connected = ToMicros(database.connected_time());
  const long long last_seen = ToMicros(database.last_seen_time());
  sql << "INSERT INTO databases (database_id, engine, engine_version, "
         "connector, agent_version, "
         "agent_host, agent_peer, capabilities, connection_state, "
         "first_seen_us, connected_us, "
         "last_seen_us) VALUES (:id, :engine, :engine_version, :connector, "
         ":agent_version, "
         ":agent_host, :agent_peer, :capabilities, :state, :first_seen, "
         ":connected, :last_seen) "
         "ON CONFLICT (database_id) DO UPDATE SET engine = excluded.engine, "
         "engine_version = excluded.engine_version, connector = "
         "excluded.connector, "
         "agent_version = excluded.agent_version, agent_host = "
         "excluded.agent_host, "
         "agent_peer = excluded.agent_peer, capabilities = "
         "excluded.capabilities, "
         "connection_state = excluded.connection_state, connected_us = "
         "excluded.connected_us, "
         "last_seen_us = excluded.last_seen_us",
      soci::use(id), soci::use(engine), soci::use(engine_version),
      soci::use(connector), soci::use(agent_version), soci::use(agent_host),
      soci::use(agent_peer), soci::use(capabilities), soci::use(state),
      soci::use(first_seen), soci::use(connected), soci::use(last_seen);
  sql << "DELETE FROM database_labels WHERE database_id = :id", soci::use(id);
  for (const auto& [key, value] : database.labels()) {
    sql << "INSERT INTO database_labels (database_id, label_key, label_value) "
           "VALUES (:id, :key, :value)",
        soci::use(id), soci::use(key), soci::use(value);
  }
}

absl::Status StateStore::UpsertDatabase(const v1::Database& database) {
  return UpsertDatabases({database});
}

absl::Status StateStore::UpsertDatabases(
    const std::vector<v1::Database>& databases) {
  if (databases.empty()) return absl::OkStatus();
  WriteTimer timer(this, "upsert_databases");
  absl::MutexLock lock(&mutex_);
  return sql::Guard("save the agent registry", [&] {
    soci::transaction transaction(*session_);
    for (const v1::Database& database : databases) UpsertLocked(database);
    transaction.commit();
  });
}

absl::Status StateStore::InsertBundle(
    const v1::BundleInfo& info, const std::vector<v1::BundleFile>& files) {
  WriteTimer timer(this, "insert_bundle");
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  int existing = 0;
  RETURN_IF_ERROR(sql::Guard("look up bundle", [&] {
    sql << "SELECT COUNT(*) FROM bundles WHERE bundle_id = :id",
        soci::use(info.bundle_id()), soci::into(existing);
  }));
  if (existing > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("bundle ", info.bundle_id(), " is stored"));
  }
  return sql::Guard("store bundle", [&] {
    soci::transaction transaction(sql);
    const std::string manifest =
        absl::Base64Escape(info.manifest().SerializeAsString());
    const long long size_bytes = info.size_bytes();
    const int file_count = info.file_count();
    const long long uploaded = ToMicros(info.upload_time());
    sql << "INSERT INTO bundles (bundle_id, name, version, manifest, "
           "size_bytes, file_count, "
           "uploaded_us) VALUES (:id, :name, :version, :manifest, :size, "
           ":count, :uploaded)",
        soci::use(info.bundle_id()), soci::use(info.name()),
        soci::use(info.version()), soci::use(manifest), soci::use(size_bytes),
        soci::use(file_count), soci::use(uploaded);
    for (const v1::BundleFile& file : files) {
      const std::string content = absl::Base64Escape(file.content());
      sql << "INSERT INTO bundle_files (bundle_id, path, content) VALUES (:id, "
             ":path, :content)",
          soci::use(info.bundle_id()), soci::use(file.path()),
          soci::use(content);
    }
    transaction.commit();
  });
}

absl::StatusOr<std::vector<v1::BundleInfo>> StateStore::LoadBundleInfos() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::BundleInfo> infos;
  RETURN_IF_ERROR(sql::Guard("load bundles", [&] {
    std::string id, name, version, manifest;
    long long size_bytes = 0, uploaded = 0;
    int file_count = 0;
    soci::statement statement =
        (sql.prepare
             << "SELECT bundle_id, name, version, manifest, size_bytes, "
                "file_count, "
                "uploaded_us FROM bundles ORDER BY uploaded_us, bundle_id",
         soci::into(id), soci::into(name), soci::into(version),
         soci::into(manifest), soci::into(size_bytes), soci::into(file_count),
         soci::into(uploaded));
    statement.execute();
    while (statement.fetch()) {
      v1::BundleInfo& info = infos.emplace_back();
      info.set_bundle_id(id);
      info.set_name(name);
      info.set_version(version);
      std::string bytes;
      if (!absl::Base64Unescape(manifest, &bytes) ||
          !info.mutable_manifest()->ParseFromString(bytes)) {
        throw std::runtime_error(
            absl::StrCat("stored manifest of ", id, " is damaged"));
      }
      info.set_size_bytes(size_bytes);
      info.set_file_count(file_count);
      *info.mutable_upload_time() = FromMicros(uploaded);
    }
  }));
  return infos;
}

absl::StatusOr<std::vector<v1::BundleFile>> StateStore::LoadBundleFiles(
    const std::string& bundle_id) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::BundleFile> files;
  RETURN_IF_ERROR(sql::Guard("load bundle files", [&] {
    std::string path, content;
    soci::statement statement =
        (sql.prepare
             << "SELECT path, content FROM bundle_files WHERE bundle_id = :id "
                "ORDER BY path",
         soci::use(bundle_id), soci::into(path), soci::into(content));
    statement.execute();
    while (statement.fetch()) {
      v1::BundleFile& file = files.emplace_back();
      file.set_path(path);
      std::string bytes;
      if (!absl::Base64Unescape(content, &bytes)) {
        throw std::runtime_error(absl::StrCat("stored file ", path, " of ",
                                              bundle_id, " is damaged"));
      }
      file.set_content(std::move(bytes));
    }
  }));
  if (files.empty()) {
    return absl::NotFoundError(
        absl::StrCat("bundle ", bundle_id, " has no stored files"));
  }
  return files;
}

namespace {

// Saves a rollout's header (a Rollout without targets).
void SaveHeader(soci::session& sql, const v1::Rollout& header, long long number,
                int waves_ended, bool rollback_pending) {
  const std::string data = absl::Base64Escape(header.SerializeAsString());
  const int state = header.state();
  const int pending = rollback_pending ? 1 : 0;
  const std::string& job_id = header.operation().job_run().job_id();
  sql << "INSERT INTO rollouts (rollout_id, number, state, data, whole, "
         "waves_ended, rollback_pending, job_id) VALUES (:id, :number, :state, "
         ":data, 0, :waves_ended, :pending, :job_id) ON CONFLICT (rollout_id) "
         "DO UPDATE SET state = excluded.state, data = excluded.data, whole = "
         "0, waves_ended = excluded.waves_ended, rollback_pending = "
         "excluded.rollback_pending",
      soci::use(header.rollout_id()), soci::use(number), soci::use(state),
      soci::use(data), soci::use(waves_ended), soci::use(pending),
      soci::use(job_id);
}

void SaveTarget(soci::session& sql, const std::string& rollout_id, int position,
                const v1::RolloutTarget& target) {
  const std::string data = absl::Base64Escape(target.SerializeAsString());
  sql << "INSERT INTO rollout_targets (rollout_id, position, data, "
         "database_id) VALUES (:id, :position, :data, :database_id) ON "
         "CONFLICT (rollout_id, position) DO UPDATE SET data = excluded.data, "
         "database_id = excluded.database_id",
      soci::use(rollout_id), soci::use(position), soci::use(data),
      soci::use(target.database_id());
}

template <typename Message>
void Decode(const std::string& data, Message* message, const char* what) {
  std::string bytes;
  if (!absl::Base64Unescape(data, &bytes) || !message->ParseFromString(bytes))
    throw std::runtime_error(absl::StrCat("a stored ", what, " is damaged"));
}

}  // namespace

absl::Status StateStore::SaveRolloutChanges(
    const std::vector<RolloutChanges>& changes) {
  WriteTimer timer(this, "save_rollouts");
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  return sql::Guard("save rollouts", [&] {
    soci::transaction transaction(sql);
    for (const RolloutChanges& change : changes) {
      if (change.header) {
        SaveHeader(sql, *change.header, change.number, change.waves_ended,
                   change.rollback_pending);
      }
      for (const auto& [position, target] : change.targets)
        SaveTarget(sql, change.rollout_id, position, *target);
      for (const v1::RolloutEvent& event : change.events) {
        const std::string event_data =
            absl::Base64Escape(event.SerializeAsString());
        const long long sequence = event.sequence();
        sql << "INSERT INTO rollout_events (rollout_id, sequence, data) "
               "VALUES (:id, :sequence, :data)",
            soci::use(change.rollout_id), soci::use(sequence),
            soci::use(event_data);
      }
    }
    transaction.commit();
  });
}

absl::StatusOr<std::vector<StateStore::StoredRollout>>
StateStore::LoadRollouts() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<StoredRollout> rollouts;
  RETURN_IF_ERROR(sql::Guard("load rollouts", [&] {
    std::string data;
    long long number = 0;
    int whole = 0, waves_ended = 0, rollback_pending = 0;
    std::map<std::string, size_t> by_id;
    std::vector<size_t> stored_whole;
    {
      soci::statement statement =
          (sql.prepare << "SELECT data, number, whole, waves_ended, "
                          "rollback_pending FROM rollouts ORDER BY number",
           soci::into(data), soci::into(number), soci::into(whole),
           soci::into(waves_ended), soci::into(rollback_pending));
      statement.execute();
      while (statement.fetch()) {
        StoredRollout& stored = rollouts.emplace_back();
        Decode(data, &stored.rollout, "rollout");
        stored.number = number;
        stored.waves_ended = waves_ended;
        stored.rollback_pending = rollback_pending != 0;
        if (whole != 0) {
          stored_whole.push_back(rollouts.size() - 1);
          // Schema 3 kept neither field; a rollback asked for before the
          // upgrade shows in the reason its rollout waits with.
          stored.rollback_pending =
              stored.rollout.state() == v1::ROLLOUT_STATE_PAUSED &&
              absl::StartsWith(stored.rollout.waiting_reason(),
                               "rollback requested");
        } else {
          stored.rollout.clear_targets();
          by_id[stored.rollout.rollout_id()] = rollouts.size() - 1;
        }
      }
    }
    {
      std::string rollout_id;
      int position = 0;
      soci::statement statement =
          (sql.prepare << "SELECT rollout_id, position, data FROM "
                          "rollout_targets ORDER BY rollout_id, position",
           soci::into(rollout_id), soci::into(position), soci::into(data));
      statement.execute();
      while (statement.fetch()) {
        auto it = by_id.find(rollout_id);
        if (it == by_id.end()) continue;
        v1::Rollout& rollout = rollouts[it->second].rollout;
        if (position != rollout.targets_size()) {
          throw std::runtime_error(absl::StrCat("rollout ", rollout_id,
                                                " misses target row ",
                                                rollout.targets_size()));
        }
        Decode(data, rollout.add_targets(), "rollout target");
      }
    }
    // Split what an older server stored whole into header and target rows.
    if (!stored_whole.empty()) {
      soci::transaction transaction(sql);
      for (size_t index : stored_whole) {
        const StoredRollout& stored = rollouts[index];
        v1::Rollout header = stored.rollout;
        header.clear_targets();
        SaveHeader(sql, header, stored.number, stored.waves_ended,
                   stored.rollback_pending);
        for (int i = 0; i < stored.rollout.targets_size(); ++i)
          SaveTarget(sql, stored.rollout.rollout_id(), i,
                     stored.rollout.targets(i));
      }
      transaction.commit();
      Logger("store")->info("stored {} rollouts as header and target rows",
                            stored_whole.size());
    }
  }));
  return rollouts;
}

absl::StatusOr<StateStore::StoredRollout> StateStore::LoadRollout(
    const std::string& rollout_id) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  StoredRollout stored;
  bool found = false;
  RETURN_IF_ERROR(sql::Guard("load rollout", [&] {
    std::string data;
    long long number = 0;
    int whole = 0, waves_ended = 0, rollback_pending = 0;
    soci::indicator indicator = soci::i_ok;
    sql << "SELECT data, number, whole, waves_ended, rollback_pending FROM "
           "rollouts WHERE rollout_id = :id",
        soci::use(rollout_id), soci::into(data, indicator), soci::into(number),
        soci::into(whole), soci::into(waves_ended),
        soci::into(rollback_pending);
    if (!sql.got_data()) return;
    found = true;
    Decode(data, &stored.rollout, "rollout");
    stored.number = number;
    stored.waves_ended = waves_ended;
    stored.rollback_pending = rollback_pending != 0;
    // LoadRollouts (at every start) splits what was stored whole.
    if (whole != 0) return;
    stored.rollout.clear_targets();
    int position = 0;
    soci::statement statement =
        (sql.prepare << "SELECT position, data FROM rollout_targets WHERE "
                        "rollout_id = :id ORDER BY position",
         soci::use(rollout_id), soci::into(position), soci::into(data));
    statement.execute();
    while (statement.fetch()) {
      if (position != stored.rollout.targets_size()) {
        throw std::runtime_error(absl::StrCat("rollout ", rollout_id,
                                              " misses target row ",
                                              stored.rollout.targets_size()));
      }
      Decode(data, stored.rollout.add_targets(), "rollout target");
    }
  }));
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("no rollout \"", rollout_id, "\" is stored"));
  }
  return stored;
}

absl::StatusOr<std::vector<StateStore::StoredRollout>>
StateStore::LoadRolloutHeaders(long long before, const std::vector<int>& states,
                               int limit, const std::string& job_id,
                               const std::string& database_id) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<StoredRollout> headers;
  const std::set<int> wanted(states.begin(), states.end());
  RETURN_IF_ERROR(sql::Guard("load rollout headers", [&] {
    std::string data;
    long long number = 0;
    int state = 0, waves_ended = 0, rollback_pending = 0;
    // Empty filters match everything. (Each name once: SOCI's PostgreSQL
    // backend binds a repeated name only where it first appears.)
    const int any_job = job_id.empty() ? 1 : 0;
    const int any_database = database_id.empty() ? 1 : 0;
    soci::statement statement =
        (sql.prepare
             << "SELECT data, number, state, waves_ended, "
                "rollback_pending FROM rollouts r WHERE number < "
                ":before AND (:any_job = 1 OR job_id = :job_id) AND "
                "(:any_database = 1 OR EXISTS (SELECT 1 FROM "
                "rollout_targets t WHERE t.database_id = :database_id "
                "AND t.rollout_id = r.rollout_id)) ORDER BY number DESC",
         soci::use(before), soci::use(any_job), soci::use(job_id),
         soci::use(any_database), soci::use(database_id), soci::into(data),
         soci::into(number), soci::into(state), soci::into(waves_ended),
         soci::into(rollback_pending));
    statement.execute();
    while (static_cast<int>(headers.size()) < limit && statement.fetch()) {
      if (!wanted.empty() && wanted.count(state) == 0) continue;
      StoredRollout& stored = headers.emplace_back();
      Decode(data, &stored.rollout, "rollout");
      stored.rollout.clear_targets();
      stored.number = number;
      stored.waves_ended = waves_ended;
      stored.rollback_pending = rollback_pending != 0;
    }
  }));
  return headers;
}

absl::StatusOr<std::vector<v1::RolloutEvent>> StateStore::LoadRolloutEvents(
    const std::string& rollout_id, long long after_sequence) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::RolloutEvent> events;
  RETURN_IF_ERROR(sql::Guard("load rollout events", [&] {
    std::string data;
    soci::statement statement =
        (sql.prepare << "SELECT data FROM rollout_events WHERE rollout_id = "
                        ":id AND sequence > "
                        ":after ORDER BY sequence",
         soci::use(rollout_id), soci::use(after_sequence), soci::into(data));
    statement.execute();
    while (statement.fetch()) {
      std::string bytes;
      v1::RolloutEvent& event = events.emplace_back();
      if (!absl::Base64Unescape(data, &bytes) ||
          !event.ParseFromString(bytes)) {
        throw std::runtime_error("a stored rollout event is damaged");
      }
    }
  }));
  return events;
}

absl::Status StateStore::SaveJob(const v1::Job& job, long long number) {
  WriteTimer timer(this, "save_job");
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  return sql::Guard("save job", [&] {
    const std::string data = absl::Base64Escape(job.SerializeAsString());
    sql << "INSERT INTO jobs (job_id, number, name, data) VALUES (:id, "
           ":number, :name, :data) ON CONFLICT (job_id) DO UPDATE SET name = "
           "excluded.name, data = excluded.data",
        soci::use(job.job_id()), soci::use(number),
        soci::use(job.spec().name()), soci::use(data);
  });
}

absl::Status StateStore::DeleteJob(const std::string& job_id) {
  WriteTimer timer(this, "delete_job");
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  return sql::Guard("delete job", [&] {
    sql << "DELETE FROM jobs WHERE job_id = :id", soci::use(job_id);
  });
}

absl::StatusOr<std::vector<StateStore::StoredJob>> StateStore::LoadJobs() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<StoredJob> jobs;
  RETURN_IF_ERROR(sql::Guard("load jobs", [&] {
    std::string data;
    long long number = 0;
    soci::statement statement =
        (sql.prepare << "SELECT data, number FROM jobs ORDER BY number",
         soci::into(data), soci::into(number));
    statement.execute();
    while (statement.fetch()) {
      StoredJob& stored = jobs.emplace_back();
      Decode(data, &stored.job, "job");
      stored.number = number;
    }
  }));
  return jobs;
}

absl::Status StateStore::SaveConfig(
    const std::vector<v1::ConfigEntry>& entries,
    const std::vector<v1::ConfigChange>& changes) {
  WriteTimer timer(this, "save_config");
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  return sql::Guard("save configuration", [&] {
    soci::transaction transaction(sql);
    for (const v1::ConfigEntry& entry : entries) {
      const std::string data = absl::Base64Escape(entry.SerializeAsString());
      sql << "INSERT INTO config_values (database_id, config_key, data) "
             "VALUES (:database_id, :config_key, :data) ON CONFLICT "
             "(database_id, config_key) DO UPDATE SET data = excluded.data",
          soci::use(entry.database_id()), soci::use(entry.key()),
          soci::use(data);
    }
    for (const v1::ConfigChange& change : changes) {
      const std::string data = absl::Base64Escape(change.SerializeAsString());
      const int rollback = change.rollback() ? 1 : 0;
      const long long time = ToMicros(change.change_time());
      // The same change reported again (an agent repeating an outcome after
      // a reconnect) is recorded once.
      sql << "INSERT INTO config_history (rollout_id, database_id, "
             "config_key, rollback, change_time, data) VALUES (:rollout_id, "
             ":database_id, :config_key, :rollback, :change_time, :data) ON "
             "CONFLICT (rollout_id, database_id, config_key, rollback) DO "
             "NOTHING",
          soci::use(change.rollout_id()), soci::use(change.database_id()),
          soci::use(change.key()), soci::use(rollback), soci::use(time),
          soci::use(data);
    }
    transaction.commit();
  });
}

absl::StatusOr<std::vector<v1::ConfigEntry>> StateStore::LoadConfigEntries() {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::ConfigEntry> entries;
  RETURN_IF_ERROR(sql::Guard("load configuration", [&] {
    std::string data;
    soci::statement statement =
        (sql.prepare << "SELECT data FROM config_values ORDER BY database_id, "
                        "config_key",
         soci::into(data));
    statement.execute();
    while (statement.fetch()) Decode(data, &entries.emplace_back(), "value");
  }));
  return entries;
}

absl::StatusOr<std::vector<v1::ConfigChange>> StateStore::LoadConfigHistory(
    const std::string& key, const std::string& database_id, int limit) {
  absl::MutexLock lock(&mutex_);
  soci::session& sql = *session_;
  std::vector<v1::ConfigChange> changes;
  RETURN_IF_ERROR(sql::Guard("load configuration history", [&] {
    std::string data;
    const int any_key = key.empty() ? 1 : 0;
    const int any_database = database_id.empty() ? 1 : 0;
    soci::statement statement =
        (sql.prepare << "SELECT data FROM config_history WHERE (:any_key = 1 "
                        "OR config_key = :config_key) AND (:any_database = 1 "
                        "OR database_id = :database_id) ORDER BY change_time "
                        "DESC, rollout_id DESC, database_id, config_key",
         soci::use(any_key), soci::use(key), soci::use(any_database),
         soci::use(database_id), soci::into(data));
    statement.execute();
    while (static_cast<int>(changes.size()) < limit && statement.fetch())
      Decode(data, &changes.emplace_back(), "configuration change");
  }));
  return changes;
}

}  // namespace ecliptix::server
