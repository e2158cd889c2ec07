// The gRPC adapter of QueryService: ListQueries answers from the QueryRunner
// at once; RunQuery streams through a QueryReactor, which hands the runner a
// sink and tells it when the client goes away (the query's operation is then
// aborted).
#ifndef ECLIPTIX_SERVER_QUERIES_QUERY_SERVICE_H_
#define ECLIPTIX_SERVER_QUERIES_QUERY_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/query_service.grpc.pb.h"
#include "server/queries/query_runner.h"

namespace ecliptix::server {

class QueryServiceImpl final : public fleet::v1::QueryService::CallbackService {
 public:
  // `runner` is not owned.
  explicit QueryServiceImpl(QueryRunner* runner) : runner_(runner) {}

  grpc::ServerUnaryReactor* ListQueries(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListQueriesRequest* request,
      fleet::v1::ListQueriesResponse* response) override;
  grpc::ServerWriteReactor<fleet::v1::QueryResult>* RunQuery(
      grpc::CallbackServerContext* context,
      const fleet::v1::RunQueryRequest* request) override;

 private:
  QueryRunner* const runner_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_QUERIES_QUERY_SERVICE_H_
