// ecliptixctl's rollout commands: every strategy flag into the
// CreateRolloutRequest, usage errors (exit 2, nothing sent), and each verb end
// to end against a fake RolloutService, including the watch's exit codes.
#include "client/ctl_rollout.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/ctl_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_fleet_service.h"

namespace ecliptix::client::ctl {
namespace {

using ::ecliptix::testing::FakeFleetServer;
using ::ecliptix::testing::kRolloutCreateSeconds;
using ::ecliptix::testing::MakeRollout;
using ::ecliptix::testing::ScriptedRolloutEvents;
using fleet::v1::CreateRolloutRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

absl::StatusOr<CreateRolloutRequest> Request(std::vector<std::string> args) {
  absl::StatusOr<Invocation> invocation =
      ParseCommandLine(Commands(), args, "");
  if (!invocation.ok()) return invocation.status();
  return CreateRequestFromFlags(*invocation, "erin@desk");
}

// The message of the usage error `args` make, or "" if they parse.
std::string RequestError(std::vector<std::string> args) {
  absl::StatusOr<CreateRolloutRequest> request = Request(std::move(args));
  if (request.ok()) return "";
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsCommandUsageError(request.status())) << request.status();
  return std::string(request.status().message());
}

TEST(RolloutFlagsTest, Defaults) {
  absl::StatusOr<CreateRolloutRequest> request =
      Request({"rollout", "create", "ecliptix@1.2.0"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->bundle(), "ecliptix@1.2.0");
  EXPECT_EQ(request->selector(), "");
  EXPECT_FALSE(request->all_databases());
  EXPECT_EQ(request->requested_by(), "erin@desk");
  EXPECT_EQ(request->strategy().DebugString(), "");
  EXPECT_THAT(request->gates(), IsEmpty());
}

TEST(RolloutFlagsTest, EveryFlag) {
  absl::StatusOr<CreateRolloutRequest> request =
      Request({"rollout",
               "create",
               "sha256:abcdef",
               "--selector=env=prod,tier!=gold",
               "--waves=1, 25%,100%",
               "--max_parallel=4",
               "--failure_budget=10%",
               "--pause=5m",
               "--approval",
               "--auto_rollback=failed",
               "--offline_deadline=90s",
               "--offline=skip",
               "--order_by=env,region",
               "--order_values=staging,prod",
               "--phases=infrastructure,security",
               "--gate=team",
               "--gate",
               "staging,monitoring",
               "--gate=rollback-plan",
               "--window=Europe/Berlin,02:00-04:00,mon-fri",
               "--description=quarterly hardening"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->bundle(), "sha256:abcdef");
  EXPECT_EQ(request->selector(), "env=prod,tier!=gold");
  EXPECT_EQ(request->description(), "quarterly hardening");
  const fleet::v1::Strategy& strategy = request->strategy();
  EXPECT_THAT(strategy.waves(), ElementsAre("1", "25%", "100%"));
  EXPECT_EQ(strategy.max_parallel(), 4);
  EXPECT_EQ(strategy.failure_budget(), "10%");
  EXPECT_EQ(strategy.pause_between_waves().seconds(), 300);
  EXPECT_TRUE(strategy.approval_required());
  EXPECT_EQ(strategy.auto_rollback(), fleet::v1::AUTO_ROLLBACK_FAILED_TARGETS);
  EXPECT_EQ(strategy.offline_deadline().seconds(), 90);
  EXPECT_EQ(strategy.offline_policy(), fleet::v1::OFFLINE_POLICY_SKIP);
  EXPECT_THAT(strategy.order_by_labels(), ElementsAre("env", "region"));
  EXPECT_THAT(strategy.order_values(), ElementsAre("staging", "prod"));
  EXPECT_FALSE(strategy.backup_first());
  EXPECT_THAT(strategy.phases(), ElementsAre("infrastructure", "security"));
  ASSERT_EQ(request->gates_size(), 5);
  EXPECT_EQ(request->gates(0).kind(), fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_EQ(request->gates(1).kind(), fleet::v1::GATE_KIND_STAGING_TESTED);
  EXPECT_EQ(request->gates(2).kind(), fleet::v1::GATE_KIND_MONITORING_READY);
  EXPECT_EQ(request->gates(3).kind(), fleet::v1::GATE_KIND_ROLLBACK_PLAN);
  EXPECT_EQ(request->gates(4).kind(), fleet::v1::GATE_KIND_MAINTENANCE_WINDOW);
  const fleet::v1::MaintenanceWindow& window = request->gates(4).window();
  EXPECT_EQ(window.time_zone(), "Europe/Berlin");
  EXPECT_EQ(window.start(), "02:00");
  EXPECT_EQ(window.end(), "04:00");
  EXPECT_THAT(window.days(), ElementsAre("mon", "tue", "wed", "thu", "fri"));
  EXPECT_FALSE(request->gates(0).has_window());
}

TEST(RolloutFlagsTest, OtherValues) {
  absl::StatusOr<CreateRolloutRequest> request = Request(
      {"rollout", "plan", "ecliptix@1.2.0", "--all", "--auto_rollback=all",
       "--offline=fail", "--backup", "--pause=0s", "--failure_budget=2",
       "--gate=window,window", "--window=22:00-02:00"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->all_databases());
  EXPECT_EQ(request->strategy().auto_rollback(),
            fleet::v1::AUTO_ROLLBACK_ROLLOUT);
  EXPECT_EQ(request->strategy().offline_policy(),
            fleet::v1::OFFLINE_POLICY_FAIL);
  EXPECT_TRUE(request->strategy().backup_first());
  EXPECT_TRUE(request->strategy().has_pause_between_waves());
  EXPECT_EQ(request->strategy().failure_budget(), "2");
  ASSERT_EQ(request->gates_size(), 1);
  EXPECT_EQ(request->gates(0).window().time_zone(), "");
  EXPECT_EQ(request->gates(0).window().start(), "22:00");
  EXPECT_EQ(request->gates(0).window().end(), "02:00");
  EXPECT_THAT(request->gates(0).window().days(), IsEmpty());

  request = Request(
      {"rollout", "create", "b", "--auto_rollback=none", "--gate=backup"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->strategy().auto_rollback(),
            fleet::v1::AUTO_ROLLBACK_UNSPECIFIED);
  // The gate alone takes no backups: --backup, or an attestation (ODBC).
  EXPECT_FALSE(request->strategy().backup_first());
  EXPECT_EQ(request->gates(0).kind(), fleet::v1::GATE_KIND_BACKUP_COMPLETED);
}

TEST(RolloutFlagsTest, Windows) {
  absl::StatusOr<fleet::v1::MaintenanceWindow> window =
      ParseWindowFlag("UTC,23:30-24:00,fri-mon,wed");
  ASSERT_TRUE(window.ok()) << window.status();
  EXPECT_EQ(window->time_zone(), "UTC");
  EXPECT_EQ(window->end(), "24:00");
  EXPECT_THAT(window->days(), ElementsAre("fri", "sat", "sun", "mon", "wed"));
  window = ParseWindowFlag("02:00-04:00,Saturday,sun");
  ASSERT_TRUE(window.ok()) << window.status();
  EXPECT_THAT(window->days(), ElementsAre("sat", "sun"));

  for (const char* bad :
       {"", "Europe/Berlin", "Mars/Olympus,02:00-04:00", "02:00-04:00,someday",
        "2:00-4:00", "02:00-25:00", "02:00-02:00", "02:61-03:00",
        "mon,02:00-04:00", "02:00-04:00,03:00-05:00", "02:00-04:00,UTC"}) {
    absl::StatusOr<fleet::v1::MaintenanceWindow> parsed = ParseWindowFlag(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(IsCommandUsageError(parsed.status())) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("flag --window")) << bad;
  }
}

TEST(RolloutFlagsTest, States) {
  absl::StatusOr<std::vector<fleet::v1::RolloutState>> states =
      ParseStatesFlag("running, PAUSED,rolled_back,running");
  ASSERT_TRUE(states.ok()) << states.status();
  EXPECT_THAT(*states, ElementsAre(fleet::v1::ROLLOUT_STATE_RUNNING,
                                   fleet::v1::ROLLOUT_STATE_PAUSED,
                                   fleet::v1::ROLLOUT_STATE_ROLLED_BACK));
  states = ParseStatesFlag("active");
  ASSERT_TRUE(states.ok());
  EXPECT_THAT(*states, SizeIs(5));
  EXPECT_THAT(ParseStatesFlag("running,done").status().message(),
              HasSubstr("unknown rollout state \"done\""));
  EXPECT_FALSE(ParseStatesFlag(",").ok());
}

TEST(RolloutFlagsTest, SuccessGate) {
  absl::StatusOr<CreateRolloutRequest> request =
      Request({"rollout", "create", "ecliptix@1.2.0", "--success_gate",
               "--soak=2m", "--baseline=30m"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->strategy().success_gate().soak().seconds(), 120);
  EXPECT_EQ(request->strategy().success_gate().baseline().seconds(), 1800);
  request = Request({"rollout", "create", "ecliptix@1.2.0", "--success_gate"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->strategy().has_success_gate());
  EXPECT_EQ(request->strategy().success_gate().soak().seconds(), 0);
  EXPECT_THAT(
      RequestError({"rollout", "create", "ecliptix@1.2.0", "--soak=2m"}),
      HasSubstr("flags --soak and --baseline need --success_gate"));
}

TEST(RolloutFlagsTest, NonsenseIsAUsageError) {
  const std::string bundle = "ecliptix@1.2.0";
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--auto_rollback=maybe"}),
      HasSubstr("flag --auto_rollback: unknown value \"maybe\"; use none"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--offline=x"}),
              HasSubstr("flag --offline: unknown value \"x\"; use fail"));
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--gate=team,unknown"}),
      HasSubstr("flag --gate: unknown gate \"unknown\"; gates: backup, "
                "staging, window, rollback-plan, monitoring, team"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--gate=window"}),
              HasSubstr("flag --gate=window needs --window"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--window=2-4"}),
              HasSubstr("flag --window"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--waves=0%"}),
              HasSubstr("wave \"0%\" is empty"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--waves=1,150%"}),
              HasSubstr("wave \"150%\" is more than 100%"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--waves=1,half"}),
              HasSubstr("\"half\" is not a count of databases or a "
                        "percentage"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--waves=1.5"}),
              HasSubstr("\"1.5\" is not a count"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--waves=,"}),
              HasSubstr("flag --waves is empty"));
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--failure_budget=-1"}),
      HasSubstr("flag --failure_budget wants a count"));
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--failure_budget=101%"}),
      HasSubstr("flag --failure_budget"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--pause=soon"}),
              HasSubstr("flag --pause wants a duration such as 30s"));
  EXPECT_THAT(RequestError({"rollout", "create", bundle, "--pause=-5s"}),
              HasSubstr("flag --pause"));
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--offline_deadline=0s"}),
      HasSubstr("flag --offline_deadline wants a positive duration"));
  EXPECT_THAT(
      RequestError({"rollout", "create", bundle, "--order_values=staging"}),
      HasSubstr("flag --order_values needs --order_by"));
  EXPECT_THAT(RequestError({"rollout", "create", " "}),
              HasSubstr("BUNDLE is empty"));
  // Checked by the parser before the handler runs.
  EXPECT_EQ(Request({"rollout", "create", bundle, "--max_parallel=-1"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

class CtlRolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake().SetRollout(MakeRollout());
    fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_FAILED));
    context_.out = &out_;
    context_.err = &err_;
    context_.now = [] {
      return absl::FromUnixSeconds(kRolloutCreateSeconds + 60);
    };
    context_.user = "erin@desk";
    context_.time_zone = absl::UTCTimeZone();
  }

  int Run(std::vector<std::string> args) {
    context_.env_server = server_.address();
    return RunCtl(args, context_);
  }

  testing::FakeRolloutService& fake() { return server_.rollouts(); }

  std::vector<std::string> OutLines() const {
    return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  }

  FakeFleetServer server_;
  std::ostringstream out_;
  std::ostringstream err_;
  CtlContext context_;
};

TEST_F(CtlRolloutTest, UsageErrorsExitTwoAndSendNothing) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"rollout", "create", "b", "--auto_rollback=maybe"},
           {"rollout", "create", "b", "--offline=x"},
           {"rollout", "plan", "b", "--gate=unknown"},
           {"rollout", "create", "b", "--window=02:00"},
           {"rollout", "create", "b", "--waves=150%"},
           {"rollout", "list", "--state=done"},
           {"rollout", "attest", "r-7", "team"},
           {"rollout", "attest", "r-7", "nope", "--by=dave"},
           {"rollout", "watch", "r-7", "--after=-1"},
           {"rollout", "rollback", "r-7", "--wave=x"},
           {"rollout", "pause"},
       }) {
    out_.str("");
    err_.str("");
    EXPECT_EQ(Run(args), kExitUsage) << args[1] << " " << args.back();
    EXPECT_THAT(err_.str(), StartsWith("ecliptixctl: INVALID_ARGUMENT: "));
    EXPECT_EQ(out_.str(), "");
  }
  EXPECT_THAT(fake().calls().methods, IsEmpty());
}

TEST_F(CtlRolloutTest, ServerRefusalsExitOne) {
  fake().SetError(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "strategy.waves \"1,1\" shrinks"));
  EXPECT_EQ(Run({"rollout", "create", "ecliptix@1.2.0", "--waves=5,1"}),
            kExitFailure);
  EXPECT_EQ(err_.str(),
            "ecliptixctl: INVALID_ARGUMENT: strategy.waves \"1,1\" shrinks\n");
}

TEST_F(CtlRolloutTest, CreatePrintsTheIdAndASummary) {
  EXPECT_EQ(Run({"rollout", "create", "ecliptix@1.2.0", "--selector=env=prod",
                 "--waves=1,100%", "--gate=team"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(OutLines(),
              ElementsAre("rollout r-7 created: ecliptix@1.2.0 to 3 databases "
                          "in 2 waves (1, 2), pending",
                          "  strategy: waves 1,100%; failure budget 0; "
                          "offline: fail after 5m",
                          "  follow it: ecliptixctl rollout watch r-7"));
  const auto calls = fake().calls();
  ASSERT_TRUE(calls.create.has_value());
  EXPECT_EQ(calls.create->requested_by(), "erin@desk");
  EXPECT_EQ(calls.create->selector(), "env=prod");
  EXPECT_EQ(calls.create->gates(0).kind(), fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_THAT(calls.methods, ElementsAre("CreateRollout"));
}

TEST_F(CtlRolloutTest, CreateWatchFollowsAndExitsOneWhenItFails) {
  EXPECT_EQ(Run({"rollout", "create", "ecliptix@1.2.0", "--watch"}),
            kExitFailure);
  EXPECT_EQ(err_.str(), "");
  const std::string out = out_.str();
  EXPECT_THAT(out, StartsWith("rollout r-7 created: "));
  EXPECT_THAT(out, HasSubstr("\n22:13:22 wave 1 started: db-1\n"));
  EXPECT_THAT(out, HasSubstr("\n22:13:36 rollout failed: failure budget 0 "
                             "exceeded\n"));
  EXPECT_THAT(out, HasSubstr("\nDATABASE   WAVE   STATE"));
  EXPECT_THAT(out, HasSubstr("\nrollout r-7 failed after 16.0 s: 2 "
                             "succeeded, 1 failed\n"));
  EXPECT_THAT(out, Not(HasSubstr("\x1b")));
  EXPECT_THAT(fake().calls().methods,
              ElementsAre("CreateRollout", "WatchRollout"));
}

TEST_F(CtlRolloutTest, WatchExitsZeroWhenItSucceeds) {
  fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_SUCCEEDED));
  EXPECT_EQ(Run({"rollout", "watch", "r-7"}), kExitOk) << err_.str();
  const std::vector<std::string> lines = OutLines();
  ASSERT_THAT(lines, SizeIs(17 + 4 + 1));
  EXPECT_EQ(lines[0],
            "22:13:20 rollout r-7 ecliptix@1.2.0: pending, wave 0/2, failures "
            "0/0, 3 databases");
  EXPECT_EQ(lines[16], "22:13:36 rollout succeeded");
  EXPECT_EQ(lines.back(), "rollout r-7 succeeded after 16.0 s: 3 succeeded");
}

TEST_F(CtlRolloutTest, WatchExitsOneWhenAborted) {
  fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_ABORTED));
  EXPECT_EQ(Run({"rollout", "watch", "r-7"}), kExitFailure);
  EXPECT_THAT(out_.str(), HasSubstr("rollout r-7 aborted after"));
  fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_ROLLED_BACK));
  EXPECT_EQ(Run({"rollout", "watch", "r-7"}), kExitFailure);
}

TEST_F(CtlRolloutTest, WatchResumesOverADroppedStream) {
  fake().DropFirstWatchAfter(6);
  EXPECT_EQ(Run({"rollout", "watch", "r-7"}), kExitFailure);
  const std::vector<std::string> lines = OutLines();
  // Every event once: snapshot, 16 events, then the table and the outcome.
  ASSERT_THAT(lines, SizeIs(17 + 4 + 1));
  EXPECT_EQ(lines[5],
            "22:13:25 db-1 infrastructure/production-infrastructure applied "
            "(35 ms)");
  EXPECT_EQ(lines[6], "22:13:26 db-1 succeeded (1 applied, 0 skipped)");
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(0, 5));
}

TEST_F(CtlRolloutTest, WatchAfterStartsFromGetRollout) {
  EXPECT_EQ(Run({"rollout", "watch", "r-7", "--after=14"}), kExitFailure);
  EXPECT_THAT(OutLines(),
              ElementsAre("22:13:35 wave 2 finished: nothing ran",
                          "22:13:36 rollout failed: failure budget 0 exceeded",
                          StartsWith("DATABASE"), StartsWith("db-1"),
                          StartsWith("db-2"), StartsWith("db-3"),
                          "rollout r-7 failed after 16.0 s: 3 pending"));
  EXPECT_THAT(fake().calls().methods,
              ElementsAre("GetRollout", "WatchRollout"));
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(14));
}

TEST_F(CtlRolloutTest, WatchJsonIsOneEventPerLine) {
  EXPECT_EQ(Run({"rollout", "watch", "r-7", "-o", "json"}), kExitFailure);
  const std::vector<std::string> lines = OutLines();
  ASSERT_THAT(lines, SizeIs(17));
  EXPECT_THAT(lines[0], StartsWith("{\"sequence\":\"0\""));
  EXPECT_THAT(lines[0], HasSubstr("\"snapshot\":{\"rolloutId\":\"r-7\""));
  EXPECT_THAT(lines[16], StartsWith("{\"sequence\":\"16\""));
  EXPECT_THAT(lines[16], HasSubstr("\"ROLLOUT_STATE_FAILED\""));
}

TEST_F(CtlRolloutTest, WatchOnATerminalRedrawsInPlace) {
  context_.out_is_terminal = true;
  context_.terminal_width = [] { return 60; };
  EXPECT_EQ(Run({"rollout", "watch", "r-7"}), kExitFailure);
  const std::string out = out_.str();
  // Frames are redrawn over the previous one.
  EXPECT_THAT(out, HasSubstr("\x1b[2K"));
  EXPECT_THAT(out, HasSubstr("A\r\x1b[2K"));
  EXPECT_THAT(out, HasSubstr("wave 2 [####################] 2/2 done, 1 "
                             "failed\n"));
  // Notable events stay above the frame; routine ones only change it.
  EXPECT_THAT(out, HasSubstr("22:13:33 db-3 failed: "));
  EXPECT_THAT(out, Not(HasSubstr("22:13:29 db-2 running")));
  EXPECT_THAT(out, HasSubstr("\nrollout r-7 failed after 16.0 s"));
}

TEST_F(CtlRolloutTest, WatchUnknownRolloutExitsOne) {
  EXPECT_EQ(Run({"rollout", "watch", "r-404"}), kExitFailure);
  EXPECT_EQ(err_.str(),
            "ecliptixctl: NOT_FOUND: rollout \"r-404\" not found\n");
}

TEST_F(CtlRolloutTest, GetShowsDetailsAndTargets) {
  EXPECT_EQ(Run({"rollout", "get", "r-7"}), kExitOk) << err_.str();
  const std::string out = out_.str();
  EXPECT_THAT(out, StartsWith("Rollout:   r-7\n"));
  EXPECT_THAT(out, HasSubstr("\nDATABASE   WAVE   STATE     PHASE/STEP   "
                             "APPLIED/SKIPPED   ELAPSED   ERROR\n"
                             "db-1       1      pending   -            0/0  "
                             "             -\n"));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "get", "r-7", "-o", "json"}), kExitOk);
  EXPECT_THAT(out_.str(), StartsWith("{\"rolloutId\":\"r-7\""));
}

