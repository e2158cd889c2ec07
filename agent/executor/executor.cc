#include "agent/executor/executor.h"

#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/executor/data_guard.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

v1::DeploymentEvent NewEvent(const bundle::Bundle& bundle,
                             const std::string& phase,
                             const std::string& step) {
  v1::DeploymentEvent event;
  event.set_bundle_id(bundle.id());
  event.set_phase(phase);
  event.set_step(step);
  return event;
}

bool IsTransactional(const v1::Step& step) {
  return !step.has_transactional() || step.transactional();
}

std::string StepName(const std::string& phase, const std::string& step) {
  return absl::StrCat("step \"", step, "\" of phase \"", phase, "\"");
}

std::string WhenApplied(const HistoryRow& row) {
  return absl::StrCat("bundle ", row.bundle_name, " ", row.bundle_version,
                      " at ", FormatHistoryTime(row.started_at));
}

}  // namespace

Executor::Executor(Target* database, ExecutorOptions options)
    : database_(database),
      options_(std::move(options)),
      history_(database),
      runner_(database),
      call_log_(database) {}

void Executor::Cancel() {
  cancelled_.store(true);
  database_->Interrupt();
}

void Executor::ClearCancel() { cancelled_.store(false); }

absl::StatusOr<v1::Dialect> Executor::DialectOf(
    const bundle::Bundle& bundle) const {
  return BundleDialect(bundle, *database_);
}

absl::Duration Executor::TimeoutOf(const bundle::Bundle& bundle,
                                   const v1::Step& step) const {
  const absl::Duration own = FromProtoDuration(step.timeout());
  if (own > absl::ZeroDuration()) return own;
  const absl::Duration manifest_default =
      FromProtoDuration(bundle.manifest().default_step_timeout());
  if (manifest_default > absl::ZeroDuration()) return manifest_default;
  return kDefaultStepTimeout;
}

HistoryRow Executor::NewRow(const bundle::Bundle& bundle,
                            const std::string& phase,
                            const v1::Step& step) const {
  HistoryRow row;
  row.bundle_name = bundle.manifest().name();
  row.bundle_version = bundle.manifest().version();
  row.bundle_id = bundle.id();
  row.phase = phase;
  row.step = step.name();
  row.kind = StepKindText(step.kind());
  row.agent_version = kVersion;
  return row;
}

absl::StatusOr<std::vector<Executor::StepPlan>> Executor::PlanSteps(
    const bundle::Bundle& bundle, const v1::Phase& phase, v1::Dialect dialect) {
  ASSIGN_OR_RETURN(CurrentRows current,
                   history_.LoadCurrent(bundle.manifest().name()));
  std::vector<StepPlan> plans;
  for (const v1::Step& step : phase.steps()) {
    StepPlan& plan = plans.emplace_back();
    plan.step = &step;
    ASSIGN_OR_RETURN(plan.checksum, bundle.StepChecksum(step, dialect));
    auto it = current.find(std::make_pair(phase.name(), step.name()));
    if (it == current.end()) {
      plan.action = StepPlan::Action::kRun;
      plan.reason = "new";
      continue;
    }
    plan.has_current = true;
    plan.current = it->second;
    const HistoryRow& row = plan.current;
    const std::string name = StepName(phase.name(), step.name());
    if (IsInEffect(row.outcome)) {
      if (row.checksum == plan.checksum) {
        plan.action = StepPlan::Action::kSkip;
      } else if (step.kind() == v1::STEP_KIND_VERSIONED) {
        plan.action = StepPlan::Action::kRefuse;
        plan.reason = absl::StrCat(
            name, " is versioned and was applied with checksum ", row.checksum,
            " (", WhenApplied(row), "), but this bundle's ",
            bundle::PathFor(step.sql(), dialect), " has checksum ",
            plan.checksum,
            ": a versioned step must not change; run repair after reviewing "
            "the change");
      } else {
        plan.action = StepPlan::Action::kRun;
        plan.reason = "changed (repeatable)";
      }
    } else if (row.outcome == kOutcomeReverted) {
      plan.action = StepPlan::Action::kRun;
      plan.reason = "reverted earlier";
    } else if (row.outcome == kOutcomeRunning) {
      plan.action = StepPlan::Action::kRefuse;
      plan.reason = absl::StrCat(
          name, " started outside a transaction (", WhenApplied(row),
          ") and its end was never recorded, so its outcome is UNKNOWN (did "
          "the agent die?); check the database, then run repair");
    } else {
      plan.action = StepPlan::Action::kRefuse;
      plan.reason = absl::StrCat(
          name, " failed outside a transaction (", WhenApplied(row),
          ") and may be partly applied: ", row.error,
          "; undo or complete its changes, then run repair");
    }
  }
  return plans;
}

