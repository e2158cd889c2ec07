#include "client/fleet_client.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace ecliptix::client {

using fleet::v1::Database;
using fleet::v1::FleetEvent;
using fleet::v1::GetDatabaseRequest;
using fleet::v1::ListDatabasesRequest;
using fleet::v1::ListDatabasesResponse;
using fleet::v1::Rollout;
using fleet::v1::RolloutEvent;
using fleet::v1::WatchFleetRequest;
using fleet::v1::WatchRolloutRequest;

absl::StatusOr<std::unique_ptr<FleetClient>> FleetClient::Create(
    ClientOptions options) {
  if (options.server_address.empty()) {
    return absl::InvalidArgumentError(
        "the address of ecliptix-server is empty: use HOST:PORT, e.g. "
        "127.0.0.1:7070");
  }
  if (options.rpc_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the RPC timeout must be positive, got ",
                     absl::FormatDuration(options.rpc_timeout)));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials ? options.credentials
                          : grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server_address, credentials);
  return std::unique_ptr<FleetClient>(
      new FleetClient(std::move(options), std::move(channel)));
}

FleetClient::FleetClient(ClientOptions options,
                         std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(fleet::v1::FleetService::NewStub(channel_)),
      bundle_stub_(fleet::v1::BundleService::NewStub(channel_)),
      rollout_stub_(fleet::v1::RolloutService::NewStub(channel_)),
      job_stub_(fleet::v1::JobService::NewStub(channel_)),
      config_stub_(fleet::v1::ConfigService::NewStub(channel_)) {}

void FleetClient::PrepareUnary(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  // Fail fast instead of waiting for a server that is down; the deadline bounds
  // slow servers.
  context.set_wait_for_ready(false);
}

absl::Status FleetClient::ToStatus(const grpc::Status& status) const {
  return ToStatus(status, options_.rpc_timeout);
}

absl::Status FleetClient::ToStatus(const grpc::Status& status,
                                   absl::Duration timeout) const {
  absl::Status result = FromGrpcStatus(status);
  // These two are about the connection, not the request: say which server, so a
  // wrong --server or a stopped server is obvious.
  if (result.code() == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach ecliptix-server at ",
                     options_.server_address, ": ", result.message()));
  }
  if (result.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrCat(
        "no answer from ecliptix-server at ", options_.server_address,
        " within ", absl::FormatDuration(timeout), ": ", result.message()));
  }
  return result;
}

absl::StatusOr<ListDatabasesResponse> FleetClient::ListDatabases(
    const ListDatabasesRequest& request) {
  grpc::ClientContext context;
  PrepareUnary(context);
  ListDatabasesResponse response;
  grpc::Status status = stub_->ListDatabases(&context, request, &response);
  if (!status.ok()) return ToStatus(status);
  return response;
}

absl::StatusOr<std::vector<Database>> FleetClient::ListAllDatabases(
    const std::string& selector, int32_t page_size) {
  std::vector<Database> databases;
  ListDatabasesRequest request;
  request.set_selector(selector);
  request.set_page_size(page_size);
  while (true) {
    absl::StatusOr<ListDatabasesResponse> page = ListDatabases(request);
    if (!page.ok()) return page.status();
    for (Database& database : *page->mutable_databases()) {
      databases.push_back(std::move(database));
    }
    if (page->next_page_token().empty()) break;
    // A server that hands back the token it was given would keep us here
    // forever.
    if (page->next_page_token() == request.page_token()) {
      return absl::InternalError(
          absl::StrCat("ecliptix-server at ", options_.server_address,
                       " returned the same page token twice (\"",
                       page->next_page_token(), "\")"));
    }
    request.set_page_token(page->next_page_token());
  }
  return databases;
}

absl::StatusOr<Database> FleetClient::GetDatabase(
    const std::string& database_id) {
  grpc::ClientContext context;
  PrepareUnary(context);
  GetDatabaseRequest request;
  request.set_database_id(database_id);
  Database database;
  grpc::Status status = stub_->GetDatabase(&context, request, &database);
  if (!status.ok()) return ToStatus(status);
  return database;
}

