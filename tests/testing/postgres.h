// Scratch PostgreSQL databases for tests: each test gets its own database on
// the server tools/test starts, so test targets running in parallel never see
// each other's tables.
#ifndef ECLIPTIX_TESTS_TESTING_POSTGRES_H_
#define ECLIPTIX_TESTS_TESTING_POSTGRES_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace ecliptix::testing {

// The server's URL from ECLIPTIX_TEST_POSTGRES_URL, or nullopt when the tests
// run without one.
std::optional<std::string> PostgresAdminUrl();

struct ScratchDatabase {
  std::string name;
  // postgresql://... of the new database.
  std::string url;
  // odbc://Driver={PostgreSQL Unicode};... of the new database.
  std::string odbc_url;
};

// Creates an empty database named `<prefix>_<random>` on the test server.
absl::StatusOr<ScratchDatabase> CreateScratchDatabase(
    const std::string& prefix);

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_TESTING_POSTGRES_H_
