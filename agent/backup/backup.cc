#include "agent/backup/backup.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/backup_rule.h"
#include "common/sql/database_url.h"
#include "common/sql/text.h"
#include "common/status_macros.h"

extern char** environ;

namespace ecliptix::agent {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;

constexpr char kMetaSuffix[] = ".meta";
constexpr char kPartialSuffix[] = ".partial";
constexpr char kSqliteSuffix[] = ".sqlite3";
constexpr char kPgDumpSuffix[] = ".pgdump";
constexpr char kIdTimeFormat[] = "%Y%m%dT%H%M%SZ";
// How much of a tool's stderr is kept for the error message.
constexpr size_t kMaxStderr = 64 * 1024;

std::string NewBackupId(absl::Time now) {
  absl::BitGen gen;
  return absl::StrCat(absl::FormatTime(kIdTimeFormat, now, absl::UTCTimeZone()),
                      "-",
                      absl::StrFormat("%08x", absl::Uniform<uint32_t>(gen)));
}

// "YYYYMMDDTHHMMSSZ-xxxxxxxx" with lower-case hex: nothing that could leave
// the directory.
bool IsValidBackupId(absl::string_view id) {
  if (id.size() != 25 || id[8] != 'T' || id[15] != 'Z' || id[16] != '-') {
    return false;
  }
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 8 || i == 15 || i == 16) continue;
    const char c = id[i];
    if (i < 16) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    } else if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) &&
               !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

std::string ErrnoText(int error) { return std::strerror(error); }

// ------------------------------------------------------------ metadata ---

std::string FormatMeta(const BackupResult& backup, const std::string& file) {
  return absl::StrCat(
      "# Ecliptix agent backup: written after the data file is complete.\n",
      "backup_id=", backup.backup_id, "\n", "engine=", backup.engine, "\n",
      "database_id=", backup.database_id, "\n", "time=",
      absl::FormatTime(absl::RFC3339_full, backup.time, absl::UTCTimeZone()),
      "\n", "size_bytes=", backup.size_bytes, "\n", "file=", file, "\n");
}

// The backup described by the .meta file at `meta_path`, or nullopt when it is
// not one of ours or its data file is gone.
std::optional<BackupResult> ReadMeta(const fs::path& meta_path) {
  std::ifstream in(meta_path);
  if (!in) return std::nullopt;
  std::stringstream content;
  content << in.rdbuf();
  BackupResult backup;
  std::string file, time;
  bool has_size = false;
  for (absl::string_view line : absl::StrSplit(content.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first == "backup_id") {
      backup.backup_id = std::string(kv.second);
    } else if (kv.first == "engine") {
      backup.engine = std::string(kv.second);
    } else if (kv.first == "database_id") {
      backup.database_id = std::string(kv.second);
    } else if (kv.first == "time") {
      time = std::string(kv.second);
    } else if (kv.first == "size_bytes") {
      has_size = absl::SimpleAtoi(kv.second, &backup.size_bytes);
    } else if (kv.first == "file") {
      file = std::string(kv.second);
    }
  }
  std::string error;
  if (!IsValidBackupId(backup.backup_id) ||
      meta_path.filename() != backup.backup_id + kMetaSuffix ||
      backup.engine.empty() || !has_size || file.empty() ||
      file.find('/') != std::string::npos ||
      !absl::ParseTime(absl::RFC3339_full, time, &backup.time, &error)) {
    return std::nullopt;
  }
  const fs::path data = meta_path.parent_path() / file;
  std::error_code ec;
  if (!fs::is_regular_file(data, ec)) return std::nullopt;
  backup.location = fs::absolute(data, ec).lexically_normal().string();
  if (ec) backup.location = data.string();
  return backup;
}

absl::Status WriteFileAtomically(const fs::path& path,
                                 const std::string& content) {
  const fs::path partial = path.string() + kPartialSuffix;
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("cannot write ", partial.string(),
                                              ": ", ErrnoText(errno)));
    }
  }
  ::chmod(partial.c_str(), 0600);
  std::error_code ec;
  fs::rename(partial, path, ec);
  if (ec) {
    fs::remove(partial, ec);
    return absl::InternalError(absl::StrCat("cannot rename ", partial.string(),
                                            " to ", path.string(), ": ",
                                            ec.message()));
  }
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create backup directory ", dir.string(), ": ", ec.message()));
  }
  // Backups hold all the data: only the agent's user reads them.
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  return absl::OkStatus();
}

// ------------------------------------------------------- child processes ---

