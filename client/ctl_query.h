// ecliptixctl's `query` noun: list the read-only queries a bundle declares,
// and run one across the fleet, its rows printed as they arrive, each tagged
// with its database, as an aligned table, CSV (RFC 4180) or JSON lines, then
// a summary per database and in all. The flag parsers and QueryOutput are
// exposed so that they are tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_QUERY_H_
#define ECLIPTIX_CLIENT_CTL_QUERY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/query_service.pb.h"

namespace ecliptix::client::ctl {

enum class QueryFormat { kTable, kJson, kCsv };

// "table", "json" or "csv"; a usage error otherwise.
absl::StatusOr<QueryFormat> ParseQueryFormat(absl::string_view text);

// The --arg values as the parser joins them ("Minutes=5,ConfigKey=a.b"):
// NAME=VALUE pairs. A new pair starts at a comma followed by NAME=, so a
// value may hold commas (not ",NAME=" itself). A usage error for a pair
// without "=" or a name given twice.
absl::StatusOr<std::map<std::string, std::string>> ParseQueryArguments(
    absl::string_view joined);

// One CSV field as RFC 4180 writes it: quoted (quotes doubled) when it holds
// a comma, a quote, CR or LF, or is empty; as is otherwise. A NULL is the
// empty unquoted field (see CsvRow), so NULL and '' stay apart.
std::string CsvField(absl::string_view text);

// One JSON string literal (quotes included).
std::string JsonString(absl::string_view text);

// Prints a query's answer as it streams in. Table: rows are buffered and
// printed in blocks (when `table_block_rows` are waiting, the columns change,
// the stream goes quiet (Idle), or at the end), column widths from the rows
// seen so far; the summary
// follows on `out`. CSV: a header "DATABASE,<columns>" (again whenever the
// columns change), a line per row (CRLF, as RFC 4180 says), the summary on
// `err` so that `out` stays CSV. JSON: one object per line on `out`:
//   {"database_id":"db-1","columns":{"TableName":"AuditLog","RecordCount":"3"}}
//   {"database_id":"db-1","summary":{"code":"OK","error":"","rows":1,
//    "rows_truncated":0}}
//   {"rollout_id":"r-3","databases":20,"ok":19,"failed":0,"timed_out":1,
//    "offline":0,"no_answer":0,"rows":57,"rows_truncated":0}   (last line)
// values are strings as the database printed them, null for NULL.
class QueryOutput {
 public:
  QueryOutput(QueryFormat format, std::ostream& out, std::ostream& err,
              size_t table_block_rows = 500);

  // One message of the stream, received at `now`.
  void Add(const fleet::v1::QueryResult& result, absl::Time now = absl::Now());
  // Table only, called now and then while the stream is open: prints the
  // rows waiting once nothing came for `quiet`, so that the databases that
  // answered show while slower ones are waited for.
  void Idle(absl::Time now, absl::Duration quiet = absl::Milliseconds(500));
  // The stream is over: prints what waits and the summary.
  void Finish();
  // Every database of the query answered OK (rows truncated by the limit
  // still count as an answer).
  bool AllAnswered() const;
  // The query started (QueryStarted came): there is something to summarize.
  bool started() const { return started_; }

 private:
  struct Row {
    std::string database_id;
    std::vector<std::string> values;
    std::vector<bool> nulls;
  };
  void AddRows(const fleet::v1::TargetQueryRows& rows);
  void FlushTable();
  void PrintSummary();

  const QueryFormat format_;
  std::ostream& out_;
  std::ostream& err_;
  const size_t table_block_rows_;

  bool started_ = false;
  std::string rollout_id_;
  std::vector<std::string> database_ids_;
  std::map<std::string, fleet::v1::QueryDatabaseSummary> summaries_;
  int64_t rows_ = 0;
  // The columns of the last header printed, and (table) their widths.
  std::vector<std::string> columns_;
  bool header_printed_ = false;
  std::vector<size_t> widths_;
  // Table rows waiting to be printed, with the columns they belong to.
  std::vector<Row> pending_;
  std::vector<std::string> pending_columns_;
  absl::Time last_added_ = absl::InfinitePast();
};

// The noun's entry in the command table.
NounSpec QueryNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_QUERY_H_
