#include "server/rollouts/rollout_orchestrator.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/backup_rule.h"
#include "common/bundle/bundle.h"
#include "common/logging.h"
#include "common/proto_status.h"
#include "common/proto_time.h"
#include "common/rollout_events.h"
#include "common/rollout_names.h"
#include "server/operations/day2_actions.h"
#include "server/operations/rollout_planner.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int kDefaultListPageSize = 50;
// Agent messages and connection changes applied per commit: many per fsync,
// few enough that people's requests queued meanwhile are answered soon.
constexpr size_t kAgentInputsPerCommit = 512;

// The answer to every request the worker did not answer before Stop.
absl::Status ShuttingDown() {
  return absl::UnavailableError(
      "the server is shutting down; try again when it is back");
}

bool IsActive(v1::RolloutState state) { return IsActiveRolloutState(state); }

// The rollout a command belongs to: its id starts with "<rollout_id>/".
std::string RolloutOfCommand(const std::string& command_id) {
  const size_t slash = command_id.find('/');
  return slash == std::string::npos ? "" : command_id.substr(0, slash);
}

// The staging gate's evidence: the other rollouts of the orchestrator; and
// the success gate's figures, from the metrics when the server has them.
class StagingEvidence : public operations::GateEvidence {
 public:
  using Rollouts = std::function<std::vector<v1::Rollout>(const v1::Rollout&)>;
  // `figures` is not owned; it may be empty (no metrics).
  StagingEvidence(Rollouts candidates,
                  const RolloutOrchestrator::SuccessFiguresSource* figures)
      : candidates_(std::move(candidates)), figures_(figures) {}
  std::optional<operations::GateCheck> Check(
      const v1::Rollout& rollout, const v1::GateStatus& gate) const override {
    if (gate.kind() != v1::GATE_KIND_STAGING_TESTED) return std::nullopt;
    return operations::CheckStagingTested(rollout, candidates_(rollout));
  }
  absl::StatusOr<operations::SuccessFigures> Figures(
      const std::set<std::string>& databases, absl::Time start,
      absl::Time end) const override {
    if (!*figures_) return GateEvidence::Figures(databases, start, end);
    return (*figures_)(databases, start, end);
  }

 private:
  Rollouts candidates_;
  const RolloutOrchestrator::SuccessFiguresSource* figures_;
};

}  // namespace

struct RolloutOrchestrator::Active {
  int64_t number = 0;
  std::unique_ptr<operations::TargetAction> action;
  std::unique_ptr<operations::Engine> engine;
  std::vector<std::shared_ptr<RolloutEventSink>> watchers;
  // Its database ids, for routing connection changes.
  std::set<std::string> databases;
  // Not saved yet (see Commit).
  bool header_changed = false;
  std::set<int> changed_targets;
  std::vector<v1::RolloutEvent> unsaved_events;
  // The header was never saved.
  bool is_new = false;
  // When it was seen finished (by the clock), for the retention.
  std::optional<absl::Time> finished_at;
};

struct RolloutOrchestrator::PlanJob {
  int64_t id = 0;
  v1::RolloutPlan plan;
  std::string bundle_id;
  std::vector<std::string> phases;
  // Plan adoption as the rollout would (strategy.adopt).
  bool adopt = false;
  absl::Time deadline;
  Callback<v1::RolloutPlan> done;
  // database id -> index of the next phase to plan; absent when finished.
  std::map<std::string, size_t> next_phase;
  std::map<std::string, std::string> current_command;
};

RolloutOrchestrator::RolloutOrchestrator(StateStore* store, Registry* registry,
                                         BundleCatalog* bundles, Clock* clock,
                                         RolloutOptions options)
    : store_(store),
      registry_(registry),
      bundles_(bundles),
      clock_(clock),
      options_(options) {
  evidence_ = std::make_unique<StagingEvidence>(
      [this](const v1::Rollout& rollout) {
        std::vector<v1::Rollout> candidates;
        for (const auto& [id, other] : rollouts_) {
          const v1::Rollout& candidate = other->engine->rollout();
          if (candidate.bundle_id() == rollout.bundle_id() &&
              candidate.state() == v1::ROLLOUT_STATE_SUCCEEDED) {
            candidates.push_back(candidate);
          }
        }
        if (auto it = evicted_staging_.find(rollout.bundle_id());
            it != evicted_staging_.end()) {
          candidates.push_back(it->second);
        }
        return candidates;
      },
      &success_figures_);
}

void RolloutOrchestrator::SetSuccessFigures(SuccessFiguresSource source) {
  success_figures_ = std::move(source);
}

RolloutOrchestrator::~RolloutOrchestrator() { Stop(); }

void RolloutOrchestrator::AddCommitObserver(CommitObserver observer) {
  observers_.push_back(std::move(observer));
}