TEST_F(CtlRolloutTest, ListFollowsPagesAndFiltersStates) {
  fleet::v1::Rollout a = MakeRollout();
  fleet::v1::Rollout b = MakeRollout();
  b.set_rollout_id("r-6");
  b.set_state(fleet::v1::ROLLOUT_STATE_RUNNING);
  fleet::v1::Rollout c = MakeRollout();
  c.set_rollout_id("r-5");
  c.set_state(fleet::v1::ROLLOUT_STATE_SUCCEEDED);
  fake().SetListed({a, b, c});
  EXPECT_EQ(Run({"rollout", "list"}), kExitOk) << err_.str();
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("ROLLOUT   BUNDLE"), StartsWith("r-7 "),
                          StartsWith("r-6 "), StartsWith("r-5 ")));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "list", "--state=active"}), kExitOk);
  EXPECT_THAT(OutLines(), ElementsAre(StartsWith("ROLLOUT"), StartsWith("r-7"),
                                      StartsWith("r-6")));
  EXPECT_THAT(fake().calls().lists.back().states(), SizeIs(5));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "list", "--limit=1", "-o", "json"}), kExitOk);
  EXPECT_THAT(out_.str(), StartsWith("{\"rollouts\":[{\"rolloutId\":\"r-7\""));
  EXPECT_THAT(out_.str(), Not(HasSubstr("r-6")));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "list", "--state=failed"}), kExitOk);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "No rollouts found.\n");
}

