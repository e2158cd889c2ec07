// ecliptixctl query without a server: the output formats of a query's answer
// (aligned table in blocks, RFC 4180 CSV, JSON lines), the summary and the
// exit rule, and the flags (--arg pairs, --format, usage errors).
#include "client/ctl_query.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/ctl_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

v1::QueryResult Started(const std::vector<std::string>& databases) {
  v1::QueryResult result;
  result.mutable_started()->set_rollout_id("r-7");
  for (const std::string& id : databases)
    result.mutable_started()->add_database_ids(id);
  return result;
}

// Rows from one database; a value "<null>" stands for NULL.
v1::QueryResult Rows(const std::string& database_id,
                     const std::vector<std::string>& columns,
                     const std::vector<std::vector<std::string>>& rows,
                     bool last = true, int64_t truncated = 0) {
  v1::QueryResult result;
  result.mutable_rows()->set_database_id(database_id);
  v1::QueryRows* batch = result.mutable_rows()->mutable_rows();
  for (const std::string& column : columns) batch->add_columns(column);
  for (const auto& row : rows) {
    v1::QueryRow* added = batch->add_rows();
    for (const std::string& value : row) {
      v1::QueryValue* cell = added->add_values();
      if (value == "<null>") {
        cell->set_null_value(true);
      } else {
        cell->set_text(value);
      }
    }
  }
  batch->set_last(last);
  batch->set_rows_truncated(truncated);
  return result;
}

v1::QueryResult Summary(const std::string& database_id, const std::string& code,
                        int64_t rows, int64_t truncated = 0,
                        const std::string& error = "") {
  v1::QueryResult result;
  v1::QueryDatabaseSummary* summary = result.mutable_summary();
  summary->set_database_id(database_id);
  summary->set_code(code);
  summary->set_rows(rows);
  summary->set_rows_truncated(truncated);
  summary->set_error(error);
  return result;
}

std::vector<std::string> Lines(const std::string& text,
                               const std::string& separator = "\n") {
  std::vector<std::string> lines = absl::StrSplit(text, separator);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

TEST(CsvFieldTest, QuotesOnlyWhatRfc4180Needs) {
  EXPECT_EQ(CsvField("AuditLog"), "AuditLog");
  EXPECT_EQ(CsvField("a b"), "a b");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
  // The empty string is quoted: the empty unquoted field is NULL.
  EXPECT_EQ(CsvField(""), "\"\"");
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("l1\nl2\t\x01"), "\"l1\\nl2\\t\\u0001\"");
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(QueryOutputTest, CsvHasADatabaseColumnNullsAndASummaryOnStderr) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kCsv, out, err);
  output.Add(Started({"db-1", "db-2"}));
  output.Add(Rows("db-1", {"TableName", "RecordCount"},
                  {{"AuditLog", "3"}, {"Login,Attempts", "<null>"}}));
  output.Add(Summary("db-1", "OK", 2));
  output.Add(Rows("db-2", {"TableName", "RecordCount"}, {{"", "1"}}));
  output.Add(Summary("db-2", "OK", 1));
  output.Finish();
  EXPECT_THAT(Lines(out.str(), "\r\n"),
              ElementsAre("DATABASE,TableName,RecordCount", "db-1,AuditLog,3",
                          "db-1,\"Login,Attempts\",", "db-2,\"\",1"));
  EXPECT_THAT(err.str(), HasSubstr("2 databases: 2 ok; 3 rows; operation r-7"));
  EXPECT_TRUE(output.AllAnswered());
}

TEST(QueryOutputTest, CsvPrintsAHeaderAgainWhenTheColumnsChange) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kCsv, out, err);
  output.Add(Started({"pg", "lite"}));
  output.Add(Rows("pg", {"recordcount"}, {{"4"}}));
  output.Add(Rows("lite", {"RecordCount"}, {{"5"}}));
  output.Finish();
  EXPECT_THAT(Lines(out.str(), "\r\n"),
              ElementsAre("DATABASE,recordcount", "pg,4",
                          "DATABASE,RecordCount", "lite,5"));
}

