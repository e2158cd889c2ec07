#include "server/rollout_orchestrator.h"

#include <algorithm>
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
#include "server/rollout_planner.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr absl::Duration kDefaultOfflineDeadline = absl::Minutes(5);
constexpr int kDefaultListPageSize = 50;

// The answer to every request the worker did not answer before Stop.
absl::Status ShuttingDown() {
  return absl::UnavailableError(
      "the server is shutting down; try again when it is back");
}

bool IsActive(v1::RolloutState state) { return IsActiveRolloutState(state); }

bool IsTargetFinal(v1::TargetState state) { return IsFinalTargetState(state); }

bool IsTargetBusy(v1::TargetState state) {
  return state == v1::TARGET_STATE_RUNNING ||
         state == v1::TARGET_STATE_ROLLING_BACK;
}

}  // namespace

struct RolloutOrchestrator::Active {
  v1::Rollout rollout;
  int64_t number = 0;
  v1::BundleManifest manifest;
  std::vector<v1::RolloutEvent> unsaved_events;
  std::vector<std::shared_ptr<RolloutEventSink>> watchers;
  // A rollback asked for (by a person or automatically) that waits for running
  // deployments to stop.
  bool rollback_pending = false;
  // The last wave whose end was reported.
  int waves_ended = 0;
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
      options_(options) {}

RolloutOrchestrator::~RolloutOrchestrator() { Stop(); }

absl::Status RolloutOrchestrator::Start() {
  absl::StatusOr<std::vector<v1::Rollout>> stored = store_->LoadRollouts();
  if (!stored.ok()) return stored.status();
  const auto now = Now();
  int resumed = 0;
  for (v1::Rollout& rollout : *stored) {
    auto active = std::make_unique<Active>();
    int64_t number = 0;
    absl::SimpleAtoi(absl::string_view(rollout.rollout_id()).substr(2),
                     &number);
    active->number = number;
    next_number_ = std::max(next_number_, number + 1);
    if (absl::StatusOr<v1::BundleInfo> info =
            bundles_->Resolve(rollout.bundle_id());
        info.ok()) {
      active->manifest = info->manifest();
    }
    for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
      if (!target.command_id().empty())
        command_rollout_[target.command_id()] = rollout.rollout_id();
      // Every agent is disconnected until it comes back to this server.
      if (IsTargetBusy(target.state()) ||
          target.state() == v1::TARGET_STATE_PENDING) {
        *target.mutable_offline_since_time() = now;
      }
    }
    if (IsActive(rollout.state())) ++resumed;
    active->rollout = std::move(rollout);
    const std::string id = active->rollout.rollout_id();
    rollouts_[id] = std::move(active);
  }
  if (!rollouts_.empty()) {
    Logger("rollouts")
        ->info("loaded {} rollouts, {} to resume", rollouts_.size(), resumed);
  }
  registry_->AddCommandObserver(
      [this](const std::string& database_id, const v1::AgentMessage& message) {
        Post([this, database_id, message] {
          OnAgentMessage(database_id, message);
        });
      });
  registry_->AddConnectionObserver(
      [this](const std::string& database_id, bool connected) {
        Post([this, database_id, connected] {
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
  {
    absl::MutexLock lock(&queue_mutex_);
    pending.swap(pending_);
    never_run.swap(queue_);
  }
  // Queued requests, and plans still waiting for agents.
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

void RolloutOrchestrator::Loop() {
  absl::Time next_tick = absl::Now();
  for (;;) {
    std::deque<std::function<void()>> tasks;
    {
      absl::MutexLock lock(&queue_mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mutex_) {
        return stopping_ || !queue_.empty();
      };
      queue_mutex_.AwaitWithDeadline(absl::Condition(&ready), next_tick);
      if (stopping_) return;
      tasks.swap(queue_);
    }
    for (auto& task : tasks) task();
    if (absl::Now() >= next_tick) {
      Tick();
      next_tick = absl::Now() + options_.tick;
    }
  }
}

void RolloutOrchestrator::Tick() {
  for (auto& [id, active] : rollouts_) {
    if (IsActive(active->rollout.state())) {
      Advance(*active);
      Flush(*active);
    }
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
  Active* active = Find(rollout_id);
  if (active == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no rollout \"", rollout_id,
                     "\"; `ecliptixctl rollout list` shows them"));
  }
  return active;
}

v1::RolloutTarget* RolloutOrchestrator::FindTarget(
    Active& active, const std::string& database_id) {
  for (v1::RolloutTarget& target : *active.rollout.mutable_targets()) {
    if (target.database_id() == database_id) return &target;
  }
  return nullptr;
}

bool RolloutOrchestrator::HasRunningTargets(const Active& active) const {
  for (const v1::RolloutTarget& target : active.rollout.targets()) {
    if (IsTargetBusy(target.state())) return true;
  }
  return false;
}

// ---- events and persistence ----

void RolloutOrchestrator::Emit(Active& active, v1::RolloutEvent event) {
  event.set_sequence(active.rollout.last_event_sequence() + 1);
  *event.mutable_event_time() = Now();
  // The one way the rollout changes with its events, as watchers apply them.
  ApplyRolloutEvent(event, &active.rollout);
  active.watchers.erase(
      std::remove_if(active.watchers.begin(), active.watchers.end(),
                     [&](const std::shared_ptr<RolloutEventSink>& watcher) {
                       return !watcher->Deliver(event);
                     }),
      active.watchers.end());
  active.unsaved_events.push_back(std::move(event));
}

void RolloutOrchestrator::SetState(Active& active, v1::RolloutState state,
                                   const std::string& reason,
                                   const std::string& actor) {
  v1::Rollout& rollout = active.rollout;
  if (rollout.state() == state &&
      rollout.waiting_reason() == ShownWaitingReason(rollout, state, reason) &&
      actor.empty()) {
    return;
  }
  v1::RolloutEvent event;
  v1::RolloutStateChanged* state_changed = event.mutable_state_changed();
  state_changed->set_state(state);
  state_changed->set_reason(reason);
  state_changed->set_actor(actor);
  Logger("rollouts")
      ->info("rollout {}: {}{}{}", rollout.rollout_id(),
             RolloutStateName(state), reason.empty() ? "" : ": " + reason,
             actor.empty() ? "" : " (by " + actor + ")");
  Emit(active, std::move(event));
}

void RolloutOrchestrator::SetTargetState(Active& active,
                                         v1::RolloutTarget& target,
                                         v1::TargetState state,
                                         const std::string& error,
                                         bool counts_against_budget) {
  v1::RolloutEvent event;
  v1::TargetStateChanged* changed = event.mutable_target();
  changed->set_database_id(target.database_id());
  changed->set_state(state);
  changed->set_error(error);
  changed->set_wave(target.wave());
  changed->set_counts_against_budget(counts_against_budget);
  Emit(active, std::move(event));
}

void RolloutOrchestrator::Flush(Active& active) {
  if (active.unsaved_events.empty()) return;
  if (absl::Status status = store_->SaveRollout(active.rollout, active.number,
                                                active.unsaved_events);
      !status.ok()) {
    // Kept in memory and saved with the next change.
    Logger("rollouts")
        ->error("could not save rollout {}: {}", active.rollout.rollout_id(),
                status.ToString());
    return;
  }
  active.unsaved_events.clear();
  if (!IsActive(active.rollout.state()) && !HasRunningTargets(active)) {
    for (auto& watcher : active.watchers) watcher->End(absl::OkStatus());
    active.watchers.clear();
  }
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
  absl::StatusOr<std::vector<std::string>> phases =
      PhasesToDeploy(request.strategy(), info->manifest());
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
  if (check_conflicts) {
    std::set<std::string> ids;
    for (const v1::Database& database : databases)
      ids.insert(database.database_id());
    for (const auto& [other_id, other] : rollouts_) {
      if (!IsActive(other->rollout.state())) continue;
      for (const v1::RolloutTarget& target : other->rollout.targets()) {
        if (ids.count(target.database_id()) > 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "database ", target.database_id(), " is in rollout ", other_id,
              " (", RolloutStateName(other->rollout.state()),
              "); wait for it to end, or stop it with "
              "`ecliptixctl rollout abort ",
              other_id, "`"));
        }
      }
    }
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
  rollout.set_description(request.description());
  for (const std::string& phase : *phases) rollout.add_phases(phase);
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
    rollout->set_rollout_id(absl::StrCat("r-", active->number));
    active->manifest = bundles_->Resolve(rollout->bundle_id())->manifest();
    active->rollout = *std::move(rollout);
    Active& ref = *active;
    rollouts_[ref.rollout.rollout_id()] = std::move(active);
    Logger("audit")->info(
        "{} created rollout {} of {} to \"{}\" ({} databases, {} waves)",
        request.requested_by(), ref.rollout.rollout_id(),
        ref.rollout.bundle_name_version(), request.selector(),
        ref.rollout.targets_size(), ref.rollout.wave_count());
    v1::RolloutEvent created;
    created.mutable_state_changed()->set_state(v1::ROLLOUT_STATE_PENDING);
    created.mutable_state_changed()->set_reason("created");
    created.mutable_state_changed()->set_actor(request.requested_by());
    Emit(ref, std::move(created));
    Advance(ref);
    Flush(ref);
    done(ref.rollout);
  });
}

// ---- the state machine ----

bool RolloutOrchestrator::EvaluateGates(Active& active) {
  v1::Rollout& rollout = active.rollout;
  std::vector<std::string> holding;
  for (v1::GateStatus& gate : *rollout.mutable_gates()) {
    bool satisfied = false;
    std::string detail;
    const bool attested = !gate.attested_by().empty();
    switch (gate.kind()) {
      case v1::GATE_KIND_BACKUP_COMPLETED:
        // Evidence (backup_first), or a named person's word for backups taken
        // with the engine's own tools (ODBC targets: see BuildRollout).
        satisfied = rollout.strategy().backup_first() || attested;
        detail =
            rollout.strategy().backup_first()
                ? "each database takes a backup before its first step"
            : attested
                ? absl::StrCat("attested by ", gate.attested_by())
                : absl::StrCat(
                      "no backup yet: set backup_first (--backup); for "
                      "backups taken with the engine's own tools, a "
                      "named person attests the gate (`ecliptixctl "
                      "rollout attest ",
                      rollout.rollout_id(), " backup-completed --by=NAME`)");
        break;
      case v1::GATE_KIND_STAGING_TESTED: {
        for (const auto& [id, other] : rollouts_) {
          const v1::Rollout& candidate = other->rollout;
          if (candidate.bundle_id() != rollout.bundle_id() ||
              candidate.state() != v1::ROLLOUT_STATE_SUCCEEDED ||
              candidate.targets().empty()) {
            continue;
          }
          bool all_staging = true;
          for (const v1::RolloutTarget& target : candidate.targets()) {
            auto env = target.labels().find("env");
            all_staging &=
                env != target.labels().end() && env->second == "staging";
          }
          if (all_staging) {
            satisfied = true;
            detail =
                absl::StrCat("rollout ", id, " succeeded on ",
                             candidate.targets_size(), " staging databases");
            break;
          }
        }
        if (!satisfied) {
          detail = absl::StrCat("no succeeded rollout of ",
                                rollout.bundle_name_version(),
                                " on env=staging databases yet");
        }
        break;
      }
      case v1::GATE_KIND_MAINTENANCE_WINDOW: {
        absl::StatusOr<WindowCheck> check =
            CheckWindow(gate.window(), clock_->Now());
        satisfied = check.ok() && check->inside;
        detail =
            check.ok() ? check->detail : std::string(check.status().message());
        break;
      }
      case v1::GATE_KIND_ROLLBACK_PLAN: {
        std::vector<std::string> phases(rollout.phases().begin(),
                                        rollout.phases().end());
        std::vector<std::string> missing =
            StepsWithoutRevert(active.manifest, phases);
        satisfied = missing.empty() || attested;
        detail = missing.empty() ? "every step has a revert script"
                                 : absl::StrCat("steps without revert script: ",
                                                absl::StrJoin(missing, ", "),
                                                attested ? " (plan attested)"
                                                         : "; attest the plan");
        break;
      }
      default:
        satisfied = attested;
        detail = attested ? absl::StrCat("attested by ", gate.attested_by())
                          : "not attested";
        break;
    }
    if (gate.satisfied() != satisfied || gate.detail() != detail) {
      gate.set_satisfied(satisfied);
      gate.set_detail(detail);
      v1::RolloutEvent event;
      *event.mutable_gate() = gate;
      Emit(active, std::move(event));
    }
    if (!satisfied)
      holding.push_back(
          absl::StrCat("gate ", GateName(gate.kind()), ": ", detail));
  }
  if (holding.empty()) return true;
  SetState(active, v1::ROLLOUT_STATE_WAITING_FOR_GATE,
           absl::StrJoin(holding, "; "));
  return false;
}

void RolloutOrchestrator::StartWave(Active& active, int wave) {
  const v1::Rollout& rollout = active.rollout;
  v1::RolloutEvent event;
  event.mutable_wave()->set_wave(wave);
  event.mutable_wave()->set_started(true);
  for (const v1::RolloutTarget& target : rollout.targets()) {
    if (target.wave() == wave)
      event.mutable_wave()->add_database_ids(target.database_id());
  }
  Emit(active, std::move(event));
}

void RolloutOrchestrator::SendCurrentCommand(Active& active,
                                             v1::RolloutTarget& target) {
  v1::Command command;
  command.set_command_id(target.command_id());
  if (target.state() == v1::TARGET_STATE_ROLLING_BACK &&
      active.rollout.rollback_restore()) {
    command.mutable_restore()->set_backup_id(target.backup_id());
  } else if (target.state() == v1::TARGET_STATE_ROLLING_BACK) {
    command.mutable_revert_phase()->set_bundle_id(active.rollout.bundle_id());
    command.mutable_revert_phase()->set_phase(target.phase());
    command.mutable_revert_phase()->set_only_this_bundle(true);
    command.mutable_revert_phase()->set_accept_data_loss(
        active.rollout.rollback_accept_data_loss());
  } else {
    command.mutable_run_phase()->set_bundle_id(active.rollout.bundle_id());
    command.mutable_run_phase()->set_phase(target.phase());
    // One backup per database, before the first step that runs (the agent
    // takes none when a phase has nothing pending).
    command.mutable_run_phase()->set_backup_first(
        active.rollout.strategy().backup_first() && target.backup_id().empty());
    command.mutable_run_phase()->set_adopt(active.rollout.strategy().adopt());
  }
  absl::StatusOr<std::string> sent =
      registry_->SendCommand(target.database_id(), command);
  if (!sent.ok()) {
    // Not connected: sent again when the agent comes back.
    if (!target.has_offline_since_time())
      *target.mutable_offline_since_time() = Now();
    return;
  }
  target.clear_offline_since_time();
}

void RolloutOrchestrator::AssignCommand(Active& active,
                                        v1::RolloutTarget& target,
                                        const std::string& verb) {
  // Derived from saved state only: a server that died after sending a command
  // but before saving asks again, after its restart, for the very command the
  // agent may still be running, and the agent recognizes its id.
  const int attempt =
      verb == "revert" ? target.revert_attempt() : target.attempt();
  target.set_command_id(absl::StrCat(active.rollout.rollout_id(), "/",
                                     target.database_id(), "/", verb, "/",
                                     target.phase(), "/", attempt));
  command_rollout_[target.command_id()] = active.rollout.rollout_id();
}

void RolloutOrchestrator::StartTarget(Active& active,
                                      v1::RolloutTarget& target) {
  const std::string& first = active.rollout.phases(0);
  target.set_phase(first);
  target.set_step("");
  // Touched phases are the ones where this rollout applies a step (see the
  // step events): a rollback must not revert what earlier rollouts applied.
  target.clear_touched_phases();
  target.set_attempt(target.attempt() + 1);
  AssignCommand(active, target, "run");
  SetTargetState(active, target, v1::TARGET_STATE_RUNNING);
  SendCurrentCommand(active, target);
}

void RolloutOrchestrator::BeginTargetRollback(Active& active,
                                              v1::RolloutTarget& target) {
  if (active.rollout.rollback_restore()) {
    // The runbook's emergency rollback: the whole database goes back to the
    // backup taken before this rollout's first step ran on it.
    if (target.touched_phases().empty()) return;
    target.set_step("");
    target.set_revert_attempt(target.revert_attempt() + 1);
    if (target.backup_id().empty()) {
      SetTargetState(
          active, target, v1::TARGET_STATE_FAILED,
          "rollback failed: the rollout took no backup of this database "
          "(strategy.backup_first was off), so there is none to restore; roll "
          "back without restore to run the revert scripts");
      return;
    }
    AssignCommand(active, target, "restore");
    SetTargetState(active, target, v1::TARGET_STATE_ROLLING_BACK);
    SendCurrentCommand(active, target);
    return;
  }
  const std::string& only = active.rollout.rollback_phase();
  std::vector<std::string> to_revert;
  for (auto it = target.touched_phases().rbegin();
       it != target.touched_phases().rend(); ++it) {
    if (only.empty() || *it == only) to_revert.push_back(*it);
  }
  if (to_revert.empty()) return;
  target.set_phase(to_revert.front());
  target.set_step("");
  target.set_revert_attempt(target.revert_attempt() + 1);
  AssignCommand(active, target, "revert");
  SetTargetState(active, target, v1::TARGET_STATE_ROLLING_BACK);
  SendCurrentCommand(active, target);
}

void RolloutOrchestrator::BeginRollback(Active& active) {
  active.rollback_pending = false;
  v1::Rollout& rollout = active.rollout;
  SetState(active, v1::ROLLOUT_STATE_ROLLING_BACK,
           rollout.rollback_restore()
               ? "restoring each changed database's pre-rollout backup"
           : rollout.rollback_phase().empty()
               ? "reverting every phase applied, last first"
               : absl::StrCat("reverting phase ", rollout.rollback_phase()));
  for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
    if (rollout.rollback_wave() != 0 &&
        target.wave() != rollout.rollback_wave())
      continue;
    // Targets with nothing left in scope (never started, or already
    // reverted) are left alone by BeginTargetRollback.
    BeginTargetRollback(active, target);
  }
}

