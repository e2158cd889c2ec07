#include "client/ctl_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/ctl_format.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

// The eight levels of a sparkline, lowest first (UTF-8).
constexpr const char* kLevels[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// The lines of `text` (no trailing newline kept).
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines =
      absl::StrSplit(absl::StripSuffix(text, "\n"), '\n');
  return lines;
}

absl::StatusOr<absl::Duration> DurationFlag(const Invocation& invocation,
                                            absl::string_view name,
                                            absl::Duration default_value) {
  const std::string text = invocation.Flag(name);
  if (text.empty()) return default_value;
  return ParseMetricsDuration(name, text);
}

absl::Status PrintJson(const google::protobuf::Message& message,
                       CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(std::string json, MessageJson(message));
  runtime.out() << json << "\n";
  return absl::OkStatus();
}

absl::Status MetricsTop(const Invocation& invocation, CommandRuntime& runtime) {
  v1::TopProceduresRequest request;
  request.set_selector(invocation.Flag("selector"));
  ASSIGN_OR_RETURN(absl::Duration range,
                   DurationFlag(invocation, "range", absl::Hours(24)));
  *request.mutable_range() = ToProtoDuration(range);
  request.set_limit(static_cast<int32_t>(invocation.CountFlag("limit", 10)));
  request.set_per_database(invocation.BoolFlag("per_database"));
  request.set_order_by(invocation.Flag("order_by"));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::TopProceduresResponse response,
                   client->TopProcedures(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(response, runtime);
  }
  if (response.procedures().empty()) {
    runtime.err() << "No procedure figures in the last "
                  << absl::FormatDuration(range) << ".\n";
    return absl::OkStatus();
  }
  runtime.out() << TopTable(response, request.per_database());
  return absl::OkStatus();
}

absl::Status MetricsSeries(const Invocation& invocation,
                           CommandRuntime& runtime) {
  v1::QuerySeriesRequest request;
  request.set_metric(invocation.args[0]);
  request.set_selector(invocation.Flag("selector"));
  ASSIGN_OR_RETURN(auto labels, ParseLabelFilter(invocation.Flag("label")));
  request.mutable_labels()->insert(labels.begin(), labels.end());
  ASSIGN_OR_RETURN(absl::Duration range,
                   DurationFlag(invocation, "range", absl::Hours(1)));
  ASSIGN_OR_RETURN(absl::Duration step,
                   DurationFlag(invocation, "step", absl::ZeroDuration()));
  const absl::Time end = runtime.Now();
  const absl::Time start = end - range;
  *request.mutable_start_time() = ToProtoTimestamp(start);
  *request.mutable_end_time() = ToProtoTimestamp(end);
  if (step > absl::ZeroDuration())
    *request.mutable_step() = ToProtoDuration(step);
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::QuerySeriesResponse response,
                   client->QuerySeries(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(response, runtime);
  }
  if (response.series().empty()) {
    runtime.err() << "No samples of " << request.metric() << " in the last "
                  << absl::FormatDuration(range) << ".\n";
    return absl::OkStatus();
  }
  runtime.out() << (runtime.out_is_terminal()
                        ? SeriesSparklines(response, request.metric(), start,
                                           end, runtime.terminal_width())
                        : SeriesColumns(response));
  return absl::OkStatus();
}

