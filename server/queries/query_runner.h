// Fleet queries (QueryService's core; knows no gRPC): the bundles' declared
// read-only queries, and running one on every selected database as a fleet
// operation of the wave engine (a rollout whose operation is a QuerySpec: one
// wave, every database answering or failing on its own, offline agents
// skipped at the deadline). While it runs, the rollout's events are turned
// into the query's answer: each database's rows as they arrive, then one
// summary per database (OK, or the code and message of its failure). At the
// deadline the operation is aborted and the databases that have not answered
// are reported with DEADLINE_EXCEEDED (UNAVAILABLE when their agent is
// offline); a client that goes away aborts it too. The rows also stay in the
// rollout's event log, so `rollout watch` replays a query.
#ifndef ECLIPTIX_SERVER_QUERIES_QUERY_RUNNER_H_
#define ECLIPTIX_SERVER_QUERIES_QUERY_RUNNER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/query_service.pb.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/streams/event_sink.h"

namespace ecliptix::server {

// Where a query's answer goes: QueryStarted, rows and summaries in order,
// then End (OK once every database is summarized or the deadline passed; an
// error when the query could not start). Must not block.
using QueryResultSink = EventSink<fleet::v1::QueryResult>;

struct QueryOptions {
  // RunQueryRequest.timeout when 0.
  absl::Duration default_timeout = absl::Seconds(30);
  // RunQueryRequest.row_limit when 0, and its largest value.
  int32_t default_row_limit = 1000;
  int32_t max_row_limit = 100000;
  // How often deadlines are compared with the clock (a fake clock in tests
  // is noticed within this much real time).
  absl::Duration deadline_check = absl::Milliseconds(50);
  // Agents' failure codes kept for queries to read, at most (each is taken
  // when its database's summary is sent).
  size_t max_remembered_failures = 4096;
};

class QueryRunner {
 public:
  class Query;

  // None of the pointers is owned; all must outlive the runner.
  QueryRunner(RolloutOrchestrator* rollouts, BundleCatalog* bundles,
              Registry* registry, Clock* clock, QueryOptions options = {});
  ~QueryRunner();

  QueryRunner(const QueryRunner&) = delete;
  QueryRunner& operator=(const QueryRunner&) = delete;

  // Listens to agents' command outcomes (their failure codes, which the
  // rollout's events carry only as text) and starts the deadline thread.
  void Start();
  // Ends every running query with UNAVAILABLE (its operation goes on and is
  // resumed by the next server) and stops the thread. Later queries are
  // refused UNAVAILABLE.
  void Stop();

  // The read-only queries of a bundle (request.bundle, or the newest
  // uploaded), in declaration order. NOT_FOUND for an unknown bundle or when
  // none is uploaded.
  absl::StatusOr<fleet::v1::ListQueriesResponse> ListQueries(
      const fleet::v1::ListQueriesRequest& request) const;

  // Checks the request and starts the query; its answer goes to `sink`.
  // Errors found here come back at once (INVALID_ARGUMENT for the request,
  // NOT_FOUND for an unknown bundle or a query no uploaded bundle declares);
  // the orchestrator's refusals (NOT_FOUND for a query the given bundle
  // lacks, PERMISSION_DENIED for an operation not declared read-only,
  // INVALID_ARGUMENT for its arguments, FAILED_PRECONDITION when no database
  // matches or an agent cannot run queries) end the sink before anything is
  // delivered. requested_by must be filled in (the adapter puts the peer).
  absl::StatusOr<std::shared_ptr<Query>> Run(
      fleet::v1::RunQueryRequest request,
      std::shared_ptr<QueryResultSink> sink);

  // The client went away: the query's operation is aborted and nothing more
  // is delivered. Any thread; harmless after the query ended.
  void Cancel(const std::shared_ptr<Query>& query);

  // How many queries run now; for tests and tools.
  size_t RunningQueries();

 private:
  class WatchSink;
  // How observers and watch sinks reach the runner: the registry keeps its
  // observers, and the orchestrator its sinks, for as long as it likes; the
  // destructor clears the pointer (waiting for calls in progress).
  struct Link {
    absl::Mutex mutex;
    QueryRunner* runner ABSL_GUARDED_BY(mutex) = nullptr;
  };

  // The bundle a query runs from: `reference` when given, else the newest
  // uploaded bundle declaring an operation named `query`.
  absl::StatusOr<fleet::v1::BundleInfo> BundleFor(
      const std::string& reference, const std::string& query) const;
  // On the orchestrator's worker: the operation was created (or refused).
  void OnCreated(const std::shared_ptr<Query>& query,
                 absl::StatusOr<fleet::v1::Rollout> rollout);
  // One event of the query's operation; false once the query is over.
  bool OnEvent(const std::shared_ptr<Query>& query,
               const fleet::v1::RolloutEvent& event);
  // The operation's watch ended: the operation ended (OK) or the server
  // stops.
  void OnWatchEnd(const std::shared_ptr<Query>& query,
                  const absl::Status& status);
  // Past its deadline: the databases not done are reported, the query ends
  // and its operation is aborted.
  void OnDeadline(const std::shared_ptr<Query>& query);
  // Asks the orchestrator to abort the query's operation; the answer is not
  // waited for (an operation that ended already is left as it is).
  void AbortOperation(const std::string& rollout_id, const std::string& actor,
                      const std::string& reason);
  // The query is over: forgets it and the failures of its operation.
  void Forget(Query& query);
  void DeadlineLoop();
  // Removes and returns the failure an agent reported for "<rollout id>/
  // <database id>"; OK when none was recorded.
  absl::Status TakeFailure(const std::string& key);
  void OnCommandMessage(const fleet::v1::AgentMessage& message);

  RolloutOrchestrator* const rollouts_;
  BundleCatalog* const bundles_;
  Registry* const registry_;
  Clock* const clock_;
  const QueryOptions options_;

  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Running queries, by a number of their own.
  std::map<uint64_t, std::shared_ptr<Query>> running_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_query_ ABSL_GUARDED_BY(mutex_) = 1;
  std::thread deadline_thread_;

  // Agents' failures of query commands, oldest first; bounded.
  absl::Mutex failures_mutex_;
  std::map<std::string, absl::Status> failures_
      ABSL_GUARDED_BY(failures_mutex_);
  std::deque<std::string> failure_order_ ABSL_GUARDED_BY(failures_mutex_);
  std::shared_ptr<Link> link_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_QUERIES_QUERY_RUNNER_H_
