// Full backups of the agent's target database into a local directory, and
// restoring them through the agent's own open connection. Owns the backup
// directory's layout: for each backup `<id>.sqlite3` or `<id>.pgdump` (the
// data) and `<id>.meta` (key=value lines: engine, database id, time, size),
// written last, so a backup without its .meta file does not exist.
//
// SQLite: VACUUM INTO, restored with SQLite's online backup API into the open
// connection. PostgreSQL (libpq): pg_dump --format=custom, restored by psql
// running pg_restore's script in one transaction after dropping every object
// (so nothing created after the backup survives); child processes with the
// password only in the child's PGPASSWORD. ODBC targets (SQL Server, or
// anything else behind ODBC) are not backed up here: FAILED_PRECONDITION.
#ifndef ECLIPTIX_AGENT_BACKUP_BACKUP_H_
#define ECLIPTIX_AGENT_BACKUP_BACKUP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target/target.h"

namespace ecliptix::agent {

struct BackupResult {
  // "20261124T181500Z-1a2b3c4d": the UTC time taken, then 8 random hex digits.
  std::string backup_id;
  // Absolute path of the backup's data file.
  std::string location;
  int64_t size_bytes = 0;
  // When the backup started.
  absl::Time time;
  // EngineName() of the database backed up: "sqlite" or "postgresql".
  std::string engine;
  // The database's id (table ecliptix_agent_identity) when it had one, else
  // empty.
  std::string database_id;
};

// Takes a full backup of the target into `backup_dir` (created, mode 0700, if
// missing; the backup's files are mode 0600). FAILED_PRECONDITION for an ODBC
// target or a missing pg_dump; the tool's or the engine's error otherwise.
// Blocks until the backup is complete. Uses the connection: not concurrently
// with other users of `database`.
absl::StatusOr<BackupResult> TakeBackup(Target& database,
                                        const std::string& backup_dir);

// Replaces the database's content with the backup's, keeping `database`'s
// connection open and usable. NOT_FOUND for an unknown backup id,
// INVALID_ARGUMENT for a malformed one, FAILED_PRECONDITION for a backup of
// another engine or of another database (both ids known and different).
// PostgreSQL: in one transaction, every object (the schemas but public, and
// public's tables, views, sequences, routines and types; extensions stay) is
// dropped and the backup's are created: the result is exactly the backup's
// content, objects created after it included.
absl::Status RestoreBackup(Target& database, const std::string& backup_dir,
                           const std::string& backup_id);

// Backups in the directory, newest first; empty when the directory does not
// exist. Files that are not complete backups are ignored.
absl::StatusOr<std::vector<BackupResult>> ListBackups(
    const std::string& backup_dir);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_BACKUP_BACKUP_H_
