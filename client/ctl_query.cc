#include "client/ctl_query.h"

#include <algorithm>
#include <climits>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/ctl_format.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

constexpr char kNullText[] = "NULL";

// A parameter name as bundles declare them, followed by "=": where a new
// --arg pair starts.
bool StartsPair(absl::string_view text) {
  size_t i = 0;
  while (i < text.size() &&
         (absl::ascii_isalnum(text[i]) || text[i] == '_' || text[i] == '.')) {
    ++i;
  }
  return i > 0 && i < text.size() && text[i] == '=' &&
         !absl::ascii_isdigit(text[0]);
}

// Cells separated by three spaces, each padded to its width, no trailing
// spaces (like AlignedTable, with widths kept across blocks).
std::string TableLine(const std::vector<std::string>& cells,
                      const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size()) {
      line += std::string(widths[i] - cells[i].size() + 3, ' ');
    }
  }
  // An empty last cell would leave the padding of the one before it.
  return std::string(absl::StripTrailingAsciiWhitespace(line));
}

// Counts of the summaries by outcome.
struct Totals {
  int ok = 0;
  int failed = 0;
  int timed_out = 0;
  int offline = 0;
  int no_answer = 0;
  int64_t truncated = 0;
};

}  // namespace

absl::StatusOr<QueryFormat> ParseQueryFormat(absl::string_view text) {
  const std::string format = absl::AsciiStrToLower(text);
  if (format == "table") return QueryFormat::kTable;
  if (format == "json") return QueryFormat::kJson;
  if (format == "csv") return QueryFormat::kCsv;
  return CommandUsageError(absl::StrCat("flag --format: unknown format \"",
                                        text, "\"; use table, json or csv"));
}

absl::StatusOr<std::map<std::string, std::string>> ParseQueryArguments(
    absl::string_view joined) {
  std::map<std::string, std::string> arguments;
  if (joined.empty()) return arguments;
  // Split at the commas that start a new NAME=.
  std::vector<std::string> pairs;
  size_t start = 0;
  for (size_t i = 0; i < joined.size(); ++i) {
    if (joined[i] == ',' && StartsPair(joined.substr(i + 1))) {
      pairs.emplace_back(joined.substr(start, i - start));
      start = i + 1;
    }
  }
  pairs.emplace_back(joined.substr(start));
  for (const std::string& pair : pairs) {
    const size_t equals = pair.find('=');
    if (equals == std::string::npos || equals == 0) {
      return CommandUsageError(absl::StrCat(
          "flag --arg wants NAME=VALUE (a parameter of the query, see "
          "'ecliptixctl query list'), got \"",
          pair, "\""));
    }
    const std::string name = pair.substr(0, equals);
    if (!arguments.emplace(name, pair.substr(equals + 1)).second) {
      return CommandUsageError(
          absl::StrCat("flag --arg: ", name, " is given twice"));
    }
  }
  return arguments;
}

std::string CsvField(absl::string_view text) {
  if (!text.empty() && text.find_first_of(",\"\r\n") == absl::string_view::npos)
    return std::string(text);
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "\"\""}}), "\"");
}

std::string JsonString(absl::string_view text) {
  std::string json = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        json += "\\\"";
        break;
      case '\\':
        json += "\\\\";
        break;
      case '\n':
        json += "\\n";
        break;
      case '\r':
        json += "\\r";
        break;
      case '\t':
        json += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(
              &json, "\\u%04x",
              static_cast<int>(static_cast<unsigned char>(c)));
        } else {
          json += c;
        }
    }
  }
  return json + "\"";
}

QueryOutput::QueryOutput(QueryFormat format, std::ostream& out,
                         std::ostream& err, size_t table_block_rows)
    : format_(format),
      out_(out),
      err_(err),
      table_block_rows_(std::max<size_t>(1, table_block_rows)) {}

