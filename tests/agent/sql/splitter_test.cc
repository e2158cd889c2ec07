// SplitStatements: where each dialect's statements end, their line numbers and
// the errors for unterminated quotes, comments and dollar quotes.
#include "agent/sql/splitter.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::agent::sql {

// For readable failures.
void PrintTo(const Statement& statement, std::ostream* os) {
  *os << "{line " << statement.line << ": \"" << statement.text << "\"}";
}

namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

MATCHER_P2(Stmt, text, line, "") {
  return arg.text == text && arg.line == line;
}

std::vector<Statement> Split(v1::Dialect dialect, const std::string& script) {
  absl::StatusOr<std::vector<Statement>> statements =
      SplitStatements(dialect, script);
  EXPECT_TRUE(statements.ok()) << statements.status();
  return statements.ok() ? *std::move(statements) : std::vector<Statement>();
}

std::vector<std::string> Texts(v1::Dialect dialect, const std::string& script) {
  std::vector<std::string> texts;
  for (const Statement& statement : Split(dialect, script)) {
    texts.push_back(statement.text);
  }
  return texts;
}

absl::Status SplitError(v1::Dialect dialect, const std::string& script) {
  absl::StatusOr<std::vector<Statement>> statements =
      SplitStatements(dialect, script);
  return statements.status();
}

// ---------------------------------------------------------------- common ---

class AllDialectsTest : public ::testing::TestWithParam<v1::Dialect> {};

TEST_P(AllDialectsTest, EmptyAndCommentOnlyScriptsHaveNoStatements) {
  EXPECT_THAT(Split(GetParam(), ""), IsEmpty());
  EXPECT_THAT(Split(GetParam(), "  \n\t\r\n"), IsEmpty());
  EXPECT_THAT(Split(GetParam(), "-- nothing\n/* at\nall */\n"), IsEmpty());
}

TEST_P(AllDialectsTest, UnterminatedStringNamesItsLine) {
  absl::Status status = SplitError(GetParam(), "SELECT 1\n;\nSELECT 'abc\n\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("unterminated string literal"));
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
}

TEST_P(AllDialectsTest, UnterminatedQuotedIdentifier) {
  absl::Status status = SplitError(GetParam(), "\nSELECT \"abc FROM t");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("quoted identifier"));
  EXPECT_THAT(status.message(), HasSubstr("line 2"));
}

TEST_P(AllDialectsTest, UnterminatedBlockComment) {
  absl::Status status = SplitError(GetParam(), "SELECT 1;\n\n/* never\nends");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("block comment"));
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
}

TEST_P(AllDialectsTest, SingleStatementWithoutTerminator) {
  EXPECT_THAT(Split(GetParam(), "\n\n  SELECT 1  \n\n"),
              ElementsAre(Stmt("SELECT 1", 3)));
}

TEST_P(AllDialectsTest, TrailingCommentsAreNotPartOfTheStatement) {
  EXPECT_THAT(Split(GetParam(), "-- lead\nSELECT 1 /* in */ + 2 -- tail\n"),
              ElementsAre(Stmt("SELECT 1 /* in */ + 2", 2)));
}

INSTANTIATE_TEST_SUITE_P(Dialects, AllDialectsTest,
                         ::testing::Values(v1::DIALECT_SQLITE,
                                           v1::DIALECT_POSTGRESQL,
                                           v1::DIALECT_MSSQL),
                         [](const auto& info) {
                           return v1::Dialect_Name(info.param);
                         });

TEST(SplitStatementsTest, UnspecifiedDialectIsInvalid) {
  absl::Status status = SplitError(v1::DIALECT_UNSPECIFIED, "SELECT 1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("DIALECT_UNSPECIFIED"));
}

// ---------------------------------------------------------------- SQLite ---

TEST(SqliteSplitTest, SplitsOnSemicolonsWithLines) {
  EXPECT_THAT(Split(v1::DIALECT_SQLITE,
                    "CREATE TABLE t (a INT);\n"
                    "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);\n"
                    "\n"
                    "  -- comment\n"
                    "  /* block\n"
                    "     comment */ SELECT *\n"
                    "  FROM t;\n"),
              ElementsAre(Stmt("CREATE TABLE t (a INT)", 1),
                          Stmt("INSERT INTO t VALUES (1)", 2),
                          Stmt("INSERT INTO t VALUES (2)", 2),
                          Stmt("SELECT *\n  FROM t", 6)));
}

TEST(SqliteSplitTest, EmptyStatementsAreDropped) {
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, ";;SELECT 1;; ; -- x\n;/* y */;"),
              ElementsAre("SELECT 1"));
}