void RolloutOrchestrator::FinishRollout(Active& active) {
  v1::Rollout& rollout = active.rollout;
  const bool over_budget = rollout.failures() > rollout.failure_budget();
  if (!over_budget) {
    SetState(active, v1::ROLLOUT_STATE_SUCCEEDED,
             rollout.failures() == 0
                 ? "every database applied the bundle"
                 : absl::StrCat(rollout.failures(),
                                " failures, within the budget of ",
                                rollout.failure_budget()));
    return;
  }
  if (rollout.strategy().auto_rollback() == v1::AUTO_ROLLBACK_ROLLOUT) {
    BeginRollback(active);
    return;
  }
  SetState(
      active, v1::ROLLOUT_STATE_FAILED,
      absl::StrCat(rollout.failures(), " failures exceed the budget of ",
                   rollout.failure_budget(), "; no further wave was started"));
}

void RolloutOrchestrator::Advance(Active& active) {
  v1::Rollout& rollout = active.rollout;
  const absl::Time now = clock_->Now();

  if (rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK) {
    bool busy = false, failed = false;
    for (const v1::RolloutTarget& target : rollout.targets()) {
      busy |= IsTargetBusy(target.state());
      failed |= target.state() == v1::TARGET_STATE_FAILED &&
                !target.touched_phases().empty() &&
                absl::StartsWith(target.error(), "rollback failed");
    }
    if (!busy) {
      SetState(
          active,
          failed ? v1::ROLLOUT_STATE_FAILED : v1::ROLLOUT_STATE_ROLLED_BACK,
          failed ? "the rollback failed on some databases; see their errors"
                 : "what the rollout applied was reverted");
    }
    return;
  }
  if (active.rollback_pending) {
    if (!HasRunningTargets(active)) BeginRollback(active);
    return;
  }
  if (rollout.state() == v1::ROLLOUT_STATE_PENDING ||
      rollout.state() == v1::ROLLOUT_STATE_WAITING_FOR_GATE) {
    if (!EvaluateGates(active)) return;
    SetState(active, v1::ROLLOUT_STATE_RUNNING, "every gate holds");
  }
  if (rollout.state() != v1::ROLLOUT_STATE_RUNNING) return;

  // Offline deadlines apply to targets waiting for their agent, pending or
  // mid-command.
  const absl::Duration deadline =
      rollout.strategy().has_offline_deadline() &&
              FromProtoDuration(rollout.strategy().offline_deadline()) >
                  absl::ZeroDuration()
          ? FromProtoDuration(rollout.strategy().offline_deadline())
          : kDefaultOfflineDeadline;
  for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
    if (target.wave() > rollout.current_wave() ||
        !target.has_offline_since_time())
      continue;
    if (now - FromProtoTimestamp(target.offline_since_time()) < deadline)
      continue;
    if (target.state() == v1::TARGET_STATE_RUNNING) {
      SetTargetState(
          active, target, v1::TARGET_STATE_UNKNOWN,
          absl::StrCat(
              "the agent went away during phase ", target.phase(),
              "; its outcome is unknown (retry settles it from the history "
              "table)"),
          /*counts_against_budget=*/true);
    } else if (target.state() == v1::TARGET_STATE_PENDING &&
               target.wave() == rollout.current_wave()) {
      const std::string why = absl::StrCat("agent offline for more than ",
                                           absl::FormatDuration(deadline));
      if (rollout.strategy().offline_policy() == v1::OFFLINE_POLICY_SKIP) {
        SetTargetState(active, target, v1::TARGET_STATE_SKIPPED, why);
      } else {
        SetTargetState(active, target, v1::TARGET_STATE_FAILED, why,
                       /*counts_against_budget=*/true);
      }
    }
    target.clear_offline_since_time();
  }

  const bool over_budget = rollout.failures() > rollout.failure_budget();
  if (rollout.current_wave() == 0) {
    for (const v1::GateStatus& gate : rollout.gates()) {
      if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW &&
          !EvaluateGates(active))
        return;
    }
    StartWave(active, 1);
  }
  const int wave = rollout.current_wave();
  int running = 0;
  bool wave_done = true;
  for (const v1::RolloutTarget& target : rollout.targets()) {
    if (target.wave() != wave) continue;
    running += IsTargetBusy(target.state());
    wave_done &= IsTargetFinal(target.state());
  }
  if (!over_budget) {
    const int max_parallel = rollout.strategy().max_parallel();
    for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
      if (max_parallel > 0 && running >= max_parallel) break;
      if (target.wave() != wave || target.state() != v1::TARGET_STATE_PENDING)
        continue;
      if (!Connected(target.database_id())) {
        if (!target.has_offline_since_time())
          *target.mutable_offline_since_time() = Now();
        continue;
      }
      target.clear_offline_since_time();
      StartTarget(active, target);
      ++running;
      wave_done = false;
    }
  } else if (running == 0) {
    // Over budget: the rest of the rollout is not started.
    for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
      if (target.state() == v1::TARGET_STATE_PENDING) {
        SetTargetState(active, target, v1::TARGET_STATE_SKIPPED,
                       "not started: the failure budget was exceeded");
      }
    }
    FinishRollout(active);
    return;
  }
  if (!wave_done || running > 0) return;

  // Advance comes here again on every tick of a timed pause: the wave's end
  // is told once.
  if (wave > active.waves_ended) {
    active.waves_ended = wave;
    v1::RolloutEvent ended;
    ended.mutable_wave()->set_wave(wave);
    ended.mutable_wave()->set_started(false);
    Emit(active, std::move(ended));
  }
  if (wave >= rollout.wave_count()) {
    FinishRollout(active);
    return;
  }
  if (rollout.strategy().approval_required()) {
    SetState(active, v1::ROLLOUT_STATE_PAUSED,
             absl::StrCat("wave ", wave, " of ", rollout.wave_count(),
                          " finished; approve the next wave with `ecliptixctl "
                          "rollout resume ",
                          rollout.rollout_id(), "`"));
    return;
  }
  const absl::Duration pause =
      FromProtoDuration(rollout.strategy().pause_between_waves());
  if (pause > absl::ZeroDuration()) {
    if (!rollout.has_resume_time()) {
      *rollout.mutable_resume_time() = ToProtoTimestamp(now + pause);
      SetState(active, v1::ROLLOUT_STATE_RUNNING,
               absl::StrCat("wave ", wave, " finished; wave ", wave + 1,
                            " starts at ",
                            absl::FormatTime("%H:%M:%S UTC", now + pause,
                                             absl::UTCTimeZone())));
      return;
    }
    if (now < FromProtoTimestamp(rollout.resume_time())) return;
  }
  for (const v1::GateStatus& gate : rollout.gates()) {
    if (gate.kind() == v1::GATE_KIND_MAINTENANCE_WINDOW &&
        !EvaluateGates(active))
      return;
  }
  SetState(active, v1::ROLLOUT_STATE_RUNNING, "");
  StartWave(active, wave + 1);
  Advance(active);
}

