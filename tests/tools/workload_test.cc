// The workload driver (tools/workload) on databases where the executor
// deployed the reference bundle: a SQLite file, and a scratch database on the
// test PostgreSQL when ECLIPTIX_TEST_POSTGRES_URL is set. Runs are a fixed
// number of calls as fast as they go; what they leave is checked with SQL.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "agent/executor/executor.h"
#include "agent/target/open_target.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tests/testing/query.h"
#include "tools/workload/workload_driver.h"
#include "tools/workload/workload_flags.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;
using workload::WorkloadDriver;
using workload::WorkloadOptions;
using workload::WorkloadReport;

std::string BundleDir() {
  return testing::PlainRunfilesCopy("bundles/ecliptix",
                                    "bundle-ecliptix-workload");
}

// kOdbc: the test PostgreSQL through psqlODBC (the driver that stands in for
// SQL Server's in tests), deployed through libpq.
enum class Engine { kSqlite, kPostgresql, kOdbc };

// Databases with the reference bundle and runs of the driver on them; SQLite
// unless a subclass says otherwise.
class WorkloadFixture : public ::testing::Test {
 protected:
  bool postgresql() const { return engine_ != Engine::kSqlite; }

  Engine engine_ = Engine::kSqlite;

  // A new, empty database: the URL the workload gets.
  std::string NewDatabase() {
    if (postgresql()) {
      auto scratch = testing::CreateScratchDatabase("workload");
      EXPECT_TRUE(scratch.ok()) << scratch.status();
      if (!scratch.ok()) return "";
      if (engine_ == Engine::kOdbc) {
        libpq_urls_[scratch->odbc_url] = scratch->url;
        return scratch->odbc_url;
      }
      return scratch->url;
    }
    // Parameterized tests are named "Name/Sqlite".
    const std::string test = absl::StrReplaceAll(
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        {{"/", "-"}});
    const std::string path =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/workload-", test, "-",
                     ++databases_, ".db");
    std::filesystem::remove(path);
    // An empty file: the workload refuses to create one.
    EXPECT_EQ(testing::QueryScalar(absl::StrCat("sqlite://", path),
                                   "SELECT COUNT(*) FROM sqlite_master"),
              "0");
    return absl::StrCat("sqlite://", path);
  }

  // A new database with every phase of the reference bundle applied.
  std::string NewDeployedDatabase() {
    const std::string url = NewDatabase();
    auto target = agent::OpenTarget(Libpq(url));
    EXPECT_TRUE(target.ok()) << target.status();
    if (!target.ok()) return url;
    auto bundle = bundle::Bundle::LoadDirectory(BundleDir());
    EXPECT_TRUE(bundle.ok()) << bundle.status();
    if (!bundle.ok()) return url;
    agent::Executor executor(target->get(), agent::ExecutorOptions{});
    for (const auto& phase : bundle->manifest().phases()) {
      absl::Status status =
          executor.RunPhase(*bundle, phase.name(), /*backup_first=*/false,
                            [](const fleet::v1::DeploymentEvent&) {});
      EXPECT_TRUE(status.ok()) << phase.name() << ": " << status;
    }
    return url;
  }

  WorkloadOptions Options(std::vector<std::string> urls) const {
    WorkloadOptions options;
    options.database_urls = std::move(urls);
    options.bundle_dir = BundleDir();
    options.rate = 0;
    options.seed = 42;
    options.pool_size = 10;
    options.progress_interval = absl::Hours(1);
    return options;
  }

  WorkloadReport Run(const WorkloadOptions& options) {
    auto driver = WorkloadDriver::Create(options);
    EXPECT_TRUE(driver.ok()) << driver.status();
    if (!driver.ok()) return WorkloadReport();
    return (*driver)->Run(nullptr);
  }

  // COUNT(*) of `table` (without schema) where `where` holds.
  int64_t Count(const std::string& url, const std::string& table,
                const std::string& where = "1 = 1") {
    const std::string answer = testing::QueryScalar(
        Libpq(url),
        absl::StrCat("SELECT COUNT(*) FROM ", postgresql() ? "dbo." : "", table,
                     " WHERE ", where));
    int64_t count = -1;
    EXPECT_TRUE(absl::SimpleAtoi(answer, &count)) << table << ": " << answer;
    return count;
  }

 private:
  // The libpq URL of the same database, for what the test itself does.
  std::string Libpq(const std::string& url) const {
    auto it = libpq_urls_.find(url);
    return it == libpq_urls_.end() ? url : it->second;
  }

  int databases_ = 0;
  std::map<std::string, std::string> libpq_urls_;
};

