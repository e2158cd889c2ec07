#include "common/sql/database_url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::sql {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DatabaseUrl Parsed(absl::string_view url) {
  absl::StatusOr<DatabaseUrl> parsed = ParseDatabaseUrl(url);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : DatabaseUrl{};
}

std::string ParseError(absl::string_view url) {
  absl::StatusOr<DatabaseUrl> parsed = ParseDatabaseUrl(url);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << url;
  return std::string(parsed.status().message());
}

TEST(DatabaseUrlTest, SqliteAbsoluteAndRelative) {
  DatabaseUrl absolute = Parsed("sqlite:///var/lib/ecliptix/a.db");
  EXPECT_EQ(absolute.backend, Backend::kSqlite);
  EXPECT_EQ(absolute.sqlite_path, "/var/lib/ecliptix/a.db");
  EXPECT_EQ(absolute.connection_string, "db=/var/lib/ecliptix/a.db timeout=30");
  EXPECT_EQ(absolute.redacted, "sqlite:///var/lib/ecliptix/a.db");

  DatabaseUrl relative = Parsed("sqlite://data/a.db");
  EXPECT_EQ(relative.sqlite_path, "data/a.db");
  EXPECT_EQ(Parsed("sqlite3:///a.db").backend, Backend::kSqlite);
  // Scheme case and surrounding blanks do not matter.
  EXPECT_EQ(Parsed("  SQLite:///a.db ").sqlite_path, "/a.db");
}

TEST(DatabaseUrlTest, Postgresql) {
  DatabaseUrl parsed = Parsed(
      "postgresql://fleet:s3cret@db.example:5432/ecliptix?sslmode=disable");
  EXPECT_EQ(parsed.backend, Backend::kPostgresql);
  // libpq's keyword/value form.
  EXPECT_EQ(parsed.connection_string,
            "user='fleet' password='s3cret' host='db.example' port='5432' "
            "dbname='ecliptix' sslmode='disable'");
  EXPECT_EQ(parsed.redacted,
            "postgresql://fleet:***@db.example:5432/ecliptix?sslmode=disable");
  EXPECT_TRUE(parsed.sqlite_path.empty());
  EXPECT_EQ(Parsed("postgres://h/db").connection_string,
            "host='h' dbname='db'");
  EXPECT_EQ(Parsed("postgresql://user@h/db").redacted,
            "postgresql://user@h/db");
  EXPECT_EQ(Parsed("postgresql://user@h/db").connection_string,
            "user='user' host='h' dbname='db'");
}

TEST(DatabaseUrlTest, PostgresqlDecodesAndQuotes) {
  // Percent-escapes are decoded; quotes and backslashes are escaped for libpq.
  EXPECT_EQ(Parsed("postgresql://u%40x:p%2Fw'd@h/my%20db").connection_string,
            "user='u@x' password='p/w\\'d' host='h' dbname='my db'");
  EXPECT_EQ(Parsed("postgresql://u:a\\b@h/db").connection_string,
            "user='u' password='a\\\\b' host='h' dbname='db'");
  EXPECT_EQ(Parsed("postgresql://[::1]:5433/db").connection_string,
            "host='::1' port='5433' dbname='db'");
  EXPECT_EQ(Parsed("postgresql:///db?host=/run/postgresql").connection_string,
            "dbname='db' host='/run/postgresql'");
  // An unescaped '@' in the password: the last '@' ends it, in parsing and in
  // redaction alike.
  DatabaseUrl at = Parsed("postgresql://u:p@ss@h/db");
  EXPECT_EQ(at.connection_string,
            "user='u' password='p@ss' host='h' dbname='db'");
  EXPECT_EQ(at.redacted, "postgresql://u:***@h/db");
}

TEST(DatabaseUrlTest, MalformedPostgresqlUrls) {
  EXPECT_THAT(ParseError("postgresql://h:port/db"),
              HasSubstr("bad port \"port\""));
  EXPECT_THAT(ParseError("postgresql://h:70000/db"), HasSubstr("bad port"));
  EXPECT_THAT(ParseError("postgresql://[::1/db"), HasSubstr("unclosed '['"));
  EXPECT_THAT(ParseError("postgresql://h/db?sslmode"),
              HasSubstr("parameter \"sslmode\" is not key=value"));
  EXPECT_THAT(ParseError("postgresql://h/db?bad-key=1"),
              HasSubstr("bad parameter name \"bad-key\""));
  EXPECT_THAT(ParseError("postgresql://h/d%zzb"), HasSubstr("bad %-escape"));
  EXPECT_THAT(ParseError("postgresql://h/db%2"),
              HasSubstr("truncated %-escape"));
  // The message shows the URL redacted.
  const std::string bad_escape = ParseError("postgresql://u:s3cret@h/d%zz");
  EXPECT_THAT(bad_escape, HasSubstr("postgresql://u:***@h/d%zz"));
  EXPECT_THAT(bad_escape, Not(HasSubstr("s3cret")));
}

