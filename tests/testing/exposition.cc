#include "tests/testing/exposition.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ecliptix::testing {
namespace {

using Labels = std::map<std::string, std::string>;

bool IsNameStart(char c, bool colon) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         (colon && c == ':');
}
bool IsNameChar(char c, bool colon) {
  return IsNameStart(c, colon) ||
         absl::ascii_isdigit(static_cast<unsigned char>(c));
}

bool IsMetricName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0], true)) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameChar(c, true); });
}

bool IsLabelName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0], false)) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameChar(c, false); });
}

// Go's strconv.ParseFloat, as Prometheus reads values: decimal floats, and
// NaN / Inf / Infinity with an optional sign, in any case.
std::optional<double> ParseValue(absl::string_view token) {
  const std::string lower = absl::AsciiStrToLower(token);
  absl::string_view unsigned_part = lower;
  const bool negative = absl::ConsumePrefix(&unsigned_part, "-");
  if (!negative) absl::ConsumePrefix(&unsigned_part, "+");
  if (unsigned_part == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (unsigned_part == "inf" || unsigned_part == "infinity") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (unsigned_part.empty() ||
      !std::all_of(unsigned_part.begin(), unsigned_part.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' ||
               c == 'e' || c == '+' || c == '-';
      })) {
    return std::nullopt;
  }
  const std::string text(token);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

// A HELP text: escapes are \\ and \n only.
bool ValidHelp(absl::string_view help) {
  for (size_t i = 0; i < help.size(); ++i) {
    if (help[i] != '\\') continue;
    if (i + 1 >= help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n'))
      return false;
    ++i;
  }
  return true;
}

struct Parsed {
  ExpositionSample sample;
  int line = 0;
};

// One sample line; an error message, or empty.
std::string ParseSampleLine(absl::string_view line, ExpositionSample* sample) {
  size_t i = 0;
  while (i < line.size() && IsNameChar(line[i], true)) ++i;
  sample->name = std::string(line.substr(0, i));
  if (!IsMetricName(sample->name)) return "bad metric name";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const size_t start = i;
      while (i < line.size() && IsNameChar(line[i], false)) ++i;
      const std::string name(line.substr(start, i - start));
      if (!IsLabelName(name)) return "bad label name";
      if (absl::StartsWith(name, "__")) return "reserved label name " + name;
      if (i >= line.size() || line[i] != '=') return "expected '='";
      ++i;
      if (i >= line.size() || line[i] != '"') return "expected '\"'";
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i >= line.size()) return "dangling escape";
          const char escaped = line[i++];
          if (escaped == 'n') {
            value.push_back('\n');
          } else if (escaped == '\\' || escaped == '"') {
            value.push_back(escaped);
          } else {
            return "bad escape in label value";
          }
          continue;
        }
        value.push_back(c);
      }
      if (!closed) return "unterminated label value";
      if (!sample->labels.emplace(name, value).second)
        return "label " + name + " twice";
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      return "expected ',' or '}'";
    }
  }
  if (i >= line.size() || line[i] != ' ')
    return "expected a space before the value";
  std::vector<absl::string_view> rest =
      absl::StrSplit(line.substr(i), ' ', absl::SkipEmpty());
  if (rest.empty() || rest.size() > 2)
    return "expected a value and an optional timestamp";
  std::optional<double> value = ParseValue(rest[0]);
  if (!value) return absl::StrCat("bad value \"", rest[0], "\"");
  sample->value = *value;
  if (rest.size() == 2) {
    int64_t timestamp = 0;
    if (!absl::SimpleAtoi(rest[1], &timestamp)) return "bad timestamp";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const std::string& host, int port,
                                    const std::string& path) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) !=
          0 ||
      found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host));
  }
  const int fd = socket(found->ai_family, found->ai_socktype, 0);
  if (fd < 0) {
    freeaddrinfo(found);
    return absl::UnavailableError("socket failed");
  }
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  const int connected = connect(fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (connected != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", host, ":", port, ": ", error));
  }
  const std::string request = absl::StrCat(
      "GET ", path, " HTTP/1.0\r\nHost: ", host, ":", port, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("cannot send the request");
  }
  std::string response;
  char buffer[8192];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      const std::string error = std::strerror(errno);
      close(fd);
      return absl::UnavailableError(absl::StrCat("read failed: ", error));
    }
    if (n == 0) break;
    response.append(buffer, n);
  }
  close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos)
    return absl::UnavailableError("no complete HTTP answer");
  const std::string status_line = response.substr(0, response.find("\r\n"));
  std::vector<absl::string_view> status = absl::StrSplit(status_line, ' ');
  if (status.size() < 2 || !absl::StartsWith(status[0], "HTTP/1.") ||
      status[1] != "200") {
    return absl::FailedPreconditionError(status_line);
  }
  return response.substr(header_end + 4);
}

