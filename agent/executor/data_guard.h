// Data guard: the proof that a revert destroys no rows, and the inspections
// adoption needs. A revert runs inside its transaction between two snapshots
// of the tables that hold rows; a table that held rows before and is gone or
// empty after is data the revert would destroy. Observing the real effect
// covers every way of losing a table (DROP TABLE, DROP SCHEMA ... CASCADE,
// TRUNCATE, DELETE without WHERE, a procedure doing it) where reading the
// script's text would miss some.
//
// It also runs a step's `detect` query (which of its objects already exist).
// Table names come from the database's own catalog and are quoted as
// identifiers; nothing here takes user input.
#ifndef ECLIPTIX_AGENT_EXECUTOR_DATA_GUARD_H_
#define ECLIPTIX_AGENT_EXECUTOR_DATA_GUARD_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/target/target.h"
#include "ecliptix/fleet/v1/bundle.pb.h"

namespace ecliptix::agent {

// A table of the target, as its catalog names it.
struct TableName {
  std::string schema;  // Empty on SQLite.
  std::string name;

  // "dbo.memberships", or "Memberships" on SQLite.
  std::string Display() const;
  // Quoted for the dialect: "dbo"."memberships", [dbo].[Memberships].
  std::string Quoted(fleet::v1::Dialect dialect) const;
  bool operator<(const TableName& other) const {
    return schema != other.schema ? schema < other.schema : name < other.name;
  }
};

// The tables that hold at least one row, apart from the agent's own (history
// and identity). Cheap: one EXISTS per table. Runs on the connection, inside
// the caller's transaction when one is open.
absl::StatusOr<std::set<TableName>> TablesHoldingRows(
    Target& database, fleet::v1::Dialect dialect);

// The tables of `before` missing from `after`: dropped or emptied.
std::vector<TableName> TablesLost(const std::set<TableName>& before,
                                  const std::set<TableName>& after);

// SELECT COUNT(*) of one table.
absl::StatusOr<int64_t> CountRows(Target& database, fleet::v1::Dialect dialect,
                                  const TableName& table);

// Whether a statement of a revert script that cannot run in a transaction
// (and so cannot be tried and undone) could destroy rows: DROP TABLE, DROP
// SCHEMA, TRUNCATE, DELETE, ALTER TABLE ... DROP.
bool MayDestroyRows(absl::string_view statement);

// What a step's detect query found.
struct Detection {
  std::vector<std::string> present;
  std::vector<std::string> missing;
};

// Runs `query` (a step's detect query: rows of name, 1 present / 0 missing).
// INVALID_ARGUMENT when it returns no rows or not two columns.
absl::StatusOr<Detection> Detect(Target& database, const std::string& query);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_DATA_GUARD_H_
