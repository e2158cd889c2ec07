// The day-2 commands on a database where the reference bundle is deployed, on
// SQLite and on PostgreSQL (skipped unless ECLIPTIX_TEST_POSTGRES_URL is
// passed with --test_env): maintenance job runs of batch and plain operations
// (operation_job.h), configuration apply and read (config_commands.h), fleet
// queries on read-only sessions (fleet_query.h, read_only_session.h).
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/executor/config_commands.h"
#include "agent/executor/executor.h"
#include "agent/executor/fleet_query.h"
#include "agent/executor/operation_job.h"
#include "agent/executor/read_only_session.h"
#include "agent/target/open_target.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/reference_database.h"
#include "tests/testing/postgres.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;
using testing::Engine;
using ::testing::HasSubstr;

// The events a command reported, safe to read while it runs on another
// thread.
class Events {
 public:
  CommandEventSink Sink() {
    return [this](v1::CommandEvent event) {
      absl::MutexLock lock(&mutex_);
      events_.push_back(std::move(event));
    };
  }
  std::vector<v1::OperationBatch> Batches() {
    absl::MutexLock lock(&mutex_);
    std::vector<v1::OperationBatch> batches;
    for (const v1::CommandEvent& event : events_)
      if (event.has_operation_batch())
        batches.push_back(event.operation_batch());
    return batches;
  }
  std::vector<v1::QueryRows> Rows() {
    absl::MutexLock lock(&mutex_);
    std::vector<v1::QueryRows> rows;
    for (const v1::CommandEvent& event : events_)
      if (event.has_query_rows()) rows.push_back(event.query_rows());
    return rows;
  }
  std::vector<v1::ConfigValueReport> Config() {
    absl::MutexLock lock(&mutex_);
    std::vector<v1::ConfigValueReport> reports;
    for (const v1::CommandEvent& event : events_)
      if (event.has_config_value()) reports.push_back(event.config_value());
    return reports;
  }
  // Waits until `count` OperationBatch events came.
  bool AwaitBatches(size_t count, absl::Duration timeout) {
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      size_t batches = 0;
      for (const v1::CommandEvent& event : events_)
        batches += event.has_operation_batch();
      return batches >= count;
    };
    absl::MutexLock lock(&mutex_);
    return mutex_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  void Clear() {
    absl::MutexLock lock(&mutex_);
    events_.clear();
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::CommandEvent> events_ ABSL_GUARDED_BY(mutex_);
};

class Day2Test : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() != Engine::kSqlite &&
        !::ecliptix::testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set; pass it with "
                      "--test_env to run the PostgreSQL cases";
    }
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(
        tmp != nullptr ? tmp : "/tmp", "/",
        absl::StrReplaceAll(
            ::testing::UnitTest::GetInstance()->current_test_info()->name(),
            {{"/", "_"}}));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    bundle_ = testing::TestBundle();
    ASSERT_NE(bundle_, nullptr);
    absl::StatusOr<std::string> url =
        testing::DeployedDatabase(GetParam(), dir_);
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_);
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *std::move(database);
    absl::StatusOr<std::unique_ptr<Target>> probe = OpenTarget(url_);
    ASSERT_TRUE(probe.ok()) << probe.status();
    probe_ = *std::move(probe);
    ExecutorOptions options;
    options.backup_dir = absl::StrCat(dir_, "/backups");
    executor_ = std::make_unique<Executor>(database_.get(), options);
  }

  std::string Table(const std::string& name) const {
    return testing::Table(GetParam(), name);
  }
  int64_t Count(const std::string& table_name) {
    return testing::QueryInt(
        *probe_, absl::StrCat("SELECT COUNT(*) FROM ", Table("AuditLog"),
                              " WHERE TableName = '", table_name, "'"));
  }
  std::string ConfigValue(const std::string& key) {
    return testing::QueryText(
        *probe_,
        absl::StrCat("SELECT ConfigValue FROM ", Table("SystemConfiguration"),
                     " WHERE ConfigKey = '", key, "'"));
  }

  v1::RunOperationCommand Cleanup(int batch_size) const {
    v1::RunOperationCommand command;
    command.set_bundle_id(bundle_->id());
    command.set_operation("CleanupAuditLogs");
    (*command.mutable_arguments())["RetentionDays"] = "365";
    (*command.mutable_arguments())["BatchSize"] = absl::StrCat(batch_size);
    return command;
  }

  absl::Status RunJob(const v1::RunOperationCommand& command) {
    return RunOperationJob(*executor_, *bundle_, command, cancel_,
                           events_.Sink());
  }

  v1::ApplyConfigCommand Apply(
      const std::vector<std::pair<std::string, std::string>>& settings) const {
    v1::ApplyConfigCommand command;
    command.set_bundle_id(bundle_->id());
    for (const auto& [key, value] : settings) {
      v1::ConfigSetting* setting = command.add_settings();
      setting->set_key(key);
      setting->set_value(value);
    }
    return command;
  }

  absl::Status Query(const v1::RunQueryCommand& command) {
    absl::StatusOr<std::unique_ptr<ReadOnlySession>> session =
        ReadOnlySession::Open(url_, absl::Now() + QueryTimeout(command));
    if (!session.ok()) return session.status();
    return RunQuery(**session, *bundle_, command, events_.Sink());
  }

  v1::RunQueryCommand QueryCommand(const std::string& name) const {
    v1::RunQueryCommand command;
    command.set_bundle_id(bundle_->id());
    command.set_query(name);
    return command;
  }

  bool postgresql() const { return GetParam() != Engine::kSqlite; }

  std::string dir_;
  std::string url_;
  std::shared_ptr<const bundle::Bundle> bundle_;
  std::unique_ptr<Target> database_;
  // The test's own connection, to look at and change the database.
  std::unique_ptr<Target> probe_;
  std::unique_ptr<Executor> executor_;
  CancelSignal cancel_;
  Events events_;
};

