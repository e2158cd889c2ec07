#include "agent/executor/operation_job.h"

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/bundle/manifest_rules.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kNothingLeft[] = "nothing left";
constexpr char kMaxBatchesReached[] = "max batches reached";
constexpr char kWindowClosed[] = "maintenance window closed";
constexpr char kCancelled[] = "cancelled";

std::map<std::string, std::string> ArgumentsOf(
    const v1::RunOperationCommand& command) {
  return std::map<std::string, std::string>(command.arguments().begin(),
                                            command.arguments().end());
}

// The integer in `column` (matched ignoring case) of the result's first row.
absl::StatusOr<int64_t> CountColumn(const OperationResult& result,
                                    const std::string& operation,
                                    const std::string& column) {
  for (size_t i = 0; i < result.columns.size(); ++i) {
    if (!absl::EqualsIgnoreCase(result.columns[i], column)) continue;
    if (result.rows.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("batch operation ", operation,
                       " returned no row (its batch spec reads ", column,
                       " from the first row)"));
    }
    int64_t value = 0;
    if (result.nulls[0][i] || !absl::SimpleAtoi(result.rows[0][i], &value)) {
      return absl::FailedPreconditionError(
          absl::StrCat("batch operation ", operation, " returned ", column,
                       " = \"", result.rows[0][i], "\", not a count"));
    }
    return value;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "batch operation ", operation, " returned no column ", column,
      " (its batch spec names it); the result has: ",
      result.columns.empty() ? std::string("no rows at all")
                             : absl::StrJoin(result.columns, ", ")));
}

class Run {
 public:
  Run(Executor& executor, const bundle::Bundle& bundle,
      const v1::RunOperationCommand& command, const CancelSignal& cancel,
      const CommandEventSink& sink)
      : executor_(executor),
        bundle_(bundle),
        command_(command),
        operation_(*bundle.FindOperation(command.operation())),
        arguments_(ArgumentsOf(command)),
        cancel_(cancel),
        sink_(sink),
        pause_(FromProtoDuration(command.pause_between_batches())),
        not_after_(command.has_not_after_time()
                       ? FromProtoTimestamp(command.not_after_time())
                       : absl::InfiniteFuture()),
        started_(absl::Now()) {}