// The same on SQLite, PostgreSQL and PostgreSQL through ODBC.
class WorkloadTest : public WorkloadFixture,
                     public ::testing::WithParamInterface<Engine> {
 protected:
  void SetUp() override {
    engine_ = GetParam();
    if (postgresql() && !testing::PostgresAdminUrl()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set";
    }
  }
};

TEST_P(WorkloadTest, FillsTheRunbookTablesAndCountsFailuresOnPurpose) {
  const std::string url = NewDeployedDatabase();
  WorkloadOptions options = Options({url});
  options.max_calls = 600;
  options.error_percent = 5;
  options.failed_login_percent = 30;
  const WorkloadReport report = Run(options);
  const workload::OperationStats total = report.Total();

  EXPECT_EQ(total.calls, 600);
  EXPECT_GT(total.failed_on_purpose, 0);
  EXPECT_EQ(total.failed_unexpectedly, 0)
      << absl::StrJoin(report.unexpected_errors, "\n");
  EXPECT_EQ(total.calls, total.succeeded + total.failed_on_purpose +
                             total.failed_unexpectedly);
  EXPECT_GE(report.operations.at("CreateMembership").succeeded,
            options.pool_size);

  // What the runbook's monitoring looks at.
  const std::string login = "TableName = 'LoginAttempts' AND OperationType = ";
  EXPECT_GT(Count(url, "AuditLog", login + "'LOGIN_SUCCESS'"), 0);
  EXPECT_GT(Count(url, "AuditLog", login + "'LOGIN_FAILED'"), 0);
  EXPECT_GT(Count(url, "AuditLog", login + "'LOGIN_BLOCKED'"), 0);
  EXPECT_GT(Count(url, "AuditLog", "OperationType = 'SUSPICIOUS_ACTIVITY'"), 0);
  // Each LOCKED_OUT answer is one LOGIN_BLOCKED row.
  const auto& logins = report.operations.at("LoginMembership").outcomes;
  EXPECT_EQ(Count(url, "AuditLog", login + "'LOGIN_BLOCKED'"),
            logins.count("LOCKED_OUT") ? logins.at("LOCKED_OUT") : 0);
  EXPECT_GE(Count(url, "Memberships"), options.pool_size);
  EXPECT_GT(Count(url, "AuthenticationContexts"), 0);
  EXPECT_GT(Count(url, "AuthenticationContexts", "IsActive = 0"), 0);
  EXPECT_GT(Count(url, "VerificationFlows"), 0);
  EXPECT_GT(Count(url, "VerificationFlows", "Status = 'verified'"), 0);
  EXPECT_GT(Count(url, "PerformanceMetrics"), 0);
  // One ErrorLog row per failed call, as the application would write.
  EXPECT_EQ(Count(url, "ErrorLog"), total.failed_on_purpose);
  // The database's message, without what the drivers put in front.
  EXPECT_EQ(Count(url, "ErrorLog",
                  "ErrorMessage LIKE 'Invalid %' OR "
                  "ErrorMessage LIKE 'Membership not found%' OR "
                  "ErrorMessage LIKE 'Verification flow not found%' OR "
                  "ErrorMessage LIKE 'A membership with this phone number "
                  "already exists%'"),
            total.failed_on_purpose);
}

TEST_P(WorkloadTest, WithoutErrorsOrFailedLoginsNothingFails) {
  const std::string url = NewDeployedDatabase();
  WorkloadOptions options = Options({url});
  options.max_calls = 300;
  options.error_percent = 0;
  options.failed_login_percent = 0;
  const WorkloadReport report = Run(options);
  const workload::OperationStats total = report.Total();

  EXPECT_EQ(total.calls, 300);
  EXPECT_EQ(total.failed_on_purpose, 0);
  EXPECT_EQ(total.failed_unexpectedly, 0)
      << absl::StrJoin(report.unexpected_errors, "\n");
  EXPECT_GT(Count(url, "AuditLog",
                  "TableName = 'LoginAttempts' AND OperationType = "
                  "'LOGIN_SUCCESS'"),
            0);
  EXPECT_EQ(Count(url, "AuditLog", "OperationType = 'LOGIN_BLOCKED'"), 0);
  EXPECT_EQ(Count(url, "ErrorLog"), 0);
}