RolloutOrchestrator::Active& RolloutOrchestrator::Activate(
    StateStore::StoredRollout saved) {
  const absl::Time now = clock_->Now();
  auto active = std::make_unique<Active>();
  active->number = saved.number;
  next_number_ = std::max<int64_t>(next_number_, saved.number + 1);
  v1::BundleManifest manifest;
  if (absl::StatusOr<v1::BundleInfo> info =
          bundles_->Resolve(saved.rollout.bundle_id());
      info.ok()) {
    manifest = info->manifest();
  }
  active->action = operations::MakeAction(saved.rollout, std::move(manifest));
  std::set<std::string> connected;
  for (const v1::RolloutTarget& target : saved.rollout.targets()) {
    active->databases.insert(target.database_id());
    if (Connected(target.database_id())) connected.insert(target.database_id());
  }
  const std::string id = saved.rollout.rollout_id();
  operations::OperationState state{std::move(saved.rollout), saved.waves_ended,
                                   saved.rollback_pending};
  active->engine =
      std::make_unique<operations::Engine>(operations::Engine::Load(
          std::move(state), {}, active->action.get(), evidence_.get()));
  Active& ref = *active;
  rollouts_[id] = std::move(active);
  Tally(*ref.engine);
  if (ref.engine->Finished()) {
    const v1::Rollout& rollout = ref.engine->rollout();
    ref.finished_at = rollout.has_finish_time()
                          ? FromProtoTimestamp(rollout.finish_time())
                          : now;
    return ref;
  }
  // Every agent is disconnected until it comes back to this server; those
  // back already get their current command again.
  Apply(ref, ref.engine->Restarted(now));
  for (const std::string& database_id : connected)
    Apply(ref, ref.engine->OnConnection(database_id, true, now));
  return ref;
}

void RolloutOrchestrator::Evict() {
  if (!dirty_.empty() || !outbox_.empty() || !after_commit_.empty()) return;
  const absl::Time now = clock_->Now();
  for (auto it = rollouts_.begin(); it != rollouts_.end();) {
    Active& active = *it->second;
    if (!active.finished_at || now - *active.finished_at < options_.retention ||
        !active.watchers.empty() || !active.engine->Finished()) {
      ++it;
      continue;
    }
    const v1::Rollout& rollout = active.engine->rollout();
    if (rollout.state() == v1::ROLLOUT_STATE_SUCCEEDED &&
        operations::CheckStagingTested(rollout, {rollout}).satisfied) {
      // What the staging gate of a later rollout reads.
      v1::Rollout slim;
      slim.set_rollout_id(rollout.rollout_id());
      slim.set_bundle_id(rollout.bundle_id());
      slim.set_state(rollout.state());
      for (const v1::RolloutTarget& target : rollout.targets()) {
        v1::RolloutTarget* kept = slim.add_targets();
        kept->set_database_id(target.database_id());
        (*kept->mutable_labels())["env"] = "staging";
      }
      evicted_staging_[rollout.bundle_id()] = std::move(slim);
    }
    it = rollouts_.erase(it);
  }
}