absl::Status Executor::ApplyDetection(const v1::Phase& phase,
                                      v1::Dialect dialect, bool adopt,
                                      std::vector<StepPlan>& plans) {
  for (StepPlan& plan : plans) {
    // Only a step that is not in effect can find objects it did not create.
    if (plan.action != StepPlan::Action::kRun) continue;
    if (plan.has_current && plan.current.outcome != kOutcomeReverted) continue;
    const std::string& query = bundle::SqlFor(plan.step->detect(), dialect);
    if (absl::StripAsciiWhitespace(query).empty()) continue;
    const std::string name = StepName(phase.name(), plan.step->name());
    absl::StatusOr<Detection> found = Detect(*database_, query);
    if (!found.ok()) {
      plan.action = StepPlan::Action::kRefuse;
      plan.reason = absl::StrCat(
          name, ": its detect query failed: ", found.status().message());
      continue;
    }
    if (found->present.empty()) continue;  // A fresh database: it runs.
    const std::string present = absl::StrJoin(found->present, ", ");
    if (!found->missing.empty()) {
      plan.action = StepPlan::Action::kRefuse;
      plan.reason = absl::StrCat(
          name, " is partly in place: present: ", present,
          "; missing: ", absl::StrJoin(found->missing, ", "),
          ". The database is neither fresh nor fully set up for this step; "
          "complete or remove those objects by hand, then deploy again");
    } else if (adopt) {
      plan.action = StepPlan::Action::kBaseline;
      plan.reason = absl::StrCat("objects present: ", present);
    } else {
      plan.action = StepPlan::Action::kRefuse;
      plan.reason = absl::StrCat(
          name, " was never applied here, but its objects already exist (",
          present,
          "); running it would take them over and a revert would drop them. "
          "Deploy with adoption (adopt / --adopt) to record it as BASELINED "
          "without running it");
    }
  }
  return absl::OkStatus();
}

absl::Status Executor::Baseline(const bundle::Bundle& bundle,
                                const std::string& phase, const StepPlan& plan,
                                const DeploymentEventSink& sink) {
  HistoryRow row = NewRow(bundle, phase, *plan.step);
  row.checksum = plan.checksum;
  row.outcome = kOutcomeBaselined;
  row.started_at = row.finished_at = absl::Now();
  row.error = absl::StrCat("adopted: ", plan.reason);
  RETURN_IF_ERROR(Begin());
  absl::Status status = history_.InsertCurrent(row);
  if (status.ok()) status = Commit();
  if (!status.ok()) {
    Rollback();
    return status;
  }
  v1::DeploymentEvent notice = NewEvent(bundle, phase, plan.step->name());
  notice.set_notice(
      absl::StrCat("adopted: ", plan.reason,
                   "; recorded as baselined without running (never reverted)"));
  sink(notice);
  v1::DeploymentEvent event = NewEvent(bundle, phase, plan.step->name());
  event.mutable_step_finished()->set_outcome(v1::STEP_OUTCOME_BASELINED);
  event.mutable_step_finished()->mutable_duration();
  sink(event);
  return absl::OkStatus();
}

absl::Status Executor::DataLossRefusal(const std::vector<TableName>& lost,
                                       v1::Dialect dialect,
                                       absl::Time applied_at) {
  // Counted after the rollback has brought the tables back.
  std::vector<std::string> counted;
  for (const TableName& table : lost) {
    absl::StatusOr<int64_t> count = CountRows(*database_, dialect, table);
    counted.push_back(
        count.ok() ? absl::StrCat(table.Display(), " (", *count, " rows)")
                   : table.Display());
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "reverting would drop or empty tables holding rows: ",
      absl::StrJoin(counted, ", "),
      ". Nothing was changed. Restore the backup taken before the change "
      "instead (",
      BackupBefore(applied_at),
      "), or revert again accepting the data loss (--accept_data_loss; "
      "accept_data_loss in the API)"));
}

absl::Status Executor::TryRevertKeepsData(const bundle::Bundle& bundle,
                                          const std::vector<Script>& scripts,
                                          v1::Dialect dialect) {
  absl::Time applied_at = absl::InfiniteFuture();
  absl::Duration timeout = absl::ZeroDuration();
  for (const Script& script : scripts) {
    applied_at = std::min(applied_at, script.applied_at);
    timeout += TimeoutOf(bundle, *script.step);
  }
  RETURN_IF_ERROR(Begin());
  absl::StatusOr<std::set<TableName>> before =
      TablesHoldingRows(*database_, dialect);
  absl::Status ran = before.status();
  runner_.Arm(absl::Now() + timeout, &cancelled_, /*in_transaction=*/true);
  for (const Script& script : scripts) {
    for (const sql::Statement& statement : script.statements) {
      if (!ran.ok()) break;
      SqlError ignored;
      ran = runner_.Execute(statement.text, &ignored).status();
    }
  }
  runner_.Disarm();
  absl::StatusOr<std::set<TableName>> after = absl::UnknownError("not run");
  if (ran.ok()) after = TablesHoldingRows(*database_, dialect);
  Rollback();
  // A statement that fails here fails the same way when the revert runs, and
  // is reported there with its step, file and line.
  if (!ran.ok() || !after.ok()) return absl::OkStatus();
  std::vector<TableName> lost = TablesLost(*before, *after);
  if (lost.empty()) return absl::OkStatus();
  return DataLossRefusal(lost, dialect, applied_at);
}