// ---- agent messages ----

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
  auto owner = command_rollout_.find(command_id);
  if (owner == command_rollout_.end()) return;
  Active* active = Find(owner->second);
  if (active == nullptr) return;
  v1::RolloutTarget* target = FindTarget(*active, database_id);
  // A late or repeated message for a command that is no longer the target's
  // current one.
  if (target == nullptr || target->command_id() != command_id) return;
  if (message.has_command_ack()) {
    if (message.command_ack().status().code() != 0) {
      OnCommandFinished(*active, *target,
                        FromProtoStatus(message.command_ack().status()));
    }
  } else if (message.command_event().has_finished()) {
    OnCommandFinished(*active, *target,
                      FromProtoStatus(message.command_event().finished()));
  } else if (message.command_event().has_deployment()) {
    // The step, its counters, touched phases and the backup id change as the
    // event is applied (Emit).
    const v1::DeploymentEvent& event = message.command_event().deployment();
    v1::RolloutEvent rollout_event;
    rollout_event.mutable_deployment()->set_database_id(database_id);
    *rollout_event.mutable_deployment()->mutable_event() = event;
    Emit(*active, std::move(rollout_event));
  }
  Advance(*active);
  Flush(*active);
}

void RolloutOrchestrator::OnCommandFinished(Active& active,
                                            v1::RolloutTarget& target,
                                            const absl::Status& status) {
  v1::Rollout& rollout = active.rollout;
  command_rollout_.erase(target.command_id());
  if (target.state() == v1::TARGET_STATE_ROLLING_BACK &&
      rollout.rollback_restore()) {
    if (!status.ok()) {
      SetTargetState(active, target, v1::TARGET_STATE_FAILED,
                     absl::StrCat("rollback failed: restoring backup ",
                                  target.backup_id(), ": ", status.message()));
      return;
    }
    // Everything the rollout did here is gone with the restore.
    target.clear_touched_phases();
    target.clear_applied_phases();
    SetTargetState(active, target, v1::TARGET_STATE_ROLLED_BACK);
    return;
  }
  if (target.state() == v1::TARGET_STATE_ROLLING_BACK) {
    if (!status.ok()) {
      SetTargetState(active, target, v1::TARGET_STATE_FAILED,
                     absl::StrCat("rollback failed in phase ", target.phase(),
                                  ": ", status.message()));
      return;
    }
    // The phase is undone: it leaves what the rollout applied here. Next is
    // the last phase left in scope.
    auto remove = [&](google::protobuf::RepeatedPtrField<std::string>* phases) {
      phases->erase(std::remove(phases->begin(), phases->end(), target.phase()),
                    phases->end());
    };
    remove(target.mutable_touched_phases());
    remove(target.mutable_applied_phases());
    const std::string& only = rollout.rollback_phase();
    std::string next;
    for (auto it = target.touched_phases().rbegin();
         it != target.touched_phases().rend(); ++it) {
      if (only.empty() || *it == only) {
        next = *it;
        break;
      }
    }
    if (next.empty()) {
      SetTargetState(active, target, v1::TARGET_STATE_ROLLED_BACK);
      return;
    }
    target.set_phase(next);
    AssignCommand(active, target, "revert");
    SendCurrentCommand(active, target);
    return;
  }
  if (target.state() != v1::TARGET_STATE_RUNNING) return;
  if (!status.ok()) {
    const bool cancelled = status.code() == absl::StatusCode::kCancelled;
    SetTargetState(
        active, target, v1::TARGET_STATE_FAILED,
        absl::StrCat(cancelled ? "cancelled" : "failed", " in phase ",
                     target.phase(), ": ", status.message()),
        /*counts_against_budget=*/true);
    if (rollout.strategy().auto_rollback() ==
            v1::AUTO_ROLLBACK_FAILED_TARGETS &&
        rollout.state() != v1::ROLLOUT_STATE_ABORTED) {
      BeginTargetRollback(active, target);
    }
    return;
  }
  target.add_applied_phases(target.phase());
  const auto& phases = rollout.phases();
  auto it = std::find(phases.begin(), phases.end(), target.phase());
  if (it == phases.end() || std::next(it) == phases.end() ||
      rollout.state() == v1::ROLLOUT_STATE_ABORTED) {
    if (rollout.state() == v1::ROLLOUT_STATE_ABORTED &&
        std::next(it) != phases.end()) {
      SetTargetState(active, target, v1::TARGET_STATE_FAILED,
                     absl::StrCat("aborted after phase ", target.phase()));
    } else {
      SetTargetState(active, target, v1::TARGET_STATE_SUCCEEDED);
    }
    return;
  }
  target.set_phase(*std::next(it));
  target.set_step("");
  AssignCommand(active, target, "run");
  SendCurrentCommand(active, target);
}

