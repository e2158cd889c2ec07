// CursorStore: the agent's own table `ecliptix_metric_cursors` in the target,
// next to the schema history: for each incremental collector (by bundle name
// and collector name, so a new version of the bundle carries on counting),
// the highest cursor value already counted. A restarted agent reads it back
// and neither counts a row twice nor skips one.
#ifndef ECLIPTIX_AGENT_METRICS_CURSOR_STORE_H_
#define ECLIPTIX_AGENT_METRICS_CURSOR_STORE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/target/target.h"

namespace ecliptix::agent {

inline constexpr char kMetricCursorTable[] = "ecliptix_metric_cursors";

class CursorStore {
 public:
  // `database` must outlive the store; every call uses its connection, which
  // must not be read-only.
  explicit CursorStore(Target* database);

  // The stored cursor; nullopt when there is none (never collected, or the
  // table does not exist yet: reads create nothing).
  absl::StatusOr<std::optional<int64_t>> Load(const std::string& bundle_name,
                                              const std::string& collector);
  // Stores `cursor` (creating the table when missing), in a transaction of
  // its own.
  absl::Status Save(const std::string& bundle_name,
                    const std::string& collector, int64_t cursor);

 private:
  absl::StatusOr<bool> Exists();
  absl::Status Ensure();

  Target* const database_;
  // Set once the table is known to exist.
  bool ensured_ = false;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_METRICS_CURSOR_STORE_H_
