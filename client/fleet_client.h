// The C++ client library of ecliptix-server's FleetService, BundleService,
// RolloutService and ConfigService: one channel, unary calls with a deadline,
// paging, and blocking watches that another thread can cancel (a rollout watch
// can also resume itself after a dropped stream). Every failure is an
// absl::Status.
#ifndef ECLIPTIX_CLIENT_FLEET_CLIENT_H_
#define ECLIPTIX_CLIENT_FLEET_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/alerts.grpc.pb.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/config_service.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/job_service.grpc.pb.h"
#include "ecliptix/fleet/v1/metrics.grpc.pb.h"
#include "ecliptix/fleet/v1/query_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"

namespace ecliptix::client {

struct ClientOptions {
  std::string server_address = "127.0.0.1:7070";
  // nullptr means an insecure channel (TLS comes later).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // The deadline of each unary call; watches have none.
  absl::Duration rpc_timeout = absl::Seconds(10);
};

// Thread-safe: calls may run concurrently from several threads.
class FleetClient {
 public:
  // INVALID_ARGUMENT on an empty address or a non-positive timeout. Does not
  // connect: the channel connects on the first call, so creating a client for a
  // server that is down succeeds.
  static absl::StatusOr<std::unique_ptr<FleetClient>> Create(
      ClientOptions options);

  FleetClient(const FleetClient&) = delete;
  FleetClient& operator=(const FleetClient&) = delete;

  // One page, as the server returns it.
  absl::StatusOr<fleet::v1::ListDatabasesResponse> ListDatabases(
      const fleet::v1::ListDatabasesRequest& request);

  // Every database matching `selector`, following next_page_token to the last
  // page. `page_size` is passed to each call (0 lets the server choose).
  absl::StatusOr<std::vector<fleet::v1::Database>> ListAllDatabases(
      const std::string& selector, int32_t page_size = 0);

  // NOT_FOUND when the server has never seen `database_id`.
  absl::StatusOr<fleet::v1::Database> GetDatabase(
      const std::string& database_id);

  // Blocks, calling `on_event` for each event (on the calling thread) until:
  //   - `on_event` returns false: the stream is cancelled and the result is OK;
  //   - CancelWatches() is called from another thread: OK;
  //   - the server ends the stream: its status (a server never ends a healthy
  //   watch, so this is an
  //     error such as INVALID_ARGUMENT for a bad selector or UNAVAILABLE when
  //     it shuts down).
  // The call is not wait-for-ready: an unreachable server fails at once with
  // UNAVAILABLE.
  absl::Status WatchFleet(
      const fleet::v1::WatchFleetRequest& request,
      std::function<bool(const fleet::v1::FleetEvent&)> on_event);

  // Cancels every watch (WatchFleet, WatchRollout, WatchRolloutResuming)
  // running now, including a WatchRolloutResuming waiting to reconnect; later
  // ones are not affected.
  void CancelWatches();

  // BundleService: upload (the server validates and answers with the stored
  // bundle's info), list and get.
  absl::StatusOr<fleet::v1::BundleInfo> UploadBundle(
      const std::vector<fleet::v1::BundleFile>& files);
  absl::StatusOr<fleet::v1::ListBundlesResponse> ListBundles(
      const fleet::v1::ListBundlesRequest& request);
  absl::StatusOr<fleet::v1::GetBundleResponse> GetBundle(
      const fleet::v1::GetBundleRequest& request);

  // RolloutService. Each is one unary call with the RPC timeout, except
  // PlanRollout: the server asks every matching agent for its pending steps, so
  // it gets max(rpc_timeout, kPlanTimeout).
  static constexpr absl::Duration kPlanTimeout = absl::Seconds(60);
  absl::StatusOr<fleet::v1::Rollout> CreateRollout(
      const fleet::v1::CreateRolloutRequest& request);
  absl::StatusOr<fleet::v1::RolloutPlan> PlanRollout(
      const fleet::v1::CreateRolloutRequest& request);
  absl::StatusOr<fleet::v1::Rollout> GetRollout(const std::string& rollout_id);
  // One page, as the server returns it (newest first, without targets).
  absl::StatusOr<fleet::v1::ListRolloutsResponse> ListRollouts(
      const fleet::v1::ListRolloutsRequest& request);
  absl::StatusOr<fleet::v1::Rollout> PauseRollout(
      const fleet::v1::RolloutActionRequest& request);
  absl::StatusOr<fleet::v1::Rollout> ResumeRollout(
      const fleet::v1::RolloutActionRequest& request);
  absl::StatusOr<fleet::v1::Rollout> AbortRollout(
      const fleet::v1::RolloutActionRequest& request);
  absl::StatusOr<fleet::v1::Rollout> RollbackRollout(
      const fleet::v1::RollbackRolloutRequest& request);
  absl::StatusOr<fleet::v1::Rollout> AttestGate(
      const fleet::v1::AttestGateRequest& request);
  absl::StatusOr<fleet::v1::Rollout> RetryFailed(
      const fleet::v1::RolloutActionRequest& request);

