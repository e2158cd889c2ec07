// Opening the target an agent manages, from its URL
// (common/sql/database_url.h).
#ifndef ECLIPTIX_AGENT_TARGET_OPEN_TARGET_H_
#define ECLIPTIX_AGENT_TARGET_OPEN_TARGET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/target/target.h"

namespace ecliptix::agent {

// Connects and detects the engine. INVALID_ARGUMENT for a malformed URL,
// UNAVAILABLE when the database cannot be reached, FAILED_PRECONDITION for an
// ODBC data source of an engine the agent does not speak. Messages are one
// line and show only the redacted URL.
absl::StatusOr<std::unique_ptr<Target>> OpenTarget(const std::string& url);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_OPEN_TARGET_H_
