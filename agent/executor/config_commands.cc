#include "agent/executor/config_commands.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/bundle/manifest_rules.h"
#include "common/status_macros.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

absl::Status CheckSchema(const bundle::Bundle& bundle) {
  const v1::ConfigSchema& schema = bundle.manifest().config();
  if (schema.keys().empty() || schema.get_operation().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "bundle ", bundle.manifest().name(), " ", bundle.manifest().version(),
        " declares no configuration (config { ... })"));
  }
  return absl::OkStatus();
}

std::string UnknownKey(const bundle::Bundle& bundle, const std::string& key) {
  return absl::StrCat("\"", key, "\" is not a configuration key of bundle ",
                      bundle.manifest().name(), " ",
                      bundle.manifest().version());
}

// The stored value: the get operation's first column of its first row;
// nullopt when the key is missing (NULL, or no row).
template <typename Runner>
absl::StatusOr<std::optional<std::string>> GetValue(
    const bundle::Bundle& bundle, const std::string& key, Runner&& run) {
  const std::string& get = bundle.manifest().config().get_operation();
  ASSIGN_OR_RETURN(OperationResult result, run(get, {{"ConfigKey", key}}));
  if (result.rows.empty() || result.rows[0].empty() || result.nulls[0][0]) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(result.rows[0][0]);
}

v1::CommandEvent Report(const std::string& key,
                        const std::optional<std::string>& value,
                        const std::optional<std::string>* previous) {
  v1::CommandEvent event;
  v1::ConfigValueReport* report = event.mutable_config_value();
  report->set_key(key);
  report->set_present(value.has_value());
  report->set_value(value.value_or(""));
  if (previous != nullptr) {
    report->set_previous_missing(!previous->has_value());
    report->set_previous_value(previous->value_or(""));
  }
  return event;
}

}  // namespace

absl::Status CheckApplyConfig(const bundle::Bundle& bundle,
                              const v1::ApplyConfigCommand& command) {
  RETURN_IF_ERROR(CheckSchema(bundle));
  if (command.settings().empty()) {
    return absl::InvalidArgumentError("apply_config needs settings");
  }
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const v1::ConfigSetting& setting : command.settings()) {
    if (!seen.insert(setting.key()).second) {
      problems.push_back(
          absl::StrCat("\"", setting.key(), "\" is given twice"));
      continue;
    }
    const v1::ConfigKeySpec* spec =
        bundle::FindConfigKey(bundle.manifest(), setting.key());
    if (spec == nullptr) {
      problems.push_back(UnknownKey(bundle, setting.key()));
      continue;
    }
    if (absl::Status status = bundle::CheckConfigValue(*spec, setting.value());
        !status.ok()) {
      problems.push_back(std::string(status.message()));
    }
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nothing was changed: ", absl::StrJoin(problems, "; ")));
  }
  return absl::OkStatus();
}

