// Every call and query of the runbook's Validation, Configuration, Monitoring,
// Troubleshooting and Emergency rollback sections, run as written (translated
// per engine by the bundle's operations) through `ecliptix-agent call`, the
// real binary, on a SQLite file and on the test PostgreSQL after
// `ecliptix-agent apply` deployed the reference bundle. Each snippet must
// answer, with a sensible value where the runbook implies one.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;

std::string BundleDir() {
  return testing::PlainRunfilesCopy("bundles/ecliptix",
                                    "bundle-ecliptix-snippets");
}

// What `ecliptix-agent call` printed: the header, the rows (cells are
// separated by at least two spaces) and the exit code.
struct Answer {
  int exit_code = -1;
  std::string output;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;

  // The cell of `column` (PostgreSQL answers its names in lower case) in row
  // `row`; "<missing>" when there is none.
  std::string Cell(const std::string& column, size_t row = 0) const {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (absl::EqualsIgnoreCase(columns[i], column) && row < rows.size() &&
          i < rows[row].size()) {
        return rows[row][i];
      }
    }
    return "<missing>";
  }
};

std::vector<std::string> Cells(absl::string_view line) {
  std::vector<std::string> cells(1);
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == ' ' && i + 1 < line.size() && line[i + 1] == ' ') {
      while (i + 1 < line.size() && line[i + 1] == ' ') ++i;
      cells.emplace_back();
    } else {
      cells.back().push_back(line[i]);
    }
  }
  return cells;
}

Answer Call(const std::string& url, const std::string& operation,
            const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RunfilePath("agent/ecliptix-agent"), "call",
                                   absl::StrCat("--bundle=", BundleDir()),
                                   absl::StrCat("--database=", url),
                                   absl::StrCat("--operation=", operation)};
  for (const std::string& arg : args)
    argv.push_back(absl::StrCat("--arg=", arg));
  Answer answer;
  auto result = RunCommand(argv, absl::Seconds(120));
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return answer;
  answer.exit_code = result->exit_code;
  answer.output = result->output;
  std::vector<std::string> lines = absl::StrSplit(result->output, '\n');
  size_t i = 0;
  // The table starts at the first line that is not a log line.
  while (i < lines.size() && (lines[i].empty() || lines[i][0] == '[')) ++i;
  if (i < lines.size() && !absl::StartsWith(lines[i], "(") &&
      !absl::StrContains(lines[i], "affected")) {
    answer.columns = Cells(lines[i++]);
    for (; i < lines.size() && !absl::StartsWith(lines[i], "(") &&
           !lines[i].empty();
         ++i) {
      answer.rows.push_back(Cells(lines[i]));
    }
  }
  return answer;
}

// One snippet of the runbook: the operation and arguments it maps to, and what
// a healthy deployment answers.
struct Snippet {
  const char* section;  // The runbook's section.
  const char* runbook;  // The runbook's line.
  std::string operation;
  std::vector<std::string> args;
  std::string column;  // Checked in the first row when `expect` is not empty.
  std::string expect;  // Exact value; "<n>" for any integer, "<rows>" for at
                       // least one row.
};

void Check(const std::string& url, const Snippet& snippet) {
  SCOPED_TRACE(absl::StrCat(snippet.section, ": ", snippet.runbook));
  Answer answer = Call(url, snippet.operation, snippet.args);
  ASSERT_EQ(answer.exit_code, 0) << answer.output;
  if (!snippet.column.empty()) {
    EXPECT_TRUE(std::any_of(answer.columns.begin(), answer.columns.end(),
                            [&](const std::string& column) {
                              return absl::EqualsIgnoreCase(column,
                                                            snippet.column);
                            }))
        << answer.output;
  }
  if (snippet.expect == "<rows>") {
    EXPECT_FALSE(answer.rows.empty()) << answer.output;
  } else if (snippet.expect == "<n>") {
    long long n = 0;
    EXPECT_TRUE(absl::SimpleAtoi(answer.Cell(snippet.column), &n))
        << answer.output;
  } else if (!snippet.expect.empty()) {
    EXPECT_EQ(answer.Cell(snippet.column), snippet.expect) << answer.output;
  }
}

void Exec(const std::string& url, const std::string& statement) {
  auto parsed = sql::ParseDatabaseUrl(url);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto session = sql::OpenSession(*parsed);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::Status status = sql::Guard("exec", [&] { **session << statement; });
  ASSERT_TRUE(status.ok()) << status;
}

constexpr char kValidation[] = "Step 4: Post-Deployment Validation";
constexpr char kConfiguration[] = "Configuration";
constexpr char kPerformance[] = "Performance Monitoring Queries";
constexpr char kSecurity[] = "Security Monitoring Queries";
constexpr char kMaintenance[] = "Automated Maintenance";
constexpr char kIssue1[] = "Troubleshooting, Issue 1";
constexpr char kIssue2[] = "Troubleshooting, Issue 2";
constexpr char kIssue3[] = "Troubleshooting, Issue 3";
constexpr char kRollback[] = "Emergency Rollback";