std::string Executor::BackupBefore(absl::Time before) const {
  absl::StatusOr<std::vector<BackupResult>> backups =
      ListBackups(options_.backup_dir);
  if (backups.ok()) {
    // Newest first.
    for (const BackupResult& backup : *backups) {
      if (backup.time <= before || before == absl::InfinitePast()) {
        return absl::StrCat("backup ", backup.backup_id, ", taken ",
                            FormatHistoryTime(backup.time), " at ",
                            backup.location);
      }
    }
  }
  return absl::StrCat(
      "this agent knows no backup taken before the step was applied (its "
      "backups are in ",
      options_.backup_dir, ")");
}

absl::StatusOr<std::optional<Executor::PreviousBody>>
Executor::FindPreviousBody(const bundle::Bundle& bundle,
                           const std::string& phase, const StepPlan& plan,
                           v1::Dialect dialect, const RevertOptions& options) {
  if (!options.load_bundle || plan.step->kind() != v1::STEP_KIND_REPEATABLE)
    return std::nullopt;
  ASSIGN_OR_RETURN(
      std::vector<HistoryRow> rows,
      history_.LoadStep(bundle.manifest().name(), phase, plan.step->name()));
  // The step's state just before the current row: the last row before it
  // that was in effect or reverted (failed attempts changed nothing).
  const HistoryRow* previous = nullptr;
  for (const HistoryRow& row : rows) {
    if (row.id >= plan.current.id) break;
    if (IsInEffect(row.outcome) || row.outcome == kOutcomeReverted)
      previous = &row;
  }
  if (previous == nullptr || previous->outcome == kOutcomeReverted ||
      previous->checksum == plan.current.checksum) {
    return std::nullopt;
  }
  const std::string name = StepName(phase, plan.step->name());
  const std::string earlier =
      absl::StrCat("bundle ", previous->bundle_name, " ",
                   previous->bundle_version, " (", previous->bundle_id, ")");
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> loaded =
      options.load_bundle(previous->bundle_id);
  if (!loaded.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": cannot restore its previous body from ", earlier,
                     ": ", loaded.status().message()));
  }
  PreviousBody body;
  body.bundle = *std::move(loaded);
  const v1::Phase* old_phase = body.bundle->FindPhase(phase);
  const v1::Step* old_step = nullptr;
  if (old_phase != nullptr) {
    for (const v1::Step& step : old_phase->steps()) {
      if (step.name() == plan.step->name()) old_step = &step;
    }
  }
  if (old_step == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": ", earlier, " applied it before, but has no such step"));
  }
  ASSIGN_OR_RETURN(body.script, LoadScript(*body.bundle, *old_step,
                                           /*revert=*/false, dialect));
  ASSIGN_OR_RETURN(body.script.history_checksum,
                   body.bundle->StepChecksum(*old_step, dialect));
  return body;
}

absl::StatusOr<Executor::Script> Executor::LoadScript(
    const bundle::Bundle& bundle, const v1::Step& step, bool revert,
    v1::Dialect dialect) {
  Script script;
  script.step = &step;
  script.revert = revert;
  script.file = bundle::PathFor(revert ? step.revert() : step.sql(), dialect);
  if (script.file.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "step \"", step.name(), "\" has no ", revert ? "revert script" : "SQL",
        " for ", bundle::DialectName(dialect)));
  }
  ASSIGN_OR_RETURN(absl::string_view content, bundle.File(script.file));
  script.file_checksum = bundle::Sha256Id(content);
  absl::StatusOr<std::vector<sql::Statement>> statements =
      sql::SplitStatements(dialect, content);
  if (!statements.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(script.file, ": ", statements.status().message()));
  }
  script.statements = *std::move(statements);
  return script;
}

absl::Status Executor::Begin() {
  return WithContext("beginning a transaction", database_->Begin());
}

absl::Status Executor::Commit() {
  return WithContext("committing", database_->Commit());
}

void Executor::Rollback() {
  // A no-op on SQLite when the engine already rolled an interrupted
  // transaction back.
  absl::Status status = WithContext("rolling back", database_->Rollback());
  if (!status.ok())
    Logger("executor")->warn("{}", std::string(status.message()));
}