TEST(SqliteSplitTest, QuotesHideSemicolonsAndCommentMarkers) {
  EXPECT_THAT(
      Texts(v1::DIALECT_SQLITE,
            "INSERT INTO t VALUES ('a;b', 'it''s -- not a comment', '/*');\n"
            "SELECT \"col;umn\", [odd;name], `back;tick` FROM t;\n"
            "SELECT 'x\\'; SELECT 2;"),
      ElementsAre(
          "INSERT INTO t VALUES ('a;b', 'it''s -- not a comment', '/*')",
          "SELECT \"col;umn\", [odd;name], `back;tick` FROM t",
          // SQLite has no backslash escapes.
          "SELECT 'x\\'", "SELECT 2"));
}

TEST(SqliteSplitTest, CommentsHideSemicolonsAndQuotes) {
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE,
                    "SELECT 1 -- it's; fine\n"
                    "+ 1; /* don't; stop */ SELECT 2;"),
              ElementsAre("SELECT 1 -- it's; fine\n+ 1", "SELECT 2"));
}

TEST(SqliteSplitTest, BlockCommentsDoNotNest) {
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, "/* a /* b */ SELECT 1; SELECT 2;"),
              ElementsAre("SELECT 1", "SELECT 2"));
}

TEST(SqliteSplitTest, TriggerBodyIsOneStatement) {
  const std::string trigger =
      "CREATE TRIGGER audit_insert AFTER INSERT ON accounts\n"
      "BEGIN\n"
      "  INSERT INTO audit (what) VALUES ('insert; begin');\n"
      "  UPDATE accounts SET n = n + 1 WHERE id = NEW.id;\n"
      "END";
  EXPECT_THAT(
      Split(v1::DIALECT_SQLITE, "CREATE TABLE accounts (id INT, n INT);\n" +
                                    trigger + ";\nSELECT 1;"),
      ElementsAre(Stmt("CREATE TABLE accounts (id INT, n INT)", 1),
                  Stmt(trigger, 2), Stmt("SELECT 1", 7)));
}

TEST(SqliteSplitTest, TempTriggerWithCaseInsideBodyAndLowerCase) {
  const std::string trigger =
      "create temp trigger if not exists t1 before update on t\n"
      "when case when old.a is null then 1 else 0 end = 0\n"
      "begin\n"
      "  select case when new.a < 0 then raise(abort, 'negative') end;\n"
      "  update t set b = case new.a when 1 then 'one' else 'many' End;\n"
      "end";
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, trigger + "; select 2"),
              ElementsAre(trigger, "select 2"));
  const std::string temporary =
      "CREATE TEMPORARY TRIGGER t2 AFTER DELETE ON t BEGIN DELETE FROM u; END";
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, temporary + ";SELECT 3;"),
              ElementsAre(temporary, "SELECT 3"));
}

TEST(SqliteSplitTest, BeginOutsideTriggersIsATransaction) {
  EXPECT_THAT(
      Texts(v1::DIALECT_SQLITE,
            "BEGIN; UPDATE t SET a = CASE WHEN 1 THEN 2 END; END;"),
      ElementsAre("BEGIN", "UPDATE t SET a = CASE WHEN 1 THEN 2 END", "END"));
}

TEST(SqliteSplitTest, WordsOnlyCountWhole) {
  // "backend", "ending", "begins" are not BEGIN/END.
  const std::string trigger =
      "CREATE TRIGGER t3 AFTER INSERT ON t BEGIN "
      "UPDATE t SET backend = 1, ending = 2, begins = 3; END";
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, trigger + ";SELECT 1"),
              ElementsAre(trigger, "SELECT 1"));
}