// ---- Maintenance jobs.

TEST_P(Day2Test, CleanupDeletesExactlyTheOldRowsInBatches) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  testing::InsertAuditRows(GetParam(), *probe_, "TestYoung", 20, 10);

  ASSERT_TRUE(RunJob(Cleanup(7)).ok());

  EXPECT_EQ(Count("TestOld"), 0);
  EXPECT_EQ(Count("TestYoung"), 20);
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  // 7 batches of 7, then the last row.
  ASSERT_EQ(batches.size(), 8u);
  int64_t total = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("batch ", i + 1));
    const int64_t expected = i < 7 ? 7 : 1;
    total += expected;
    EXPECT_EQ(batches[i].batch(), static_cast<int>(i + 1));
    EXPECT_EQ(batches[i].rows_done(), expected);
    EXPECT_EQ(batches[i].rows_left(), 50 - total);
    EXPECT_EQ(batches[i].rows_done_total(), total);
    EXPECT_EQ(batches[i].stop_reason(), i < 7 ? "" : "nothing left");
  }
  EXPECT_GT(batches.back().rows_per_second(), 0);

  // Again: nothing is left, and nothing more is deleted.
  events_.Clear();
  ASSERT_TRUE(RunJob(Cleanup(7)).ok());
  ASSERT_EQ(events_.Batches().size(), 1u);
  EXPECT_EQ(events_.Batches()[0].rows_done(), 0);
  EXPECT_EQ(events_.Batches()[0].rows_left(), 0);
  EXPECT_EQ(events_.Batches()[0].stop_reason(), "nothing left");
  EXPECT_EQ(Count("TestYoung"), 20);
}

TEST_P(Day2Test, CancelAfterTheSecondBatchKeepsTheBatchesDone) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  v1::RunOperationCommand command = Cleanup(7);
  *command.mutable_pause_between_batches() =
      ToProtoDuration(absl::Milliseconds(300));
  absl::Status status;
  std::thread job([&] { status = RunJob(command); });
  const bool second = events_.AwaitBatches(2, absl::Seconds(60));
  // As the handler does: the signal ends a pause, the executor's cancel
  // interrupts a batch running.
  cancel_.Cancel();
  executor_->Cancel();
  job.join();
  ASSERT_TRUE(second);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  // The cancel landed in a pause (or, on a slow machine, in or after a later
  // batch): whatever batches were reported are done, and nothing else.
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  ASSERT_GE(batches.size(), 2u);
  ASSERT_LT(batches.size(), 8u);
  EXPECT_EQ(Count("TestOld"), 50 - 7 * static_cast<int64_t>(batches.size()))
      << "batches done are kept, none is half done";
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat(batches.size(), " batches, ",
                                     7 * batches.size(), " rows done")));
}