template <typename Event>
absl::Status FleetClient::RunWatch(
    std::function<
        std::unique_ptr<grpc::ClientReader<Event>>(grpc::ClientContext*)>
        open,
    std::function<bool(const Event&)> on_event) {
  grpc::ClientContext context;
  // No deadline: a watch lasts until someone stops it. Not wait-for-ready, so a
  // server that is down is reported at once instead of the watch hanging
  // silently.
  context.set_wait_for_ready(false);
  {
    absl::MutexLock lock(&mutex_);
    watches_.emplace(&context, false);
  }
  std::unique_ptr<grpc::ClientReader<Event>> reader = open(&context);
  Event event;
  bool stopped_by_caller = false;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      stopped_by_caller = true;
      context.TryCancel();
      break;
    }
  }
  // Finish() wants every message read; after a cancel the remaining reads fail
  // at once.
  while (stopped_by_caller && reader->Read(&event)) {
  }
  const grpc::Status status = reader->Finish();
  bool cancelled_by_us;
  {
    absl::MutexLock lock(&mutex_);
    cancelled_by_us = watches_[&context];
    watches_.erase(&context);
  }
  if (stopped_by_caller) return absl::OkStatus();
  if (cancelled_by_us && status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::OkStatus();
  }
  return ToStatus(status);
}

absl::Status FleetClient::WatchFleet(
    const WatchFleetRequest& request,
    std::function<bool(const FleetEvent&)> on_event) {
  return RunWatch<FleetEvent>(
      [&](grpc::ClientContext* context) {
        return stub_->WatchFleet(context, request);
      },
      std::move(on_event));
}

void FleetClient::CancelWatches() {
  absl::MutexLock lock(&mutex_);
  ++cancel_generation_;
  for (auto& [context, cancelled] : watches_) {
    cancelled = true;
    context->TryCancel();
  }
}

absl::StatusOr<fleet::v1::BundleInfo> FleetClient::UploadBundle(
    const std::vector<fleet::v1::BundleFile>& files) {
  grpc::ClientContext context;
  PrepareUnary(context);
  fleet::v1::UploadBundleRequest request;
  for (const fleet::v1::BundleFile& file : files) *request.add_files() = file;
  fleet::v1::BundleInfo response;
  grpc::Status status =
      bundle_stub_->UploadBundle(&context, request, &response);
  if (!status.ok()) return ToStatus(status);
  return response;
}

absl::StatusOr<fleet::v1::ListBundlesResponse> FleetClient::ListBundles(
    const fleet::v1::ListBundlesRequest& request) {
  grpc::ClientContext context;
  PrepareUnary(context);
  fleet::v1::ListBundlesResponse response;
  grpc::Status status = bundle_stub_->ListBundles(&context, request, &response);
  if (!status.ok()) return ToStatus(status);
  return response;
}

absl::StatusOr<fleet::v1::GetBundleResponse> FleetClient::GetBundle(
    const fleet::v1::GetBundleRequest& request) {
  grpc::ClientContext context;
  PrepareUnary(context);
  fleet::v1::GetBundleResponse response;
  grpc::Status status = bundle_stub_->GetBundle(&context, request, &response);
  if (!status.ok()) return ToStatus(status);
  return response;
}

template <typename Response, typename Call>
absl::StatusOr<Response> FleetClient::Unary(absl::Duration timeout, Call call) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(false);
  Response response;
  const grpc::Status status = call(&context, &response);
  if (!status.ok()) return ToStatus(status, timeout);
  return response;
}

absl::StatusOr<Rollout> FleetClient::CreateRollout(
    const fleet::v1::CreateRolloutRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->CreateRollout(context, request, response);
  });
}

absl::StatusOr<fleet::v1::RolloutPlan> FleetClient::PlanRollout(
    const fleet::v1::CreateRolloutRequest& request) {
  return Unary<fleet::v1::RolloutPlan>(
      std::max(options_.rpc_timeout, kPlanTimeout),
      [&](grpc::ClientContext* context, fleet::v1::RolloutPlan* response) {
        return rollout_stub_->PlanRollout(context, request, response);
      });
}

absl::StatusOr<Rollout> FleetClient::GetRollout(const std::string& rollout_id) {
  fleet::v1::GetRolloutRequest request;
  request.set_rollout_id(rollout_id);
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->GetRollout(context, request, response);
  });
}