absl::Status Executor::RunScript(const bundle::Bundle& bundle,
                                 const std::string& phase, const Script& script,
                                 v1::Dialect dialect,
                                 const DeploymentEventSink& sink) {
  const v1::Step& step = *script.step;
  const bool transactional = IsTransactional(step);
  const int count = static_cast<int>(script.statements.size());
  const absl::Time started = absl::Now();
  const absl::Time deadline = started + TimeoutOf(bundle, step);

  {
    v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
    v1::StepStarted* started_event = event.mutable_step_started();
    started_event->set_statement_count(count);
    started_event->set_kind(step.kind());
    started_event->set_checksum(script.file_checksum);
    sink(event);
  }

  // Notices arrive on this thread while a statement runs; they are reported
  // before the statement's progress.
  std::vector<std::string> notices;
  database_->SetNoticeHandler(
      [&notices](const std::string& text) { notices.push_back(text); });
  absl::Cleanup restore_notices = [this] {
    database_->SetNoticeHandler(nullptr);
  };
  auto flush_notices = [&] {
    for (const std::string& text : notices) {
      v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
      event.set_notice(text);
      sink(event);
    }
    notices.clear();
  };

  HistoryRow row = NewRow(bundle, phase, step);
  row.checksum = script.history_checksum;
  row.started_at = started;

  // Where the failure happened, for StepFailed.
  absl::Status status;
  std::string failed_file = script.file;
  int failed_index = 0;
  int failed_line = 0;
  SqlError sql_error;
  int64_t rows = 0;

  if (transactional) {
    status = Begin();
  } else {
    // Committed before the first statement: if the agent dies in the step, the
    // RUNNING row is what tells the next run that nobody knows its outcome.
    row.outcome = kOutcomeRunning;
    status = Begin();
    if (status.ok()) status = history_.InsertCurrent(row);
    if (status.ok()) status = Commit();
    if (!status.ok()) Rollback();
  }
  if (!status.ok()) sql_error.message = std::string(status.message());
  const bool step_began = status.ok();

  // A revert inside a transaction proves what it does to the data: which
  // tables hold rows before and after its statements (see RevertPhase).
  const bool watch_data = script.revert && transactional;
  std::set<TableName> holding_rows;
  std::vector<TableName> lost;
  if (step_began && watch_data) {
    absl::StatusOr<std::set<TableName>> before =
        TablesHoldingRows(*database_, dialect);
    if (before.ok()) {
      holding_rows = *std::move(before);
    } else {
      status = before.status();
      sql_error.message = std::string(status.message());
    }
  }

  if (step_began && status.ok()) {
    runner_.Arm(deadline, &cancelled_, transactional);
    for (int i = 0; i < count && status.ok(); ++i) {
      const sql::Statement& statement = script.statements[i];
      absl::StatusOr<int64_t> affected =
          runner_.Execute(statement.text, &sql_error);
      flush_notices();
      if (affected.ok() && cancelled_.load()) {
        // Cancel() came between statements or after this one finished: stop
        // here all the same.
        sql_error = SqlError{"", "cancelled"};
        affected = absl::CancelledError("cancelled");
      }
      if (!affected.ok()) {
        status = affected.status();
        failed_index = i + 1;
        failed_line = statement.line;
        break;
      }
      rows += *affected;
      v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
      v1::StatementProgress* progress = event.mutable_statement_progress();
      progress->set_statement_index(i + 1);
      progress->set_statement_count(count);
      progress->set_rows_affected(*affected);
      sink(event);
    }
    if (status.ok() && watch_data) {
      absl::StatusOr<std::set<TableName>> after =
          TablesHoldingRows(*database_, dialect);
      if (!after.ok()) {
        status = after.status();
        sql_error.message = std::string(status.message());
      } else {
        lost = TablesLost(holding_rows, *after);
        if (!lost.empty() && !script.accept_data_loss) {
          // The message is written once the rollback has brought the tables
          // back and their rows can be counted.
          status =
              absl::FailedPreconditionError("reverting would destroy data");
          sql_error.message = std::string(status.message());
        }
      }
    }
    if (status.ok() && !script.revert && step.has_verify()) {
      const v1::Verify& verify = step.verify();
      absl::StatusOr<std::optional<std::string>> value = runner_.QueryValue(
          bundle::SqlFor(verify.query(), dialect), &sql_error);
      flush_notices();
      failed_file = bundle::kManifestFile;
      if (!value.ok()) {
        sql_error.message =
            absl::StrCat("verify query failed: ", value.status().message());
        status = absl::Status(value.status().code(), sql_error.message);
      } else if (!value->has_value() || **value != verify.expect()) {
        sql_error.message =
            absl::StrCat("verify failed",
                         verify.description().empty()
                             ? ""
                             : absl::StrCat(" (", verify.description(), ")"),
                         ": expected \"", verify.expect(), "\", got ",
                         value->has_value() ? absl::StrCat("\"", **value, "\"")
                                            : "no value");
        status = absl::AbortedError(sql_error.message);
      }
    }
    // Before COMMIT or ROLLBACK, which the deadline must not interrupt.
    runner_.Disarm();
  }

  const absl::Time finished = absl::Now();
  row.finished_at = finished;
  row.duration_ms = absl::ToInt64Milliseconds(finished - started);
  row.rows_affected = rows;
  const std::string success_outcome =
      script.revert ? kOutcomeReverted : kOutcomeApplied;
  std::vector<std::string> lost_names;
  for (const TableName& table : lost) lost_names.push_back(table.Display());
  if (status.ok() && !lost.empty()) {
    row.error = absl::StrCat("data loss accepted: dropped or emptied ",
                             absl::StrJoin(lost_names, ", "));
  }
  std::string failure;
  bool rolled_back = false;

  if (step_began && transactional) {
    if (status.ok()) {
      row.outcome = success_outcome;
      // Inside the step's transaction: the row exists exactly when the step's
      // changes do.
      status = history_.InsertCurrent(row);
      if (status.ok()) status = Commit();
      if (!status.ok()) sql_error.message = std::string(status.message());
    }
    if (!status.ok()) {
      Rollback();
      rolled_back = true;
    }
  } else if (step_began) {
    row.outcome = status.ok() ? success_outcome : kOutcomeFailed;
    if (!status.ok()) row.error = sql_error.message;
    absl::Status recorded = history_.FinishCurrent(row);
    if (status.ok() && !recorded.ok()) {
      // The step's changes are in place but the row still says RUNNING: the
      // next run will ask for a repair, which is the truth.
      status = recorded;
      sql_error.message = std::string(recorded.message());
    }
  } else {
    rolled_back = true;  // Nothing ran.
  }

  if (!lost.empty() && !script.accept_data_loss && rolled_back) {
    status = DataLossRefusal(lost, dialect, script.applied_at);
    sql_error.message = std::string(status.message());
  }

  if (!status.ok()) {
    failure = absl::StrCat(StepName(phase, step.name()),
                           script.revert ? " (revert)" : "", " failed");
    if (failed_index > 0) {
      absl::StrAppend(&failure, " at ", failed_file, ":", failed_line,
                      " (statement ", failed_index, " of ", count, ")");
    }
    absl::StrAppend(&failure, ": ", status.message(),
                    rolled_back ? "; rolled back" : "; NOT rolled back");
    if (step_began && transactional) {
      // A record of the attempt, outside the rolled-back transaction; never
      // the current row, so the step stays pending.
      HistoryRow attempt = row;
      attempt.outcome = kOutcomeFailed;
      attempt.error = failure;
      if (absl::Status recorded = history_.InsertRecord(attempt);
          !recorded.ok()) {
        Logger("executor")
            ->warn("could not record the failed attempt: {}",
                   std::string(recorded.message()));
      }
    }
    v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
    v1::StepFailed* failed = event.mutable_step_failed();
    failed->set_file(failed_file);
    failed->set_statement_index(failed_index);
    failed->set_line(failed_line);
    failed->set_sql_state(sql_error.sql_state);
    failed->set_message(sql_error.message.empty()
                            ? std::string(status.message())
                            : sql_error.message);
    failed->set_rolled_back(rolled_back);
    sink(event);
    return absl::Status(status.code(), failure);
  }

  if (!script.revert && !step.success_message().empty()) {
    v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
    event.set_notice(step.success_message());
    sink(event);
  }
  if (!lost.empty()) {
    v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
    event.set_notice(absl::StrCat("data loss accepted: dropped or emptied ",
                                  absl::StrJoin(lost_names, ", ")));
    sink(event);
  }
  v1::DeploymentEvent event = NewEvent(bundle, phase, step.name());
  v1::StepFinished* done = event.mutable_step_finished();
  done->set_outcome(script.revert ? v1::STEP_OUTCOME_REVERTED
                                  : v1::STEP_OUTCOME_APPLIED);
  *done->mutable_duration() = ToProtoDuration(finished - started);
  done->set_rows_affected(rows);
  sink(event);
  return absl::OkStatus();
}