absl::Status RolloutOrchestrator::Start() {
  absl::StatusOr<std::vector<StateStore::StoredRollout>> stored =
      store_->LoadRollouts();
  if (!stored.ok()) return stored.status();
  int resumed = 0;
  for (StateStore::StoredRollout& saved : *stored) {
    if (IsActive(saved.rollout.state())) ++resumed;
    Activate(std::move(saved));
  }
  Commit();
  if (!rollouts_.empty()) {
    Logger("rollouts")
        ->info("loaded {} rollouts, {} to resume", rollouts_.size(), resumed);
  }
  registry_->AddPacedCommandObserver([this](const std::string& database_id,
                                            const v1::AgentMessage& message,
                                            std::function<void()> resume) {
    return PostAgentMessage(
        [this, database_id, message] { OnAgentMessage(database_id, message); },
        std::move(resume));
  });
  registry_->AddConnectionObserver(
      [this](const std::string& database_id, bool connected) {
        PostAgent([this, database_id, connected] {
          OnConnection(database_id, connected);
        });
      });
  worker_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void RolloutOrchestrator::Stop() {
  {
    absl::MutexLock lock(&queue_mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (worker_.joinable()) worker_.join();
  std::map<uint64_t, std::shared_ptr<Pending>> pending;
  std::deque<std::function<void()>> never_run;
  std::deque<AgentInput> never_run_agent;
  std::vector<std::function<void()>> held;
  {
    absl::MutexLock lock(&queue_mutex_);
    pending.swap(pending_);
    never_run.swap(queue_);
    never_run_agent.swap(agent_queue_);
    queued_agent_messages_ = 0;
    held.swap(held_readers_);
  }
  // Their streams are read again (what they bring is dropped now) and end
  // as the server shuts down.
  for (auto& resume : held) resume();
  // Queued requests, requests waiting for a commit, and plans still waiting
  // for agents.
  for (auto& [id, request] : pending) request->Refuse(ShuttingDown());
  for (auto& [id, active] : rollouts_) {
    for (auto& watcher : active->watchers) {
      watcher->End(
          absl::UnavailableError("the server is shutting down; watch again"));
    }
    active->watchers.clear();
  }
}

template <typename T>
class RolloutOrchestrator::PendingAnswer : public Pending {
 public:
  explicit PendingAnswer(Callback<T> done) : done_(std::move(done)) {}
  // The callback, the first time only.
  Callback<T> Take() {
    absl::MutexLock lock(&mutex_);
    return std::exchange(done_, nullptr);
  }
  void Refuse(const absl::Status& status) override {
    if (Callback<T> done = Take()) done(status);
  }

 private:
  absl::Mutex mutex_;
  Callback<T> done_ ABSL_GUARDED_BY(mutex_);
};

template <typename T>
RolloutOrchestrator::Callback<T> RolloutOrchestrator::Answered(
    Callback<T> done) {
  auto pending = std::make_shared<PendingAnswer<T>>(std::move(done));
  uint64_t id = 0;
  if (!Remember(pending, &id)) {
    // Stopping: Post drops the task, so this is the answer.
    pending->Refuse(ShuttingDown());
    return [](absl::StatusOr<T>) {};
  }
  return [this, pending, id](absl::StatusOr<T> result) {
    Forget(id);
    if (Callback<T> done = pending->Take()) done(std::move(result));
  };
}

bool RolloutOrchestrator::Remember(std::shared_ptr<Pending> pending,
                                   uint64_t* id) {
  absl::MutexLock lock(&queue_mutex_);
  if (stopping_) return false;
  *id = next_pending_++;
  pending_[*id] = std::move(pending);
  return true;
}

void RolloutOrchestrator::Forget(uint64_t id) {
  absl::MutexLock lock(&queue_mutex_);
  pending_.erase(id);
}

void RolloutOrchestrator::Post(std::function<void()> task) {
  absl::MutexLock lock(&queue_mutex_);
  if (stopping_) return;
  queue_.push_back(std::move(task));
}

void RolloutOrchestrator::PostAgent(std::function<void()> task) {
  absl::MutexLock lock(&queue_mutex_);
  if (stopping_) return;
  agent_queue_.push_back({std::move(task), /*message=*/false});
}

bool RolloutOrchestrator::PostAgentMessage(std::function<void()> task,
                                           std::function<void()> resume) {
  absl::MutexLock lock(&queue_mutex_);
  if (stopping_) return true;
  // Taken even when full: it was read already, and dropping it would lose
  // an agent's answer. The stream then waits, so each stream adds one
  // message at most beyond the bound.
  agent_queue_.push_back({std::move(task), /*message=*/true});
  ++queued_agent_messages_;
  if (queued_agent_messages_ < options_.max_queued_agent_messages) return true;
  held_readers_.push_back(std::move(resume));
  return false;
}

void RolloutOrchestrator::Loop() {
  absl::Time next_tick = absl::Now();
  for (;;) {
    std::deque<std::function<void()>> requests, agent_inputs;
    std::vector<std::function<void()>> resumed;
    {
      absl::MutexLock lock(&queue_mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mutex_) {
        return stopping_ || !queue_.empty() || !agent_queue_.empty();
      };
      queue_mutex_.AwaitWithDeadline(absl::Condition(&ready), next_tick);
      if (stopping_) return;
      requests.swap(queue_);
      // People's requests first; then a bounded share of agent traffic, so
      // that requests coming meanwhile wait for one commit at most.
      const size_t take = std::min(agent_queue_.size(), kAgentInputsPerCommit);
      for (size_t i = 0; i < take; ++i) {
        AgentInput& input = agent_queue_.front();
        queued_agent_messages_ -= input.message ? 1 : 0;
        agent_inputs.push_back(std::move(input.task));
        agent_queue_.pop_front();
      }
      // Room again: the held streams are read on (not at the first free
      // slot, so that a stream is not held and resumed per message).
      if (queued_agent_messages_ <= options_.max_queued_agent_messages / 2)
        resumed.swap(held_readers_);
    }
    for (auto& resume : resumed) resume();
    for (auto& task : requests) task();
    for (auto& task : agent_inputs) task();
    const bool tick = absl::Now() >= next_tick;
    if (tick) {
      Tick();
      next_tick = absl::Now() + options_.tick;
    }
    Commit();
    if (tick) Evict();
  }
}

void RolloutOrchestrator::Tick() {
  const absl::Time now = clock_->Now();
  for (auto& [id, active] : rollouts_) {
    if (IsActive(active->engine->rollout().state()))
      Apply(*active, active->engine->Tick(now));
  }
  std::vector<int64_t> expired;
  for (auto& [id, job] : plans_) {
    if (clock_->Now() >= job->deadline) expired.push_back(id);
  }
  for (int64_t id : expired) MaybeFinishPlan(id, /*timed_out=*/true);
}

google::protobuf::Timestamp RolloutOrchestrator::Now() const {
  return ToProtoTimestamp(clock_->Now());
}

bool RolloutOrchestrator::Connected(const std::string& database_id) const {
  absl::StatusOr<v1::Database> database = registry_->GetDatabase(database_id);
  return database.ok() &&
         database->connection_state() == v1::CONNECTION_STATE_CONNECTED;
}

RolloutOrchestrator::Active* RolloutOrchestrator::Find(
    const std::string& rollout_id) {
  auto it = rollouts_.find(rollout_id);
  return it == rollouts_.end() ? nullptr : it->second.get();
}

absl::StatusOr<RolloutOrchestrator::Active*> RolloutOrchestrator::FindOrError(
    const std::string& rollout_id) {
  if (Active* active = Find(rollout_id)) return active;
  absl::StatusOr<StateStore::StoredRollout> stored =
      store_->LoadRollout(rollout_id);
  if (stored.ok()) return &Activate(*std::move(stored));
  if (stored.status().code() != absl::StatusCode::kNotFound) {
    return stored.status();
  }
  return absl::NotFoundError(
      absl::StrCat("no rollout \"", rollout_id,
                   "\"; `ecliptixctl rollout list` shows them"));
}

// ---- the engines' outputs, saved before they leave the server ----

void RolloutOrchestrator::Apply(Active& active, operations::Output output) {
  const v1::Rollout& rollout = active.engine->rollout();
  for (const v1::RolloutEvent& event : output.events) {
    if (!event.has_state_changed()) continue;
    const v1::RolloutStateChanged& changed = event.state_changed();
    Logger("rollouts")
        ->info("rollout {}: {}{}{}", rollout.rollout_id(),
               RolloutStateName(changed.state()),
               changed.reason().empty() ? "" : ": " + changed.reason(),
               changed.actor().empty() ? "" : " (by " + changed.actor() + ")");
  }
  if (!output.header_changed && output.changed_targets.empty() &&
      output.events.empty() && output.commands.empty()) {
    return;
  }
  active.header_changed |= output.header_changed;
  active.changed_targets.insert(output.changed_targets.begin(),
                                output.changed_targets.end());
  for (v1::RolloutEvent& event : output.events)
    active.unsaved_events.push_back(std::move(event));
  for (operations::OutboundCommand& command : output.commands)
    outbox_.push_back(std::move(command));
  dirty_.insert(&active);
}

void RolloutOrchestrator::AfterCommit(std::function<void()> task) {
  if (dirty_.empty() && outbox_.empty() && after_commit_.empty()) {
    task();
    return;
  }
  after_commit_.push_back(std::move(task));
}

void RolloutOrchestrator::Commit() {
  if (dirty_.empty() && outbox_.empty() && after_commit_.empty()) return;
  std::vector<StateStore::RolloutChanges> changes;
  for (Active* active : dirty_) {
    const operations::OperationState& state = active->engine->state();
    StateStore::RolloutChanges& change = changes.emplace_back();
    change.rollout_id = state.rollout.rollout_id();
    change.number = active->number;
    if (active->header_changed || active->is_new)
      change.header = active->engine->Header();
    change.waves_ended = state.waves_ended;
    change.rollback_pending = state.rollback_pending;
    if (active->is_new) {
      // Every target has its row from the start.
      for (int i = 0; i < state.rollout.targets_size(); ++i)
        change.targets.emplace_back(i, &state.rollout.targets(i));
    } else {
      for (int i : active->changed_targets)
        change.targets.emplace_back(i, &state.rollout.targets(i));
    }
    change.events = active->unsaved_events;
  }
  if (!changes.empty()) {
    if (absl::Status status = store_->SaveRolloutChanges(changes);
        !status.ok()) {
      // Held (commands, events, answers) and saved with the next commit.
      Logger("rollouts")
          ->error("could not save rollouts: {}", status.ToString());
      return;
    }
  }
  std::set<Active*> saved;
  saved.swap(dirty_);
  std::vector<operations::OutboundCommand> outbox;
  outbox.swap(outbox_);
  std::vector<std::function<void()>> after;
  after.swap(after_commit_);
  for (operations::OutboundCommand& command : outbox) {
    absl::StatusOr<std::string> sent =
        registry_->SendCommand(command.database_id, command.command);
    if (!sent.ok()) {
      // Gone meanwhile: the engine learns it (and sends the command again,
      // same id, when the agent is back).
      const std::string database_id = command.database_id;
      PostAgent([this, database_id] {
        if (!Connected(database_id)) OnConnection(database_id, false);
      });
    }
  }
  for (Active* active : saved) {
    Tally(*active->engine);
    active->is_new = false;
    active->header_changed = false;
    active->changed_targets.clear();
    std::vector<v1::RolloutEvent> events;
    events.swap(active->unsaved_events);
    if (!events.empty()) {
      for (const CommitObserver& observer : observers_)
        observer(active->engine->rollout(), events);
    }
    auto& watchers = active->watchers;
    for (const v1::RolloutEvent& event : events) {
      watchers.erase(
          std::remove_if(watchers.begin(), watchers.end(),
                         [&](const std::shared_ptr<RolloutEventSink>& watcher) {
                           return !watcher->Deliver(event);
                         }),
          watchers.end());
    }
    if (active->engine->Finished()) {
      for (auto& watcher : watchers) watcher->End(absl::OkStatus());
      watchers.clear();
      if (!active->finished_at) active->finished_at = clock_->Now();
    } else {
      // Retried or rolled back after it had finished.
      active->finished_at.reset();
    }
  }
  for (auto& task : after) task();
}

void RolloutOrchestrator::Tally(const operations::Engine& engine) {
  const v1::Rollout& rollout = engine.rollout();
  Tallied now{operations::OperationKindName(rollout.operation()),
              rollout.state(), engine.busy_targets()};
  auto [it, inserted] = tallied_.try_emplace(rollout.rollout_id());
  Tallied& before = it->second;
  if (!inserted && before.state == now.state && before.busy == now.busy &&
      before.kind == now.kind) {
    return;
  }
  absl::MutexLock lock(&stats_mutex_);
  if (!inserted) {
    auto previous = stats_.rollouts.find({before.kind, before.state});
    if (previous != stats_.rollouts.end()) --previous->second;
    stats_.commands_in_flight -= before.busy;
  }
  ++stats_.rollouts[{now.kind, now.state}];
  stats_.commands_in_flight += now.busy;
  before = std::move(now);
}

RolloutOrchestrator::Stats RolloutOrchestrator::GetStats() const {
  absl::MutexLock lock(&stats_mutex_);
  return stats_;
}

// ---- creating ----

absl::StatusOr<v1::Rollout> RolloutOrchestrator::BuildRollout(
    const v1::CreateRolloutRequest& request, bool check_conflicts) {
  if (absl::Status status = ValidateStrategy(request.strategy()); !status.ok())
    return status;
  std::vector<v1::GateSpec> gates(request.gates().begin(),
                                  request.gates().end());
  if (absl::Status status = ValidateGates(gates); !status.ok()) return status;
  absl::StatusOr<v1::BundleInfo> info = bundles_->Resolve(request.bundle());
  if (!info.ok()) return info.status();
  const v1::FleetOperation& operation = request.operation();
  if (absl::Status status = operations::CheckOperation(
          operation, request.strategy(), info->manifest());
      !status.ok())
    return status;
  absl::StatusOr<std::vector<std::string>> phases =
      operation.kind_case() == v1::FleetOperation::KIND_NOT_SET
          ? PhasesToDeploy(request.strategy(), info->manifest())
          : absl::StatusOr<std::vector<std::string>>(
                std::vector<std::string>{});
  if (!phases.ok()) return phases.status();

  absl::StatusOr<std::vector<v1::Database>> selected =
      registry_->Select(request.selector());
  if (!selected.ok()) return selected.status();
  std::vector<v1::Database> databases = *std::move(selected);
  if (databases.empty() && request.all_databases()) {
    return absl::FailedPreconditionError(
        "the fleet has no databases yet: start an agent per database first");
  }
  if (databases.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("selector \"", request.selector(),
                     "\" matches no database; `ecliptixctl fleet list "
                     "--selector=...` shows what it matches"));
  }
  if (request.strategy().backup_first()) {
    std::vector<std::string> odbc;
    for (const v1::Database& database : databases) {
      if (database.connector() == v1::CONNECTOR_ODBC)
        odbc.push_back(database.database_id());
    }
    if (!odbc.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup_first cannot be met on ",
                       absl::StrJoin(odbc, ", "), ": ", kOdbcBackupRule));
    }
  }
  const int wanted_dialects = info->manifest().dialects_size();
  for (const v1::Database& database : databases) {
    const v1::Dialect dialect = bundle::DialectForEngine(database.engine());
    bool supported = false;
    for (int d : info->manifest().dialects()) supported |= d == dialect;
    if (!supported && wanted_dialects > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database ", database.database_id(), " runs ",
          bundle::DialectName(dialect), " but bundle ", info->name(), "@",
          info->version(), " has no SQL for it; narrow the selector"));
    }
  }
  if (const std::string capability = operations::RequiredCapability(operation);
      !capability.empty()) {
    std::vector<std::string> unable;
    for (const v1::Database& database : databases) {
      if (std::find(database.capabilities().begin(),
                    database.capabilities().end(),
                    capability) == database.capabilities().end())
        unable.push_back(database.database_id());
    }
    if (!unable.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the agents of ", absl::StrJoin(unable, ", "),
          " do not announce the \"", capability,
          "\" capability (an older ecliptix-agent, or not connected since "
          "an upgrade): upgrade them or narrow the selector"));
    }
  }
  // Operations that change databases never share one; reads run beside
  // anything.
  // A maintenance job's run leaves out the databases another operation is
  // changing (named in its description; the next run cleans them) rather
  // than waiting for them or not running at all.
  std::vector<std::string> left_out;
  if (check_conflicts && operations::ChangesDatabases(operation)) {
    std::map<std::string, std::string> busy;  // database -> its operation
    for (const auto& [other_id, other] : rollouts_) {
      if (!IsActive(other->engine->rollout().state())) continue;
      if (!operations::ChangesDatabases(other->engine->rollout().operation()))
        continue;
      for (const v1::RolloutTarget& target : other->engine->rollout().targets())
        busy.emplace(target.database_id(), other_id);
    }
    const bool job_run = operation.has_job_run();
    std::vector<v1::Database> free;
    for (v1::Database& database : databases) {
      auto it = busy.find(database.database_id());
      if (it == busy.end()) {
        free.push_back(std::move(database));
        continue;
      }
      const v1::Rollout& other = rollouts_.at(it->second)->engine->rollout();
      if (!job_run) {
        return absl::FailedPreconditionError(absl::StrCat(
            "database ", it->first, " is in rollout ", it->second, " (",
            RolloutStateName(other.state()),
            "); wait for it to end, or stop it with `ecliptixctl rollout "
            "abort ",
            it->second, "`"));
      }
      left_out.push_back(
          absl::StrCat(it->first, " (busy in ", it->second, ")"));
    }
    if (free.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "every selected database is being changed by another operation: ",
          absl::StrJoin(left_out, ", ")));
    }
    databases = std::move(free);
  }
  absl::StatusOr<std::vector<v1::RolloutTarget>> targets =
      AssignWaves(request.strategy(), databases);
  if (!targets.ok()) return targets.status();
  absl::StatusOr<int> budget = FailureBudget(
      request.strategy().failure_budget(), static_cast<int>(targets->size()));
  if (!budget.ok()) return budget.status();

  v1::Rollout rollout;
  rollout.set_bundle_id(info->bundle_id());
  rollout.set_bundle_name_version(
      absl::StrCat(info->name(), "@", info->version()));
  rollout.set_selector(request.selector());
  *rollout.mutable_strategy() = request.strategy();
  for (const v1::GateSpec& gate : gates) {
    v1::GateStatus* status = rollout.add_gates();
    status->set_kind(gate.kind());
    *status->mutable_window() = gate.window();
  }
  rollout.set_state(v1::ROLLOUT_STATE_PENDING);
  int waves = 0;
  for (v1::RolloutTarget& target : *targets) {
    waves = std::max(waves, target.wave());
    *rollout.add_targets() = std::move(target);
  }
  rollout.set_wave_count(waves);
  rollout.set_created_by(request.requested_by());
  *rollout.mutable_create_time() = Now();
  rollout.set_failure_budget(*budget);
  rollout.set_description(
      left_out.empty()
          ? request.description()
          : absl::StrCat(request.description(),
                         "; left out: ", absl::StrJoin(left_out, ", ")));
  for (const std::string& phase : *phases) rollout.add_phases(phase);
  *rollout.mutable_operation() = operation;
  if (operation.kind_case() != v1::FleetOperation::KIND_NOT_SET) {
    for (const std::string& unit : operations::UnitsOf(rollout))
      rollout.add_phases(unit);
  }
  return rollout;
}