TEST(QueryOutputTest, JsonIsOneObjectPerRowThenSummariesThenTotals) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kJson, out, err);
  output.Add(Started({"db-1", "db-2"}));
  output.Add(
      Rows("db-1", {"Name", "Value", "Name"}, {{"a\"b", "<null>", "x"}}));
  output.Add(Summary("db-1", "OK", 1));
  output.Add(Summary("db-2", "DEADLINE_EXCEEDED", 0, 0, "no answer within 5s"));
  output.Finish();
  EXPECT_THAT(
      Lines(out.str()),
      ElementsAre(
          R"({"database_id":"db-1","columns":{"Name":"a\"b","Value":null,"Name_2":"x"}})",
          R"({"database_id":"db-1","summary":{"code":"OK","error":"","rows":1,"rows_truncated":0}})",
          R"({"database_id":"db-2","summary":{"code":"DEADLINE_EXCEEDED","error":"no answer within 5s","rows":0,"rows_truncated":0}})",
          R"({"rollout_id":"r-7","databases":2,"ok":1,"failed":0,"timed_out":1,"offline":0,"no_answer":0,"rows":1,"rows_truncated":0})"));
  EXPECT_EQ(err.str(), "");
  EXPECT_FALSE(output.AllAnswered());
}

TEST(QueryOutputTest, TableIsAlignedOverTheRowsSeenAndPrintedInBlocks) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kTable, out, err, /*table_block_rows=*/2);
  output.Add(Started({"db-1", "db-22"}));
  output.Add(Rows("db-1", {"TableName", "N"}, {{"AuditLog", "3"}}));
  // Nothing yet: one row waits for its block.
  EXPECT_EQ(out.str(), "");
  output.Add(Rows("db-1", {"TableName", "N"}, {{"X", "<null>"}}));
  // The block of two is out, aligned over its rows.
  EXPECT_EQ(out.str(),
            "DATABASE   TableName   N\n"
            "db-1       AuditLog    3\n"
            "db-1       X           NULL\n");
  output.Add(Summary("db-1", "OK", 2));
  output.Add(Rows("db-22", {"TableName", "N"}, {{"Memberships", "10"}}));
  output.Add(Summary("db-22", "OK", 1, 4));
  output.Finish();
  // The next block widens its columns; the header is not repeated.
  EXPECT_THAT(
      Lines(out.str()),
      ElementsAre("DATABASE   TableName   N", "db-1       AuditLog    3",
                  "db-1       X           NULL", "db-22      Memberships   10",
                  "", "DATABASE   RESULT   ROWS   LEFT OUT   ERROR",
                  "db-22      OK       1      4",
                  "2 databases: 2 ok; 3 rows (4 more left out by the "
                  "row limit); operation r-7"));
  EXPECT_TRUE(output.AllAnswered());
}

TEST(QueryOutputTest, TableRowsShowOnceTheStreamGoesQuiet) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kTable, out, err);
  const absl::Time start = absl::FromUnixSeconds(1'700'000'000);
  output.Add(Started({"fast", "slow"}), start);
  output.Add(Rows("fast", {"n"}, {{"1"}}), start);
  output.Add(Summary("fast", "OK", 1), start);
  output.Idle(start + absl::Milliseconds(100));
  EXPECT_EQ(out.str(), "");
  // Nothing more came for half a second: the answers so far are shown while
  // the slow database is waited for.
  output.Idle(start + absl::Milliseconds(500));
  EXPECT_EQ(out.str(), "DATABASE   n\nfast       1\n");
  output.Add(Rows("slow", {"n"}, {{"22"}}), start + absl::Seconds(3));
  output.Add(Summary("slow", "OK", 1), start + absl::Seconds(3));
  output.Finish();
  EXPECT_THAT(Lines(out.str()),
              ElementsAre("DATABASE   n", "fast       1", "slow       22", "",
                          "2 databases: 2 ok; 2 rows; operation r-7"));
}

TEST(QueryOutputTest, TableSummaryNamesEveryDatabaseThatDidNotAnswer) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kTable, out, err);
  output.Add(Started({"db-1", "db-2", "db-3", "db-4", "db-5"}));
  output.Add(Rows("db-1", {"n"}, {{"1"}}));
  output.Add(Summary("db-1", "OK", 1));
  output.Add(Summary("db-2", "PERMISSION_DENIED", 0, 0,
                     "cannot execute INSERT in a read-only transaction"));
  output.Add(Summary("db-3", "DEADLINE_EXCEEDED", 0, 0, "no answer within 5s"));
  output.Add(Summary("db-4", "UNAVAILABLE", 0, 0, "agent offline"));
  output.Finish();
  const std::string text = out.str();
  EXPECT_THAT(text,
              HasSubstr("db-2       PERMISSION_DENIED   0      0          "
                        "cannot execute INSERT"));
  EXPECT_THAT(text, HasSubstr("db-5       NO ANSWER"));
  EXPECT_THAT(text, HasSubstr("5 databases: 1 ok, 1 failed, 1 timed out, 1 "
                              "offline, 1 without an answer; 1 row; "
                              "operation r-7"));
  EXPECT_THAT(text, Not(HasSubstr("db-1       OK")));
  EXPECT_FALSE(output.AllAnswered());
}

