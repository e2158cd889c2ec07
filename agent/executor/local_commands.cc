#include "agent/executor/local_commands.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/executor/cancel_signal.h"
#include "agent/executor/executor.h"
#include "agent/executor/history.h"
#include "agent/executor/operation_job.h"
#include "agent/target/open_target.h"
#include "common/bundle/bundle.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/sql/database_url.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

struct CommandSpec {
  const char* name;
  std::set<std::string> required;
  std::set<std::string> optional;
  const char* summary;
};

// Flags every command takes.
const std::set<std::string>& CommonFlags() {
  static const auto* flags =
      new std::set<std::string>{"log_level", "log_format"};
  return *flags;
}

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"plan",
       {"bundle", "database"},
       {"phase", "adopt"},
       "prints the steps that would run, with the reason and the SQL"},
      {"apply",
       {"bundle", "database"},
       {"phase", "backup", "backup_dir", "adopt"},
       "runs the pending steps of every phase in order (or of --phase); "
       "--backup takes a backup before the first step that runs; --adopt "
       "records steps whose objects already exist as baselined without "
       "running them"},
      {"revert",
       {"bundle", "database", "phase"},
       {"accept_data_loss", "backup_dir"},
       "runs the revert scripts of the phase's applied steps, last first; "
       "refused when it would drop or empty tables holding rows unless "
       "--accept_data_loss; baselined steps are never reverted"},
      {"repair",
       {"bundle", "database"},
       {"phase"},
       "accepts changed versioned steps and clears failed/unknown rows"},
      {"backup", {"database"}, {"backup_dir"}, "takes a backup"},
      {"restore",
       {"database", "backup_id"},
       {"backup_dir"},
       "puts a backup back in place of the database"},
      {"history", {"database"}, {}, "prints the schema history table"},
      {"call",
       {"bundle", "database", "operation"},
       {"arg"},
       "runs a named operation of the bundle: --arg=Name=Value, repeated"},
      {"run-job",
       {"database", "operation"},
       {"bundle", "bundle_dir", "arg", "pause", "max_batches", "window"},
       "runs a maintenance job: the operation once, or a batch operation "
       "batch after batch (each its own transaction) until nothing is left, "
       "printing each batch; --pause=2s between batches, --max_batches=N, "
       "--window=30m starts no batch after that long; Ctrl-C stops between "
       "batches or rolls the running one back (--bundle_dir is --bundle)"},
  };
  return *commands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& spec : Commands()) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

// The command line of one command: flag -> value ("arg" may repeat).
struct Flags {
  std::map<std::string, std::string> values;
  std::vector<std::string> args;
  bool help = false;

  std::string Get(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? "" : it->second;
  }
  bool Has(const std::string& name) const { return values.count(name) > 0; }
};

// Parses argv[2...]; a non-empty return is the usage error.
std::string ParseFlags(const CommandSpec& spec, int argc, char* argv[],
                       Flags* flags) {
  const std::set<std::string> kBool = {"backup", "adopt", "accept_data_loss"};
  for (int i = 2; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::StrCat("unexpected argument \"", arg,
                          "\": flags take the form --name=value");
    }
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t equals = arg.find('=');
    const std::string name(arg.substr(0, equals));
    if (name == "help" || name == "helpfull" || name == "helpshort") {
      flags->help = true;
      continue;
    }
    if (spec.required.count(name) == 0 && spec.optional.count(name) == 0 &&
        CommonFlags().count(name) == 0) {
      std::vector<std::string> known(spec.required.begin(),
                                     spec.required.end());
      known.insert(known.end(), spec.optional.begin(), spec.optional.end());
      return absl::StrCat("unknown flag --", name, " for ", spec.name,
                          " (it takes --", absl::StrJoin(known, ", --"), ")");
    }
    std::string value;
    if (equals != absl::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (kBool.count(name) > 0) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::StrCat("flag --", name, " needs a value: --", name,
                          "=VALUE");
    }
    if (kBool.count(name) > 0 && value != "true" && value != "false") {
      return absl::StrCat("--", name, " is true or false, not \"", value, "\"");
    }
    if (name == "arg") {
      flags->args.push_back(value);
    } else if (!flags->values.emplace(name, value).second) {
      return absl::StrCat("flag --", name, " given twice");
    }
  }
  if (flags->help) return "";
  for (const std::string& name : spec.required) {
    if (flags->Get(name).empty()) {
      return absl::StrCat(spec.name, " needs --", name);
    }
  }
  return "";
}

