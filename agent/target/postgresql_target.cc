#include "agent/target/postgresql_target.h"

#include <libpq-fe.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sql/session.h"
#include "soci/postgresql/soci-postgresql.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// PostgreSQL's query_canceled: both statement_timeout and PQcancel.
constexpr char kQueryCanceled[] = "57014";

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// The primary message of a PostgreSQL error, with its detail and hint: the
// full message also repeats "ERROR:" and a caret diagram over several lines.
std::string PostgresqlMessage(const PGresult* result, PGconn* connection) {
  const char* primary =
      result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary == nullptr)
    return ::ecliptix::sql::OneLine(PQerrorMessage(connection));
  std::string message = primary;
  if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) {
    absl::StrAppend(&message, " (", detail, ")");
  }
  if (const char* hint = PQresultErrorField(result, PG_DIAG_MESSAGE_HINT)) {
    absl::StrAppend(&message, "; hint: ", hint);
  }
  return ::ecliptix::sql::OneLine(message);
}

}  // namespace

PostgresqlTarget::PostgresqlTarget(std::unique_ptr<soci::session> session,
                                   std::string redacted_url)
    : SociTarget(v1::CONNECTOR_LIBPQ, std::move(session),
                 std::move(redacted_url)),
      connection_(static_cast<soci::postgresql_session_backend*>(
                      this->session().get_backend())
                      ->conn_) {}

PostgresqlTarget::~PostgresqlTarget() {
  absl::MutexLock lock(&cancel_mutex_);
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
}

absl::StatusOr<std::unique_ptr<Target>> PostgresqlTarget::Open(
    std::unique_ptr<soci::session> session, std::string redacted_url) {
  auto target = absl::WrapUnique(
      new PostgresqlTarget(std::move(session), std::move(redacted_url)));
  target->engine_ = v1::ENGINE_POSTGRESQL;
  if (absl::Status status = target->ReadVersion("SHOW server_version");
      !status.ok()) {
    return status;
  }
  PQsetNoticeReceiver(target->connection_, &PostgresqlTarget::NoticeReceiver,
                      target.get());
  {
    absl::MutexLock lock(&target->cancel_mutex_);
    target->cancel_ = PQgetCancel(target->connection_);
  }
  return std::unique_ptr<Target>(std::move(target));
}

void PostgresqlTarget::NoticeReceiver(void* target, const PGresult* notice) {
  // "NOTICE: message", from the fields: libpq's formatted text pads the
  // severity and ends with a newline.
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY);
  const char* primary = PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY);
  std::string text =
      primary != nullptr
          ? absl::StrCat(severity != nullptr ? severity : "NOTICE", ": ",
                         ::ecliptix::sql::OneLine(primary))
          : ::ecliptix::sql::OneLine(PQresultErrorMessage(notice));
  static_cast<PostgresqlTarget*>(target)->Notice(text);
}

void PostgresqlTarget::Interrupt() {
  absl::MutexLock lock(&cancel_mutex_);
  if (cancel_ != nullptr) {
    char error[256];
    PQcancel(cancel_, error, sizeof(error));
  }
}

void PostgresqlTarget::SetLimits(absl::Time deadline,
                                 const std::atomic<bool>* cancelled,
                                 bool in_transaction) {
  deadline_ = deadline;
  in_transaction_ = in_transaction;
  limited_ = true;
  if (!in_transaction) {
    // A session-wide statement_timeout outlives the step: remember it.
    PgResult result(PQexec(connection_, "SHOW statement_timeout"));
    saved_statement_timeout_ =
        PQresultStatus(result.get()) == PGRES_TUPLES_OK &&
                PQntuples(result.get()) > 0
            ? PQgetvalue(result.get(), 0, 0)
            : "0";
  }
}

void PostgresqlTarget::ClearLimits() {
  if (limited_ && !in_transaction_) {
    const char* values[] = {saved_statement_timeout_.c_str()};
    PgResult result(PQexecParams(
        connection_, "SELECT set_config('statement_timeout', $1, false)", 1,
        nullptr, values, nullptr, nullptr, 0));
  }
  limited_ = false;
  deadline_ = absl::InfiniteFuture();
}

