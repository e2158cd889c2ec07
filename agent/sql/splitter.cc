#include "agent/sql/splitter.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ecliptix::agent::sql {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int kMaxGoCount = 1000;

bool IsIdentStart(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return absl::ascii_isalpha(u) || c == '_' || u >= 0x80;
}

// PostgreSQL and SQLite both allow '$' after an identifier's first character.
bool IsIdentChar(char c) {
  return IsIdentStart(c) ||
         absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// A dollar quote's tag is an identifier without '$'.
bool IsTagChar(char c) {
  return IsIdentStart(c) || absl::ascii_isdigit(static_cast<unsigned char>(c));
}

// One pass over the script. Tokens that matter for splitting (quotes,
// comments, words, parentheses, ';', GO lines) are recognized; everything else
// is copied through as part of the current statement.
class Splitter {
 public:
  Splitter(v1::Dialect dialect, absl::string_view script)
      : dialect_(dialect), script_(script) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < script_.size(); ++i) {
      if (script_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Statement>> Run();

 private:
  int LineOf(size_t pos) const {
    return static_cast<int>(
        std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) -
        line_starts_.begin());
  }

  absl::Status Unterminated(size_t start, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "unterminated ", what, " starting at line ", LineOf(start)));
  }

  // `start` is at the opening character. `doubled`: the closing character
  // written twice stands for itself; `backslash`: a backslash escapes the next
  // character.
  absl::StatusOr<size_t> SkipQuoted(size_t start, char close, bool doubled,
                                    bool backslash,
                                    absl::string_view what) const;
  // `start` is at "/*".
  absl::StatusOr<size_t> SkipBlockComment(size_t start) const;
  // `start` is at '$'. nullopt when no dollar quote opens there.
  absl::StatusOr<std::optional<size_t>> SkipDollarQuote(size_t start) const;
  // When the line starting at `line_start` is a GO line: ends the batch and
  // sets `*next` to the line's end.
  absl::StatusOr<bool> TryGoLine(size_t line_start, size_t* next);

  void OnWord(absl::string_view word);
  bool IsBlockStatement() const;
  // Part of the current statement: [start, end).
  void Mark(size_t start, size_t end) {
    if (statement_start_ == absl::string_view::npos) statement_start_ = start;
    statement_end_ = end;
  }
  // Ends the current statement, adding it `repeat` times unless it is empty.
  void Emit(int repeat);

  const v1::Dialect dialect_;
  const absl::string_view script_;
  std::vector<size_t> line_starts_;
  std::vector<Statement> statements_;

  // The current statement.
  size_t statement_start_ = absl::string_view::npos;
  size_t statement_end_ = 0;
  std::vector<std::string> first_words_;  // Lower case, at most 4.
  bool block_statement_ = false;
  int begin_depth_ = 0;
  int paren_depth_ = 0;
};

absl::StatusOr<size_t> Splitter::SkipQuoted(size_t start, char close,
                                            bool doubled, bool backslash,
                                            absl::string_view what) const {
  for (size_t i = start + 1; i < script_.size(); ++i) {
    const char c = script_[i];
    if (backslash && c == '\\') {
      ++i;
      continue;
    }
    if (c != close) continue;
    if (doubled && i + 1 < script_.size() && script_[i + 1] == close) {
      ++i;
      continue;
    }
    return i + 1;
  }
  return Unterminated(start, what);
}