void QueryOutput::Add(const v1::QueryResult& result, absl::Time now) {
  last_added_ = now;
  switch (result.kind_case()) {
    case v1::QueryResult::kStarted:
      started_ = true;
      rollout_id_ = result.started().rollout_id();
      database_ids_.assign(result.started().database_ids().begin(),
                           result.started().database_ids().end());
      break;
    case v1::QueryResult::kRows:
      AddRows(result.rows());
      break;
    case v1::QueryResult::kSummary: {
      const v1::QueryDatabaseSummary& summary = result.summary();
      summaries_[summary.database_id()] = summary;
      if (format_ == QueryFormat::kJson) {
        out_ << "{\"database_id\":" << JsonString(summary.database_id())
             << ",\"summary\":{\"code\":" << JsonString(summary.code())
             << ",\"error\":" << JsonString(summary.error())
             << ",\"rows\":" << summary.rows()
             << ",\"rows_truncated\":" << summary.rows_truncated() << "}}\n";
      }
      break;
    }
    default:
      break;
  }
}

void QueryOutput::AddRows(const v1::TargetQueryRows& rows) {
  const std::vector<std::string> columns(rows.rows().columns().begin(),
                                         rows.rows().columns().end());
  rows_ += rows.rows().rows_size();
  switch (format_) {
    case QueryFormat::kCsv: {
      if (rows.rows().rows().empty()) return;
      if (!header_printed_ || columns != columns_) {
        std::vector<std::string> header = {"DATABASE"};
        header.insert(header.end(), columns.begin(), columns.end());
        out_ << absl::StrJoin(header, ",",
                              [](std::string* line, const std::string& cell) {
                                line->append(CsvField(cell));
                              })
             << "\r\n";
        columns_ = columns;
        header_printed_ = true;
      }
      for (const v1::QueryRow& row : rows.rows().rows()) {
        std::string line = CsvField(rows.database_id());
        for (const v1::QueryValue& value : row.values()) {
          line += ",";
          // NULL: the empty unquoted field; '' is "".
          if (!value.null_value()) line += CsvField(value.text());
        }
        out_ << line << "\r\n";
      }
      return;
    }
    case QueryFormat::kJson: {
      for (const v1::QueryRow& row : rows.rows().rows()) {
        std::string line =
            absl::StrCat("{\"database_id\":", JsonString(rows.database_id()),
                         ",\"columns\":{");
        std::set<std::string> used;
        for (int i = 0; i < row.values_size(); ++i) {
          std::string name = i < static_cast<int>(columns.size())
                                 ? columns[i]
                                 : absl::StrCat("column", i + 1);
          // Keys stay unique: a repeated column name gets _2, _3, ...
          for (int n = 2; !used.insert(name).second; ++n) {
            name = absl::StrCat(i < static_cast<int>(columns.size())
                                    ? columns[i]
                                    : absl::StrCat("column", i + 1),
                                "_", n);
          }
          if (i > 0) line += ",";
          absl::StrAppend(&line, JsonString(name), ":",
                          row.values(i).null_value()
                              ? std::string("null")
                              : JsonString(row.values(i).text()));
        }
        out_ << line << "}}\n";
      }
      return;
    }
    case QueryFormat::kTable: {
      if (rows.rows().rows().empty()) return;
      if (!pending_.empty() && columns != pending_columns_) FlushTable();
      pending_columns_ = columns;
      for (const v1::QueryRow& row : rows.rows().rows()) {
        Row& kept = pending_.emplace_back();
        kept.database_id = rows.database_id();
        for (const v1::QueryValue& value : row.values()) {
          kept.values.push_back(value.null_value() ? kNullText : value.text());
          kept.nulls.push_back(value.null_value());
        }
      }
      if (pending_.size() >= table_block_rows_) FlushTable();
      return;
    }
  }
}

