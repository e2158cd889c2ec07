#include "server/operations/success_gate.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ecliptix::server::operations {
namespace {

// One of the two figures compared.
struct Figure {
  // As named in messages.
  const char* name;
  double limit;
  // The figure of `figures`; nullopt without calls.
  std::optional<double> (*of)(const WindowFigures& figures);
  // The value as people read it.
  std::string (*format)(double value);
};

std::optional<double> AverageMs(const WindowFigures& figures) {
  if (figures.calls <= 0) return std::nullopt;
  return figures.execution_ms / figures.calls;
}

std::optional<double> ErrorRate(const WindowFigures& figures) {
  if (figures.calls <= 0) return std::nullopt;
  return figures.error_rate;
}

std::string Ms(double value) { return absl::StrFormat("%.1f ms", value); }
std::string Percent(double value) {
  return absl::StrFormat("%.3g%%", value * 100);
}

}  // namespace

SuccessVerdict JudgeSuccess(const std::vector<std::string>& changed,
                            const SuccessFigures& after,
                            const SuccessFigures& before,
                            const std::optional<SuccessFigures>& unchanged,
                            const SuccessLimits& limits) {
  const Figure figures[] = {
      {"procedure_execution_ms avg", limits.max_avg_procedure_ms, &AverageMs,
       &Ms},
      {"errors rate", limits.max_error_rate, &ErrorRate, &Percent},
  };
  std::vector<std::string> broken;
  std::vector<std::string> held;
  int judged = 0;
  for (const std::string& database : changed) {
    auto found = after.by_database.find(database);
    if (found == after.by_database.end() || found->second.calls <= 0) continue;
    ++judged;
    auto previous = before.by_database.find(database);
    for (const Figure& figure : figures) {
      const std::optional<double> value = figure.of(found->second);
      if (!value.has_value()) continue;
      const std::optional<double> was = previous == before.by_database.end()
                                            ? std::nullopt
                                            : figure.of(previous->second);
      const std::optional<double> others =
          unchanged.has_value() ? figure.of(unchanged->pooled) : std::nullopt;
      const bool over = *value > figure.limit &&
                        (!was || *value > limits.factor * *was) &&
                        (!others || *value > limits.factor * *others);
      const std::string comparison = absl::StrCat(
          "vs ", was ? figure.format(*was) : "no calls", " before and ",
          !unchanged.has_value() ? "no unchanged databases"
          : others
              ? absl::StrCat(figure.format(*others), " on unchanged databases")
              : "no calls on unchanged databases",
          " (limit ", figure.format(figure.limit), ")");
      if (over) {
        broken.push_back(absl::StrCat(figure.name, " ", figure.format(*value),
                                      " on ", database, " after the wave ",
                                      comparison));
      } else if (held.size() < 2 * 3) {
        held.push_back(absl::StrCat(figure.name, " ", figure.format(*value),
                                    " on ", database, " ", comparison));
      }
    }
  }
  SuccessVerdict verdict;
  if (!broken.empty()) {
    verdict.passed = false;
    verdict.detail =
        absl::StrCat("success gate: ", absl::StrJoin(broken, "; "));
    return verdict;
  }
  if (judged == 0) {
    verdict.detail =
        "success gate: no procedure calls on the changed databases during the "
        "soak; nothing to compare";
    return verdict;
  }
  verdict.detail = absl::StrCat(
      "success gate held on ", judged,
      judged == 1 ? " database: " : " databases: ", absl::StrJoin(held, "; "),
      judged > 3 ? "; ..." : "");
  return verdict;
}

}  // namespace ecliptix::server::operations
