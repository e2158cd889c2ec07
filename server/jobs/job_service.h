// The gRPC adapter of JobService: validates what the API requires, records
// who asks, and hands each call to the JobManager.
#ifndef ECLIPTIX_SERVER_JOBS_JOB_SERVICE_H_
#define ECLIPTIX_SERVER_JOBS_JOB_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/job_service.grpc.pb.h"
#include "server/jobs/job_manager.h"

namespace ecliptix::server {

class JobServiceImpl final : public fleet::v1::JobService::CallbackService {
 public:
  explicit JobServiceImpl(JobManager* jobs) : jobs_(jobs) {}

  grpc::ServerUnaryReactor* CreateJob(
      grpc::CallbackServerContext* context,
      const fleet::v1::CreateJobRequest* request,
      fleet::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const fleet::v1::GetJobRequest* request,
                                   fleet::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListJobsRequest* request,
      fleet::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(
      grpc::CallbackServerContext* context,
      const fleet::v1::DeleteJobRequest* request,
      fleet::v1::Job* response) override;
  grpc::ServerUnaryReactor* SetJobEnabled(
      grpc::CallbackServerContext* context,
      const fleet::v1::SetJobEnabledRequest* request,
      fleet::v1::Job* response) override;
  grpc::ServerUnaryReactor* RunJobNow(
      grpc::CallbackServerContext* context,
      const fleet::v1::RunJobNowRequest* request,
      fleet::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* ListJobRuns(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListJobRunsRequest* request,
      fleet::v1::ListRolloutsResponse* response) override;
  grpc::ServerUnaryReactor* GetDatabaseJobHistory(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetDatabaseJobHistoryRequest* request,
      fleet::v1::DatabaseJobHistory* response) override;

 private:
  JobManager* const jobs_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_JOBS_JOB_SERVICE_H_