// The full path of `name` on PATH, or nullopt.
std::optional<std::string> FindExecutable(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string search =
      path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view dir : absl::StrSplit(search, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct ToolResult {
  int exit_code = 0;  // 128 + signal when killed.
  std::string stderr_text;
};

// Runs `argv` (argv[0] a full path) without a shell, stdin and stdout on
// /dev/null, stderr captured; the environment is the agent's without
// PGPASSWORD, plus `password` as PGPASSWORD when not empty.
absl::StatusOr<ToolResult> RunTool(const std::vector<std::string>& argv,
                                   const std::string& password) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PGPASSWORD=")) env.emplace_back(*e);
  }
  if (!password.empty()) env.push_back(absl::StrCat("PGPASSWORD=", password));
  std::vector<char*> envp, args;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string& arg : argv_copy) args.push_back(arg.data());
  args.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create a pipe: ", ErrnoText(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  pid_t pid = -1;
  const int spawn_error = ::posix_spawn(&pid, argv_copy[0].c_str(), &actions,
                                        nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  // The password copy in `env` is not needed any more.
  for (std::string& entry : env) std::fill(entry.begin(), entry.end(), '\0');
  if (spawn_error != 0) {
    ::close(pipe_fds[0]);
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", ErrnoText(spawn_error)));
  }
  ToolResult result;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.stderr_text.size() < kMaxStderr) {
      result.stderr_text.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("waiting for ", argv[0], ": ", ErrnoText(errno)));
    }
  }
  result.exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                           : 1;
  return result;
}

absl::Status ToolFailure(absl::string_view tool, absl::string_view what,
                         const ToolResult& result) {
  std::string message = sql::OneLine(result.stderr_text);
  if (message.empty()) message = "no error message";
  const std::string text = absl::StrCat(what, ": ", tool, " exited with ",
                                        result.exit_code, ": ", message);
  if (absl::StrContains(message, "server version mismatch")) {
    return absl::FailedPreconditionError(absl::StrCat(
        text, " (install the postgresql-client of the server's version)"));
  }
  if (absl::StrContains(message, "connection to server") ||
      absl::StrContains(message, "could not connect")) {
    return absl::UnavailableError(text);
  }
  return absl::UnknownError(text);
}

absl::StatusOr<std::string> FindPostgresTool(const std::string& name) {
  std::optional<std::string> path = FindExecutable(name);
  if (!path.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        name,
        " not found: install postgresql-client (apt-get install "
        "postgresql-client, of the server's major version or newer) or put ",
        name, " on the agent's PATH"));
  }
  return *std::move(path);
}

// ------------------------------------------------------------ PostgreSQL ---

struct PostgresConnection {
  // Everything the live connection used, but the password.
  std::string conninfo;
  std::string password;
};

absl::StatusOr<PostgresConnection> DescribeConnection(Target& database) {
  ASSIGN_OR_RETURN(ToolConnection tool, database.ConnectionForTools());
  PostgresConnection described;
  std::vector<std::string> parts;
  for (const auto& [keyword, value] : tool.parameters) {
    parts.push_back(
        absl::StrCat(keyword, "=", ::ecliptix::sql::QuoteConnValue(value)));
  }
  described.conninfo = absl::StrJoin(parts, " ");
  described.password = std::move(tool.password);
  return described;
}

absl::Status PgDump(Target& database, const fs::path& file) {
  ASSIGN_OR_RETURN(std::string pg_dump, FindPostgresTool("pg_dump"));
  ASSIGN_OR_RETURN(PostgresConnection connection, DescribeConnection(database));
  ASSIGN_OR_RETURN(ToolResult result,
                   RunTool({pg_dump, "--format=custom", "--no-password",
                            absl::StrCat("--file=", file.string()),
                            absl::StrCat("--dbname=", connection.conninfo)},
                           connection.password));
  if (result.exit_code != 0) {
    return ToolFailure("pg_dump",
                       absl::StrCat("backing up ", database.redacted_url()),
                       result);
  }
  return absl::OkStatus();
}