std::optional<double> Exposition::Value(const std::string& name,
                                        const Labels& labels) const {
  for (const ExpositionSample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::nullopt;
}

double Exposition::Sum(const std::string& name, const Labels& labels) const {
  double sum = 0;
  for (const ExpositionSample& sample : samples) {
    if (sample.name != name) continue;
    const bool match =
        std::all_of(labels.begin(), labels.end(), [&](const auto& label) {
          auto it = sample.labels.find(label.first);
          return it != sample.labels.end() && it->second == label.second;
        });
    if (match) sum += sample.value;
  }
  return sum;
}

absl::StatusOr<Exposition> ParseExposition(absl::string_view text) {
  Exposition exposition;
  if (!text.empty() && text.back() != '\n')
    return absl::InvalidArgumentError("the last line does not end with \\n");
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();

  std::vector<Parsed> parsed;
  // Families whose lines are over (another family's came after them).
  std::set<std::string> closed;
  std::string current;
  std::set<std::string> sampled;
  const auto fail = [](int line, absl::string_view why,
                       absl::string_view text) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": ", why, ": ", text));
  };
  // The family a sample name belongs to, given the TYPE lines so far.
  const auto family_of = [&](const std::string& name) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (!absl::EndsWith(name, suffix)) continue;
      const std::string base = name.substr(0, name.size() - strlen(suffix));
      auto it = exposition.types.find(base);
      if (it == exposition.types.end()) continue;
      if (it->second == "histogram" ||
          (it->second == "summary" && std::string(suffix) != "_bucket")) {
        return base;
      }
    }
    return name;
  };
  const auto enter = [&](const std::string& family) -> bool {
    if (family == current) return true;
    if (closed.count(family) > 0) return false;
    if (!current.empty()) closed.insert(current);
    current = family;
    return true;
  };

  for (size_t index = 0; index < lines.size(); ++index) {
    const int number = static_cast<int>(index) + 1;
    const absl::string_view line = lines[index];
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() < 3 || parts[0] != "#" ||
          (parts[1] != "HELP" && parts[1] != "TYPE")) {
        continue;  // A plain comment.
      }
      const std::string name(parts[2]);
      if (!IsMetricName(name)) return fail(number, "bad metric name", line);
      if (!enter(name))
        return fail(number, "the family's lines are not together", line);
      if (parts[1] == "HELP") {
        const std::string help(parts.size() > 3 ? parts[3] : "");
        if (!ValidHelp(help)) return fail(number, "bad escape in HELP", line);
        if (!exposition.help.emplace(name, help).second)
          return fail(number, "second HELP", line);
      } else {
        if (parts.size() < 4) return fail(number, "TYPE without a type", line);
        const std::string type(parts[3]);
        static const std::set<std::string> kTypes = {
            "counter", "gauge", "histogram", "summary", "untyped"};
        if (kTypes.count(type) == 0) return fail(number, "unknown type", line);
        if (sampled.count(name) > 0)
          return fail(number, "TYPE after the family's samples", line);
        if (!exposition.types.emplace(name, type).second)
          return fail(number, "second TYPE", line);
      }
      continue;
    }
    Parsed sample;
    sample.line = number;
    if (std::string error = ParseSampleLine(line, &sample.sample);
        !error.empty()) {
      return fail(number, error, line);
    }
    const std::string family = family_of(sample.sample.name);
    if (!enter(family))
      return fail(number, "the family's lines are not together", line);
    sampled.insert(family);
    parsed.push_back(std::move(sample));
  }

  // No series twice.
  std::set<std::pair<std::string, Labels>> series;
  for (const Parsed& p : parsed) {
    if (!series.emplace(p.sample.name, p.sample.labels).second) {
      return fail(p.line, "series twice", p.sample.name);
    }
  }

  // Histograms and summaries: each series (labels without le / quantile)
  // complete and consistent.
  struct Parts {
    std::vector<std::pair<double, double>> buckets;  // (le, count)
    std::optional<double> sum;
    std::optional<double> count;
    bool quantiles = false;
    int line = 0;
  };
  std::map<std::pair<std::string, Labels>, Parts> composite;
  for (const Parsed& p : parsed) {
    const std::string family = family_of(p.sample.name);
    auto type = exposition.types.find(family);
    const std::string kind =
        type != exposition.types.end() ? type->second : "untyped";
    if (kind == "counter" && p.sample.value < 0)
      return fail(p.line, "negative counter", p.sample.name);
    if (kind != "histogram" && kind != "summary") continue;
    Labels labels = p.sample.labels;
    const std::string suffix = p.sample.name.substr(family.size());
    Parts* parts = nullptr;
    if (kind == "histogram" && suffix == "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end())
        return fail(p.line, "bucket without le", p.sample.name);
      std::optional<double> bound = ParseValue(le->second);
      if (!bound || std::isnan(*bound))
        return fail(p.line, "bad le", le->second);
      labels.erase(le);
      parts = &composite[{family, labels}];
      parts->buckets.emplace_back(*bound, p.sample.value);
    } else if (suffix == "_sum") {
      parts = &composite[{family, labels}];
      parts->sum = p.sample.value;
    } else if (suffix == "_count") {
      parts = &composite[{family, labels}];
      parts->count = p.sample.value;
    } else if (kind == "summary" && suffix.empty()) {
      auto quantile = labels.find("quantile");
      if (quantile == labels.end())
        return fail(p.line, "summary sample without quantile", p.sample.name);
      std::optional<double> q = ParseValue(quantile->second);
      if (!q || *q < 0 || *q > 1)
        return fail(p.line, "bad quantile", quantile->second);
      labels.erase(quantile);
      parts = &composite[{family, labels}];
      parts->quantiles = true;
    } else {
      return fail(p.line, absl::StrCat("not part of ", kind, " ", family),
                  p.sample.name);
    }
    if (parts->line == 0) parts->line = p.line;
  }
  for (auto& [key, parts] : composite) {
    const std::string& family = key.first;
    const std::string kind = exposition.types[family];
    if (!parts.sum || !parts.count)
      return fail(parts.line, "no _sum or no _count", family);
    if (kind != "histogram") continue;
    std::sort(parts.buckets.begin(), parts.buckets.end());
    if (parts.buckets.empty() || !std::isinf(parts.buckets.back().first))
      return fail(parts.line, "no +Inf bucket", family);
    for (size_t i = 1; i < parts.buckets.size(); ++i) {
      if (parts.buckets[i].first == parts.buckets[i - 1].first)
        return fail(parts.line, "le twice", family);
      if (parts.buckets[i].second < parts.buckets[i - 1].second)
        return fail(parts.line, "buckets not cumulative", family);
    }
    if (parts.buckets.back().second != *parts.count)
      return fail(parts.line, "+Inf bucket differs from _count", family);
  }
  for (Parsed& p : parsed) exposition.samples.push_back(std::move(p.sample));
  return exposition;
}

std::optional<PromtoolResult> RunPromtool(const std::string& text) {
  static constexpr char kPromtool[] = "/usr/bin/promtool";
  if (access(kPromtool, X_OK) != 0) return std::nullopt;
  const char* tmp = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  const std::string path =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/metrics-", getpid(), "-",
                   ++counter, ".txt");
  {
    std::ofstream out(path);
    out << text;
  }
  const std::string command =
      absl::StrCat(kPromtool, " check metrics < ", path, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return PromtoolResult{-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    output.append(buffer, n);
  const int status = pclose(pipe);
  return PromtoolResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace ecliptix::testing
