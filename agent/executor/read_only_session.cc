#include "agent/executor/read_only_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/target/open_target.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// What the engines say when a read-only transaction (or connection) refuses
// a write: PostgreSQL's read_only_sql_transaction ("cannot execute INSERT in
// a read-only transaction", SQLSTATE 25006) and SQLite's SQLITE_READONLY
// under query_only ("attempt to write a readonly database").
bool IsWriteRefusal(absl::string_view message) {
  return absl::StrContains(message, "read-only transaction") ||
         absl::StrContains(message, "25006") ||
         absl::StrContains(message, "readonly database");
}

// PostgreSQL's statement_timeout, ODBC's query timeout (HYT00).
bool IsTimeout(absl::string_view message) {
  return absl::StrContains(message, "statement timeout") ||
         absl::StrContains(message, "HYT00");
}

}  // namespace

ReadOnlySession::ReadOnlySession(std::unique_ptr<Target> database,
                                 absl::Time deadline)
    : database_(std::move(database)), deadline_(deadline) {}

absl::StatusOr<std::unique_ptr<ReadOnlySession>> ReadOnlySession::Open(
    const std::string& database_url, absl::Time deadline) {
  ASSIGN_OR_RETURN(std::unique_ptr<Target> database, OpenTarget(database_url));
  return Start(std::move(database), deadline);
}

absl::StatusOr<std::unique_ptr<ReadOnlySession>> ReadOnlySession::Start(
    std::unique_ptr<Target> database, absl::Time deadline) {
  std::unique_ptr<ReadOnlySession> session(
      new ReadOnlySession(std::move(database), deadline));
  RETURN_IF_ERROR(session->Begin());
  return session;
}

ReadOnlySession::~ReadOnlySession() {
  // The limits first: a cancelled SQLite connection would interrupt the
  // rollback itself.
  database_->ClearLimits();
  if (!in_transaction_) return;
  // Always rolled back: on SQL Server this is what undoes a write.
  if (absl::Status status = database_->Rollback(); !status.ok()) {
    // The connection closes next, which ends the transaction anyway.
    Logger("agent.read")
        ->debug("rolling back a read-only session: {}",
                std::string(status.message()));
  }
}

absl::Status ReadOnlySession::Begin() {
  const std::string what = "starting a read-only transaction";
  database_->SetLimits(deadline_, &cancelled_, /*in_transaction=*/true);
  switch (database_->engine()) {
    case v1::ENGINE_SQLITE:
      // For this connection only, which closes after the read.
      RETURN_IF_ERROR(
          WithContext(what, database_->Execute("PRAGMA query_only = ON")));
      RETURN_IF_ERROR(WithContext(what, database_->BeginReadOnly()));
      in_transaction_ = true;
      return absl::OkStatus();
    case v1::ENGINE_POSTGRESQL: {
      // For the session, which closes after the read: PostgreSQL's ODBC
      // driver runs SET outside the transaction it opens, where SET
      // TRANSACTION would change nothing.
      RETURN_IF_ERROR(
          WithContext(what, database_->Execute("SET SESSION CHARACTERISTICS AS "
                                               "TRANSACTION READ ONLY")));
      const int64_t milliseconds = std::max<int64_t>(
          1, absl::ToInt64Milliseconds(deadline_ - absl::Now()));
      RETURN_IF_ERROR(WithContext(
          what,
          database_
              ->Query("SELECT set_config('statement_timeout', "
                      ":timeout, false)",
                      {SqlParam::Text("timeout", absl::StrCat(milliseconds))})
              .status()));
      RETURN_IF_ERROR(WithContext(what, database_->BeginReadOnly()));
      in_transaction_ = true;
      return absl::OkStatus();
    }
    default:
      RETURN_IF_ERROR(WithContext(what, database_->BeginReadOnly()));
      in_transaction_ = true;
      return absl::OkStatus();
  }
}

absl::Status ReadOnlySession::Classify(const absl::Status& status) const {
  if (status.ok()) return status;
  if (cancelled_.load()) {
    return absl::CancelledError(
        absl::StrCat("cancelled (", status.message(), ")"));
  }
  if (absl::Now() >= deadline_ || IsTimeout(status.message()) ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        absl::StrCat("stopped at its deadline (", status.message(), ")"));
  }
  if (IsWriteRefusal(status.message())) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refused: a read-only query may not write (", status.message(), ")"));
  }
  return status;
}

absl::StatusOr<OperationResult> ReadOnlySession::Run(
    const bundle::Bundle& bundle, const std::string& name,
    const std::map<std::string, std::string>& arguments, size_t max_rows) {
  if (cancelled_.load()) return absl::CancelledError("cancelled");
  ASSIGN_OR_RETURN(v1::Dialect dialect, BundleDialect(bundle, *database_));
  ASSIGN_OR_RETURN(BoundOperation operation,
                   BoundOperation::Bind(bundle, name, arguments, dialect));
  absl::StatusOr<OperationResult> result =
      RunBoundOperation(*database_, operation, max_rows);
  if (!result.ok()) return Classify(result.status());
  // Where the statement could not be interrupted (ODBC), a cancelled read
  // still ends cancelled: nobody wants its rows any more.
  if (cancelled_.load()) return absl::CancelledError("cancelled");
  return result;
}

absl::StatusOr<QueryResult> ReadOnlySession::Query(
    const std::string& sql, const std::vector<SqlParam>& params) {
  if (cancelled_.load()) return absl::CancelledError("cancelled");
  absl::StatusOr<QueryResult> result = database_->Query(sql, params);
  if (!result.ok()) return Classify(result.status());
  return result;
}

void ReadOnlySession::Cancel() {
  cancelled_.store(true);
  database_->Interrupt();
}

}  // namespace ecliptix::agent
