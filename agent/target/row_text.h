// Rows of SOCI queries as text: the one form targets return (history
// listings, operation results, verify values) whatever the engine's types.
#ifndef ECLIPTIX_AGENT_TARGET_ROW_TEXT_H_
#define ECLIPTIX_AGENT_TARGET_ROW_TEXT_H_

#include <string>
#include <vector>

#include "soci/soci.h"

namespace ecliptix::agent {

// The columns' names of `row`.
std::vector<std::string> ColumnNames(const soci::row& row);
// Each column as text; NULL is "" (and `nulls`, when given, says which).
std::vector<std::string> RowText(const soci::row& row,
                                 std::vector<bool>* nulls = nullptr);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_TARGET_ROW_TEXT_H_