std::string ShortChecksum(const std::string& checksum) {
  // "sha256:" and 12 hex digits tell checksums apart for people.
  return checksum.substr(0, 19);
}

std::string FormatMillis(absl::Duration duration) {
  return absl::StrCat(absl::ToInt64Milliseconds(duration), " ms");
}

std::string KindName(v1::StepKind kind) {
  return kind == v1::STEP_KIND_VERSIONED ? "versioned" : "repeatable";
}

// Prints deployment events as they arrive and counts outcomes.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(std::FILE* out) : out_(out) {}

  void operator()(const v1::DeploymentEvent& event) {
    const std::string where = absl::StrCat(event.phase(), "/", event.step());
    switch (event.kind_case()) {
      case v1::DeploymentEvent::kStepStarted: {
        const v1::StepStarted& started = event.step_started();
        Print(absl::StrFormat("%s: started (%s, %d statement%s, %s)\n", where,
                              KindName(started.kind()),
                              started.statement_count(),
                              started.statement_count() == 1 ? "" : "s",
                              ShortChecksum(started.checksum())));
        break;
      }
      case v1::DeploymentEvent::kStatementProgress: {
        const v1::StatementProgress& progress = event.statement_progress();
        Print(absl::StrFormat(
            "  [%d/%d] ok (%d row%s)\n", progress.statement_index(),
            progress.statement_count(), progress.rows_affected(),
            progress.rows_affected() == 1 ? "" : "s"));
        break;
      }
      case v1::DeploymentEvent::kNotice:
        Print(absl::StrCat("  ", event.notice(), "\n"));
        break;
      case v1::DeploymentEvent::kStepFinished: {
        const v1::StepFinished& finished = event.step_finished();
        const absl::Duration duration =
            absl::Seconds(finished.duration().seconds()) +
            absl::Nanoseconds(finished.duration().nanos());
        switch (finished.outcome()) {
          case v1::STEP_OUTCOME_SKIPPED:
            ++skipped_;
            Print(absl::StrCat(where, ": skipped (already applied)\n"));
            break;
          case v1::STEP_OUTCOME_BASELINED:
            ++baselined_;
            Print(
                absl::StrCat(where, ": baselined (objects already present)\n"));
            break;
          case v1::STEP_OUTCOME_REVERTED:
            ++reverted_;
            Print(absl::StrFormat("%s: reverted in %s (%d rows)\n", where,
                                  FormatMillis(duration),
                                  finished.rows_affected()));
            break;
          default:
            ++applied_;
            Print(absl::StrFormat("%s: applied in %s (%d rows)\n", where,
                                  FormatMillis(duration),
                                  finished.rows_affected()));
            break;
        }
        break;
      }
      case v1::DeploymentEvent::kStepFailed: {
        const v1::StepFailed& failed = event.step_failed();
        std::string line = absl::StrCat(where, ": FAILED");
        if (failed.statement_index() > 0) {
          absl::StrAppend(&line, " at ", failed.file(), ":", failed.line(),
                          " (statement ", failed.statement_index(), ")");
        } else if (!failed.file().empty()) {
          absl::StrAppend(&line, " (", failed.file(), ")");
        }
        absl::StrAppend(&line, ": ");
        if (!failed.sql_state().empty()) {
          absl::StrAppend(&line, "SQLSTATE ", failed.sql_state(), ": ");
        }
        absl::StrAppend(
            &line, failed.message(),
            failed.rolled_back() ? " (rolled back)" : " (NOT rolled back)",
            "\n");
        Print(line);
        break;
      }
      case v1::DeploymentEvent::kBackupCompleted: {
        const v1::BackupCompleted& backup = event.backup_completed();
        backed_up_ = true;
        Print(absl::StrFormat("backup %s taken: %s (%d bytes)\n",
                              backup.backup_id(), backup.location(),
                              backup.size_bytes()));
        break;
      }
      case v1::DeploymentEvent::kStepPlanned: {
        const v1::StepPlanned& planned = event.step_planned();
        ++planned_;
        std::string sql;
        for (absl::string_view line : absl::StrSplit(
                 absl::StripTrailingAsciiWhitespace(planned.sql()), '\n')) {
          absl::StrAppend(&sql, "    ", line, "\n");
        }
        Print(
            absl::StrCat(where, ": would run (", planned.reason(), ")\n", sql));
        break;
      }
      default:
        break;
    }
  }

  int applied() const { return applied_; }
  int skipped() const { return skipped_; }
  int reverted() const { return reverted_; }
  int baselined() const { return baselined_; }
  int planned() const { return planned_; }
  bool backed_up() const { return backed_up_; }

 private:
  void Print(const std::string& text) {
    std::fputs(text.c_str(), out_);
    std::fflush(out_);  // Progress is for watching: no buffering.
  }

  std::FILE* out_;
  int applied_ = 0;
  int skipped_ = 0;
  int reverted_ = 0;
  int baselined_ = 0;
  int planned_ = 0;
  bool backed_up_ = false;
};

