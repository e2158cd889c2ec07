// The exporter inside the server handle, in process: the fleet's figures
// given to Server::ExportFleetFigures come out on /metrics with each
// database's labels from the registry, beside the control plane's figures;
// Shutdown lets go of them; a bad metrics address stops Start before the
// store is opened.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/fleet_figures.h"
#include "server/server.h"
#include "tests/server/server_testing.h"
#include "tests/testing/exposition.h"

namespace ecliptix::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

class FakeFleetFigures : public FleetFigures {
 public:
  explicit FakeFleetFigures(std::vector<LatestSample> samples)
      : samples_(std::move(samples)) {}
  std::vector<LatestSample> Latest() const override { return samples_; }

 private:
  const std::vector<LatestSample> samples_;
};

std::string StoreUrl(const std::string& name) {
  return absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"), "/", name,
                      ".db");
}

TEST(ServerMetricsTest, FleetFiguresWithRegistryLabels) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_listen_address = "127.0.0.1:0";
  options.store_url = StoreUrl("figures");
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);
  ASSERT_NE((*server)->metrics_exporter(), nullptr);
  ASSERT_TRUE((*server)
                  ->registry()
                  .Register(testing::MakeHello("db-1", {{"env", "prod"}}),
                            "peer",
                            std::make_shared<testing::RecordingSession>())
                  .ok());
  LatestSample sample;
  sample.database_id = "db-1";
  sample.metric = "table_rows";
  sample.labels = {{"table", "AuditLog"}};
  sample.value = 1234;
  sample.time = absl::Now();
  auto figures =
      std::make_unique<FakeFleetFigures>(std::vector<LatestSample>{sample});
  (*server)->ExportFleetFigures(figures.get());

  absl::StatusOr<std::string> body =
      testing::HttpGet("127.0.0.1", (*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  absl::StatusOr<testing::Exposition> exposition =
      testing::ParseExposition(*body);
  ASSERT_TRUE(exposition.ok()) << exposition.status() << *body;
  EXPECT_THAT(
      exposition->Value(
          "ecliptix_db_table_rows",
          {{"database", "db-1"}, {"env", "prod"}, {"table", "AuditLog"}}),
      Optional(1234.0))
      << *body;
  EXPECT_THAT(
      exposition->Value("ecliptix_agents_connected", {{"engine", "sqlite"}}),
      Optional(1.0));

  (*server)->Shutdown(absl::Seconds(1));
  // Let go of at Shutdown: neither set again nor read after.
  (*server)->ExportFleetFigures(figures.get());
  figures.reset();
  EXPECT_THAT((*server)->metrics_exporter()->Render(),
              ::testing::Not(HasSubstr("ecliptix_db_")));
}

TEST(ServerMetricsTest, BadMetricsAddressStopsStartFirst) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_listen_address = "192.0.2.1:9464";
  options.store_url = StoreUrl("never");
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(),
              HasSubstr("cannot serve Prometheus metrics on 192.0.2.1:9464"));
  EXPECT_FALSE(std::filesystem::exists(
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/never.db")));
}

}  // namespace
}  // namespace ecliptix::server