void RolloutOrchestrator::OnConnection(const std::string& database_id,
                                       bool connected) {
  for (auto& [id, active] : rollouts_) {
    v1::RolloutTarget* target = FindTarget(*active, database_id);
    if (target == nullptr) continue;
    if (!connected) {
      if ((IsTargetBusy(target->state()) ||
           target->state() == v1::TARGET_STATE_PENDING) &&
          !target->has_offline_since_time()) {
        *target->mutable_offline_since_time() = Now();
      }
      continue;
    }
    target->clear_offline_since_time();
    // The same command id again: an agent that ran it answers with the outcome
    // it journaled; one that restarted runs it, and its history table skips
    // what is applied.
    if (IsTargetBusy(target->state()) && !target->command_id().empty()) {
      SendCurrentCommand(*active, *target);
    }
    if (IsActive(active->rollout.state())) {
      Advance(*active);
      Flush(*active);
    }
  }
}

// ---- people's actions ----

void RolloutOrchestrator::Get(std::string rollout_id,
                              Callback<v1::Rollout> done) {
  Post([this, rollout_id = std::move(rollout_id),
        done = Answered(std::move(done))] {
    absl::StatusOr<Active*> active = FindOrError(rollout_id);
    if (!active.ok()) return done(active.status());
    done((*active)->rollout);
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
    std::set<int> states(request.states().begin(), request.states().end());
    std::vector<Active*> matching;
    for (auto& [id, active] : rollouts_) {
      if (active->number >= before) continue;
      if (!states.empty() && states.count(active->rollout.state()) == 0)
        continue;
      matching.push_back(active.get());
    }
    std::sort(matching.begin(), matching.end(),
              [](Active* a, Active* b) { return a->number > b->number; });
    v1::ListRolloutsResponse response;
    for (size_t i = 0; i < matching.size() && static_cast<int>(i) < page_size;
         ++i) {
      v1::Rollout* rollout = response.add_rollouts();
      *rollout = matching[i]->rollout;
      rollout->clear_targets();
    }
    if (static_cast<int>(matching.size()) > page_size) {
      response.set_next_page_token(
          absl::StrCat(matching[page_size - 1]->number));
    }
    done(response);
  });
}