absl::Status Executor::Plan(const bundle::Bundle& bundle,
                            const std::string& phase_name,
                            const DeploymentEventSink& sink, bool adopt) {
  const v1::Phase* phase = bundle.FindPhase(phase_name);
  if (phase == nullptr) {
    return absl::NotFoundError(absl::StrCat("bundle ", bundle.manifest().name(),
                                            " has no phase \"", phase_name,
                                            "\""));
  }
  ASSIGN_OR_RETURN(v1::Dialect dialect, DialectOf(bundle));
  ASSIGN_OR_RETURN(std::vector<StepPlan> plans,
                   PlanSteps(bundle, *phase, dialect));
  RETURN_IF_ERROR(ApplyDetection(*phase, dialect, adopt, plans));
  std::vector<std::string> refusals;
  for (const StepPlan& plan : plans) {
    if (plan.action == StepPlan::Action::kRefuse)
      refusals.push_back(plan.reason);
  }
  if (!refusals.empty()) {
    return absl::FailedPreconditionError(absl::StrJoin(refusals, "; "));
  }
  for (const StepPlan& plan : plans) {
    if (plan.action == StepPlan::Action::kBaseline) {
      v1::DeploymentEvent event =
          NewEvent(bundle, phase_name, plan.step->name());
      event.mutable_step_planned()->set_reason(absl::StrCat(
          "adopt: ", plan.reason, "; recorded as baselined without running"));
      sink(event);
      continue;
    }
    if (plan.action != StepPlan::Action::kRun) continue;
    ASSIGN_OR_RETURN(Script script,
                     LoadScript(bundle, *plan.step, false, dialect));
    ASSIGN_OR_RETURN(absl::string_view content, bundle.File(script.file));
    v1::DeploymentEvent event = NewEvent(bundle, phase_name, plan.step->name());
    event.mutable_step_planned()->set_reason(plan.reason);
    event.mutable_step_planned()->set_sql(std::string(content));
    sink(event);
  }
  return absl::OkStatus();
}