absl::StatusOr<fleet::v1::ListRolloutsResponse> FleetClient::ListRollouts(
    const fleet::v1::ListRolloutsRequest& request) {
  return Unary<fleet::v1::ListRolloutsResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::ListRolloutsResponse* response) {
        return rollout_stub_->ListRollouts(context, request, response);
      });
}

absl::StatusOr<Rollout> FleetClient::PauseRollout(
    const fleet::v1::RolloutActionRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->PauseRollout(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::ResumeRollout(
    const fleet::v1::RolloutActionRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->ResumeRollout(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::AbortRollout(
    const fleet::v1::RolloutActionRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->AbortRollout(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::RollbackRollout(
    const fleet::v1::RollbackRolloutRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->RollbackRollout(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::AttestGate(
    const fleet::v1::AttestGateRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->AttestGate(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::RetryFailed(
    const fleet::v1::RolloutActionRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return rollout_stub_->RetryFailed(context, request, response);
  });
}

absl::Status FleetClient::WatchRollout(
    const WatchRolloutRequest& request,
    std::function<bool(const RolloutEvent&)> on_event) {
  return RunWatch<RolloutEvent>(
      [&](grpc::ClientContext* context) {
        return rollout_stub_->WatchRollout(context, request);
      },
      std::move(on_event));
}

absl::Status FleetClient::WatchRolloutResuming(
    const std::string& rollout_id,
    std::function<bool(const RolloutEvent&)> on_event, int max_reconnects,
    int64_t after_sequence) {
  int64_t generation;
  {
    absl::MutexLock lock(&mutex_);
    generation = cancel_generation_;
  }
  // Called with mutex_ held.
  auto cancelled = [&]() { return cancel_generation_ != generation; };
  // The last sequence delivered; known once a snapshot or an event arrived
  // (or the caller gave one), and from then on every event must follow it.
  int64_t last = after_sequence;
  bool have_position = after_sequence > 0;
  bool delivered_snapshot = false;
  absl::Status gap;
  int reconnects_in_a_row = 0;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    WatchRolloutRequest request;
    request.set_rollout_id(rollout_id);
    request.set_after_sequence(last);
    bool progressed = false;
    const absl::Status status =
        WatchRollout(request, [&](const RolloutEvent& event) {
          if (event.has_snapshot()) {
            // Only watches from 0 have one. A second one (the stream dropped
            // before any event followed the first) says nothing new.
            if (delivered_snapshot && event.sequence() <= last) return true;
            delivered_snapshot = true;
            have_position = true;
          } else if (have_position) {
            // Sent again after a reconnect (a server may resend from an
            // earlier point): already delivered.
            if (event.sequence() <= last) return true;
            if (event.sequence() != last + 1) {
              gap = absl::DataLossError(absl::StrCat(
                  "rollout ", rollout_id, ": ecliptix-server at ",
                  options_.server_address, " sent event ", event.sequence(),
                  " after event ", last, "; events ", last + 1, " to ",
                  event.sequence() - 1, " are missing"));
              return false;
            }
          } else {
            have_position = true;
          }
          last = event.sequence();
          progressed = true;
          return on_event(event);
        });
    if (!gap.ok()) return gap;
    if (status.code() != absl::StatusCode::kUnavailable) return status;
    if (progressed) {
      reconnects_in_a_row = 0;
      backoff = absl::Milliseconds(100);
    }
    absl::MutexLock lock(&mutex_);
    if (cancelled()) return absl::OkStatus();
    if (reconnects_in_a_row >= max_reconnects) return status;
    ++reconnects_in_a_row;
    // Sleeps, but wakes up for CancelWatches().
    if (mutex_.AwaitWithTimeout(absl::Condition(&cancelled), backoff)) {
      return absl::OkStatus();
    }
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

// ---- JobService ----

absl::StatusOr<fleet::v1::Job> FleetClient::CreateJob(
    const fleet::v1::CreateJobRequest& request) {
  return Unary<fleet::v1::Job>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::Job* response) {
        return job_stub_->CreateJob(context, request, response);
      });
}

absl::StatusOr<fleet::v1::Job> FleetClient::GetJob(const std::string& job) {
  fleet::v1::GetJobRequest request;
  request.set_job(job);
  return Unary<fleet::v1::Job>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::Job* response) {
        return job_stub_->GetJob(context, request, response);
      });
}

absl::StatusOr<fleet::v1::ListJobsResponse> FleetClient::ListJobs() {
  fleet::v1::ListJobsRequest request;
  return Unary<fleet::v1::ListJobsResponse>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::ListJobsResponse* response) {
        return job_stub_->ListJobs(context, request, response);
      });
}

absl::StatusOr<fleet::v1::Job> FleetClient::DeleteJob(
    const fleet::v1::DeleteJobRequest& request) {
  return Unary<fleet::v1::Job>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::Job* response) {
        return job_stub_->DeleteJob(context, request, response);
      });
}

absl::StatusOr<fleet::v1::Job> FleetClient::SetJobEnabled(
    const fleet::v1::SetJobEnabledRequest& request) {
  return Unary<fleet::v1::Job>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::Job* response) {
        return job_stub_->SetJobEnabled(context, request, response);
      });
}