// Columns aligned to their widest cell.
void PrintTable(std::FILE* out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      if (i + 1 == widths.size()) {
        absl::StrAppend(&line, cell);
      } else {
        absl::StrAppend(&line, cell,
                        std::string(widths[i] - cell.size() + 2, ' '));
      }
    }
    std::fprintf(out, "%s\n",
                 std::string(absl::StripTrailingAsciiWhitespace(line)).c_str());
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

// The executor of the command running now, for CancelRunningLocalCommand.
absl::Mutex running_mutex;
Executor* running_executor ABSL_GUARDED_BY(running_mutex) = nullptr;
// The cancel signal of the job running now (run-job), if any.
CancelSignal* running_job ABSL_GUARDED_BY(running_mutex) = nullptr;

class RunningJobScope {
 public:
  explicit RunningJobScope(CancelSignal* cancel) {
    absl::MutexLock lock(&running_mutex);
    running_job = cancel;
  }
  ~RunningJobScope() {
    absl::MutexLock lock(&running_mutex);
    running_job = nullptr;
  }
};

class RunningScope {
 public:
  explicit RunningScope(Executor* executor) {
    absl::MutexLock lock(&running_mutex);
    running_executor = executor;
  }
  ~RunningScope() {
    absl::MutexLock lock(&running_mutex);
    running_executor = nullptr;
  }
};

class LocalCommand {
 public:
  LocalCommand(const CommandSpec& spec, Flags flags, std::FILE* out,
               std::FILE* err)
      : spec_(spec), flags_(std::move(flags)), out_(out), err_(err) {}

  int Run() {
    const std::string url_text = flags_.Get("database");
    absl::StatusOr<::ecliptix::sql::DatabaseUrl> url =
        ::ecliptix::sql::ParseDatabaseUrl(url_text);
    if (!url.ok()) return Usage(url.status().message());
    std::map<std::string, std::string> arguments;
    for (const std::string& arg : flags_.args) {
      const size_t equals = arg.find('=');
      if (equals == std::string::npos || equals == 0) {
        return Usage(absl::StrCat("--arg takes Name=Value, not \"", arg, "\""));
      }
      if (!arguments.emplace(arg.substr(0, equals), arg.substr(equals + 1))
               .second) {
        return Usage(
            absl::StrCat("--arg ", arg.substr(0, equals), " given twice"));
      }
    }

    std::optional<bundle::Bundle> loaded;
    const std::string bundle_dir =
        flags_.Has("bundle") ? flags_.Get("bundle") : flags_.Get("bundle_dir");
    if (spec_.optional.count("bundle") > 0 && bundle_dir.empty()) {
      return Usage(absl::StrCat(spec_.name, " needs --bundle"));
    }
    if (!bundle_dir.empty()) {
      absl::StatusOr<bundle::Bundle> bundle =
          bundle::Bundle::LoadDirectory(bundle_dir);
      if (!bundle.ok()) {
        return Failure(absl::StrCat("bundle ", bundle_dir, ": ",
                                    bundle.status().message()));
      }
      loaded.emplace(*std::move(bundle));
      const std::string phase = flags_.Get("phase");
      if (!phase.empty() && loaded->FindPhase(phase) == nullptr) {
        return Usage(absl::StrCat("bundle ", loaded->manifest().name(),
                                  " has no phase \"", phase, "\""));
      }
    }

    absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(url_text);
    if (!database.ok()) return Failure(database.status().message());
    database_ = std::move(*database);
    ExecutorOptions options;
    options.backup_dir = flags_.Has("backup_dir") ? flags_.Get("backup_dir")
                                                  : DefaultBackupDir(*url);
    Executor executor(database_.get(), options);
    RunningScope running(&executor);

    const std::string command = spec_.name;
    if (command == "plan") return Plan(executor, *loaded);
    if (command == "apply") return Apply(executor, *loaded);
    if (command == "revert") return Revert(executor, *loaded);
    if (command == "repair") return Repair(executor, *loaded);
    if (command == "backup") return Backup(executor);
    if (command == "restore") return Restore(executor);
    if (command == "history") return PrintHistory(executor);
    if (command == "call") return Call(executor, *loaded, arguments);
    if (command == "run-job") return RunJob(executor, *loaded, arguments);
    return Usage(absl::StrCat("unknown command ", command));
  }

