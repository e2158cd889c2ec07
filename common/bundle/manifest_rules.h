// The rules of a manifest's day-2 declarations (operation arguments, the
// configuration schema, read-only queries, batch operations, job templates,
// metric collectors),
// shared by bundle validation, the server (which checks a request before
// anything is sent) and the agent (which checks again before it runs).
#ifndef ECLIPTIX_COMMON_BUNDLE_MANIFEST_RULES_H_
#define ECLIPTIX_COMMON_BUNDLE_MANIFEST_RULES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ecliptix/fleet/v1/bundle.pb.h"

namespace ecliptix::bundle {

// Whether `value` parses as `type` ("int", "bool", "decimal"; any text for
// "text").
bool HasType(const std::string& value, const std::string& type);

// The operation's arguments: INVALID_ARGUMENT for an argument the operation
// has no parameter for, a required parameter left out, or a value not of its
// parameter's type (the value itself is never repeated: it may be a secret).
absl::Status CheckArguments(
    const fleet::v1::Operation& operation,
    const std::map<std::string, std::string>& arguments);

// nullptr when the manifest's schema has no such key.
const fleet::v1::ConfigKeySpec* FindConfigKey(
    const fleet::v1::BundleManifest& manifest, absl::string_view key);

// A value for a key: INVALID_ARGUMENT naming the key, its type and its range
// or allowed values when the value does not fit.
absl::Status CheckConfigValue(const fleet::v1::ConfigKeySpec& key,
                              const std::string& value);

// Every problem of the manifest's day-2 declarations, one message each
// (empty when they are fine): read-only operations that are not a single
// SELECT, batch specs without columns, the configuration schema (types,
// ranges, defaults, its get and set operations), job templates (operation,
// arguments, schedule present), metric collectors (unique names, one SELECT
// per dialect, :Cursor exactly when incremental, value columns declared,
// valid metric and label names, a metric never declared with two kinds, an
// interval of at least 1 s).
std::vector<std::string> DayTwoProblems(
    const fleet::v1::BundleManifest& manifest);

}  // namespace ecliptix::bundle

#endif  // ECLIPTIX_COMMON_BUNDLE_MANIFEST_RULES_H_
