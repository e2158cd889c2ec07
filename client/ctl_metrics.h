// ecliptixctl's `metrics` noun: the slowest procedures of the fleet or per
// database (top), the series of a metric as one sparkline per series on a
// terminal or a column of numbers otherwise (series), and rates of errors,
// failed logins and suspicious activity (rate). The parsers and renderers are
// exposed so that they are tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_METRICS_H_
#define ECLIPTIX_CLIENT_CTL_METRICS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/metrics.pb.h"

namespace ecliptix::client::ctl {

// A duration flag: what absl::ParseDuration takes ("90m", "1h30m", "500ms")
// plus whole days ("7d"); positive. A usage error naming --`flag` otherwise.
absl::StatusOr<absl::Duration> ParseMetricsDuration(absl::string_view flag,
                                                    absl::string_view text);

// The --label values as the parser joins them ("procedure=Login,event=X"):
// K=V pairs. A usage error for a pair without '=' or a key given twice.
absl::StatusOr<std::map<std::string, std::string>> ParseLabelFilter(
    absl::string_view joined);

// One character per value: ▁▂▃▄▅▆▇█ from the smallest to the largest of
// the values present, ▁ for all when they are equal, a space for a missing
// value.
std::string Sparkline(const std::vector<std::optional<double>>& values);

// A series' values on the steps of [start, end): one entry per step (aligned
// to multiples of `step` since the epoch, as the server aligns them), empty
// where the series has no point; at most `max_width` entries (0: no limit),
// neighbouring steps averaged to fit.
std::vector<std::optional<double>> StepValues(const fleet::v1::Series& series,
                                              absl::Time start, absl::Time end,
                                              absl::Duration step,
                                              int max_width = 0);

// A number as people read it: integers as such, others with 4 significant
// digits ("12", "3.25", "0.0012", "1.5e+09").
std::string MetricNumber(double value);

// `metrics top`: [DATABASE,] PROCEDURE, CALLS, AVG MS, MAX MS, ERRORS.
std::string TopTable(const fleet::v1::TopProceduresResponse& response,
                     bool per_database);
// `metrics series` on a terminal: a header line (metric, step, range), then
// per series: DATABASE, LABELS, the sparkline, MIN, MAX, LAST. `width` is the
// terminal's (0: unknown).
std::string SeriesSparklines(const fleet::v1::QuerySeriesResponse& response,
                             absl::string_view metric, absl::Time start,
                             absl::Time end, int width);
// `metrics series` otherwise: DATABASE, LABELS, TIME, VALUE, a row per point.
std::string SeriesColumns(const fleet::v1::QuerySeriesResponse& response);
// `metrics rate`: DATABASE, RATE (a percentage for errors, per minute
// otherwise), then the fleet's line.
std::string RateTable(const fleet::v1::GetRateResponse& response,
                      absl::string_view rate, absl::Duration range);

// The noun's entry in the command table.
NounSpec MetricsNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_METRICS_H_