absl::Status PostgresqlTarget::SetStatementTimeout(absl::Duration timeout,
                                                   bool local) {
  const std::string milliseconds =
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)));
  const char* values[] = {milliseconds.c_str(), local ? "true" : "false"};
  PgResult result(PQexecParams(
      connection_, "SELECT set_config('statement_timeout', $1, $2::boolean)", 2,
      nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    return absl::UnavailableError(
        absl::StrCat("setting statement_timeout: ",
                     PostgresqlMessage(result.get(), connection_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PostgresqlTarget::RunStatement(const std::string& sql,
                                                       SqlError* error) {
  if (limited_ && deadline_ != absl::InfiniteFuture()) {
    // statement_timeout is per statement; giving each statement what is left
    // of the step's time makes it a limit on the whole step.
    if (absl::Status status =
            SetStatementTimeout(deadline_ - absl::Now(), in_transaction_);
        !status.ok()) {
      error->message = std::string(status.message());
      return absl::Status(PQstatus(connection_) == CONNECTION_BAD
                              ? absl::StatusCode::kUnavailable
                              : absl::StatusCode::kUnknown,
                          error->message);
    }
  }
  // The simple query protocol: the text goes to the server as written (no
  // parameter markers to rewrite), and DO blocks, functions and COPY-free
  // scripts all run.
  PgResult result(PQexec(connection_, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
      status == PGRES_EMPTY_QUERY) {
    int64_t rows = 0;
    if (!absl::SimpleAtoi(PQcmdTuples(result.get()), &rows)) rows = 0;
    // A SELECT "affects" the rows it returns; only changes count here.
    if (status == PGRES_TUPLES_OK) rows = 0;
    return rows;
  }
  if (const char* state =
          result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE)
                 : nullptr) {
    error->sql_state = state;
  }
  error->message = PostgresqlMessage(result.get(), connection_);
  if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
      status == PGRES_COPY_BOTH) {
    error->message = "COPY FROM STDIN / TO STDOUT cannot run in a step";
    return absl::InvalidArgumentError(error->message);
  }
  if (PQstatus(connection_) == CONNECTION_BAD) {
    return absl::UnavailableError(error->message);
  }
  if (error->sql_state == kQueryCanceled) {
    // Our statement_timeout (set to the step's remaining time) or a PQcancel.
    return absl::Status(absl::StrContains(error->message, "statement timeout")
                            ? absl::StatusCode::kDeadlineExceeded
                            : absl::StatusCode::kCancelled,
                        error->message);
  }
  return absl::Status(CodeForSqlState(error->sql_state), error->message);
}

absl::StatusOr<std::optional<std::string>> PostgresqlTarget::RunScalar(
    const std::string& query, SqlError* error) {
  PgResult result(PQexec(connection_, query.c_str()));
  if (PQresultStatus(result.get()) == PGRES_TUPLES_OK) {
    if (PQntuples(result.get()) == 0 || PQnfields(result.get()) == 0 ||
        PQgetisnull(result.get(), 0, 0)) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(PQgetvalue(result.get(), 0, 0));
  }
  if (const char* state =
          result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE)
                 : nullptr) {
    error->sql_state = state;
  }
  error->message = PostgresqlMessage(result.get(), connection_);
  if (PQresultStatus(result.get()) == PGRES_COMMAND_OK) {
    error->message = "the query returned no rows (is it a SELECT?)";
    return absl::InvalidArgumentError(error->message);
  }
  if (error->sql_state == kQueryCanceled) {
    return absl::CancelledError(error->message);
  }
  return absl::Status(CodeForSqlState(error->sql_state), error->message);
}

absl::StatusOr<ToolConnection> PostgresqlTarget::ConnectionForTools() {
  PQconninfoOption* options = PQconninfo(connection_);
  if (options == nullptr) {
    return absl::ResourceExhaustedError(
        "out of memory reading the connection's parameters");
  }
  // Values equal to libpq's defaults (which include the PG* environment the
  // child inherits) are left out: a shorter command line, and no keyword an
  // older pg_dump might not know.
  absl::flat_hash_map<std::string, std::string> defaults;
  if (PQconninfoOption* default_options = PQconndefaults()) {
    for (PQconninfoOption* option = default_options; option->keyword != nullptr;
         ++option) {
      if (option->val != nullptr) defaults[option->keyword] = option->val;
    }
    PQconninfoFree(default_options);
  }
  ToolConnection described;
  for (PQconninfoOption* option = options; option->keyword != nullptr;
       ++option) {
    if (option->val == nullptr || option->val[0] == '\0') continue;
    const absl::string_view keyword = option->keyword;
    if (keyword == "password") {
      described.password = option->val;
      continue;
    }
    if (auto it = defaults.find(keyword);
        it != defaults.end() && it->second == option->val) {
      continue;
    }
    described.parameters.emplace_back(option->keyword, option->val);
  }
  PQconninfoFree(options);
  return described;
}

}  // namespace ecliptix::agent
