// History: the schema history table the agent keeps inside each target
// (`ecliptix_schema_history`, like Flyway's), its per-dialect DDL and every
// read and write of it. It knows nothing of bundles' files or of running SQL:
// the executor decides, the history records.
//
// One row per attempt. `is_current` = 1 marks, for each (bundle_name, phase,
// step), the one row that describes the database now (a partial unique index
// enforces at most one); every other row is the record of an earlier attempt.
// So "what is applied now" is
//   SELECT * FROM ecliptix_schema_history
//   WHERE is_current = 1 AND outcome = 'APPLIED'
// Rows are keyed by the bundle's NAME, not its id: a new version of a bundle
// finds the history of the previous one and re-runs only what changed.
//
// Outcomes: APPLIED (current: in effect), REVERTED (current: undone), RUNNING
// (current: a non-transactional step started and has not finished, or the
// agent died in it), FAILED (a failed attempt; current only for a
// non-transactional step, whose changes may be partly in place), UNKNOWN (a
// RUNNING row that a repair cleared: nobody knows how far it got), BASELINED
// (current: the step's objects were already in the database when it was
// adopted; recorded without running, in effect like APPLIED, never reverted).
#ifndef ECLIPTIX_AGENT_EXECUTOR_HISTORY_H_
#define ECLIPTIX_AGENT_EXECUTOR_HISTORY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/target/target.h"
#include "ecliptix/fleet/v1/bundle.pb.h"

namespace ecliptix::agent {

inline constexpr char kHistoryTable[] = "ecliptix_schema_history";

inline constexpr char kOutcomeApplied[] = "APPLIED";
inline constexpr char kOutcomeFailed[] = "FAILED";
inline constexpr char kOutcomeReverted[] = "REVERTED";
inline constexpr char kOutcomeUnknown[] = "UNKNOWN";
inline constexpr char kOutcomeRunning[] = "RUNNING";
inline constexpr char kOutcomeBaselined[] = "BASELINED";

// APPLIED or BASELINED: the step's objects are in place.
bool IsInEffect(const std::string& outcome);

// "VERSIONED" / "REPEATABLE", as stored.
std::string StepKindText(fleet::v1::StepKind kind);

struct HistoryRow {
  int64_t id = 0;  // Assigned by the database; 0 before insertion.
  std::string bundle_name;
  std::string bundle_version;
  std::string bundle_id;
  std::string phase;
  std::string step;
  std::string kind;      // StepKindText.
  std::string checksum;  // "sha256:..." of the step's SQL for the dialect.
  std::string outcome;   // kOutcome*.
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();  // InfinitePast: not yet.
  int64_t duration_ms = 0;
  int64_t rows_affected = 0;
  std::string agent_version;
  std::string error;  // Empty unless FAILED; repairs note what they did here.
  bool is_current = false;
};

// (phase, step) -> the current row, for one bundle name.
using CurrentRows = std::map<std::pair<std::string, std::string>, HistoryRow>;

class History {
 public:
  // `database` must outlive the history; every call uses its connection.
  explicit History(Target* database);

  // Whether the table exists (reads never create it: a plan changes nothing).
  absl::StatusOr<bool> Exists();
  // Creates the table and its indexes when missing.
  absl::Status Ensure();

  // The current rows of one bundle (empty when the table does not exist).
  absl::StatusOr<CurrentRows> LoadCurrent(const std::string& bundle_name);
  // Every row, oldest first (empty when the table does not exist).
  absl::StatusOr<std::vector<HistoryRow>> LoadAll();
  // Every row of one step of one bundle name, oldest first.
  absl::StatusOr<std::vector<HistoryRow>> LoadStep(
      const std::string& bundle_name, const std::string& phase,
      const std::string& step);

  // Makes `row` the current row of its step: clears the flag on the previous
  // current row and inserts `row` with is_current = 1. Not atomic by itself:
  // callers run it inside their transaction.
  absl::Status InsertCurrent(const HistoryRow& row);
  // Inserts `row` as a record of an attempt only (is_current = 0).
  absl::Status InsertRecord(const HistoryRow& row);
  // Rewrites the outcome, end, duration, rows and error of the step's current
  // row (a RUNNING row becoming APPLIED / FAILED / REVERTED).
  absl::Status FinishCurrent(const HistoryRow& row);
  // The step keeps no current row: it is pending again. A RUNNING row becomes
  // UNKNOWN on the way (its end was never recorded).
  // `note` is appended to the row's error column (what the repair did).
  absl::Status ClearCurrent(const HistoryRow& current, const std::string& note);

 private:
  absl::Status Insert(const HistoryRow& row, bool current);
  fleet::v1::Dialect dialect() const;

  Target* database_;
};

// "2024-08-24T10:00:00.123Z"; "" for InfinitePast.
std::string FormatHistoryTime(absl::Time time);
absl::Time ParseHistoryTime(const std::string& text);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_HISTORY_H_
