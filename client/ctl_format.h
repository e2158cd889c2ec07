// How ecliptixctl shows API messages: aligned tables, key: value blocks, one
// line per fleet event, and JSON. Pure functions of their inputs (the current
// time is a parameter), so they are tested without a server or a real clock.
#ifndef ECLIPTIX_CLIENT_CTL_FORMAT_H_
#define ECLIPTIX_CLIENT_CTL_FORMAT_H_

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/fleet_service.pb.h"
#include "ecliptix/fleet/v1/types.pb.h"

namespace ecliptix::client::ctl {

// Short lower-case names: "sqlite", "libpq", "connected"; "unknown" for
// UNSPECIFIED.
std::string EngineName(fleet::v1::Engine engine);
std::string ConnectorName(fleet::v1::Connector connector);
std::string StateName(fleet::v1::ConnectionState state);
// Upper case without the prefix: "SNAPSHOT", "LABELS_CHANGED".
std::string EventTypeName(fleet::v1::FleetEvent::Type type);

// The first word of an engine's version string that starts with a digit
// ("15.18" out of "PostgreSQL 15.18 (Debian ...) on x86_64 ..."), so the table
// stays narrow; "-" when empty.
std::string ShortVersion(absl::string_view engine_version);

// "env=prod,region=eu" with keys sorted; "<none>" when empty.
std::string LabelsText(
    const google::protobuf::Map<std::string, std::string>& labels);

// An unset Timestamp (zero) is absl::InfinitePast().
absl::Time ToTime(const google::protobuf::Timestamp& timestamp);
// "12s ago", "5m ago", "3h ago", "2d ago"; "never" for InfinitePast; a time
// slightly in the future (clocks of client and server differ) reads "0s ago".
std::string RelativeTime(absl::Time then, absl::Time now);
// RFC 3339 in UTC with milliseconds, "2024-05-01T10:00:00.123Z"; "-" when
// unset.
std::string TimestampText(const google::protobuf::Timestamp& timestamp);

// Rows of cells, the first row being the header, as columns aligned with three
// spaces between them and no trailing spaces.
std::string AlignedTable(const std::vector<std::vector<std::string>>& rows);

// DATABASE ID, ENGINE, VERSION, STATE, LABELS, LAST SEEN, and, when `alerts`
// is given, ALERTS: the names of each database's active alerts by database id
// ("2 (failed_logins, error_rate)", "-" for none).
std::string DatabaseTable(
    const std::vector<fleet::v1::Database>& databases, absl::Time now,
    const std::map<std::string, std::vector<std::string>>* alerts = nullptr);
// Every field of one database as "Key:   value" lines.
std::string DatabaseDetails(const fleet::v1::Database& database,
                            absl::Time now);
// Time, event type, database id, state, labels, reason; no trailing newline.
std::string EventLine(const fleet::v1::FleetEvent& event);

// Canonical proto3 JSON on one line, printing fields that hold their default
// value too so scripts see every key.
absl::StatusOr<std::string> MessageJson(
    const google::protobuf::Message& message);
// {"databases":[...]} on one line.
absl::StatusOr<std::string> DatabasesJson(
    const std::vector<fleet::v1::Database>& databases);

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_FORMAT_H_
