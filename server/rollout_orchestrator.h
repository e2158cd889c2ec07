// Fleet rollouts: the state machine of every rollout and the progress of every
// target, driven by one worker thread that owns all of it (API requests, agent
// messages, connection changes and timer ticks are posted to it, so the logic
// needs no locks). Every change is saved with its events in one transaction
// before the next input is handled; a restarted server loads the rollouts and
// resumes them, sending in-flight commands again under the same ids (agents
// never run an id twice, and the history table makes a re-run of a phase skip
// what is applied).
#ifndef ECLIPTIX_SERVER_ROLLOUT_ORCHESTRATOR_H_
#define ECLIPTIX_SERVER_ROLLOUT_ORCHESTRATOR_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "server/bundle_catalog.h"
#include "server/event_sink.h"
#include "server/registry.h"
#include "server/state_store.h"

namespace ecliptix::server {

// A watcher of one rollout. Must not block, and must not call back into the
// orchestrator. End comes once: the rollout ended (OK), or the watch was
// refused.
using RolloutEventSink = EventSink<fleet::v1::RolloutEvent>;

struct RolloutOptions {
  // How often deadlines, timed pauses and gates are checked.
  absl::Duration tick = absl::Milliseconds(200);
  // How long PlanRollout waits for agents to report their pending steps.
  absl::Duration plan_timeout = absl::Seconds(30);
};

class RolloutOrchestrator {
 public:
  template <typename T>
  using Callback = std::function<void(absl::StatusOr<T>)>;

  // None of the pointers is owned.
  RolloutOrchestrator(StateStore* store, Registry* registry,
                      BundleCatalog* bundles, Clock* clock,
                      RolloutOptions options);
  ~RolloutOrchestrator();

  // Loads the stored rollouts, subscribes to the registry and starts the
  // worker.
  absl::Status Start();
  // Stops the worker; state is already saved. Every request not answered yet
  // (queued, or a plan waiting for agents) is answered UNAVAILABLE, and so is
  // every request that comes later.
  void Stop();

  // Each calls `done` exactly once, from the worker thread (or at once on a
  // validation error or after Stop).
  void Create(fleet::v1::CreateRolloutRequest request,
              Callback<fleet::v1::Rollout> done);
  void Plan(fleet::v1::CreateRolloutRequest request,
            Callback<fleet::v1::RolloutPlan> done);
  void Get(std::string rollout_id, Callback<fleet::v1::Rollout> done);
  void List(fleet::v1::ListRolloutsRequest request,
            Callback<fleet::v1::ListRolloutsResponse> done);
  void Pause(fleet::v1::RolloutActionRequest request,
             Callback<fleet::v1::Rollout> done);
  void Resume(fleet::v1::RolloutActionRequest request,
              Callback<fleet::v1::Rollout> done);
  void Abort(fleet::v1::RolloutActionRequest request,
             Callback<fleet::v1::Rollout> done);
  void Retry(fleet::v1::RolloutActionRequest request,
             Callback<fleet::v1::Rollout> done);
  void Rollback(fleet::v1::RollbackRolloutRequest request,
                Callback<fleet::v1::Rollout> done);
  void Attest(fleet::v1::AttestGateRequest request,
              Callback<fleet::v1::Rollout> done);
  // Snapshot (after_sequence 0) or the stored events after `after_sequence`,
  // then live events; ends when the rollout ends. Errors (unknown rollout, bad
  // sequence) end the sink at once.
  void Watch(std::string rollout_id, int64_t after_sequence,
             std::shared_ptr<RolloutEventSink> sink);

