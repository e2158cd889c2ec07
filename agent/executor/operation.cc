#include "agent/executor/operation.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/sql/splitter.h"
#include "common/bundle/manifest_rules.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

bool IsIdentifierChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// Whether `text` names the parameter `:name` (not "::name", a PostgreSQL cast,
// nor ":names"). Only parameters a statement names are bound to it.
bool UsesParameter(absl::string_view text, absl::string_view name) {
  const std::string marker = absl::StrCat(":", name);
  for (size_t at = text.find(marker); at != absl::string_view::npos;
       at = text.find(marker, at + 1)) {
    const size_t after = at + marker.size();
    if (at > 0 && text[at - 1] == ':') continue;
    if (after < text.size() && IsIdentifierChar(text[after])) continue;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<v1::Dialect> BundleDialect(const bundle::Bundle& bundle,
                                          const Target& database) {
  const v1::Dialect dialect = bundle::DialectForEngine(database.engine());
  if (dialect == v1::DIALECT_UNSPECIFIED) {
    return absl::FailedPreconditionError(
        absl::StrCat("the engine of ", database.redacted_url(),
                     " has no SQL dialect the agent knows"));
  }
  for (int supported : bundle.manifest().dialects()) {
    if (supported == dialect) return dialect;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "bundle ", bundle.manifest().name(), " ", bundle.manifest().version(),
      " has no SQL for ", bundle::DialectName(dialect), ", the dialect of ",
      database.redacted_url()));
}

absl::StatusOr<BoundOperation> BoundOperation::Bind(
    const bundle::Bundle& bundle, const std::string& name,
    const std::map<std::string, std::string>& arguments, v1::Dialect dialect) {
  const v1::Operation* operation = bundle.FindOperation(name);
  if (operation == nullptr) {
    return absl::NotFoundError(absl::StrCat("bundle ", bundle.manifest().name(),
                                            " has no operation \"", name,
                                            "\""));
  }
  RETURN_IF_ERROR(bundle::CheckArguments(*operation, arguments));
  const std::string& text = bundle::SqlFor(operation->sql(), dialect);
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "operation ", name, " has no SQL for ", bundle::DialectName(dialect)));
  }

  // Every parameter with its value (a parameter left out takes its declared
  // default), typed as declared; CheckArguments has checked the types.
  std::vector<SqlParam> params;
  BoundOperation bound;
  bound.operation_ = operation;
  for (const v1::OperationParameter& parameter : operation->parameters()) {
    auto it = arguments.find(parameter.name());
    const std::string value =
        it != arguments.end() ? it->second : parameter.default_value();
    bound.values_.push_back(value);
    if (parameter.type() == "int") {
      int64_t integer = 0;
      if (!absl::SimpleAtoi(value, &integer)) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter \"", parameter.name(), "\" of operation ",
                         name, " is int; its default is not one"));
      }
      params.push_back(SqlParam::Int(parameter.name(), integer));
    } else if (parameter.type() == "bool") {
      bool boolean = false;
      if (!absl::SimpleAtob(value, &boolean)) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter \"", parameter.name(), "\" of operation ",
                         name, " is bool; its default is not one"));
      }
      params.push_back(SqlParam::Bool(parameter.name(), boolean));
    } else {
      // Decimals are bound as text so that no digit is lost to a double.
      params.push_back(SqlParam::Text(parameter.name(), value));
    }
  }

  absl::StatusOr<std::vector<sql::Statement>> statements =
      sql::SplitStatements(dialect, text);
  if (!statements.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("operation ", name, ": ", statements.status().message()));
  }
  if (statements->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("operation ", name, " has no statements"));
  }
  for (const sql::Statement& statement : *statements) {
    Statement& bound_statement = bound.statements_.emplace_back();
    bound_statement.text = statement.text;
    for (const SqlParam& param : params) {
      if (UsesParameter(statement.text, param.name))
        bound_statement.params.push_back(param);
    }
  }
  return bound;
}

absl::Status BoundOperation::Redact(const absl::Status& status) const {
  std::string message(status.message());
  for (const std::string& value : values_) {
    if (value.size() < 4) continue;
    message = absl::StrReplaceAll(message, {{value, "***"}});
  }
  return absl::Status(status.code(), message);
}

absl::StatusOr<OperationResult> RunBoundOperation(
    Target& database, const BoundOperation& operation, size_t max_rows) {
  OperationResult result;
  const std::vector<BoundOperation::Statement>& statements =
      operation.statements();
  for (size_t i = 0; i < statements.size(); ++i) {
    const BoundOperation::Statement& statement = statements[i];
    absl::Status status;
    if (i + 1 == statements.size()) {
      absl::StatusOr<QueryResult> rows =
          database.QueryAtMost(statement.text, statement.params, max_rows);
      status = rows.status();
      if (rows.ok() && !rows->columns.empty()) {
        result.columns = std::move(rows->columns);
        result.rows_left_out = rows->rows_left_out;
        for (SqlRow& row : rows->rows) {
          result.rows.push_back(std::move(row.values));
          result.nulls.push_back(std::move(row.nulls));
        }
      } else if (rows.ok()) {
        result.rows_affected += rows->rows_affected;
      }
    } else {
      int64_t changed = 0;
      status = database.Execute(statement.text, statement.params, &changed);
      result.rows_affected += changed;
    }
    if (!status.ok()) {
      return operation.Redact(
          WithContext(absl::StrCat("operation ", operation.operation().name(),
                                   ", statement ", i + 1),
                      status));
    }
  }
  return result;
}

}  // namespace ecliptix::agent
