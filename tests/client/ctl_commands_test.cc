// ecliptixctl's commands end to end (parse, call, print, exit code) against a
// fake FleetService.
#include "client/ctl_commands.h"

#include <algorithm>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_fleet_service.h"

namespace ecliptix::client::ctl {
namespace {

using ::ecliptix::testing::FakeFleetServer;
using ::ecliptix::testing::MakeDatabase;
using ::ecliptix::testing::UnusedAddress;
using fleet::v1::FleetEvent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

class CtlCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.service().SetDatabases({
        MakeDatabase("db-1", {{"env", "prod"}}),
        MakeDatabase("db-2", {{"env", "staging"}}),
        MakeDatabase("db-3", {{"env", "prod"}}),
    });
    context_.out = &out_;
    context_.err = &err_;
    // Where the fake's databases were last seen 5 s before.
    context_.now = [] { return absl::FromUnixSeconds(1'700'000'005); };
  }

  // Runs with --server pointing at the fake (through the environment, as a user
  // would).
  int Run(std::vector<std::string> args) {
    context_.env_server = server_.address();
    return RunCtl(args, context_);
  }

  std::vector<std::string> OutLines() const {
    return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  }

  FakeFleetServer server_;
  std::ostringstream out_;
  std::ostringstream err_;
  CtlContext context_;
};

TEST_F(CtlCommandsTest, FleetListTable) {
  EXPECT_EQ(Run({"fleet", "list", "--page_size=2"}), kExitOk) << err_.str();
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("DATABASE ID   ENGINE   VERSION   STATE"),
                          "db-1          sqlite   3.40.1    connected   "
                          "env=prod      5s ago",
                          StartsWith("db-2"), StartsWith("db-3")));
  EXPECT_THAT(server_.service().page_tokens_seen(), ElementsAre("", "2"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CtlCommandsTest, FleetListJsonWithSelector) {
  EXPECT_EQ(Run({"-o", "json", "fleet", "list", "--selector", "env=prod"}),
            kExitOk)
      << err_.str();
  const std::string out = out_.str();
  EXPECT_THAT(out, StartsWith("{\"databases\":[{\"databaseId\":\"db-1\""));
  EXPECT_THAT(out, HasSubstr("\"databaseId\":\"db-3\""));
  EXPECT_THAT(out, Not(HasSubstr("db-2")));
  EXPECT_EQ(OutLines().size(), 1u);
}

TEST_F(CtlCommandsTest, FleetListNothingFound) {
  EXPECT_EQ(Run({"fleet", "list", "--selector=env=nowhere"}), kExitOk);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "No databases found.\n");
}

TEST_F(CtlCommandsTest, ServerSideErrorsExitOne) {
  EXPECT_EQ(Run({"fleet", "list", "--selector=env==prod,re gion=eu"}),
            kExitFailure);
  EXPECT_THAT(err_.str(), StartsWith("ecliptixctl: INVALID_ARGUMENT: "));
  EXPECT_THAT(err_.str(), HasSubstr("re gion=eu"));
}

TEST_F(CtlCommandsTest, FleetGet) {
  EXPECT_EQ(Run({"fleet", "get", "db-2"}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), StartsWith("Database ID:     db-2\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Labels:          env=staging\n"));
}

TEST_F(CtlCommandsTest, FleetGetNotFound) {
  EXPECT_EQ(Run({"fleet", "get", "nope"}), kExitFailure);
  EXPECT_EQ(err_.str(),
            "ecliptixctl: NOT_FOUND: database \"nope\" is not known\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CtlCommandsTest, FleetWatchCountTable) {
  std::vector<FleetEvent> events;
  for (const char* id : {"db-1", "db-2"}) {
    FleetEvent event;
    event.set_type(FleetEvent::TYPE_SNAPSHOT);
    *event.mutable_database() = MakeDatabase(id, {{"env", "prod"}});
    events.push_back(event);
  }
  FleetEvent complete;
  complete.set_type(FleetEvent::TYPE_SNAPSHOT_COMPLETE);
  events.push_back(complete);
  events.push_back(events[0]);
  server_.service().SetWatchEvents(events);
  EXPECT_EQ(Run({"fleet", "watch", "--count=3"}), kExitOk) << err_.str();
  EXPECT_THAT(OutLines(), ElementsAre(HasSubstr("SNAPSHOT           db-1"),
                                      HasSubstr("SNAPSHOT           db-2"),
                                      HasSubstr("SNAPSHOT_COMPLETE  -")));
}

TEST_F(CtlCommandsTest, FleetWatchJsonLines) {
  FleetEvent event;
  event.set_type(FleetEvent::TYPE_CONNECTED);
  *event.mutable_database() = MakeDatabase("db-1", {});
  server_.service().SetWatchEvents({event, event, event});
  EXPECT_EQ(Run({"fleet", "watch", "--count", "2", "--output=json"}), kExitOk)
      << err_.str();
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("{\"type\":\"TYPE_CONNECTED\""),
                          StartsWith("{\"type\":\"TYPE_CONNECTED\"")));
}