void QueryOutput::FlushTable() {
  if (pending_.empty()) return;
  std::vector<std::string> header = {"DATABASE"};
  header.insert(header.end(), pending_columns_.begin(), pending_columns_.end());
  size_t cells = header.size();
  for (const Row& row : pending_)
    cells = std::max(cells, row.values.size() + 1);
  const bool new_header = !header_printed_ || pending_columns_ != columns_;
  if (new_header) {
    widths_.assign(cells, 0);
    // A block of other columns starts a table of its own.
    if (header_printed_) out_ << "\n";
  }
  widths_.resize(std::max(widths_.size(), cells), 0);
  for (size_t i = 0; i < header.size(); ++i)
    widths_[i] = std::max(widths_[i], header[i].size());
  for (const Row& row : pending_) {
    widths_[0] = std::max(widths_[0], row.database_id.size());
    for (size_t i = 0; i < row.values.size(); ++i)
      widths_[i + 1] = std::max(widths_[i + 1], row.values[i].size());
  }
  if (new_header) {
    out_ << TableLine(header, widths_) << "\n";
    columns_ = pending_columns_;
    header_printed_ = true;
  }
  for (const Row& row : pending_) {
    std::vector<std::string> line = {row.database_id};
    line.insert(line.end(), row.values.begin(), row.values.end());
    out_ << TableLine(line, widths_) << "\n";
  }
  pending_.clear();
}

void QueryOutput::Idle(absl::Time now, absl::Duration quiet) {
  if (format_ == QueryFormat::kTable && !pending_.empty() &&
      now - last_added_ >= quiet) {
    FlushTable();
    out_.flush();
  }
}

bool QueryOutput::AllAnswered() const {
  for (const std::string& database_id : database_ids_) {
    auto it = summaries_.find(database_id);
    if (it == summaries_.end() || it->second.code() != "OK") return false;
  }
  return true;
}

void QueryOutput::Finish() {
  if (format_ == QueryFormat::kTable) {
    FlushTable();
    if (!header_printed_) err_ << "No rows.\n";
  }
  PrintSummary();
  out_.flush();
}

void QueryOutput::PrintSummary() {
  Totals totals;
  // The databases that did not answer OK, or whose rows were cut.
  std::vector<std::vector<std::string>> problems = {
      {"DATABASE", "RESULT", "ROWS", "LEFT OUT", "ERROR"}};
  std::vector<std::string> order = database_ids_;
  for (const auto& [database_id, summary] : summaries_) {
    if (std::find(order.begin(), order.end(), database_id) == order.end())
      order.push_back(database_id);
  }
  for (const std::string& database_id : order) {
    auto it = summaries_.find(database_id);
    if (it == summaries_.end()) {
      ++totals.no_answer;
      problems.push_back({database_id, "NO ANSWER", "-", "-",
                          "the query ended before this database answered"});
      continue;
    }
    const v1::QueryDatabaseSummary& summary = it->second;
    totals.truncated += summary.rows_truncated();
    if (summary.code() == "OK") {
      ++totals.ok;
    } else if (summary.code() == "DEADLINE_EXCEEDED") {
      ++totals.timed_out;
    } else if (summary.code() == "UNAVAILABLE") {
      ++totals.offline;
    } else {
      ++totals.failed;
    }
    if (summary.code() != "OK" || summary.rows_truncated() > 0) {
      problems.push_back({database_id, summary.code(),
                          absl::StrCat(summary.rows()),
                          absl::StrCat(summary.rows_truncated()),
                          absl::StrReplaceAll(summary.error(), {{"\n", " "}})});
    }
  }
  if (format_ == QueryFormat::kJson) {
    out_ << "{\"rollout_id\":" << JsonString(rollout_id_)
         << ",\"databases\":" << order.size() << ",\"ok\":" << totals.ok
         << ",\"failed\":" << totals.failed
         << ",\"timed_out\":" << totals.timed_out
         << ",\"offline\":" << totals.offline
         << ",\"no_answer\":" << totals.no_answer << ",\"rows\":" << rows_
         << ",\"rows_truncated\":" << totals.truncated << "}\n";
    return;
  }
  std::ostream& summary = format_ == QueryFormat::kCsv ? err_ : out_;
  if (format_ == QueryFormat::kTable && header_printed_) summary << "\n";
  if (problems.size() > 1) summary << AlignedTable(problems);
  std::vector<std::string> parts = {absl::StrCat(totals.ok, " ok")};
  if (totals.failed > 0)
    parts.push_back(absl::StrCat(totals.failed, " failed"));
  if (totals.timed_out > 0)
    parts.push_back(absl::StrCat(totals.timed_out, " timed out"));
  if (totals.offline > 0)
    parts.push_back(absl::StrCat(totals.offline, " offline"));
  if (totals.no_answer > 0)
    parts.push_back(absl::StrCat(totals.no_answer, " without an answer"));
  summary << order.size()
          << (order.size() == 1 ? " database: " : " databases: ")
          << absl::StrJoin(parts, ", ") << "; " << rows_
          << (rows_ == 1 ? " row" : " rows");
  if (totals.truncated > 0)
    summary << " (" << totals.truncated << " more left out by the row limit)";
  if (!rollout_id_.empty()) {
    summary << "; operation " << rollout_id_;
  }
  summary << "\n";
}

