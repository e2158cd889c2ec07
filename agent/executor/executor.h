// Executor: applies, plans, reverts and repairs the phases of a bundle on one
// target database, consulting and writing the target's schema history
// (history.h) so that re-running is always safe; takes and restores backups;
// runs a bundle's named operations with bound parameters. It reports progress
// as DeploymentEvents (deployment.proto) to a sink, on the calling thread.
//
// The rules, per step of a phase, in declared order:
//  - applied with the same checksum: skipped (StepFinished SKIPPED);
//  - versioned, applied with another checksum: the whole phase is refused
//    (FAILED_PRECONDITION, nothing runs) until a repair accepts the change;
//  - repeatable, applied with another checksum: runs again;
//  - RUNNING (a non-transactional step whose end was never recorded) or
//    FAILED outside a transaction: refused until a repair;
//  - otherwise (never applied, reverted): runs.
// A transactional step (the default) runs with its verify query and its
// history row in one transaction: an agent killed in the middle leaves no
// trace and the step simply runs again. A non-transactional step first
// commits a RUNNING row and updates it when done.
#ifndef ECLIPTIX_AGENT_EXECUTOR_EXECUTOR_H_
#define ECLIPTIX_AGENT_EXECUTOR_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/backup/backup.h"
#include "agent/executor/call_log.h"
#include "agent/executor/data_guard.h"
#include "agent/executor/history.h"
#include "agent/executor/operation.h"
#include "agent/executor/sql_runner.h"
#include "agent/sql/splitter.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"
#include "common/sql/database_url.h"
#include "ecliptix/fleet/v1/deployment.pb.h"

namespace ecliptix::agent {

using DeploymentEventSink =
    std::function<void(const fleet::v1::DeploymentEvent&)>;

struct ExecutorOptions {
  // Where backups go (and are looked for by Restore).
  std::string backup_dir;
};

// The directory backups go to when none is configured: next to a SQLite file
// (the backup belongs with the database), else ./ecliptix-backups.
std::string DefaultBackupDir(const ::ecliptix::sql::DatabaseUrl& url);

// Used for steps without a timeout in a manifest without a default.
inline constexpr absl::Duration kDefaultStepTimeout = absl::Minutes(10);

class Executor {
 public:
  // `database` must outlive the executor. One operation at a time (the
  // session has one user); only Cancel() may be called from another thread.
  Executor(Target* database, ExecutorOptions options);

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Which steps of `phase` would run, each reported as a STEP_PLANNED event
  // with the reason ("new", "changed (repeatable)", "reverted earlier",
  // "adopt: objects present, recorded as baselined") and the SQL; changes
  // nothing (not even creating the history table). Errors as RunPhase's
  // refusals.
  absl::Status Plan(const bundle::Bundle& bundle, const std::string& phase,
                    const DeploymentEventSink& sink, bool adopt = false);

  // Applies every pending step of `phase` in order. Errors: NOT_FOUND unknown
  // phase; FAILED_PRECONDITION for a bundle without SQL for this engine, a
  // changed versioned step (nothing runs: the whole phase is checked before
  // the first step) or a RUNNING/UNKNOWN/FAILED row needing repair;
  // INVALID_ARGUMENT for a SQL file the splitter cannot split (before
  // anything runs); otherwise the failed step's status, after StepFailed was
  // reported: CANCELLED (Cancel()), DEADLINE_EXCEEDED (timeout), ABORTED
  // (verify mismatch), or the SQL error's (sql_runner.h).
  //
  // Adoption: a step never applied (or reverted since) that declares a detect
  // query is first checked against the database. Objects all missing: it
  // runs. All present: with `adopt` it is recorded BASELINED without running
  // (StepFinished BASELINED), without `adopt` the phase is refused (it would
  // take over objects it did not create). Some present: refused either way,
  // naming what exists and what does not. Refusals come before any step runs.
  absl::Status RunPhase(const bundle::Bundle& bundle, const std::string& phase,
                        bool backup_first, const DeploymentEventSink& sink,
                        bool adopt = false);