  absl::Status Single() {
    if (cancel_.cancelled()) return Cancelled("before it started");
    const absl::Time started = absl::Now();
    absl::StatusOr<OperationResult> result = Call();
    if (!result.ok()) {
      if (cancel_.cancelled()) return Cancelled("while it ran (rolled back)");
      return result.status();
    }
    const int64_t done =
        result->columns.empty()
            ? result->rows_affected
            : static_cast<int64_t>(result->rows.size()) + result->rows_left_out;
    batches_ = 1;
    total_ = done;
    Report(1, done, -1, absl::Now() - started, "");
    if (!result->columns.empty()) {
      const int64_t over =
          result->rows.size() > kMaxJobResultRows
              ? static_cast<int64_t>(result->rows.size() - kMaxJobResultRows)
              : 0;
      if (over > 0) {
        result->rows.resize(kMaxJobResultRows);
        result->nulls.resize(kMaxJobResultRows);
      }
      for (v1::QueryRows& rows :
           ToQueryRows(*result, kMaxJobResultRows, over)) {
        v1::CommandEvent event;
        *event.mutable_query_rows() = std::move(rows);
        sink_(std::move(event));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Batches() {
    const v1::BatchSpec& spec = operation_.batch();
    if (absl::Now() >= not_after_) {
      Report(0, 0, -1, absl::ZeroDuration(), kWindowClosed);
      return absl::OkStatus();
    }
    for (int batch = 1;; ++batch) {
      if (cancel_.cancelled()) return Cancelled("before its next batch");
      const absl::Time started = absl::Now();
      absl::StatusOr<OperationResult> result = Call();
      if (!result.ok()) {
        if (cancel_.cancelled()) {
          return Cancelled(
              absl::StrCat("during batch ", batch, ", which was rolled back"));
        }
        return absl::Status(
            result.status().code(),
            absl::StrCat("batch ", batch, " of ", operation_.name(), " (",
                         Done(), " before it): ", result.status().message()));
      }
      ASSIGN_OR_RETURN(int64_t done, CountColumn(*result, operation_.name(),
                                                 spec.rows_done_column()));
      ASSIGN_OR_RETURN(int64_t left, CountColumn(*result, operation_.name(),
                                                 spec.rows_left_column()));
      ++batches_;
      total_ += done;
      std::string stop;
      if (left <= 0 || done <= 0) {
        stop = kNothingLeft;
      } else if (cancel_.cancelled()) {
        stop = kCancelled;
      } else if (command_.max_batches() > 0 &&
                 batch >= command_.max_batches()) {
        stop = kMaxBatchesReached;
      } else if (absl::Now() + pause_ >= not_after_) {
        stop = kWindowClosed;
      }
      Report(batch, done, left, absl::Now() - started, stop);
      if (stop == kCancelled) return Cancelled("after its last batch");
      if (!stop.empty()) return absl::OkStatus();
      if (pause_ > absl::ZeroDuration() && cancel_.WaitFor(pause_)) {
        return Cancelled("in the pause after its last batch");
      }
    }
  }

 private:
  absl::StatusOr<OperationResult> Call() {
    return executor_.CallOperation(bundle_, operation_.name(), arguments_);
  }

  std::string Done() const {
    return absl::StrCat(batches_, " batch", batches_ == 1 ? "" : "es", ", ",
                        total_, " row", total_ == 1 ? "" : "s", " done");
  }

  absl::Status Cancelled(const std::string& when) const {
    return absl::CancelledError(absl::StrCat(
        operation_.name(), " cancelled ", when, ": ", Done(),
        batches_ > 0 ? " and kept (each batch commits on its own)" : ""));
  }

  void Report(int batch, int64_t done, int64_t left, absl::Duration elapsed,
              const std::string& stop) {
    v1::CommandEvent event;
    v1::OperationBatch* progress = event.mutable_operation_batch();
    progress->set_batch(batch);
    progress->set_rows_done(done);
    progress->set_rows_left(left);
    progress->set_rows_done_total(total_);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - started_);
    progress->set_rows_per_second(seconds > 0 ? total_ / seconds : 0);
    *progress->mutable_elapsed() = ToProtoDuration(elapsed);
    progress->set_stop_reason(stop);
    sink_(std::move(event));
  }

  Executor& executor_;
  const bundle::Bundle& bundle_;
  const v1::RunOperationCommand& command_;
  const v1::Operation& operation_;
  const std::map<std::string, std::string> arguments_;
  const CancelSignal& cancel_;
  const CommandEventSink& sink_;
  const absl::Duration pause_;
  const absl::Time not_after_;
  const absl::Time started_;
  int batches_ = 0;
  int64_t total_ = 0;
};

}  // namespace

absl::Status CheckRunOperation(const bundle::Bundle& bundle,
                               const v1::RunOperationCommand& command) {
  const v1::Operation* operation = bundle.FindOperation(command.operation());
  if (operation == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "bundle ", bundle.manifest().name(), " ", bundle.manifest().version(),
        " has no operation \"", command.operation(), "\""));
  }
  RETURN_IF_ERROR(bundle::CheckArguments(*operation, ArgumentsOf(command)));
  if (command.max_batches() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batches must be 0 (no limit) or more, not ",
                     command.max_batches()));
  }
  if (FromProtoDuration(command.pause_between_batches()) <
      absl::ZeroDuration()) {
    return absl::InvalidArgumentError("pause_between_batches is negative");
  }
  return absl::OkStatus();
}

absl::Status RunOperationJob(Executor& executor, const bundle::Bundle& bundle,
                             const v1::RunOperationCommand& command,
                             const CancelSignal& cancel,
                             const CommandEventSink& sink) {
  RETURN_IF_ERROR(CheckRunOperation(bundle, command));
  Run run(executor, bundle, command, cancel, sink);
  if (bundle.FindOperation(command.operation())->has_batch())
    return run.Batches();
  return run.Single();
}

}  // namespace ecliptix::agent