TEST_P(Day2Test, CancelInterruptsTheRunningBatchWhichRollsBack) {
  if (GetParam() != Engine::kPostgresql) {
    // SQLite: no batch here can be made to wait; ODBC has no interruption
    // (target.h), the batch would finish once the lock goes.
    GTEST_SKIP() << "needs a batch that waits on a row lock (PostgreSQL)";
  }
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  // The test holds the old rows: the batch's DELETE waits for them.
  ASSERT_TRUE(probe_->Begin().ok());
  ASSERT_TRUE(probe_
                  ->Query("SELECT Id FROM dbo.AuditLog WHERE TableName = "
                          "'TestOld' FOR UPDATE")
                  .ok());
  absl::Status status;
  std::thread job([&] { status = RunJob(Cleanup(7)); });
  absl::StatusOr<std::unique_ptr<Target>> watcher = OpenTarget(url_);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (testing::QueryInt(**watcher,
                           "SELECT COUNT(*) FROM pg_stat_activity WHERE "
                           "datname = current_database() AND "
                           "wait_event_type = 'Lock'") == 0 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  cancel_.Cancel();
  executor_->Cancel();
  job.join();
  ASSERT_TRUE(probe_->Rollback().ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_THAT(status.message(),
              HasSubstr("during batch 1, which was rolled back"));
  EXPECT_TRUE(events_.Batches().empty());
  EXPECT_EQ(Count("TestOld"), 50);
}

TEST_P(Day2Test, MaxBatchesStopsTheRun) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  v1::RunOperationCommand command = Cleanup(7);
  command.set_max_batches(3);
  ASSERT_TRUE(RunJob(command).ok());
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches.back().stop_reason(), "max batches reached");
  EXPECT_EQ(batches.back().rows_left(), 29);
  EXPECT_EQ(Count("TestOld"), 29);
}

TEST_P(Day2Test, ClosedWindowRunsNoBatch) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 10, 400);
  v1::RunOperationCommand command = Cleanup(7);
  *command.mutable_not_after_time() =
      ToProtoTimestamp(absl::Now() - absl::Hours(1));
  ASSERT_TRUE(RunJob(command).ok());
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].batch(), 0);
  EXPECT_EQ(batches[0].rows_done(), 0);
  EXPECT_EQ(batches[0].stop_reason(), "maintenance window closed");
  EXPECT_EQ(Count("TestOld"), 10);
}

TEST_P(Day2Test, WindowClosingStopsBeforeTheNextBatch) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 50, 400);
  v1::RunOperationCommand command = Cleanup(7);
  // With a one-second pause, no batch after the second can start before the
  // window closes.
  *command.mutable_pause_between_batches() = ToProtoDuration(absl::Seconds(1));
  *command.mutable_not_after_time() =
      ToProtoTimestamp(absl::Now() + absl::Milliseconds(1500));
  ASSERT_TRUE(RunJob(command).ok());
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  ASSERT_FALSE(batches.empty());
  EXPECT_LE(batches.size(), 2u);
  EXPECT_EQ(batches.back().stop_reason(), "maintenance window closed");
  EXPECT_EQ(batches.back().rows_left(), Count("TestOld"));
  EXPECT_GT(Count("TestOld"), 0);
}

TEST_P(Day2Test, JobChecksItsOperationAndArguments) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 5, 400);
  v1::RunOperationCommand command = Cleanup(7);
  command.set_operation("NoSuchOperation");
  EXPECT_EQ(RunJob(command).code(), absl::StatusCode::kNotFound);
  command = Cleanup(7);
  command.mutable_arguments()->erase("RetentionDays");
  absl::Status status = RunJob(command);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("needs parameter \"RetentionDays\""));
  command = Cleanup(7);
  (*command.mutable_arguments())["BatchSize"] = "many";
  EXPECT_EQ(RunJob(command).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(events_.Batches().empty());
  EXPECT_EQ(Count("TestOld"), 5);
}

