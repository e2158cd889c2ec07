// Opening SOCI sessions and turning SOCI's exceptions into absl::Status: no
// SOCI exception crosses a module boundary.
#ifndef ECLIPTIX_COMMON_SQL_SESSION_H_
#define ECLIPTIX_COMMON_SQL_SESSION_H_

#include <exception>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql/database_url.h"
#include "common/sql/text.h"
#include "soci/soci.h"

namespace ecliptix::sql {

// Connects. UNAVAILABLE when the database cannot be reached, with the driver's
// reason and the redacted URL.
absl::StatusOr<std::unique_ptr<soci::session>> OpenSession(
    const DatabaseUrl& url);

// The status for an exception thrown by SOCI (or anything else) while doing
// `what`: "<what>: <the database's message> (SQLSTATE xxxxx)". Never the
// statement's bound values: SOCI's context (the statement and each value it
// bound) and PostgreSQL's detail lines (which quote rows) are left out.
absl::Status SqlErrorToStatus(const std::exception& error,
                              absl::string_view what);

// The database's own message of `error` on one line, with the SQLSTATE when
// the driver gives one, without SOCI's context or PostgreSQL's detail.
std::string DatabaseMessage(const std::exception& error);

// Runs `body` and converts any exception it throws with SqlErrorToStatus.
template <typename Body>
absl::Status Guard(absl::string_view what, Body&& body) {
  try {
    body();
    return absl::OkStatus();
  } catch (const std::exception& error) {
    return SqlErrorToStatus(error, what);
  }
}

}  // namespace ecliptix::sql

#endif  // ECLIPTIX_COMMON_SQL_SESSION_H_
