// ecliptixctl's `health` command: the runbook's success metrics (average
// procedure time, error rate, blocking, authentication attempts logged,
// lockout) per database and fleet-wide, as a table of criterion, value,
// threshold and verdict. Exits 1 when a criterion fails (0 when every one
// passes or has no data), so scripts can gate on it. The renderer is exposed
// so that it is tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_HEALTH_H_
#define ECLIPTIX_CLIENT_CTL_HEALTH_H_

#include <string>

#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/metrics.pb.h"

namespace ecliptix::client::ctl {

// DATABASE, CRITERION, VALUE, THRESHOLD, RESULT: a row per criterion of each
// database, then the fleet's (DATABASE "(fleet)"), then a line with the
// verdict counts.
std::string HealthTable(const fleet::v1::HealthReport& report);

// Whether any criterion of the report failed.
bool HealthFailed(const fleet::v1::HealthReport& report);

// The noun's entry in the command table.
NounSpec HealthNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_HEALTH_H_