TEST(SqliteSplitTest, ParenthesesDoNotHideSemicolons) {
  // As sqlite3_complete(): a stray '(' does not swallow the rest.
  EXPECT_THAT(Texts(v1::DIALECT_SQLITE, "SELECT (1; SELECT 2;"),
              ElementsAre("SELECT (1", "SELECT 2"));
}

TEST(SqliteSplitTest, UnterminatedBracketAndBacktick) {
  absl::Status bracket = SplitError(v1::DIALECT_SQLITE, "SELECT [a;\nb");
  EXPECT_EQ(bracket.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bracket.message(), HasSubstr("bracketed identifier"));
  EXPECT_THAT(bracket.message(), HasSubstr("line 1"));
  absl::Status backtick = SplitError(v1::DIALECT_SQLITE, "\n\nSELECT `a;");
  EXPECT_EQ(backtick.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(backtick.message(), HasSubstr("line 3"));
}

TEST(SqliteSplitTest, CrLfLineEndings) {
  EXPECT_THAT(Split(v1::DIALECT_SQLITE, "SELECT 1;\r\n\r\nSELECT 2;\r\n"),
              ElementsAre(Stmt("SELECT 1", 1), Stmt("SELECT 2", 3)));
}

// ------------------------------------------------------------ PostgreSQL ---

TEST(PostgresqlSplitTest, DollarQuotedFunctionBody) {
  const std::string function =
      "CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $$\n"
      "BEGIN\n"
      "  NEW.updated_at := now(); -- it's; here\n"
      "  RETURN NEW;\n"
      "END;\n"
      "$$ LANGUAGE plpgsql";
  EXPECT_THAT(Split(v1::DIALECT_POSTGRESQL, "SET search_path = public;\n\n" +
                                                function + ";\nSELECT 1;\n"),
              ElementsAre(Stmt("SET search_path = public", 1),
                          Stmt(function, 3), Stmt("SELECT 1", 9)));
}

TEST(PostgresqlSplitTest, TaggedDollarQuotesNest) {
  const std::string block =
      "DO $outer$\n"
      "BEGIN\n"
      "  EXECUTE $q$SELECT ';'$q$;\n"
      "  EXECUTE $$SELECT 1; $not_the_end$$;\n"
      "  RAISE NOTICE 'done $outer';\n"
      "END\n"
      "$outer$";
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL, block + ";SELECT 2"),
              ElementsAre(block, "SELECT 2"));
}

TEST(PostgresqlSplitTest, DollarQuoteTagsAreCaseSensitive) {
  EXPECT_THAT(
      Texts(v1::DIALECT_POSTGRESQL, "SELECT $Tag$a;$tag$;b$Tag$; SELECT 2;"),
      ElementsAre("SELECT $Tag$a;$tag$;b$Tag$", "SELECT 2"));
}

TEST(PostgresqlSplitTest, ParametersAndIdentifiersWithDollarsAreNotQuotes) {
  EXPECT_THAT(
      Texts(v1::DIALECT_POSTGRESQL,
            "PREPARE p(int, int) AS SELECT $1 + $2; SELECT a$b$c FROM t$1;\n"
            "EXECUTE p(1, 2);"),
      ElementsAre("PREPARE p(int, int) AS SELECT $1 + $2",
                  "SELECT a$b$c FROM t$1", "EXECUTE p(1, 2)"));
}

TEST(PostgresqlSplitTest, StringsAndEscapeStrings) {
  EXPECT_THAT(
      Texts(v1::DIALECT_POSTGRESQL,
            "SELECT 'a;b', 'it''s', 'back\\'; SELECT E'x\\';y', e'\\\\';\n"
            "SELECT U&'d\\0061t;a', \"we\"\"ird;\" FROM t;"),
      ElementsAre(
          // standard_conforming_strings: a backslash is an ordinary character.
          "SELECT 'a;b', 'it''s', 'back\\'", "SELECT E'x\\';y', e'\\\\'",
          "SELECT U&'d\\0061t;a', \"we\"\"ird;\" FROM t"));
}

