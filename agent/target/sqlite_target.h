// SqliteTarget: a SQLite file through SOCI's sqlite3 backend, with step SQL
// run on the native connection (every statement of a script, a progress
// handler for deadlines and cancellation, sqlite3_interrupt) and restores
// through SQLite's online backup API. Private to agent/target/.
#ifndef ECLIPTIX_AGENT_TARGET_SQLITE_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_SQLITE_TARGET_H_

#include <atomic>
#include <memory>
#include <string>

#include "agent/target/soci_target.h"

struct sqlite3;

namespace ecliptix::agent {

class SqliteTarget : public SociTarget {
 public:
  // `session` is an open session of SOCI's sqlite3 backend.
  static absl::StatusOr<std::unique_ptr<Target>> Open(
      std::unique_ptr<soci::session> session, std::string redacted_url);

  absl::Status Begin() override;
  absl::Status BeginReadOnly() override;
  absl::Status Rollback() override;
  void SetLimits(absl::Time deadline, const std::atomic<bool>* cancelled,
                 bool in_transaction) override;
  void ClearLimits() override;
  absl::StatusOr<int64_t> RunStatement(const std::string& sql,
                                       SqlError* error) override;
  absl::StatusOr<std::optional<std::string>> RunScalar(
      const std::string& query, SqlError* error) override;
  void Interrupt() override;
  absl::Status CopyFromFile(const std::string& file) override;

 private:
  SqliteTarget(std::unique_ptr<soci::session> session,
               std::string redacted_url);

  // Called by SQLite every few thousand virtual machine instructions.
  static int ProgressHandler(void* target);

  ::sqlite3* connection_;
  absl::Time deadline_ = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled_ = nullptr;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_SQLITE_TARGET_H_