TEST(DatabaseUrlTest, Odbc) {
  DatabaseUrl parsed = Parsed(
      "odbc://Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;"
      "Database=e;Uid=u;Pwd=s3cret");
  EXPECT_EQ(parsed.backend, Backend::kOdbc);
  EXPECT_EQ(parsed.connection_string,
            "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=e;"
            "Uid=u;Pwd=s3cret");
  EXPECT_EQ(parsed.redacted,
            "odbc://Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;"
            "Database=e;Uid=u;Pwd=***");
  EXPECT_EQ(Parsed("odbc://DSN=fleet").connection_string, "DSN=fleet");
}

TEST(DatabaseUrlTest, RedactsPasswordsInEveryForm) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u:pw@h/db"),
            "postgresql://u:***@h/db");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://h/db?user=u&password=pw&x=1"),
            "postgresql://h/db?user=u&password=***&x=1");
  EXPECT_EQ(RedactDatabaseUrl("odbc://DSN=x;PWD=pw;UID=u"),
            "odbc://DSN=x;PWD=***;UID=u");
  EXPECT_EQ(RedactDatabaseUrl("odbc://DSN=x;Password=pw"),
            "odbc://DSN=x;Password=***");
  // A braced ODBC value may hold ';'.
  EXPECT_EQ(RedactDatabaseUrl("odbc://DSN=x;Pwd={p;w}d;Uid=u"),
            "odbc://DSN=x;Pwd=***d;Uid=u");
  EXPECT_EQ(RedactDatabaseUrl("odbc://DSN=x;pwd = pw"),
            "odbc://DSN=x;pwd = ***");
  // Even URLs that do not parse.
  EXPECT_EQ(RedactDatabaseUrl("mysql://root:pw@h/db"), "mysql://root:***@h/db");
  EXPECT_EQ(RedactDatabaseUrl("sqlite:///a.db"), "sqlite:///a.db");
}

TEST(DatabaseUrlTest, ErrorsNeverShowThePassword) {
  for (absl::string_view url :
       {"mysql://root:s3cret@h/db", "oracle://h?password=s3cret",
        "postgresql://u:s3cret@h:x/db", "postgresql://u:s3cret@h/db?bad"}) {
    EXPECT_THAT(ParseError(url), Not(HasSubstr("s3cret"))) << url;
  }
}

TEST(DatabaseUrlTest, MalformedUrls) {
  EXPECT_THAT(ParseError(""), HasSubstr("database URL is empty"));
  EXPECT_THAT(ParseError("   "), HasSubstr("database URL is empty"));
  EXPECT_THAT(ParseError("/var/lib/a.db"), HasSubstr("has no scheme"));
  EXPECT_THAT(ParseError("sqlite://"), HasSubstr("names no file"));
  EXPECT_THAT(ParseError("sqlite:///my data.db"),
              HasSubstr("spaces or quotes are not supported"));
  EXPECT_THAT(ParseError("sqlite:///a'b.db"), HasSubstr("spaces or quotes"));
  EXPECT_THAT(ParseError("postgresql://"), HasSubstr("names no server"));
  EXPECT_THAT(ParseError("odbc://"),
              HasSubstr("has no ODBC connection string"));
  EXPECT_THAT(ParseError("odbc://fleet"),
              HasSubstr("has no ODBC connection string"));
  const std::string unsupported = ParseError("mysql://h/db");
  EXPECT_THAT(unsupported, HasSubstr("scheme \"mysql\" is not supported"));
  // Says what would work.
  EXPECT_THAT(unsupported, HasSubstr("sqlite:///"));
  EXPECT_THAT(unsupported, HasSubstr("postgresql://"));
  EXPECT_THAT(unsupported, HasSubstr("odbc://"));
}

TEST(DatabaseUrlTest, QuoteConnValueEscapesQuoteAndBackslash) {
  EXPECT_EQ(QuoteConnValue("fleet"), "'fleet'");
  EXPECT_EQ(QuoteConnValue(""), "''");
  EXPECT_EQ(QuoteConnValue("it's a\\b"), "'it\\'s a\\\\b'");
}

}  // namespace
}  // namespace ecliptix::sql