absl::Status Executor::RunPhase(const bundle::Bundle& bundle,
                                const std::string& phase_name,
                                bool backup_first,
                                const DeploymentEventSink& sink, bool adopt) {
  const v1::Phase* phase = bundle.FindPhase(phase_name);
  if (phase == nullptr) {
    return absl::NotFoundError(absl::StrCat("bundle ", bundle.manifest().name(),
                                            " has no phase \"", phase_name,
                                            "\""));
  }
  ASSIGN_OR_RETURN(v1::Dialect dialect, DialectOf(bundle));
  RETURN_IF_ERROR(history_.Ensure());
  ASSIGN_OR_RETURN(std::vector<StepPlan> plans,
                   PlanSteps(bundle, *phase, dialect));
  RETURN_IF_ERROR(ApplyDetection(*phase, dialect, adopt, plans));
  // Every refusal of the phase, before its first step runs.
  std::vector<std::string> refusals;
  for (const StepPlan& plan : plans) {
    if (plan.action == StepPlan::Action::kRefuse)
      refusals.push_back(plan.reason);
  }
  if (!refusals.empty()) {
    return absl::FailedPreconditionError(absl::StrJoin(refusals, "; "));
  }
  // Every script is read and split before the first runs, so a malformed file
  // late in the phase stops nothing half-way.
  std::vector<std::optional<Script>> scripts;
  for (const StepPlan& plan : plans) {
    if (plan.action != StepPlan::Action::kRun) {
      scripts.emplace_back();
      continue;
    }
    ASSIGN_OR_RETURN(Script script,
                     LoadScript(bundle, *plan.step, false, dialect));
    script.history_checksum = plan.checksum;
    scripts.emplace_back(std::move(script));
  }

  bool backed_up = false;
  for (size_t i = 0; i < plans.size(); ++i) {
    const StepPlan& plan = plans[i];
    if (cancelled_.load()) {
      return absl::CancelledError(absl::StrCat("phase \"", phase_name,
                                               "\" cancelled before step \"",
                                               plan.step->name(), "\""));
    }
    if (plan.action == StepPlan::Action::kSkip) {
      v1::DeploymentEvent event =
          NewEvent(bundle, phase_name, plan.step->name());
      v1::StepFinished* done = event.mutable_step_finished();
      done->set_outcome(v1::STEP_OUTCOME_SKIPPED);
      done->mutable_duration();
      sink(event);
      continue;
    }
    if (plan.action == StepPlan::Action::kBaseline) {
      RETURN_IF_ERROR(Baseline(bundle, phase_name, plan, sink));
      continue;
    }
    if (backup_first && !backed_up) {
      RETURN_IF_ERROR(Backup(sink).status());
      backed_up = true;
    }
    RETURN_IF_ERROR(RunScript(bundle, phase_name, *scripts[i], dialect, sink));
  }
  return absl::OkStatus();
}

