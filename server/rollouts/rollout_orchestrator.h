// Fleet rollouts: the shell around the wave engine (server/operations/). One
// worker thread owns every rollout's Engine; API requests, agent messages,
// connection changes and timer ticks are posted to it in two lanes: people's
// requests first, then agent traffic (a bounded batch of it), so a pause or a
// get never waits behind a flood of agent messages. A batch of inputs is
// applied, then saved in one transaction (the header of each rollout that
// changed, one row per changed target, the new events); only then are its
// commands sent, its events handed to watchers and its requests answered, so
// nothing outside the server ever sees a state that a crash could take back.
// A restarted server loads the rollouts and resumes them, sending in-flight
// commands again under the same ids (agents never run an id twice, and the
// history table makes a re-run of a phase skip what is applied).
#ifndef ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_ORCHESTRATOR_H_
#define ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_ORCHESTRATOR_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/operations/engine.h"
#include "server/storage/state_store.h"
#include "server/streams/event_sink.h"

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
  // Agent messages queued for the worker at most: when full, the streams that
  // bring more are not read until the queue is down to half (the queue holds
  // at most this plus one message per agent stream).
  size_t max_queued_agent_messages = 4096;
  // How long a finished rollout stays in memory; after that Get, List and
  // Watch read it from the store.
  absl::Duration retention = absl::Hours(24);
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

  // Told, on the worker thread, of every batch of a rollout's events once
  // saved (before watchers), with the rollout as it stands after them: how
  // the services of other operation kinds (configuration) keep their own
  // records. Must be quick and must not call back into the orchestrator.
  using CommitObserver =
      std::function<void(const fleet::v1::Rollout& rollout,
                         const std::vector<fleet::v1::RolloutEvent>& events)>;
  // Before Start only.
  void AddCommitObserver(CommitObserver observer);

  // Where strategy.success_gate reads the figures of databases over a window
  // (called on the worker thread; must not call back into the orchestrator).
  using SuccessFiguresSource =
      std::function<absl::StatusOr<operations::SuccessFigures>(
          const std::set<std::string>& databases, absl::Time start,
          absl::Time end)>;
  // Before Start only. Unset: the gate lets waves through, saying there are
  // no metrics.
  void SetSuccessFigures(SuccessFiguresSource source);

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

  // What the metrics exporter reads on every scrape: counters kept as
  // commits go, copied under a small lock of their own (never the worker's
  // queue, never a rollout).
  struct Stats {
    // Every rollout the server knows (in memory or only in the store), by
    // operation kind ("deploy", "job", "config", "config-read", "query")
    // and state. Only pairs seen at least once are present.
    std::map<std::pair<std::string, fleet::v1::RolloutState>, int64_t> rollouts;
    // Targets whose command runs, or waits to be sent again to an agent
    // that is away, over every rollout.
    int64_t commands_in_flight = 0;
  };
  // As of the last commit (a state nothing can take back). Thread-safe.
  Stats GetStats() const;

  // How many rollouts are in memory (finished ones leave it after
  // options.retention); asks the worker, so only once started. For tests and
  // tools.
  size_t RolloutsInMemory();

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

  // People's requests: handled before any queued agent traffic.
  void Post(std::function<void()> task);
  // Agent messages and connection changes, in the order they came.
  void PostAgent(std::function<void()> task);
  // An agent message (bounded, see max_queued_agent_messages): queues `task`
  // and returns false when the queue is full; `resume` is then called once
  // there is room again (or at Stop).
  bool PostAgentMessage(std::function<void()> task,
                        std::function<void()> resume);
  // Wraps `done` so that it is answered exactly once: by the worker, else by
  // Stop, or at once when stopping already.
  template <typename T>
  Callback<T> Answered(Callback<T> done);
  // Keeps `pending` for Stop under a new `*id`; false when stopping.
  bool Remember(std::shared_ptr<Pending> pending, uint64_t* id);
  void Forget(uint64_t id);
  // Runs `action` on the worker thread with the rollout's engine and answers
  // with the rollout once its change is saved; NOT_FOUND for an unknown id.
  void OnRollout(std::string rollout_id, Callback<fleet::v1::Rollout> done,
                 std::function<operations::Output(Active&)> action);
  void Loop();
  void Tick();

  // Worker-thread only from here on.
  absl::StatusOr<fleet::v1::Rollout> BuildRollout(
      const fleet::v1::CreateRolloutRequest& request, bool check_conflicts);
  Active* Find(const std::string& rollout_id);
  // In memory, or else loaded from the store (a finished rollout past its
  // retention; it leaves memory again at the next eviction).
  absl::StatusOr<Active*> FindOrError(const std::string& rollout_id);
  // Puts a stored rollout in memory; an unfinished one is resumed (see
  // Start).
  Active& Activate(StateStore::StoredRollout saved);
  // Drops from memory the rollouts finished longer than the retention ago
  // (saved already: only between commits).
  void Evict();
  // Takes an engine's output: its changes wait for the next Commit, its
  // commands and events are released by it.
  void Apply(Active& active, operations::Output output);
  // Runs `task` after the next successful Commit (at once when nothing waits
  // to be saved).
  void AfterCommit(std::function<void()> task);
  // Saves every change applied since the last commit in one transaction;
  // then sends the commands, delivers the events, ends the watchers of
  // finished rollouts and runs what waited for the commit. On a failed save
  // everything stays held and the next commit tries again.
  void Commit();
  void OnAgentMessage(const std::string& database_id,
                      const fleet::v1::AgentMessage& message);
  void OnConnection(const std::string& database_id, bool connected);
  void OnPlanMessage(PlanJob& job, const std::string& database_id,
                     const fleet::v1::AgentMessage& message);
  void SendNextPlanCommand(PlanJob& job, const std::string& database_id);
  void MaybeFinishPlan(int64_t job_id, bool timed_out);
  bool Connected(const std::string& database_id) const;
  google::protobuf::Timestamp Now() const;
  // Brings stats_ in line with the rollout as saved (worker thread).
  void Tally(const operations::Engine& engine);

  StateStore* const store_;
  Registry* const registry_;
  BundleCatalog* const bundles_;
  Clock* const clock_;
  const RolloutOptions options_;

  absl::Mutex queue_mutex_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(queue_mutex_);
  struct AgentInput {
    std::function<void()> task;
    // An agent message (counted in queued_agent_messages_), not a connection
    // change.
    bool message = false;
  };
  std::deque<AgentInput> agent_queue_ ABSL_GUARDED_BY(queue_mutex_);
  size_t queued_agent_messages_ ABSL_GUARDED_BY(queue_mutex_) = 0;
  // Readers held back by a full queue, resumed when it is down to half.
  std::vector<std::function<void()>> held_readers_
      ABSL_GUARDED_BY(queue_mutex_);
  bool stopping_ ABSL_GUARDED_BY(queue_mutex_) = false;
  // Requests not answered yet, answered by Stop.
  std::map<uint64_t, std::shared_ptr<Pending>> pending_
      ABSL_GUARDED_BY(queue_mutex_);
  uint64_t next_pending_ ABSL_GUARDED_BY(queue_mutex_) = 1;
  std::thread worker_;

  // Set before Start; called by the worker.
  std::vector<CommitObserver> observers_;
  // Owned by the worker thread.
  std::map<std::string, std::unique_ptr<Active>> rollouts_;
  int64_t next_number_ = 1;
  // Tells plans of this process from those of an earlier one in agents'
  // journals.
  const int64_t plan_epoch_ = absl::ToUnixMicros(absl::Now());
  // Set before Start (SetSuccessFigures); read by evidence_.
  SuccessFiguresSource success_figures_;
  // Staging evidence for every engine: the other rollouts.
  std::unique_ptr<operations::GateEvidence> evidence_;
  // Succeeded rollouts on staging databases that left memory, slimmed to
  // what the staging gate reads, by bundle id.
  std::map<std::string, fleet::v1::Rollout> evicted_staging_;
  // Changed since the last commit.
  std::set<Active*> dirty_;
  // Commands to send after the next commit.
  std::vector<operations::OutboundCommand> outbox_;
  // Runs after the next commit, in order.
  std::vector<std::function<void()>> after_commit_;
  std::map<int64_t, std::unique_ptr<PlanJob>> plans_;
  // command id -> plan job id.
  std::map<std::string, int64_t> command_plan_;
  int64_t next_plan_ = 1;
  // What each rollout last counted for in stats_ (worker thread): a rollout
  // is counted once however often it enters and leaves memory.
  struct Tallied {
    std::string kind;
    fleet::v1::RolloutState state = fleet::v1::ROLLOUT_STATE_UNSPECIFIED;
    int busy = 0;
  };
  std::map<std::string, Tallied> tallied_;
  mutable absl::Mutex stats_mutex_;
  Stats stats_ ABSL_GUARDED_BY(stats_mutex_);
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_ROLLOUTS_ROLLOUT_ORCHESTRATOR_H_
