// Workload driver: calls the Ecliptix bundle's operations (memberships,
// logins, OTP verification flows, authentication contexts, the circuit
// breaker) on deployed databases at a chosen rate, in-process through the
// agent's executor, so that maintenance jobs, fleet queries and metrics have
// real rows to work on. Owns the traffic mix, the per-database state a
// realistic sequence needs (memberships, pending flows, open contexts, a
// brute-forced phone number), the calls made to fail on purpose, and the
// counters and their progress and summary text.
//
// One thread per database, each with its own connection and executor. The
// choices (which operation, which inputs) come from a seeded generator per
// database, so a seed reproduces the mix; phone numbers carry a per-run nonce
// so that runs never collide with each other's memberships.
#ifndef ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_DRIVER_H_
#define ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_DRIVER_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecliptix::workload {

// The operations the driver calls, in the order the summary lists them.
const std::vector<std::string>& WorkloadOperations();

// Operation -> weight: the share of calls each operation gets once the
// membership pool exists.
using Mix = std::map<std::string, double>;
const Mix& DefaultMix();

// "LoginMembership=40,CreateAuthenticationContext=10": the weights of the
// operations named (case-insensitively); every other operation gets 0.
// INVALID_ARGUMENT for an unknown operation, a negative or malformed weight,
// or weights that are all 0.
absl::StatusOr<Mix> ParseMix(absl::string_view text);

struct WorkloadOptions;

// INVALID_ARGUMENT naming the first option out of range (no database, a
// database given twice or malformed, a negative rate, a percent above 100,
// an unknown operation in the mix, ...).
absl::Status ValidateOptions(const WorkloadOptions& options);

struct WorkloadOptions {
  // Database URLs as the agent takes them (common/sql/database_url.h).
  std::vector<std::string> database_urls;
  // The bundle deployed on the databases (its operations are what is called).
  std::string bundle_dir = "bundles/ecliptix";
  // Calls per second over all databases together; 0: as fast as they go.
  double rate = 20;
  // Stop after this long (InfiniteDuration: only max_calls or Stop() end it).
  absl::Duration duration = absl::InfiniteDuration();
  // Stop after this many calls in total (0: no limit), split evenly between
  // the databases.
  int64_t max_calls = 0;
  // Seeds the choices of every database (each derives its own generator).
  uint64_t seed = 1;
  // Empty: DefaultMix().
  Mix mix;
  // The share (0-100) of calls made with input the operation refuses.
  double error_percent = 0;
  // The share (0-100) of logins made with a wrong secret or an unknown
  // number; most of them hammer one phone number until it is locked out.
  double failed_login_percent = 10;
  // Memberships created on each database before anything else runs.
  int pool_size = 20;
  // Write an ErrorLog row for every failed call, as the application's error
  // handler would: PostgreSQL and SQLite roll a refused call back whole, so
  // the procedures cannot write one themselves (bundles/ecliptix/README.md).
  // The rows feed the per-procedure errors (procedure_errors); the error
  // rate counts the failed calls the executor records itself
  // (agent/executor/call_log.h), with or without these rows.
  bool error_log = true;
  // How often Run() prints a progress line.
  absl::Duration progress_interval = absl::Seconds(5);
};

// Counters of one operation.
struct OperationStats {
  int64_t calls = 0;
  int64_t succeeded = 0;
  // Calls made with bad input that the operation refused as intended.
  int64_t failed_on_purpose = 0;
  // Every other failure, and bad input that was accepted.
  int64_t failed_unexpectedly = 0;
  // What successful calls answered, e.g. "SUCCESS" -> 120 for LoginMembership.
  std::map<std::string, int64_t> outcomes;

  void Add(const OperationStats& other);
};

struct WorkloadReport {
  // By operation name; only operations that were called.
  std::map<std::string, OperationStats> operations;
  // Calls per database (redacted URL), in the order given.
  std::vector<std::pair<std::string, int64_t>> calls_by_database;
  // The first unexpected failures, "<database>: <operation>: <message>".
  std::vector<std::string> unexpected_errors;
  absl::Duration elapsed;
  uint64_t seed = 0;

  OperationStats Total() const;
};

// The summary printed at the end: one line per operation with its calls,
// successes, failures on purpose and unexpected failures, the totals, what
// the calls answered, and the first unexpected failures.
std::string FormatSummary(const WorkloadReport& report);

class DatabaseWorker;
struct RunControl;

class WorkloadDriver {
 public:
  // Loads the bundle, opens every database and checks that the bundle is
  // deployed there (each step's detect query), then reads the lockout and
  // OTP settings. Nothing is called yet. INVALID_ARGUMENT for bad options or
  // an unreadable bundle; UNAVAILABLE when a database cannot be reached;
  // FAILED_PRECONDITION naming the database and the missing objects when the
  // bundle is not (fully) deployed.
  static absl::StatusOr<std::unique_ptr<WorkloadDriver>> Create(
      WorkloadOptions options);
  ~WorkloadDriver();

  WorkloadDriver(const WorkloadDriver&) = delete;
  WorkloadDriver& operator=(const WorkloadDriver&) = delete;

  // Runs until max_calls, duration or Stop(), printing a progress line to
  // `progress` (when not null) every progress_interval. Call once.
  WorkloadReport Run(std::FILE* progress);

  // From any thread: each database finishes the call it is making, then Run()
  // returns.
  void Stop();

 private:
  WorkloadDriver(WorkloadOptions options,
                 std::vector<std::unique_ptr<DatabaseWorker>> workers);

  // The counters so far, summed over the databases.
  WorkloadReport Snapshot() const;

  const WorkloadOptions options_;
  std::vector<std::unique_ptr<DatabaseWorker>> workers_;
  // Stop() and the end of each worker, shared with the workers.
  std::unique_ptr<RunControl> control_;
};

}  // namespace ecliptix::workload

#endif  // ECLIPTIX_TOOLS_WORKLOAD_WORKLOAD_DRIVER_H_