  // Blocks, calling `on_event` for each event (on the calling thread) until:
  //   - the server ends the stream OK: the rollout reached a final state, OK;
  //   - `on_event` returns false: the stream is cancelled and the result is OK;
  //   - CancelWatches() is called from another thread: OK;
  //   - the server ends the stream with an error: that error (NOT_FOUND for an
  //     unknown rollout, UNAVAILABLE when the connection drops).
  // Like WatchFleet, not wait-for-ready.
  absl::Status WatchRollout(
      const fleet::v1::WatchRolloutRequest& request,
      std::function<bool(const fleet::v1::RolloutEvent&)> on_event);

  // WatchRollout that survives dropped streams: when a watch ends with
  // UNAVAILABLE (server restart, network drop), it reconnects with
  // after_sequence = the last sequence seen, after a short backoff (100 ms,
  // doubling up to 5 s). `on_event` sees each sequence number once and in
  // order: events the server sends again, and a second snapshot that adds
  // nothing, are dropped; a gap (an event missing, which the server promises
  // never to cause) ends the watch with DATA_LOSS. The first watch starts after
  // `after_sequence` (0: snapshot first). Gives up with the last UNAVAILABLE
  // after `max_reconnects` reconnections in a row that delivered no event.
  // Otherwise ends as WatchRollout does.
  absl::Status WatchRolloutResuming(
      const std::string& rollout_id,
      std::function<bool(const fleet::v1::RolloutEvent&)> on_event,
      int max_reconnects, int64_t after_sequence = 0);

  const ClientOptions& options() const { return options_; }

  // JobService: maintenance jobs. Each is one unary call with the RPC
  // timeout; a job's runs are rollouts (watch them with WatchRollout).
  absl::StatusOr<fleet::v1::Job> CreateJob(
      const fleet::v1::CreateJobRequest& request);
  absl::StatusOr<fleet::v1::Job> GetJob(const std::string& job);
  absl::StatusOr<fleet::v1::ListJobsResponse> ListJobs();
  absl::StatusOr<fleet::v1::Job> DeleteJob(
      const fleet::v1::DeleteJobRequest& request);
  absl::StatusOr<fleet::v1::Job> SetJobEnabled(
      const fleet::v1::SetJobEnabledRequest& request);
  absl::StatusOr<fleet::v1::Rollout> RunJobNow(
      const fleet::v1::RunJobNowRequest& request);
  absl::StatusOr<fleet::v1::ListRolloutsResponse> ListJobRuns(
      const fleet::v1::ListJobRunsRequest& request);
  absl::StatusOr<fleet::v1::DatabaseJobHistory> GetDatabaseJobHistory(
      const fleet::v1::GetDatabaseJobHistoryRequest& request);

  // ConfigService. Each is one unary call with the RPC timeout, except
  // DiffConfig: the server reads the databases before it answers, so the call
  // gets max(rpc_timeout, the read's timeout (30 s when 0) + kDiffMargin).
  static constexpr absl::Duration kDiffMargin = absl::Seconds(10);
  absl::StatusOr<fleet::v1::Rollout> SetConfig(
      const fleet::v1::SetConfigRequest& request);
  absl::StatusOr<fleet::v1::GetConfigResponse> GetConfig(
      const fleet::v1::GetConfigRequest& request);
  absl::StatusOr<fleet::v1::GetConfigResponse> DiffConfig(
      const fleet::v1::DiffConfigRequest& request);
  absl::StatusOr<fleet::v1::GetConfigHistoryResponse> GetConfigHistory(
      const fleet::v1::GetConfigHistoryRequest& request);
  absl::StatusOr<fleet::v1::Rollout> DisableLogging(
      const fleet::v1::EmergencyLoggingRequest& request);
  absl::StatusOr<fleet::v1::Rollout> EnableLogging(
      const fleet::v1::EmergencyLoggingRequest& request);

  // ---- QueryService: fleet queries ----

  // The read-only queries a bundle declares (request.bundle, or the newest
  // uploaded). One unary call with the RPC timeout.
  absl::StatusOr<fleet::v1::ListQueriesResponse> ListQueries(
      const fleet::v1::ListQueriesRequest& request);

