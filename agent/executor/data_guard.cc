#include "agent/executor/data_guard.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/executor/history.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kListSqlite[] =
    "SELECT '' AS table_schema, name FROM sqlite_master WHERE type = 'table' "
    "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name";
constexpr char kListPostgresql[] =
    "SELECT table_schema, table_name FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
    "('pg_catalog', 'information_schema') ORDER BY 1, 2";
constexpr char kListMssql[] =
    "SELECT s.name, t.name FROM sys.tables t JOIN sys.schemas s "
    "ON s.schema_id = t.schema_id WHERE t.is_ms_shipped = 0 ORDER BY 1, 2";

bool IsAgentTable(const TableName& table) {
  return absl::EqualsIgnoreCase(table.name, kHistoryTable) ||
         absl::EqualsIgnoreCase(table.name, kIdentityTable);
}

std::string QuoteIdentifier(const std::string& name, v1::Dialect dialect) {
  if (dialect == v1::DIALECT_MSSQL) {
    return absl::StrCat("[", absl::StrReplaceAll(name, {{"]", "]]"}}), "]");
  }
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

}  // namespace

std::string TableName::Display() const {
  return schema.empty() ? name : absl::StrCat(schema, ".", name);
}

std::string TableName::Quoted(v1::Dialect dialect) const {
  if (schema.empty()) return QuoteIdentifier(name, dialect);
  return absl::StrCat(QuoteIdentifier(schema, dialect), ".",
                      QuoteIdentifier(name, dialect));
}

absl::StatusOr<std::set<TableName>> TablesHoldingRows(Target& database,
                                                      v1::Dialect dialect) {
  const char* list = kListSqlite;
  if (dialect == v1::DIALECT_POSTGRESQL) list = kListPostgresql;
  if (dialect == v1::DIALECT_MSSQL) list = kListMssql;
  std::vector<TableName> tables;
  absl::StatusOr<QueryResult> listed = database.Query(list);
  RETURN_IF_ERROR(WithContext("listing tables", listed.status()));
  for (const SqlRow& row : listed->rows) {
    if (row.values.size() < 2) {
      return absl::InternalError(
          "listing tables: the catalog query returned fewer than two columns");
    }
    TableName table{row.values[0], row.values[1]};
    if (!IsAgentTable(table)) tables.push_back(std::move(table));
  }
  std::set<TableName> holding;
  for (const TableName& table : tables) {
    const std::string query =
        absl::StrCat("SELECT CASE WHEN EXISTS (SELECT 1 FROM ",
                     table.Quoted(dialect), ") THEN 1 ELSE 0 END");
    absl::StatusOr<QueryResult> has_rows = database.Query(query);
    RETURN_IF_ERROR(
        WithContext(absl::StrCat("looking for rows in ", table.Display()),
                    has_rows.status()));
    if (!has_rows->rows.empty() && !has_rows->rows[0].values.empty() &&
        !has_rows->rows[0].nulls[0] && has_rows->rows[0].values[0] != "0") {
      holding.insert(table);
    }
  }
  return holding;
}

std::vector<TableName> TablesLost(const std::set<TableName>& before,
                                  const std::set<TableName>& after) {
  std::vector<TableName> lost;
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(),
                      std::back_inserter(lost));
  return lost;
}

absl::StatusOr<int64_t> CountRows(Target& database, v1::Dialect dialect,
                                  const TableName& table) {
  // Text, not an integer: COUNT(*) is a bigint on PostgreSQL and an int on
  // SQL Server.
  const std::string what =
      absl::StrCat("counting the rows of ", table.Display());
  absl::StatusOr<QueryResult> result = database.Query(
      absl::StrCat("SELECT COUNT(*) FROM ", table.Quoted(dialect)));
  RETURN_IF_ERROR(WithContext(what, result.status()));
  if (result->rows.empty() || result->rows[0].values.empty()) {
    return absl::InternalError(absl::StrCat(what, ": no row"));
  }
  const std::string count = result->rows[0].values[0];
  int64_t value = 0;
  if (!absl::SimpleAtoi(count, &value)) {
    return absl::InternalError(absl::StrCat("COUNT(*) of ", table.Display(),
                                            " returned \"", count, "\""));
  }
  return value;
}

bool MayDestroyRows(absl::string_view statement) {
  // Words, upper case, comments and punctuation aside.
  std::vector<std::string> words;
  for (absl::string_view line : absl::StrSplit(statement, '\n')) {
    if (size_t comment = line.find("--"); comment != absl::string_view::npos)
      line = line.substr(0, comment);
    for (absl::string_view word :
         absl::StrSplit(line, absl::ByAnyChar(" \t\r;(),"), absl::SkipEmpty()))
      words.push_back(absl::AsciiStrToUpper(word));
  }
  if (words.empty()) return false;
  const std::string& first = words[0];
  const std::string second = words.size() > 1 ? words[1] : "";
  if (first == "TRUNCATE" || first == "DELETE") return true;
  if (first == "DROP" &&
      (second == "TABLE" || second == "SCHEMA" || second == "DATABASE"))
    return true;
  if (first == "ALTER" && second == "TABLE") {
    return std::find(words.begin(), words.end(), "DROP") != words.end();
  }
  return false;
}

absl::StatusOr<Detection> Detect(Target& database, const std::string& query) {
  Detection detection;
  bool malformed = false;
  absl::StatusOr<QueryResult> result = database.Query(query);
  RETURN_IF_ERROR(
      WithContext("running the step's detect query", result.status()));
  for (const SqlRow& row : result->rows) {
    if (row.values.size() != 2) {
      malformed = true;
      break;
    }
    const std::string present = absl::AsciiStrToLower(row.values[1]);
    if (present == "1" || present == "t" || present == "true") {
      detection.present.push_back(row.values[0]);
    } else {
      detection.missing.push_back(row.values[0]);
    }
  }
  if (malformed) {
    return absl::InvalidArgumentError(
        "the detect query must return two columns: the object's name and 1 "
        "when it is present, 0 when it is missing");
  }
  if (detection.present.empty() && detection.missing.empty()) {
    return absl::InvalidArgumentError(
        "the detect query returned no rows: it must return one row per object "
        "the step creates");
  }
  return detection;
}

}  // namespace ecliptix::agent