  // Blocks until `start` calls its callback; for tests and tools.
  template <typename T>
  static absl::StatusOr<T> Await(
      const std::function<void(Callback<T>)>& start) {
    absl::Notification done;
    absl::StatusOr<T> result = absl::UnknownError("no answer");
    start([&](absl::StatusOr<T> value) {
      result = std::move(value);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

 private:
  struct Active;
  struct PlanJob;
  // A request not answered yet.
  class Pending {
   public:
    virtual ~Pending() = default;
    // Answers with `status` unless it was answered already.
    virtual void Refuse(const absl::Status& status) = 0;
  };
  template <typename T>
  class PendingAnswer;

  void Post(std::function<void()> task);
  // Wraps `done` so that it is answered exactly once: by the worker, else by
  // Stop, or at once when stopping already.
  template <typename T>
  Callback<T> Answered(Callback<T> done);
  // Keeps `pending` for Stop under a new `*id`; false when stopping.
  bool Remember(std::shared_ptr<Pending> pending, uint64_t* id);
  void Forget(uint64_t id);
  // Runs `action` on the worker thread with the rollout; NOT_FOUND (to `done`)
  // for an unknown id.
  void OnRollout(
      std::string rollout_id, Callback<fleet::v1::Rollout> done,
      std::function<void(Active&, const Callback<fleet::v1::Rollout>&)> action);
  void Loop();
  void Tick();

  // Worker-thread only from here on.
  absl::StatusOr<fleet::v1::Rollout> BuildRollout(
      const fleet::v1::CreateRolloutRequest& request, bool check_conflicts);
  Active* Find(const std::string& rollout_id);
  absl::StatusOr<Active*> FindOrError(const std::string& rollout_id);
  void Advance(Active& active);
  void StartWave(Active& active, int wave);
  void StartTarget(Active& active, fleet::v1::RolloutTarget& target);
  // Sets the target's command id for its current phase ("run" or "revert").
  void AssignCommand(Active& active, fleet::v1::RolloutTarget& target,
                     const std::string& verb);
  void SendCurrentCommand(Active& active, fleet::v1::RolloutTarget& target);
  void BeginTargetRollback(Active& active, fleet::v1::RolloutTarget& target);
  void BeginRollback(Active& active);
  void FinishRollout(Active& active);
  // Pending targets are skipped (with `skip_reason`); running ones are sent a
  // cancel.
  void StopTargets(Active& active, const std::string& skip_reason);
  bool EvaluateGates(Active& active);
  void OnAgentMessage(const std::string& database_id,
                      const fleet::v1::AgentMessage& message);
  void OnCommandFinished(Active& active, fleet::v1::RolloutTarget& target,
                         const absl::Status& status);
  void OnConnection(const std::string& database_id, bool connected);
  void OnPlanMessage(PlanJob& job, const std::string& database_id,
                     const fleet::v1::AgentMessage& message);
  void SendNextPlanCommand(PlanJob& job, const std::string& database_id);
  void MaybeFinishPlan(int64_t job_id, bool timed_out);

  // Numbers and stamps the event, applies it to the rollout
  // (ApplyRolloutEvent, as watchers do), delivers it and queues it for saving.
  void Emit(Active& active, fleet::v1::RolloutEvent event);
  void SetState(Active& active, fleet::v1::RolloutState state,
                const std::string& reason, const std::string& actor = "");
  // `counts_against_budget`: the change adds one failure (a run that failed
  // or whose outcome is unknown).
  void SetTargetState(Active& active, fleet::v1::RolloutTarget& target,
                      fleet::v1::TargetState state,
                      const std::string& error = "",
                      bool counts_against_budget = false);
  void Flush(Active& active);
  bool HasRunningTargets(const Active& active) const;
  fleet::v1::RolloutTarget* FindTarget(Active& active,
                                       const std::string& database_id);
  bool Connected(const std::string& database_id) const;
  google::protobuf::Timestamp Now() const;

  StateStore* const store_;
  Registry* const registry_;
  BundleCatalog* const bundles_;
  Clock* const clock_;
  const RolloutOptions options_;

  absl::Mutex queue_mutex_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(queue_mutex_);
  bool stopping_ ABSL_GUARDED_BY(queue_mutex_) = false;
  // Requests not answered yet, answered by Stop.
  std::map<uint64_t, std::shared_ptr<Pending>> pending_
      ABSL_GUARDED_BY(queue_mutex_);
  uint64_t next_pending_ ABSL_GUARDED_BY(queue_mutex_) = 1;
  std::thread worker_;

  // Owned by the worker thread.
  std::map<std::string, std::unique_ptr<Active>> rollouts_;
  int64_t next_number_ = 1;
  // Tells plans of this process from those of an earlier one in agents'
  // journals.
  const int64_t plan_epoch_ = absl::ToUnixMicros(absl::Now());
  // command id -> rollout id, for routing agent messages.
  std::map<std::string, std::string> command_rollout_;
  std::map<int64_t, std::unique_ptr<PlanJob>> plans_;
  // command id -> plan job id.
  std::map<std::string, int64_t> command_plan_;
  int64_t next_plan_ = 1;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ROLLOUT_ORCHESTRATOR_H_
