// The wave engine of fleet operations: one operation (a rollout) as a pure
// state machine. It owns waves, max parallel, the failure budget, gates,
// pause / approval / resume, abort, retry, rollback (whole, by phase, by wave,
// by restore), offline deadlines and resumption from saved state; the work on
// each database is a TargetAction (deploying a bundle: DeployBundleAction).
//
// ---------------------------------------------------------------------------
// How to drive it (the shell: queue, persistence, dispatch, watchers)
//
// State. OperationState: the Rollout message (header and targets, as the API
// shows it) plus the two header fields the API does not show. It is plain
// data: save it, load it, hand it to a new Engine, and the engine goes on as
// if it had never stopped. The engine also knows which agents are connected;
// that is not saved (the shell tells it, see Load and OnConnection).
//
// Inputs, each with `now` (the engine never reads a clock):
//   Start                    a created rollout (state PENDING) begins
//   Pause / Resume / Abort / Retry / Rollback / Attest
//                            a person's request; Output.status says whether
//                            it was accepted (the same codes and messages as
//                            RolloutService documents)
//   OnAgentMessage           an ack or event for a command (the shell routes
//                            by command id: ids start with "<rollout_id>/")
//   OnConnection             an agent came or went
//   Tick                     time passed: deadlines, timed pauses, windows,
//                            the success gate's soak
//   Restarted                the server process restarted: every waiting
//                            target's offline clock starts again now
//
// Outputs (Output, one per input):
//   events           RolloutEvents numbered from rollout.last_event_sequence,
//                    gap-free, stamped `now`: append them to the event log
//                    and hand them to watchers, in order
//   commands         (database, Command) to send now; ids are derived from
//                    saved state only (rollout/database/verb/unit/attempt),
//                    so a command is re-sent, never re-issued under a new id
//   changed_targets  indexes into rollout.targets that changed: save those
//                    rows (and the header when header_changed); a change
//                    saves O(changed) rows, not the whole rollout
//   finished         the rollout ended and no command runs: end watchers
//
// Invariants (checked by tests/server/operations/engine_test.cc):
//   - a target runs only when its wave has started; a wave starts only after
//     the previous one is final, its pause is over or approved, and the gates
//     hold; at most strategy.max_parallel targets of a wave are busy;
//   - failures > failure_budget starts nothing more: pending targets are
//     skipped once nothing runs, then the rollout fails (or rolls back, with
//     AUTO_ROLLBACK_ROLLOUT);
//   - a command goes to a connected agent only; a busy target whose agent
//     comes back gets its current command again, same id;
//   - the same inputs give the same outputs, whether or not the state was
//     saved and loaded between two of them.
//
// Cost. An agent message, a finished command, a connection change and a tick
// with nothing due cost O(1) in the number of targets (plus O(log targets)
// for ordered sets), not O(targets): the engine keeps indexes derived from
// the state (nothing of them is saved; Load rebuilds them): per wave, the
// counts of busy and final targets and the ordered sets of its pending
// targets that can start (agent connected) or whose offline clock must
// start; over the rollout, the count of busy targets and of failed
// reverts, and the targets with an offline clock running in a started wave,
// ordered by when it started. Every change of a target goes through one
// accessor (Target) that marks it; before the indexes are read, the marked
// targets are indexed again (O(marked)), so no code path can leave them
// stale. The work an input does is then what it changes: the targets it
// starts or finishes, the clocks that ran out. Starting a wave lists its
// targets (O(wave)); people's requests (abort, retry, rollback), a restart
// and the end of a rollout over budget walk the rollout once.
// targets_examined() counts the targets the engine looked at, so that tests
// check this without timing.
// ---------------------------------------------------------------------------
#ifndef ECLIPTIX_SERVER_OPERATIONS_ENGINE_H_
#define ECLIPTIX_SERVER_OPERATIONS_ENGINE_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "server/operations/success_gate.h"
#include "server/operations/target_action.h"

