// Backups against real databases: always SQLite files; PostgreSQL (pg_dump,
// pg_restore) when ECLIPTIX_TEST_POSTGRES_URL is set, skipped otherwise.
#include "agent/backup/backup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "agent/target/open_target.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"

namespace ecliptix::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// The running test's own directory.
fs::path TestRoot() {
  const std::string name = absl::StrReplaceAll(
      ::testing::UnitTest::GetInstance()->current_test_info()->name(),
      {{"/", "_"}});
  return fs::path(TempDir()) / name;
}

// TestRoot()/leaf, removed if it exists (not created).
std::string TestDir(const std::string& leaf) {
  const fs::path dir = TestRoot() / leaf;
  fs::remove_all(dir);
  return dir.string();
}

std::unique_ptr<Target> MustOpen(const std::string& url) {
  auto database = OpenTarget(url);
  EXPECT_TRUE(database.ok()) << database.status();
  return database.ok() ? *std::move(database) : nullptr;
}

// A fresh SQLite file named `leaf`.db in the test's directory.
std::unique_ptr<Target> OpenSqlite(const std::string& leaf) {
  const fs::path dir = TestRoot();
  fs::create_directories(dir);
  const std::string file = (dir / (leaf + ".db")).string();
  fs::remove(file);
  return MustOpen(absl::StrCat("sqlite://", file));
}

void Exec(Target& database, const std::string& statement) {
  const absl::Status status = database.Execute(statement);
  ASSERT_TRUE(status.ok()) << status;
}

int QueryInt(Target& database, const std::string& query) {
  int value = -1;
  absl::StatusOr<QueryResult> result = database.Query(query);
  EXPECT_TRUE(result.ok()) << result.status();
  if (result.ok() && !result->rows.empty()) {
    EXPECT_TRUE(absl::SimpleAtoi(result->rows[0].values[0], &value));
  }
  return value;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// Creates accounts(id, name) with three rows and the database's id; then
// backs up, damages the data, restores through the same connection, and
// checks the rows are back and the connection still works.
void RoundTrip(Target& database, const std::string& backup_dir,
               const std::string& table_count_query) {
  absl::StatusOr<std::string> id = database.EnsureDatabaseId("");
  ASSERT_TRUE(id.ok()) << id.status();
  Exec(database, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)");
  Exec(database,
       "INSERT INTO accounts (id, name) VALUES (1, 'ada'), (2, 'bob'), "
       "(3, 'it''s; -- tricky')");

  const absl::Time before = absl::Now();
  absl::StatusOr<BackupResult> backup = TakeBackup(database, backup_dir);
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_THAT(backup->backup_id,
              MatchesRegex("[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}"));
  EXPECT_TRUE(fs::is_regular_file(backup->location)) << backup->location;
  EXPECT_TRUE(fs::path(backup->location).is_absolute()) << backup->location;
  EXPECT_EQ(backup->size_bytes,
            static_cast<int64_t>(fs::file_size(backup->location)));
  EXPECT_GT(backup->size_bytes, 0);
  EXPECT_GE(backup->time, before - absl::Seconds(1));
  EXPECT_LE(backup->time, absl::Now());
  EXPECT_EQ(backup->engine, EngineName(database.engine()));
  EXPECT_EQ(backup->database_id, *id);
  struct stat info;
  ASSERT_EQ(::stat(backup->location.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);

  absl::StatusOr<std::vector<BackupResult>> listed = ListBackups(backup_dir);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].backup_id, backup->backup_id);
  EXPECT_EQ((*listed)[0].location, backup->location);
  EXPECT_EQ((*listed)[0].size_bytes, backup->size_bytes);
  EXPECT_EQ((*listed)[0].time, backup->time);
  EXPECT_EQ((*listed)[0].engine, backup->engine);
  EXPECT_EQ((*listed)[0].database_id, *id);

  // Damage: change a row, drop the table, add another one.
  Exec(database, "UPDATE accounts SET name = 'eve' WHERE id = 1");
  Exec(database, "DROP TABLE accounts");
  Exec(database, "CREATE TABLE accounts (other INTEGER)");
  Exec(database, "INSERT INTO accounts (other) VALUES (42)");

  const absl::Status restored =
      RestoreBackup(database, backup_dir, backup->backup_id);
  ASSERT_TRUE(restored.ok()) << restored;

  // The same open connection sees the backup's content.
  EXPECT_EQ(QueryInt(database, "SELECT COUNT(*) FROM accounts"), 3);
  EXPECT_EQ(QueryInt(database,
                     "SELECT COUNT(*) FROM accounts WHERE id = 1 AND "
                     "name = 'ada'"),
            1);
  EXPECT_EQ(QueryInt(database,
                     "SELECT COUNT(*) FROM accounts WHERE "
                     "name = 'it''s; -- tricky'"),
            1);
  EXPECT_EQ(QueryInt(database, table_count_query), 1);
  EXPECT_EQ(database.EnsureDatabaseId("").value_or("error"), *id);
  // And still writes.
  Exec(database, "INSERT INTO accounts (id, name) VALUES (4, 'dan')");
  EXPECT_EQ(QueryInt(database, "SELECT COUNT(*) FROM accounts"), 4);
}