 private:
  int Usage(absl::string_view message) {
    std::fprintf(err_, "ecliptix-agent: %s\n", std::string(message).c_str());
    return kLocalExitUsage;
  }
  int Failure(absl::string_view message) {
    std::fprintf(err_, "ecliptix-agent: %s\n", std::string(message).c_str());
    return kLocalExitFailure;
  }

  // The phases a command covers: --phase, or all in declared order.
  std::vector<std::string> Phases(const bundle::Bundle& bundle) const {
    if (flags_.Has("phase") && !flags_.Get("phase").empty()) {
      return {flags_.Get("phase")};
    }
    std::vector<std::string> phases;
    for (const v1::Phase& phase : bundle.manifest().phases()) {
      phases.push_back(phase.name());
    }
    return phases;
  }

  std::string Describe(const bundle::Bundle& bundle) const {
    return absl::StrCat("bundle ", bundle.manifest().name(), " ",
                        bundle.manifest().version(), " on ",
                        database_->redacted_url());
  }

  int Plan(Executor& executor, const bundle::Bundle& bundle) {
    std::fprintf(out_, "plan of %s\n", Describe(bundle).c_str());
    ProgressPrinter printer(out_);
    for (const std::string& phase : Phases(bundle)) {
      std::fprintf(out_, "== phase %s\n", phase.c_str());
      const int before = printer.planned();
      absl::Status status = executor.Plan(bundle, phase, std::ref(printer),
                                          flags_.Get("adopt") == "true");
      if (!status.ok()) return Failure(status.message());
      if (printer.planned() == before) std::fprintf(out_, "  nothing to do\n");
    }
    std::fprintf(out_, "%d step%s would run\n", printer.planned(),
                 printer.planned() == 1 ? "" : "s");
    return kLocalExitOk;
  }

  int Apply(Executor& executor, const bundle::Bundle& bundle) {
    std::fprintf(out_, "applying %s\n", Describe(bundle).c_str());
    std::fflush(out_);
    ProgressPrinter printer(out_);
    const bool backup = flags_.Get("backup") == "true";
    for (const std::string& phase : Phases(bundle)) {
      std::fprintf(out_, "== phase %s\n", phase.c_str());
      std::fflush(out_);
      // One backup for the whole run: before the first step that runs.
      absl::Status status =
          executor.RunPhase(bundle, phase, backup && !printer.backed_up(),
                            std::ref(printer), flags_.Get("adopt") == "true");
      if (!status.ok()) return Failure(status.message());
    }
    std::fprintf(out_, "done: %d applied, %d skipped", printer.applied(),
                 printer.skipped());
    if (printer.baselined() > 0)
      std::fprintf(out_, ", %d baselined", printer.baselined());
    std::fprintf(out_, "\n");
    return kLocalExitOk;
  }