TEST_P(WorkloadTest, RefusesADatabaseWithoutTheBundle) {
  const std::string url = NewDatabase();
  auto driver = WorkloadDriver::Create(Options({url}));
  ASSERT_FALSE(driver.ok());
  EXPECT_EQ(driver.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(driver.status().message(), HasSubstr("database "));
  EXPECT_THAT(driver.status().message(), HasSubstr("is not deployed"));
  // psqlODBC cannot run the detect queries: the schema history (empty) says
  // which steps are missing instead of their objects.
  EXPECT_THAT(
      driver.status().message(),
      HasSubstr(engine_ == Engine::kOdbc ? "step baseline/ecliptix-schema"
                                         : "Memberships"));
  EXPECT_THAT(driver.status().message(), HasSubstr("ecliptix-agent apply"));
}

INSTANTIATE_TEST_SUITE_P(Engines, WorkloadTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kOdbc),
                         [](const auto& info) {
                           switch (info.param) {
                             case Engine::kSqlite:
                               return std::string("Sqlite");
                             case Engine::kPostgresql:
                               return std::string("Postgresql");
                             default:
                               return std::string("Odbc");
                           }
                         });

// SQLite only from here: what does not depend on the engine.
using WorkloadSqliteTest = WorkloadFixture;

TEST_F(WorkloadSqliteTest, SplitsTheCallsBetweenDatabases) {
  const std::string first = NewDeployedDatabase();
  const std::string second = NewDeployedDatabase();
  WorkloadOptions options = Options({first, second});
  options.max_calls = 201;
  const WorkloadReport report = Run(options);
  EXPECT_EQ(report.Total().calls, 201);
  EXPECT_EQ(report.Total().failed_unexpectedly, 0)
      << absl::StrJoin(report.unexpected_errors, "\n");
  ASSERT_EQ(report.calls_by_database.size(), 2u);
  EXPECT_EQ(report.calls_by_database[0].second, 101);
  EXPECT_EQ(report.calls_by_database[1].second, 100);
  EXPECT_GE(Count(first, "Memberships"), options.pool_size);
  EXPECT_GE(Count(second, "Memberships"), options.pool_size);
}

// The databases' answers steer the choices (a verified flow is not completed
// again), so two runs agree while no short-lived OTP (30 s) or context
// (1 min) expires during one: a few hundred calls take about a second.
TEST_F(WorkloadSqliteTest, TheSeedReproducesTheMix) {
  WorkloadOptions options = Options({NewDeployedDatabase()});
  options.max_calls = 250;
  options.error_percent = 10;
  options.failed_login_percent = 20;
  const WorkloadReport first = Run(options);
  options.database_urls = {NewDeployedDatabase()};
  const WorkloadReport second = Run(options);
  ASSERT_EQ(first.operations.size(), second.operations.size());
  for (const auto& [name, stats] : first.operations) {
    SCOPED_TRACE(name);
    ASSERT_EQ(second.operations.count(name), 1u);
    const workload::OperationStats& again = second.operations.at(name);
    EXPECT_EQ(stats.calls, again.calls);
    EXPECT_EQ(stats.failed_on_purpose, again.failed_on_purpose);
    EXPECT_EQ(stats.outcomes, again.outcomes);
  }
}

TEST_F(WorkloadSqliteTest, TheMixDecidesWhatIsCalled) {
  WorkloadOptions options = Options({NewDeployedDatabase()});
  options.max_calls = 60;
  auto mix = workload::ParseMix("loginmembership=1");
  ASSERT_TRUE(mix.ok()) << mix.status();
  options.mix = *mix;
  const WorkloadReport report = Run(options);
  // The pool first, then logins only.
  EXPECT_EQ(report.operations.at("CreateMembership").calls, options.pool_size);
  EXPECT_EQ(report.operations.at("LoginMembership").calls,
            60 - options.pool_size);
  EXPECT_EQ(report.operations.size(), 2u);
}

TEST_F(WorkloadSqliteTest, StopEndsTheRun) {
  WorkloadOptions options = Options({NewDeployedDatabase()});
  auto driver = WorkloadDriver::Create(options);
  ASSERT_TRUE(driver.ok()) << driver.status();
  // No limit: only Stop() ends it.
  (*driver)->Stop();
  EXPECT_EQ((*driver)->Run(nullptr).Total().calls, 0);
}

