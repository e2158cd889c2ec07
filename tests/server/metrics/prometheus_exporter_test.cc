// The Prometheus exporter on its own: the fleet's latest figures through a
// fake FleetFigures (names and labels made acceptable, clashes renamed, the
// newest sample kept), the control plane's figures through a reader, store
// write latencies, the HTTP endpoint, and addresses refused with a reason.
#include "server/metrics/prometheus_exporter.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/fleet_figures.h"
#include "tests/testing/exposition.h"

namespace ecliptix::server {
namespace {

using ::ecliptix::testing::Exposition;
using ::ecliptix::testing::ParseExposition;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

// The metric store's stand-in: whatever samples the test sets.
class FakeFleetFigures : public FleetFigures {
 public:
  void Set(std::vector<LatestSample> samples) {
    absl::MutexLock lock(&mutex_);
    samples_ = std::move(samples);
  }
  std::vector<LatestSample> Latest() const override {
    absl::MutexLock lock(&mutex_);
    ++calls_;
    return samples_;
  }
  int calls() const {
    absl::MutexLock lock(&mutex_);
    return calls_;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<LatestSample> samples_ ABSL_GUARDED_BY(mutex_);
  mutable int calls_ ABSL_GUARDED_BY(mutex_) = 0;
};

LatestSample Sample(std::string database, std::string metric, Labels labels,
                    double value, absl::Time time) {
  LatestSample sample;
  sample.database_id = std::move(database);
  sample.metric = std::move(metric);
  sample.labels = std::move(labels);
  sample.value = value;
  sample.time = time;
  return sample;
}

std::unique_ptr<PrometheusExporter> StartExporter() {
  absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter =
      PrometheusExporter::Start("127.0.0.1:0");
  EXPECT_TRUE(exporter.ok()) << exporter.status();
  return exporter.ok() ? *std::move(exporter) : nullptr;
}

Exposition Parse(const std::string& text) {
  absl::StatusOr<Exposition> parsed = ParseExposition(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  return parsed.ok() ? *parsed : Exposition();
}

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(PrometheusExporterTest, FleetFiguresWithDatabaseAndSampleLabels) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  FakeFleetFigures figures;
  figures.Set({
      Sample("db-1", "procedure_calls", {{"procedure", "SP_Login"}}, 12, kT0),
      Sample("db-1", "procedure_calls", {{"procedure", "SP_Logout"}}, 3, kT0),
      Sample("db-2", "procedure_calls", {{"procedure", "SP_Login"}}, 7,
             kT0 + absl::Seconds(5)),
      Sample("db-1", "database_size_bytes", {}, 1048576, kT0),
      Sample("db-unknown", "table_rows", {{"table", "AuditLog"}}, 42, kT0),
  });
  std::vector<std::string> asked;
  exporter->SetFleetFigures(&figures, [&](const std::vector<std::string>& ids) {
    asked = ids;
    return std::map<std::string, Labels>{
        {"db-1", {{"env", "prod"}, {"region", "eu"}}},
        {"db-2", {{"env", "staging"}}}};
  });
  const std::string text = exporter->Render();
  const Exposition exposition = Parse(text);
  // Each database is looked up once.
  EXPECT_EQ(asked, (std::vector<std::string>{"db-1", "db-2", "db-unknown"}));

  EXPECT_EQ(exposition.types.at("ecliptix_db_procedure_calls"), "gauge");
  EXPECT_THAT(exposition.Value("ecliptix_db_procedure_calls",
                               {{"database", "db-1"},
                                {"env", "prod"},
                                {"region", "eu"},
                                {"procedure", "SP_Login"}}),
              Optional(12.0));
  EXPECT_THAT(exposition.Value("ecliptix_db_procedure_calls",
                               {{"database", "db-1"},
                                {"env", "prod"},
                                {"region", "eu"},
                                {"procedure", "SP_Logout"}}),
              Optional(3.0));
  EXPECT_THAT(exposition.Value("ecliptix_db_procedure_calls",
                               {{"database", "db-2"},
                                {"env", "staging"},
                                {"procedure", "SP_Login"}}),
              Optional(7.0));
  EXPECT_THAT(exposition.Value(
                  "ecliptix_db_database_size_bytes",
                  {{"database", "db-1"}, {"env", "prod"}, {"region", "eu"}}),
              Optional(1048576.0));
  // A database the registry does not know: its own labels only.
  EXPECT_THAT(
      exposition.Value("ecliptix_db_table_rows",
                       {{"database", "db-unknown"}, {"table", "AuditLog"}}),
      Optional(42.0));
  // The freshness of each database's figures.
  EXPECT_THAT(exposition.Value("ecliptix_fleet_last_sample_timestamp_seconds",
                               {{"database", "db-2"}}),
              Optional(1'800'000'005.0));
  EXPECT_THAT(exposition.Value("ecliptix_fleet_last_sample_timestamp_seconds",
                               {{"database", "db-1"}}),
              Optional(1'800'000'000.0));
  // No timestamps on the samples: Prometheus stamps them with the scrape.
  EXPECT_THAT(text, HasSubstr("{database=\"db-1\",env=\"prod\",region=\"eu\","
                              "procedure=\"SP_Login\"} 12\n"));
}

TEST(PrometheusExporterTest, NamesAreMadeAcceptableAndClashesRenamed) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  FakeFleetFigures figures;
  figures.Set({
      // A label named like a database label and one named "database"; keys
      // with characters Prometheus does not take; a value to escape.
      Sample("db-1", "auth-events.total",
             {{"env", "sample-env"},
              {"database", "inner"},
              {"app.kubernetes.io/name", "x\"y\\z"},
              {"9lives", "cat"},
              {"__reserved", "r"}},
             5, kT0),
      // Two series that meet once named for Prometheus: the newer wins.
      Sample("db-1", "rows", {{"a-b", "1"}}, 1, kT0),
      Sample("db-1", "rows", {{"a_b", "1"}}, 2, kT0 + absl::Seconds(1)),
      Sample("db-1", "ratio", {}, std::nan(""), kT0),
  });
  exporter->SetFleetFigures(&figures, [](const std::vector<std::string>&) {
    return std::map<std::string, Labels>{
        {"db-1", {{"env", "prod"}, {"team.name", "payments"}}}};
  });
  const std::string text = exporter->Render();
  const Exposition exposition = Parse(text);
  EXPECT_THAT(exposition.Value("ecliptix_db_auth_events_total",
                               {{"database", "db-1"},
                                {"env", "prod"},
                                {"team_name", "payments"},
                                {"exported_env", "sample-env"},
                                {"exported_database", "inner"},
                                {"app_kubernetes_io_name", "x\"y\\z"},
                                {"_9lives", "cat"},
                                {"_reserved", "r"}}),
              Optional(5.0))
      << text;
  EXPECT_THAT(exposition.Value("ecliptix_db_rows", {{"database", "db-1"},
                                                    {"env", "prod"},
                                                    {"team_name", "payments"},
                                                    {"a_b", "1"}}),
              Optional(2.0));
  std::optional<double> ratio = exposition.Value(
      "ecliptix_db_ratio",
      {{"database", "db-1"}, {"env", "prod"}, {"team_name", "payments"}});
  ASSERT_TRUE(ratio.has_value()) << text;
  EXPECT_TRUE(std::isnan(*ratio));

  EXPECT_EQ(PrometheusMetricName("a.b:c-1"), "a_b:c_1");
  EXPECT_EQ(PrometheusMetricName("1st"), "_1st");
  EXPECT_EQ(PrometheusLabelName("a:b"), "a_b");
  EXPECT_EQ(PrometheusLabelName("__name__"), "_name__");
}

TEST(PrometheusExporterTest, DeltaMetricsAreCountersOfTheirRunningTotal) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  FakeFleetFigures figures;
  LatestSample calls =
      Sample("db-1", "procedure_calls", {{"procedure", "SP_Login"}}, 3, kT0);
  calls.counter = true;
  calls.total = 1500;
  LatestSample already_named = Sample("db-1", "logins_total", {}, 2, kT0);
  already_named.counter = true;
  already_named.total = 40;
  figures.Set({calls, already_named,
               Sample("db-1", "table_rows", {{"table", "AuditLog"}}, 9, kT0)});
  exporter->SetFleetFigures(&figures, [](const std::vector<std::string>&) {
    return std::map<std::string, Labels>{};
  });
  const std::string text = exporter->Render();
  const Exposition exposition = Parse(text);
  // The total, not the newest amount, under Prometheus' counter name.
  EXPECT_EQ(exposition.types.at("ecliptix_db_procedure_calls_total"), "counter")
      << text;
  EXPECT_THAT(
      exposition.Value("ecliptix_db_procedure_calls_total",
                       {{"database", "db-1"}, {"procedure", "SP_Login"}}),
      Optional(1500.0));
  EXPECT_EQ(exposition.types.count("ecliptix_db_procedure_calls"), 0u);
  EXPECT_EQ(exposition.types.at("ecliptix_db_logins_total"), "counter");
  EXPECT_THAT(
      exposition.Value("ecliptix_db_logins_total", {{"database", "db-1"}}),
      Optional(40.0));
  // Gauges stay the newest value.
  EXPECT_EQ(exposition.types.at("ecliptix_db_table_rows"), "gauge");
  EXPECT_THAT(exposition.Value("ecliptix_db_table_rows",
                               {{"database", "db-1"}, {"table", "AuditLog"}}),
              Optional(9.0));
}

TEST(PrometheusExporterTest, FleetFiguresCanBeReplacedAndRemoved) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  EXPECT_THAT(exporter->Render(), Not(HasSubstr("ecliptix_db_")));
  FakeFleetFigures first;
  first.Set({Sample("db-1", "table_rows", {{"table", "t"}}, 1, kT0)});
  // No labels reader: database="..." and the sample's labels.
  exporter->SetFleetFigures(&first, nullptr);
  const Exposition one = Parse(exporter->Render());
  EXPECT_THAT(one.Value("ecliptix_db_table_rows",
                        {{"database", "db-1"}, {"table", "t"}}),
              Optional(1.0));
  FakeFleetFigures second;
  second.Set({Sample("db-2", "table_rows", {{"table", "t"}}, 2, kT0)});
  exporter->SetFleetFigures(&second, nullptr);
  const int first_calls = first.calls();
  const Exposition two = Parse(exporter->Render());
  EXPECT_EQ(first.calls(), first_calls);
  EXPECT_FALSE(two.Value("ecliptix_db_table_rows",
                         {{"database", "db-1"}, {"table", "t"}})
                   .has_value());
  EXPECT_THAT(two.Value("ecliptix_db_table_rows",
                        {{"database", "db-2"}, {"table", "t"}}),
              Optional(2.0));
  exporter->SetFleetFigures(nullptr, nullptr);
  EXPECT_THAT(exporter->Render(), Not(HasSubstr("ecliptix_db_")));
}

TEST(PrometheusExporterTest, ControlPlaneFiguresAndStoreWrites) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  ControlPlaneFigures figures;
  figures.agents_connected = {{"sqlite", 2}, {"postgresql", 0}};
  figures.commands_in_flight = 3;
  figures.rollouts = {{{"deploy", "running"}, 1}, {{"job", "succeeded"}, 4}};
  figures.jobs_enabled = 2;
  figures.jobs_disabled = 1;
  figures.jobs_running = 1;
  exporter->SetControlPlane([&] { return figures; });
  const auto observe = exporter->StoreWriteObserver();
  observe("save_rollouts", absl::Microseconds(300));
  observe("save_rollouts", absl::Milliseconds(20));
  observe("upsert_databases", absl::Seconds(30));

  const Exposition exposition = Parse(exporter->Render());
  EXPECT_THAT(
      exposition.Value("ecliptix_agents_connected", {{"engine", "sqlite"}}),
      Optional(2.0));
  EXPECT_THAT(
      exposition.Value("ecliptix_agents_connected", {{"engine", "postgresql"}}),
      Optional(0.0));
  EXPECT_THAT(exposition.Value("ecliptix_commands_in_flight"), Optional(3.0));
  EXPECT_THAT(exposition.Value("ecliptix_rollouts",
                               {{"operation", "job"}, {"state", "succeeded"}}),
              Optional(4.0));
  EXPECT_THAT(exposition.Value("ecliptix_jobs", {{"state", "enabled"}}),
              Optional(2.0));
  EXPECT_THAT(exposition.Value("ecliptix_jobs", {{"state", "disabled"}}),
              Optional(1.0));
  EXPECT_THAT(exposition.Value("ecliptix_jobs_running"), Optional(1.0));
  EXPECT_EQ(exposition.types.at("ecliptix_state_store_write_seconds"),
            "histogram");
  EXPECT_THAT(exposition.Value("ecliptix_state_store_write_seconds_count",
                               {{"operation", "save_rollouts"}}),
              Optional(2.0));
  EXPECT_THAT(
      exposition.Value("ecliptix_state_store_write_seconds_bucket",
                       {{"operation", "save_rollouts"}, {"le", "0.001"}}),
      Optional(1.0));
  EXPECT_THAT(
      exposition.Value("ecliptix_state_store_write_seconds_bucket",
                       {{"operation", "upsert_databases"}, {"le", "10"}}),
      Optional(0.0));
  EXPECT_THAT(
      exposition.Value("ecliptix_state_store_write_seconds_bucket",
                       {{"operation", "upsert_databases"}, {"le", "+Inf"}}),
      Optional(1.0));
  EXPECT_THAT(exposition.Value("ecliptix_server_info", {{"version", "0.1.0"}}),
              Optional(1.0));

  // Replaced: the old reader is not called again.
  int calls = 0;
  exporter->SetControlPlane([&] {
    ++calls;
    return ControlPlaneFigures();
  });
  Parse(exporter->Render());
  EXPECT_EQ(calls, 1);
  // What the store observer records outlives the exporter.
  exporter.reset();
  observe("save_job", absl::Milliseconds(1));
}

TEST(PrometheusExporterTest, ServesMetricsOverHttp) {
  std::unique_ptr<PrometheusExporter> exporter = StartExporter();
  ASSERT_NE(exporter, nullptr);
  ASSERT_GT(exporter->port(), 0);
  FakeFleetFigures figures;
  figures.Set({Sample("db-1", "database_size_bytes", {}, 4096, kT0)});
  exporter->SetFleetFigures(&figures, nullptr);
  absl::StatusOr<std::string> body =
      testing::HttpGet("127.0.0.1", exporter->port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  const Exposition exposition = Parse(*body);
  EXPECT_THAT(exposition.Value("ecliptix_db_database_size_bytes",
                               {{"database", "db-1"}}),
              Optional(4096.0));
  if (auto promtool = testing::RunPromtool(*body)) {
    // 1 is a parse failure; lint findings alone exit 3.
    EXPECT_NE(promtool->exit_code, 1) << promtool->output;
  }
  EXPECT_EQ(
      testing::HttpGet("127.0.0.1", exporter->port(), "/other").status().code(),
      absl::StatusCode::kFailedPrecondition);
  exporter->StopServing();
  EXPECT_EQ(testing::HttpGet("127.0.0.1", exporter->port(), "/metrics")
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST(PrometheusExporterTest, BadAddressesAreRefusedWithTheReason) {
  for (const char* address :
       {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
        "127.0.0.1:http", ":9464", "[::1]:9464", "::1:9464",
        "127.0.0.1:1,127.0.0.1:2", "127.0.0.1:9464s"}) {
    absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter =
        PrometheusExporter::Start(address);
    EXPECT_EQ(exporter.status().code(), absl::StatusCode::kInvalidArgument)
        << address << ": " << exporter.status();
    EXPECT_THAT(exporter.status().message(), HasSubstr(address));
  }

  // A port another socket listens on.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter =
      PrometheusExporter::Start(taken);
  EXPECT_EQ(exporter.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      exporter.status().message(),
      HasSubstr(absl::StrCat("cannot serve Prometheus metrics on ", taken)));
  EXPECT_THAT(exporter.status().message(), HasSubstr("Address already in use"));
  close(fd);

  // Not an address of this host.
  exporter = PrometheusExporter::Start("192.0.2.1:9464");
  EXPECT_EQ(exporter.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(exporter.status().message(),
              HasSubstr("Cannot assign requested address"));
}

}  // namespace
}  // namespace ecliptix::server