void RolloutOrchestrator::Create(v1::CreateRolloutRequest request,
                                 Callback<v1::Rollout> done) {
  Post([this, request = std::move(request), done = Answered(std::move(done))] {
    absl::StatusOr<v1::Rollout> rollout =
        BuildRollout(request, /*check_conflicts=*/true);
    if (!rollout.ok()) return done(rollout.status());
    auto active = std::make_unique<Active>();
    active->number = next_number_++;
    active->is_new = true;
    rollout->set_rollout_id(absl::StrCat("r-", active->number));
    active->action = operations::MakeAction(
        *rollout, bundles_->Resolve(rollout->bundle_id())->manifest());
    std::set<std::string> connected;
    for (const v1::RolloutTarget& target : rollout->targets()) {
      active->databases.insert(target.database_id());
      if (Connected(target.database_id()))
        connected.insert(target.database_id());
    }
    const std::string id = rollout->rollout_id();
    active->engine = std::make_unique<operations::Engine>(
        operations::Engine::Load({*std::move(rollout), 0, false}, connected,
                                 active->action.get(), evidence_.get()));
    Active& ref = *active;
    rollouts_[id] = std::move(active);
    const v1::Rollout& created = ref.engine->rollout();
    Logger("audit")->info(
        "{} created rollout {} of {} to \"{}\" ({} databases, {} waves)",
        request.requested_by(), id, created.bundle_name_version(),
        request.selector(), created.targets_size(), created.wave_count());
    Apply(ref, ref.engine->Start(request.requested_by(), clock_->Now()));
    AfterCommit([&ref, done] { done(ref.engine->rollout()); });
  });
}