void RolloutOrchestrator::OnRollout(
    std::string rollout_id, Callback<v1::Rollout> done,
    std::function<void(Active&, const Callback<v1::Rollout>&)> action) {
  Post([this, rollout_id = std::move(rollout_id),
        done = Answered(std::move(done)), action = std::move(action)] {
    absl::StatusOr<Active*> found = FindOrError(rollout_id);
    if (!found.ok()) return done(found.status());
    action(**found, done);
  });
}

void RolloutOrchestrator::Pause(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(
      std::move(rollout_id), std::move(done),
      [this, request = std::move(request)](Active& active,
                                           const Callback<v1::Rollout>& done) {
        const v1::RolloutState state = active.rollout.state();
        if (state == v1::ROLLOUT_STATE_PAUSED) return done(active.rollout);
        if (state != v1::ROLLOUT_STATE_RUNNING &&
            state != v1::ROLLOUT_STATE_WAITING_FOR_GATE &&
            state != v1::ROLLOUT_STATE_PENDING) {
          return done(absl::FailedPreconditionError(absl::StrCat(
              "rollout ", request.rollout_id(), " is ", RolloutStateName(state),
              "; only a pending, waiting or running rollout can be paused")));
        }
        Logger("audit")->info("{} paused rollout {}: {}", request.actor(),
                              request.rollout_id(), request.reason());
        SetState(active, v1::ROLLOUT_STATE_PAUSED,
                 absl::StrCat(
                     "paused",
                     request.reason().empty() ? "" : ": " + request.reason(),
                     "; running commands finish, nothing new starts"),
                 request.actor());
        Flush(active);
        done(active.rollout);
      });
}