  int Revert(Executor& executor, const bundle::Bundle& bundle) {
    const std::string phase = flags_.Get("phase");
    std::fprintf(out_, "reverting phase %s of %s\n", phase.c_str(),
                 Describe(bundle).c_str());
    std::fflush(out_);
    ProgressPrinter printer(out_);
    // Only this bundle is at hand: repeatable steps get their revert scripts,
    // not an earlier bundle's body.
    Executor::RevertOptions options;
    options.accept_data_loss = flags_.Get("accept_data_loss") == "true";
    absl::Status status =
        executor.RevertPhase(bundle, phase, std::ref(printer), options);
    if (!status.ok()) return Failure(status.message());
    std::fprintf(out_, "done: %d reverted\n", printer.reverted());
    return kLocalExitOk;
  }

  int Repair(Executor& executor, const bundle::Bundle& bundle) {
    int notices = 0;
    absl::Status status = executor.Repair(
        bundle, flags_.Get("phase"), [&](const v1::DeploymentEvent& event) {
          if (event.has_notice()) {
            ++notices;
            std::fprintf(out_, "%s\n", event.notice().c_str());
          }
        });
    if (!status.ok()) return Failure(status.message());
    if (notices == 0) std::fprintf(out_, "nothing to repair\n");
    return kLocalExitOk;
  }

  int Backup(Executor& executor) {
    absl::StatusOr<BackupResult> backup =
        executor.Backup([](const v1::DeploymentEvent&) {});
    if (!backup.ok()) return Failure(backup.status().message());
    std::fprintf(out_, "backup %s\n  location: %s\n  size: %lld bytes\n",
                 backup->backup_id.c_str(), backup->location.c_str(),
                 static_cast<long long>(backup->size_bytes));
    return kLocalExitOk;
  }

  int Restore(Executor& executor) {
    const std::string id = flags_.Get("backup_id");
    absl::Status status =
        executor.Restore(id, [](const v1::DeploymentEvent&) {});
    if (!status.ok()) return Failure(status.message());
    std::fprintf(out_, "restored backup %s into %s\n", id.c_str(),
                 database_->redacted_url().c_str());
    return kLocalExitOk;
  }

  int PrintHistory(Executor& executor) {
    absl::StatusOr<std::vector<HistoryRow>> rows = executor.history().LoadAll();
    if (!rows.ok()) return Failure(rows.status().message());
    if (rows->empty()) {
      std::fprintf(out_, "no history in %s\n",
                   database_->redacted_url().c_str());
      return kLocalExitOk;
    }
    std::vector<std::vector<std::string>> table;
    for (const HistoryRow& row : *rows) {
      table.push_back({absl::StrCat(row.id), row.is_current ? "*" : "",
                       row.bundle_name, row.bundle_version, row.phase, row.step,
                       row.kind, row.outcome, FormatHistoryTime(row.started_at),
                       absl::StrCat(row.duration_ms),
                       absl::StrCat(row.rows_affected),
                       ShortChecksum(row.checksum), row.error});
    }
    PrintTable(out_,
               {"ID", "CUR", "BUNDLE", "VERSION", "PHASE", "STEP", "KIND",
                "OUTCOME", "STARTED", "MS", "ROWS", "CHECKSUM", "ERROR"},
               table);
    return kLocalExitOk;
  }

