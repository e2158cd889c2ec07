#include "agent/target/sqlite_handle.h"

#include "soci/sqlite3/soci-sqlite3.h"

namespace ecliptix::agent {

::sqlite3* SqliteHandle(soci::session& session) {
  // The same C struct under another C++ name.
  return reinterpret_cast<::sqlite3*>(
      static_cast<soci::sqlite3_session_backend*>(session.get_backend())
          ->conn_);
}

}  // namespace ecliptix::agent
