#include "common/rollout_names.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

TEST(RolloutNamesTest, StatesAndGates) {
  EXPECT_EQ(RolloutStateName(v1::ROLLOUT_STATE_WAITING_FOR_GATE),
            "waiting-for-gate");
  EXPECT_EQ(RolloutStateName(v1::ROLLOUT_STATE_ROLLED_BACK), "rolled-back");
  EXPECT_EQ(RolloutStateName(v1::ROLLOUT_STATE_UNSPECIFIED), "unknown");
  EXPECT_EQ(TargetStateName(v1::TARGET_STATE_ROLLING_BACK), "rolling-back");
  EXPECT_EQ(ParseRolloutState("rolled-back"), v1::ROLLOUT_STATE_ROLLED_BACK);
  EXPECT_EQ(ParseRolloutState("ROLLED_BACK"), v1::ROLLOUT_STATE_ROLLED_BACK);
  EXPECT_EQ(ParseRolloutState("waiting"), v1::ROLLOUT_STATE_WAITING_FOR_GATE);
  EXPECT_FALSE(ParseRolloutState("unknown").has_value());
  EXPECT_FALSE(ParseRolloutState("done").has_value());
  for (v1::GateKind kind :
       {v1::GATE_KIND_BACKUP_COMPLETED, v1::GATE_KIND_STAGING_TESTED,
        v1::GATE_KIND_MAINTENANCE_WINDOW, v1::GATE_KIND_ROLLBACK_PLAN,
        v1::GATE_KIND_MONITORING_READY, v1::GATE_KIND_TEAM_NOTIFIED}) {
    EXPECT_EQ(ParseGateName(GateName(kind)), kind) << GateName(kind);
  }
  EXPECT_EQ(ParseGateName("team-notified"), v1::GATE_KIND_TEAM_NOTIFIED);
  EXPECT_EQ(ParseGateName("Rollback_Plan"), v1::GATE_KIND_ROLLBACK_PLAN);
  EXPECT_FALSE(ParseGateName("unknown").has_value());
  EXPECT_EQ(GateNames(),
            "backup, staging, window, rollback-plan, monitoring, team");
  EXPECT_TRUE(IsFinalState(v1::ROLLOUT_STATE_ABORTED));
  EXPECT_FALSE(IsFinalState(v1::ROLLOUT_STATE_ROLLING_BACK));
}

// Every state of the API has a name of its own, and the name parses back.
TEST(RolloutNamesTest, EveryStateHasItsOwnName) {
  const google::protobuf::EnumDescriptor* rollout =
      v1::RolloutState_descriptor();
  std::set<std::string> seen;
  for (int i = 0; i < rollout->value_count(); ++i) {
    const auto state =
        static_cast<v1::RolloutState>(rollout->value(i)->number());
    if (state == v1::ROLLOUT_STATE_UNSPECIFIED) continue;
    const std::string name = RolloutStateName(state);
    EXPECT_NE(name, "unknown") << rollout->value(i)->name();
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_EQ(ParseRolloutState(name), state) << name;
  }
  const google::protobuf::EnumDescriptor* target = v1::TargetState_descriptor();
  seen.clear();
  for (int i = 0; i < target->value_count(); ++i) {
    const auto state = static_cast<v1::TargetState>(target->value(i)->number());
    if (state == v1::TARGET_STATE_UNSPECIFIED) continue;
    EXPECT_TRUE(seen.insert(TargetStateName(state)).second)
        << target->value(i)->name();
  }
  EXPECT_EQ(TargetStateName(v1::TARGET_STATE_UNKNOWN), "unknown");
}

}  // namespace
}  // namespace ecliptix
