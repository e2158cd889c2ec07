// Rules for identifiers that cross the wire (database ids), checked the same
// way by agent and server.
#ifndef ECLIPTIX_COMMON_IDENTIFIERS_H_
#define ECLIPTIX_COMMON_IDENTIFIERS_H_

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ecliptix {

inline constexpr size_t kMaxDatabaseIdLength = 128;

// A database id is 1-128 characters: letters, digits, '.', '_', '-', ':'.
inline absl::Status ValidateDatabaseId(absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("database id is empty");
  if (id.size() > kMaxDatabaseIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "database id is longer than ", kMaxDatabaseIdLength, " characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-' &&
        c != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "database id \"", id, "\" contains '", absl::string_view(&c, 1),
          "': use letters, digits, '.', '_', '-' and ':'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_IDENTIFIERS_H_