  // How long past the query's own timeout (30 s when the request leaves it
  // unset) a RunQuery call may last: the server ends the stream at the
  // query's deadline, so this only bounds a server that does not.
  static constexpr absl::Duration kQueryDeadlineMargin = absl::Seconds(30);

  // Runs a fleet query. Blocks, calling `on_result` for each message (on the
  // calling thread): QueryStarted, each database's rows as they arrive, a
  // summary per database. Returns:
  //   - OK when the server ends the stream OK (every database summarized, or
  //     the deadline passed and the rest were summarized DEADLINE_EXCEEDED);
  //   - OK when `on_result` returns false or CancelWatches() is called from
  //     another thread: the stream is cancelled and the server aborts the
  //     query;
  //   - the server's refusal otherwise (INVALID_ARGUMENT, NOT_FOUND,
  //     PERMISSION_DENIED, FAILED_PRECONDITION), or UNAVAILABLE.
  // Not wait-for-ready, like the watches.
  absl::Status RunQuery(
      const fleet::v1::RunQueryRequest& request,
      std::function<bool(const fleet::v1::QueryResult&)> on_result);

  // ---- MetricsService: fleet metrics ----

  // Each is one unary call with the RPC timeout; INVALID_ARGUMENT names the
  // field at fault (an unknown metric or rate, a bad selector or range).
  absl::StatusOr<fleet::v1::QuerySeriesResponse> QuerySeries(
      const fleet::v1::QuerySeriesRequest& request);
  absl::StatusOr<fleet::v1::TopProceduresResponse> TopProcedures(
      const fleet::v1::TopProceduresRequest& request);
  absl::StatusOr<fleet::v1::GetRateResponse> GetRate(
      const fleet::v1::GetRateRequest& request);
  // The runbook's success metrics per database and fleet-wide.
  absl::StatusOr<fleet::v1::HealthReport> GetHealthReport(
      const fleet::v1::GetHealthReportRequest& request);

  // ---- AlertService: the fleet's alerts ----

  // One unary call with the RPC timeout; INVALID_ARGUMENT for a bad selector
  // or limit.
  absl::StatusOr<fleet::v1::ListAlertsResponse> ListAlerts(
      const fleet::v1::ListAlertsRequest& request);
  // The active alerts (TYPE_SNAPSHOT each, then TYPE_SNAPSHOT_COMPLETE), then
  // every fired and resolved alert; ends as WatchFleet does.
  absl::Status WatchAlerts(
      const fleet::v1::WatchAlertsRequest& request,
      std::function<bool(const fleet::v1::AlertEvent&)> on_event);

 private:
  FleetClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // A context with the unary deadline.
  void PrepareUnary(grpc::ClientContext& context) const;
  // FromGrpcStatus, plus the server's address when the failure is about
  // reaching it. `timeout` is the deadline the call had (named in
  // DEADLINE_EXCEEDED); the RPC timeout when not given.
  absl::Status ToStatus(const grpc::Status& status) const;
  absl::Status ToStatus(const grpc::Status& status,
                        absl::Duration timeout) const;

  // One unary call with `timeout`: `call(context, response)` runs the stub.
  template <typename Response, typename Call>
  absl::StatusOr<Response> Unary(absl::Duration timeout, Call call);

  // Runs a server stream opened by `open` until it ends (see WatchFleet).
  template <typename Event>
  absl::Status RunWatch(
      std::function<
          std::unique_ptr<grpc::ClientReader<Event>>(grpc::ClientContext*)>
          open,
      std::function<bool(const Event&)> on_event);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fleet::v1::FleetService::Stub> stub_;
  std::unique_ptr<fleet::v1::BundleService::Stub> bundle_stub_;
  std::unique_ptr<fleet::v1::RolloutService::Stub> rollout_stub_;
  std::unique_ptr<fleet::v1::JobService::Stub> job_stub_;

  std::unique_ptr<fleet::v1::ConfigService::Stub> config_stub_;

  absl::Mutex mutex_;
  // The running watches, each with whether CancelWatches() cancelled it (so its
  // CANCELLED status means "stopped as asked" rather than a failure).
  std::map<grpc::ClientContext*, bool> watches_ ABSL_GUARDED_BY(mutex_);
  // Incremented by CancelWatches(), so a resuming watch between two streams
  // (or in its backoff) sees that it was cancelled.
  int64_t cancel_generation_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace ecliptix::client

#endif  // ECLIPTIX_CLIENT_FLEET_CLIENT_H_
