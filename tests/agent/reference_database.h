// Test databases for the agent's day-2 commands: a fresh SQLite file, or a
// scratch PostgreSQL database when ECLIPTIX_TEST_POSTGRES_URL is set, with
// the reference bundle (bundles/ecliptix) deployed by the executor. The
// bundle used is the reference bundle with a few test operations appended to
// its manifest (same phases and SQL, so the same deployment): read_only
// queries that write, run long, or return many rows with NULLs.
#ifndef ECLIPTIX_TESTS_AGENT_REFERENCE_DATABASE_H_
#define ECLIPTIX_TESTS_AGENT_REFERENCE_DATABASE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"
#include "gtest/gtest.h"

namespace ecliptix::agent::testing {

// kPostgresqlOdbc: PostgreSQL through its ODBC driver, the code path SQL
// Server takes.
enum class Engine { kSqlite, kPostgresql, kPostgresqlOdbc };

std::string EngineParamName(const ::testing::TestParamInfo<Engine>& info);

// The reference bundle with the test operations (loaded once per process):
//  - WriteInSelect(ConfigKey, ConfigValue), read_only: on PostgreSQL a SELECT
//    that calls dbo.SetConfigValue (a write); elsewhere a plain SELECT;
//  - SlowQuery, read_only: runs for a minute (pg_sleep; a long recursive CTE
//    on SQLite);
//  - Numbers(Count), read_only: Count rows (N, Parity), Parity NULL for even N.
std::shared_ptr<const bundle::Bundle> TestBundle();

// A fresh database for the current test with every phase of TestBundle()
// deployed; its URL. `dir` holds the SQLite file.
absl::StatusOr<std::string> DeployedDatabase(Engine engine,
                                             const std::string& dir);

// A table of the reference bundle by its name, e.g. "AuditLog" (PostgreSQL
// keeps them in schema dbo).
std::string Table(Engine engine, const std::string& name);

// The first value of `sql`'s first row as an integer (-1 with a test failure
// when it is not one).
int64_t QueryInt(Target& database, const std::string& sql);
// The first value of `sql`'s first row; "<NULL>" for NULL, "<none>" without
// a row.
std::string QueryText(Target& database, const std::string& sql);
// Runs one statement; a test failure when it fails.
void Exec(Target& database, const std::string& sql);

// Inserts `count` AuditLog rows with TableName `table_name`, created `days`
// days ago.
void InsertAuditRows(Engine engine, Target& database,
                     const std::string& table_name, int count, int days);

}  // namespace ecliptix::agent::testing

#endif  // ECLIPTIX_TESTS_AGENT_REFERENCE_DATABASE_H_