  int Call(Executor& executor, const bundle::Bundle& bundle,
           const std::map<std::string, std::string>& arguments) {
    // Mistakes in the command line are usage errors (exit 2), checked here;
    // whatever the database answers is a failure (exit 1), even when it
    // reports INVALID_ARGUMENT (bad SQL, a missing function).
    const std::string& name = flags_.Get("operation");
    const fleet::v1::Operation* operation = bundle.FindOperation(name);
    if (operation == nullptr) {
      std::vector<std::string> known;
      for (const auto& candidate : bundle.manifest().operations()) {
        known.push_back(candidate.name());
      }
      return Usage(absl::StrCat(
          "bundle ", bundle.manifest().name(), " has no operation \"", name,
          "\"; its operations: ", absl::StrJoin(known, ", ")));
    }
    std::set<std::string> declared;
    for (const auto& parameter : operation->parameters()) {
      declared.insert(parameter.name());
      if (arguments.count(parameter.name()) == 0 &&
          !parameter.has_default_value()) {
        return Usage(absl::StrCat("operation ", name,
                                  " needs --arg=", parameter.name(), "=<",
                                  parameter.type(), ">"));
      }
    }
    for (const auto& [argument, value] : arguments) {
      if (declared.count(argument) == 0) {
        return Usage(absl::StrCat("operation ", name, " has no parameter \"",
                                  argument, "\""));
      }
    }
    absl::StatusOr<Executor::OperationResult> result =
        executor.CallOperation(bundle, name, arguments);
    if (!result.ok()) return Failure(result.status().message());
    if (!result->columns.empty()) {
      PrintTable(out_, result->columns, result->rows);
      std::fprintf(out_, "(%zu row%s)\n", result->rows.size(),
                   result->rows.size() == 1 ? "" : "s");
    }
    if (result->rows_affected > 0 || result->columns.empty()) {
      std::fprintf(out_, "%lld row%s affected\n",
                   static_cast<long long>(result->rows_affected),
                   result->rows_affected == 1 ? "" : "s");
    }
    return kLocalExitOk;
  }

  int RunJob(Executor& executor, const bundle::Bundle& bundle,
             const std::map<std::string, std::string>& arguments) {
    v1::RunOperationCommand command;
    command.set_bundle_id(bundle.id());
    command.set_operation(flags_.Get("operation"));
    for (const auto& [name, value] : arguments)
      (*command.mutable_arguments())[name] = value;
    if (flags_.Has("pause")) {
      absl::Duration pause;
      if (!absl::ParseDuration(flags_.Get("pause"), &pause) ||
          pause < absl::ZeroDuration()) {
        return Usage(absl::StrCat("--pause takes a duration such as 2s, not \"",
                                  flags_.Get("pause"), "\""));
      }
      *command.mutable_pause_between_batches() = ToProtoDuration(pause);
    }
    if (flags_.Has("max_batches")) {
      int max_batches = 0;
      if (!absl::SimpleAtoi(flags_.Get("max_batches"), &max_batches) ||
          max_batches < 0) {
        return Usage(absl::StrCat("--max_batches takes a count, not \"",
                                  flags_.Get("max_batches"), "\""));
      }
      command.set_max_batches(max_batches);
    }
    if (flags_.Has("window")) {
      absl::Duration window;
      if (!absl::ParseDuration(flags_.Get("window"), &window) ||
          window <= absl::ZeroDuration()) {
        return Usage(
            absl::StrCat("--window takes a duration such as 30m, not \"",
                         flags_.Get("window"), "\""));
      }
      *command.mutable_not_after_time() =
          ToProtoTimestamp(absl::Now() + window);
    }
    // Mistakes in the command line (an unknown operation, its arguments) are
    // usage errors, as for call.
    if (absl::Status checked = CheckRunOperation(bundle, command);
        !checked.ok()) {
      return Usage(checked.message());
    }
    std::fprintf(out_, "running %s of %s\n", command.operation().c_str(),
                 Describe(bundle).c_str());
    std::fflush(out_);
    CancelSignal cancel;
    RunningJobScope running(&cancel);
    const bool batches = bundle.FindOperation(command.operation())->has_batch();
    std::string stop_reason;
    int64_t rows = 0;
    bool printed_rows = false;
    const absl::Status status = RunOperationJob(
        executor, bundle, command, cancel, [&](v1::CommandEvent event) {
          if (event.has_operation_batch()) {
            const v1::OperationBatch& batch = event.operation_batch();
            stop_reason = batch.stop_reason();
            rows = batch.rows_done();
            // Batch 0: no batch ran (the window was closed).
            if (!batches || batch.batch() == 0) return;
            std::fprintf(
                out_,
                "batch %d: %lld row%s done, %lld left (%lld in all, "
                "%.1f rows/s, %s)\n",
                batch.batch(), static_cast<long long>(batch.rows_done()),
                batch.rows_done() == 1 ? "" : "s",
                static_cast<long long>(batch.rows_left()),
                static_cast<long long>(batch.rows_done_total()),
                batch.rows_per_second(),
                FormatMillis(FromProtoDuration(batch.elapsed())).c_str());
          } else if (event.has_query_rows()) {
            const v1::QueryRows& result = event.query_rows();
            std::vector<std::string> header(result.columns().begin(),
                                            result.columns().end());
            std::vector<std::vector<std::string>> table;
            for (const v1::QueryRow& row : result.rows()) {
              std::vector<std::string>& cells = table.emplace_back();
              for (const v1::QueryValue& value : row.values())
                cells.push_back(value.null_value() ? "NULL" : value.text());
            }
            PrintTable(out_, header, table);
            printed_rows = true;
            if (result.rows_truncated() > 0) {
              std::fprintf(out_, "(%lld more rows not shown)\n",
                           static_cast<long long>(result.rows_truncated()));
            }
          }
          std::fflush(out_);
        });
    if (!status.ok()) return Failure(status.message());
    if (!batches) {
      std::fprintf(out_,
                   printed_rows ? "(%lld row%s)\n" : "%lld row%s affected\n",
                   static_cast<long long>(rows), rows == 1 ? "" : "s");
      return kLocalExitOk;
    }
    std::fprintf(out_, "done%s%s\n", stop_reason.empty() ? "" : ": ",
                 stop_reason.c_str());
    return kLocalExitOk;
  }

