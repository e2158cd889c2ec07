// One value read from a database by URL, for tests that look at what the
// product left in a target.
#ifndef ECLIPTIX_TESTS_TESTING_QUERY_H_
#define ECLIPTIX_TESTS_TESTING_QUERY_H_

#include <string>

#include "absl/status/status.h"

namespace ecliptix::testing {

// The first column of the first row of `sql` on the database at `url`, as
// text; on failure the error's message (so that an expectation on the value
// shows why, e.g. "no such table").
std::string QueryScalar(const std::string& url, const std::string& sql);

// Runs `sql` on the database at `url`: statements separated by ";\n", each
// on its own (SQLite and libpq take one statement per call), in one
// transaction.
absl::Status ExecuteSql(const std::string& url, const std::string& sql);

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_TESTING_QUERY_H_