TEST_P(Day2Test, PlainOperationReportsItsRows) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestYoung", 3, 0);
  v1::RunOperationCommand command;
  command.set_bundle_id(bundle_->id());
  command.set_operation("AuditLogByTable");
  ASSERT_TRUE(RunJob(command).ok());
  const std::vector<v1::OperationBatch> batches = events_.Batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].batch(), 1);
  EXPECT_EQ(batches[0].rows_left(), -1);
  const std::vector<v1::QueryRows> rows = events_.Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].last());
  EXPECT_EQ(rows[0].rows_truncated(), 0);
  ASSERT_EQ(rows[0].columns_size(), 2);
  EXPECT_TRUE(absl::EqualsIgnoreCase(rows[0].columns(0), "TableName"));
  EXPECT_EQ(batches[0].rows_done(), rows[0].rows_size());
  bool found = false;
  for (const v1::QueryRow& row : rows[0].rows()) {
    if (row.values(0).text() == "TestYoung") {
      found = true;
      EXPECT_EQ(row.values(1).text(), "3");
    }
  }
  EXPECT_TRUE(found);
}

// ---- Configuration.

TEST_P(Day2Test, ApplyConfigRefusesBadSettingsBeforeWritingAny) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
      {{"Authentication.MaxFailedAttempts", "7"},
       {"Authentication.LockoutDurationMinutes", "0"}},  // Out of range.
      {{"Authentication.MaxFailedAttempts", "7"},
       {"OTP.MaxAttempts", "three"}},  // Not an int.
      {{"Authentication.MaxFailedAttempts", "7"},
       {"No.SuchKey", "1"}},  // Unknown.
      {{"Authentication.MaxFailedAttempts", "7"},
       {"Monitoring.EnableMetrics", "yes"}},  // A bool is 0 or 1.
  };
  for (const auto& settings : bad) {
    SCOPED_TRACE(settings[1].first);
    absl::Status status = ApplyConfig(*executor_, *bundle_, Apply(settings),
                                      cancel_, events_.Sink());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(settings[1].first));
    EXPECT_EQ(ConfigValue("Authentication.MaxFailedAttempts"), "5");
  }
  EXPECT_TRUE(events_.Config().empty());
}

TEST_P(Day2Test, ApplyConfigReportsPreviousAndNewValues) {
  ASSERT_TRUE(ApplyConfig(*executor_, *bundle_,
                          Apply({{"Authentication.MaxFailedAttempts", "7"},
                                 {"Monitoring.EnableMetrics", "0"}}),
                          cancel_, events_.Sink())
                  .ok());
  const std::vector<v1::ConfigValueReport> reports = events_.Config();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].key(), "Authentication.MaxFailedAttempts");
  EXPECT_EQ(reports[0].value(), "7");
  EXPECT_TRUE(reports[0].present());
  EXPECT_EQ(reports[0].previous_value(), "5");
  EXPECT_FALSE(reports[0].previous_missing());
  EXPECT_EQ(reports[1].key(), "Monitoring.EnableMetrics");
  EXPECT_EQ(reports[1].value(), "0");
  EXPECT_EQ(reports[1].previous_value(), "1");
  EXPECT_EQ(ConfigValue("Authentication.MaxFailedAttempts"), "7");
  EXPECT_EQ(ConfigValue("Monitoring.EnableMetrics"), "0");
}