void RolloutOrchestrator::Resume(v1::RolloutActionRequest request,
                                 Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](
                Active& active, const Callback<v1::Rollout>& done) {
              if (active.rollout.state() != v1::ROLLOUT_STATE_PAUSED) {
                return done(absl::FailedPreconditionError(absl::StrCat(
                    "rollout ", request.rollout_id(), " is ",
                    RolloutStateName(active.rollout.state()), ", not paused")));
              }
              Logger("audit")->info("{} resumed rollout {}", request.actor(),
                                    request.rollout_id());
              active.rollout.clear_resume_time();
              SetState(active, v1::ROLLOUT_STATE_RUNNING,
                       absl::StrCat("resumed", request.reason().empty()
                                                   ? ""
                                                   : ": " + request.reason()),
                       request.actor());
              active.rollout.set_waiting_reason("");
              // Resuming after a finished wave is the approval of the next one.
              v1::Rollout& rollout = active.rollout;
              bool wave_done = rollout.current_wave() > 0;
              for (const v1::RolloutTarget& target : rollout.targets()) {
                if (target.wave() == rollout.current_wave())
                  wave_done &= IsTargetFinal(target.state());
              }
              if (wave_done && rollout.current_wave() < rollout.wave_count()) {
                StartWave(active, rollout.current_wave() + 1);
              }
              Advance(active);
              Flush(active);
              done(active.rollout);
            });
}