std::vector<Snippet> ValidationAndConfiguration() {
  auto set = [](const char* key, const char* value) {
    return Snippet{
        kConfiguration,
        "EXEC dbo.SetConfigValue '<key>', '<value>'",
        "SetConfigValue",
        {absl::StrCat("ConfigKey=", key), absl::StrCat("ConfigValue=", value)},
        "ConfigValue",
        value};
  };
  return {
      {kValidation,
       "EXEC dbo.GetConfigValue 'Authentication.MaxFailedAttempts'",
       "GetConfigValue",
       {"ConfigKey=Authentication.MaxFailedAttempts"},
       "ConfigValue",
       "5"},
      {kValidation,
       "SELECT COUNT(*) FROM dbo.SystemConfiguration",
       "ConfigurationCount",
       {},
       "ConfigurationCount",
       "9"},
      {kValidation,
       "SELECT COUNT(*) FROM dbo.AuditLog WHERE CreatedAt > DATEADD(minute, "
       "-10, GETUTCDATE())",
       "RecentAuditCount",
       {},
       "RecentAuditCount",
       "<n>"},
      set("Authentication.MaxFailedAttempts", "5"),
      set("Authentication.LockoutDurationMinutes", "15"),
      set("OTP.MaxAttempts", "3"),
      set("Database.CleanupBatchSize", "1000"),
      set("Monitoring.EnableMetrics", "1"),
      set("Audit.RetentionDays", "365"),
      set("Audit.LogValidations", "0"),
  };
}

std::vector<Snippet> MonitoringAndTroubleshooting(const std::string& phone) {
  return {
      {kPerformance,
       "SELECT TOP 10 ProcedureName, AVG(ExecutionTimeMs) ... FROM "
       "dbo.PerformanceMetrics (24 hours)",
       "ProcedurePerformance24h",
       {},
       "ProcedureName",
       "<rows>"},
      {kPerformance,
       "SELECT ProcedureName, COUNT(*) as ErrorCount ... FROM dbo.ErrorLog (24 "
       "hours)",
       "ErrorRates24h",
       {},
       "",
       ""},
      {kSecurity,
       "SELECT RecordId as PhoneNumber, COUNT(*) as FailedAttempts ... "
       "LOGIN_BLOCKED (24 hours)",
       "FailedLogins24h",
       {},
       "PhoneNumber",
       phone},
      {kSecurity,
       "SELECT * FROM dbo.AuditLog WHERE OperationType = "
       "'SUSPICIOUS_ACTIVITY' (24 hours)",
       "SuspiciousActivity24h",
       {},
       "RecordId",
       phone},
      {kMaintenance,
       "EXEC dbo.CleanupAuditLogs @RetentionDays = 365, @BatchSize = 5000",
       "CleanupAuditLogs",
       {"RetentionDays=365", "BatchSize=5000"},
       "RowsRemaining",
       "0"},
      {kMaintenance,
       "EXEC dbo.CleanupExpiredContexts @BatchSize = 1000, @OlderThanHours = "
       "48",
       "CleanupExpiredContexts",
       {"BatchSize=1000", "OlderThanHours=48"},
       "RowsRemaining",
       "0"},
      {kMaintenance,
       "SELECT * FROM dbo.PerformanceMetrics WHERE CreatedAt > DATEADD(day, "
       "-7, GETUTCDATE()) AND ExecutionTimeMs > 1000",
       "SlowProcedures7d",
       {},
       "",
       ""},
      {kIssue1,
       "SELECT * FROM dbo.SystemConfiguration WHERE ConfigKey = "
       "'Authentication.MaxFailedAttempts'",
       "ConfigKeyDiagnosis",
       {"ConfigKey=Authentication.MaxFailedAttempts"},
       "ConfigValue",
       "5"},
      {kIssue1,
       "IF NOT EXISTS (...) INSERT INTO dbo.SystemConfiguration ... VALUES "
       "('Authentication.MaxFailedAttempts', '5', 'int', ...)",
       "EnsureConfigKey",
       {"ConfigKey=Authentication.MaxFailedAttempts", "ConfigValue=5",
        "DataType=int", "Description=Maximum failed attempts",
        "Category=Security"},
       "Inserted",
       "0"},
      {kIssue2,
       "SELECT TableName, COUNT(*) as RecordCount FROM dbo.AuditLog GROUP BY "
       "TableName",
       "AuditLogByTable",
       {},
       "TableName",
       "LoginAttempts"},
      {kIssue2,
       "EXEC dbo.CleanupAuditLogs @RetentionDays = 30",
       "CleanupAuditLogs",
       {"RetentionDays=30"},
       "RowsDeleted",
       "0"},
      {kIssue3,
       "EXEC dbo.SetConfigValue 'Audit.LogValidations', '0'",
       "SetConfigValue",
       {"ConfigKey=Audit.LogValidations", "ConfigValue=0"},
       "ConfigValue",
       "0"},
      {kIssue3,
       "EXEC dbo.SetConfigValue 'Monitoring.EnableMetrics', '0'",
       "SetConfigValue",
       {"ConfigKey=Monitoring.EnableMetrics", "ConfigValue=0"},
       "ConfigValue",
       "0"},
      {kIssue3,
       "EXEC dbo.CleanupAuditLogs @RetentionDays = 7",
       "CleanupAuditLogs",
       {"RetentionDays=7"},
       "RowsDeleted",
       "0"},
      {kRollback,
       "EXEC dbo.SetConfigValue 'Monitoring.EnableMetrics', '0'",
       "SetConfigValue",
       {"ConfigKey=Monitoring.EnableMetrics", "ConfigValue=0"},
       "ConfigValue",
       "0"},
      {kRollback,
       "EXEC dbo.SetConfigValue 'Audit.LogValidations', '0'",
       "SetConfigValue",
       {"ConfigKey=Audit.LogValidations", "ConfigValue=0"},
       "ConfigValue",
       "0"},
      {kRollback,
       "SELECT COUNT(*) FROM dbo.AuthenticationContexts WHERE IsActive = 1",
       "ActiveAuthenticationContexts",
       {},
       "ActiveContexts",
       "1"},
  };
}