namespace {

absl::Status QueryList(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::ListQueriesRequest request;
  request.set_bundle(invocation.Flag("bundle"));
  ASSIGN_OR_RETURN(v1::ListQueriesResponse response,
                   client->ListQueries(request));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(response));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  runtime.out() << "Bundle: " << response.bundle() << "\n";
  if (response.queries().empty()) {
    runtime.err() << "The bundle declares no read-only query.\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"QUERY", "PARAMETERS", "DESCRIPTION"}};
  for (const v1::QueryInfo& query : response.queries()) {
    rows.push_back({query.name(),
                    query.parameters().empty()
                        ? std::string("-")
                        : absl::StrJoin(query.parameters(), ", "),
                    query.description()});
  }
  runtime.out() << "\n" << AlignedTable(rows);
  return absl::OkStatus();
}

absl::Status QueryRun(const Invocation& invocation, CommandRuntime& runtime) {
  v1::RunQueryRequest request;
  request.set_query(invocation.args[0]);
  ASSIGN_OR_RETURN(auto arguments, ParseQueryArguments(invocation.Flag("arg")));
  request.mutable_arguments()->insert(arguments.begin(), arguments.end());
  request.set_selector(invocation.Flag("selector"));
  request.set_all_databases(invocation.BoolFlag("all"));
  if (request.selector().empty() && !request.all_databases()) {
    return CommandUsageError(
        "give --selector=SELECTOR, or --all to query every database");
  }
  if (!request.selector().empty() && request.all_databases()) {
    return CommandUsageError(
        "--selector and --all exclude each other: give one of them");
  }
  request.set_bundle(invocation.Flag("bundle"));
  const int64_t row_limit = invocation.CountFlag("row_limit", 0);
  if (row_limit > 100000) {
    return CommandUsageError(absl::StrCat(
        "flag --row_limit: at most 100000 rows per database, got ", row_limit));
  }
  request.set_row_limit(static_cast<int32_t>(row_limit));
  const int64_t max_parallel = invocation.CountFlag("max_parallel", 0);
  if (max_parallel > INT32_MAX) {
    return CommandUsageError("flag --max_parallel is too large");
  }
  request.set_max_parallel(static_cast<int32_t>(max_parallel));
  if (invocation.timeout_set)
    *request.mutable_timeout() = ToProtoDuration(invocation.timeout);
  request.set_requested_by(runtime.user());
  QueryFormat format = invocation.output == OutputFormat::kJson
                           ? QueryFormat::kJson
                           : QueryFormat::kTable;
  if (const std::string flag = invocation.Flag("format"); !flag.empty()) {
    ASSIGN_OR_RETURN(format, ParseQueryFormat(flag));
  }

  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  QueryOutput output(format, runtime.out(), runtime.err());
  // The stream's reader and the idle ticker take turns on the output.
  absl::Mutex mutex;
  absl::Notification done;
  std::thread ticker;
  if (format == QueryFormat::kTable) {
    ticker = std::thread([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
        absl::MutexLock lock(&mutex);
        output.Idle(runtime.Now());
      }
    });
  }
  InterruptState* interrupts = runtime.interrupts();
  if (interrupts != nullptr) interrupts->BeginWatch(client);
  const absl::Status status =
      client->RunQuery(request, [&](const v1::QueryResult& result) {
        absl::MutexLock lock(&mutex);
        output.Add(result, runtime.Now());
        // Whoever reads our stdout (a pipe, a script) sees rows as they come.
        runtime.out().flush();
        return interrupts == nullptr || !interrupts->interrupted();
      });
  if (interrupts != nullptr) interrupts->EndWatch();
  done.Notify();
  if (ticker.joinable()) ticker.join();
  if (!status.ok()) {
    // What came before a broken stream is still shown; a refused query has
    // nothing to show.
    if (output.started()) output.Finish();
    return status;
  }
  output.Finish();
  runtime.set_exit_code(output.AllAnswered() ? kExitOk : kExitFailure);
  return absl::OkStatus();
}

}  // namespace