absl::StatusOr<fleet::v1::Rollout> FleetClient::RunJobNow(
    const fleet::v1::RunJobNowRequest& request) {
  return Unary<fleet::v1::Rollout>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::Rollout* response) {
        return job_stub_->RunJobNow(context, request, response);
      });
}

absl::StatusOr<fleet::v1::ListRolloutsResponse> FleetClient::ListJobRuns(
    const fleet::v1::ListJobRunsRequest& request) {
  return Unary<fleet::v1::ListRolloutsResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::ListRolloutsResponse* response) {
        return job_stub_->ListJobRuns(context, request, response);
      });
}

absl::StatusOr<fleet::v1::DatabaseJobHistory>
FleetClient::GetDatabaseJobHistory(
    const fleet::v1::GetDatabaseJobHistoryRequest& request) {
  return Unary<fleet::v1::DatabaseJobHistory>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::DatabaseJobHistory* response) {
        return job_stub_->GetDatabaseJobHistory(context, request, response);
      });
}

// ---- ConfigService ----

absl::StatusOr<Rollout> FleetClient::SetConfig(
    const fleet::v1::SetConfigRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return config_stub_->SetConfig(context, request, response);
  });
}

absl::StatusOr<fleet::v1::GetConfigResponse> FleetClient::GetConfig(
    const fleet::v1::GetConfigRequest& request) {
  return Unary<fleet::v1::GetConfigResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::GetConfigResponse* response) {
        return config_stub_->GetConfig(context, request, response);
      });
}

absl::StatusOr<fleet::v1::GetConfigResponse> FleetClient::DiffConfig(
    const fleet::v1::DiffConfigRequest& request) {
  absl::Duration read = absl::Seconds(request.timeout().seconds()) +
                        absl::Nanoseconds(request.timeout().nanos());
  if (read <= absl::ZeroDuration()) read = absl::Seconds(30);
  return Unary<fleet::v1::GetConfigResponse>(
      std::max(options_.rpc_timeout, read + kDiffMargin),
      [&](grpc::ClientContext* context,
          fleet::v1::GetConfigResponse* response) {
        return config_stub_->DiffConfig(context, request, response);
      });
}

absl::StatusOr<fleet::v1::GetConfigHistoryResponse>
FleetClient::GetConfigHistory(
    const fleet::v1::GetConfigHistoryRequest& request) {
  return Unary<fleet::v1::GetConfigHistoryResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::GetConfigHistoryResponse* response) {
        return config_stub_->GetConfigHistory(context, request, response);
      });
}

absl::StatusOr<Rollout> FleetClient::DisableLogging(
    const fleet::v1::EmergencyLoggingRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return config_stub_->DisableLogging(context, request, response);
  });
}

absl::StatusOr<Rollout> FleetClient::EnableLogging(
    const fleet::v1::EmergencyLoggingRequest& request) {
  return Unary<Rollout>(options_.rpc_timeout, [&](grpc::ClientContext* context,
                                                  Rollout* response) {
    return config_stub_->EnableLogging(context, request, response);
  });
}

// ---- QueryService: fleet queries ----

absl::StatusOr<fleet::v1::ListQueriesResponse> FleetClient::ListQueries(
    const fleet::v1::ListQueriesRequest& request) {
  auto stub = fleet::v1::QueryService::NewStub(channel_);
  return Unary<fleet::v1::ListQueriesResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::ListQueriesResponse* response) {
        return stub->ListQueries(context, request, response);
      });
}

