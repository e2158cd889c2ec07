// FleetClient's RolloutService calls against a fake RolloutService on port 0:
// requests and answers, deadlines, errors, watches, and resuming a watch over
// a dropped stream without a duplicate or a missing event.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "client/fleet_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_fleet_service.h"

namespace ecliptix::client {
namespace {

using ::ecliptix::testing::FakeFleetServer;
using ::ecliptix::testing::MakeRollout;
using ::ecliptix::testing::ScriptedRolloutEvents;
using ::ecliptix::testing::UnusedAddress;
using fleet::v1::Rollout;
using fleet::v1::RolloutEvent;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::unique_ptr<FleetClient> ClientFor(
    const std::string& address, absl::Duration timeout = absl::Seconds(5)) {
  ClientOptions options;
  options.server_address = address;
  options.rpc_timeout = timeout;
  absl::StatusOr<std::unique_ptr<FleetClient>> client =
      FleetClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(client).value();
}

// 0 for the snapshot, then 1..16.
std::vector<int64_t> AllSequences() {
  std::vector<int64_t> sequences = {0};
  for (int64_t i = 1; i <= 16; ++i) sequences.push_back(i);
  return sequences;
}

class FleetClientRolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake().SetRollout(MakeRollout());
    fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_SUCCEEDED));
    client_ = ClientFor(server_.address());
  }

  testing::FakeRolloutService& fake() { return server_.rollouts(); }

  // Resuming watch of r-7, collecting the sequences delivered.
  absl::Status WatchAll(std::vector<int64_t>* sequences, int max_reconnects = 3,
                        int64_t after = 0) {
    return client_->WatchRolloutResuming(
        "r-7",
        [sequences](const RolloutEvent& event) {
          sequences->push_back(event.sequence());
          return true;
        },
        max_reconnects, after);
  }

  FakeFleetServer server_;
  std::unique_ptr<FleetClient> client_;
};

TEST_F(FleetClientRolloutTest, CreateRolloutSendsTheRequest) {
  fleet::v1::CreateRolloutRequest request;
  request.set_bundle("ecliptix@1.2.0");
  request.set_selector("env=prod");
  request.mutable_strategy()->add_waves("1");
  request.set_requested_by("bob@laptop");
  absl::StatusOr<Rollout> rollout = client_->CreateRollout(request);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->rollout_id(), "r-7");
  EXPECT_EQ(rollout->targets_size(), 3);
  const auto calls = fake().calls();
  ASSERT_TRUE(calls.create.has_value());
  EXPECT_EQ(calls.create->bundle(), "ecliptix@1.2.0");
  EXPECT_EQ(calls.create->requested_by(), "bob@laptop");
  EXPECT_THAT(calls.create->strategy().waves(), ElementsAre("1"));
}

TEST_F(FleetClientRolloutTest, PlanRolloutGetsALongerDeadline) {
  client_ = ClientFor(server_.address(), absl::Seconds(2));
  fleet::v1::RolloutPlan plan;
  plan.add_offline_databases("db-9");
  fake().SetPlan(plan);
  fleet::v1::CreateRolloutRequest request;
  request.set_bundle("ecliptix@1.2.0");
  absl::StatusOr<fleet::v1::RolloutPlan> answer = client_->PlanRollout(request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_THAT(answer->offline_databases(), ElementsAre("db-9"));
  const auto calls = fake().calls();
  ASSERT_TRUE(calls.plan.has_value());
  EXPECT_EQ(calls.plan->bundle(), "ecliptix@1.2.0");
  // max(2s, 60s), as the server sees it (gRPC rounds the timeout it sends).
  EXPECT_GT(calls.plan_deadline, absl::Seconds(50));
  EXPECT_LT(calls.plan_deadline, absl::Seconds(62));
}

TEST_F(FleetClientRolloutTest, GetRolloutAndNotFound) {
  absl::StatusOr<Rollout> rollout = client_->GetRollout("r-7");
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->bundle_name_version(), "ecliptix@1.2.0");
  absl::StatusOr<Rollout> missing = client_->GetRollout("r-404");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "rollout \"r-404\" not found");
}