TEST_P(Day2Test, FailingSettingSetsTheEarlierOnesBack) {
  // A key of the schema the database does not hold: the set operation
  // refuses it.
  testing::Exec(*probe_,
                absl::StrCat("DELETE FROM ", Table("SystemConfiguration"),
                             " WHERE ConfigKey = 'OTP.MaxAttempts'"));
  absl::Status status =
      ApplyConfig(*executor_, *bundle_,
                  Apply({{"Authentication.MaxFailedAttempts", "9"},
                         {"OTP.MaxAttempts", "4"}}),
                  cancel_, events_.Sink());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("setting OTP.MaxAttempts failed"));
  EXPECT_THAT(status.message(),
              HasSubstr("(Authentication.MaxFailedAttempts) were set back"));
  EXPECT_EQ(ConfigValue("Authentication.MaxFailedAttempts"), "5");
  EXPECT_EQ(ConfigValue("OTP.MaxAttempts"), "<none>");
  // What the database holds at the end.
  const std::vector<v1::ConfigValueReport> reports = events_.Config();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].key(), "Authentication.MaxFailedAttempts");
  EXPECT_EQ(reports[0].value(), "5");
}

TEST_P(Day2Test, ReadConfigReportsWhatIsStored) {
  // Behind the agent's back.
  testing::Exec(*probe_,
                absl::StrCat("UPDATE ", Table("SystemConfiguration"),
                             " SET ConfigValue = '42' WHERE ConfigKey = "
                             "'Authentication.MaxFailedAttempts'"));
  testing::Exec(*probe_,
                absl::StrCat("DELETE FROM ", Table("SystemConfiguration"),
                             " WHERE ConfigKey = 'OTP.MaxAttempts'"));
  v1::ReadConfigCommand command;
  command.set_bundle_id(bundle_->id());
  absl::StatusOr<std::unique_ptr<ReadOnlySession>> session =
      ReadOnlySession::Open(url_, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE(ReadConfig(**session, *bundle_, command, events_.Sink()).ok());
  std::vector<v1::ConfigValueReport> reports = events_.Config();
  ASSERT_EQ(reports.size(), bundle_->manifest().config().keys_size());
  for (const v1::ConfigValueReport& report : reports) {
    if (report.key() == "Authentication.MaxFailedAttempts") {
      EXPECT_EQ(report.value(), "42");
      EXPECT_TRUE(report.present());
    } else if (report.key() == "OTP.MaxAttempts") {
      EXPECT_FALSE(report.present());
    } else {
      EXPECT_TRUE(report.present()) << report.key();
    }
  }

  events_.Clear();
  command.add_keys("Audit.RetentionDays");
  ASSERT_TRUE(ReadConfig(**session, *bundle_, command, events_.Sink()).ok());
  reports = events_.Config();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].value(), "365");
  command.add_keys("No.SuchKey");
  EXPECT_EQ(ReadConfig(**session, *bundle_, command, events_.Sink()).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Fleet queries.

TEST_P(Day2Test, QueryReturnsColumnsAndNulls) {
  if (GetParam() == Engine::kPostgresqlOdbc) {
    // Its PostgreSQL SQL casts with "::text", which SOCI's ODBC backend
    // takes for a parameter; QueryRowLimitTruncates covers NULLs over ODBC.
    GTEST_SKIP() << "the query's PostgreSQL SQL does not run through ODBC";
  }
  // A row with NULL OldValues, UserId and IpAddress.
  testing::Exec(*probe_,
                absl::StrCat("INSERT INTO ", Table("AuditLog"),
                             " (TableName, OperationType, RecordId) VALUES "
                             "('LoginAttempts', 'SUSPICIOUS_ACTIVITY', "
                             "'+15550001')"));
  const absl::Status status = Query(QueryCommand("SuspiciousActivity24h"));
  ASSERT_TRUE(status.ok()) << status;
  const std::vector<v1::QueryRows> batches = events_.Rows();
  ASSERT_EQ(batches.size(), 1u);
  const v1::QueryRows& rows = batches[0];
  EXPECT_TRUE(rows.last());
  EXPECT_EQ(rows.rows_truncated(), 0);
  ASSERT_EQ(rows.columns_size(), 9);
  ASSERT_EQ(rows.rows_size(), 1);
  std::map<std::string, v1::QueryValue> row;
  for (int i = 0; i < rows.columns_size(); ++i)
    row[absl::AsciiStrToLower(rows.columns(i))] = rows.rows(0).values(i);
  EXPECT_EQ(row["recordid"].text(), "+15550001");
  EXPECT_FALSE(row["recordid"].null_value());
  EXPECT_TRUE(row["oldvalues"].null_value());
  EXPECT_TRUE(row["userid"].null_value());
  EXPECT_TRUE(row["ipaddress"].null_value());
}

TEST_P(Day2Test, QueryRowLimitTruncates) {
  v1::RunQueryCommand command = QueryCommand("Numbers");
  (*command.mutable_arguments())["Count"] = "1200";
  // The default limit: 1,000 rows, in events of 500.
  ASSERT_TRUE(Query(command).ok());
  std::vector<v1::QueryRows> batches = events_.Rows();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].rows_size(), 500);
  EXPECT_EQ(batches[1].rows_size(), 500);
  EXPECT_FALSE(batches[0].last());
  EXPECT_TRUE(batches[1].last());
  EXPECT_EQ(batches[1].rows_truncated(), 200);
  EXPECT_EQ(batches[1].columns_size(), 2) << "every batch has the columns";
  EXPECT_EQ(batches[1].rows(499).values(0).text(), "1000");
  EXPECT_TRUE(batches[0].rows(1).values(1).null_value());
  EXPECT_EQ(batches[0].rows(0).values(1).text(), "odd");

  events_.Clear();
  command.set_row_limit(7);
  ASSERT_TRUE(Query(command).ok());
  batches = events_.Rows();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].rows_size(), 7);
  EXPECT_EQ(batches[0].rows_truncated(), 1193);

  events_.Clear();
  (*command.mutable_arguments())["Count"] = "0";
  ASSERT_TRUE(Query(command).ok());
  batches = events_.Rows();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_TRUE(batches[0].last());
}

