// The native SQLite connection under a SOCI session. SOCI's sqlite3 backend
// declares SQLite's API inside namespace sqlite_api, which cannot share a
// translation unit with <sqlite3.h>: this file alone includes it. Private to
// agent/target/.
#ifndef ECLIPTIX_AGENT_TARGET_SQLITE_HANDLE_H_
#define ECLIPTIX_AGENT_TARGET_SQLITE_HANDLE_H_

#include "soci/soci.h"

struct sqlite3;

namespace ecliptix::agent {

// `session` must be of SOCI's sqlite3 backend.
::sqlite3* SqliteHandle(soci::session& session);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_SQLITE_HANDLE_H_