absl::Status Executor::RevertPhase(const bundle::Bundle& bundle,
                                   const std::string& phase_name,
                                   const DeploymentEventSink& sink,
                                   const RevertOptions& options) {
  const v1::Phase* phase = bundle.FindPhase(phase_name);
  if (phase == nullptr) {
    return absl::NotFoundError(absl::StrCat("bundle ", bundle.manifest().name(),
                                            " has no phase \"", phase_name,
                                            "\""));
  }
  ASSIGN_OR_RETURN(v1::Dialect dialect, DialectOf(bundle));
  ASSIGN_OR_RETURN(std::vector<StepPlan> plans,
                   PlanSteps(bundle, *phase, dialect));
  std::vector<std::string> refusals;
  std::vector<v1::DeploymentEvent> notices;
  // What runs, in order: a revert script of `bundle`, or the previous body of
  // a repeatable step from the bundle that applied it.
  struct Undo {
    std::shared_ptr<const bundle::Bundle> earlier;  // Null: `bundle`.
    Script script;
  };
  std::vector<Undo> undos;
  // Reverse order: later steps may depend on earlier ones.
  for (auto it = plans.rbegin(); it != plans.rend(); ++it) {
    const StepPlan& plan = *it;
    if (!plan.has_current) continue;
    const std::string name = StepName(phase_name, plan.step->name());
    const std::string& outcome = plan.current.outcome;
    if (outcome == kOutcomeRunning || outcome == kOutcomeFailed) {
      refusals.push_back(plan.reason);
      continue;
    }
    if (outcome == kOutcomeBaselined) {
      // Its objects were there before the control plane came: not ours to
      // remove.
      v1::DeploymentEvent event =
          NewEvent(bundle, phase_name, plan.step->name());
      event.set_notice(absl::StrCat(
          name, " was adopted (baselined ", WhenApplied(plan.current),
          "): its objects existed before, so it is never reverted"));
      notices.push_back(std::move(event));
      continue;
    }
    if (outcome != kOutcomeApplied) continue;
    // What an earlier bundle applied is not this bundle's to undo.
    if (options.only_this_bundle && plan.current.bundle_id != bundle.id())
      continue;
    if (plan.current.checksum != plan.checksum) {
      refusals.push_back(absl::StrCat(
          name, " was applied with checksum ", plan.current.checksum, " (",
          WhenApplied(plan.current), "), not this bundle's ", plan.checksum,
          ": revert it with the bundle that applied it"));
      continue;
    }
    absl::StatusOr<std::optional<PreviousBody>> previous =
        FindPreviousBody(bundle, phase_name, plan, dialect, options);
    if (!previous.ok()) {
      refusals.push_back(std::string(previous.status().message()));
      continue;
    }
    if (previous->has_value()) {
      undos.push_back(Undo{(*previous)->bundle, (*previous)->script});
      continue;
    }
    absl::StatusOr<Script> script =
        LoadScript(bundle, *plan.step, /*revert=*/true, dialect);
    if (!script.ok()) {
      refusals.push_back(absl::StrCat(name, ": ", script.status().message()));
      continue;
    }
    script->history_checksum = plan.current.checksum;
    script->accept_data_loss = options.accept_data_loss;
    script->applied_at = plan.current.started_at;
    if (!IsTransactional(*plan.step) && !options.accept_data_loss) {
      // Outside a transaction its effect cannot be tried and undone.
      for (const sql::Statement& statement : script->statements) {
        if (!MayDestroyRows(statement.text)) continue;
        refusals.push_back(absl::StrCat(
            name,
            " reverts outside a transaction with a statement that may "
            "destroy rows (",
            script->file, ":", statement.line,
            "); restore the backup taken before the change (",
            BackupBefore(plan.current.started_at),
            ") or revert accepting the data loss (--accept_data_loss; "
            "accept_data_loss in the API)"));
        break;
      }
    }
    undos.push_back(Undo{nullptr, *std::move(script)});
  }
  if (!refusals.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot revert phase \"", phase_name,
                     "\": ", absl::StrJoin(refusals, "; ")));
  }
  // The phase's revert scripts are tried together in a transaction that is
  // rolled back: a revert that would destroy rows is refused before any of
  // the phase's steps is reverted.
  std::vector<Script> reverts;
  for (const Undo& undo : undos) {
    if (undo.earlier == nullptr && IsTransactional(*undo.script.step))
      reverts.push_back(undo.script);
  }
  if (!options.accept_data_loss && !reverts.empty()) {
    if (absl::Status kept = TryRevertKeepsData(bundle, reverts, dialect);
        !kept.ok()) {
      return absl::Status(kept.code(),
                          absl::StrCat("cannot revert phase \"", phase_name,
                                       "\": ", kept.message()));
    }
  }
  for (const v1::DeploymentEvent& event : notices) sink(event);
  for (const Undo& undo : undos) {
    if (cancelled_.load()) {
      return absl::CancelledError(
          absl::StrCat("revert of phase \"", phase_name, "\" cancelled"));
    }
    const bundle::Bundle& source =
        undo.earlier != nullptr ? *undo.earlier : bundle;
    if (undo.earlier != nullptr) {
      v1::DeploymentEvent event =
          NewEvent(bundle, phase_name, undo.script.step->name());
      event.set_notice(
          absl::StrCat("restoring the earlier body of ",
                       StepName(phase_name, undo.script.step->name()),
                       ", from bundle ", source.manifest().name(), " ",
                       source.manifest().version(), " (", source.id(), ")"));
      sink(event);
    }
    RETURN_IF_ERROR(RunScript(source, phase_name, undo.script, dialect, sink));
  }
  return absl::OkStatus();
}

absl::Status Executor::Repair(const bundle::Bundle& bundle,
                              const std::string& phase_name,
                              const DeploymentEventSink& sink) {
  if (cancelled_.load()) return absl::CancelledError("repair cancelled");
  std::vector<const v1::Phase*> phases;
  if (phase_name.empty()) {
    for (const v1::Phase& phase : bundle.manifest().phases())
      phases.push_back(&phase);
  } else {
    const v1::Phase* phase = bundle.FindPhase(phase_name);
    if (phase == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("bundle ", bundle.manifest().name(), " has no phase \"",
                       phase_name, "\""));
    }
    phases.push_back(phase);
  }
  ASSIGN_OR_RETURN(v1::Dialect dialect, DialectOf(bundle));
  ASSIGN_OR_RETURN(bool exists, history_.Exists());
  if (!exists) return absl::OkStatus();  // Nothing ever ran: nothing to repair.
  ASSIGN_OR_RETURN(CurrentRows current,
                   history_.LoadCurrent(bundle.manifest().name()));
  const std::string now = FormatHistoryTime(absl::Now());

  // All of the repair or none of it.
  RETURN_IF_ERROR(Begin());
  std::vector<v1::DeploymentEvent> events;
  absl::Status status;
  for (const v1::Phase* phase : phases) {
    for (const v1::Step& step : phase->steps()) {
      auto it = current.find(std::make_pair(phase->name(), step.name()));
      if (it == current.end()) continue;
      const HistoryRow& row = it->second;
      std::string notice;
      if (row.outcome == kOutcomeRunning || row.outcome == kOutcomeFailed ||
          row.outcome == kOutcomeUnknown) {
        status = history_.ClearCurrent(
            row, absl::StrCat("cleared by repair at ", now));
        notice =
            absl::StrCat("repair: cleared the ",
                         row.outcome == kOutcomeRunning
                             ? std::string("RUNNING (now UNKNOWN)")
                             : row.outcome,
                         " row of ", StepName(phase->name(), step.name()), " (",
                         WhenApplied(row), "); the step will run again");
      } else if (row.outcome == kOutcomeApplied &&
                 step.kind() == v1::STEP_KIND_VERSIONED) {
        absl::StatusOr<std::string> checksum =
            bundle.StepChecksum(step, dialect);
        if (!checksum.ok()) {
          status = checksum.status();
        } else if (*checksum != row.checksum) {
          HistoryRow baseline = NewRow(bundle, phase->name(), step);
          baseline.checksum = *checksum;
          baseline.outcome = kOutcomeApplied;
          baseline.started_at = baseline.finished_at = absl::Now();
          baseline.error =
              absl::StrCat("repair: accepted checksum ", *checksum,
                           " in place of ", row.checksum, " without running");
          status = history_.InsertCurrent(baseline);
          notice =
              absl::StrCat("repair: ", StepName(phase->name(), step.name()),
                           " now counts as applied with checksum ", *checksum,
                           " (was ", row.checksum, ")");
        }
      }
      if (!status.ok()) break;
      if (!notice.empty()) {
        v1::DeploymentEvent event =
            NewEvent(bundle, phase->name(), step.name());
        event.set_notice(notice);
        events.push_back(std::move(event));
      }
    }
    if (!status.ok()) break;
  }
  if (status.ok()) status = Commit();
  if (!status.ok()) {
    Rollback();
    return status;
  }
  for (const v1::DeploymentEvent& event : events) sink(event);
  return absl::OkStatus();
}

