// A named operation of a bundle bound to its arguments for one dialect: its
// statements, each with the parameters it names, typed as declared. Shared by
// the executor (which runs an operation in a transaction that commits) and
// read-only sessions (in one that is always rolled back), so both check and
// bind arguments the same way (bundle::CheckArguments).
#ifndef ECLIPTIX_AGENT_EXECUTOR_OPERATION_H_
#define ECLIPTIX_AGENT_EXECUTOR_OPERATION_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"
#include "ecliptix/fleet/v1/bundle.pb.h"

namespace ecliptix::agent {

// What an operation returned: the last statement's rows, every value as text.
struct OperationResult {
  std::vector<std::string> columns;
  // NULL is "" here, with nulls[row][column] set.
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<bool>> nulls;
  // Rows changed by statements that return no rows.
  int64_t rows_affected = 0;
  // Rows of the result left out by a row limit (RunBoundOperation).
  int64_t rows_left_out = 0;
};

// The dialect of `bundle` for the engine of `database`: FAILED_PRECONDITION
// when the bundle has no SQL for it.
absl::StatusOr<fleet::v1::Dialect> BundleDialect(const bundle::Bundle& bundle,
                                                 const Target& database);

class BoundOperation {
 public:
  struct Statement {
    std::string text;
    std::vector<SqlParam> params;
  };

  // NOT_FOUND for an operation the bundle does not have; INVALID_ARGUMENT
  // from bundle::CheckArguments, or for SQL the splitter cannot split;
  // FAILED_PRECONDITION when the operation has no SQL for `dialect`.
  static absl::StatusOr<BoundOperation> Bind(
      const bundle::Bundle& bundle, const std::string& name,
      const std::map<std::string, std::string>& arguments,
      fleet::v1::Dialect dialect);

  const fleet::v1::Operation& operation() const { return *operation_; }
  const std::vector<Statement>& statements() const { return statements_; }

  // `status` without the bound values: a database's own message can quote a
  // value (PostgreSQL: `invalid input syntax for type integer: "..."`), and a
  // value may be a secret. Values of four characters or more are shown as
  // *** (shorter ones are no secret and would mangle the text).
  absl::Status Redact(const absl::Status& status) const;

 private:
  BoundOperation() = default;

  const fleet::v1::Operation* operation_ = nullptr;
  std::vector<Statement> statements_;
  std::vector<std::string> values_;
};

// Runs the statements in order on `database`, in whatever transaction the
// caller opened; returns the last one's rows, keeping at most `max_rows`.
// Failures say which statement and never quote a bound value.
absl::StatusOr<OperationResult> RunBoundOperation(
    Target& database, const BoundOperation& operation,
    size_t max_rows = std::numeric_limits<size_t>::max());

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_OPERATION_H_
