// The storage of alerts: the `alerts` and `alert_events` tables of the state
// store's database (schema version 7, server/storage/state_store.cc), through a
// SOCI session of its own so that alert evaluation never waits for the state
// store's lock. Keeps nothing in memory: the AlertManager holds the active
// alerts. No gRPC. Thread-safe.
#ifndef ECLIPTIX_SERVER_ALERTS_ALERT_STORE_H_
#define ECLIPTIX_SERVER_ALERTS_ALERT_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sql/database_url.h"
#include "ecliptix/fleet/v1/alerts.pb.h"
#include "soci/soci.h"

namespace ecliptix::server {

// "al-<number>" and back; -1 for an id of another form.
std::string AlertId(int64_t number);
int64_t AlertNumber(const std::string& alert_id);

class AlertStore {
 public:
  // What a server starts from.
  struct Loaded {
    // Active alerts, by database and rule.
    std::vector<fleet::v1::Alert> active;
    // The next alert's number and the next event's sequence.
    int64_t next_alert_number = 1;
    int64_t next_sequence = 1;
  };

  // Opens a session on the state store's database, whose schema the
  // StateStore has migrated to version 7 or later. INVALID_ARGUMENT for a URL
  // that is not sqlite:// or postgresql://, UNAVAILABLE when the database
  // cannot be reached.
  static absl::StatusOr<std::unique_ptr<AlertStore>> Open(
      const std::string& url);

  AlertStore(const AlertStore&) = delete;
  AlertStore& operator=(const AlertStore&) = delete;

  absl::StatusOr<Loaded> Load();

  // Saves the events of one evaluation in one transaction: a TYPE_FIRED
  // event inserts its alert, a TYPE_RESOLVED one marks it resolved; every
  // event is appended to the event log. Nothing is kept when it fails.
  absl::Status Save(const std::vector<fleet::v1::AlertEvent>& events);

  // Resolved alerts, newest first, `limit` at most, of `databases` (nullopt:
  // every database).
  absl::StatusOr<std::vector<fleet::v1::Alert>> LoadResolved(
      const std::optional<std::set<std::string>>& databases, int limit);

  // Deletes alerts resolved before `cutoff`, and their events. Returns how
  // many alerts were deleted.
  absl::StatusOr<int64_t> DeleteResolvedBefore(absl::Time cutoff);

 private:
  AlertStore(sql::DatabaseUrl url, std::unique_ptr<soci::session> session)
      : url_(std::move(url)), session_(std::move(session)) {}

  const sql::DatabaseUrl url_;
  absl::Mutex mutex_;
  std::unique_ptr<soci::session> session_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ALERTS_ALERT_STORE_H_
