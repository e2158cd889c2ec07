// TargetDatabase: the agent's adapter over the database it manages (SOCI:
// SQLite, PostgreSQL through libpq, SQL Server or PostgreSQL through ODBC). It
// owns the session and therefore the credentials: nothing outside this class
// sees the connection string, only the redacted URL. It also owns the
// database's stable id, which lives in the target itself so it survives agent
// reinstalls.
#ifndef ECLIPTIX_AGENT_TARGET_DATABASE_H_
#define ECLIPTIX_AGENT_TARGET_DATABASE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ecliptix/fleet/v1/types.pb.h"
#include "soci/soci.h"

namespace ecliptix::agent {

// The table that holds the database id, one row.
inline constexpr char kIdentityTable[] = "ecliptix_agent_identity";

// "sqlite", "postgresql", "mssql": for logs and people.
std::string EngineName(fleet::v1::Engine engine);
// "sqlite", "libpq", "odbc".
std::string ConnectorName(fleet::v1::Connector connector);

class TargetDatabase {
 public:
  // Connects and detects the engine. INVALID_ARGUMENT for a malformed URL,
  // UNAVAILABLE when the database cannot be reached, FAILED_PRECONDITION for an
  // ODBC data source of an engine the agent does not speak. Messages are one
  // line and show only the redacted URL.
  static absl::StatusOr<std::unique_ptr<TargetDatabase>> Open(
      const std::string& url);

  TargetDatabase(const TargetDatabase&) = delete;
  TargetDatabase& operator=(const TargetDatabase&) = delete;
  ~TargetDatabase();

  // Returns the database's stable id, creating the identity table and its row
  // when missing. The stored id wins; a non-empty `requested_id` that differs
  // from it is FAILED_PRECONDITION. On a database without an id, `requested_id`
  // (validated) or a generated "db-<16 hex>" is stored.
  absl::StatusOr<std::string> EnsureDatabaseId(const std::string& requested_id);

  fleet::v1::Engine engine() const { return engine_; }
  fleet::v1::Connector connector() const { return connector_; }
  const std::string& engine_version() const { return engine_version_; }
  // The URL with passwords replaced: the only form of the URL that may be
  // shown.
  const std::string& redacted_url() const { return redacted_url_; }

  // The session, for the agent's executors. Not thread-safe: one user at a
  // time. Callers catch SOCI's exceptions (sql::Guard) so none leaves the
  // agent.
  soci::session& session() { return *session_; }

 private:
  TargetDatabase(std::unique_ptr<soci::session> session,
                 std::string redacted_url);

  absl::Status DetectEngine();
  absl::Status CreateIdentityTable();

  std::unique_ptr<soci::session> session_;
  std::string redacted_url_;
  fleet::v1::Engine engine_ = fleet::v1::ENGINE_UNSPECIFIED;
  fleet::v1::Connector connector_ = fleet::v1::CONNECTOR_UNSPECIFIED;
  std::string engine_version_;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_DATABASE_H_