void RolloutOrchestrator::Abort(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(std::move(rollout_id), std::move(done),
            [this, request = std::move(request)](
                Active& active, const Callback<v1::Rollout>& done) {
              if (!IsActive(active.rollout.state())) {
                return done(absl::FailedPreconditionError(absl::StrCat(
                    "rollout ", request.rollout_id(), " already ended (",
                    RolloutStateName(active.rollout.state()), ")")));
              }
              Logger("audit")->info("{} aborted rollout {}: {}",
                                    request.actor(), request.rollout_id(),
                                    request.reason());
              SetState(active, v1::ROLLOUT_STATE_ABORTED,
                       absl::StrCat("aborted", request.reason().empty()
                                                   ? ""
                                                   : ": " + request.reason()),
                       request.actor());
              StopTargets(active, "not started: aborted");
              Flush(active);
              done(active.rollout);
            });
}

void RolloutOrchestrator::StopTargets(Active& active,
                                      const std::string& skip_reason) {
  for (v1::RolloutTarget& target : *active.rollout.mutable_targets()) {
    if (target.state() == v1::TARGET_STATE_PENDING) {
      SetTargetState(active, target, v1::TARGET_STATE_SKIPPED, skip_reason);
    } else if (target.state() == v1::TARGET_STATE_RUNNING &&
               !target.command_id().empty()) {
      // The agent rolls the running step back; the command then finishes
      // CANCELLED.
      v1::Command cancel;
      cancel.set_command_id(absl::StrCat(target.command_id(), "/cancel"));
      cancel.mutable_cancel()->set_command_id(target.command_id());
      registry_->SendCommand(target.database_id(), cancel).IgnoreError();
    }
  }
}

void RolloutOrchestrator::Retry(v1::RolloutActionRequest request,
                                Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(
      std::move(rollout_id), std::move(done),
      [this, request = std::move(request)](Active& active,
                                           const Callback<v1::Rollout>& done) {
        v1::Rollout& rollout = active.rollout;
        if (HasRunningTargets(active) ||
            rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK) {
          return done(absl::FailedPreconditionError(absl::StrCat(
              "rollout ", request.rollout_id(),
              " still has running commands; wait for them (or pause "
              "it) before retrying")));
        }
        int first_wave = 0, retried = 0;
        for (v1::RolloutTarget& target : *rollout.mutable_targets()) {
          const v1::TargetState state = target.state();
          if (state != v1::TARGET_STATE_FAILED &&
              state != v1::TARGET_STATE_SKIPPED &&
              state != v1::TARGET_STATE_UNKNOWN) {
            continue;
          }
          ++retried;
          first_wave = first_wave == 0 ? target.wave()
                                       : std::min(first_wave, target.wave());
          // Clears finished_time and starts the failure budget anew.
          SetTargetState(active, target, v1::TARGET_STATE_PENDING, "");
        }
        if (retried == 0) {
          return done(absl::FailedPreconditionError(
              absl::StrCat("rollout ", request.rollout_id(),
                           " has no failed, skipped or unknown databases")));
        }
        Logger("audit")->info("{} retried {} databases of rollout {}",
                              request.actor(), retried, request.rollout_id());
        SetState(active, v1::ROLLOUT_STATE_RUNNING,
                 absl::StrCat("retrying ", retried, " databases"),
                 request.actor());
        active.waves_ended = first_wave - 1;
        StartWave(active, first_wave);
        Advance(active);
        Flush(active);
        done(rollout);
      });
}