  struct RevertOptions {
    // Only the steps whose current history row this bundle applied; what an
    // earlier bundle applied stays. Rollbacks of rollouts set it.
    bool only_this_bundle = false;
    // Let a revert drop or empty tables holding rows (see below).
    bool accept_data_loss = false;
    // Fetches an earlier bundle by id. When set, a repeatable step whose
    // previous history row was applied by another bundle gets that bundle's
    // body back (the runbook's partial rollback: the earlier procedures work
    // again) instead of its revert script. When unset, revert scripts only.
    std::function<absl::StatusOr<std::shared_ptr<const bundle::Bundle>>(
        const std::string& bundle_id)>
        load_bundle;
  };

  // Undoes the phase's applied steps in reverse order: runs their revert
  // scripts and records them REVERTED (a later RunPhase applies them again),
  // or restores a repeatable step's previous body (see RevertOptions).
  // BASELINED steps are never reverted: their objects were there before.
  // Refused (FAILED_PRECONDITION, nothing runs) when an applied step has no
  // revert script for this engine, was applied with another checksum than
  // this bundle's, or needs repair.
  //
  // Data: unless accept_data_loss, a revert script runs inside its
  // transaction between two looks at which tables hold rows; if a table that
  // held rows is then gone or empty, the step is rolled back and the revert
  // refused (FAILED_PRECONDITION naming the tables, their row counts and the
  // newest backup taken before the step was applied). A non-transactional
  // revert that could destroy rows cannot be tried and undone: refused
  // before it runs. With accept_data_loss the loss is noted in the history
  // row and reported as a notice.
  absl::Status RevertPhase(const bundle::Bundle& bundle,
                           const std::string& phase,
                           const DeploymentEventSink& sink,
                           const RevertOptions& options);
  absl::Status RevertPhase(const bundle::Bundle& bundle,
                           const std::string& phase,
                           const DeploymentEventSink& sink) {
    return RevertPhase(bundle, phase, sink, RevertOptions());
  }

  // Re-baselines changed versioned steps to the bundle's checksums (a new
  // APPLIED row noting the old checksum) and clears RUNNING/UNKNOWN/FAILED
  // current rows so those steps run again (phase empty = all phases). Each
  // change is reported as a notice.
  absl::Status Repair(const bundle::Bundle& bundle, const std::string& phase,
                      const DeploymentEventSink& sink);

  absl::StatusOr<BackupResult> Backup(const DeploymentEventSink& sink);
  absl::Status Restore(const std::string& backup_id,
                       const DeploymentEventSink& sink);

  // Runs a named operation of the bundle with bound named parameters (:Name);
  // returns the last statement's rows as text (NULL as "", with nulls set).
  // Several statements run in one transaction, committed when all succeed
  // (one call, one transaction: a batch of a maintenance job is never half
  // done). INVALID_ARGUMENT for a missing, unknown or ill-typed argument
  // (bundle::CheckArguments); NOT_FOUND for an unknown operation. Cancel()
  // interrupts the running statement and the call is rolled back.
  // Every call that gets past the argument checks is counted in the agent's
  // table ecliptix_operation_calls (call_log.h): a success inside the call's
  // transaction, a failure in a transaction of its own after the rollback.
  using OperationResult = ::ecliptix::agent::OperationResult;
  absl::StatusOr<OperationResult> CallOperation(
      const bundle::Bundle& bundle, const std::string& operation,
      const std::map<std::string, std::string>& arguments);

  // From any thread: interrupts the running statement (sqlite3_interrupt /
  // PQcancel); the step fails with CANCELLED and is rolled back, and the
  // operation stops. Holds until ClearCancel(): a cancel that comes before an
  // operation starts, or between two, stops it before its first step.
  void Cancel();
  // Forgets a Cancel(): the caller's next unit of work (one command) starts
  // uncancelled. Called by whoever owns that unit, not by the operations.
  void ClearCancel();

  // The schema history (for listings).
  History& history() { return history_; }

