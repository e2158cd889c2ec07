#include "common/bundle/manifest_rules.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix::bundle {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ConfigKeySpec IntKey() {
  v1::ConfigKeySpec key;
  key.set_key("Authentication.MaxFailedAttempts");
  key.set_type("int");
  key.set_default_value("5");
  key.set_min_value("1");
  key.set_max_value("100");
  return key;
}

TEST(ManifestRulesTest, ReferenceBundleDeclaresConfigJobsAndQueries) {
  absl::StatusOr<Bundle> bundle = Bundle::LoadDirectory(
      testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix"));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  const v1::BundleManifest& manifest = bundle->manifest();
  EXPECT_THAT(DayTwoProblems(manifest), IsEmpty());
  // The runbook's seven keys, with its values as defaults.
  const std::vector<std::pair<std::string, std::string>> runbook = {
      {"Authentication.MaxFailedAttempts", "5"},
      {"Authentication.LockoutDurationMinutes", "15"},
      {"OTP.MaxAttempts", "3"},
      {"Database.CleanupBatchSize", "1000"},
      {"Monitoring.EnableMetrics", "1"},
      {"Audit.RetentionDays", "365"},
      {"Audit.LogValidations", "0"}};
  for (const auto& [key, value] : runbook) {
    const v1::ConfigKeySpec* spec = FindConfigKey(manifest, key);
    ASSERT_NE(spec, nullptr) << key;
    EXPECT_EQ(spec->default_value(), value) << key;
  }
  ASSERT_NE(bundle->FindOperation("CleanupAuditLogs"), nullptr);
  EXPECT_TRUE(bundle->FindOperation("CleanupAuditLogs")->has_batch());
  EXPECT_TRUE(bundle->FindOperation("FailedLogins24h")->read_only());
  EXPECT_FALSE(bundle->FindOperation("SetConfigValue")->read_only());
  EXPECT_EQ(manifest.jobs_size(), 3);
}

TEST(ManifestRulesTest, ConfigValueTypeAndRange) {
  const v1::ConfigKeySpec key = IntKey();
  EXPECT_TRUE(CheckConfigValue(key, "7").ok());
  absl::Status wrong_type = CheckConfigValue(key, "many");
  EXPECT_EQ(wrong_type.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong_type.message(),
            "Authentication.MaxFailedAttempts takes an int; \"many\" is not "
            "one");
  absl::Status out_of_range = CheckConfigValue(key, "500");
  EXPECT_EQ(out_of_range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out_of_range.message(),
            "Authentication.MaxFailedAttempts must be between 1 and 100; 500 "
            "is out of range");
  EXPECT_FALSE(CheckConfigValue(key, "0").ok());

  v1::ConfigKeySpec flag;
  flag.set_key("Monitoring.EnableMetrics");
  flag.set_type("bool");
  EXPECT_TRUE(CheckConfigValue(flag, "0").ok());
  EXPECT_TRUE(CheckConfigValue(flag, "1").ok());
  EXPECT_THAT(std::string(CheckConfigValue(flag, "true").message()),
              HasSubstr("written 0 or 1"));
  EXPECT_FALSE(CheckConfigValue(flag, "yes please").ok());

  v1::ConfigKeySpec mode;
  mode.set_key("Mode");
  mode.set_type("text");
  mode.add_allowed_values("fast");
  mode.add_allowed_values("safe");
  EXPECT_TRUE(CheckConfigValue(mode, "safe").ok());
  EXPECT_THAT(std::string(CheckConfigValue(mode, "wild").message()),
              HasSubstr("must be one of fast, safe"));
}

TEST(ManifestRulesTest, Arguments) {
  v1::Operation operation;
  operation.set_name("CleanupAuditLogs");
  v1::OperationParameter* days = operation.add_parameters();
  days->set_name("RetentionDays");
  days->set_type("int");
  v1::OperationParameter* batch = operation.add_parameters();
  batch->set_name("BatchSize");
  batch->set_type("int");
  batch->set_default_value("1000");
  EXPECT_TRUE(CheckArguments(operation, {{"RetentionDays", "30"}}).ok());
  EXPECT_EQ(CheckArguments(operation, {}).message(),
            "operation CleanupAuditLogs needs parameter \"RetentionDays\" "
            "(int)");
  EXPECT_EQ(CheckArguments(operation, {{"RetentionDays", "30"}, {"Days", "1"}})
                .message(),
            "operation CleanupAuditLogs has no parameter \"Days\" (it takes "
            "RetentionDays, BatchSize)");
  const absl::Status typed =
      CheckArguments(operation, {{"RetentionDays", "secret-ish"}});
  EXPECT_EQ(typed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(typed.message()),
              ::testing::Not(HasSubstr("secret")));
}

TEST(ManifestRulesTest, DayTwoProblemsOfABadManifest) {
  v1::BundleManifest manifest;
  manifest.add_dialects(v1::DIALECT_SQLITE);
  v1::Operation* writer = manifest.add_operations();
  writer->set_name("Sneaky");
  writer->set_read_only(true);
  writer->mutable_sql()->set_sqlite("DELETE FROM AuditLog");
  v1::Operation* two = manifest.add_operations();
  two->set_name("Two");
  two->set_read_only(true);
  two->mutable_sql()->set_sqlite("SELECT 1; DELETE FROM AuditLog");
  v1::Operation* quoted = manifest.add_operations();
  quoted->set_name("Quoted");
  quoted->set_read_only(true);
  quoted->mutable_sql()->set_sqlite("SELECT ';' AS x;");
  v1::Operation* cleanup = manifest.add_operations();
  cleanup->set_name("Cleanup");
  cleanup->mutable_batch()->set_rows_done_column("RowsDeleted");
  *manifest.mutable_config()->add_keys() = IntKey();
  v1::ConfigKeySpec* bad_default = manifest.mutable_config()->add_keys();
  bad_default->set_key("Bad");
  bad_default->set_type("int");
  bad_default->set_default_value("0");
  bad_default->set_min_value("1");
  v1::JobTemplate* job = manifest.add_jobs();
  job->set_name("nightly");
  job->set_operation("Missing");

  const std::string problems = absl::StrJoin(DayTwoProblems(manifest), "\n");
  EXPECT_THAT(problems, HasSubstr("operation \"Sneaky\" is read_only but its "
                                  "DIALECT_SQLITE SQL is not one SELECT"));
  EXPECT_THAT(problems, HasSubstr("operation \"Two\" is read_only"));
  EXPECT_THAT(problems, ::testing::Not(HasSubstr("\"Quoted\"")));
  EXPECT_THAT(problems, HasSubstr("operation \"Cleanup\": batch needs"));
  EXPECT_THAT(problems, HasSubstr("config: get_operation \"\" is not an "
                                  "operation of the bundle"));
  EXPECT_THAT(problems, HasSubstr("config key \"Bad\": default_value: Bad "
                                  "must be at least 1"));
  EXPECT_THAT(problems, HasSubstr("job \"nightly\" needs a schedule"));
  EXPECT_THAT(problems, HasSubstr("job \"nightly\": operation \"Missing\""));
}

}  // namespace
}  // namespace ecliptix::bundle