TEST_F(FleetClientRolloutTest, ListRolloutsReturnsOnePage) {
  Rollout a = MakeRollout();
  Rollout b = MakeRollout();
  b.set_rollout_id("r-6");
  b.set_state(fleet::v1::ROLLOUT_STATE_SUCCEEDED);
  Rollout c = MakeRollout();
  c.set_rollout_id("r-5");
  fake().SetListed({a, b, c});
  fleet::v1::ListRolloutsRequest request;
  absl::StatusOr<fleet::v1::ListRolloutsResponse> page =
      client_->ListRollouts(request);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->rollouts_size(), 2);
  EXPECT_EQ(page->rollouts(0).targets_size(), 0);
  EXPECT_EQ(page->next_page_token(), "2");
  request.add_states(fleet::v1::ROLLOUT_STATE_SUCCEEDED);
  page = client_->ListRollouts(request);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->rollouts_size(), 1);
  EXPECT_EQ(page->rollouts(0).rollout_id(), "r-6");
}

TEST_F(FleetClientRolloutTest, ActionsSendTheirRequests) {
  fleet::v1::RolloutActionRequest action;
  action.set_rollout_id("r-7");
  action.set_actor("carol");
  action.set_reason("lunch");
  EXPECT_TRUE(client_->PauseRollout(action).ok());
  EXPECT_TRUE(client_->ResumeRollout(action).ok());
  EXPECT_TRUE(client_->AbortRollout(action).ok());
  EXPECT_TRUE(client_->RetryFailed(action).ok());
  fleet::v1::RollbackRolloutRequest rollback;
  rollback.set_rollout_id("r-7");
  rollback.set_phase("security");
  rollback.set_wave(2);
  EXPECT_TRUE(client_->RollbackRollout(rollback).ok());
  fleet::v1::AttestGateRequest attest;
  attest.set_rollout_id("r-7");
  attest.set_gate(fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  attest.set_attested_by("dave");
  EXPECT_TRUE(client_->AttestGate(attest).ok());
  const auto calls = fake().calls();
  EXPECT_THAT(calls.methods,
              ElementsAre("PauseRollout", "ResumeRollout", "AbortRollout",
                          "RetryFailed", "RollbackRollout", "AttestGate"));
  EXPECT_EQ(calls.action->actor(), "carol");
  EXPECT_EQ(calls.action->reason(), "lunch");
  EXPECT_EQ(calls.rollback->phase(), "security");
  EXPECT_EQ(calls.rollback->wave(), 2);
  EXPECT_EQ(calls.attest->gate(), fleet::v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_EQ(calls.attest->attested_by(), "dave");
}

TEST_F(FleetClientRolloutTest, ServerErrorsPassThrough) {
  fake().SetError(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                               "db-2 is in rollout r-3"));
  fleet::v1::RolloutActionRequest action;
  action.set_rollout_id("r-7");
  absl::StatusOr<Rollout> paused = client_->PauseRollout(action);
  EXPECT_EQ(paused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(paused.status().message(), "db-2 is in rollout r-3");
}

TEST(FleetClientRolloutUnreachableTest, UnaryAndWatchNameTheServer) {
  const std::string address = UnusedAddress();
  std::unique_ptr<FleetClient> client = ClientFor(address);
  absl::StatusOr<Rollout> rollout = client->GetRollout("r-1");
  EXPECT_EQ(rollout.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(rollout.status().message(),
              HasSubstr("cannot reach ecliptix-server at " + address));
  int events = 0;
  const absl::Status status = client->WatchRolloutResuming(
      "r-1", [&](const RolloutEvent&) { return ++events, true; },
      /*max_reconnects=*/0);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(events, 0);
}

TEST_F(FleetClientRolloutTest, WatchEndsOkWhenTheRolloutEnds) {
  std::vector<int64_t> sequences;
  bool first_is_snapshot = false;
  fleet::v1::WatchRolloutRequest request;
  request.set_rollout_id("r-7");
  const absl::Status status =
      client_->WatchRollout(request, [&](const RolloutEvent& event) {
        if (sequences.empty()) first_is_snapshot = event.has_snapshot();
        sequences.push_back(event.sequence());
        return true;
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(first_is_snapshot);
  EXPECT_THAT(sequences, ElementsAreArray(AllSequences()));
}

TEST_F(FleetClientRolloutTest, WatchAfterASequenceHasNoSnapshot) {
  std::vector<int64_t> sequences;
  fleet::v1::WatchRolloutRequest request;
  request.set_rollout_id("r-7");
  request.set_after_sequence(13);
  EXPECT_TRUE(client_
                  ->WatchRollout(request,
                                 [&](const RolloutEvent& event) {
                                   sequences.push_back(event.sequence());
                                   return !event.has_snapshot();
                                 })
                  .ok());
  EXPECT_THAT(sequences, ElementsAre(14, 15, 16));
}

TEST_F(FleetClientRolloutTest, WatchUnknownRolloutIsNotFound) {
  fleet::v1::WatchRolloutRequest request;
  request.set_rollout_id("r-404");
  const absl::Status status =
      client_->WatchRollout(request, [](const RolloutEvent&) { return true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
}

TEST_F(FleetClientRolloutTest, WatchStopsWhenTheCallbackReturnsFalse) {
  fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_SUCCEEDED), 0,
                   /*end_ok=*/false);
  int seen = 0;
  fleet::v1::WatchRolloutRequest request;
  request.set_rollout_id("r-7");
  const absl::Status status = client_->WatchRollout(
      request, [&](const RolloutEvent&) { return ++seen < 3; });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, 3);
  EXPECT_TRUE(fake().watch_cancelled().WaitForNotificationWithTimeout(
      absl::Seconds(10)));
}

TEST_F(FleetClientRolloutTest, CancelWatchesEndsARolloutWatchOk) {
  fake().SetEvents(ScriptedRolloutEvents(fleet::v1::ROLLOUT_STATE_SUCCEEDED), 0,
                   /*end_ok=*/false);
  absl::Status status = absl::UnknownError("not finished");
  std::thread watcher([&] {
    status = client_->WatchRolloutResuming(
        "r-7", [](const RolloutEvent&) { return true; }, 3);
  });
  ASSERT_TRUE(fake().first_event_sent().WaitForNotificationWithTimeout(
      absl::Seconds(10)));
  client_->CancelWatches();
  watcher.join();
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(FleetClientRolloutTest, ResumesAfterADroppedStreamWithoutDuplicates) {
  // The snapshot and events 1..4, then the stream drops.
  fake().DropFirstWatchAfter(5);
  std::vector<int64_t> sequences;
  const absl::Status status = WatchAll(&sequences);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(sequences, ElementsAreArray(AllSequences()));
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(0, 4));
}

TEST_F(FleetClientRolloutTest, ResumesRightAfterTheSnapshot) {
  fake().DropFirstWatchAfter(1);
  std::vector<int64_t> sequences;
  EXPECT_TRUE(WatchAll(&sequences).ok());
  EXPECT_THAT(sequences, ElementsAreArray(AllSequences()));
  // The snapshot carried sequence 0, so the watch starts again from 0: a new
  // snapshot, delivered again (snapshots replace, they do not add up).
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(0, 0));
}

TEST_F(FleetClientRolloutTest, DropsEventsAServerSendsAgain) {
  fake().DropFirstWatchAfter(8);  // snapshot, 1..7
  fake().SetResumeOverlap(3);     // resumes from 5
  std::vector<int64_t> sequences;
  EXPECT_TRUE(WatchAll(&sequences).ok());
  EXPECT_THAT(sequences, ElementsAreArray(AllSequences()));
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(0, 7));
}

TEST_F(FleetClientRolloutTest, AGapIsDataLoss) {
  fake().DropFirstWatchAfter(8);
  fake().SetResumeSkipsOne(true);
  std::vector<int64_t> sequences;
  const absl::Status status = WatchAll(&sequences);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("sent event 9 after event 7"));
  EXPECT_EQ(sequences.back(), 7);
}

TEST_F(FleetClientRolloutTest, StartsAfterTheGivenSequence) {
  fake().DropFirstWatchAfter(2);  // 11, 12
  std::vector<int64_t> sequences;
  EXPECT_TRUE(WatchAll(&sequences, 3, /*after=*/10).ok());
  EXPECT_THAT(sequences, ElementsAre(11, 12, 13, 14, 15, 16));
  EXPECT_THAT(fake().calls().watch_after_sequences, ElementsAre(10, 12));
}

TEST_F(FleetClientRolloutTest, GivesUpAfterMaxReconnectsWithoutProgress) {
  fake().SetWatchUnavailable(true);
  std::vector<int64_t> sequences;
  const absl::Status status = WatchAll(&sequences, /*max_reconnects=*/2);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("going away"));
  EXPECT_EQ(fake().calls().watch_after_sequences.size(), 3u);
  EXPECT_TRUE(sequences.empty());
}

TEST_F(FleetClientRolloutTest, CancelWatchesStopsTheBackoff) {
  fake().SetWatchUnavailable(true);
  absl::Status status = absl::UnknownError("not finished");
  std::thread watcher([&] {
    status = client_->WatchRolloutResuming(
        "r-7", [](const RolloutEvent&) { return true; }, 1000);
  });
  // Let it fail a few times and back off.
  while (fake().calls().watch_after_sequences.size() < 3) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  const absl::Time start = absl::Now();
  client_->CancelWatches();
  watcher.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace ecliptix::client