void RolloutOrchestrator::Rollback(v1::RollbackRolloutRequest request,
                                   Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(
      std::move(rollout_id), std::move(done),
      [this, request = std::move(request)](Active& active,
                                           const Callback<v1::Rollout>& done) {
        v1::Rollout& rollout = active.rollout;
        if (rollout.state() == v1::ROLLOUT_STATE_ROLLING_BACK)
          return done(rollout);
        if (!request.phase().empty() &&
            std::find(rollout.phases().begin(), rollout.phases().end(),
                      request.phase()) == rollout.phases().end()) {
          return done(absl::InvalidArgumentError(absl::StrCat(
              "phase \"", request.phase(), "\" is not deployed by rollout ",
              rollout.rollout_id(), "; its phases are ",
              absl::StrJoin(rollout.phases(), ", "))));
        }
        if (request.wave() < 0 || request.wave() > rollout.wave_count()) {
          return done(absl::InvalidArgumentError(
              absl::StrCat("wave ", request.wave(), " is out of range (1..",
                           rollout.wave_count(), ", or 0 for all)")));
        }
        if (request.restore() && !request.phase().empty()) {
          return done(absl::InvalidArgumentError(
              "restore puts whole databases back to their pre-rollout backup: "
              "it cannot be limited to a phase (leave phase empty, or roll "
              "back the phase without restore)"));
        }
        Logger("audit")->info(
            "{} rolled back rollout {} (phase \"{}\", wave {}{}{}): {}",
            request.actor(), request.rollout_id(), request.phase(),
            request.wave(), request.restore() ? ", restoring backups" : "",
            request.accept_data_loss() ? ", ACCEPTING DATA LOSS" : "",
            request.reason());
        rollout.set_rollback_phase(request.phase());
        rollout.set_rollback_wave(request.wave());
        rollout.set_rollback_restore(request.restore());
        rollout.set_rollback_accept_data_loss(request.accept_data_loss());
        // Running deployments are cancelled first (their step rolls back); then
        // everything the rollout applied in scope is reverted, last phase
        // first.
        StopTargets(active, "not started: rolled back");
        active.rollback_pending = true;
        // Paused (a finished rollout is reactivated) until the running commands
        // stop; Advance then starts the rollback.
        rollout.clear_finish_time();
        SetState(active, v1::ROLLOUT_STATE_PAUSED,
                 "rollback requested: waiting for running commands to stop",
                 request.actor());
        Advance(active);
        Flush(active);
        done(rollout);
      });
}

void RolloutOrchestrator::Attest(v1::AttestGateRequest request,
                                 Callback<v1::Rollout> done) {
  std::string rollout_id = request.rollout_id();
  OnRollout(
      std::move(rollout_id), std::move(done),
      [this, request = std::move(request)](Active& active,
                                           const Callback<v1::Rollout>& done) {
        v1::GateStatus* gate = nullptr;
        for (v1::GateStatus& candidate : *active.rollout.mutable_gates()) {
          if (candidate.kind() == request.gate()) gate = &candidate;
        }
        if (gate == nullptr) {
          return done(absl::FailedPreconditionError(
              absl::StrCat("rollout ", request.rollout_id(), " has no ",
                           GateName(request.gate()), " gate")));
        }
        if (request.gate() == v1::GATE_KIND_STAGING_TESTED ||
            request.gate() == v1::GATE_KIND_MAINTENANCE_WINDOW) {
          return done(absl::FailedPreconditionError(absl::StrCat(
              "the ", GateName(request.gate()),
              " gate is decided by evidence, not attestation: see its "
              "detail in `ecliptixctl "
              "rollout get ",
              request.rollout_id(), "`")));
        }
        gate->set_attested_by(request.attested_by());
        *gate->mutable_attested_time() = Now();
        gate->set_comment(request.comment());
        Logger("audit")->info("{} attested gate {} of rollout {}: {}",
                              request.attested_by(), GateName(request.gate()),
                              request.rollout_id(), request.comment());
        v1::RolloutEvent event;
        *event.mutable_gate() = *gate;
        Emit(active, std::move(event));
        Advance(active);
        Flush(active);
        done(active.rollout);
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
    started(true);
    absl::StatusOr<Active*> found = FindOrError(rollout_id);
    if (!found.ok()) return sink->End(found.status());
    Active& active = **found;
    Flush(active);
    if (after_sequence < 0 ||
        after_sequence > active.rollout.last_event_sequence()) {
      return sink->End(absl::OutOfRangeError(absl::StrCat(
          "after_sequence ", after_sequence, " is beyond the last event (",
          active.rollout.last_event_sequence(), ")")));
    }
    if (after_sequence == 0) {
      v1::RolloutEvent snapshot;
      snapshot.set_sequence(active.rollout.last_event_sequence());
      *snapshot.mutable_event_time() = Now();
      *snapshot.mutable_snapshot() = active.rollout;
      if (!sink->Deliver(snapshot)) return;
    } else {
      absl::StatusOr<std::vector<v1::RolloutEvent>> events =
          store_->LoadRolloutEvents(rollout_id, after_sequence);
      if (!events.ok()) return sink->End(events.status());
      for (const v1::RolloutEvent& event : *events) {
        if (!sink->Deliver(event)) return;
      }
    }
    if (!IsActive(active.rollout.state()) && !HasRunningTargets(active)) {
      return sink->End(absl::OkStatus());
    }
    active.watchers.push_back(sink);
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
