// TargetDatabase: the agent's adapter over the database it manages (SOCI:
// SQLite, PostgreSQL through libpq, SQL Server or PostgreSQL through ODBC). It
// owns the session and therefore the credentials: nothing outside this class
// sees the connection string, only the redacted URL. It also owns the
// database's stable id, which lives in the target itself so it survives agent
// reinstalls.
#ifndef ECLIPTIX_AGENT_TARGET_DATABASE_H_
#define ECLIPTIX_AGENT_TARGET_DATABASE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ecliptix/fleet/v1/types.pb.h"
#include "soci/soci.h"

// The native handles under SOCI, declared here so that users of this header do
// not inherit SQLite's and libpq's headers.
struct sqlite3;
typedef struct pg_conn PGconn;
typedef struct pg_cancel PGcancel;
typedef struct pg_result PGresult;

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

  // The native connection under the session, for the executor, which drives
  // SQLite and libpq directly (progress handler, notices, exact error codes);
  // nullptr when the connector is another one (ODBC).
  ::sqlite3* sqlite_connection();
  ::PGconn* postgresql_connection();

  // Interrupts the statement running on the session, from any thread:
  // sqlite3_interrupt or PQcancel. A no-op for ODBC (best effort) and when
  // nothing runs.
  void Interrupt();

  // Sends the server's notices (PostgreSQL NOTICE, WARNING, INFO from RAISE)
  // to `handler`, on the thread running the statement, until replaced. Without
  // a handler notices are logged at debug level: libpq's default prints them
  // to stderr. Only libpq sessions have notices.
  void SetNoticeHandler(std::function<void(const std::string&)> handler);

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

  // PQcancel needs a cancel object made beforehand; making it takes the
  // connection, so it is made once at open, on the opening thread.
  absl::Mutex cancel_mutex_;
  ::PGcancel* postgresql_cancel_ ABSL_GUARDED_BY(cancel_mutex_) = nullptr;

  // Called by libpq on the thread that runs the statement, which is the
  // session's one user: no lock needed.
  std::function<void(const std::string&)> notice_handler_;
  static void NoticeReceiver(void* target, const PGresult* notice);
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_DATABASE_H_
