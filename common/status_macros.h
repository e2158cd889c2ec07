// Early-return helpers for absl::Status and absl::StatusOr.
#ifndef ECLIPTIX_COMMON_STATUS_MACROS_H_
#define ECLIPTIX_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ECLIPTIX_CONCAT_INNER_(a, b) a##b
#define ECLIPTIX_CONCAT_(a, b) ECLIPTIX_CONCAT_INNER_(a, b)

// Returns the status from the current function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    const absl::Status ecliptix_status_ = (expr);        \
    if (!ecliptix_status_.ok()) return ecliptix_status_; \
  } while (false)

// `lhs = *expr` when `expr` (a StatusOr) is OK; otherwise returns its status.
#define ASSIGN_OR_RETURN(lhs, expr)                                           \
  ASSIGN_OR_RETURN_IMPL_(ECLIPTIX_CONCAT_(ecliptix_statusor_, __LINE__), lhs, \
                         expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // ECLIPTIX_COMMON_STATUS_MACROS_H_