void RunTheRunbook(const std::string& url, const std::string& table_prefix) {
  auto apply = RunCommand({RunfilePath("agent/ecliptix-agent"), "apply",
                           absl::StrCat("--bundle=", BundleDir()),
                           absl::StrCat("--database=", url)},
                          absl::Seconds(300));
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_EQ(apply->exit_code, 0) << apply->output;

  for (const Snippet& snippet : ValidationAndConfiguration()) {
    Check(url, snippet);
  }

  // Traffic for the monitoring queries: a member who logs in, then is locked
  // out after Authentication.MaxFailedAttempts wrong keys, with a session.
  const std::string phone = "+15550100";
  Answer member = Call(url, "CreateMembership",
                       {"PhoneNumber=" + phone, "SecureKey=0123456789abcdef"});
  ASSERT_EQ(member.exit_code, 0) << member.output;
  ASSERT_EQ(Call(url, "CreateAuthenticationContext",
                 {"MembershipId=" + member.Cell("MembershipId"),
                  "ValidForMinutes=60"})
                .exit_code,
            0);
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(Call(url, "LoginMembership",
                   {"PhoneNumber=" + phone, "SecureKey=wrong-key-123"})
                  .exit_code,
              0);
  }

  for (const Snippet& snippet : MonitoringAndTroubleshooting(phone)) {
    Check(url, snippet);
  }

  // Issue 1 as the runbook describes it: the key is missing, the diagnosis
  // finds nothing, the solution puts it back and GetConfigValue answers again.
  Exec(url, absl::StrCat("DELETE FROM ", table_prefix,
                         "SystemConfiguration WHERE ConfigKey = "
                         "'Authentication.MaxFailedAttempts'"));
  Answer missing = Call(url, "ConfigKeyDiagnosis",
                        {"ConfigKey=Authentication.MaxFailedAttempts"});
  ASSERT_EQ(missing.exit_code, 0) << missing.output;
  EXPECT_TRUE(missing.rows.empty()) << missing.output;
  Check(url, {kIssue1,
              "the solution on a database missing the key",
              "EnsureConfigKey",
              {"ConfigKey=Authentication.MaxFailedAttempts", "ConfigValue=5",
               "DataType=int", "Description=Maximum failed attempts",
               "Category=Security"},
              "Inserted",
              "1"});
  Check(url, {kIssue1,
              "EXEC dbo.GetConfigValue after the solution",
              "GetConfigValue",
              {"ConfigKey=Authentication.MaxFailedAttempts"},
              "ConfigValue",
              "5"});
  Check(url, {kIssue1,
              "the inserted key is typed and categorised",
              "ConfigKeyDiagnosis",
              {"ConfigKey=Authentication.MaxFailedAttempts"},
              "Category",
              "Security"});

  // A parameter without default is still required.
  Answer incomplete = Call(url, "CleanupAuditLogs", {"BatchSize=10"});
  EXPECT_EQ(incomplete.exit_code, 2) << incomplete.output;
  EXPECT_THAT(incomplete.output, HasSubstr("RetentionDays"));
}

TEST(RunbookSnippetsTest, Sqlite) {
  RunTheRunbook(
      absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"), "/snippets.db"),
      "");
}

TEST(RunbookSnippetsTest, Postgresql) {
  if (!testing::PostgresAdminUrl()) {
    GTEST_SKIP()
        << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test sets it)";
  }
  auto scratch = testing::CreateScratchDatabase("ecliptix_snippets");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  RunTheRunbook(scratch->url, "dbo.");
}

}  // namespace
}  // namespace ecliptix
