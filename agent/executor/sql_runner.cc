#include "agent/executor/sql_runner.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ecliptix::agent {

SqlRunner::SqlRunner(Target* database) : database_(database) {}

SqlRunner::~SqlRunner() {
  if (armed_) Disarm();
}

void SqlRunner::Arm(absl::Time deadline, const std::atomic<bool>* cancelled,
                    bool in_transaction) {
  deadline_ = deadline;
  cancelled_ = cancelled;
  armed_ = true;
  database_->SetLimits(deadline, cancelled, in_transaction);
}

void SqlRunner::Disarm() {
  if (!armed_) return;
  armed_ = false;
  database_->ClearLimits();
  deadline_ = absl::InfiniteFuture();
  cancelled_ = nullptr;
}

// An interruption is the runner's own doing (deadline) or the executor's
// (Cancel): the code says which, whatever the engine called it.
absl::Status SqlRunner::Failure(absl::StatusCode code, SqlError* error) {
  if (cancelled_ != nullptr && cancelled_->load()) {
    return absl::CancelledError(absl::StrCat("cancelled: ", error->message));
  }
  if (code == absl::StatusCode::kDeadlineExceeded ||
      (armed_ && absl::Now() >= deadline_ &&
       code == absl::StatusCode::kCancelled)) {
    return absl::DeadlineExceededError(
        absl::StrCat("the step's timeout expired: ", error->message));
  }
  std::string message = error->message;
  if (!error->sql_state.empty()) {
    message = absl::StrCat("SQLSTATE ", error->sql_state, ": ", message);
  }
  return absl::Status(code, message);
}

absl::StatusOr<int64_t> SqlRunner::Execute(const std::string& sql,
                                           SqlError* error) {
  *error = SqlError();
  if (cancelled_ != nullptr && cancelled_->load()) {
    error->message = "cancelled before the statement started";
    return Failure(absl::StatusCode::kCancelled, error);
  }
  if (armed_ && absl::Now() >= deadline_) {
    error->message = "no time left before the statement started";
    return Failure(absl::StatusCode::kDeadlineExceeded, error);
  }
  absl::StatusOr<int64_t> rows = database_->RunStatement(sql, error);
  if (!rows.ok()) return Failure(rows.status().code(), error);
  return rows;
}

absl::StatusOr<std::optional<std::string>> SqlRunner::QueryValue(
    const std::string& query, SqlError* error) {
  *error = SqlError();
  absl::StatusOr<std::optional<std::string>> value =
      database_->RunScalar(query, error);
  if (!value.ok()) return Failure(value.status().code(), error);
  return value;
}

}  // namespace ecliptix::agent
