#include "server/queries/query_service.h"

#include <memory>
#include <utility>

#include "common/grpc_status.h"
#include "server/streams/event_sink.h"
#include "server/streams/stream_writer.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Messages queued for a client that reads slowly, at most: past it the
// stream ends with RESOURCE_EXHAUSTED and the query's operation is aborted.
constexpr size_t kMaxQueuedResults = 100'000;

// One RunQuery stream. Like WatchReactor (one write in flight, a bounded
// queue, Finish once), plus the cancellation the runner must hear of.
class QueryReactor final : public grpc::ServerWriteReactor<v1::QueryResult> {
 public:
  QueryReactor(QueryRunner* runner, v1::RunQueryRequest request)
      : runner_(runner),
        sink_(std::make_shared<Sink>(
            [this](const v1::QueryResult* result) { StartWrite(result); },
            [this](const grpc::Status& status) { Finish(status); })) {
    absl::StatusOr<std::shared_ptr<QueryRunner::Query>> query =
        runner_->Run(std::move(request), sink_);
    if (!query.ok()) {
      sink_->End(query.status());
      return;
    }
    query_ = *std::move(query);
  }

  void OnWriteDone(bool ok) override { sink_->writer().OnWriteDone(ok); }

  void OnCancel() override {
    sink_->writer().Abort(
        grpc::Status(grpc::StatusCode::CANCELLED, "query cancelled"));
    if (query_ != nullptr) runner_->Cancel(query_);
  }

  void OnDone() override { delete this; }

 private:
  class Sink final : public QueryResultSink {
   public:
    Sink(StreamWriter<v1::QueryResult>::StartWriteFn start_write,
         StreamWriter<v1::QueryResult>::FinishFn finish)
        : writer_(std::move(start_write), std::move(finish),
                  kMaxQueuedResults) {}
    bool Deliver(const v1::QueryResult& result) override {
      return writer_.Write(result);
    }
    void End(const absl::Status& status) override {
      writer_.Finish(ToGrpcStatus(status));
    }
    StreamWriter<v1::QueryResult>& writer() { return writer_; }

   private:
    StreamWriter<v1::QueryResult> writer_;
  };

  QueryRunner* const runner_;
  const std::shared_ptr<Sink> sink_;
  std::shared_ptr<QueryRunner::Query> query_;
};

}  // namespace

grpc::ServerUnaryReactor* QueryServiceImpl::ListQueries(
    grpc::CallbackServerContext* context, const v1::ListQueriesRequest* request,
    v1::ListQueriesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::ListQueriesResponse> listed =
      runner_->ListQueries(*request);
  if (listed.ok()) *response = *std::move(listed);
  reactor->Finish(ToGrpcStatus(listed.status()));
  return reactor;
}

grpc::ServerWriteReactor<v1::QueryResult>* QueryServiceImpl::RunQuery(
    grpc::CallbackServerContext* context, const v1::RunQueryRequest* request) {
  v1::RunQueryRequest copy = *request;
  // Recorded with the query's operation: the named person, or the client's
  // address.
  if (copy.requested_by().empty()) copy.set_requested_by(context->peer());
  return new QueryReactor(runner_, std::move(copy));
}

}  // namespace ecliptix::server