// Drops every object a pg_dump archive could have: the schemas other than
// public (with what they hold) and public's own tables, views, sequences,
// routines and types, leaving what extensions own. Run in the restore's
// transaction before the archive's statements, so that objects created after
// the backup are gone too and the database is exactly the backup's.
constexpr char kDropEverything[] = R"sql(
SET client_min_messages = warning;
DO $ecliptix$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('public', 'information_schema')
             AND nspname NOT LIKE 'pg\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
                   CASE r.relkind WHEN 'v' THEN 'VIEW'
                                  WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'S' THEN 'SEQUENCE'
                                  WHEN 'f' THEN 'FOREIGN TABLE'
                                  ELSE 'TABLE' END,
                   r.relname);
  END LOOP;
  FOR r IN SELECT p.oid, p.prokind FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
    IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.oid) THEN
      EXECUTE format('DROP %s %s CASCADE',
                     CASE r.prokind WHEN 'p' THEN 'PROCEDURE'
                                    WHEN 'a' THEN 'AGGREGATE'
                                    ELSE 'FUNCTION' END,
                     r.oid::regprocedure);
    END IF;
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('c', 'd', 'e', 'r')
             AND (t.typrelid = 0
                  OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', r.typname);
  END LOOP;
END
$ecliptix$;
)sql";

// The archive becomes a plain script (pg_restore, no connection), run by psql
// after kDropEverything in one transaction: all of it or nothing.
absl::Status PgRestore(Target& database, const fs::path& file) {
  ASSIGN_OR_RETURN(std::string pg_restore, FindPostgresTool("pg_restore"));
  ASSIGN_OR_RETURN(std::string psql, FindPostgresTool("psql"));
  ASSIGN_OR_RETURN(PostgresConnection connection, DescribeConnection(database));
  // Beside the archive, in the private backup directory; removed afterwards.
  const fs::path script = fs::path(file.string() + ".restore.sql");
  const fs::path drop = fs::path(file.string() + ".drop.sql");
  absl::Cleanup remove_scripts = [&] {
    std::error_code ignored;
    fs::remove(script, ignored);
    fs::remove(drop, ignored);
  };
  {
    std::ofstream out(drop, std::ios::trunc);
    out << kDropEverything;
    if (!out.good()) {
      return absl::InternalError(absl::StrCat("cannot write ", drop.string()));
    }
  }
  ASSIGN_OR_RETURN(
      ToolResult converted,
      RunTool({pg_restore, "--no-owner",
               absl::StrCat("--file=", script.string()), file.string()},
              ""));
  if (converted.exit_code != 0) {
    return ToolFailure("pg_restore",
                       absl::StrCat("reading backup ", file.string()),
                       converted);
  }
  ASSIGN_OR_RETURN(
      ToolResult result,
      RunTool({psql, "--no-psqlrc", "--quiet", "--single-transaction",
               "--set=ON_ERROR_STOP=1", "--no-password",
               absl::StrCat("--dbname=", connection.conninfo),
               absl::StrCat("--file=", drop.string()),
               absl::StrCat("--file=", script.string())},
              connection.password));
  if (result.exit_code != 0) {
    return ToolFailure(
        "psql", absl::StrCat("restoring ", database.redacted_url()), result);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- SQLite ---

std::string QuoteSqlString(absl::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

absl::Status SqliteVacuumInto(Target& database, const fs::path& file) {
  const std::string statement =
      absl::StrCat("VACUUM INTO ", QuoteSqlString(file.string()));
  return WithContext(absl::StrCat("backing up ", database.redacted_url(),
                                  " into ", file.string()),
                     database.Execute(statement));
}

absl::Status SqliteRestore(Target& database, const fs::path& file) {
  const std::string what = absl::StrCat("restoring ", database.redacted_url(),
                                        " from ", file.string());
  return WithContext(what, database.CopyFromFile(file.string()));
}

// ------------------------------------------------------------ the target ---

absl::Status CheckSupported(Target& database) {
  switch (database.connector()) {
    case v1::CONNECTOR_SQLITE:
    case v1::CONNECTOR_LIBPQ:
      return absl::OkStatus();
    case v1::CONNECTOR_ODBC:
      return absl::FailedPreconditionError(
          absl::StrCat(database.redacted_url(), ": ", kOdbcBackupRule));
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          database.redacted_url(), ": no backup method for connector ",
          ConnectorName(database.connector())));
  }
}

// The id stored in the identity table, or empty when there is none (read
// without creating the table).
std::string CurrentDatabaseId(Target& database) {
  absl::StatusOr<std::optional<std::string>> id = database.StoredDatabaseId();
  return id.ok() && id->has_value() ? **id : std::string();
}

}  // namespace