// ---------------------------------------------------------------- SQLite ---

TEST(SqliteBackupTest, RoundTripThroughTheSameConnection) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  RoundTrip(*database, TestDir("backups"),
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
            "name = 'accounts'");
}

TEST(SqliteBackupTest, CreatesThePrivateDirectory) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  const std::string dir = TestDir("nested") + "/deeper/backups";
  absl::StatusOr<BackupResult> backup = TakeBackup(*database, dir);
  ASSERT_TRUE(backup.ok()) << backup.status();
  struct stat info;
  ASSERT_EQ(::stat(dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700);
  // Not yet identified: no id recorded.
  EXPECT_EQ(backup->database_id, "");
  EXPECT_TRUE(fs::exists(dir + "/" + backup->backup_id + ".meta"));
}

TEST(SqliteBackupTest, ListsNewestFirstAndIgnoresIncompleteFiles) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  const std::string dir = TestDir("backups");
  absl::StatusOr<BackupResult> first = TakeBackup(*database, dir);
  ASSERT_TRUE(first.ok()) << first.status();
  Exec(*database, "CREATE TABLE t (a INTEGER)");
  absl::StatusOr<BackupResult> second = TakeBackup(*database, dir);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->backup_id, second->backup_id);

  // Left-overs of interrupted backups, a backup whose data file is gone and
  // unrelated files are not backups.
  std::ofstream(dir + "/20260101T000000Z-0000000a.sqlite3.partial") << "x";
  std::ofstream(dir + "/20260101T000000Z-0000000b.meta.partial") << "x";
  std::ofstream(dir + "/README") << "x";
  std::ofstream(dir + "/garbage.meta") << "nonsense";
  std::ofstream(dir + "/20260101T000000Z-0000000c.meta")
      << ReadFile(dir + "/" + first->backup_id + ".meta");

  absl::StatusOr<std::vector<BackupResult>> listed = ListBackups(dir);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].backup_id, second->backup_id);
  EXPECT_EQ((*listed)[1].backup_id, first->backup_id);
  EXPECT_GE((*listed)[0].time, (*listed)[1].time);

  // Restoring the older one takes the table away again.
  ASSERT_TRUE(RestoreBackup(*database, dir, first->backup_id).ok());
  EXPECT_EQ(QueryInt(*database,
                     "SELECT COUNT(*) FROM sqlite_master WHERE name = 't'"),
            0);
}

TEST(SqliteBackupTest, ListOfAMissingDirectoryIsEmpty) {
  absl::StatusOr<std::vector<BackupResult>> listed =
      ListBackups(TestDir("never-created"));
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
}

TEST(SqliteBackupTest, UnknownBackupIdIsNotFound) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  const std::string dir = TestDir("backups");
  ASSERT_TRUE(TakeBackup(*database, dir).ok());
  const absl::Status status =
      RestoreBackup(*database, dir, "20200101T000000Z-deadbeef");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("20200101T000000Z-deadbeef"));
  // Also in a directory that does not exist.
  EXPECT_EQ(
      RestoreBackup(*database, TestDir("none"), "20200101T000000Z-deadbeef")
          .code(),
      absl::StatusCode::kNotFound);
}

TEST(SqliteBackupTest, MalformedBackupIdIsInvalid) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  for (const std::string id :
       {"", "../../etc/passwd", "20200101T000000Z-DEADBEEF",
        "20200101T000000Z-deadbeef/..", "latest"}) {
    EXPECT_EQ(RestoreBackup(*database, TestDir("backups"), id).code(),
              absl::StatusCode::kInvalidArgument)
        << id;
  }
}

TEST(SqliteBackupTest, RefusesABackupOfAnotherDatabase) {
  auto first = OpenSqlite("first");
  auto second = OpenSqlite("second");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(first->EnsureDatabaseId("db-first").ok());
  ASSERT_TRUE(second->EnsureDatabaseId("db-second").ok());
  const std::string dir = TestDir("backups");
  absl::StatusOr<BackupResult> backup = TakeBackup(*first, dir);
  ASSERT_TRUE(backup.ok()) << backup.status();
  const absl::Status status = RestoreBackup(*second, dir, backup->backup_id);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("db-first"));
  EXPECT_EQ(second->EnsureDatabaseId("").value_or("error"), "db-second");
}