absl::Status ApplyConfig(Executor& executor, const bundle::Bundle& bundle,
                         const v1::ApplyConfigCommand& command,
                         const CancelSignal& cancel,
                         const CommandEventSink& sink) {
  RETURN_IF_ERROR(CheckApplyConfig(bundle, command));
  const std::string& set = bundle.manifest().config().set_operation();
  auto call = [&](const std::string& operation,
                  std::map<std::string, std::string> arguments) {
    return executor.CallOperation(bundle, operation, arguments);
  };
  auto store = [&](const std::string& key, const std::string& value) {
    return call(set, {{"ConfigKey", key}, {"ConfigValue", value}}).status();
  };

  struct Applied {
    std::string key;
    std::optional<std::string> previous;
    std::optional<std::string> now;
  };
  std::vector<Applied> applied;
  absl::Status failure;
  std::string failed_key;
  for (const v1::ConfigSetting& setting : command.settings()) {
    if (cancel.cancelled()) {
      failure = absl::CancelledError(
          absl::StrCat("cancelled before ", setting.key()));
      break;
    }
    failed_key = setting.key();
    absl::StatusOr<std::optional<std::string>> previous =
        GetValue(bundle, setting.key(), call);
    if (!previous.ok()) {
      failure = previous.status();
      break;
    }
    if (absl::Status stored = store(setting.key(), setting.value());
        !stored.ok()) {
      failure = stored;
      break;
    }
    // From here on the key is changed: it is set back if a later one fails.
    Applied& done = applied.emplace_back();
    done.key = setting.key();
    done.previous = *previous;
    absl::StatusOr<std::optional<std::string>> now =
        GetValue(bundle, setting.key(), call);
    if (!now.ok()) {
      failure = now.status();
      break;
    }
    done.now = *now;
  }

  if (!failure.ok() && cancel.cancelled() &&
      failure.code() != absl::StatusCode::kCancelled) {
    // The cancel interrupted the statement that failed.
    failure = absl::CancelledError(absl::StrCat(
        "cancelled while setting ", failed_key, " (", failure.message(), ")"));
  }
  if (failure.ok()) {
    for (const Applied& done : applied)
      sink(Report(done.key, done.now, &done.previous));
    return absl::OkStatus();
  }

  // Set back, latest first, what this command changed.
  std::vector<std::string> restored;
  std::vector<std::string> not_restored;
  for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
    if (!it->previous.has_value()) {
      not_restored.push_back(absl::StrCat(
          it->key,
          " (it was missing before; the set operation cannot remove "
          "it)"));
    } else if (absl::Status back = store(it->key, *it->previous); !back.ok()) {
      not_restored.push_back(absl::StrCat(it->key, " (", back.message(), ")"));
    } else {
      restored.push_back(it->key);
    }
    // What the database holds now, whatever happened.
    absl::StatusOr<std::optional<std::string>> now =
        GetValue(bundle, it->key, call);
    if (now.ok()) sink(Report(it->key, *now, &it->previous));
  }
  std::string message = failure.code() == absl::StatusCode::kCancelled
                            ? std::string(failure.message())
                            : absl::StrCat("setting ", failed_key,
                                           " failed: ", failure.message());
  if (!restored.empty()) {
    absl::StrAppend(&message, "; the earlier settings of this command (",
                    absl::StrJoin(restored, ", "),
                    ") were set back to their previous values");
  }
  if (!not_restored.empty()) {
    absl::StrAppend(&message,
                    "; NOT set back: ", absl::StrJoin(not_restored, ", "));
  }
  return absl::Status(failure.code(), message);
}

absl::Status CheckReadConfig(const bundle::Bundle& bundle,
                             const v1::ReadConfigCommand& command) {
  RETURN_IF_ERROR(CheckSchema(bundle));
  std::vector<std::string> unknown;
  for (const std::string& key : command.keys()) {
    if (bundle::FindConfigKey(bundle.manifest(), key) == nullptr)
      unknown.push_back(UnknownKey(bundle, key));
  }
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(unknown, "; "));
  }
  return absl::OkStatus();
}

absl::Status ReadConfig(ReadOnlySession& session, const bundle::Bundle& bundle,
                        const v1::ReadConfigCommand& command,
                        const CommandEventSink& sink) {
  RETURN_IF_ERROR(CheckReadConfig(bundle, command));
  std::vector<std::string> keys(command.keys().begin(), command.keys().end());
  if (keys.empty()) {
    for (const v1::ConfigKeySpec& spec : bundle.manifest().config().keys())
      keys.push_back(spec.key());
  }
  auto call = [&](const std::string& operation,
                  std::map<std::string, std::string> arguments) {
    return session.Run(bundle, operation, arguments, /*max_rows=*/1);
  };
  for (const std::string& key : keys) {
    absl::StatusOr<std::optional<std::string>> value =
        GetValue(bundle, key, call);
    if (!value.ok()) {
      return absl::Status(
          value.status().code(),
          absl::StrCat("reading ", key, ": ", value.status().message()));
    }
    sink(Report(key, *value, nullptr));
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::agent
