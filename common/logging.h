// Process-wide logging set-up: one named spdlog logger per component, text or
// JSON lines on stderr.
#ifndef ECLIPTIX_COMMON_LOGGING_H_
#define ECLIPTIX_COMMON_LOGGING_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace ecliptix {

// Sets the level ("trace", "debug", "info", "warn", "error", "off") and format
// ("text" or "json") of every logger, existing and future. INVALID_ARGUMENT
// names the bad value.
absl::Status ConfigureLogging(absl::string_view level,
                              absl::string_view format);

// The logger of a component ("registry", "agent.stream", ...), created on first
// use.
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Escapes a string for inclusion in a JSON string literal.
std::string JsonEscape(absl::string_view text);

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_LOGGING_H_
