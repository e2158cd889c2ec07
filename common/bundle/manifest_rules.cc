#include "common/bundle/manifest_rules.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/bundle/bundle.h"

namespace ecliptix::bundle {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

const std::set<std::string>& ValueTypes() {
  static const auto* types =
      new std::set<std::string>{"text", "int", "bool", "decimal"};
  return *types;
}

bool IsNumeric(const std::string& type) {
  return type == "int" || type == "decimal";
}

// Whether `sql` is one SELECT (or WITH ... SELECT) statement: a trailing ';'
// at most, none between statements (outside quoted text).
bool IsSingleSelect(absl::string_view sql) {
  sql = absl::StripAsciiWhitespace(sql);
  absl::ConsumeSuffix(&sql, ";");
  const std::string head =
      absl::AsciiStrToUpper(sql.substr(0, std::min<size_t>(sql.size(), 7)));
  if (!absl::StartsWith(head, "SELECT") && !absl::StartsWith(head, "WITH"))
    return false;
  char quote = 0;
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == ';') {
      return false;
    }
  }
  return true;
}

const v1::Operation* FindOperation(const v1::BundleManifest& manifest,
                                   absl::string_view name) {
  for (const v1::Operation& operation : manifest.operations())
    if (operation.name() == name) return &operation;
  return nullptr;
}

bool HasParameter(const v1::Operation& operation, absl::string_view name) {
  for (const v1::OperationParameter& parameter : operation.parameters())
    if (parameter.name() == name) return true;
  return false;
}

// Letters, digits and '_', not starting with a digit: metric, label and
// collector names (what Prometheus accepts, and safe in any store).
bool IsMetricName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

// Whether `sql` names the parameter `:name` outside quoted text (a '::' cast
// is not a parameter).
bool UsesParameter(absl::string_view sql, absl::string_view name) {
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      continue;
    }
    if (c != ':' || (i > 0 && sql[i - 1] == ':')) continue;
    if (sql.substr(i + 1, name.size()) != name) continue;
    const size_t end = i + 1 + name.size();
    if (end == sql.size() ||
        !(absl::ascii_isalnum(sql[end]) || sql[end] == '_')) {
      return true;
    }
  }
  return false;
}

v1::MetricKind KindOf(const v1::MetricColumn& column) {
  return column.kind() == v1::METRIC_KIND_UNSPECIFIED ? v1::METRIC_KIND_GAUGE
                                                      : column.kind();
}

std::string KindName(v1::MetricKind kind) {
  return kind == v1::METRIC_KIND_DELTA ? "delta" : "gauge";
}