namespace ecliptix::server::operations {

// Everything the engine needs to resume an operation.
struct OperationState {
  // The rollout as the API shows it, with every target.
  fleet::v1::Rollout rollout;
  // The last wave whose end was told (WaveEvent started=false), so that it is
  // told once.
  int waves_ended = 0;
  // A rollback was asked for and waits for running commands to stop.
  bool rollback_pending = false;
};

// Evidence the engine cannot see by itself (other rollouts, for the staging
// gate). Consulted on every gate evaluation.
class GateEvidence {
 public:
  virtual ~GateEvidence() = default;
  // nullopt for gates it knows nothing of.
  virtual std::optional<GateCheck> Check(
      const fleet::v1::Rollout& rollout,
      const fleet::v1::GateStatus& gate) const = 0;
  // For strategy.success_gate: the figures of `databases` over [start, end),
  // per database with calls and pooled. UNIMPLEMENTED when there are no
  // metrics to read (the gate then lets the wave through and says so); any
  // other error keeps the next wave waiting, asked again on the next tick.
  virtual absl::StatusOr<SuccessFigures> Figures(
      const std::set<std::string>& databases, absl::Time start,
      absl::Time end) const {
    return absl::UnimplementedError("no metrics on this server");
  }
};

// The staging gate's evidence: a succeeded rollout of the same bundle whose
// targets are all labelled env=staging, among `others`.
GateCheck CheckStagingTested(const fleet::v1::Rollout& rollout,
                             const std::vector<fleet::v1::Rollout>& others);

// A command for one database.
struct OutboundCommand {
  std::string database_id;
  fleet::v1::Command command;
};

struct Output {
  // OK, or why a request was refused (then nothing changed).
  absl::Status status;
  std::vector<fleet::v1::RolloutEvent> events;
  std::vector<OutboundCommand> commands;
  // Indexes into rollout.targets, ascending.
  std::set<int> changed_targets;
  // Header fields (everything but targets) changed.
  bool header_changed = false;
  // The rollout is over and nothing runs any more.
  bool finished = false;
};

class Engine {
 public:
  // `action` and `evidence` are not owned and must outlive the engine;
  // `evidence` may be null. No agent is connected until told (OnConnection).
  Engine(OperationState state, const TargetAction* action,
         const GateEvidence* evidence);

  // An engine over saved state with `connected` agents. Emits nothing: the
  // engine goes on exactly where the saved one stood.
  static Engine Load(OperationState state,
                     const std::set<std::string>& connected,
                     const TargetAction* action, const GateEvidence* evidence);

  const OperationState& state() const { return state_; }
  const fleet::v1::Rollout& rollout() const { return state_.rollout; }
  // The rollout without its targets, in O(header) whatever the number of
  // targets (what a change saves besides the targets it touched).
  fleet::v1::Rollout Header();
  // The rollout ended and no command of it runs any more.
  bool Finished() const;
  // Targets whose command runs or waits to be sent again (RUNNING or
  // ROLLING_BACK), as of the last input: kept as the engine goes, so O(1).
  int busy_targets() const { return busy_; }
  // How many times the engine looked at one target since it was made (to
  // index it, or in a walk over targets): what tests count to check that
  // an input's work does not grow with the number of targets.
  int64_t targets_examined() const { return targets_examined_; }

  // The rollout was created (PENDING, targets assigned to waves, no event
  // yet): tells it and advances.
  Output Start(const std::string& actor, absl::Time now);
  Output Pause(const fleet::v1::RolloutActionRequest& request, absl::Time now);
  Output Resume(const fleet::v1::RolloutActionRequest& request, absl::Time now);
  Output Abort(const fleet::v1::RolloutActionRequest& request, absl::Time now);
  Output Retry(const fleet::v1::RolloutActionRequest& request, absl::Time now);
  Output Rollback(const fleet::v1::RollbackRolloutRequest& request,
                  absl::Time now);
  Output Attest(const fleet::v1::AttestGateRequest& request, absl::Time now);

  // A message from `database_id`'s agent. Messages for a command that is not
  // the target's current one (late, repeated, unknown) change nothing.
  Output OnAgentMessage(const std::string& database_id,
                        const fleet::v1::AgentMessage& message, absl::Time now);
  Output OnConnection(const std::string& database_id, bool connected,
                      absl::Time now);
  Output Tick(absl::Time now);
  // After a process restart (every agent disconnected until it comes back):
  // the offline deadline of every waiting target counts from now.
  Output Restarted(absl::Time now);

