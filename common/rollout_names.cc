#include "common/rollout_names.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kUnknown[] = "unknown";

struct RolloutStateEntry {
  v1::RolloutState state;
  const char* name;
};

constexpr RolloutStateEntry kRolloutStates[] = {
    {v1::ROLLOUT_STATE_PENDING, "pending"},
    {v1::ROLLOUT_STATE_WAITING_FOR_GATE, "waiting-for-gate"},
    {v1::ROLLOUT_STATE_RUNNING, "running"},
    {v1::ROLLOUT_STATE_PAUSED, "paused"},
    {v1::ROLLOUT_STATE_SUCCEEDED, "succeeded"},
    {v1::ROLLOUT_STATE_FAILED, "failed"},
    {v1::ROLLOUT_STATE_ABORTED, "aborted"},
    {v1::ROLLOUT_STATE_ROLLED_BACK, "rolled-back"},
    {v1::ROLLOUT_STATE_ROLLING_BACK, "rolling-back"},
};

struct TargetStateEntry {
  v1::TargetState state;
  const char* name;
};

constexpr TargetStateEntry kTargetStates[] = {
    {v1::TARGET_STATE_PENDING, "pending"},
    {v1::TARGET_STATE_RUNNING, "running"},
    {v1::TARGET_STATE_SUCCEEDED, "succeeded"},
    {v1::TARGET_STATE_FAILED, "failed"},
    {v1::TARGET_STATE_SKIPPED, "skipped"},
    {v1::TARGET_STATE_ROLLED_BACK, "rolled-back"},
    {v1::TARGET_STATE_UNKNOWN, "unknown"},
    {v1::TARGET_STATE_ROLLING_BACK, "rolling-back"},
};

struct GateEntry {
  v1::GateKind kind;
  const char* short_name;
  const char* long_name;
};

constexpr GateEntry kGates[] = {
    {v1::GATE_KIND_BACKUP_COMPLETED, "backup", "backup-completed"},
    {v1::GATE_KIND_STAGING_TESTED, "staging", "staging-tested"},
    {v1::GATE_KIND_MAINTENANCE_WINDOW, "window", "maintenance-window"},
    {v1::GATE_KIND_ROLLBACK_PLAN, "rollback-plan", "rollback-plan"},
    {v1::GATE_KIND_MONITORING_READY, "monitoring", "monitoring-ready"},
    {v1::GATE_KIND_TEAM_NOTIFIED, "team", "team-notified"},
};

// " Rolled_Back " -> "rolled-back".
std::string Normalized(absl::string_view name) {
  return absl::StrReplaceAll(
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(name)), {{"_", "-"}});
}

}  // namespace

std::string RolloutStateName(v1::RolloutState state) {
  for (const RolloutStateEntry& entry : kRolloutStates) {
    if (entry.state == state) return entry.name;
  }
  return kUnknown;
}

std::string TargetStateName(v1::TargetState state) {
  for (const TargetStateEntry& entry : kTargetStates) {
    if (entry.state == state) return entry.name;
  }
  return kUnknown;
}

std::optional<v1::RolloutState> ParseRolloutState(absl::string_view name) {
  const std::string wanted = Normalized(name);
  if (wanted == "waiting") return v1::ROLLOUT_STATE_WAITING_FOR_GATE;
  for (const RolloutStateEntry& entry : kRolloutStates) {
    if (wanted == entry.name) return entry.state;
  }
  return std::nullopt;
}

bool IsFinalState(v1::RolloutState state) {
  return state == v1::ROLLOUT_STATE_SUCCEEDED ||
         state == v1::ROLLOUT_STATE_FAILED ||
         state == v1::ROLLOUT_STATE_ABORTED ||
         state == v1::ROLLOUT_STATE_ROLLED_BACK;
}

std::string GateName(v1::GateKind kind) {
  for (const GateEntry& entry : kGates) {
    if (entry.kind == kind) return entry.short_name;
  }
  return kUnknown;
}

std::optional<v1::GateKind> ParseGateName(absl::string_view name) {
  const std::string wanted = Normalized(name);
  for (const GateEntry& entry : kGates) {
    if (wanted == entry.short_name || wanted == entry.long_name) {
      return entry.kind;
    }
  }
  return std::nullopt;
}

std::string GateNames() {
  std::vector<std::string> names;
  for (const GateEntry& entry : kGates) names.push_back(entry.short_name);
  return absl::StrJoin(names, ", ");
}

}  // namespace ecliptix