 private:
  // What to do with one step of a phase.
  struct StepPlan {
    const fleet::v1::Step* step = nullptr;
    std::string checksum;  // Of the step's SQL for this engine.
    enum class Action { kSkip, kRun, kRefuse, kBaseline } action = Action::kRun;
    // kRun: why; kRefuse: the whole explanation; kBaseline: what is present.
    std::string reason;
    bool has_current = false;
    HistoryRow current;  // When has_current.
  };
  // A script ready to run: the step's SQL (apply) or its revert script.
  struct Script {
    const fleet::v1::Step* step = nullptr;
    bool revert = false;
    std::string file;
    std::string file_checksum;
    std::vector<sql::Statement> statements;
    // What the history row records as the step's checksum.
    std::string history_checksum;
    // A revert that may drop or empty tables holding rows (see RevertPhase).
    bool accept_data_loss = false;
    // When the step being reverted was applied (to name the backup before).
    absl::Time applied_at = absl::InfinitePast();
  };

  absl::StatusOr<fleet::v1::Dialect> DialectOf(
      const bundle::Bundle& bundle) const;
  absl::StatusOr<std::vector<StepPlan>> PlanSteps(const bundle::Bundle& bundle,
                                                  const fleet::v1::Phase& phase,
                                                  fleet::v1::Dialect dialect);
  // Runs the detect queries of the steps about to run (see RunPhase) and
  // turns them into kBaseline or kRefuse.
  absl::Status ApplyDetection(const fleet::v1::Phase& phase,
                              fleet::v1::Dialect dialect, bool adopt,
                              std::vector<StepPlan>& plans);
  // Records a kBaseline step: a BASELINED history row, its events.
  absl::Status Baseline(const bundle::Bundle& bundle, const std::string& phase,
                        const StepPlan& plan, const DeploymentEventSink& sink);
  // The previous body of a repeatable step, when an earlier bundle applied
  // one: that bundle and a script of its step's SQL. nullopt: no previous
  // body (the revert script applies).
  struct PreviousBody {
    std::shared_ptr<const bundle::Bundle> bundle;
    Script script;
  };
  absl::StatusOr<std::optional<PreviousBody>> FindPreviousBody(
      const bundle::Bundle& bundle, const std::string& phase,
      const StepPlan& plan, fleet::v1::Dialect dialect,
      const RevertOptions& options);
  // FAILED_PRECONDITION naming the tables `lost` would lose with their row
  // counts and the backup to restore instead.
  absl::Status DataLossRefusal(const std::vector<TableName>& lost,
                               fleet::v1::Dialect dialect,
                               absl::Time applied_at);
  // Runs `scripts` (revert scripts, in order) in one transaction that is
  // always rolled back, and refuses with DataLossRefusal when tables that
  // held rows are gone or empty at the end. OK when nothing would be lost,
  // and when a statement fails (the real run reports that failure).
  absl::Status TryRevertKeepsData(const bundle::Bundle& bundle,
                                  const std::vector<Script>& scripts,
                                  fleet::v1::Dialect dialect);
  // "backup <id> (taken <time>)" of the newest backup taken no later than
  // `before`, or a sentence saying there is none.
  std::string BackupBefore(absl::Time before) const;
  absl::StatusOr<Script> LoadScript(const bundle::Bundle& bundle,
                                    const fleet::v1::Step& step, bool revert,
                                    fleet::v1::Dialect dialect);
  // Runs one script as described at the top; reports StepStarted,
  // StatementProgress, notices and StepFinished or StepFailed.
  absl::Status RunScript(const bundle::Bundle& bundle, const std::string& phase,
                         const Script& script, fleet::v1::Dialect dialect,
                         const DeploymentEventSink& sink);
  absl::Duration TimeoutOf(const bundle::Bundle& bundle,
                           const fleet::v1::Step& step) const;
  HistoryRow NewRow(const bundle::Bundle& bundle, const std::string& phase,
                    const fleet::v1::Step& step) const;
  absl::Status Begin();
  absl::Status Commit();
  // Rolls back whatever transaction is open; errors are logged, not returned
  // (the step's own failure is what matters).
  void Rollback();

  Target* const database_;
  const ExecutorOptions options_;
  History history_;
  SqlRunner runner_;
  OperationCallLog call_log_;
  // Said once that the call table cannot be created (calls go uncounted).
  bool call_log_warned_ = false;
  // Set by Cancel() from any thread; read by the running operation.
  std::atomic<bool> cancelled_{false};
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_EXECUTOR_H_