// ---- agents ----

void RolloutOrchestrator::OnAgentMessage(const std::string& database_id,
                                         const v1::AgentMessage& message) {
  const std::string& command_id = message.has_command_ack()
                                      ? message.command_ack().command_id()
                                      : message.command_event().command_id();
  if (auto plan = command_plan_.find(command_id); plan != command_plan_.end()) {
    auto job = plans_.find(plan->second);
    if (job != plans_.end()) OnPlanMessage(*job->second, database_id, message);
    return;
  }
  Active* active = Find(RolloutOfCommand(command_id));
  if (active == nullptr) return;
  Apply(*active,
        active->engine->OnAgentMessage(database_id, message, clock_->Now()));
}

void RolloutOrchestrator::OnConnection(const std::string& database_id,
                                       bool connected) {
  const absl::Time now = clock_->Now();
  for (auto& [id, active] : rollouts_) {
    if (active->databases.count(database_id) == 0) continue;
    Apply(*active, active->engine->OnConnection(database_id, connected, now));
  }
}

// ---- people's actions ----

size_t RolloutOrchestrator::RolloutsInMemory() {
  absl::StatusOr<size_t> count = Await<size_t>([this](Callback<size_t> done) {
    Post([this, done = Answered(std::move(done))] { done(rollouts_.size()); });
  });
  return count.ok() ? *count : 0;
}

