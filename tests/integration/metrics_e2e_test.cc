// Metrics end to end with real processes only: ecliptix-server (with
// --metrics_listen), one ecliptix-agent per database collecting fast
// (--metrics_interval_scale), the reference bundle deployed by a rollout, and
// the workload driver (tools/workload) writing rows by calling the bundle's
// operations. What the database holds (PerformanceMetrics, ErrorLog, AuditLog
// and the agent's ecliptix_operation_calls, counted with SQL) is what
// MetricsService answers (TopProcedures, GetRate, QuerySeries) and what a
// scrape of /metrics shows; on SQLite always, and on PostgreSQL when
// ECLIPTIX_TEST_POSTGRES_URL is set.
//
// Then an agent cut off from the server for a minute (the server stopped,
// rows written meanwhile, the server started again on the same port and
// state store): its buffered samples arrive after the reconnect, none lost
// and none twice.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/target/open_target.h"
#include "common/proto_time.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/exposition.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"
#include "tools/workload/workload_driver.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using testing::ChildProcess;
using testing::Exposition;
using ::testing::IsEmpty;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kBundle[] = "ecliptix-production-enhancements@1.0.0";
// 60 s collectors every 3 s, 300 s ones every 15 s.
constexpr char kIntervalScale[] = "--metrics_interval_scale=0.05";

int LoggedMetricsPort(const std::string& output) {
  static const std::regex kPort(R"(metrics on http://[^ ]+:(\d+)/metrics)");
  std::smatch match;
  if (!std::regex_search(output, match, kPort)) return 0;
  return std::stoi(match[1].str());
}

// A database of the fleet and its agent.
struct Database {
  std::string id;
  std::string url;
  bool postgresql = false;
  // tables are in schema dbo on PostgreSQL.
  std::string Table(const std::string& name) const {
    return postgresql ? absl::StrCat("dbo.", name) : name;
  }
};

// What the database holds, counted with SQL.
struct Rows {
  // PerformanceMetrics per procedure: calls, total ms, max ms.
  std::map<std::string, std::vector<double>> performance;
  // ErrorLog rows per procedure.
  std::map<std::string, double> errors;
  // AuditLog authentication events per OperationType.
  std::map<std::string, double> auth;
  // ecliptix_operation_calls per operation: calls, failures.
  std::map<std::string, std::pair<double, double>> operations;

  double Calls() const {
    double sum = 0;
    for (const auto& [name, values] : performance) sum += values[0];
    return sum;
  }
};

class MetricsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/metrics-e2e-", ++counter);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    bundle_dir_ = testing::PlainRunfilesCopy(
        "bundles/ecliptix", absl::StrCat("ecliptix-", counter));
  }
  void TearDown() override {
    for (auto& agent : agents_) agent->Signal(SIGTERM);
    for (auto& agent : agents_) agent->Wait(absl::Seconds(30));
    StopServer();
  }

  // `port` 0: any free port (the one taken is kept for a restart).
  void StartServer(int port = 0, int metrics_port = 0) {
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"),
         absl::StrCat("--listen=127.0.0.1:", port),
         absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port),
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         absl::StrCat("--data_dir=", dir_, "/data"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=3s"},
        absl::StrCat(dir_, "/server-", ++server_starts_, ".log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      port_ = testing::LoggedServerPort(server_->Output());
      metrics_port_ = LoggedMetricsPort(server_->Output());
      return port_ > 0 && metrics_port_ > 0;
    })) << server_->Output();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    fleet_ = v1::FleetService::NewStub(channel_);
    metrics_ = v1::MetricsService::NewStub(channel_);
  }

  void StopServer() {
    if (server_ == nullptr) return;
    server_->Signal(SIGTERM);
    EXPECT_EQ(server_->Wait(absl::Seconds(30)), 0) << server_->Output();
    server_.reset();
  }

  // The server dies at once: batches in flight may be stored and not
  // acknowledged, or not stored at all; the agent sends them again.
  void KillServer() {
    if (server_ == nullptr) return;
    server_->Signal(SIGKILL);
    server_->Wait(absl::Seconds(30));
    server_.reset();
  }

  // The databases of the test: SQLite, and PostgreSQL when there is one.
  std::vector<Database> Databases() {
    std::vector<Database> databases;
    databases.push_back(
        {"e2e-sqlite", absl::StrCat("sqlite://", dir_, "/e2e-sqlite.db")});
    if (testing::PostgresAdminUrl().has_value()) {
      auto scratch = testing::CreateScratchDatabase("metrics_e2e");
      EXPECT_TRUE(scratch.ok()) << scratch.status();
      if (scratch.ok()) {
        databases.push_back({"e2e-postgresql", scratch->url, true});
      }
    }
    return databases;
  }

  // An agent collecting fast; every row already there is counted (the
  // deployment's own rows too), so that the totals are the tables' counts.
  ChildProcess& StartAgent(const Database& database) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", port_),
         absl::StrCat("--database=", database.url), "--labels=env=prod",
         absl::StrCat("--database_id=", database.id), "--initial_backoff=100ms",
         "--max_backoff=500ms", kIntervalScale, "--log_level=debug"},
        absl::StrCat(dir_, "/agent-", database.id, ".log"));
    EXPECT_TRUE(agent.ok()) << agent.status();
    agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
    return *agents_.back();
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", port_), "--timeout=60s"});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  // The reference bundle on every database, once all agents are connected.
  void Deploy(size_t databases) {
    ASSERT_TRUE(WaitFor([&] {
      grpc::ClientContext context;
      v1::ListDatabasesResponse response;
      if (!fleet_
               ->ListDatabases(&context, v1::ListDatabasesRequest(), &response)
               .ok()) {
        return false;
      }
      size_t connected = 0;
      for (const v1::Database& database : response.databases()) {
        connected +=
            database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
      }
      return connected == databases;
    }));
    const testing::CommandResult pushed = Ctl({"bundle", "push", bundle_dir_});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.output;
    const testing::CommandResult deployed =
        Ctl({"rollout", "create", kBundle, "--all", "--watch"});
    ASSERT_EQ(deployed.exit_code, 0) << deployed.output;
  }

  // The workload driver's binary: `calls` calls on `database`, 10% of them
  // refused on purpose, a third of the logins failing.
  void Workload(const Database& database, int calls) {
    auto result = RunCommand(
        {RunfilePath("tools/workload/workload"),
         absl::StrCat("--database=", database.url),
         absl::StrCat("--bundle_dir=", bundle_dir_), "--rate=0",
         absl::StrCat("--calls=", calls), absl::StrCat("--seed=", ++seed_),
         "--error_percent=10", "--failed_login_percent=30", "--pool_size=5",
         "--log_level=warn"},
        absl::Seconds(120));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->exit_code, 0) << result->output;
  }

  Rows Count(const Database& database) {
    Rows rows;
    auto target = agent::OpenTarget(database.url);
    EXPECT_TRUE(target.ok()) << target.status();
    if (!target.ok()) return rows;
    auto query = [&](const std::string& sql) {
      absl::StatusOr<agent::QueryResult> result = (*target)->Query(sql);
      EXPECT_TRUE(result.ok()) << sql << ": " << result.status();
      std::vector<std::vector<double>> values;
      std::vector<std::string> keys;
      if (!result.ok()) return std::make_pair(keys, values);
      for (const agent::SqlRow& row : result->rows) {
        keys.push_back(row.values[0]);
        std::vector<double>& numbers = values.emplace_back();
        for (size_t i = 1; i < row.values.size(); ++i) {
          double number = 0;
          EXPECT_TRUE(absl::SimpleAtod(row.values[i], &number)) << sql;
          numbers.push_back(number);
        }
      }
      return std::make_pair(keys, values);
    };
    auto [procedures, performance] = query(absl::StrCat(
        "SELECT ProcedureName, COUNT(*), SUM(ExecutionTimeMs), "
        "MAX(ExecutionTimeMs) FROM ",
        database.Table("PerformanceMetrics"), " GROUP BY ProcedureName"));
    for (size_t i = 0; i < procedures.size(); ++i)
      rows.performance[procedures[i]] = performance[i];
    auto [failing, errors] = query(
        absl::StrCat("SELECT ProcedureName, COUNT(*) FROM ",
                     database.Table("ErrorLog"), " GROUP BY ProcedureName"));
    for (size_t i = 0; i < failing.size(); ++i)
      rows.errors[failing[i]] = errors[i][0];
    auto [events, counts] = query(absl::StrCat(
        "SELECT OperationType, COUNT(*) FROM ", database.Table("AuditLog"),
        " WHERE OperationType IN ('LOGIN_SUCCESS', 'LOGIN_FAILED', "
        "'LOGIN_BLOCKED', 'SUSPICIOUS_ACTIVITY') GROUP BY OperationType"));
    for (size_t i = 0; i < events.size(); ++i)
      rows.auth[events[i]] = counts[i][0];
    auto [operations, calls] = query(
        "SELECT operation, SUM(calls), SUM(failures) FROM "
        "ecliptix_operation_calls GROUP BY operation");
    for (size_t i = 0; i < operations.size(); ++i)
      rows.operations[operations[i]] = {calls[i][0], calls[i][1]};
    return rows;
  }

  // ---- MetricsService.

  // Per procedure of `database_id` over the last hour.
  std::map<std::string, v1::ProcedureFigures> Top(
      const std::string& database_id) {
    grpc::ClientContext context;
    v1::TopProceduresRequest request;
    request.set_per_database(true);
    request.set_limit(1000);
    *request.mutable_range() = ToProtoDuration(absl::Hours(1));
    v1::TopProceduresResponse response;
    const grpc::Status status =
        metrics_->TopProcedures(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, v1::ProcedureFigures> figures;
    for (const v1::ProcedureFigures& row : response.procedures()) {
      if (row.database_id() == database_id) figures[row.procedure()] = row;
    }
    return figures;
  }

  std::optional<double> Rate(const std::string& rate,
                             const std::string& database_id) {
    grpc::ClientContext context;
    v1::GetRateRequest request;
    request.set_rate(rate);
    *request.mutable_range() = ToProtoDuration(absl::Hours(1));
    v1::GetRateResponse response;
    const grpc::Status status = metrics_->GetRate(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    auto it = response.by_database().find(database_id);
    if (it == response.by_database().end()) return std::nullopt;
    return it->second;
  }

  // The series of `metric` for `database_id` over [start, end), summed per
  // value of `label`.
  std::map<std::string, double> Series(
      const std::string& metric, const std::string& database_id,
      const std::string& label, absl::Time start = absl::Now() - absl::Hours(1),
      absl::Time end = absl::Now() + absl::Minutes(1)) {
    grpc::ClientContext context;
    v1::QuerySeriesRequest request;
    request.set_metric(metric);
    *request.mutable_start_time() = ToProtoTimestamp(start);
    *request.mutable_end_time() = ToProtoTimestamp(end);
    *request.mutable_step() = ToProtoDuration(absl::Minutes(1));
    v1::QuerySeriesResponse response;
    const grpc::Status status =
        metrics_->QuerySeries(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, double> sums;
    for (const v1::Series& series : response.series()) {
      if (series.database_id() != database_id) continue;
      auto it = series.labels().find(label);
      double& sum = sums[it == series.labels().end() ? "" : it->second];
      for (const v1::SeriesPoint& point : series.points()) sum += point.value();
    }
    return sums;
  }

  // Operation calls the workload made (its own reads of its settings, and
  // the deployment's calls, left out).
  double WorkloadCalls(const std::map<std::string, double>& by_operation) {
    double sum = 0;
    for (const std::string& operation : workload::WorkloadOperations()) {
      auto it = by_operation.find(operation);
      if (it != by_operation.end()) sum += it->second;
    }
    return sum;
  }

  // Whether what the server stored for `database` is what its rows say:
  // every collector has caught up.
  bool CaughtUp(const Database& database) {
    const Rows rows = Count(database);
    std::map<std::string, double> calls;
    for (const auto& [procedure, values] : rows.performance)
      calls[procedure] = values[0];
    std::map<std::string, double> operations;
    for (const auto& [operation, counts] : rows.operations)
      operations[operation] = counts.first;
    std::map<std::string, double> auth =
        Series("auth_events", database.id, "event");
    return Series("procedure_calls", database.id, "procedure") == calls &&
           Series("procedure_errors", database.id, "procedure") ==
               rows.errors &&
           auth == rows.auth &&
           Series("operation_calls", database.id, "operation") == operations;
  }

  // Every answer about `database` against its rows.
  void ExpectAnswersMatchRows(const Database& database) {
    SCOPED_TRACE(database.id);
    const Rows rows = Count(database);
    ASSERT_GT(rows.Calls(), 0);
    ASSERT_FALSE(rows.auth.empty());

    // TopProcedures: calls, average and maximum per procedure from
    // PerformanceMetrics, errors from ErrorLog.
    const std::map<std::string, v1::ProcedureFigures> top = Top(database.id);
    // A procedure whose every call failed has errors and no calls.
    for (const auto& [procedure, figures] : top) {
      if (rows.performance.count(procedure)) continue;
      SCOPED_TRACE(procedure);
      EXPECT_EQ(figures.calls(), 0);
      EXPECT_EQ(figures.errors(),
                rows.errors.count(procedure) ? rows.errors.at(procedure) : -1);
    }
    for (const auto& [procedure, values] : rows.performance) {
      SCOPED_TRACE(procedure);
      auto it = top.find(procedure);
      ASSERT_NE(it, top.end());
      EXPECT_EQ(it->second.calls(), values[0]);
      EXPECT_NEAR(it->second.avg_ms(), values[1] / values[0], 1e-6);
      EXPECT_EQ(it->second.max_ms(), values[2]);
      auto errors = rows.errors.find(procedure);
      EXPECT_EQ(it->second.errors(),
                errors == rows.errors.end() ? 0 : errors->second);
    }

    // QuerySeries: the sums of the deltas are the rows.
    EXPECT_EQ(Series("procedure_errors", database.id, "procedure"),
              rows.errors);
    EXPECT_EQ(Series("auth_events", database.id, "event"), rows.auth);
    double calls = 0, failures = 0;
    std::map<std::string, double> operation_failures;
    for (const auto& [operation, counts] : rows.operations) {
      calls += counts.first;
      failures += counts.second;
      operation_failures[operation] = counts.second;
    }
    EXPECT_EQ(Series("operation_failures", database.id, "operation"),
              operation_failures);
    // PostgreSQL and SQLite roll the refused calls back, and the workload
    // wrote their ErrorLog rows itself: as many as the agent counted.
    double logged = 0;
    for (const auto& [procedure, count] : rows.errors) logged += count;
    EXPECT_EQ(failures, logged);
    EXPECT_GT(failures, 0);

    // GetRate: errors are failed operation calls per call; failed logins per
    // minute over the hour (counted in whole minutes: 60 or 61 of them).
    EXPECT_THAT(
        Rate("errors", database.id),
        ::testing::Optional(::testing::DoubleNear(failures / calls, 1e-12)));
    const double failed_logins =
        rows.auth.count("LOGIN_FAILED") ? rows.auth.at("LOGIN_FAILED") : 0;
    EXPECT_GT(failed_logins, 0);
    const std::optional<double> per_minute = Rate("failed_logins", database.id);
    ASSERT_TRUE(per_minute.has_value());
    EXPECT_GE(*per_minute, failed_logins / 61 - 1e-9);
    EXPECT_LE(*per_minute, failed_logins / 60 + 1e-9);
  }

  Exposition Scrape() {
    absl::StatusOr<std::string> body =
        testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    if (!body.ok()) return Exposition();
    absl::StatusOr<Exposition> parsed = testing::ParseExposition(*body);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << *body;
    last_text_ = *body;
    return parsed.ok() ? *parsed : Exposition();
  }

  // The highest batch the server stored from `database_id`'s agent.
  int64_t StoredSequence(const std::string& database_id) {
    auto store =
        agent::OpenTarget(absl::StrCat("sqlite://", dir_, "/state.db"));
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return -1;
    absl::StatusOr<agent::QueryResult> result = (*store)->Query(
        "SELECT COALESCE(MAX(sequence), 0) FROM metric_batches WHERE "
        "database_id = :database_id",
        {agent::SqlParam::Text("database_id", database_id)});
    EXPECT_TRUE(result.ok()) << result.status();
    int64_t sequence = -1;
    if (result.ok() && !result->rows.empty()) {
      EXPECT_TRUE(absl::SimpleAtoi(result->rows[0].values[0], &sequence));
    }
    return sequence;
  }

  std::string dir_;
  std::string bundle_dir_;
  int port_ = 0;
  int metrics_port_ = 0;
  int server_starts_ = 0;
  uint64_t seed_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FleetService::Stub> fleet_;
  std::unique_ptr<v1::MetricsService::Stub> metrics_;
  std::string last_text_;
};

TEST_F(MetricsE2eTest, WorkloadRowsReachQueriesAndScrapes) {
  StartServer();
  const std::vector<Database> databases = Databases();
  for (const Database& database : databases) {
    std::printf("database %s\n", database.id.c_str());
    StartAgent(database);
  }
  Deploy(databases.size());

  constexpr int kCalls = 150;
  for (const Database& database : databases) {
    std::map<std::string, double> before =
        Series("operation_calls", database.id, "operation");
    Workload(database, kCalls);
    ASSERT_TRUE(WaitFor([&] { return CaughtUp(database); }, absl::Seconds(60)))
        << database.id << ": the server's figures never matched the rows";
    // Every call the workload made, counted once by the agent.
    EXPECT_EQ(
        WorkloadCalls(Series("operation_calls", database.id, "operation")) -
            WorkloadCalls(before),
        kCalls)
        << database.id;
    ExpectAnswersMatchRows(database);
  }

  // /metrics: the running totals of delta metrics, counted once each (the
  // rows the database holds), and the newest value of gauges.
  const Exposition scrape = Scrape();
  for (const Database& database : databases) {
    SCOPED_TRACE(database.id);
    const std::map<std::string, std::string> of = {{"database", database.id}};
    EXPECT_EQ(scrape.types.at("ecliptix_db_procedure_calls_total"), "counter");
    const Rows rows = Count(database);
    for (const auto& [procedure, values] : rows.performance) {
      EXPECT_EQ(
          scrape.Sum("ecliptix_db_procedure_calls_total",
                     {{"database", database.id}, {"procedure", procedure}}),
          values[0])
          << procedure << "\n"
          << last_text_;
    }
    double operation_calls = 0;
    for (const auto& [operation, counts] : rows.operations)
      operation_calls += counts.first;
    EXPECT_EQ(scrape.Sum("ecliptix_db_operation_calls_total", of),
              operation_calls);
    EXPECT_GT(scrape.Sum("ecliptix_db_procedure_execution_ms_total", of), 0);
    EXPECT_GT(scrape.Sum("ecliptix_db_table_rows", of), 0);
    EXPECT_GT(scrape.Sum("ecliptix_db_database_size_bytes", of), 0);
    EXPECT_GT(scrape.Sum("ecliptix_fleet_last_sample_timestamp_seconds", of),
              0);
    // Series carry the database's labels and the sample's.
    EXPECT_GT(scrape.Sum("ecliptix_db_procedure_calls_total",
                         {{"database", database.id},
                          {"env", "prod"},
                          {"procedure", "LoginMembership"}}),
              0)
        << last_text_;
  }
}

TEST_F(MetricsE2eTest, AgentCutOffForAMinuteDeliversItsSamplesOnceEach) {
  StartServer();
  const Database database = Databases().front();
  ChildProcess& agent = StartAgent(database);
  Deploy(1);
  Workload(database, 60);
  ASSERT_TRUE(WaitFor([&] { return CaughtUp(database); }, absl::Seconds(60)));
  const int64_t stored_before = StoredSequence(database.id);
  ASSERT_GT(stored_before, 0);
  const int port = port_;
  const int metrics_port = metrics_port_;

  // The server is killed (no goodbye, batches in flight lost or stored
  // unacknowledged) and stays away for a minute; the agent keeps collecting
  // rows the workload writes meanwhile, into its buffer.
  KillServer();
  const absl::Time cut_off = absl::Now();
  const size_t log_before = agent.Output().size();
  Workload(database, 100);
  absl::SleepFor(absl::Seconds(60) - (absl::Now() - cut_off));
  const absl::Time back = absl::Now();
  // Collected while the server was away (the agent logs each collector run
  // at debug level).
  const std::string while_away = agent.Output().substr(log_before);
  EXPECT_THAT(while_away,
              ::testing::HasSubstr("collector procedure_performance"))
      << while_away;

  StartServer(port, metrics_port);
  ASSERT_TRUE(WaitFor([&] { return CaughtUp(database); }, absl::Seconds(60)))
      << "the server's figures never matched the rows after the reconnect";
  // The batches kept while the server was away were stored after the
  // reconnect: later sequences, samples stamped during the outage.
  EXPECT_GT(StoredSequence(database.id), stored_before);
  std::map<std::string, double> during =
      Series("procedure_calls", database.id, "procedure", cut_off, back);
  double calls_during = 0;
  for (const auto& [procedure, calls] : during) calls_during += calls;
  EXPECT_GT(calls_during, 0);
  // Nothing twice: every total is exactly what the rows say.
  ExpectAnswersMatchRows(database);
}

}  // namespace
}  // namespace ecliptix