// The collectors' rules (DayTwoProblems).
void CollectorProblems(const v1::BundleManifest& manifest,
                       std::vector<std::string>* problems) {
  std::set<std::string> names;
  // Metric -> its kind and the collector that declared it first: a metric is
  // one series kind fleet-wide, whichever collector feeds it.
  std::map<std::string, std::pair<v1::MetricKind, std::string>> metrics;
  for (const v1::MetricCollector& collector : manifest.collectors()) {
    const std::string where =
        absl::StrCat("collector \"", collector.name(), "\"");
    if (collector.name().empty()) {
      problems->push_back("collectors: a collector needs a name");
    } else if (!IsMetricName(collector.name())) {
      problems->push_back(absl::StrCat(
          where, ": a name is letters, digits and '_' (not first)"));
    } else if (!names.insert(collector.name()).second) {
      problems->push_back(absl::StrCat(where, " is declared twice"));
    }
    if (collector.has_interval()) {
      const int64_t seconds = collector.interval().seconds();
      const int32_t nanos = collector.interval().nanos();
      // 0 means the default (60 s); anything else is at least a second.
      if (seconds < 0 || nanos < 0 ||
          ((seconds != 0 || nanos != 0) && seconds < 1)) {
        problems->push_back(absl::StrCat(
            where, ": interval must be at least 1 s (or unset for 60 s)"));
      }
    }
    const bool incremental = !collector.cursor_column().empty();
    for (int dialect : manifest.dialects()) {
      const std::string dialect_name =
          v1::Dialect_Name(static_cast<v1::Dialect>(dialect));
      const std::string sql =
          SqlFor(collector.query(), static_cast<v1::Dialect>(dialect));
      if (absl::StripAsciiWhitespace(sql).empty()) {
        problems->push_back(
            absl::StrCat(where, ": no ", dialect_name, " query"));
        continue;
      }
      if (!IsSingleSelect(sql)) {
        problems->push_back(absl::StrCat(where, ": its ", dialect_name,
                                         " query is not one SELECT statement"));
      }
      const bool uses_cursor = UsesParameter(sql, "Cursor");
      if (incremental && !uses_cursor) {
        problems->push_back(absl::StrCat(
            where, " is incremental (cursor_column ", collector.cursor_column(),
            ") but its ", dialect_name, " query does not use :Cursor"));
      } else if (!incremental && uses_cursor) {
        problems->push_back(
            absl::StrCat(where, ": its ", dialect_name,
                         " query uses :Cursor but the collector has no "
                         "cursor_column"));
      }
    }
    if (collector.values().empty()) {
      problems->push_back(
          absl::StrCat(where, " declares no value columns (values { ... })"));
    }
    // Result columns are matched without regard to case (PostgreSQL folds
    // unquoted names), so they are compared that way here too.
    std::set<std::string> columns;
    auto claim_column = [&](const std::string& column, const char* role) {
      if (column.empty()) {
        problems->push_back(
            absl::StrCat(where, ": a ", role, " needs its column"));
        return;
      }
      if (!columns.insert(absl::AsciiStrToLower(column)).second) {
        problems->push_back(
            absl::StrCat(where, ": column \"", column, "\" is used twice"));
      }
    };
    if (incremental) claim_column(collector.cursor_column(), "cursor");
    for (const v1::MetricColumn& value : collector.values()) {
      claim_column(value.column(), "value");
      if (!IsMetricName(value.metric())) {
        problems->push_back(absl::StrCat(
            where, ": metric \"", value.metric(),
            "\" is not a metric name (letters, digits and '_', not first)"));
        continue;
      }
      const v1::MetricKind kind = KindOf(value);
      auto [it, added] = metrics.emplace(
          value.metric(), std::make_pair(kind, collector.name()));
      if (!added && it->second.first != kind) {
        problems->push_back(absl::StrCat(
            where, ": metric ", value.metric(), " is declared ", KindName(kind),
            " here and ", KindName(it->second.first), " by collector \"",
            it->second.second, "\""));
      }
    }
    std::set<std::string> labels;
    for (const v1::MetricLabel& label : collector.labels()) {
      claim_column(label.column(), "label");
      if (!IsMetricName(label.label())) {
        problems->push_back(absl::StrCat(
            where, ": label \"", label.label(),
            "\" is not a label name (letters, digits and '_', not first)"));
      } else if (!labels.insert(label.label()).second) {
        problems->push_back(absl::StrCat(where, ": label ", label.label(),
                                         " is declared twice"));
      }
    }
  }
}

}  // namespace

bool HasType(const std::string& value, const std::string& type) {
  if (type == "int") {
    long long parsed = 0;
    return absl::SimpleAtoi(value, &parsed);
  }
  if (type == "bool") {
    bool parsed = false;
    return absl::SimpleAtob(value, &parsed);
  }
  if (type == "decimal") {
    double parsed = 0;
    return absl::SimpleAtod(value, &parsed);
  }
  return true;
}