void RolloutOrchestrator::Get(std::string rollout_id,
                              Callback<v1::Rollout> done) {
  Post([this, rollout_id = std::move(rollout_id),
        done = Answered(std::move(done))] {
    // Answered from saved state: what a crash cannot take back.
    AfterCommit([this, rollout_id, done] {
      absl::StatusOr<Active*> active = FindOrError(rollout_id);
      if (!active.ok()) return done(active.status());
      done((*active)->engine->rollout());
    });
  });
}

void RolloutOrchestrator::List(v1::ListRolloutsRequest request,
                               Callback<v1::ListRolloutsResponse> done) {
  Post([this, request = std::move(request), done = Answered(std::move(done))] {
    if (request.page_size() < 0)
      return done(absl::InvalidArgumentError("page_size < 0"));
    const int page_size =
        request.page_size() == 0 ? kDefaultListPageSize : request.page_size();
    int64_t before = INT64_MAX;
    if (!request.page_token().empty() &&
        !absl::SimpleAtoi(request.page_token(), &before)) {
      return done(absl::InvalidArgumentError(
          "page_token is not one this server returned"));
    }
    AfterCommit([this, request, page_size, before, done] {
      std::set<int> states(request.states().begin(), request.states().end());
      // number -> header: those in memory, and those that left it (saved,
      // and finished, so the stored header is the last one). Everything in
      // memory is saved too, so the store's first page_size + 1 and the
      // matching ones in memory hold the page.
      std::map<int64_t, v1::Rollout, std::greater<int64_t>> matching;
      absl::StatusOr<std::vector<StateStore::StoredRollout>> stored =
          store_->LoadRolloutHeaders(
              before, std::vector<int>(states.begin(), states.end()),
              page_size == INT_MAX ? page_size : page_size + 1,
              request.job_id(), request.database_id());
      if (!stored.ok()) return done(stored.status());
      for (StateStore::StoredRollout& header : *stored) {
        if (Find(header.rollout.rollout_id()) == nullptr)
          matching[header.number] = std::move(header.rollout);
      }
      for (auto& [id, active] : rollouts_) {
        if (active->number >= before) continue;
        if (!states.empty() &&
            states.count(active->engine->rollout().state()) == 0)
          continue;
        if (!request.job_id().empty() &&
            active->engine->rollout().operation().job_run().job_id() !=
                request.job_id())
          continue;
        if (!request.database_id().empty() &&
            active->databases.count(request.database_id()) == 0)
          continue;
        matching[active->number] = active->engine->Header();
      }
      v1::ListRolloutsResponse response;
      int64_t last = 0;
      for (auto& [number, header] : matching) {
        if (response.rollouts_size() == page_size) {
          response.set_next_page_token(absl::StrCat(last));
          break;
        }
        *response.add_rollouts() = std::move(header);
        last = number;
      }
      done(response);
    });
  });
}