TEST(PostgresqlSplitTest, IdentifierEndingInEIsNotAnEscapeString) {
  // "type" followed by a literal is a typed literal, not E'...'.
  EXPECT_THAT(
      Texts(v1::DIALECT_POSTGRESQL, "SELECT date'2024-01-01\\'; SELECT 2;"),
      ElementsAre("SELECT date'2024-01-01\\'", "SELECT 2"));
}

TEST(PostgresqlSplitTest, NestedBlockComments) {
  EXPECT_THAT(
      Split(v1::DIALECT_POSTGRESQL,
            "/* outer /* inner; */ still; comment */ SELECT 1;\n"
            "SELECT /* a /* b */ c */ 2;"),
      ElementsAre(Stmt("SELECT 1", 1), Stmt("SELECT /* a /* b */ c */ 2", 2)));
  absl::Status status =
      SplitError(v1::DIALECT_POSTGRESQL, "SELECT 1;\n/* a /* b */\nSELECT 2;");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("block comment"));
  EXPECT_THAT(status.message(), HasSubstr("line 2"));
}

TEST(PostgresqlSplitTest, UnterminatedDollarQuote) {
  absl::Status status = SplitError(
      v1::DIALECT_POSTGRESQL,
      "SELECT 1;\nCREATE FUNCTION f() RETURNS int AS $body$\nSELECT 1;\n$$;");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dollar-quoted string ($body$)"));
  EXPECT_THAT(status.message(), HasSubstr("line 2"));
}

TEST(PostgresqlSplitTest, UnterminatedEscapeString) {
  absl::Status status =
      SplitError(v1::DIALECT_POSTGRESQL, "SELECT 1;\n\nSELECT E'abc\\';");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("escape string"));
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
}

TEST(PostgresqlSplitTest, SqlStandardFunctionBody) {
  const std::string function =
      "CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql\n"
      "BEGIN ATOMIC\n"
      "  SELECT CASE WHEN i > 0 THEN i + 1 ELSE 0 END;\n"
      "  SELECT i + 1;\n"
      "END";
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL, function + ";\nSELECT 1;"),
              ElementsAre(function, "SELECT 1"));
  const std::string procedure =
      "create or replace procedure p() language sql begin atomic "
      "insert into t values (1); end";
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL, procedure + "; select 2"),
              ElementsAre(procedure, "select 2"));
}

TEST(PostgresqlSplitTest, TransactionsStillSplit) {
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL,
                    "BEGIN; SELECT CASE WHEN true THEN 1 END; END; COMMIT;"),
              ElementsAre("BEGIN", "SELECT CASE WHEN true THEN 1 END", "END",
                          "COMMIT"));
}

TEST(PostgresqlSplitTest, ParenthesesHideSemicolons) {
  const std::string rule =
      "CREATE RULE r AS ON INSERT TO t DO ALSO "
      "(INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))";
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL, rule + ";SELECT 1;"),
              ElementsAre(rule, "SELECT 1"));
}

TEST(PostgresqlSplitTest, BracketsAndBackticksAreOrdinary) {
  EXPECT_THAT(Texts(v1::DIALECT_POSTGRESQL,
                    "SELECT a[1] FROM t; SELECT '[' ; SELECT `x;"),
              ElementsAre("SELECT a[1] FROM t", "SELECT '['", "SELECT `x"));
}

// ----------------------------------------------------------------- T-SQL ---

TEST(MssqlSplitTest, GoSeparatesBatchesNotSemicolons) {
  EXPECT_THAT(Split(v1::DIALECT_MSSQL,
                    "CREATE TABLE t (a INT);\n"
                    "INSERT INTO t VALUES (1);\n"
                    "GO\n"
                    "\n"
                    "CREATE PROCEDURE p AS\n"
                    "BEGIN\n"
                    "  SELECT 1;\n"
                    "END;\n"
                    "GO\n"),
              ElementsAre(Stmt("CREATE TABLE t (a INT);\n"
                               "INSERT INTO t VALUES (1);",
                               1),
                          Stmt("CREATE PROCEDURE p AS\n"
                               "BEGIN\n"
                               "  SELECT 1;\n"
                               "END;",
                               5)));
}