absl::Status CheckArguments(
    const v1::Operation& operation,
    const std::map<std::string, std::string>& arguments) {
  for (const auto& [name, value] : arguments) {
    if (!HasParameter(operation, name)) {
      std::vector<std::string> known;
      for (const v1::OperationParameter& parameter : operation.parameters())
        known.push_back(parameter.name());
      return absl::InvalidArgumentError(absl::StrCat(
          "operation ", operation.name(), " has no parameter \"", name, "\"",
          known.empty()
              ? " (it takes none)"
              : absl::StrCat(" (it takes ", absl::StrJoin(known, ", "), ")")));
    }
  }
  for (const v1::OperationParameter& parameter : operation.parameters()) {
    auto it = arguments.find(parameter.name());
    if (it == arguments.end()) {
      if (parameter.has_default_value()) continue;
      return absl::InvalidArgumentError(
          absl::StrCat("operation ", operation.name(), " needs parameter \"",
                       parameter.name(), "\" (", parameter.type(), ")"));
    }
    if (!HasType(it->second, parameter.type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter \"", parameter.name(), "\" of operation ",
                       operation.name(), " is ", parameter.type(),
                       "; the value given is not one"));
    }
  }
  return absl::OkStatus();
}

const v1::ConfigKeySpec* FindConfigKey(const v1::BundleManifest& manifest,
                                       absl::string_view key) {
  for (const v1::ConfigKeySpec& spec : manifest.config().keys())
    if (spec.key() == key) return &spec;
  return nullptr;
}

