#include "server/fleet_service.h"

#include <memory>
#include <utility>

#include "common/grpc_status.h"
#include "common/required_field.h"
#include "server/stream_writer.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// The snapshot of a large fleet is queued at once; beyond this a watcher that
// does not read is cut off.
constexpr size_t kMaxQueuedEvents = 1'000'000;

class WatchSink : public FleetEventSink {
 public:
  WatchSink(StreamWriter<v1::FleetEvent>::StartWriteFn start_write,
            StreamWriter<v1::FleetEvent>::FinishFn finish)
      : writer_(std::move(start_write), std::move(finish), kMaxQueuedEvents) {}

  bool Deliver(const v1::FleetEvent& event) override {
    return writer_.Write(event);
  }

  StreamWriter<v1::FleetEvent>& writer() { return writer_; }

 private:
  StreamWriter<v1::FleetEvent> writer_;
};

class WatchFleetReactor final
    : public grpc::ServerWriteReactor<v1::FleetEvent> {
 public:
  WatchFleetReactor(Registry* registry, const v1::WatchFleetRequest& request)
      : sink_(std::make_shared<WatchSink>(
            [this](const v1::FleetEvent* event) { StartWrite(event); },
            [this](const grpc::Status& status) { Finish(status); })) {
    if (absl::Status status = registry->Watch(request.selector(), sink_);
        !status.ok()) {
      sink_->writer().Finish(ToGrpcStatus(status));
    }
  }

  void OnWriteDone(bool ok) override { sink_->writer().OnWriteDone(ok); }

  void OnCancel() override {
    sink_->writer().Abort(
        grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<WatchSink> sink_;
};

}  // namespace

grpc::ServerUnaryReactor* FleetServiceImpl::ListDatabases(
    grpc::CallbackServerContext* context,
    const v1::ListDatabasesRequest* request,
    v1::ListDatabasesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::ListDatabasesResponse> result =
      registry_->ListDatabases(*request);
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* FleetServiceImpl::GetDatabase(
    grpc::CallbackServerContext* context, const v1::GetDatabaseRequest* request,
    v1::Database* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->database_id().empty()) {
    reactor->Finish(ToGrpcStatus(RequiredFieldError(
        "database_id",
        "the database's id, as `ecliptixctl fleet list` shows")));
    return reactor;
  }
  absl::StatusOr<v1::Database> result =
      registry_->GetDatabase(request->database_id());
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerWriteReactor<v1::FleetEvent>* FleetServiceImpl::WatchFleet(
    grpc::CallbackServerContext* context,
    const v1::WatchFleetRequest* request) {
  return new WatchFleetReactor(registry_, *request);
}

}  // namespace ecliptix::server
