// The one rule for backups in rollouts, worded once so the server and the
// agent say the same thing: the agent backs up SQLite and PostgreSQL itself;
// databases reached through ODBC (SQL Server) are backed up with the engine's
// own tools and the backup gate is attested by a named person.
#ifndef ECLIPTIX_COMMON_BACKUP_RULE_H_
#define ECLIPTIX_COMMON_BACKUP_RULE_H_

namespace ecliptix {

inline constexpr char kOdbcBackupRule[] =
    "the agent backs up SQLite and PostgreSQL itself, not databases reached "
    "through ODBC (SQL Server): take their backup with the engine's own tools "
    "(for SQL Server: BACKUP DATABASE, SQL Server Agent or your backup "
    "software), leave backup_first off (no --backup) and have a named person "
    "attest GATE_KIND_BACKUP_COMPLETED (`ecliptixctl rollout attest ID "
    "backup-completed --by=NAME`)";

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_BACKUP_RULE_H_
