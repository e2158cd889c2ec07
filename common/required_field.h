// The one wording of "a required request field is missing", so every RPC
// names the field (by its proto name) the same way.
#ifndef ECLIPTIX_COMMON_REQUIRED_FIELD_H_
#define ECLIPTIX_COMMON_REQUIRED_FIELD_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ecliptix {

// INVALID_ARGUMENT "<field> is required[: <what>]", where `what` says what
// to put there.
inline absl::Status RequiredFieldError(absl::string_view field,
                                       absl::string_view what = {}) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is required", what.empty() ? "" : ": ", what));
}

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_REQUIRED_FIELD_H_
