// The agent's own statements over SOCI, shared by the three targets.
#include "agent/target/soci_target.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/target/row_text.h"
#include "common/sql/session.h"

namespace ecliptix::agent {
namespace {

// Copies of the parameters' values, at stable addresses for SOCI's use
// elements, bound to `statement`.
class Bindings {
 public:
  Bindings(soci::statement& statement, const std::vector<SqlParam>& params) {
    for (const SqlParam& param : params) {
      Value& value = values_.emplace_back();
      switch (param.type) {
        case SqlParam::Type::kInt:
          value.integer = param.integer;
          statement.exchange(soci::use(value.integer, param.name));
          break;
        case SqlParam::Type::kBool:
          value.boolean = param.integer != 0 ? 1 : 0;
          statement.exchange(soci::use(value.boolean, param.name));
          break;
        case SqlParam::Type::kText:
          value.text = param.text;
          value.indicator = param.null ? soci::i_null : soci::i_ok;
          statement.exchange(
              soci::use(value.text, value.indicator, param.name));
          break;
      }
    }
  }

 private:
  struct Value {
    std::string text;
    soci::indicator indicator = soci::i_ok;
    long long integer = 0;
    int boolean = 0;
  };
  std::deque<Value> values_;
};

template <typename Body>
absl::Status Run(Body&& body) {
  try {
    body();
    return absl::OkStatus();
  } catch (const std::exception& error) {
    return SociErrorToStatus(error);
  }
}

}  // namespace

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (state == "42501") return absl::StatusCode::kPermissionDenied;
  if (state == "P0001") return absl::StatusCode::kFailedPrecondition;
  const absl::string_view klass = state.substr(0, 2);
  if (klass == "08") return absl::StatusCode::kUnavailable;
  if (klass == "23") return absl::StatusCode::kFailedPrecondition;
  if (klass == "40") return absl::StatusCode::kAborted;
  if (klass == "42" || klass == "22") return absl::StatusCode::kInvalidArgument;
  if (klass == "53") return absl::StatusCode::kResourceExhausted;
  return absl::StatusCode::kUnknown;
}

absl::Status SociErrorToStatus(const std::exception& error) {
  const absl::Status classified = ::ecliptix::sql::SqlErrorToStatus(error, "");
  return absl::Status(classified.code(),
                      ::ecliptix::sql::DatabaseMessage(error));
}

SociTarget::SociTarget(fleet::v1::Connector connector,
                       std::unique_ptr<soci::session> session,
                       std::string redacted_url)
    : Target(connector, std::move(redacted_url)),
      session_(std::move(session)) {}

absl::Status SociTarget::Execute(const std::string& sql,
                                 const std::vector<SqlParam>& params,
                                 int64_t* rows_affected) {
  return Run([&] {
    soci::statement statement(*session_);
    Bindings bindings(statement, params);
    statement.alloc();
    statement.prepare(sql);
    statement.define_and_bind();
    BeforeExecute(statement);
    statement.execute(true);
    if (rows_affected != nullptr) {
      *rows_affected = std::max(0LL, statement.get_affected_rows());
    }
  });
}

absl::StatusOr<QueryResult> SociTarget::Query(
    const std::string& sql, const std::vector<SqlParam>& params) {
  return QueryAtMost(sql, params, std::numeric_limits<size_t>::max());
}

absl::StatusOr<QueryResult> SociTarget::QueryAtMost(
    const std::string& sql, const std::vector<SqlParam>& params,
    size_t max_rows) {
  QueryResult result;
  absl::Status status = Run([&] {
    soci::row row;
    soci::statement statement(*session_);
    Bindings bindings(statement, params);
    statement.exchange(soci::into(row));
    statement.alloc();
    statement.prepare(sql);
    statement.define_and_bind();
    BeforeExecute(statement);
    bool got = statement.execute(true);
    if (row.size() == 0) {
      result.rows_affected = std::max(0LL, statement.get_affected_rows());
      return;
    }
    result.columns = ColumnNames(row);
    while (got) {
      if (result.rows.size() < max_rows) {
        SqlRow& text = result.rows.emplace_back();
        text.values = RowText(row, &text.nulls);
      } else {
        ++result.rows_left_out;
      }
      got = statement.fetch();
    }
  });
  if (!status.ok()) return status;
  return result;
}

absl::Status SociTarget::Begin() {
  return Run([&] { session_->begin(); });
}

absl::Status SociTarget::Commit() {
  return Run([&] { session_->commit(); });
}

absl::Status SociTarget::Rollback() {
  return Run([&] { session_->rollback(); });
}

absl::Status SociTarget::ReadVersion(const char* query) {
  const std::string what =
      absl::StrCat("detecting the engine of ", redacted_url());
  std::string version;
  absl::Status status = Run([&] { *session_ << query, soci::into(version); });
  if (!status.ok()) return WithContext(what, status);
  // SQL Server's @@VERSION spans several lines; the first names the product and
  // version.
  engine_version_ = ::ecliptix::sql::FirstLine(version);
  if (engine_version_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": the database reported an empty version"));
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