NounSpec QueryNoun() {
  return {
      "query",
      "Fleet queries: the read-only queries a bundle declares (the runbook's "
      "validation,\nmonitoring and security queries), run on every selected "
      "database at once.\n\n"
      "'query run' exits 0 when every database answered, 1 otherwise.",
      {
          {"list",
           {},
           "List the read-only queries of a bundle",
           "Without --bundle, the newest uploaded bundle.\n"
           "Columns: QUERY, PARAMETERS (\"name (type)\", \"= default\" when it "
           "has one), DESCRIPTION.\n"
           "With -o json: the ListQueriesResponse.\n",
           {{"bundle", Kind::kString, "BUNDLE",
             "name@version or id (default: the newest uploaded)"}},
           QueryList},
          {"run",
           {"QUERY"},
           "Run a read-only query on every selected database",
           "QUERY is a read-only query of the bundle ('query list' shows "
           "them); only queries\n"
           "declared read_only run, in a read-only transaction on each "
           "database.\n"
           "Rows print as they arrive, each tagged with its database in the "
           "first column\n"
           "(DATABASE); then the databases that did not answer OK (or whose "
           "rows the limit cut)\n"
           "and a line of totals: ok, failed, timed out, offline, rows.\n"
           "--timeout is the whole query's deadline (default 30s): databases "
           "that have not\n"
           "answered by then are reported DEADLINE_EXCEEDED (offline ones "
           "UNAVAILABLE) and the\n"
           "query ends; Ctrl-C stops it on every database.\n"
           "Formats (--format, or -o json):\n"
           "  table  aligned columns, printed in blocks as rows come; NULL "
           "shows as NULL\n"
           "  csv    RFC 4180: a header DATABASE,<columns>, CRLF line ends, "
           "NULL as an empty\n"
           "         unquoted field, '' as \"\"; the summary goes to stderr\n"
           "  json   one object per line: {\"database_id\":..., "
           "\"columns\":{NAME: value or null}}\n"
           "         per row, {\"database_id\":..., \"summary\":{\"code\", "
           "\"error\", \"rows\",\n"
           "         \"rows_truncated\"}} per database, and a last line of "
           "totals\n"
           "         {\"rollout_id\", \"databases\", \"ok\", \"failed\", "
           "\"timed_out\", \"offline\", ...}\n"
           "The query runs as a fleet operation: its rows stay in the "
           "operation's events\n"
           "('rollout watch ID' replays them).\n"
           "Example: ecliptixctl query run RecentAuditCount --arg=Minutes=10 "
           "--selector=env=prod\n",
           {{"arg", Kind::kString, "NAME=VALUE", "an argument of the query",
             /*repeated=*/true},
            {"selector", Kind::kString, "SELECTOR", kSelectorOrAllHelp},
            {"all", Kind::kBool, "", "every database of the fleet"},
            {"bundle", Kind::kString, "BUNDLE",
             "name@version or id (default: the newest uploaded bundle "
             "declaring QUERY)"},
            {"row_limit", Kind::kCount, "N",
             "rows per database at most (0: 1000; at most 100000); the rest "
             "are counted"},
            {"max_parallel", Kind::kCount, "N",
             "databases queried at once (0: all)"},
            {"format", Kind::kString, "FORMAT",
             "table (default), csv or json"}},
           QueryRun},
      }};
}

}  // namespace ecliptix::client::ctl
