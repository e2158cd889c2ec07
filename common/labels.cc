#include "common/labels.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ecliptix {
namespace {

constexpr size_t kMaxLabelLength = 63;

bool IsKeyChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/';
}

bool IsValueChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':';
}

// Splits on commas that are not inside parentheses, so "a in (x,y),b=z" has two
// parts.
absl::StatusOr<std::vector<std::string>> SplitRequirements(
    absl::string_view text) {
  std::vector<std::string> parts;
  std::string current;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') {
      if (--depth < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "selector \"", text, "\": ')' without a matching '('"));
      }
    }
    if (c == ',' && depth == 0) {
      parts.push_back(std::move(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (depth != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("selector \"", text, "\": '(' is never closed"));
  }
  parts.push_back(std::move(current));
  return parts;
}

}  // namespace

absl::Status ValidateLabelKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("label key is empty");
  if (key.size() > kMaxLabelLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("label key \"", key, "\" is longer than ", kMaxLabelLength,
                     " characters"));
  }
  if (!absl::ascii_isalnum(key.front())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label key \"", key, "\" must start with a letter or a digit"));
  }
  for (char c : key) {
    if (!IsKeyChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("label key \"", key, "\" contains '", std::string(1, c),
                       "': use letters, digits, '.', '_', '-' and '/'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelValue(absl::string_view value) {
  if (value.size() > kMaxLabelLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("label value \"", value, "\" is longer than ",
                     kMaxLabelLength, " characters"));
  }
  for (char c : value) {
    if (!IsValueChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label value \"", value, "\" contains '", std::string(1, c),
          "': use letters, digits, '.', '_', '-' and ':'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Labels> ParseLabels(absl::string_view text) {
  Labels labels;
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return labels;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (part.find('=') == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("label \"", part, "\" is not of the form key=value"));
    }
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (absl::Status s = ValidateLabelKey(key); !s.ok()) return s;
    if (absl::Status s = ValidateLabelValue(value); !s.ok()) return s;
    if (!labels.emplace(std::string(key), std::string(value)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("label key \"", key, "\" is given twice"));
    }
  }
  return labels;
}

std::string FormatLabels(const Labels& labels) {
  return absl::StrJoin(labels, ",", absl::PairFormatter("="));
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector selector;
  if (absl::StripAsciiWhitespace(text).empty()) return selector;
  auto parts = SplitRequirements(text);
  if (!parts.ok()) return parts.status();
  int index = 0;
  for (const std::string& raw : *parts) {
    ++index;
    absl::string_view part = absl::StripAsciiWhitespace(raw);
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("selector \"", text,
                                                     "\": requirement ", index,
                                                     " \"", part, "\": ", why));
    };
    if (part.empty()) return fail("is empty (a stray comma?)");
    Requirement requirement;
    auto set_key = [&](absl::string_view key) -> absl::Status {
      key = absl::StripAsciiWhitespace(key);
      if (absl::Status s = ValidateLabelKey(key); !s.ok())
        return fail(s.message());
      requirement.key = std::string(key);
      return absl::OkStatus();
    };
    auto add_value = [&](absl::string_view value) -> absl::Status {
      value = absl::StripAsciiWhitespace(value);
      if (absl::Status s = ValidateLabelValue(value); !s.ok())
        return fail(s.message());
      requirement.values.insert(std::string(value));
      return absl::OkStatus();
    };

    size_t op_pos;
    if ((op_pos = part.find("!=")) != absl::string_view::npos) {
      requirement.op = Op::kNotIn;
      if (absl::Status s = set_key(part.substr(0, op_pos)); !s.ok()) return s;
      if (absl::Status s = add_value(part.substr(op_pos + 2)); !s.ok())
        return s;
    } else if ((op_pos = part.find('=')) != absl::string_view::npos) {
      requirement.op = Op::kIn;
      absl::string_view value = part.substr(op_pos + 1);
      absl::ConsumePrefix(&value, "=");  // "==" means the same as "=".
      if (absl::StartsWith(value, "=")) {
        return fail("unknown operator; use =, ==, !=, in or notin");
      }
      if (absl::Status s = set_key(part.substr(0, op_pos)); !s.ok()) return s;
      if (absl::Status s = add_value(value); !s.ok()) return s;
    } else if (size_t paren = part.find('(');
               paren != absl::string_view::npos) {
      if (!absl::EndsWith(part, ")")) return fail("expected ')' at the end");
      std::vector<absl::string_view> words =
          absl::StrSplit(absl::StripAsciiWhitespace(part.substr(0, paren)), ' ',
                         absl::SkipEmpty());
      if (words.size() != 2 || (words[1] != "in" && words[1] != "notin")) {
        return fail("expected \"key in (a,b)\" or \"key notin (a,b)\"");
      }
      requirement.op = words[1] == "in" ? Op::kIn : Op::kNotIn;
      if (absl::Status s = set_key(words[0]); !s.ok()) return s;
      absl::string_view list = part.substr(paren + 1, part.size() - paren - 2);
      if (absl::StripAsciiWhitespace(list).empty())
        return fail("the value list is empty");
      for (absl::string_view value :
           absl::StrSplit(list, absl::ByAnyChar(",|"))) {
        if (absl::Status s = add_value(value); !s.ok()) return s;
      }
    } else if (absl::ConsumePrefix(&part, "!")) {
      requirement.op = Op::kNotExists;
      if (absl::Status s = set_key(part); !s.ok()) return s;
    } else {
      requirement.op = Op::kExists;
      if (absl::Status s = set_key(part); !s.ok()) return s;
    }
    selector.requirements_.push_back(std::move(requirement));
  }
  return selector;
}

bool LabelSelector::Matches(const Labels& labels) const {
  for (const Requirement& requirement : requirements_) {
    auto it = labels.find(requirement.key);
    const bool present = it != labels.end();
    switch (requirement.op) {
      case Op::kExists:
        if (!present) return false;
        break;
      case Op::kNotExists:
        if (present) return false;
        break;
      case Op::kIn:
        if (!present || requirement.values.count(it->second) == 0) return false;
        break;
      case Op::kNotIn:
        if (present && requirement.values.count(it->second) > 0) return false;
        break;
    }
  }
  return true;
}

std::string LabelSelector::ToString() const {
  std::vector<std::string> parts;
  for (const Requirement& requirement : requirements_) {
    switch (requirement.op) {
      case Op::kExists:
        parts.push_back(requirement.key);
        break;
      case Op::kNotExists:
        parts.push_back(absl::StrCat("!", requirement.key));
        break;
      case Op::kIn:
      case Op::kNotIn: {
        const bool in = requirement.op == Op::kIn;
        if (requirement.values.size() == 1) {
          parts.push_back(absl::StrCat(
              requirement.key, in ? "=" : "!=", *requirement.values.begin()));
        } else {
          parts.push_back(
              absl::StrCat(requirement.key, in ? " in (" : " notin (",
                           absl::StrJoin(requirement.values, ","), ")"));
        }
        break;
      }
    }
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace ecliptix
