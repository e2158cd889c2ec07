// How ecliptixctl shows rollouts: names of states and gates, the texts of
// `rollout create|get|list|plan`, and RolloutView, the model behind `rollout
// watch` (a snapshot plus the events applied to it) that turns each event into
// log lines and renders the live terminal frame. Pure functions of their inputs
// (the current time is a parameter), so all of it is tested without a server.
#ifndef ECLIPTIX_CLIENT_CTL_ROLLOUT_VIEW_H_
#define ECLIPTIX_CLIENT_CTL_ROLLOUT_VIEW_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/rollout_names.h"
#include "ecliptix/fleet/v1/rollout.pb.h"

namespace ecliptix::client::ctl {

// Names of rollout states, target states and gates (RolloutStateName,
// ParseRolloutState, IsFinalState, GateName, ParseGateName, GateNames...) are
// common/rollout_names.h: the server says them the same way.

// "35 ms", "2.4 s", "2m05s", "1h02m"; negative durations read as 0.
std::string ShortDuration(absl::Duration duration);
// The strategy in one line: "waves 1,25%,100%; failure budget 0; ...".
std::string StrategyText(const fleet::v1::Strategy& strategy);
// "r-12 ecliptix@1.2.0: running, wave 2/3, failures 0/1" (and what it waits
// for); no newline.
std::string RolloutStatusLine(const fleet::v1::Rollout& rollout);
// What `rollout create` prints: the id and a short summary.
std::string RolloutCreatedText(const fleet::v1::Rollout& rollout);
// What `rollout get` prints: every field, the gates, then TargetTable.
std::string RolloutDetails(const fleet::v1::Rollout& rollout, absl::Time now);
// DATABASE, WAVE, STATE, PHASE/STEP, APPLIED/SKIPPED, ELAPSED, ERROR.
std::string TargetTable(const fleet::v1::Rollout& rollout, absl::Time now);
// ROLLOUT, BUNDLE, STATE, WAVE, FAILURES, CREATED, BY, DESCRIPTION.
std::string RolloutTable(const std::vector<fleet::v1::Rollout>& rollouts,
                         absl::Time now);
// What `rollout plan` prints: the waves with their databases, the pending
// steps of each database, and the offline databases.
std::string PlanText(const fleet::v1::RolloutPlan& plan);

// A rollout as seen through its event stream.
class RolloutView {
 public:
  struct Options {
    // The zone of the times in log lines.
    absl::TimeZone zone = absl::LocalTimeZone();
    // Finished databases stay in the frame this long after they finish.
    absl::Duration recent = absl::Seconds(30);
    // At most this many database lines in the frame.
    int max_database_lines = 12;
  };

  RolloutView() : RolloutView(Options()) {}
  explicit RolloutView(Options options);
  // Starts from a rollout fetched with GetRollout (for watches that resume
  // after a sequence and so get no snapshot).
  RolloutView(fleet::v1::Rollout rollout, Options options);

  // Updates the model with the event and returns its log lines, each "HH:MM:SS
  // text" (none for statement progress). Events the model already includes
  // (sequence <= the snapshot's) are described but change nothing.
  std::vector<std::string> Apply(const fleet::v1::RolloutEvent& event);

  // The live view: a header (id, bundle, state, wave x/y, failures/budget),
  // what holds the rollout (if anything), one progress bar per wave, and one
  // line per database that is running, failed, or finished within
  // `options.recent` of `now`. With `tty`, states are coloured with ANSI
  // escapes and every line is cut to `width` columns (0: not cut).
  std::string Render(absl::Time now, int width, bool tty) const;

  // Whether a terminal should keep the event's lines above the live frame
  // (state changes, waves, failures, gates) rather than let the frame
  // summarize it.
  static bool IsNotable(const fleet::v1::RolloutEvent& event);

  const fleet::v1::Rollout& rollout() const { return rollout_; }
  // Whether the rollout reached a final state.
  bool finished() const { return IsFinalState(rollout_.state()); }

 private:
  fleet::v1::RolloutTarget& Target(const std::string& database_id);
  std::string Describe(const fleet::v1::RolloutEvent& event) const;
  void Update(const fleet::v1::RolloutEvent& event);

  Options options_;
  fleet::v1::Rollout rollout_;
  // Events up to this sequence are in rollout_.
  int64_t applied_sequence_ = 0;
  // Statement i of n of the step running on a database.
  std::map<std::string, std::pair<int, int>> statements_;
};

// ANSI escapes that move the cursor up over the `previous_lines` lines of the
// last frame, then write `frame` over them, clearing what is left below.
std::string RedrawFrame(absl::string_view frame, int previous_lines);
// How many lines `text` takes (its newlines, plus one for an unterminated
// last line).
int CountLines(absl::string_view text);

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_ROLLOUT_VIEW_H_