  const CommandSpec& spec_;
  Flags flags_;
  std::FILE* out_;
  std::FILE* err_;
  std::unique_ptr<Target> database_;
};

}  // namespace

bool IsLocalCommand(absl::string_view command) {
  return FindCommand(command) != nullptr;
}

std::string LocalUsage() {
  std::string usage =
      "Local mode: ecliptix-agent COMMAND --flag=value ... (no server)\n";
  for (const CommandSpec& spec : Commands()) {
    std::string flags;
    for (const std::string& name : spec.required) {
      absl::StrAppend(&flags, " --", name, "=...");
    }
    for (const std::string& name : spec.optional) {
      absl::StrAppend(&flags, " [--", name, name == "backup" ? "" : "=...",
                      name == "arg" ? " ..." : "", "]");
    }
    absl::StrAppend(&usage, "  ", spec.name, flags, "\n      ", spec.summary,
                    "\n");
  }
  absl::StrAppend(
      &usage,
      "Exit codes: 0 success, 1 failure, 2 bad command line. Default "
      "--backup_dir: <dir of the SQLite file>/.ecliptix-backups, else "
      "./ecliptix-backups.\n");
  return usage;
}

void CancelRunningLocalCommand() {
  absl::MutexLock lock(&running_mutex);
  if (running_executor != nullptr) running_executor->Cancel();
  if (running_job != nullptr) running_job->Cancel();
}

int RunLocalCommand(int argc, char* argv[], std::FILE* out, std::FILE* err) {
  const CommandSpec* spec = argc > 1 ? FindCommand(argv[1]) : nullptr;
  if (spec == nullptr) {
    std::fprintf(err, "ecliptix-agent: unknown command \"%s\" (commands: %s)\n",
                 argc > 1 ? argv[1] : "",
                 "plan, apply, revert, repair, "
                 "backup, restore, history, call, run-job");
    return kLocalExitUsage;
  }
  Flags flags;
  if (std::string error = ParseFlags(*spec, argc, argv, &flags);
      !error.empty()) {
    std::fprintf(err, "ecliptix-agent: %s\n", error.c_str());
    return kLocalExitUsage;
  }
  if (flags.help) {
    std::fputs(LocalUsage().c_str(), out);
    return kLocalExitOk;
  }
  const std::string level =
      flags.Has("log_level") ? flags.Get("log_level") : "warn";
  const std::string format =
      flags.Has("log_format") ? flags.Get("log_format") : "text";
  if (absl::Status status = ConfigureLogging(level, format); !status.ok()) {
    std::fprintf(err, "ecliptix-agent: %s\n",
                 std::string(status.message()).c_str());
    return kLocalExitUsage;
  }
  return LocalCommand(*spec, std::move(flags), out, err).Run();
}

}  // namespace ecliptix::agent