TEST(QueryOutputTest, TableWithoutRowsSaysSoOnStderr) {
  std::ostringstream out, err;
  QueryOutput output(QueryFormat::kTable, out, err);
  output.Add(Started({"db-1"}));
  output.Add(Rows("db-1", {"n"}, {}));
  output.Add(Summary("db-1", "OK", 0));
  output.Finish();
  EXPECT_EQ(err.str(), "No rows.\n");
  EXPECT_EQ(out.str(), "1 database: 1 ok; 0 rows; operation r-7\n");
}

TEST(ParseQueryArgumentsTest, SplitsPairsAndKeepsCommasInValues) {
  auto parsed = ParseQueryArguments("Minutes=5,ConfigKey=Audit.RetentionDays");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed,
              UnorderedElementsAre(Pair("Minutes", "5"),
                                   Pair("ConfigKey", "Audit.RetentionDays")));
  parsed = ParseQueryArguments("Note=a,b, c,Other=x=y");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, UnorderedElementsAre(Pair("Note", "a,b, c"),
                                            Pair("Other", "x=y")));
  parsed = ParseQueryArguments("Empty=");
  ASSERT_TRUE(parsed.ok());
  EXPECT_THAT(*parsed, ElementsAre(Pair("Empty", "")));
  EXPECT_TRUE(ParseQueryArguments("")->empty());
  EXPECT_TRUE(IsCommandUsageError(ParseQueryArguments("novalue").status()));
  EXPECT_TRUE(IsCommandUsageError(ParseQueryArguments("A=1,A=2").status()));
}

TEST(ParseQueryFormatTest, KnowsTableCsvAndJson) {
  EXPECT_EQ(*ParseQueryFormat("table"), QueryFormat::kTable);
  EXPECT_EQ(*ParseQueryFormat("CSV"), QueryFormat::kCsv);
  EXPECT_EQ(*ParseQueryFormat("json"), QueryFormat::kJson);
  EXPECT_TRUE(IsCommandUsageError(ParseQueryFormat("xml").status()));
}

// The command line, up to where the server would be called.
int RunLine(const std::vector<std::string>& args, std::string* err_text) {
  std::ostringstream out, err;
  CtlContext context;
  context.out = &out;
  context.err = &err;
  const int code = RunCtl(args, context);
  *err_text = err.str();
  return code;
}

TEST(QueryCommandTest, UsageErrorsExitTwoBeforeAnyCall) {
  std::string err;
  EXPECT_EQ(RunLine({"query", "run", "RecentAuditCount"}, &err), kExitUsage);
  EXPECT_THAT(err, HasSubstr("--selector"));
  EXPECT_EQ(RunLine({"query", "run", "RecentAuditCount", "--all",
                     "--selector=env=prod"},
                    &err),
            kExitUsage);
  EXPECT_EQ(RunLine({"query", "run", "Q", "--all", "--format=xml"}, &err),
            kExitUsage);
  EXPECT_THAT(err, HasSubstr("table, json or csv"));
  EXPECT_EQ(RunLine({"query", "run", "Q", "--all", "--arg=oops"}, &err),
            kExitUsage);
  EXPECT_EQ(RunLine({"query", "run", "Q", "--all", "--row_limit=100001"}, &err),
            kExitUsage);
  EXPECT_EQ(RunLine({"query", "run"}, &err), kExitUsage);
}

TEST(QueryCommandTest, TimeoutIsKnownToBeGiven) {
  auto given = ParseCommandLine(
      Commands(), {"query", "run", "Q", "--all", "--timeout=5s"}, "");
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_TRUE(given->timeout_set);
  EXPECT_EQ(given->timeout, absl::Seconds(5));
  auto args = ParseCommandLine(
      Commands(), {"query", "run", "Q", "--all", "--arg=A=1", "--arg=B=2"}, "");
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_FALSE(args->timeout_set);
  EXPECT_EQ(args->Flag("arg"), "A=1,B=2");
}

}  // namespace
}  // namespace ecliptix::client::ctl
