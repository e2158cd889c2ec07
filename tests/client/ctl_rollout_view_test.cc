// RolloutView and the rollout texts, from a scripted rollout: log lines per
// event, the live frame (plain and for a terminal), the tables, and the
// escapes that redraw a frame.
#include "client/ctl_rollout_view.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_rollout_service.h"

namespace ecliptix::client::ctl {
namespace {

using ::ecliptix::testing::kRolloutCreateSeconds;
using ::ecliptix::testing::MakeRollout;
using ::ecliptix::testing::ScriptedRolloutEvents;
using fleet::v1::Rollout;
using fleet::v1::RolloutEvent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Time At(double seconds_after_create) {
  return absl::FromUnixSeconds(kRolloutCreateSeconds) +
         absl::Seconds(seconds_after_create);
}

RolloutView::Options Utc() {
  RolloutView::Options options;
  options.zone = absl::UTCTimeZone();
  return options;
}

RolloutEvent Snapshot() {
  RolloutEvent event;
  event.set_sequence(0);
  event.mutable_event_time()->set_seconds(kRolloutCreateSeconds);
  *event.mutable_snapshot() = MakeRollout();
  return event;
}

// Applies the snapshot and the first `count` scripted events; returns every
// log line.
std::vector<std::string> ApplyScript(
    RolloutView& view, size_t count,
    fleet::v1::RolloutState final_state = fleet::v1::ROLLOUT_STATE_FAILED) {
  std::vector<std::string> lines = view.Apply(Snapshot());
  const std::vector<RolloutEvent> events = ScriptedRolloutEvents(final_state);
  for (size_t i = 0; i < count && i < events.size(); ++i) {
    for (std::string& line : view.Apply(events[i])) {
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

// The live view counts failures as the server does: an unknown outcome
// counts, a failed rollback does not, a retry starts the budget anew.
TEST(RolloutViewTest, FailuresAgainstTheBudgetAsTheServerCountsThem) {
  RolloutView view(MakeRollout(), Utc());
  int64_t sequence = 0;
  auto target = [&](const std::string& id, fleet::v1::TargetState state,
                    bool counts) {
    RolloutEvent event;
    event.set_sequence(++sequence);
    event.mutable_event_time()->set_seconds(kRolloutCreateSeconds + sequence);
    event.mutable_target()->set_database_id(id);
    event.mutable_target()->set_state(state);
    event.mutable_target()->set_counts_against_budget(counts);
    view.Apply(event);
  };
  target("db-1", fleet::v1::TARGET_STATE_RUNNING, false);
  target("db-1", fleet::v1::TARGET_STATE_UNKNOWN, true);
  EXPECT_EQ(view.rollout().failures(), 1);
  target("db-2", fleet::v1::TARGET_STATE_RUNNING, false);
  target("db-2", fleet::v1::TARGET_STATE_FAILED, true);
  target("db-2", fleet::v1::TARGET_STATE_ROLLING_BACK, false);
  target("db-2", fleet::v1::TARGET_STATE_FAILED, false);
  EXPECT_EQ(view.rollout().failures(), 2);
  EXPECT_THAT(view.Render(At(100), 0, false), HasSubstr("failures 2/0"));
  target("db-1", fleet::v1::TARGET_STATE_PENDING, false);
  EXPECT_EQ(view.rollout().failures(), 0);
}

TEST(RolloutNamesTest, ShortDuration) {
  EXPECT_EQ(ShortDuration(absl::Milliseconds(35)), "35 ms");
  EXPECT_EQ(ShortDuration(absl::Milliseconds(2450)), "2.5 s");
  EXPECT_EQ(ShortDuration(absl::Seconds(125)), "2m05s");
  EXPECT_EQ(ShortDuration(absl::Minutes(62)), "1h02m");
  EXPECT_EQ(ShortDuration(-absl::Seconds(3)), "0 ms");
}

TEST(RolloutViewTest, PlainLinesOnePerEvent) {
  RolloutView view(Utc());
  const std::vector<std::string> lines = ApplyScript(view, 16);
  EXPECT_THAT(
      lines,
      ElementsAre(
          "22:13:20 rollout r-7 ecliptix@1.2.0: pending, wave 0/2, failures "
          "0/0, 3 databases",
          "22:13:21 rollout running", "22:13:22 wave 1 started: db-1",
          "22:13:23 db-1 running",
          "22:13:24 db-1 infrastructure/production-infrastructure started",
          "22:13:25 db-1 infrastructure/production-infrastructure applied "
          "(35 ms)",
          "22:13:26 db-1 succeeded (1 applied, 0 skipped)",
          "22:13:27 wave 1 finished: 1 succeeded",
          "22:13:28 wave 2 started: db-2, db-3", "22:13:29 db-2 running",
          "22:13:30 db-3 running",
          "22:13:31 db-2 infrastructure/production-infrastructure skipped "
          "(2 ms)",
          "22:13:32 db-3 infrastructure/production-infrastructure failed: "
          "sqlite/001_infrastructure.sql:14: duplicate column name: tenant_id "
          "(rolled back)",
          "22:13:33 db-3 failed: infrastructure/production-infrastructure: "
          "duplicate column name: tenant_id",
          "22:13:34 db-2 succeeded (0 applied, 1 skipped)",
          "22:13:35 wave 2 finished: 1 succeeded, 1 failed",
          "22:13:36 rollout failed: failure budget 0 exceeded"));
  EXPECT_TRUE(view.finished());
  EXPECT_EQ(view.rollout().state(), fleet::v1::ROLLOUT_STATE_FAILED);
  EXPECT_EQ(view.rollout().failures(), 1);
  EXPECT_EQ(view.rollout().last_event_sequence(), 16);
}

TEST(RolloutViewTest, FrameWhileWaveTwoRuns) {
  RolloutView view(Utc());
  ApplyScript(view, 12);  // db-2 finished its step; db-3 failed its step
  EXPECT_FALSE(view.finished());
  EXPECT_EQ(view.Render(At(12.5), 0, false),
            "r-7 ecliptix@1.2.0  running  wave 2/2  failures 0/0  12.5 s\n"
            "wave 1 [####################] 1/1 done\n"
            "wave 2 [--------------------] 0/2 done, 2 running\n"
            "  db-2  running    infrastructure/production-infrastructure  "
            "3.5 s\n"
            "  db-3  running    infrastructure/production-infrastructure  "
            "2.5 s\n"
            "  db-1  succeeded  infrastructure/production-infrastructure  "
            "3.0 s\n");
  ApplyScript(view, 0);  // a new snapshot resets the model
  ApplyScript(view, 14);
  EXPECT_EQ(view.Render(At(14.5), 0, false),
            "r-7 ecliptix@1.2.0  running  wave 2/2  failures 1/0  14.5 s\n"
            "wave 1 [####################] 1/1 done\n"
            "wave 2 [####################] 2/2 done, 1 failed\n"
            "  db-3  failed     infrastructure/production-infrastructure  "
            "3.0 s  infrastructure/production-infrastructure: duplicate "
            "column name: tenant_id\n"
            "  db-2  succeeded  infrastructure/production-infrastructure  "
            "5.0 s\n"
            "  db-1  succeeded  infrastructure/production-infrastructure  "
            "3.0 s\n");
  // Long after: finished databases leave the frame, failed ones stay.
  EXPECT_EQ(view.Render(At(100), 0, false),
            "r-7 ecliptix@1.2.0  running  wave 2/2  failures 1/0  1m40s\n"
            "wave 1 [####################] 1/1 done\n"
            "wave 2 [####################] 2/2 done, 1 failed\n"
            "  db-3  failed  infrastructure/production-infrastructure  3.0 s  "
            "infrastructure/production-infrastructure: duplicate column name: "
            "tenant_id\n");
}

TEST(RolloutViewTest, StatementProgressShowsOnTheRunningDatabase) {
  RolloutView view(Utc());
  ApplyScript(view, 4);  // db-1's step started: 3 statements
  RolloutEvent progress;
  progress.set_sequence(5);
  progress.mutable_deployment()->set_database_id("db-1");
  progress.mutable_deployment()->mutable_event()->set_phase("infrastructure");
  progress.mutable_deployment()->mutable_event()->set_step("tables");
  auto* statement = progress.mutable_deployment()
                        ->mutable_event()
                        ->mutable_statement_progress();
  statement->set_statement_index(2);
  statement->set_statement_count(3);
  EXPECT_TRUE(view.Apply(progress).empty());
  EXPECT_THAT(view.Render(At(5), 0, false),
              HasSubstr("  db-1  running  infrastructure/tables  2.0 s  "
                        "statement 2/3\n"));
}

TEST(RolloutViewTest, TerminalFrameIsColouredAndFitsTheWidth) {
  RolloutView view(Utc());
  ApplyScript(view, 12);
  const std::string frame = view.Render(At(12.5), 30, true);
  EXPECT_THAT(frame, HasSubstr("\x1b[33mrunning\x1b[0m"));
  EXPECT_THAT(frame, HasSubstr("\x1b[32msucceeded\x1b[0m"));
  for (absl::string_view line :
       absl::StrSplit(frame, '\n', absl::SkipEmpty())) {
    std::string visible;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\x1b') {
        i = line.find('m', i);
        continue;
      }
      visible.push_back(line[i]);
    }
    EXPECT_LE(visible.size(), 30u) << visible;
  }
  EXPECT_THAT(frame, HasSubstr("wave 1 [####################]"));
  // Not a terminal: no escapes at all.
  EXPECT_THAT(view.Render(At(12.5), 30, false), Not(HasSubstr("\x1b")));
}

TEST(RolloutViewTest, WaitingAndPausedSayWhy) {
  RolloutView view(Utc());
  Rollout rollout = MakeRollout();
  rollout.set_state(fleet::v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  rollout.set_waiting_reason("gate team: not attested");
  fleet::v1::GateStatus* gate = rollout.add_gates();
  gate->set_kind(fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  gate->set_detail("not attested");
  RolloutEvent snapshot;
  *snapshot.mutable_snapshot() = rollout;
  view.Apply(snapshot);
  EXPECT_EQ(view.Render(At(1), 0, false),
            "r-7 ecliptix@1.2.0  waiting-for-gate  wave 0/2  failures 0/0  "
            "1.0 s\n"
            "  waiting-for-gate: gate team: not attested\n"
            "  gate team: not attested\n"
            "wave 1 [--------------------] 0/1 done\n"
            "wave 2 [--------------------] 0/2 done\n");
  RolloutEvent attested;
  attested.set_sequence(1);
  attested.mutable_event_time()->set_seconds(kRolloutCreateSeconds + 2);
  *attested.mutable_gate() = *gate;
  attested.mutable_gate()->set_satisfied(true);
  attested.mutable_gate()->set_detail("attested by dave");
  EXPECT_THAT(view.Apply(attested),
              ElementsAre("22:13:22 gate team satisfied: attested by dave"));
  RolloutEvent paused;
  paused.set_sequence(2);
  paused.mutable_state_changed()->set_state(fleet::v1::ROLLOUT_STATE_PAUSED);
  paused.mutable_state_changed()->set_reason("waiting for approval of wave 2");
  paused.mutable_state_changed()->set_actor("carol");
  EXPECT_THAT(view.Apply(paused),
              ElementsAre("--:--:-- rollout paused by carol: waiting for "
                          "approval of wave 2"));
  EXPECT_THAT(view.Render(At(3), 0, false),
              HasSubstr("\n  paused: waiting for approval of wave 2\n"));
  EXPECT_THAT(view.Render(At(3), 0, false), Not(HasSubstr("gate team")));
}

TEST(RolloutViewTest, EventsTheSeedAlreadyHasChangeNothing) {
  // GetRollout after event 6: db-1 succeeded.
  RolloutView full(Utc());
  ApplyScript(full, 6);
  Rollout seed = full.rollout();
  ASSERT_EQ(seed.last_event_sequence(), 6);
  RolloutView view(seed, Utc());
  const std::vector<RolloutEvent> events =
      ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_FAILED);
  // The server resends 3 (db-1 running): described, not applied.
  EXPECT_THAT(view.Apply(events[2]), ElementsAre("22:13:23 db-1 running"));
  EXPECT_EQ(view.rollout().targets(0).state(),
            fleet::v1::TARGET_STATE_SUCCEEDED);
  EXPECT_EQ(view.rollout().targets(0).steps_applied(), 1);
  view.Apply(events[7]);  // 8: wave 2 starts
  EXPECT_EQ(view.rollout().current_wave(), 2);
}

TEST(RolloutViewTest, ManyRunningDatabasesAreCapped) {
  RolloutView::Options options = Utc();
  options.max_database_lines = 2;
  RolloutView view(options);
  RolloutEvent snapshot;
  *snapshot.mutable_snapshot() = MakeRollout();
  view.Apply(snapshot);
  int64_t sequence = 0;
  for (const char* id : {"db-1", "db-2", "db-3"}) {
    RolloutEvent event;
    event.set_sequence(++sequence);
    event.mutable_event_time()->set_seconds(kRolloutCreateSeconds + sequence);
    event.mutable_target()->set_database_id(id);
    event.mutable_target()->set_state(fleet::v1::TARGET_STATE_RUNNING);
    view.Apply(event);
  }
  const std::string frame = view.Render(At(5), 0, false);
  EXPECT_THAT(frame, HasSubstr("  db-1  running  -  4.0 s\n"
                               "  db-2  running  -  3.0 s\n"
                               "  ... and 1 more (1 running)\n"));
  EXPECT_THAT(frame, Not(HasSubstr("db-3")));
}

TEST(RolloutViewTest, NotableEvents) {
  const std::vector<RolloutEvent> events =
      ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_FAILED);
  std::vector<int64_t> notable;
  for (const RolloutEvent& event : events) {
    if (RolloutView::IsNotable(event)) notable.push_back(event.sequence());
  }
  EXPECT_THAT(notable, ElementsAre(1, 2, 7, 8, 12, 13, 15, 16));
}

TEST(RolloutViewTest, RedrawFrame) {
  EXPECT_EQ(RedrawFrame("a\nb\n", 0), "\x1b[2Ka\n\x1b[2Kb\n\x1b[J");
  EXPECT_EQ(RedrawFrame("a\n", 3), "\x1b[3A\r\x1b[2Ka\n\x1b[J");
  EXPECT_EQ(CountLines("a\nb\n"), 2);
  EXPECT_EQ(CountLines("a\nb"), 2);
  EXPECT_EQ(CountLines(""), 0);
}

TEST(RolloutTextsTest, TargetTableAfterTheEnd) {
  RolloutView view(Utc());
  ApplyScript(view, 16);
  EXPECT_EQ(
      TargetTable(view.rollout(), At(100)),
      "DATABASE   WAVE   STATE       PHASE/STEP                                "
      " "
      "APPLIED/SKIPPED   ELAPSED   ERROR\n"
      "db-1       1      succeeded   infrastructure/production-infrastructure  "
      " "
      "1/0               3.0 s\n"
      "db-2       2      succeeded   infrastructure/production-infrastructure  "
      " "
      "0/1               5.0 s\n"
      "db-3       2      failed      infrastructure/production-infrastructure  "
      " "
      "0/0               3.0 s     infrastructure/production-infrastructure: "
      "duplicate column name: tenant_id\n");
}

TEST(RolloutTextsTest, StrategyAndSummaries) {
  Rollout rollout = MakeRollout();
  fleet::v1::Strategy& strategy = *rollout.mutable_strategy();
  strategy.set_max_parallel(2);
  strategy.mutable_pause_between_waves()->set_seconds(300);
  strategy.set_approval_required(true);
  strategy.set_auto_rollback(fleet::v1::AUTO_ROLLBACK_FAILED_TARGETS);
  strategy.set_offline_policy(fleet::v1::OFFLINE_POLICY_SKIP);
  strategy.mutable_offline_deadline()->set_seconds(30);
  strategy.add_order_by_labels("env");
  strategy.add_order_values("staging");
  strategy.set_backup_first(true);
  strategy.set_adopt(true);
  EXPECT_EQ(StrategyText(strategy),
            "waves 1,100%; max parallel 2; failure budget 0; pause 5m; "
            "approval between waves; auto-rollback failed targets; offline: "
            "skip after 30s; order by env (env: staging first); backup first; "
            "adopt existing objects");
  EXPECT_EQ(StrategyText(fleet::v1::Strategy()),
            "one wave; failure budget 0; offline: fail after 5m");
  EXPECT_EQ(RolloutStatusLine(rollout),
            "r-7 ecliptix@1.2.0: pending, wave 0/2, failures 0/0");
  const std::string created = RolloutCreatedText(rollout);
  EXPECT_THAT(created, HasSubstr("rollout r-7 created: ecliptix@1.2.0 to 3 "
                                 "databases in 2 waves (1, 2), pending\n"));
  EXPECT_THAT(created, HasSubstr("follow it: ecliptixctl rollout watch r-7\n"));
  const std::string details = RolloutDetails(
      rollout, absl::FromUnixSeconds(kRolloutCreateSeconds + 60));
  EXPECT_THAT(details, HasSubstr("Rollout:   r-7\n"));
  EXPECT_THAT(details, HasSubstr("Selector:  env=prod\n"));
  EXPECT_THAT(details, HasSubstr("Created:   2023-11-14T22:13:20.000Z (60s "
                                 "ago) by alice@host\n"));
  EXPECT_THAT(details, HasSubstr("\nDATABASE   WAVE   STATE"));
  const std::string table = RolloutTable({rollout}, At(60));
  EXPECT_EQ(table,
            "ROLLOUT   BUNDLE           STATE     WAVE   FAILURES   CREATED   "
            "BY           DESCRIPTION\n"
            "r-7       ecliptix@1.2.0   pending   0/2    0/0        60s ago   "
            "alice@host\n");
}

TEST(RolloutTextsTest, Plan) {
  fleet::v1::RolloutPlan plan;
  *plan.mutable_rollout() = MakeRollout();
  fleet::v1::TargetPlan* db1 = plan.add_targets();
  db1->set_database_id("db-1");
  db1->set_wave(1);
  fleet::v1::DeploymentEvent* step = db1->add_pending_steps();
  step->set_phase("infrastructure");
  step->set_step("production-infrastructure");
  step->mutable_step_planned()->set_reason("new");
  step = db1->add_pending_steps();
  step->set_phase("security");
  step->set_step("audit");
  step->mutable_step_planned()->set_reason("changed (repeatable)");
  fleet::v1::TargetPlan* db2 = plan.add_targets();
  db2->set_database_id("db-2");
  db2->set_wave(2);
  plan.add_offline_databases("db-3");
  EXPECT_EQ(PlanText(plan),
            "Plan: ecliptix@1.2.0 to 3 databases in 2 waves (1 offline)\n"
            "Strategy: waves 1,100%; failure budget 0; offline: fail after "
            "5m\n"
            "Phases: infrastructure\n"
            "\n"
            "Waves:\n"
            "  wave 1 (1): db-1\n"
            "  wave 2 (2): db-2, db-3\n"
            "\n"
            "Pending steps:\n"
            "  db-1 (wave 1): 2 steps\n"
            "    infrastructure/production-infrastructure   new\n"
            "    security/audit                             changed "
            "(repeatable)\n"
            "  db-2 (wave 2): nothing to do, every step is applied\n"
            "\n"
            "Offline (pending steps unknown): db-3\n");
}

}  // namespace
}  // namespace ecliptix::client::ctl