void RolloutOrchestrator::OnRollout(
    std::string rollout_id, Callback<v1::Rollout> done,
    std::function<operations::Output(Active&)> action) {
  Post([this, rollout_id = std::move(rollout_id),
        done = Answered(std::move(done)), action = std::move(action)] {
    absl::StatusOr<Active*> found = FindOrError(rollout_id);
    if (!found.ok()) return done(found.status());
    Active& active = **found;
    operations::Output output = action(active);
    if (!output.status.ok()) return done(output.status);
    Apply(active, std::move(output));
    AfterCommit([&active, done] { done(active.engine->rollout()); });
  });
}

void RolloutOrchestrator::Pause(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              const bool was_paused =
                  active.engine->rollout().state() == v1::ROLLOUT_STATE_PAUSED;
              operations::Output output =
                  active.engine->Pause(request, clock_->Now());
              if (output.status.ok() && !was_paused) {
                Logger("audit")->info("{} paused rollout {}: {}",
                                      request.actor(), request.rollout_id(),
                                      request.reason());
              }
              return output;
            });
}

void RolloutOrchestrator::Resume(v1::RolloutActionRequest request,
                                 Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              operations::Output output =
                  active.engine->Resume(request, clock_->Now());
              if (output.status.ok()) {
                Logger("audit")->info("{} resumed rollout {}", request.actor(),
                                      request.rollout_id());
              }
              return output;
            });
}

void RolloutOrchestrator::Abort(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              operations::Output output =
                  active.engine->Abort(request, clock_->Now());
              if (output.status.ok()) {
                Logger("audit")->info("{} aborted rollout {}: {}",
                                      request.actor(), request.rollout_id(),
                                      request.reason());
              }
              return output;
            });
}

void RolloutOrchestrator::Retry(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              operations::Output output =
                  active.engine->Retry(request, clock_->Now());
              if (output.status.ok()) {
                int retried = 0;
                for (const v1::RolloutEvent& event : output.events) {
                  retried += event.has_target() &&
                             event.target().state() == v1::TARGET_STATE_PENDING;
                }
                Logger("audit")->info("{} retried {} databases of rollout {}",
                                      request.actor(), retried,
                                      request.rollout_id());
              }
              return output;
            });
}

void RolloutOrchestrator::Rollback(v1::RollbackRolloutRequest request,
                                   Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              const bool already = active.engine->rollout().state() ==
                                   v1::ROLLOUT_STATE_ROLLING_BACK;
              operations::Output output =
                  active.engine->Rollback(request, clock_->Now());
              if (output.status.ok() && !already) {
                Logger("audit")->info(
                    "{} rolled back rollout {} (phase \"{}\", wave {}{}{}): {}",
                    request.actor(), request.rollout_id(), request.phase(),
                    request.wave(),
                    request.restore() ? ", restoring backups" : "",
                    request.accept_data_loss() ? ", ACCEPTING DATA LOSS" : "",
                    request.reason());
              }
              return output;
            });
}

void RolloutOrchestrator::Attest(v1::AttestGateRequest request,
                                 Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](Active& active) {
              operations::Output output =
                  active.engine->Attest(request, clock_->Now());
              if (output.status.ok()) {
                Logger("audit")->info("{} attested gate {} of rollout {}: {}",
                                      request.attested_by(),
                                      GateName(request.gate()),
                                      request.rollout_id(), request.comment());
              }
              return output;
            });
}

void RolloutOrchestrator::Watch(std::string rollout_id, int64_t after_sequence,
                                std::shared_ptr<RolloutEventSink> sink) {
  // Until the task runs, Stop ends the sink.
  Callback<bool> started = Answered<bool>([sink](absl::StatusOr<bool> result) {
    if (!result.ok()) sink->End(result.status());
  });
  Post([this, rollout_id = std::move(rollout_id), after_sequence,
        sink = std::move(sink), started = std::move(started)] {
    // From saved state: the watcher then gets the events after it, as their
    // commits deliver them.
    AfterCommit([this, rollout_id, after_sequence, sink, started] {
      started(true);
      absl::StatusOr<Active*> found = FindOrError(rollout_id);
      if (!found.ok()) return sink->End(found.status());
      Active& active = **found;
      const v1::Rollout& rollout = active.engine->rollout();
      if (after_sequence < 0 ||
          after_sequence > rollout.last_event_sequence()) {
        return sink->End(absl::OutOfRangeError(absl::StrCat(
            "after_sequence ", after_sequence, " is beyond the last event (",
            rollout.last_event_sequence(), ")")));
      }
      if (after_sequence == 0) {
        v1::RolloutEvent snapshot;
        snapshot.set_sequence(rollout.last_event_sequence());
        *snapshot.mutable_event_time() = Now();
        *snapshot.mutable_snapshot() = rollout;
        if (!sink->Deliver(snapshot)) return;
      } else {
        absl::StatusOr<std::vector<v1::RolloutEvent>> events =
            store_->LoadRolloutEvents(rollout_id, after_sequence);
        if (!events.ok()) return sink->End(events.status());
        for (const v1::RolloutEvent& event : *events) {
          if (!sink->Deliver(event)) return;
        }
      }
      if (active.engine->Finished()) return sink->End(absl::OkStatus());
      active.watchers.push_back(sink);
    });
  });
}

