// Drivers' messages made fit for one line of a status or a log.
#ifndef ECLIPTIX_COMMON_SQL_TEXT_H_
#define ECLIPTIX_COMMON_SQL_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace ecliptix::sql {

// The first line of a driver message, without surrounding whitespace.
std::string FirstLine(absl::string_view message);

// A driver message on one line: its lines joined with "; ", surrounding
// whitespace removed.
std::string OneLine(absl::string_view message);

}  // namespace ecliptix::sql

#endif  // ECLIPTIX_COMMON_SQL_TEXT_H_
