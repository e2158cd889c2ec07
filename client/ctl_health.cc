#include "client/ctl_health.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/ctl_format.h"
#include "client/ctl_metrics.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

std::string VerdictName(v1::HealthVerdict verdict) {
  switch (verdict) {
    case v1::HEALTH_VERDICT_PASS:
      return "PASS";
    case v1::HEALTH_VERDICT_FAIL:
      return "FAIL";
    case v1::HEALTH_VERDICT_NO_DATA:
      return "NO_DATA";
    default:
      return "?";
  }
}

// A value in its unit, as people read it.
std::string Shown(double value, const std::string& unit) {
  if (unit == "ms") return absl::StrFormat("%.1f ms", value);
  if (unit == "failed calls per call") {
    return absl::StrFormat("%.3f%%", value * 100);
  }
  if (unit == "logged per call") return absl::StrFormat("%.1f%%", value * 100);
  return MetricNumber(value);
}

std::string Threshold(const v1::HealthCriterion& criterion) {
  const std::string& name = criterion.name();
  const std::string value = Shown(criterion.threshold(), criterion.unit());
  if (name == "avg_procedure_time" || name == "error_rate") {
    return absl::StrCat("< ", value);
  }
  if (name == "blocking_queries") return absl::StrCat("<= ", value);
  if (name == "auth_attempts_logged") return absl::StrCat(">= ", value);
  // lockout: the failed attempts that lock a number.
  return absl::StrCat("locks after ", value);
}

void AddRows(const v1::HealthRow& row, const std::string& name,
             std::vector<std::vector<std::string>>& rows) {
  for (const v1::HealthCriterion& criterion : row.criteria()) {
    rows.push_back({name, criterion.name(),
                    criterion.verdict() == v1::HEALTH_VERDICT_NO_DATA
                        ? "-"
                        : Shown(criterion.value(), criterion.unit()),
                    Threshold(criterion), VerdictName(criterion.verdict()),
                    criterion.message()});
  }
}

absl::Status Health(const Invocation& invocation, CommandRuntime& runtime) {
  v1::GetHealthReportRequest request;
  request.set_selector(invocation.Flag("selector"));
  absl::Duration range = absl::Hours(1);
  if (!invocation.Flag("range").empty()) {
    ASSIGN_OR_RETURN(range,
                     ParseMetricsDuration("range", invocation.Flag("range")));
  }
  *request.mutable_range() = ToProtoDuration(range);
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::HealthReport report, client->GetHealthReport(request));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(report));
    runtime.out() << json << "\n";
  } else {
    runtime.out() << HealthTable(report);
  }
  if (HealthFailed(report)) runtime.set_exit_code(kExitFailure);
  return absl::OkStatus();
}

}  // namespace

bool HealthFailed(const v1::HealthReport& report) {
  auto failed = [](const v1::HealthRow& row) {
    for (const v1::HealthCriterion& criterion : row.criteria()) {
      if (criterion.verdict() == v1::HEALTH_VERDICT_FAIL) return true;
    }
    return false;
  };
  for (const v1::HealthRow& row : report.databases()) {
    if (failed(row)) return true;
  }
  return failed(report.fleet());
}

std::string HealthTable(const v1::HealthReport& report) {
  std::vector<std::vector<std::string>> rows = {
      {"DATABASE", "CRITERION", "VALUE", "THRESHOLD", "RESULT", "DETAIL"}};
  for (const v1::HealthRow& row : report.databases()) {
    AddRows(row, row.database_id(), rows);
  }
  AddRows(report.fleet(), "(fleet)", rows);
  // Passed, failed, without data.
  int counts[3] = {0, 0, 0};
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::string& result = rows[i][4];
    ++counts[result == "PASS" ? 0 : result == "FAIL" ? 1 : 2];
  }
  const absl::Duration range = FromProtoTimestamp(report.end_time()) -
                               FromProtoTimestamp(report.start_time());
  return absl::StrCat(
      AlignedTable(rows), counts[1] > 0 ? "UNHEALTHY" : "healthy", ": ",
      counts[0], " passed, ", counts[1], " failed, ", counts[2],
      " without data, over the last ", absl::FormatDuration(range), ", ",
      report.databases_size(),
      report.databases_size() == 1 ? " database\n" : " databases\n");
}

NounSpec HealthNoun() {
  return {"health",
          "The runbook's success metrics per database and fleet-wide.",
          {{"",
            {},
            "The runbook's success metrics per database and fleet-wide",
            "Criteria: avg_procedure_time (< 100 ms per call), error_rate "
            "(< 0.1% of calls\nfailed), blocking_queries (no session waiting "
            "for a lock), auth_attempts_logged\n(a LOGIN_* audit event for "
            "every LoginMembership call), lockout (logins refused\nonce a "
            "number reached Authentication.MaxFailedAttempts; NO_DATA while "
            "not exercised).\nEach is PASS, FAIL or NO_DATA, per database and "
            "for the fleet, over the last --range.\nExit status: 1 when a "
            "criterion fails, 0 when every one passes or has no data.\n"
            "With -o json: the HealthReport.\n"
            "Example: ecliptixctl health --selector=env=prod --range=24h\n",
            {{"selector", Kind::kString, "SELECTOR", kSelectorHelp},
             {"range", Kind::kString, "DURATION",
              "how far back, e.g. 15m, 1h, 24h (default 1h)"}},
            Health}}};
}

}  // namespace ecliptix::client::ctl
