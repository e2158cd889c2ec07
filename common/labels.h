// Labels (key/value pairs describing a database: env, region, tenant, tier,
// ...) and label selectors, the one way every component picks databases.
#ifndef ECLIPTIX_COMMON_LABELS_H_
#define ECLIPTIX_COMMON_LABELS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecliptix {

using Labels = std::map<std::string, std::string>;

// A key is 1-63 characters: letters, digits, '.', '_', '-', '/', starting with
// a letter or digit.
absl::Status ValidateLabelKey(absl::string_view key);
// A value is 0-63 characters: letters, digits, '.', '_', '-', ':'.
absl::Status ValidateLabelValue(absl::string_view value);

// Parses "k=v,k=v" (as given on the agent's --labels flag). Empty input gives
// no labels.
absl::StatusOr<Labels> ParseLabels(absl::string_view text);
// The canonical "k=v,k=v" form, keys sorted.
std::string FormatLabels(const Labels& labels);

// A parsed label selector. Requirements are separated by commas and must all
// hold:
//   key=value  key==value  key!=value  key in (a,b)  key notin (a,b)  key  !key
class LabelSelector {
 public:
  // INVALID_ARGUMENT names the requirement at fault and says what is wrong with
  // it.
  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);

  bool Matches(const Labels& labels) const;
  bool empty() const { return requirements_.empty(); }
  // The canonical text of the selector.
  std::string ToString() const;

 private:
  enum class Op { kIn, kNotIn, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::set<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace ecliptix

#endif  // ECLIPTIX_COMMON_LABELS_H_