absl::Status MetricsRate(const Invocation& invocation,
                         CommandRuntime& runtime) {
  v1::GetRateRequest request;
  request.set_rate(invocation.args[0]);
  request.set_selector(invocation.Flag("selector"));
  ASSIGN_OR_RETURN(absl::Duration range,
                   DurationFlag(invocation, "range", absl::Hours(1)));
  *request.mutable_range() = ToProtoDuration(range);
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::GetRateResponse response, client->GetRate(request));
  if (invocation.output == OutputFormat::kJson) {
    return PrintJson(response, runtime);
  }
  runtime.out() << RateTable(response, request.rate(), range);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Duration> ParseMetricsDuration(absl::string_view flag,
                                                    absl::string_view text) {
  absl::Duration duration;
  bool parsed = false;
  if (absl::EndsWith(text, "d")) {
    int64_t days = 0;
    parsed = absl::SimpleAtoi(absl::StripSuffix(text, "d"), &days) &&
             days > 0 && days <= 3650;
    duration = absl::Hours(24) * days;
  } else {
    parsed = absl::ParseDuration(text, &duration);
  }
  if (!parsed || duration <= absl::ZeroDuration() ||
      duration == absl::InfiniteDuration()) {
    return CommandUsageError(absl::StrCat(
        "flag --", flag, " wants a duration such as 15m, 24h or 7d, got \"",
        text, "\""));
  }
  return duration;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabelFilter(
    absl::string_view joined) {
  std::map<std::string, std::string> labels;
  if (joined.empty()) return labels;
  for (absl::string_view pair : absl::StrSplit(joined, ',')) {
    std::pair<std::string, std::string> split =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (!absl::StrContains(pair, '=') || split.first.empty()) {
      return CommandUsageError(absl::StrCat(
          "flag --label wants KEY=VALUE (e.g. procedure=LoginMembership), got "
          "\"",
          pair, "\""));
    }
    if (!labels.emplace(split.first, split.second).second) {
      return CommandUsageError(
          absl::StrCat("flag --label: ", split.first, " is given twice"));
    }
  }
  return labels;
}

std::string Sparkline(const std::vector<std::optional<double>>& values) {
  double low = 0, high = 0;
  bool any = false;
  for (const std::optional<double>& value : values) {
    if (!value) continue;
    low = any ? std::min(low, *value) : *value;
    high = any ? std::max(high, *value) : *value;
    any = true;
  }
  std::string line;
  for (const std::optional<double>& value : values) {
    if (!value) {
      line += " ";
      continue;
    }
    int level = 0;
    if (high > low) {
      level = static_cast<int>(std::lround((*value - low) / (high - low) * 7));
    }
    line += kLevels[std::clamp(level, 0, 7)];
  }
  return line;
}

std::vector<std::optional<double>> StepValues(const v1::Series& series,
                                              absl::Time start, absl::Time end,
                                              absl::Duration step,
                                              int max_width) {
  std::vector<std::optional<double>> values;
  const int64_t step_us = absl::ToInt64Microseconds(step);
  if (step_us <= 0 || end <= start) return values;
  const int64_t first = FloorDiv(absl::ToUnixMicros(start), step_us);
  const int64_t last = FloorDiv(absl::ToUnixMicros(end) - 1, step_us);
  const int64_t steps = std::min<int64_t>(last - first + 1, 100'000);
  values.resize(steps);
  for (const v1::SeriesPoint& point : series.points()) {
    const int64_t index =
        FloorDiv(absl::ToUnixMicros(FromProtoTimestamp(point.time())),
                 step_us) -
        first;
    if (index >= 0 && index < steps) values[index] = point.value();
  }
  if (max_width <= 0 || steps <= max_width) return values;
  // Neighbours averaged so that the line fits.
  const int64_t group = (steps + max_width - 1) / max_width;
  std::vector<std::optional<double>> fitted;
  for (int64_t begin = 0; begin < steps; begin += group) {
    double sum = 0;
    int count = 0;
    for (int64_t i = begin; i < std::min(steps, begin + group); ++i) {
      if (!values[i]) continue;
      sum += *values[i];
      ++count;
    }
    fitted.push_back(count > 0 ? std::optional<double>(sum / count)
                               : std::nullopt);
  }
  return fitted;
}

std::string MetricNumber(double value) {
  if (std::isfinite(value) && value == std::trunc(value) &&
      std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrFormat("%.4g", value);
}

std::string TopTable(const v1::TopProceduresResponse& response,
                     bool per_database) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"PROCEDURE", "CALLS", "AVG MS", "MAX MS",
                                     "ERRORS"};
  if (per_database) header.insert(header.begin(), "DATABASE");
  rows.push_back(header);
  for (const v1::ProcedureFigures& figures : response.procedures()) {
    std::vector<std::string> row = {figures.procedure(),
                                    absl::StrCat(figures.calls()),
                                    absl::StrFormat("%.1f", figures.avg_ms()),
                                    absl::StrFormat("%.1f", figures.max_ms()),
                                    absl::StrCat(figures.errors())};
    if (per_database) row.insert(row.begin(), figures.database_id());
    rows.push_back(std::move(row));
  }
  return AlignedTable(rows);
}

std::string SeriesSparklines(const v1::QuerySeriesResponse& response,
                             absl::string_view metric, absl::Time start,
                             absl::Time end, int width) {
  const absl::Duration step = FromProtoDuration(response.step());
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "LABELS", "MIN", "MAX", "LAST"}};
  for (const v1::Series& series : response.series()) {
    double low = 0, high = 0, last = 0;
    for (int i = 0; i < series.points_size(); ++i) {
      const double value = series.points(i).value();
      low = i == 0 ? value : std::min(low, value);
      high = i == 0 ? value : std::max(high, value);
      last = value;
    }
    rows.push_back({series.database_id(), LabelsText(series.labels()),
                    MetricNumber(low), MetricNumber(high), MetricNumber(last)});
  }
  // The sparkline last: its characters are wider in bytes than on screen.
  std::vector<std::string> lines = Lines(AlignedTable(rows));
  size_t columns = 0;
  for (const std::string& line : lines)
    columns = std::max(columns, line.size());
  const int room = width > 0 ? width - static_cast<int>(columns) - 3 : 0;
  std::string text =
      absl::StrCat(metric, ": ", response.series_size(),
                   " series, a value per ", absl::FormatDuration(step),
                   " from ", TimestampText(ToProtoTimestamp(start)), " to ",
                   TimestampText(ToProtoTimestamp(end)), "\n");
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    line.resize(columns, ' ');
    const std::string spark =
        i == 0 ? "VALUES"
               : Sparkline(StepValues(response.series(i - 1), start, end, step,
                                      width > 0 ? std::max(room, 10) : 0));
    absl::StrAppend(&text, line, "   ", spark, "\n");
  }
  return text;
}

