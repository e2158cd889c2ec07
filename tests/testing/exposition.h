// Scraping and checking Prometheus metrics in tests: a plain-socket HTTP GET,
// a strict parser of the text exposition format (version 0.0.4) that checks
// what Prometheus's own parser and `promtool check metrics` care about, and
// promtool itself when it is installed.
#ifndef ECLIPTIX_TESTS_TESTING_EXPOSITION_H_
#define ECLIPTIX_TESTS_TESTING_EXPOSITION_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecliptix::testing {

// GET http://host:port/path over a plain socket (HTTP/1.0): the body of a 200
// answer; UNAVAILABLE when the connection fails, FAILED_PRECONDITION with the
// status line for any other answer.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port,
                                    const std::string& path);

struct ExpositionSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  // By family name.
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> help;
  std::vector<ExpositionSample> samples;

  // The value of the sample with exactly these labels, if there is one.
  std::optional<double> Value(
      const std::string& name,
      const std::map<std::string, std::string>& labels = {}) const;
  // The sum over the samples named `name` whose labels include `labels`.
  double Sum(const std::string& name,
             const std::map<std::string, std::string>& labels = {}) const;
};

// Parses and checks the text format: comment lines (HELP and TYPE at most
// once per family, TYPE before the family's samples, a known type), sample
// lines (metric and label names, escapes in label values, no label twice,
// values and optional timestamps), each family's lines together, no series
// twice, and for histograms and summaries their parts: buckets with `le`,
// cumulative and non-decreasing, a +Inf bucket equal to _count, _sum and
// _count for every series. INVALID_ARGUMENT names the line at fault.
absl::StatusOr<Exposition> ParseExposition(absl::string_view text);

// Runs `promtool check metrics` on `text` when /usr/bin/promtool exists:
// nullopt when it does not, else its exit code and output. (promtool also
// lints names and help texts; its exit code is 1 for lint findings too.)
struct PromtoolResult {
  int exit_code;
  std::string output;
};
std::optional<PromtoolResult> RunPromtool(const std::string& text);

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_TESTING_EXPOSITION_H_