TEST_F(WorkloadSqliteTest, RefusesAMissingFile) {
  auto driver = WorkloadDriver::Create(Options({absl::StrCat(
      "sqlite://", std::getenv("TEST_TMPDIR"), "/no-such-database.db")}));
  ASSERT_FALSE(driver.ok());
  EXPECT_EQ(driver.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(driver.status().message(), HasSubstr("no-such-database.db"));
  EXPECT_FALSE(std::filesystem::exists(
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/no-such-database.db")));
}

TEST(WorkloadMixTest, ParsesWeights) {
  auto mix = workload::ParseMix("LoginMembership=3, validatephonenumber=1.5");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_EQ(mix->at("LoginMembership"), 3);
  EXPECT_EQ(mix->at("ValidatePhoneNumber"), 1.5);
  EXPECT_EQ(mix->at("CreateMembership"), 0);
  EXPECT_FALSE(workload::ParseMix("Login=1").ok());
  EXPECT_FALSE(workload::ParseMix("LoginMembership=-1").ok());
  EXPECT_FALSE(workload::ParseMix("LoginMembership").ok());
  EXPECT_FALSE(workload::ParseMix("LoginMembership=0").ok());
}

// argv for ParseCommandLine.
int Parse(std::vector<std::string> args, workload::CommandLine* parsed,
          std::string* error) {
  args.insert(args.begin(), "workload");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  const int code = workload::ParseCommandLine(static_cast<int>(argv.size()),
                                              argv.data(), parsed, out, err);
  std::rewind(err);
  char buffer[4096] = {};
  const size_t read = std::fread(buffer, 1, sizeof(buffer) - 1, err);
  error->assign(buffer, read);
  std::fclose(out);
  std::fclose(err);
  return code;
}

TEST(WorkloadCommandLineTest, TakesTheFlags) {
  workload::CommandLine parsed;
  std::string error;
  ASSERT_EQ(Parse({"--database=sqlite:///tmp/a.db", "--database",
                   "sqlite:///tmp/b.db", "--rate=50", "--duration=30s",
                   "--seed=7", "--mix=LoginMembership=1", "--error_percent=2.5",
                   "--failed_login_percent=20", "--no_error_log"},
                  &parsed, &error),
            -1)
      << error;
  const WorkloadOptions& options = parsed.options;
  EXPECT_EQ(
      options.database_urls,
      (std::vector<std::string>{"sqlite:///tmp/a.db", "sqlite:///tmp/b.db"}));
  EXPECT_EQ(options.rate, 50);
  EXPECT_EQ(options.duration, absl::Seconds(30));
  EXPECT_EQ(options.seed, 7u);
  EXPECT_TRUE(parsed.seed_given);
  EXPECT_EQ(options.mix.at("LoginMembership"), 1);
  EXPECT_EQ(options.error_percent, 2.5);
  EXPECT_EQ(options.failed_login_percent, 20);
  EXPECT_FALSE(options.error_log);
  EXPECT_EQ(options.bundle_dir, "bundles/ecliptix");
}

TEST(WorkloadCommandLineTest, DefaultsRunUntilStopped) {
  workload::CommandLine parsed;
  std::string error;
  ASSERT_EQ(Parse({"--database=sqlite:///tmp/a.db"}, &parsed, &error), -1)
      << error;
  EXPECT_EQ(parsed.options.rate, 20);
  EXPECT_EQ(parsed.options.duration, absl::InfiniteDuration());
  EXPECT_EQ(parsed.options.max_calls, 0);
  EXPECT_EQ(parsed.options.error_percent, 0);
  EXPECT_EQ(parsed.options.failed_login_percent, 10);
  EXPECT_FALSE(parsed.seed_given);
  EXPECT_TRUE(parsed.options.mix.empty());  // The default mix.
}

TEST(WorkloadCommandLineTest, BadCommandLinesExitWithTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"--database=sqlite:///tmp/a.db", "--unknown=1"},
      {"--database=mysql://x"},
      {"--database=sqlite:///tmp/a.db", "--database=sqlite:///tmp/a.db"},
      {"--database=sqlite:///tmp/a.db", "--rate=-1"},
      {"--database=sqlite:///tmp/a.db", "--rate=fast"},
      {"--database=sqlite:///tmp/a.db", "--duration=soon"},
      {"--database=sqlite:///tmp/a.db", "--error_percent=101"},
      {"--database=sqlite:///tmp/a.db", "--failed_login_percent=-5"},
      {"--database=sqlite:///tmp/a.db", "--mix=Nothing=1"},
      {"--database=sqlite:///tmp/a.db", "--pool_size=0"},
      {"--database=sqlite:///tmp/a.db", "--log_level=loud"},
  };
  for (const auto& args : bad) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    workload::CommandLine parsed;
    std::string error;
    EXPECT_EQ(Parse(args, &parsed, &error), workload::kExitUsage);
    EXPECT_THAT(error, HasSubstr("workload: "));
  }
  workload::CommandLine parsed;
  std::string error;
  EXPECT_EQ(Parse({"--help"}, &parsed, &error), workload::kExitOk);
}

}  // namespace
}  // namespace ecliptix