TEST_P(Day2Test, QueryOfAnOperationNotReadOnlyIsRefused) {
  testing::InsertAuditRows(GetParam(), *probe_, "TestOld", 5, 400);
  v1::RunQueryCommand command = QueryCommand("CleanupAuditLogs");
  (*command.mutable_arguments())["RetentionDays"] = "1";
  absl::Status status = Query(command);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(),
              HasSubstr("operation CleanupAuditLogs is not a declared "
                        "read-only query"));
  EXPECT_EQ(Count("TestOld"), 5);
}

TEST_P(Day2Test, ReadOnlyQueryThatWritesIsRefused) {
  if (!postgresql()) {
    GTEST_SKIP() << "a single SELECT cannot write on SQLite; "
                    "ReadOnlySessionRefusesWrites covers query_only";
  }
  v1::RunQueryCommand command = QueryCommand("WriteInSelect");
  (*command.mutable_arguments())["ConfigKey"] =
      "Authentication.MaxFailedAttempts";
  (*command.mutable_arguments())["ConfigValue"] = "9";
  absl::Status status = Query(command);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("read-only transaction"));
  EXPECT_EQ(ConfigValue("Authentication.MaxFailedAttempts"), "5");
  EXPECT_TRUE(events_.Rows().empty());
}

TEST_P(Day2Test, ReadOnlySessionRefusesWrites) {
  absl::StatusOr<std::unique_ptr<ReadOnlySession>> session =
      ReadOnlySession::Open(url_, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<QueryResult> written =
      (*session)->Query(absl::StrCat("UPDATE ", Table("SystemConfiguration"),
                                     " SET ConfigValue = '9' WHERE ConfigKey = "
                                     "'Authentication.MaxFailedAttempts'"));
  EXPECT_EQ(written.status().code(), absl::StatusCode::kPermissionDenied)
      << written.status();
  EXPECT_THAT(
      written.status().message(),
      HasSubstr(postgresql() ? "read-only transaction" : "readonly database"));
  session->reset();
  EXPECT_EQ(ConfigValue("Authentication.MaxFailedAttempts"), "5");
}

TEST_P(Day2Test, QueryPastItsTimeoutIsStopped) {
  v1::RunQueryCommand command = QueryCommand("SlowQuery");
  *command.mutable_timeout() = ToProtoDuration(absl::Milliseconds(300));
  absl::Status status = Query(command);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(events_.Rows().empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, Day2Test,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgresql,
                                           Engine::kPostgresqlOdbc),
                         testing::EngineParamName);

}  // namespace
}  // namespace ecliptix::agent
