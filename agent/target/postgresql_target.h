// PostgresqlTarget: PostgreSQL through SOCI's postgresql backend, with step SQL
// run on the native libpq connection (the simple query protocol, SQLSTATEs,
// statement_timeout for deadlines, PQcancel, notices). Private to
// agent/target/.
#ifndef ECLIPTIX_AGENT_TARGET_POSTGRESQL_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_POSTGRESQL_TARGET_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/target/soci_target.h"

typedef struct pg_conn PGconn;
typedef struct pg_cancel PGcancel;
typedef struct pg_result PGresult;

namespace ecliptix::agent {

class PostgresqlTarget : public SociTarget {
 public:
  // `session` is an open session of SOCI's postgresql backend.
  static absl::StatusOr<std::unique_ptr<Target>> Open(
      std::unique_ptr<soci::session> session, std::string redacted_url);
  ~PostgresqlTarget() override;

  void SetLimits(absl::Time deadline, const std::atomic<bool>* cancelled,
                 bool in_transaction) override;
  void ClearLimits() override;
  absl::StatusOr<int64_t> RunStatement(const std::string& sql,
                                       SqlError* error) override;
  absl::StatusOr<std::optional<std::string>> RunScalar(
      const std::string& query, SqlError* error) override;
  void Interrupt() override;
  absl::StatusOr<ToolConnection> ConnectionForTools() override;

 private:
  PostgresqlTarget(std::unique_ptr<soci::session> session,
                   std::string redacted_url);

  absl::Status SetStatementTimeout(absl::Duration timeout, bool local);
  static void NoticeReceiver(void* target, const PGresult* notice);

  ::PGconn* connection_;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool in_transaction_ = false;
  bool limited_ = false;
  // The session's statement_timeout before SetLimits(), put back by
  // ClearLimits().
  std::string saved_statement_timeout_;

  // PQcancel needs a cancel object made beforehand; making it takes the
  // connection, so it is made once at open, on the opening thread.
  absl::Mutex cancel_mutex_;
  ::PGcancel* cancel_ ABSL_GUARDED_BY(cancel_mutex_) = nullptr;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_POSTGRESQL_TARGET_H_