absl::Status CheckConfigValue(const v1::ConfigKeySpec& key,
                              const std::string& value) {
  if (!HasType(value, key.type())) {
    return absl::InvalidArgumentError(
        absl::StrCat(key.key(), " takes ", key.type() == "int" ? "an " : "a ",
                     key.type(), key.type() == "bool" ? " (0 or 1)" : "",
                     "; \"", value, "\" is not one"));
  }
  if (key.type() == "bool" && value != "0" && value != "1") {
    return absl::InvalidArgumentError(absl::StrCat(
        key.key(), " takes a bool written 0 or 1, not \"", value, "\""));
  }
  if (IsNumeric(key.type())) {
    double number = 0;
    (void)absl::SimpleAtod(value, &number);
    double bound = 0;
    const bool below = !key.min_value().empty() &&
                       absl::SimpleAtod(key.min_value(), &bound) &&
                       number < bound;
    const bool above = !key.max_value().empty() &&
                       absl::SimpleAtod(key.max_value(), &bound) &&
                       number > bound;
    if (below || above) {
      std::string range;
      if (!key.min_value().empty() && !key.max_value().empty()) {
        range =
            absl::StrCat("between ", key.min_value(), " and ", key.max_value());
      } else if (!key.min_value().empty()) {
        range = absl::StrCat("at least ", key.min_value());
      } else {
        range = absl::StrCat("at most ", key.max_value());
      }
      return absl::InvalidArgumentError(absl::StrCat(
          key.key(), " must be ", range, "; ", value, " is out of range"));
    }
  }
  if (!key.allowed_values().empty()) {
    bool allowed = false;
    for (const std::string& candidate : key.allowed_values())
      allowed |= candidate == value;
    if (!allowed) {
      return absl::InvalidArgumentError(
          absl::StrCat(key.key(), " must be one of ",
                       absl::StrJoin(key.allowed_values(), ", "), "; \"", value,
                       "\" is not"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> DayTwoProblems(const v1::BundleManifest& manifest) {
  std::vector<std::string> problems;
  for (const v1::Operation& operation : manifest.operations()) {
    const std::string where =
        absl::StrCat("operation \"", operation.name(), "\"");
    if (operation.read_only()) {
      for (int dialect : manifest.dialects()) {
        const std::string sql =
            SqlFor(operation.sql(), static_cast<v1::Dialect>(dialect));
        if (!sql.empty() && !IsSingleSelect(sql)) {
          problems.push_back(
              absl::StrCat(where, " is read_only but its ",
                           v1::Dialect_Name(static_cast<v1::Dialect>(dialect)),
                           " SQL is not one SELECT statement"));
        }
      }
      if (operation.has_batch()) {
        problems.push_back(
            absl::StrCat(where,
                         " is read_only and a batch operation: a "
                         "batch operation changes rows"));
      }
    }
    if (operation.has_batch() &&
        (operation.batch().rows_done_column().empty() ||
         operation.batch().rows_left_column().empty())) {
      problems.push_back(absl::StrCat(
          where, ": batch needs rows_done_column and rows_left_column"));
    }
  }

  const v1::ConfigSchema& config = manifest.config();
  if (!config.keys().empty()) {
    const v1::Operation* get = FindOperation(manifest, config.get_operation());
    const v1::Operation* set = FindOperation(manifest, config.set_operation());
    if (get == nullptr) {
      problems.push_back(absl::StrCat("config: get_operation \"",
                                      config.get_operation(),
                                      "\" is not an operation of the bundle"));
    } else if (!HasParameter(*get, "ConfigKey")) {
      problems.push_back(absl::StrCat("config: get_operation ", get->name(),
                                      " needs a ConfigKey parameter"));
    }
    if (set == nullptr) {
      problems.push_back(absl::StrCat("config: set_operation \"",
                                      config.set_operation(),
                                      "\" is not an operation of the bundle"));
    } else if (!HasParameter(*set, "ConfigKey") ||
               !HasParameter(*set, "ConfigValue")) {
      problems.push_back(absl::StrCat("config: set_operation ", set->name(),
                                      " needs ConfigKey and ConfigValue "
                                      "parameters"));
    }
  }
  std::set<std::string> keys;
  for (const v1::ConfigKeySpec& key : config.keys()) {
    const std::string where = absl::StrCat("config key \"", key.key(), "\"");
    if (key.key().empty()) {
      problems.push_back("config: a key needs a name");
      continue;
    }
    if (!keys.insert(key.key()).second) {
      problems.push_back(absl::StrCat(where, " is declared twice"));
    }
    if (ValueTypes().count(key.type()) == 0) {
      problems.push_back(absl::StrCat(where, " has type \"", key.type(),
                                      "\"; use text, int, bool or decimal"));
      continue;
    }
    if (!IsNumeric(key.type()) &&
        (!key.min_value().empty() || !key.max_value().empty())) {
      problems.push_back(
          absl::StrCat(where,
                       ": min_value and max_value are for int and "
                       "decimal keys"));
    }
    for (const std::string* bound : {&key.min_value(), &key.max_value()}) {
      if (IsNumeric(key.type()) && !bound->empty() &&
          !HasType(*bound, key.type())) {
        problems.push_back(absl::StrCat(where, ": bound \"", *bound,
                                        "\" is not of type ", key.type()));
      }
    }
    double low = 0, high = 0;
    if (!key.min_value().empty() && !key.max_value().empty() &&
        absl::SimpleAtod(key.min_value(), &low) &&
        absl::SimpleAtod(key.max_value(), &high) && low > high) {
      problems.push_back(absl::StrCat(where, ": min_value is above max_value"));
    }
    if (absl::Status status = CheckConfigValue(key, key.default_value());
        !status.ok()) {
      problems.push_back(
          absl::StrCat(where, ": default_value: ", status.message()));
    }
  }

  std::set<std::string> jobs;
  for (const v1::JobTemplate& job : manifest.jobs()) {
    const std::string where = absl::StrCat("job \"", job.name(), "\"");
    if (job.name().empty()) problems.push_back("jobs: a job needs a name");
    if (!job.name().empty() && !jobs.insert(job.name()).second)
      problems.push_back(absl::StrCat(where, " is declared twice"));
    if (job.schedule().empty())
      problems.push_back(absl::StrCat(where, " needs a schedule"));
    const v1::Operation* operation = FindOperation(manifest, job.operation());
    if (operation == nullptr) {
      problems.push_back(absl::StrCat(where, ": operation \"", job.operation(),
                                      "\" is not an operation of the bundle"));
      continue;
    }
    std::map<std::string, std::string> arguments(job.arguments().begin(),
                                                 job.arguments().end());
    if (absl::Status status = CheckArguments(*operation, arguments);
        !status.ok()) {
      problems.push_back(absl::StrCat(where, ": ", status.message()));
    }
  }
  CollectorProblems(manifest, &problems);
  return problems;
}

}  // namespace ecliptix::bundle
