// The success-metrics gate between the waves of a rollout, as pure functions:
// the figures the shell reads from the metrics (per database and pooled over
// a window) and the comparison that decides whether a finished wave broke the
// runbook's success metrics. The engine (engine.h) owns the soak timing and
// what a broken criterion does to the rollout.
//
// The comparison, for each database the wave changed and each of two figures
// (average procedure time = procedure_execution_ms / procedure_calls; the
// metrics' "errors" rate): `after` is the database's figure over the soak,
// `before` its figure over the baseline window before the rollout was
// created, `unchanged` the figure pooled over the databases not changed yet
// over the same soak. The criterion is broken when
//   after > limit (100 ms, 0.1%)
//   and after > factor (2) x before      (when the database had calls before)
//   and after > factor (2) x unchanged   (when unchanged databases had calls)
// so a database (or a fleet) that was over the limit already is not blamed on
// the wave, and a figure is judged on the limit alone when there is nothing
// to compare it with. A database without calls during the soak is not judged.
#ifndef ECLIPTIX_SERVER_OPERATIONS_SUCCESS_GATE_H_
#define ECLIPTIX_SERVER_OPERATIONS_SUCCESS_GATE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ecliptix::server::operations {

// Databases' figures over one window.
struct WindowFigures {
  // procedure_calls, summed.
  double calls = 0;
  // procedure_execution_ms, summed.
  double execution_ms = 0;
  // The "errors" rate (failed calls per call); nullopt without calls.
  std::optional<double> error_rate;
};

// What the shell reads for a set of databases and a window.
struct SuccessFigures {
  // Databases with calls in the window.
  std::map<std::string, WindowFigures> by_database;
  // All the asked databases together.
  WindowFigures pooled;
};

struct SuccessLimits {
  double max_avg_procedure_ms = 100;
  double max_error_rate = 0.001;
  // How much worse than a reference a figure must be to be the wave's doing.
  double factor = 2;
};

// Soak and baseline when the request leaves them 0.
inline constexpr absl::Duration kDefaultSoak = absl::Minutes(5);
inline constexpr absl::Duration kDefaultBaseline = absl::Hours(1);

struct SuccessVerdict {
  bool passed = true;
  // The broken criteria ("success gate: procedure_execution_ms avg 182.4 ms on
  // db-1 after the wave vs 3.1 ms before and 2.9 ms on unchanged databases
  // (limit 100 ms)"), or what held, for people.
  std::string detail;
};

// Compares the `changed` databases' figures over the soak (`after`) with
// `before` (the same databases over the baseline) and `unchanged` (nullopt:
// no database is left unchanged). See the top of the file.
SuccessVerdict JudgeSuccess(const std::vector<std::string>& changed,
                            const SuccessFigures& after,
                            const SuccessFigures& before,
                            const std::optional<SuccessFigures>& unchanged,
                            const SuccessLimits& limits = {});

}  // namespace ecliptix::server::operations

#endif  // ECLIPTIX_SERVER_OPERATIONS_SUCCESS_GATE_H_