// ---- plans ----

void RolloutOrchestrator::Plan(v1::CreateRolloutRequest request,
                               Callback<v1::RolloutPlan> done) {
  Post([this, request = std::move(request), done = Answered(std::move(done))] {
    absl::StatusOr<v1::Rollout> rollout =
        BuildRollout(request, /*check_conflicts=*/false);
    if (!rollout.ok()) return done(rollout.status());
    auto job = std::make_unique<PlanJob>();
    job->id = next_plan_++;
    job->bundle_id = rollout->bundle_id();
    job->phases.assign(rollout->phases().begin(), rollout->phases().end());
    job->adopt = rollout->strategy().adopt();
    job->deadline = clock_->Now() + options_.plan_timeout;
    job->done = std::move(done);
    for (const v1::RolloutTarget& target : rollout->targets()) {
      v1::TargetPlan* plan = job->plan.add_targets();
      plan->set_database_id(target.database_id());
      plan->set_wave(target.wave());
      if (Connected(target.database_id())) {
        job->next_phase[target.database_id()] = 0;
      } else {
        job->plan.add_offline_databases(target.database_id());
      }
    }
    *job->plan.mutable_rollout() = *std::move(rollout);
    PlanJob& ref = *job;
    plans_[ref.id] = std::move(job);
    std::vector<std::string> databases;
    for (const auto& [database_id, index] : ref.next_phase)
      databases.push_back(database_id);
    for (const std::string& database_id : databases)
      SendNextPlanCommand(ref, database_id);
    MaybeFinishPlan(ref.id, /*timed_out=*/false);
  });
}

void RolloutOrchestrator::SendNextPlanCommand(PlanJob& job,
                                              const std::string& database_id) {
  auto it = job.next_phase.find(database_id);
  if (it == job.next_phase.end()) return;
  if (it->second >= job.phases.size()) {
    job.next_phase.erase(it);
    return;
  }
  // Phases one after another: an agent runs one deployment command at a time.
  v1::Command command;
  command.set_command_id(absl::StrCat("plan-", plan_epoch_, "-", job.id, "/",
                                      database_id, "/", it->second));
  command.mutable_run_phase()->set_bundle_id(job.bundle_id);
  command.mutable_run_phase()->set_phase(job.phases[it->second]);
  command.mutable_run_phase()->set_dry_run(true);
  command.mutable_run_phase()->set_adopt(job.adopt);
  ++it->second;
  command_plan_[command.command_id()] = job.id;
  job.current_command[database_id] = command.command_id();
  absl::StatusOr<std::string> sent =
      registry_->SendCommand(database_id, command);
  if (!sent.ok()) {
    for (v1::TargetPlan& plan : *job.plan.mutable_targets()) {
      if (plan.database_id() == database_id)
        plan.set_error(std::string(sent.status().message()));
    }
    job.next_phase.erase(database_id);
  }
}

void RolloutOrchestrator::OnPlanMessage(PlanJob& job,
                                        const std::string& database_id,
                                        const v1::AgentMessage& message) {
  v1::TargetPlan* plan = nullptr;
  for (v1::TargetPlan& candidate : *job.plan.mutable_targets()) {
    if (candidate.database_id() == database_id) plan = &candidate;
  }
  if (plan == nullptr) return;
  absl::Status failure;
  bool finished = false;
  if (message.has_command_ack() && message.command_ack().status().code() != 0) {
    failure = FromProtoStatus(message.command_ack().status());
    finished = true;
  } else if (message.command_event().has_finished()) {
    failure = FromProtoStatus(message.command_event().finished());
    finished = true;
  } else if (message.command_event().deployment().has_step_planned()) {
    *plan->add_pending_steps() = message.command_event().deployment();
  }
  if (!finished) return;
  command_plan_.erase(message.has_command_ack()
                          ? message.command_ack().command_id()
                          : message.command_event().command_id());
  if (!failure.ok()) {
    plan->set_error(std::string(failure.message()));
    job.next_phase.erase(database_id);
  } else {
    SendNextPlanCommand(job, database_id);
  }
  MaybeFinishPlan(job.id, /*timed_out=*/false);
}

void RolloutOrchestrator::MaybeFinishPlan(int64_t job_id, bool timed_out) {
  auto it = plans_.find(job_id);
  if (it == plans_.end()) return;
  PlanJob& job = *it->second;
  if (!job.next_phase.empty() && !timed_out) return;
  for (const auto& [database_id, index] : job.next_phase) {
    for (v1::TargetPlan& plan : *job.plan.mutable_targets()) {
      if (plan.database_id() == database_id) {
        plan.set_error(absl::StrCat(
            "no answer within ", absl::FormatDuration(options_.plan_timeout)));
      }
    }
  }
  for (const auto& [database_id, command_id] : job.current_command) {
    command_plan_.erase(command_id);
  }
  Callback<v1::RolloutPlan> done = std::move(job.done);
  v1::RolloutPlan plan = std::move(job.plan);
  plans_.erase(it);
  done(std::move(plan));
}

}  // namespace ecliptix::server