TEST(SqliteBackupTest, DirectoryThatCannotBeCreated) {
  auto database = OpenSqlite("target");
  ASSERT_NE(database, nullptr);
  const std::string file = TestDir("plain-file");
  fs::create_directories(fs::path(file).parent_path());
  std::ofstream(file) << "x";
  absl::StatusOr<BackupResult> backup =
      TakeBackup(*database, file + "/backups");
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kFailedPrecondition)
      << backup.status();
}

// ------------------------------------------------------------ PostgreSQL ---

class PostgresBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set; set it (e.g. "
                      "--test_env=ECLIPTIX_TEST_POSTGRES_URL=postgresql://"
                      "postgres@127.0.0.1:5432/postgres) to back up and "
                      "restore a real PostgreSQL";
    }
    absl::StatusOr<testing::ScratchDatabase> scratch =
        testing::CreateScratchDatabase("backup");
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    scratch_ = *std::move(scratch);
  }

  testing::ScratchDatabase scratch_;
};

TEST_F(PostgresBackupTest, RoundTripThroughTheSameConnection) {
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(database, nullptr);
  RoundTrip(*database, TestDir("backups"),
            "SELECT COUNT(*) FROM information_schema.tables WHERE "
            "table_schema = 'public' AND table_name = 'accounts'");
}

TEST_F(PostgresBackupTest, RestoreIsExactlyThePreBackupState) {
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(database, nullptr);
  const std::string backup_dir = TestDir("backups");
  ASSERT_TRUE(database->EnsureDatabaseId("").ok());
  Exec(*database, "CREATE SCHEMA app");
  Exec(*database, "CREATE TABLE app.members (id INTEGER PRIMARY KEY)");
  Exec(*database, "INSERT INTO app.members VALUES (1), (2), (3)");
  absl::StatusOr<BackupResult> backup = TakeBackup(*database, backup_dir);
  ASSERT_TRUE(backup.ok()) << backup.status();

  // After the backup: rows, a table, a function, a view, a schema, a type.
  Exec(*database, "INSERT INTO app.members VALUES (4)");
  Exec(*database, "DELETE FROM app.members WHERE id = 1");
  Exec(*database, "CREATE TABLE app.audit_log (id INTEGER)");
  Exec(*database, "CREATE TABLE public.later (id INTEGER)");
  Exec(*database, "CREATE VIEW public.later_view AS SELECT 1 AS one");
  Exec(*database,
       "CREATE FUNCTION public.later_fn() RETURNS integer LANGUAGE sql AS "
       "'SELECT 1'");
  Exec(*database, "CREATE TYPE public.later_mood AS ENUM ('ok')");
  Exec(*database, "CREATE SCHEMA later_schema");

  const absl::Status restored =
      RestoreBackup(*database, backup_dir, backup->backup_id);
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_EQ(QueryInt(*database, "SELECT COUNT(*) FROM app.members"), 3);
  EXPECT_EQ(QueryInt(*database, "SELECT MIN(id) FROM app.members"), 1);
  EXPECT_EQ(QueryInt(*database,
                     "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON "
                     "n.oid = c.relnamespace WHERE c.relname IN ('audit_log', "
                     "'later', 'later_view')"),
            0);
  EXPECT_EQ(QueryInt(*database,
                     "SELECT COUNT(*) FROM pg_proc WHERE proname = 'later_fn'"),
            0);
  EXPECT_EQ(QueryInt(*database,
                     "SELECT COUNT(*) FROM pg_type WHERE typname = "
                     "'later_mood'"),
            0);
  EXPECT_EQ(QueryInt(*database,
                     "SELECT COUNT(*) FROM pg_namespace WHERE "
                     "nspname = 'later_schema'"),
            0);
  // The restore's scratch scripts are gone; the backup stays.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(backup_dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 2);  // The archive and its .meta.
}

TEST_F(PostgresBackupTest, UnknownBackupIdIsNotFound) {
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(database, nullptr);
  const absl::Status status =
      RestoreBackup(*database, TestDir("backups"), "20200101T000000Z-deadbeef");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

TEST_F(PostgresBackupTest, RefusesASqliteBackup) {
  auto sqlite = OpenSqlite("target");
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(sqlite, nullptr);
  ASSERT_NE(database, nullptr);
  const std::string dir = TestDir("backups");
  absl::StatusOr<BackupResult> backup = TakeBackup(*sqlite, dir);
  ASSERT_TRUE(backup.ok()) << backup.status();
  const absl::Status status = RestoreBackup(*database, dir, backup->backup_id);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("sqlite"));
}