absl::StatusOr<BackupResult> Executor::Backup(const DeploymentEventSink& sink) {
  ASSIGN_OR_RETURN(BackupResult backup,
                   TakeBackup(*database_, options_.backup_dir));
  v1::DeploymentEvent event;
  v1::BackupCompleted* completed = event.mutable_backup_completed();
  completed->set_backup_id(backup.backup_id);
  completed->set_location(backup.location);
  completed->set_size_bytes(backup.size_bytes);
  *completed->mutable_backup_time() = ToProtoTimestamp(backup.time);
  sink(event);
  return backup;
}

absl::Status Executor::Restore(const std::string& backup_id,
                               const DeploymentEventSink& sink) {
  RETURN_IF_ERROR(RestoreBackup(*database_, options_.backup_dir, backup_id));
  v1::DeploymentEvent event;
  event.set_notice(absl::StrCat("restored backup ", backup_id));
  sink(event);
  return absl::OkStatus();
}

absl::StatusOr<Executor::OperationResult> Executor::CallOperation(
    const bundle::Bundle& bundle, const std::string& operation_name,
    const std::map<std::string, std::string>& arguments) {
  if (bundle.FindOperation(operation_name) == nullptr) {
    return absl::NotFoundError(absl::StrCat("bundle ", bundle.manifest().name(),
                                            " has no operation \"",
                                            operation_name, "\""));
  }
  ASSIGN_OR_RETURN(v1::Dialect dialect, DialectOf(bundle));
  ASSIGN_OR_RETURN(
      BoundOperation operation,
      BoundOperation::Bind(bundle, operation_name, arguments, dialect));
  // The call is counted in ecliptix_operation_calls (call_log.h). A table
  // that cannot be created (no right to) does not stop the call: it goes
  // uncounted, said once, and the next call tries again.
  const absl::Time called_at = absl::Now();
  absl::Status ensured = call_log_.Ensure();
  const bool counted = ensured.ok();
  if (!counted && !call_log_warned_) {
    call_log_warned_ = true;
    Logger("executor")
        ->warn("operation calls go uncounted: {}",
               std::string(ensured.message()));
  }
  RETURN_IF_ERROR(Begin());
  absl::StatusOr<OperationResult> result =
      RunBoundOperation(*database_, operation);
  absl::Status status = result.status();
  // In the call's own transaction: counted exactly when its work commits.
  if (status.ok() && counted) {
    status = call_log_.Record(operation_name, called_at, /*failed=*/false);
  }
  if (status.ok()) status = Commit();
  if (!status.ok()) {
    // Also after a failed COMMIT (an interrupted one can leave the
    // transaction open): the next call must start clean.
    Rollback();
    if (counted) {
      // After the rollback, which would have taken it along.
      absl::Status recorded =
          call_log_.RecordAlone(operation_name, called_at, /*failed=*/true);
      if (!recorded.ok()) {
        Logger("executor")->warn("{}", std::string(recorded.message()));
      }
    }
    return status;
  }
  return result;
}

std::string DefaultBackupDir(const ::ecliptix::sql::DatabaseUrl& url) {
  if (url.backend == ::ecliptix::sql::Backend::kSqlite) {
    std::filesystem::path parent =
        std::filesystem::path(url.sqlite_path).parent_path();
    if (parent.empty()) parent = ".";
    return (parent / ".ecliptix-backups").string();
  }
  return "./ecliptix-backups";
}

}  // namespace ecliptix::agent
