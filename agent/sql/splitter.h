// Splitting SQL scripts into the statements (or, for T-SQL, the batches) the
// agent sends to the database one at a time. Owns the lexical rules of each
// dialect that decide where a statement ends: quotes, comments, dollar quotes,
// trigger and function bodies, GO lines. It does not parse SQL beyond that.
#ifndef ECLIPTIX_AGENT_SQL_SPLITTER_H_
#define ECLIPTIX_AGENT_SQL_SPLITTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecliptix/fleet/v1/bundle.pb.h"

namespace ecliptix::agent::sql {

struct Statement {
  // The statement without surrounding whitespace, leading or trailing comments
  // and the terminating ';' (or GO line). Comments inside it are kept.
  std::string text;
  // 1-based line of the statement's first character that is neither blank nor
  // part of a comment.
  int line = 0;
};

// Splits `script` into statements, in order. Statements holding only
// whitespace and comments are dropped.
//
// DIALECT_SQLITE: ';' ends a statement outside '...', "...", [...], `...`,
//   -- and /* */ comments, and outside the BEGIN ... END body of
//   CREATE [TEMP|TEMPORARY] TRIGGER (CASE ... END counted inside it).
// DIALECT_POSTGRESQL: as psql does: ';' ends a statement outside '...' (''
//   escapes), E'...' (backslash escapes), "...", -- comments, nested /* */
//   comments, $$...$$ and $tag$...$tag$ (not $1 parameters), parentheses, and
//   the BEGIN [ATOMIC] ... END body of CREATE [OR REPLACE] FUNCTION|PROCEDURE.
// DIALECT_MSSQL: batches end at lines holding only GO (any case, optional
//   blanks, optional "-- comment"), outside strings and comments; `GO n`
//   repeats the batch n times (1 <= n <= 1000), as sqlcmd does. Semicolons do
//   not split batches.
//
// INVALID_ARGUMENT naming the line for an unterminated quote, comment or
// dollar quote, a bad GO count, or an unspecified dialect.
absl::StatusOr<std::vector<Statement>> SplitStatements(
    fleet::v1::Dialect dialect, absl::string_view script);

}  // namespace ecliptix::agent::sql

#endif  // ECLIPTIX_AGENT_SQL_SPLITTER_H_