TEST_F(CtlCommandsTest, FleetWatchStopsCleanlyOnInterrupt) {
  FleetEvent event;
  event.set_type(FleetEvent::TYPE_SNAPSHOT_COMPLETE);
  server_.service().SetWatchEvents({event});
  InterruptState interrupts;
  context_.interrupts = &interrupts;
  int exit_code = -1;
  std::thread ctl([&] { exit_code = Run({"fleet", "watch"}); });
  ASSERT_TRUE(
      server_.service().first_event_sent().WaitForNotificationWithTimeout(
          absl::Seconds(10)));
  // The server has the call, so the command has begun its watch: Interrupt()
  // finds it.
  EXPECT_TRUE(interrupts.Interrupt());
  ctl.join();
  EXPECT_EQ(exit_code, kExitOk) << err_.str();
  EXPECT_TRUE(interrupts.interrupted());
}

TEST_F(CtlCommandsTest, UnreachableServerExitsOneAndNamesIt) {
  const std::string address = UnusedAddress();
  context_.env_server = "ignored:1";
  EXPECT_EQ(RunCtl({"--server=" + address, "fleet", "list"}, context_),
            kExitFailure);
  EXPECT_THAT(err_.str(), StartsWith("ecliptixctl: UNAVAILABLE: cannot reach "
                                     "ecliptix-server at " +
                                     address + ": "));
  const std::string err_text = err_.str();
  EXPECT_EQ(std::count(err_text.begin(), err_text.end(), '\n'), 1);

  std::ostringstream err;
  context_.err = &err;
  EXPECT_EQ(RunCtl({"fleet", "watch", "--server", address}, context_),
            kExitFailure);
  EXPECT_THAT(err.str(),
              HasSubstr("cannot reach ecliptix-server at " + address));
}

TEST_F(CtlCommandsTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Run({"fleet", "lst"}), kExitUsage);
  EXPECT_EQ(
      err_.str(),
      "ecliptixctl: INVALID_ARGUMENT: unknown verb \"lst\" for \"fleet\"; "
      "verbs: list, get, watch (see 'ecliptixctl fleet --help')\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CtlCommandsTest, NoArgumentsPrintsUsageAndExitsTwo) {
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_EQ(err_.str(), UsageText(Commands()));
}

TEST_F(CtlCommandsTest, HelpAndVersionNeedNoServer) {
  context_.env_server = UnusedAddress();
  EXPECT_EQ(RunCtl({"version"}, context_), kExitOk);
  EXPECT_EQ(out_.str(), "ecliptixctl 0.1.0\n");
  out_.str("");
  EXPECT_EQ(RunCtl({"fleet", "watch", "--help"}, context_), kExitOk);
  EXPECT_THAT(out_.str(), StartsWith("Usage: ecliptixctl fleet watch [flags]"));
  EXPECT_THAT(out_.str(), HasSubstr("--count=N"));
}

}  // namespace
}  // namespace ecliptix::client::ctl
