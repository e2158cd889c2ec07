#include "client/ctl_format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/proto_time.h"

namespace ecliptix::client::ctl {
namespace {

using fleet::v1::Database;
using fleet::v1::FleetEvent;

// "ENGINE_SQLITE" -> "sqlite". Values the generated code does not know (a newer
// server) and UNSPECIFIED read "unknown".
std::string EnumText(const std::string& full_name, absl::string_view prefix,
                     bool lower) {
  absl::string_view name = full_name;
  if (name.empty() || absl::EndsWith(name, "UNSPECIFIED")) return "unknown";
  absl::ConsumePrefix(&name, prefix);
  return lower ? absl::AsciiStrToLower(name) : std::string(name);
}

}  // namespace

std::string EngineName(fleet::v1::Engine engine) {
  return EnumText(fleet::v1::Engine_Name(engine), "ENGINE_", true);
}

std::string ConnectorName(fleet::v1::Connector connector) {
  return EnumText(fleet::v1::Connector_Name(connector), "CONNECTOR_", true);
}

std::string StateName(fleet::v1::ConnectionState state) {
  return EnumText(fleet::v1::ConnectionState_Name(state), "CONNECTION_STATE_",
                  true);
}

std::string EventTypeName(FleetEvent::Type type) {
  return EnumText(FleetEvent::Type_Name(type), "TYPE_", false);
}

std::string ShortVersion(absl::string_view engine_version) {
  engine_version = absl::StripAsciiWhitespace(engine_version);
  if (engine_version.empty()) return "-";
  for (absl::string_view word :
       absl::StrSplit(engine_version, ' ', absl::SkipEmpty())) {
    if (absl::ascii_isdigit(word.front())) {
      return std::string(absl::StripSuffix(word, ","));
    }
  }
  // No number in it: show it whole but bounded, the full text is in "fleet
  // get".
  constexpr size_t kMax = 20;
  if (engine_version.size() <= kMax) return std::string(engine_version);
  return absl::StrCat(engine_version.substr(0, kMax - 3), "...");
}

std::string LabelsText(
    const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.empty()) return "<none>";
  // google::protobuf::Map has no order; sort for a stable display.
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) {
    return absl::InfinitePast();
  }
  return FromProtoTimestamp(timestamp);
}

std::string RelativeTime(absl::Time then, absl::Time now) {
  if (then == absl::InfinitePast()) return "never";
  const absl::Duration age = std::max(now - then, absl::ZeroDuration());
  if (age < absl::Minutes(2)) {
    return absl::StrCat(absl::ToInt64Seconds(age), "s ago");
  }
  if (age < absl::Hours(2)) {
    return absl::StrCat(absl::ToInt64Minutes(age), "m ago");
  }
  if (age < absl::Hours(48)) {
    return absl::StrCat(absl::ToInt64Hours(age), "h ago");
  }
  return absl::StrCat(absl::ToInt64Hours(age) / 24, "d ago");
}

std::string TimestampText(const google::protobuf::Timestamp& timestamp) {
  const absl::Time time = ToTime(timestamp);
  if (time == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

std::string AlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string text;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) {
        line.append(widths[i] - row[i].size() + 3, ' ');
      }
    }
    // An empty last cell would leave the padding of the one before it.
    absl::StrAppend(&text, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  return text;
}

std::string DatabaseTable(
    const std::vector<Database>& databases, absl::Time now,
    const std::map<std::string, std::vector<std::string>>* alerts) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"DATABASE ID", "ENGINE", "VERSION", "STATE", "LABELS", "LAST SEEN"});
  if (alerts != nullptr) rows.back().push_back("ALERTS");
  for (const Database& database : databases) {
    rows.push_back({database.database_id(), EngineName(database.engine()),
                    ShortVersion(database.engine_version()),
                    StateName(database.connection_state()),
                    LabelsText(database.labels()),
                    RelativeTime(ToTime(database.last_seen_time()), now)});
    if (alerts == nullptr) continue;
    auto found = alerts->find(database.database_id());
    rows.back().push_back(found == alerts->end() || found->second.empty()
                              ? std::string("-")
                              : absl::StrCat(found->second.size(), " (",
                                             absl::StrJoin(found->second, ", "),
                                             ")"));
  }
  return AlignedTable(rows);
}

std::string DatabaseDetails(const Database& database, absl::Time now) {
  auto when = [now](const google::protobuf::Timestamp& timestamp) {
    const absl::Time time = ToTime(timestamp);
    if (time == absl::InfinitePast()) return std::string("never");
    return absl::StrCat(TimestampText(timestamp), " (", RelativeTime(time, now),
                        ")");
  };
  auto or_dash = [](const std::string& text) {
    return text.empty() ? std::string("-") : text;
  };
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"Database ID", database.database_id()},
      {"Engine", EngineName(database.engine())},
      {"Engine version", or_dash(database.engine_version())},
      {"Connector", ConnectorName(database.connector())},
      {"State", StateName(database.connection_state())},
      {"Labels", LabelsText(database.labels())},
      {"Agent version", or_dash(database.agent_version())},
      {"Agent host", or_dash(database.agent_host())},
      {"Agent peer", or_dash(database.agent_peer())},
      {"Capabilities", database.capabilities().empty()
                           ? std::string("-")
                           : absl::StrJoin(database.capabilities(), ",")},
      {"First seen", when(database.first_seen_time())},
      {"Connected", when(database.connected_time())},
      {"Last seen", when(database.last_seen_time())},
  };
  size_t width = 0;
  for (const auto& field : fields) width = std::max(width, field.first.size());
  std::string text;
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&text, key, ":", std::string(width - key.size() + 2, ' '),
                    value, "\n");
  }
  return text;
}

std::string EventLine(const FleetEvent& event) {
  const bool has_database = event.has_database();
  const Database& database = event.database();
  std::string line = absl::StrFormat(
      "%-24s  %-17s  %-20s  %-12s  %s", TimestampText(event.event_time()),
      EventTypeName(event.type()),
      has_database ? database.database_id() : std::string("-"),
      has_database ? StateName(database.connection_state()) : std::string("-"),
      has_database ? LabelsText(database.labels()) : std::string("-"));
  if (!event.reason().empty()) absl::StrAppend(&line, "  ", event.reason());
  return std::string(absl::StripTrailingAsciiWhitespace(line));
}

absl::StatusOr<std::string> MessageJson(
    const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ",
                                            message.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  return json;
}

absl::StatusOr<std::string> DatabasesJson(
    const std::vector<Database>& databases) {
  std::string json = "{\"databases\":[";
  for (size_t i = 0; i < databases.size(); ++i) {
    absl::StatusOr<std::string> one = MessageJson(databases[i]);
    if (!one.ok()) return one.status();
    if (i > 0) json += ",";
    json += *one;
  }
  json += "]}";
  return json;
}

}  // namespace ecliptix::client::ctl
