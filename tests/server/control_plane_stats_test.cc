// What the metrics exporter reads of the core on every scrape: the registry's
// connected agents by engine and database labels, and the orchestrator's
// rollouts by kind and state and its commands in flight, kept as commits go
// (a rollout counts once, through eviction, reloading and a restart).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "tests/server/server_testing.h"
#include "tests/testing/process.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::testing::RecordingSession;

constexpr char kManifest[] = R"(name: "b"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps {
    name: "t"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/t.sql" }
  }
}
)";

// Ends when the rollout ends.
class EndSink : public RolloutEventSink {
 public:
  bool Deliver(const v1::RolloutEvent&) override { return true; }
  void End(const absl::Status&) override { ended.Notify(); }
  absl::Notification ended;
};

class ControlPlaneStatsTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    RolloutOptions options;
    options.tick = absl::Milliseconds(1);
    options.retention = absl::Hours(1);
    OpenCore(options);
    absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
        {testing::File("manifest.textproto", kManifest),
         testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_id_ = bundle->bundle_id();
  }
  void TearDown() override {
    orchestrator_->Stop();
    registry_->Stop();
  }

  uint64_t Connect(const std::string& id, v1::Engine engine,
                   std::map<std::string, std::string> labels,
                   std::shared_ptr<AgentSession> agent) {
    v1::Hello hello = testing::MakeHello(id, std::move(labels));
    hello.set_engine(engine);
    absl::StatusOr<Registration> registration =
        registry_->Register(hello, "peer", std::move(agent));
    EXPECT_TRUE(registration.ok()) << registration.status();
    return registration.ok() ? registration->session_id : 0;
  }

  int64_t Count(const std::string& kind, v1::RolloutState state) {
    const RolloutOrchestrator::Stats stats = orchestrator_->GetStats();
    auto it = stats.rollouts.find({kind, state});
    return it != stats.rollouts.end() ? it->second : 0;
  }

  std::string bundle_id_;
};

TEST_F(ControlPlaneStatsTest, RegistryCountsConnectedAgentsByEngine) {
  EXPECT_TRUE(registry_->ConnectedByEngine().empty());
  const uint64_t a = Connect("a", v1::ENGINE_SQLITE, {{"env", "prod"}},
                             std::make_shared<RecordingSession>());
  Connect("b", v1::ENGINE_SQLITE, {}, std::make_shared<RecordingSession>());
  Connect("c", v1::ENGINE_POSTGRESQL, {{"env", "staging"}},
          std::make_shared<RecordingSession>());
  EXPECT_EQ(registry_->ConnectedByEngine(),
            (std::map<v1::Engine, int64_t>{{v1::ENGINE_SQLITE, 2},
                                           {v1::ENGINE_POSTGRESQL, 1}}));
  registry_->Unregister(a, "stream ended");
  EXPECT_EQ(registry_->ConnectedByEngine(),
            (std::map<v1::Engine, int64_t>{{v1::ENGINE_SQLITE, 1},
                                           {v1::ENGINE_POSTGRESQL, 1}}));
  // Labels of known databases, disconnected ones included.
  EXPECT_EQ(registry_->LabelsOf({"a", "c", "nobody"}),
            (std::map<std::string, Labels>{{"a", {{"env", "prod"}}},
                                           {"c", {{"env", "staging"}}}}));
}

TEST_F(ControlPlaneStatsTest, RolloutsAndCommandsInFlightFollowCommits) {
  auto agent = std::make_shared<RecordingSession>();
  const uint64_t session =
      Connect("db-1", v1::ENGINE_SQLITE, {{"env", "test"}}, agent);
  ASSERT_TRUE(orchestrator_->Start().ok());
  EXPECT_TRUE(orchestrator_->GetStats().rollouts.empty());
  EXPECT_EQ(orchestrator_->GetStats().commands_in_flight, 0);

  v1::CreateRolloutRequest create;
  create.set_bundle(bundle_id_);
  create.set_selector("env=test");
  absl::StatusOr<v1::Rollout> rollout = RolloutOrchestrator::Await<v1::Rollout>(
      [&](auto done) { orchestrator_->Create(create, std::move(done)); });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  const std::string command = agent->FirstCommand();
  // Answered once saved: the stats say so already.
  EXPECT_EQ(Count("deploy", v1::ROLLOUT_STATE_RUNNING), 1);
  EXPECT_EQ(orchestrator_->GetStats().commands_in_flight, 1);

  v1::AgentMessage finished;
  finished.mutable_command_event()->set_command_id(command);
  finished.mutable_command_event()->mutable_finished()->set_code(0);
  registry_->OnCommandMessage(session, finished);
  // Ends once the rollout has ended (at once if it has already).
  auto sink = std::make_shared<EndSink>();
  orchestrator_->Watch(rollout->rollout_id(), 0, sink);
  sink->ended.WaitForNotification();
  EXPECT_EQ(Count("deploy", v1::ROLLOUT_STATE_RUNNING), 0);
  EXPECT_EQ(Count("deploy", v1::ROLLOUT_STATE_SUCCEEDED), 1);
  EXPECT_EQ(orchestrator_->GetStats().commands_in_flight, 0);

  // Out of memory and back (a Get reads it from the store, and a later tick
  // evicts it again): still one. A round trip through the worker first: the
  // commit that ended the watch notes when the rollout finished only after
  // ending it.
  EXPECT_EQ(orchestrator_->RolloutsInMemory(), 1);
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(ecliptix::testing::WaitFor(
      [&] { return orchestrator_->RolloutsInMemory() == 0; }));
  ASSERT_TRUE(RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
                orchestrator_->Get(rollout->rollout_id(), std::move(done));
              }).ok());
  EXPECT_EQ(Count("deploy", v1::ROLLOUT_STATE_SUCCEEDED), 1);

  // A restarted server counts what its store holds. (The registry keeps the
  // stopped orchestrator's observers: no agent traffic from here on.)
  orchestrator_->Stop();
  orchestrator_ = std::make_unique<RolloutOrchestrator>(
      store_.get(), registry_.get(), bundles_.get(), &clock_, RolloutOptions());
  ASSERT_TRUE(orchestrator_->Start().ok());
  EXPECT_EQ(Count("deploy", v1::ROLLOUT_STATE_SUCCEEDED), 1);
  EXPECT_EQ(orchestrator_->GetStats().commands_in_flight, 0);
}

}  // namespace
}  // namespace ecliptix::server
