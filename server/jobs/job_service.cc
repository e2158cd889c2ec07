#include "server/jobs/job_service.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "common/grpc_status.h"
#include "common/required_field.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Fills the response and finishes the RPC: an adapter that only converts.
template <typename T>
JobManager::Callback<T> Finisher(grpc::ServerUnaryReactor* reactor,
                                 T* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

std::string Actor(grpc::CallbackServerContext* context,
                  const std::string& actor) {
  return actor.empty() ? context->peer() : actor;
}

absl::Status CheckJob(const std::string& job) {
  if (!job.empty()) return absl::OkStatus();
  return RequiredFieldError("job", "the job's id (j-N) or name");
}

// What a job cannot do without, named as the API names it.
absl::Status CheckCreate(const v1::CreateJobRequest& request) {
  const v1::JobSpec& spec = request.spec();
  if (spec.name().empty())
    return RequiredFieldError("spec.name", "e.g. cleanup-audit-logs");
  if (absl::StripAsciiWhitespace(spec.bundle()).empty())
    return RequiredFieldError(
        "spec.bundle", "name@version, the bundle id or a unique prefix of it");
  if (spec.operation().empty())
    return RequiredFieldError("spec.operation",
                              "the bundle operation to run, e.g. "
                              "CleanupAuditLogs");
  if (absl::StripAsciiWhitespace(spec.schedule()).empty())
    return RequiredFieldError("spec.schedule",
                              "a cron expression such as \"0 2 * * *\"");
  const bool has_selector =
      !absl::StripAsciiWhitespace(spec.selector()).empty();
  if (!has_selector && !spec.all_databases())
    return RequiredFieldError(
        "spec.selector",
        "a label selector such as env=prod; set all_databases (ecliptixctl: "
        "--all) to mean every database");
  if (has_selector && spec.all_databases())
    return absl::InvalidArgumentError(
        "spec.selector and spec.all_databases exclude each other");
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* JobServiceImpl::CreateJob(
    grpc::CallbackServerContext* context, const v1::CreateJobRequest* request,
    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckCreate(*request); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  v1::CreateJobRequest copy = *request;
  copy.set_requested_by(Actor(context, request->requested_by()));
  Finisher(reactor, response)(jobs_->Create(copy));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckJob(request->job()); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  Finisher(reactor, response)(jobs_->Get(request->job()));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest*,
    v1::ListJobsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  for (v1::Job& job : jobs_->List()) *response->add_jobs() = std::move(job);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::DeleteJob(
    grpc::CallbackServerContext* context, const v1::DeleteJobRequest* request,
    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckJob(request->job()); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  Finisher(reactor, response)(
      jobs_->Delete(request->job(), Actor(context, request->actor())));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::SetJobEnabled(
    grpc::CallbackServerContext* context,
    const v1::SetJobEnabledRequest* request, v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckJob(request->job()); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  Finisher(reactor, response)(jobs_->SetEnabled(
      request->job(), request->enabled(), Actor(context, request->actor())));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::RunJobNow(
    grpc::CallbackServerContext* context, const v1::RunJobNowRequest* request,
    v1::Rollout* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckJob(request->job()); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  jobs_->RunNow(request->job(), Actor(context, request->actor()),
                Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobRuns(
    grpc::CallbackServerContext* context, const v1::ListJobRunsRequest* request,
    v1::ListRolloutsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status status = CheckJob(request->job()); !status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  jobs_->ListRuns(*request, Finisher(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetDatabaseJobHistory(
    grpc::CallbackServerContext* context,
    const v1::GetDatabaseJobHistoryRequest* request,
    v1::DatabaseJobHistory* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->database_id().empty()) {
    reactor->Finish(ToGrpcStatus(
        RequiredFieldError("database_id", "the database, e.g. prod-eu-1")));
    return reactor;
  }
  jobs_->History(*request, Finisher(reactor, response));
  return reactor;
}

}  // namespace ecliptix::server
