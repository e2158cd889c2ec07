// The server's persistent state: a SQLite file (default) or a PostgreSQL
// database reached through SOCI. Owns the state schema and its migrations,
// applied in order at start. Thread-safe.
#ifndef ECLIPTIX_SERVER_STORAGE_STATE_STORE_H_
#define ECLIPTIX_SERVER_STORAGE_STATE_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sql/database_url.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "ecliptix/fleet/v1/config_service.pb.h"
#include "ecliptix/fleet/v1/job_service.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "ecliptix/fleet/v1/types.pb.h"
#include "soci/soci.h"

namespace ecliptix::server {

class StateStore {
 public:
  // Opens the store and migrates its schema to the newest version this server
  // knows. INVALID_ARGUMENT for a URL that is not sqlite:// or postgresql://;
  // UNAVAILABLE when it cannot be reached; FAILED_PRECONDITION when the schema
  // is newer than this server.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& url);

  // Told of every write: its name ("save_rollouts", "upsert_databases", ...)
  // and how long the call took, waiting for the store's lock included (what
  // the caller waited). Set before the store is shared between threads; must
  // be quick and thread-safe.
  using WriteObserver =
      std::function<void(const char* operation, absl::Duration elapsed)>;
  void SetWriteObserver(WriteObserver observer) {
    write_observer_ = std::move(observer);
  }

  // The schema version after migration.
  int schema_version() const { return schema_version_; }
  // The newest schema version this build knows.
  static int LatestSchemaVersion();

  // Every database ever registered, ordered by id.
  absl::StatusOr<std::vector<fleet::v1::Database>> LoadDatabases();
  // Inserts or replaces one database and its labels, atomically.
  absl::Status UpsertDatabase(const fleet::v1::Database& database);
  // Inserts or replaces several databases in one transaction.
  absl::Status UpsertDatabases(
      const std::vector<fleet::v1::Database>& databases);

  // Stores a bundle and its files in one transaction. ALREADY_EXISTS when its
  // id is stored already.
  absl::Status InsertBundle(const fleet::v1::BundleInfo& info,
                            const std::vector<fleet::v1::BundleFile>& files);
  // Every stored bundle's info (manifest included), oldest first.
  absl::StatusOr<std::vector<fleet::v1::BundleInfo>> LoadBundleInfos();
  // A stored bundle's files, sorted by path.
  absl::StatusOr<std::vector<fleet::v1::BundleFile>> LoadBundleFiles(
      const std::string& bundle_id);

  // One rollout as stored: the Rollout with its targets, plus the two fields
  // of the wave engine that the API does not show.
  struct StoredRollout {
    fleet::v1::Rollout rollout;
    // Orders rollouts (r-<number>).
    long long number = 0;
    int waves_ended = 0;
    bool rollback_pending = false;
  };

  // What changed in one rollout since it was last saved.
  struct RolloutChanges {
    std::string rollout_id;
    long long number = 0;
    // The header (the rollout without its targets, with waves_ended and
    // rollback_pending), saved when set. Required the first time a rollout is
    // saved.
    std::optional<fleet::v1::Rollout> header;
    int waves_ended = 0;
    bool rollback_pending = false;
    // Target rows to save: position in the rollout's targets, and the target
    // (not owned).
    std::vector<std::pair<int, const fleet::v1::RolloutTarget*>> targets;
    // Appended to the event log.
    std::vector<fleet::v1::RolloutEvent> events;
  };

  // Saves the changes of several rollouts in one transaction: a header row
  // per rollout whose header changed, one row per changed target, and the
  // new events; O(changed targets), never the whole rollout.
  absl::Status SaveRolloutChanges(const std::vector<RolloutChanges>& changes);
  // Every rollout, oldest first, assembled from its header and target rows.
  // Rollouts an older server stored whole are split into rows on the way.
  absl::StatusOr<std::vector<StoredRollout>> LoadRollouts();
  // One rollout, assembled from its header and target rows; NOT_FOUND when
  // none has that id.
  absl::StatusOr<StoredRollout> LoadRollout(const std::string& rollout_id);
  // Rollout headers (no targets), newest first: those numbered below
  // `before`, in one of `states` (any state when empty), `limit` at most;
  // when set, only runs of `job_id` and operations including `database_id`.
  absl::StatusOr<std::vector<StoredRollout>> LoadRolloutHeaders(
      long long before, const std::vector<int>& states, int limit,
      const std::string& job_id = "", const std::string& database_id = "");
  // A rollout's events after `after_sequence`, in order.
  absl::StatusOr<std::vector<fleet::v1::RolloutEvent>> LoadRolloutEvents(
      const std::string& rollout_id, long long after_sequence);

  // Maintenance jobs (job ids are "j-<number>").
  struct StoredJob {
    fleet::v1::Job job;
    long long number = 0;
  };
  // Inserts or replaces a job. A name taken by another job fails.
  absl::Status SaveJob(const fleet::v1::Job& job, long long number);
  absl::Status DeleteJob(const std::string& job_id);
  // Every job, oldest first.
  absl::StatusOr<std::vector<StoredJob>> LoadJobs();

  // Configuration: replaces the entries (by database and key) and records
  // the changes (a change already recorded is kept as it was), in one
  // transaction.
  absl::Status SaveConfig(const std::vector<fleet::v1::ConfigEntry>& entries,
                          const std::vector<fleet::v1::ConfigChange>& changes);
  // Every entry, by database and key.
  absl::StatusOr<std::vector<fleet::v1::ConfigEntry>> LoadConfigEntries();
  // Changes, newest first, of `key` and `database_id` (empty: any), `limit`
  // at most.
  absl::StatusOr<std::vector<fleet::v1::ConfigChange>> LoadConfigHistory(
      const std::string& key, const std::string& database_id, int limit);

 private:
  StateStore(sql::DatabaseUrl url, std::unique_ptr<soci::session> session)
      : url_(std::move(url)), session_(std::move(session)) {}
  absl::Status Migrate();
  void UpsertLocked(const fleet::v1::Database& database)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Times one write for write_observer_ (see SetWriteObserver).
  class WriteTimer;

  const sql::DatabaseUrl url_;
  WriteObserver write_observer_;
  absl::Mutex mutex_;
  std::unique_ptr<soci::session> session_ ABSL_GUARDED_BY(mutex_);
  int schema_version_ = 0;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_STORAGE_STATE_STORE_H_
