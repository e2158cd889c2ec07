// The Ecliptix reference bundle applied by the real agent binary (local mode)
// to a fresh SQLite file and to the test PostgreSQL, then the runbook's
// post-deployment validation: the configuration value, SystemConfiguration
// populated, and audit rows written by the enhanced procedures when called.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tests/testing/query.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;

struct Engine {
  std::string url;
  std::string table_prefix;     // "dbo." on PostgreSQL.
  std::string ten_minutes_ago;  // The dialect's date arithmetic.
};

std::string BundleDir() {
  return testing::PlainRunfilesCopy("bundles/ecliptix", "bundle-ecliptix");
}

testing::CommandResult Agent(std::vector<std::string> args) {
  args.insert(args.begin(), RunfilePath("agent/ecliptix-agent"));
  auto result = RunCommand(args, absl::Seconds(300));
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : testing::CommandResult{-1, ""};
}

std::string Scalar(const std::string& url, const std::string& sql) {
  return testing::QueryScalar(url, sql);
}

void ApplyAndValidate(const Engine& engine) {
  const std::string bundle = BundleDir();
  const std::string database = absl::StrCat("--database=", engine.url);
  auto apply = Agent(
      {"apply", absl::StrCat("--bundle=", bundle), database, "--backup",
       absl::StrCat("--backup_dir=", std::getenv("TEST_TMPDIR"), "/backups")});
  ASSERT_EQ(apply.exit_code, 0) << apply.output;
  EXPECT_THAT(apply.output, HasSubstr("7 applied"));
  EXPECT_THAT(apply.output, HasSubstr("backup"));

  // The runbook's validation.
  auto value = Agent({"call", absl::StrCat("--bundle=", bundle), database,
                      "--operation=GetConfigValue",
                      "--arg=ConfigKey=Authentication.MaxFailedAttempts"});
  ASSERT_EQ(value.exit_code, 0) << value.output;
  EXPECT_THAT(value.output, HasSubstr("5"));
  int configured = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      Scalar(engine.url,
             absl::StrCat("SELECT COUNT(*) FROM ", engine.table_prefix,
                          "SystemConfiguration")),
      &configured));
  EXPECT_GE(configured, 7);

  // The enhanced procedures write audit rows when called.
  auto created =
      Agent({"call", absl::StrCat("--bundle=", bundle), database,
             "--operation=CreateMembership", "--arg=PhoneNumber=+15550100",
             "--arg=SecureKey=0123456789abcdef"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto login =
      Agent({"call", absl::StrCat("--bundle=", bundle), database,
             "--operation=LoginMembership", "--arg=PhoneNumber=+15550100",
             "--arg=SecureKey=wrong-key-123"});
  ASSERT_EQ(login.exit_code, 0) << login.output;
  int audited = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      Scalar(
          engine.url,
          absl::StrCat("SELECT COUNT(*) FROM ", engine.table_prefix,
                       "AuditLog WHERE CreatedAt > ", engine.ten_minutes_ago)),
      &audited));
  EXPECT_GE(audited, 2);
  EXPECT_EQ(Scalar(engine.url,
                   absl::StrCat("SELECT COUNT(*) FROM ", engine.table_prefix,
                                "AuditLog WHERE TableName = 'LoginAttempts'")),
            "1");

  // Bad input is refused by the procedure with a clear error, and nothing is
  // lost.
  auto bad = Agent({"call", absl::StrCat("--bundle=", bundle), database,
                    "--operation=SetConfigValue",
                    "--arg=ConfigKey=Authentication.MaxFailedAttempts",
                    "--arg=ConfigValue=many"});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_EQ(Scalar(engine.url,
                   absl::StrCat("SELECT ConfigValue FROM ", engine.table_prefix,
                                "SystemConfiguration WHERE ConfigKey = "
                                "'Authentication.MaxFailedAttempts'")),
            "5");

  // Re-applying is a no-op.
  auto again = Agent({"apply", absl::StrCat("--bundle=", bundle), database});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 applied, 7 skipped"));

  // Partial rollback of the procedures keeps the infrastructure.
  auto revert = Agent({"revert", absl::StrCat("--bundle=", bundle), database,
                       "--phase=procedures"});
  ASSERT_EQ(revert.exit_code, 0) << revert.output;
  auto still = Agent({"call", absl::StrCat("--bundle=", bundle), database,
                      "--operation=GetConfigValue",
                      "--arg=ConfigKey=Authentication.MaxFailedAttempts"});
  EXPECT_EQ(still.exit_code, 0) << still.output;
  auto gone =
      Agent({"call", absl::StrCat("--bundle=", bundle), database,
             "--operation=LoginMembership", "--arg=PhoneNumber=+15550100",
             "--arg=SecureKey=0123456789abcdef"});
  EXPECT_EQ(gone.exit_code, 1) << gone.output;
}

TEST(ReferenceBundleTest, ValidatesCleanly) {
  auto validate = RunCommand(
      {RunfilePath("client/ecliptixctl"), "bundle", "validate", BundleDir()});
  ASSERT_TRUE(validate.ok());
  EXPECT_EQ(validate->exit_code, 0) << validate->output;
  EXPECT_THAT(validate->output,
              HasSubstr("ecliptix-production-enhancements@1.0.0 is valid"));
}

TEST(ReferenceBundleTest, AppliesToSqlite) {
  ApplyAndValidate(
      {absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"), "/ecliptix.db"),
       "", "datetime('now', '-10 minutes')"});
}

TEST(ReferenceBundleTest, AppliesToPostgresql) {
  if (!testing::PostgresAdminUrl()) {
    GTEST_SKIP()
        << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test sets it)";
  }
  auto scratch = testing::CreateScratchDatabase("ecliptix_bundle");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  ApplyAndValidate({scratch->url, "dbo.", "now() - interval '10 minutes'"});
}

}  // namespace
}  // namespace ecliptix
