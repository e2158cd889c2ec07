#include "common/sql/text.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ecliptix::sql {

std::string FirstLine(absl::string_view message) {
  message = absl::StripAsciiWhitespace(message);
  const size_t newline = message.find('\n');
  if (newline != absl::string_view::npos) message = message.substr(0, newline);
  return std::string(absl::StripTrailingAsciiWhitespace(message));
}

std::string OneLine(absl::string_view message) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  return absl::StrJoin(lines, "; ");
}

}  // namespace ecliptix::sql