absl::Status FleetClient::RunQuery(
    const fleet::v1::RunQueryRequest& request,
    std::function<bool(const fleet::v1::QueryResult&)> on_result) {
  auto stub = fleet::v1::QueryService::NewStub(channel_);
  const absl::Duration query_timeout =
      request.has_timeout() &&
              (request.timeout().seconds() > 0 || request.timeout().nanos() > 0)
          ? absl::Seconds(request.timeout().seconds()) +
                absl::Nanoseconds(request.timeout().nanos())
          : absl::Seconds(30);
  const absl::Duration deadline = query_timeout + kQueryDeadlineMargin;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  context.set_wait_for_ready(false);
  {
    absl::MutexLock lock(&mutex_);
    watches_.emplace(&context, false);
  }
  std::unique_ptr<grpc::ClientReader<fleet::v1::QueryResult>> reader =
      stub->RunQuery(&context, request);
  fleet::v1::QueryResult result;
  bool stopped_by_caller = false;
  while (reader->Read(&result)) {
    if (!on_result(result)) {
      stopped_by_caller = true;
      context.TryCancel();
      break;
    }
  }
  // Finish() wants every message read; after a cancel the reads fail at once.
  while (stopped_by_caller && reader->Read(&result)) {
  }
  const grpc::Status status = reader->Finish();
  bool cancelled_by_us;
  {
    absl::MutexLock lock(&mutex_);
    cancelled_by_us = watches_[&context];
    watches_.erase(&context);
  }
  if (stopped_by_caller) return absl::OkStatus();
  if (cancelled_by_us && status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::OkStatus();
  }
  return ToStatus(status, deadline);
}

// ---- MetricsService: fleet metrics ----

absl::StatusOr<fleet::v1::QuerySeriesResponse> FleetClient::QuerySeries(
    const fleet::v1::QuerySeriesRequest& request) {
  auto stub = fleet::v1::MetricsService::NewStub(channel_);
  return Unary<fleet::v1::QuerySeriesResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::QuerySeriesResponse* response) {
        return stub->QuerySeries(context, request, response);
      });
}

absl::StatusOr<fleet::v1::TopProceduresResponse> FleetClient::TopProcedures(
    const fleet::v1::TopProceduresRequest& request) {
  auto stub = fleet::v1::MetricsService::NewStub(channel_);
  return Unary<fleet::v1::TopProceduresResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::TopProceduresResponse* response) {
        return stub->TopProcedures(context, request, response);
      });
}

absl::StatusOr<fleet::v1::GetRateResponse> FleetClient::GetRate(
    const fleet::v1::GetRateRequest& request) {
  auto stub = fleet::v1::MetricsService::NewStub(channel_);
  return Unary<fleet::v1::GetRateResponse>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::GetRateResponse* response) {
        return stub->GetRate(context, request, response);
      });
}

// ---- AlertService: the fleet's alerts ----

absl::StatusOr<fleet::v1::ListAlertsResponse> FleetClient::ListAlerts(
    const fleet::v1::ListAlertsRequest& request) {
  auto stub = fleet::v1::AlertService::NewStub(channel_);
  return Unary<fleet::v1::ListAlertsResponse>(
      options_.rpc_timeout, [&](grpc::ClientContext* context,
                                fleet::v1::ListAlertsResponse* response) {
        return stub->ListAlerts(context, request, response);
      });
}

absl::Status FleetClient::WatchAlerts(
    const fleet::v1::WatchAlertsRequest& request,
    std::function<bool(const fleet::v1::AlertEvent&)> on_event) {
  auto stub = fleet::v1::AlertService::NewStub(channel_);
  return RunWatch<fleet::v1::AlertEvent>(
      [&](grpc::ClientContext* context) {
        return stub->WatchAlerts(context, request);
      },
      std::move(on_event));
}

absl::StatusOr<fleet::v1::HealthReport> FleetClient::GetHealthReport(
    const fleet::v1::GetHealthReportRequest& request) {
  auto stub = fleet::v1::MetricsService::NewStub(channel_);
  return Unary<fleet::v1::HealthReport>(
      options_.rpc_timeout,
      [&](grpc::ClientContext* context, fleet::v1::HealthReport* response) {
        return stub->GetHealthReport(context, request, response);
      });
}

}  // namespace ecliptix::client