absl::StatusOr<size_t> Splitter::SkipBlockComment(size_t start) const {
  // SQLite's comments do not nest; PostgreSQL's and SQL Server's do.
  const bool nested = dialect_ != v1::DIALECT_SQLITE;
  int depth = 1;
  size_t i = start + 2;
  while (i + 1 < script_.size()) {
    if (nested && script_[i] == '/' && script_[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (script_[i] == '*' && script_[i + 1] == '/') {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return Unterminated(start, "block comment (/* ... */)");
}

absl::StatusOr<std::optional<size_t>> Splitter::SkipDollarQuote(
    size_t start) const {
  size_t i = start + 1;
  if (i < script_.size() && IsIdentStart(script_[i])) {
    while (i < script_.size() && IsTagChar(script_[i])) ++i;
  }
  if (i >= script_.size() || script_[i] != '$') return std::nullopt;
  const absl::string_view delimiter = script_.substr(start, i + 1 - start);
  const size_t close = script_.find(delimiter, i + 1);
  if (close == absl::string_view::npos) {
    return Unterminated(start,
                        absl::StrCat("dollar-quoted string (", delimiter, ")"));
  }
  return close + delimiter.size();
}

absl::StatusOr<bool> Splitter::TryGoLine(size_t line_start, size_t* next) {
  size_t line_end = script_.find('\n', line_start);
  if (line_end == absl::string_view::npos) line_end = script_.size();
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(
      script_.substr(line_start, line_end - line_start));
  if (rest.size() < 2 || !absl::EqualsIgnoreCase(rest.substr(0, 2), "go")) {
    return false;
  }
  rest.remove_prefix(2);
  if (!rest.empty() &&
      !absl::ascii_isspace(static_cast<unsigned char>(rest[0])) &&
      !absl::StartsWith(rest, "--")) {
    return false;  // GOTO, GO2, ...
  }
  rest = absl::StripLeadingAsciiWhitespace(rest);
  size_t digits = 0;
  while (digits < rest.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(rest[digits]))) {
    ++digits;
  }
  const absl::string_view count_text = rest.substr(0, digits);
  rest = absl::StripLeadingAsciiWhitespace(rest.substr(digits));
  if (!rest.empty() && !absl::StartsWith(rest, "--")) return false;
  int count = 1;
  if (!count_text.empty() && (!absl::SimpleAtoi(count_text, &count) ||
                              count < 1 || count > kMaxGoCount)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", LineOf(line_start), ": GO ", count_text,
                     ": the count must be between 1 and ", kMaxGoCount));
  }
  Emit(count);
  *next = line_end;
  return true;
}

bool Splitter::IsBlockStatement() const {
  const auto word = [&](size_t i) -> absl::string_view {
    return i < first_words_.size() ? absl::string_view(first_words_[i]) : "";
  };
  if (word(0) != "create") return false;
  if (dialect_ == v1::DIALECT_SQLITE) {
    return word(1) == "trigger" ||
           ((word(1) == "temp" || word(1) == "temporary") &&
            word(2) == "trigger");
  }
  const auto routine = [](absl::string_view w) {
    return w == "function" || w == "procedure";
  };
  return routine(word(1)) ||
         (word(1) == "or" && word(2) == "replace" && routine(word(3)));
}

void Splitter::OnWord(absl::string_view word) {
  if (dialect_ == v1::DIALECT_MSSQL) return;
  const std::string lower = absl::AsciiStrToLower(word);
  if (first_words_.size() < 4) {
    first_words_.push_back(lower);
    block_statement_ = IsBlockStatement();
  }
  if (!block_statement_) return;
  // psql's rule: BEGIN ... END of a routine body only counts outside
  // parentheses; CASE ... END only inside such a body.
  if (dialect_ == v1::DIALECT_POSTGRESQL && paren_depth_ > 0) return;
  if (lower == "begin") {
    ++begin_depth_;
  } else if (lower == "case") {
    if (begin_depth_ > 0) ++begin_depth_;
  } else if (lower == "end") {
    if (begin_depth_ > 0) --begin_depth_;
  }
}

void Splitter::Emit(int repeat) {
  if (statement_start_ != absl::string_view::npos) {
    Statement statement;
    statement.text = std::string(
        script_.substr(statement_start_, statement_end_ - statement_start_));
    statement.line = LineOf(statement_start_);
    for (int i = 0; i < repeat; ++i) statements_.push_back(statement);
  }
  statement_start_ = absl::string_view::npos;
  statement_end_ = 0;
  first_words_.clear();
  block_statement_ = false;
  begin_depth_ = 0;
  paren_depth_ = 0;
}

absl::StatusOr<std::vector<Statement>> Splitter::Run() {
  if (dialect_ != v1::DIALECT_SQLITE && dialect_ != v1::DIALECT_POSTGRESQL &&
      dialect_ != v1::DIALECT_MSSQL) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split SQL of dialect ", v1::Dialect_Name(dialect_),
                     " (", static_cast<int>(dialect_),
                     "): use DIALECT_SQLITE, DIALECT_POSTGRESQL or "
                     "DIALECT_MSSQL"));
  }
  const bool sqlite = dialect_ == v1::DIALECT_SQLITE;
  const bool postgresql = dialect_ == v1::DIALECT_POSTGRESQL;
  const bool mssql = dialect_ == v1::DIALECT_MSSQL;
  const size_t n = script_.size();
  size_t i = 0;
  while (i < n) {
    if (mssql && (i == 0 || script_[i - 1] == '\n')) {
      absl::StatusOr<bool> go = TryGoLine(i, &i);
      if (!go.ok()) return go.status();
      if (*go) continue;
    }
    const char c = script_[i];
    const char next = i + 1 < n ? script_[i + 1] : '\0';
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '-' && next == '-') {
      i = script_.find('\n', i);
      if (i == absl::string_view::npos) i = n;
      continue;
    }
    if (c == '/' && next == '*') {
      absl::StatusOr<size_t> end = SkipBlockComment(i);
      if (!end.ok()) return end.status();
      i = *end;
      continue;
    }
    if (c == ';' && !mssql) {
      if (paren_depth_ == 0 && begin_depth_ == 0) {
        Emit(1);
      } else {
        Mark(i, i + 1);
      }
      ++i;
      continue;
    }

    const size_t token = i;
    absl::StatusOr<size_t> end = i + 1;
    if (c == '\'') {
      end = SkipQuoted(i, '\'', /*doubled=*/true, /*backslash=*/false,
                       "string literal ('...')");
    } else if (c == '"') {
      end = SkipQuoted(i, '"', /*doubled=*/true, /*backslash=*/false,
                       "quoted identifier (\"...\")");
    } else if (c == '[' && !postgresql) {
      end = SkipQuoted(i, ']', /*doubled=*/true, /*backslash=*/false,
                       "bracketed identifier ([...])");
    } else if (c == '`' && sqlite) {
      end = SkipQuoted(i, '`', /*doubled=*/true, /*backslash=*/false,
                       "quoted identifier (`...`)");
    } else if (c == '$' && postgresql) {
      absl::StatusOr<std::optional<size_t>> dollar = SkipDollarQuote(i);
      if (!dollar.ok()) return dollar.status();
      if (dollar->has_value()) {
        end = **dollar;
      } else {
        // A parameter ($1) or a stray '$'.
        size_t j = i + 1;
        while (j < n && IsIdentChar(script_[j])) ++j;
        end = j;
      }
    } else if (sqlite && (c == '$' || c == ':' || c == '@') &&
               IsIdentChar(next)) {
      // A named parameter, not a word.
      size_t j = i + 1;
      while (j < n && IsIdentChar(script_[j])) ++j;
      end = j;
    } else if (IsIdentStart(c)) {
      size_t j = i + 1;
      while (j < n && IsIdentChar(script_[j])) ++j;
      const absl::string_view word = script_.substr(i, j - i);
      if (postgresql && j < n && script_[j] == '\'' &&
          (word == "E" || word == "e")) {
        end = SkipQuoted(j, '\'', /*doubled=*/true, /*backslash=*/true,
                         "escape string literal (E'...')");
        if (!end.ok()) return Unterminated(i, "escape string literal (E'...')");
      } else {
        OnWord(word);
        end = j;
      }
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      size_t j = i + 1;
      while (j < n && (IsIdentChar(script_[j]) || script_[j] == '.')) ++j;
      end = j;
    } else if (c == '(' && postgresql) {
      // Only psql lets parentheses hide ';' (CREATE RULE ... DO (...; ...)).
      ++paren_depth_;
    } else if (c == ')' && postgresql) {
      if (paren_depth_ > 0) --paren_depth_;
    }
    if (!end.ok()) return end.status();
    i = *end;
    Mark(token, i);
  }
  Emit(1);
  return std::move(statements_);
}

}  // namespace

absl::StatusOr<std::vector<Statement>> SplitStatements(
    fleet::v1::Dialect dialect, absl::string_view script) {
  return Splitter(dialect, script).Run();
}

}  // namespace ecliptix::agent::sql