 private:
  // One input being handled.
  struct Step {
    absl::Time now;
    Output out;
  };

  // What the indexes hold of one target, as it was when last indexed.
  struct Indexed {
    int wave = 0;
    fleet::v1::TargetState state = fleet::v1::TARGET_STATE_UNSPECIFIED;
    bool connected = false;
    // offline_since_time, when set.
    std::optional<absl::Time> offline_since;
    // In offline_clocks_ (a clock running in a started wave).
    bool clock_indexed = false;
    // A revert failed (counted in reverts_failed_).
    bool revert_failed = false;
  };
  // The targets of one wave.
  struct WaveIndex {
    // Indexes into rollout.targets, ascending.
    std::vector<int> members;
    int busy = 0;
    int final = 0;
    // Pending targets whose agent is connected: the ones that can start.
    std::set<int> startable;
    // Pending targets whose agent is away and whose offline clock has not
    // started.
    std::set<int> unclocked;
  };

  bool IsConnected(const std::string& database_id) const;
  int IndexOf(const std::string& database_id) const;
  // Marks the target for indexing again (its row or its agent changed).
  void Touch(int index);
  // Indexes the touched targets again; before any index is read.
  void Sync();
  void Unindex(int index);
  void Index(int index);
  WaveIndex& Wave(int wave);
  int BusyTargets();
  fleet::v1::RolloutTarget& Target(Step& step, int index);
  Output Finish(Step& step);

  // Numbers and stamps the event and applies it to the rollout
  // (ApplyRolloutEvent, as watchers do).
  void Emit(Step& step, fleet::v1::RolloutEvent event);
  void SetState(Step& step, fleet::v1::RolloutState state,
                const std::string& reason, const std::string& actor = "");
  // Emits the target's new state (applied with the event);
  // `counts_against_budget`: a run that failed or whose outcome is unknown.
  void SetTargetState(Step& step, int index, fleet::v1::TargetState state,
                      const std::string& error = "",
                      bool counts_against_budget = false);
  void AssignCommand(Step& step, int index, const std::string& verb);
  void SendCurrentCommand(Step& step, int index);

  void Advance(Step& step);
  bool EvaluateGates(Step& step);
  void StartWave(Step& step, int wave);
  void StartTarget(Step& step, int index);
  void BeginTargetRollback(Step& step, int index);
  // `why` (empty: the action's RollbackReason) is the state change's reason.
  void BeginRollback(Step& step, const std::string& why = "");
  // strategy.success_gate after `wave` ended (not the last): starts its soak,
  // waits it out, compares the figures. True once the wave passed; false
  // while soaking or waiting for figures, or when it halted the rollout.
  bool SuccessGateHolds(Step& step, int wave);
  void FinishRollout(Step& step);
  void StopTargets(Step& step, const std::string& skip_reason);
  void OnCommandFinished(Step& step, int index, const absl::Status& status);

  OperationState state_;
  const TargetAction* action_;
  const GateEvidence* evidence_;
  std::set<std::string> connected_;
  // database id -> index into rollout.targets (targets never change after
  // creation): routing a message costs O(1), not O(targets).
  std::unordered_map<std::string, int> index_;

  // ---- indexes derived from state_ and connected_ (see Cost above) ----
  std::vector<Indexed> indexed_;
  // By wave number.
  std::vector<WaveIndex> waves_;
  // Busy targets (RUNNING or ROLLING_BACK) over the rollout.
  int busy_ = 0;
  // FAILED targets whose revert failed.
  int reverts_failed_ = 0;
  // (offline_since_time, index) of the targets of waves up to the current
  // one whose offline clock runs: the earliest runs out first.
  std::set<std::pair<absl::Time, int>> offline_clocks_;
  // The current_wave offline_clocks_ holds the targets up to.
  int clocks_wave_ = 0;
  // Targets to index again, each once (touched_flag_).
  std::vector<int> touched_;
  std::vector<bool> touched_flag_;
  int64_t targets_examined_ = 0;
};

}  // namespace ecliptix::server::operations

#endif  // ECLIPTIX_SERVER_OPERATIONS_ENGINE_H_
