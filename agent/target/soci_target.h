// SociTarget: what the three targets share, over a SOCI session: the agent's
// own statements with named parameters, rows as text, transactions, and the
// engine's version. Private to agent/target/.
#ifndef ECLIPTIX_AGENT_TARGET_SOCI_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_SOCI_TARGET_H_

#include <memory>
#include <string>
#include <vector>

#include "agent/target/target.h"
#include "soci/soci.h"

namespace ecliptix::agent {

class SociTarget : public Target {
 public:
  absl::Status Execute(const std::string& sql,
                       const std::vector<SqlParam>& params,
                       int64_t* rows_affected) override;
  absl::StatusOr<QueryResult> Query(
      const std::string& sql, const std::vector<SqlParam>& params) override;
  absl::StatusOr<QueryResult> QueryAtMost(const std::string& sql,
                                          const std::vector<SqlParam>& params,
                                          size_t max_rows) override;
  absl::Status Begin() override;
  absl::Status Commit() override;
  absl::Status Rollback() override;

 protected:
  SociTarget(fleet::v1::Connector connector,
             std::unique_ptr<soci::session> session, std::string redacted_url);

  // Reads the engine's version with `query` (engine_ must be set): the first
  // line of its answer. FAILED_PRECONDITION when it is empty.
  absl::Status ReadVersion(const char* query);

  soci::session& session() { return *session_; }

  // Called on every prepared statement of Execute() and Query() just before
  // it runs (ODBC sets its query timeout there).
  virtual void BeforeExecute(soci::statement& statement) {}

 private:
  std::unique_ptr<soci::session> session_;
};

// The code for a failure of SQLSTATE `state` (PostgreSQL's, or passed on by
// an ODBC driver): UNAVAILABLE (08), FAILED_PRECONDITION (23, P0001), ABORTED
// (40), INVALID_ARGUMENT (42, 22), RESOURCE_EXHAUSTED (53), PERMISSION_DENIED
// (42501), UNKNOWN otherwise.
absl::StatusCode CodeForSqlState(absl::string_view state);

// The status of an exception SOCI (or anything else) threw: the database's
// own message (ecliptix::sql::DatabaseMessage) with the code of its class.
absl::Status SociErrorToStatus(const std::exception& error);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_SOCI_TARGET_H_