TEST_F(CtlRolloutTest, PlanPrintsWavesAndSteps) {
  fleet::v1::RolloutPlan plan;
  *plan.mutable_rollout() = MakeRollout();
  plan.add_offline_databases("db-3");
  fake().SetPlan(plan);
  EXPECT_EQ(Run({"rollout", "plan", "ecliptix@1.2.0", "--waves=1,100%"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(),
              StartsWith("Plan: ecliptix@1.2.0 to 3 databases in 2 waves (1 "
                         "offline)\n"));
  EXPECT_THAT(out_.str(),
              HasSubstr("\nOffline (pending steps unknown): db-3\n"));
  EXPECT_THAT(fake().calls().plan->strategy().waves(),
              ElementsAre("1", "100%"));
}

TEST_F(CtlRolloutTest, ActionsSendActorAndReason) {
  for (const auto& [verb, method] :
       std::vector<std::pair<std::string, std::string>>{
           {"pause", "PauseRollout"},
           {"resume", "ResumeRollout"},
           {"abort", "AbortRollout"},
           {"retry", "RetryFailed"}}) {
    out_.str("");
    EXPECT_EQ(Run({"rollout", verb, "r-7", "--reason=db-2 looks slow"}),
              kExitOk)
        << err_.str();
    EXPECT_EQ(out_.str(),
              "r-7 ecliptix@1.2.0: pending, wave 0/2, failures 0/0\n");
    const auto calls = fake().calls();
    EXPECT_EQ(calls.methods.back(), method);
    EXPECT_EQ(calls.action->rollout_id(), "r-7");
    EXPECT_EQ(calls.action->actor(), "erin@desk");
    EXPECT_EQ(calls.action->reason(), "db-2 looks slow");
  }
  EXPECT_EQ(Run({"rollout", "pause", "r-404"}), kExitFailure);
}

TEST_F(CtlRolloutTest, Rollback) {
  EXPECT_EQ(Run({"rollout", "rollback", "r-7", "--phase=security", "--wave=2",
                 "--reason=bad index"}),
            kExitOk)
      << err_.str();
  const auto calls = fake().calls();
  ASSERT_TRUE(calls.rollback.has_value());
  EXPECT_EQ(calls.rollback->phase(), "security");
  EXPECT_EQ(calls.rollback->wave(), 2);
  EXPECT_EQ(calls.rollback->reason(), "bad index");
  EXPECT_EQ(calls.rollback->actor(), "erin@desk");
}

TEST_F(CtlRolloutTest, Attest) {
  fleet::v1::Rollout rollout = MakeRollout();
  fleet::v1::GateStatus* gate = rollout.add_gates();
  gate->set_kind(fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  gate->set_satisfied(true);
  gate->set_detail("attested by dave");
  fake().SetRollout(rollout);
  EXPECT_EQ(Run({"rollout", "attest", "r-7", "team-notified", "--by=dave",
                 "--comment=posted in #ops"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(OutLines(),
              ElementsAre(StartsWith("r-7 ecliptix@1.2.0: pending"),
                          "gate team: satisfied (attested by dave)"));
  const auto calls = fake().calls();
  ASSERT_TRUE(calls.attest.has_value());
  EXPECT_EQ(calls.attest->gate(), fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_EQ(calls.attest->attested_by(), "dave");
  EXPECT_EQ(calls.attest->comment(), "posted in #ops");
}

TEST_F(CtlRolloutTest, HelpSaysHowWatchExits) {
  EXPECT_EQ(Run({"rollout", "--help"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("exit 0 if it\nsucceeded, 1 if it failed, "
                                    "was aborted or was rolled back."));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "watch", "--help"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Exit status: 0 if the rollout succeeded"));
  out_.str("");
  EXPECT_EQ(Run({"rollout", "create", "--help"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("(repeatable)"));
}

}  // namespace
}  // namespace ecliptix::client::ctl
