// What the server's unit tests share: an agent's Hello, a bundle file, and a
// server core (store, registry, bundle catalog, orchestrator) on a fake clock
// over a SQLite file in the test's temporary directory.
#ifndef ECLIPTIX_TESTS_SERVER_SERVER_TESTING_H_
#define ECLIPTIX_TESTS_SERVER_SERVER_TESTING_H_

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "gtest/gtest.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/storage/state_store.h"

namespace ecliptix::testing {

// An agent that records the commands it is sent (cancels aside) and never
// answers by itself; the test answers for it.
class RecordingSession : public server::AgentSession {
 public:
  void Send(fleet::v1::ServerMessage message) override {
    if (!message.has_command() || message.command().has_cancel()) return;
    absl::MutexLock lock(&mutex_);
    commands_.push_back(message.command().command_id());
  }
  void Close(const absl::Status&) override {}
  // The first command sent; waits for one.
  std::string FirstCommand() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(
        +[](std::vector<std::string>* commands) { return !commands->empty(); },
        &commands_));
    return commands_.front();
  }

 private:
  absl::Mutex mutex_;
  std::vector<std::string> commands_ ABSL_GUARDED_BY(mutex_);
};

// A SQLite database's agent saying hello.
inline fleet::v1::Hello MakeHello(
    const std::string& id, std::map<std::string, std::string> labels = {}) {
  fleet::v1::Hello hello;
  hello.set_database_id(id);
  hello.set_engine(fleet::v1::ENGINE_SQLITE);
  hello.set_engine_version("3.40.1");
  hello.set_connector(fleet::v1::CONNECTOR_SQLITE);
  hello.set_agent_version("0.1.0");
  hello.mutable_labels()->insert(labels.begin(), labels.end());
  return hello;
}

inline fleet::v1::BundleFile File(const std::string& path,
                                  const std::string& content) {
  fleet::v1::BundleFile file;
  file.set_path(path);
  file.set_content(content);
  return file;
}

// A server core, not started; the store is named after the running test.
class ServerCoreTest : public ::testing::Test {
 protected:
  void OpenCore(const server::RolloutOptions& options) {
    absl::StatusOr<std::unique_ptr<server::StateStore>> store =
        server::StateStore::Open(absl::StrCat(
            "sqlite://", std::getenv("TEST_TMPDIR"), "/",
            ::testing::UnitTest::GetInstance()->current_test_info()->name(),
            ".db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    registry_ = std::make_unique<server::Registry>(store_.get(), &clock_,
                                                   server::RegistryOptions());
    bundles_ =
        std::make_unique<server::BundleCatalog>(store_.get(), &clock_, 1 << 20);
    orchestrator_ = std::make_unique<server::RolloutOrchestrator>(
        store_.get(), registry_.get(), bundles_.get(), &clock_, options);
  }

  FakeClock clock_;
  std::unique_ptr<server::StateStore> store_;
  std::unique_ptr<server::Registry> registry_;
  std::unique_ptr<server::BundleCatalog> bundles_;
  std::unique_ptr<server::RolloutOrchestrator> orchestrator_;
};

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_SERVER_SERVER_TESTING_H_
