// The planner's gate checks name the gates as people type them.
#include "server/operations/rollout_planner.h"

#include <vector>

#include "common/rollout_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

TEST(RolloutPlannerTest, UnknownGateKindListsTheGates) {
  std::vector<v1::GateSpec> gates(1);
  const absl::Status status = ValidateGates(gates);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(GateNames()));
}

TEST(RolloutPlannerTest, AGateGivenTwiceIsNamed) {
  std::vector<v1::GateSpec> gates(2);
  gates[0].set_kind(v1::GATE_KIND_TEAM_NOTIFIED);
  gates[1].set_kind(v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_THAT(ValidateGates(gates).message(),
              HasSubstr("gates: team is given twice"));
}

TEST(RolloutPlannerTest, SuccessGateWindowsAreWholeMinutesOrDefault) {
  v1::Strategy strategy;
  strategy.mutable_success_gate();
  EXPECT_TRUE(ValidateStrategy(strategy).ok());
  strategy.mutable_success_gate()->mutable_soak()->set_seconds(90);
  EXPECT_THAT(ValidateStrategy(strategy).message(),
              HasSubstr("strategy.success_gate"));
  strategy.mutable_success_gate()->mutable_soak()->set_seconds(120);
  EXPECT_TRUE(ValidateStrategy(strategy).ok());
  strategy.mutable_success_gate()->mutable_baseline()->set_seconds(-60);
  EXPECT_EQ(ValidateStrategy(strategy).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ecliptix::server
