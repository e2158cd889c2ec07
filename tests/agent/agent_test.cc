// Agent::Start in-process: option validation, database failures, the id, and a
// prompt shutdown while the server is unreachable. The end-to-end tests with
// the real server are in tests/integration.
#include "agent/agent.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

using ::testing::HasSubstr;

std::string SqliteUrl(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".db");
  std::remove(path.c_str());
  return absl::StrCat("sqlite://", path);
}

AgentOptions Options(const std::string& database_url) {
  AgentOptions options;
  // Nothing listens on port 1: the stream keeps retrying, which is what these
  // tests need.
  options.server_address = "127.0.0.1:1";
  options.database_url = database_url;
  options.labels = {{"env", "test"}};
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  return options;
}

TEST(AgentTest, InvalidOptionsAreInvalidArgument) {
  const std::string url = SqliteUrl("invalid_options");
  std::vector<AgentOptions> cases(5, Options(url));
  cases[0].server_address = "";
  cases[1].labels = {{"", "x"}};
  cases[2].database_id = "not valid";
  cases[3].initial_backoff = absl::ZeroDuration();
  cases[4].database_url = "nonsense";
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(Agent::Start(cases[i]).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "case " << i;
  }
}

TEST(AgentTest, UnreachableDatabaseIsUnavailable) {
  const char* dir = std::getenv("TEST_TMPDIR");
  AgentOptions options = Options(absl::StrCat(
      "sqlite://", dir != nullptr ? dir : "/tmp", "/missing/dir/x.db"));
  EXPECT_EQ(Agent::Start(options).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(AgentTest, KeepsTheIdAndShutsDownPromptlyWithoutServer) {
  const std::string url = SqliteUrl("keeps_id");
  AgentOptions options = Options(url);
  options.database_id = "orders-1";
  std::string id;
  {
    absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(options);
    ASSERT_TRUE(agent.ok()) << agent.status();
    id = (*agent)->database_id();
    EXPECT_EQ(id, "orders-1");
    EXPECT_EQ((*agent)->database().engine(), fleet::v1::ENGINE_SQLITE);
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_GE((*agent)->control_stream().attempts(), 2);
    EXPECT_FALSE((*agent)->control_stream().connected());
    const absl::Time start = absl::Now();
    (*agent)->Shutdown();
    (*agent)->Wait();
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  }
  options.database_id = "";
  absl::StatusOr<std::unique_ptr<Agent>> again = Agent::Start(options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->database_id(), "orders-1");
  again->reset();  // The destructor shuts down and waits.

  options.database_id = "orders-2";
  absl::StatusOr<std::unique_ptr<Agent>> conflict = Agent::Start(options);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(conflict.status().message(), HasSubstr("orders-1"));
}

}  // namespace
}  // namespace ecliptix::agent