absl::StatusOr<BackupResult> TakeBackup(Target& database,
                                        const std::string& backup_dir) {
  RETURN_IF_ERROR(CheckSupported(database));
  const fs::path dir(backup_dir);
  RETURN_IF_ERROR(EnsureDirectory(dir));
  const bool sqlite = database.connector() == v1::CONNECTOR_SQLITE;
  const char* suffix = sqlite ? kSqliteSuffix : kPgDumpSuffix;

  BackupResult backup;
  backup.time = absl::Now();
  backup.engine = EngineName(database.engine());
  std::error_code ec;
  do {
    backup.backup_id = NewBackupId(backup.time);
  } while (fs::exists(dir / (backup.backup_id + kMetaSuffix), ec) ||
           fs::exists(dir / (backup.backup_id + suffix), ec));
  const std::string file_name = backup.backup_id + suffix;
  const fs::path file = dir / file_name;
  const fs::path partial = file.string() + kPartialSuffix;
  fs::remove(partial, ec);

  backup.database_id = CurrentDatabaseId(database);
  absl::Status taken =
      sqlite ? SqliteVacuumInto(database, partial) : PgDump(database, partial);
  if (taken.ok()) {
    ::chmod(partial.c_str(), 0600);
    fs::rename(partial, file, ec);
    if (ec) {
      taken = absl::InternalError(
          absl::StrCat("cannot rename ", partial.string(), " to ",
                       file.string(), ": ", ec.message()));
    }
  }
  if (!taken.ok()) {
    fs::remove(partial, ec);
    return taken;
  }
  const uintmax_t size = fs::file_size(file, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot read the size of ",
                                            file.string(), ": ", ec.message()));
  }
  backup.size_bytes = static_cast<int64_t>(size);
  backup.location = fs::absolute(file, ec).lexically_normal().string();
  if (ec) backup.location = file.string();
  const absl::Status meta = WriteFileAtomically(
      dir / (backup.backup_id + kMetaSuffix), FormatMeta(backup, file_name));
  if (!meta.ok()) {
    fs::remove(file, ec);
    return meta;
  }
  return backup;
}

absl::Status RestoreBackup(Target& database, const std::string& backup_dir,
                           const std::string& backup_id) {
  RETURN_IF_ERROR(CheckSupported(database));
  if (!IsValidBackupId(backup_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", backup_id, "\" is not a backup id (YYYYMMDDTHHMMSSZ-xxxxxxxx)"));
  }
  const fs::path meta_path = fs::path(backup_dir) / (backup_id + kMetaSuffix);
  std::error_code ec;
  if (!fs::exists(meta_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no backup ", backup_id, " in ", backup_dir));
  }
  std::optional<BackupResult> backup = ReadMeta(meta_path);
  if (!backup.has_value()) {
    return absl::NotFoundError(absl::StrCat(
        "backup ", backup_id, " in ", backup_dir, " is incomplete or damaged (",
        meta_path.string(), " or its data file)"));
  }
  const std::string engine = EngineName(database.engine());
  if (backup->engine != engine) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", backup_id, " is of a ", backup->engine,
                     " database; ", database.redacted_url(), " is ", engine));
  }
  const std::string current_id = CurrentDatabaseId(database);
  if (!backup->database_id.empty() && !current_id.empty() &&
      backup->database_id != current_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "backup ", backup_id, " was taken of database ", backup->database_id,
        ", not of ", current_id, " (", database.redacted_url(), ")"));
  }
  const fs::path file(backup->location);
  if (database.connector() == v1::CONNECTOR_SQLITE) {
    if (!absl::EndsWith(file.string(), kSqliteSuffix)) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup ", backup_id, " is not an SQLite file"));
    }
    return SqliteRestore(database, file);
  }
  if (!absl::EndsWith(file.string(), kPgDumpSuffix)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", backup_id, " is not a pg_dump archive"));
  }
  return PgRestore(database, file);
}

absl::StatusOr<std::vector<BackupResult>> ListBackups(
    const std::string& backup_dir) {
  std::vector<BackupResult> backups;
  std::error_code ec;
  if (!fs::exists(backup_dir, ec)) return backups;
  fs::directory_iterator it(backup_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot list backup directory ", backup_dir, ": ", ec.message()));
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot list backup directory ", backup_dir, ": ", ec.message()));
    }
    const fs::path& path = it->path();
    if (path.extension() != kMetaSuffix) continue;
    if (std::optional<BackupResult> backup = ReadMeta(path)) {
      backups.push_back(*std::move(backup));
    }
  }
  std::sort(backups.begin(), backups.end(),
            [](const BackupResult& a, const BackupResult& b) {
              if (a.time != b.time) return a.time > b.time;
              return a.backup_id > b.backup_id;
            });
  return backups;
}

}  // namespace ecliptix::agent
