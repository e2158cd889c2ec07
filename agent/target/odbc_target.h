// OdbcTarget: any ODBC data source through SOCI's odbc backend (SQL Server
// through FreeTDS or Microsoft's driver, PostgreSQL's ODBC driver in tests).
// The engine is what the driver reports; deadlines are the driver's query
// timeout, in whole seconds (for step SQL and, under limits, the agent's own
// statements); there is no interruption and no notices. Private
// to agent/target/.
#ifndef ECLIPTIX_AGENT_TARGET_ODBC_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_ODBC_TARGET_H_

#include <memory>
#include <string>

#include "agent/target/soci_target.h"

namespace ecliptix::agent {

class OdbcTarget : public SociTarget {
 public:
  // `session` is an open session of SOCI's odbc backend. FAILED_PRECONDITION
  // when the data source is not SQL Server, PostgreSQL or SQLite.
  static absl::StatusOr<std::unique_ptr<Target>> Open(
      std::unique_ptr<soci::session> session, std::string redacted_url);

  void SetLimits(absl::Time deadline, const std::atomic<bool>* cancelled,
                 bool in_transaction) override;
  void ClearLimits() override;
  absl::StatusOr<int64_t> RunStatement(const std::string& sql,
                                       SqlError* error) override;
  absl::StatusOr<std::optional<std::string>> RunScalar(
      const std::string& query, SqlError* error) override;
  void Interrupt() override {}

 protected:
  // Under limits: the driver's query timeout (what is left of the deadline).
  void BeforeExecute(soci::statement& statement) override;

 private:
  using SociTarget::SociTarget;

  absl::Status DetectEngine();

  absl::Time deadline_ = absl::InfiniteFuture();
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_ODBC_TARGET_H_