// Restores PATH when the test ends.
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& path) {
    const char* old = std::getenv("PATH");
    if (old != nullptr) old_ = old;
    ::setenv("PATH", path.c_str(), 1);
  }
  ~ScopedPath() { ::setenv("PATH", old_.c_str(), 1); }

 private:
  std::string old_;
};

TEST_F(PostgresBackupTest, PasswordTravelsOnlyInTheChildsEnvironment) {
  // The test server trusts everyone: a password in the URL is accepted and
  // ignored, so it can be followed to a stand-in pg_dump.
  const std::string url =
      absl::StrReplaceAll(scratch_.url, {{"postgresql://postgres@",
                                          "postgresql://postgres:"
                                          "s3cr%27et@"},
                                         {"postgres://postgres@",
                                          "postgres://postgres:"
                                          "s3cr%27et@"}});
  if (url == scratch_.url) {
    GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL does not start with "
                    "postgresql://postgres@";
  }
  auto database = MustOpen(url);
  ASSERT_NE(database, nullptr);
  const std::string bin = TestDir("bin");
  fs::create_directories(bin);
  const std::string script = bin + "/pg_dump";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "printf '%s\\n' \"$@\" > " << bin << "/args\n"
                        << "printf '%s' \"$PGPASSWORD\" > " << bin
                        << "/password\n"
                        << "for a in \"$@\"; do case \"$a\" in --file=*) "
                        << "echo dump > \"${a#--file=}\";; esac; done\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  ::setenv("PGPASSWORD", "inherited", 1);
  absl::StatusOr<BackupResult> backup;
  {
    ScopedPath path(bin + ":/usr/bin:/bin");
    backup = TakeBackup(*database, TestDir("backups"));
  }
  ::unsetenv("PGPASSWORD");
  ASSERT_TRUE(backup.ok()) << backup.status();
  const std::string args = ReadFile(bin + "/args");
  EXPECT_THAT(args, HasSubstr("--format=custom"));
  EXPECT_THAT(args, HasSubstr("dbname='" + scratch_.name + "'"));
  EXPECT_THAT(args, Not(HasSubstr("s3cr")));
  EXPECT_THAT(args, Not(HasSubstr("password=")));
  EXPECT_EQ(ReadFile(bin + "/password"), "s3cr'et");
}

TEST_F(PostgresBackupTest, ToolFailureCarriesItsMessage) {
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(database, nullptr);
  const std::string bin = TestDir("bin");
  fs::create_directories(bin);
  const std::string script = bin + "/pg_dump";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "for a in \"$@\"; do case \"$a\" in --file=*) "
                        << "echo half > \"${a#--file=}\";; esac; done\n"
                        << "echo 'pg_dump: error: query failed' >&2\n"
                        << "echo 'second line' >&2\n"
                        << "exit 3\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  const std::string dir = TestDir("backups");
  absl::StatusOr<BackupResult> backup;
  {
    ScopedPath path(bin + ":/usr/bin:/bin");
    backup = TakeBackup(*database, dir);
  }
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(backup.status().message(),
              HasSubstr("pg_dump exited with 3: pg_dump: error: query "
                        "failed; second line"));
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST_F(PostgresBackupTest, MissingPgDumpIsAFailedPrecondition) {
  auto database = MustOpen(scratch_.url);
  ASSERT_NE(database, nullptr);
  const std::string empty = TestDir("empty-bin");
  fs::create_directories(empty);
  const std::string dir = TestDir("backups");
  absl::StatusOr<BackupResult> backup;
  {
    ScopedPath path(empty);
    backup = TakeBackup(*database, dir);
  }
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(backup.status().message(), HasSubstr("pg_dump not found"));
  EXPECT_THAT(backup.status().message(), HasSubstr("postgresql-client"));
  // Nothing half-made is listed.
  absl::StatusOr<std::vector<BackupResult>> listed = ListBackups(dir);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST_F(PostgresBackupTest, OdbcTargetsAreNotBackedUp) {
  if (scratch_.odbc_url.empty()) GTEST_SKIP() << "no ODBC URL";
  auto database = MustOpen(scratch_.odbc_url);
  ASSERT_NE(database, nullptr);
  absl::StatusOr<BackupResult> backup =
      TakeBackup(*database, TestDir("backups"));
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(backup.status().message(),
              HasSubstr("not databases reached through ODBC (SQL Server): "
                        "take their backup with the engine's own tools"));
  EXPECT_THAT(backup.status().message(),
              HasSubstr("attest GATE_KIND_BACKUP_COMPLETED"));
  EXPECT_EQ(
      RestoreBackup(*database, TestDir("backups"), "20200101T000000Z-deadbeef")
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ecliptix::agent
