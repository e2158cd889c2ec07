#include "agent/metrics/operation_calls.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/executor/call_log.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kUnreported[] =
    "SELECT operation, minute_start, calls, failures, reported_calls, "
    "reported_failures FROM ecliptix_operation_calls "
    "WHERE calls > reported_calls OR failures > reported_failures";
// The counts read become the reported ones; calls counted since stay
// unreported for the next run.
constexpr char kMarkReported[] =
    "UPDATE ecliptix_operation_calls SET reported_calls = :calls, "
    "reported_failures = :failures WHERE operation = :operation AND "
    "minute_start = :minute_start AND reported_calls = :old_calls AND "
    "reported_failures = :old_failures";
constexpr char kPrune[] =
    "DELETE FROM ecliptix_operation_calls WHERE minute_start < :before AND "
    "calls = reported_calls AND failures = reported_failures";

absl::StatusOr<int64_t> Integer(const SqlRow& row, int column) {
  int64_t value = 0;
  if (row.nulls[column] || !absl::SimpleAtoi(row.values[column], &value)) {
    return absl::DataLossError(absl::StrCat("table ", kOperationCallTable,
                                            " holds \"", row.values[column],
                                            "\" where a count belongs"));
  }
  return value;
}

struct Delta {
  int64_t calls = 0;
  int64_t failures = 0;
};

absl::StatusOr<std::map<std::string, Delta>> MarkReported(Target& database,
                                                          absl::Time now) {
  absl::StatusOr<QueryResult> rows = database.Query(kUnreported);
  RETURN_IF_ERROR(WithContext(
      absl::StrCat("reading table ", kOperationCallTable), rows.status()));
  std::map<std::string, Delta> deltas;
  for (const SqlRow& row : rows->rows) {
    if (row.values.size() < 6 || row.nulls[0]) {
      return absl::DataLossError(absl::StrCat(
          "table ", kOperationCallTable, " has a row without an operation"));
    }
    ASSIGN_OR_RETURN(int64_t minute_start, Integer(row, 1));
    ASSIGN_OR_RETURN(int64_t calls, Integer(row, 2));
    ASSIGN_OR_RETURN(int64_t failures, Integer(row, 3));
    ASSIGN_OR_RETURN(int64_t reported_calls, Integer(row, 4));
    ASSIGN_OR_RETURN(int64_t reported_failures, Integer(row, 5));
    int64_t updated = 0;
    RETURN_IF_ERROR(WithContext(
        absl::StrCat("marking calls reported in ", kOperationCallTable),
        database.Execute(
            kMarkReported,
            {SqlParam::Int("calls", calls), SqlParam::Int("failures", failures),
             SqlParam::Text("operation", row.values[0]),
             SqlParam::Int("minute_start", minute_start),
             SqlParam::Int("old_calls", reported_calls),
             SqlParam::Int("old_failures", reported_failures)},
            &updated)));
    // Another collector reported it meanwhile: its samples carry it.
    if (updated != 1) continue;
    Delta& delta = deltas[row.values[0]];
    delta.calls += calls - reported_calls;
    delta.failures += failures - reported_failures;
  }
  RETURN_IF_ERROR(WithContext(
      absl::StrCat("pruning table ", kOperationCallTable),
      database.Execute(
          kPrune,
          {SqlParam::Int(
              "before", absl::ToUnixSeconds(now - kOperationCallRetention))})));
  return deltas;
}

}  // namespace

absl::StatusOr<std::vector<v1::MetricSample>> CollectOperationCalls(
    Target& database, absl::Time now) {
  OperationCallLog log(&database);
  ASSIGN_OR_RETURN(bool exists, log.Exists());
  if (!exists) return std::vector<v1::MetricSample>();
  RETURN_IF_ERROR(WithContext("beginning a transaction", database.Begin()));
  absl::StatusOr<std::map<std::string, Delta>> deltas =
      MarkReported(database, now);
  absl::Status status = deltas.status();
  if (status.ok()) status = WithContext("committing", database.Commit());
  if (!status.ok()) {
    database.Rollback().IgnoreError();
    return status;
  }
  std::vector<v1::MetricSample> samples;
  const google::protobuf::Timestamp time = ToProtoTimestamp(now);
  for (const auto& [operation, delta] : *deltas) {
    for (const auto& [metric, value] :
         {std::make_pair(kOperationCallsMetric, delta.calls),
          std::make_pair(kOperationFailuresMetric, delta.failures)}) {
      v1::MetricSample& sample = samples.emplace_back();
      sample.set_metric(metric);
      (*sample.mutable_labels())["operation"] = operation;
      sample.set_value(static_cast<double>(value));
      sample.set_kind(v1::METRIC_KIND_DELTA);
      *sample.mutable_time() = time;
    }
  }
  return samples;
}

}  // namespace ecliptix::agent