TEST(MssqlSplitTest, GoVariants) {
  EXPECT_THAT(
      Split(v1::DIALECT_MSSQL,
            "SELECT 1\n"
            "go\n"
            "SELECT 2\n"
            "  Go  \r\n"
            "SELECT 3\n"
            "\tGO\t-- end of batch 3\n"
            "SELECT 4\n"
            "GO--tight\n"
            "SELECT 5\n"
            "GO"),
      ElementsAre(Stmt("SELECT 1", 1), Stmt("SELECT 2", 3), Stmt("SELECT 3", 5),
                  Stmt("SELECT 4", 7), Stmt("SELECT 5", 9)));
}

TEST(MssqlSplitTest, GoWithCountRepeatsTheBatch) {
  EXPECT_THAT(Split(v1::DIALECT_MSSQL,
                    "INSERT INTO t DEFAULT VALUES\nGO 3\nSELECT 1\n"),
              ElementsAre(Stmt("INSERT INTO t DEFAULT VALUES", 1),
                          Stmt("INSERT INTO t DEFAULT VALUES", 1),
                          Stmt("INSERT INTO t DEFAULT VALUES", 1),
                          Stmt("SELECT 1", 3)));
  absl::Status zero = SplitError(v1::DIALECT_MSSQL, "SELECT 1\n\nGO 0\n");
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("line 3"));
  absl::Status huge =
      SplitError(v1::DIALECT_MSSQL, "SELECT 1\nGO 99999999999999999999\n");
  EXPECT_EQ(huge.code(), absl::StatusCode::kInvalidArgument);
}

TEST(MssqlSplitTest, LinesThatAreNotGo) {
  EXPECT_THAT(Texts(v1::DIALECT_MSSQL,
                    "GOTO done\n"
                    "SELECT 1 GO\n"
                    "GO2\n"
                    "GO x\n"
                    "done: SELECT 2\n"),
              ElementsAre("GOTO done\nSELECT 1 GO\nGO2\nGO x\ndone: SELECT 2"));
}

TEST(MssqlSplitTest, GoInsideStringsAndCommentsDoesNotSplit) {
  const std::string batch =
      "SELECT 'line one\n"
      "GO\n"
      "still the string'\n"
      "/* a comment\n"
      "GO\n"
      "/* nested\n"
      "GO\n"
      "*/ still comment\n"
      "*/\n"
      "SELECT [weird\n"
      "GO\n"
      "name], \"quoted\n"
      "GO\n"
      "\" FROM t";
  EXPECT_THAT(Split(v1::DIALECT_MSSQL, batch + "\nGO\nSELECT 2"),
              ElementsAre(Stmt(batch, 1), Stmt("SELECT 2", 16)));
}

TEST(MssqlSplitTest, LeadingCommentsAndEmptyBatchesAreDropped) {
  EXPECT_THAT(Split(v1::DIALECT_MSSQL,
                    "GO\n-- only a comment\nGO\n\n/* x */\n  -- header\n"
                    "  SELECT 1; -- trailing\nGO\nGO\n"),
              ElementsAre(Stmt("SELECT 1;", 7)));
}

TEST(MssqlSplitTest, BracketIdentifiersWithEscapedBrackets) {
  EXPECT_THAT(
      Texts(v1::DIALECT_MSSQL,
            "SELECT 1 AS [a]]\nGO\nb], N'it''s\nGO\n'\nGO\nSELECT 2"),
      ElementsAre("SELECT 1 AS [a]]\nGO\nb], N'it''s\nGO\n'", "SELECT 2"));
}

TEST(MssqlSplitTest, DollarsAreOrdinary) {
  EXPECT_THAT(Texts(v1::DIALECT_MSSQL, "SELECT $$ AS x\nGO\nSELECT 2"),
              ElementsAre("SELECT $$ AS x", "SELECT 2"));
}

}  // namespace
}  // namespace ecliptix::agent::sql