std::string SeriesColumns(const v1::QuerySeriesResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "LABELS", "TIME", "VALUE"}};
  for (const v1::Series& series : response.series()) {
    const std::string labels = LabelsText(series.labels());
    for (const v1::SeriesPoint& point : series.points()) {
      rows.push_back({series.database_id(), labels, TimestampText(point.time()),
                      MetricNumber(point.value())});
    }
  }
  return AlignedTable(rows);
}

std::string RateTable(const v1::GetRateResponse& response,
                      absl::string_view rate, absl::Duration range) {
  const bool errors = rate == "errors";
  auto shown = [errors](double value) {
    return errors ? absl::StrFormat("%.3f%%", value * 100)
                  : absl::StrFormat("%.2f/min", value);
  };
  std::map<std::string, double> by_database(response.by_database().begin(),
                                            response.by_database().end());
  std::string text;
  if (!by_database.empty()) {
    std::vector<std::vector<std::string>> rows = {{"DATABASE", "RATE"}};
    for (const auto& [database_id, value] : by_database) {
      rows.push_back({database_id, shown(value)});
    }
    text = AlignedTable(rows);
  }
  absl::StrAppend(&text, "fleet: ", shown(response.fleet()), " (",
                  response.unit(), ") over the last ",
                  absl::FormatDuration(range), ", ", by_database.size(),
                  by_database.size() == 1 ? " database" : " databases", "\n");
  return text;
}

NounSpec MetricsNoun() {
  return {
      "metrics",
      "Fleet metrics that agents collect: the slowest procedures, series of a "
      "metric, and\nrates of errors, failed logins and suspicious activity.",
      {
          {"top",
           {},
           "The slowest procedures, fleet-wide or per database",
           "Columns: [DATABASE,] PROCEDURE, CALLS, AVG MS (execution time per "
           "call), MAX MS,\nERRORS, over the last --range, slowest first "
           "(--order_by avg, max or calls).\nRanges up to 6h count whole "
           "minutes, longer ones whole hours (the start rounded\ndown).\n"
           "With -o json: the TopProceduresResponse.\n"
           "Example: ecliptixctl metrics top --selector=env=prod --range=24h "
           "--per_database\n",
           {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
            {"range", Kind::kString, "DURATION",
             "how far back, e.g. 1h, 24h, 7d (default 24h)"},
            {"limit", Kind::kCount, "N", "at most N procedures (default 10)"},
            {"per_database", Kind::kBool, "",
             "a row per database and procedure instead of per procedure"},
            {"order_by", Kind::kString, "avg|max|calls",
             "slowest by average (default) or maximum time, or most calls"}},
           MetricsTop},
          {"series",
           {"METRIC"},
           "The series of a metric over a range",
           "METRIC is e.g. procedure_calls, procedure_execution_ms, "
           "procedure_max_ms,\nprocedure_errors, auth_events, table_rows, "
           "database_size_bytes,\noperation_calls, operation_failures.\nOne "
           "series per database and label set; a "
           "value per step (--step, or one that gives\nat most 120 values): "
           "summed for counts and amounts, averaged for levels.\nOn a "
           "terminal: a sparkline per series with its MIN, MAX and LAST; "
           "otherwise\nDATABASE, LABELS, TIME, VALUE, a row per value.\n"
           "With -o json: the QuerySeriesResponse.\n"
           "Example: ecliptixctl metrics series procedure_execution_ms "
           "--label=procedure=LoginMembership --range=6h\n",
           {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
            {"label", Kind::kString, "K=V",
             "only series with this label (e.g. procedure=LoginMembership)",
             /*repeated=*/true},
            {"range", Kind::kString, "DURATION",
             "how far back, e.g. 15m, 6h, 7d (default 1h)"},
            {"step", Kind::kString, "DURATION",
             "one value per step (default: the server picks one giving at "
             "most 120)"}},
           MetricsSeries},
          {"rate",
           {"RATE"},
           "Errors per call, failed logins or suspicious activity per minute",
           "RATE is errors (failed procedure calls per call, shown as a "
           "percentage),\nfailed_logins or suspicious_activity (authentication "
           "events per minute).\nA row per database, then the fleet's.\n"
           "With -o json: the GetRateResponse.\n"
           "Example: ecliptixctl metrics rate failed_logins "
           "--selector=env=prod "
           "--range=15m\n",
           {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
            {"range", Kind::kString, "DURATION",
             "how far back, e.g. 15m, 1h, 24h (default 1h)"}},
           MetricsRate},
      }};
}

}  // namespace ecliptix::client::ctl
