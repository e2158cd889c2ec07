#include "server/fleet/fleet_service.h"

#include <memory>
#include <utility>

#include "common/grpc_status.h"
#include "common/required_field.h"
#include "server/streams/watch_reactor.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// The snapshot of a large fleet is queued at once; beyond this a watcher that
// does not read is cut off.
constexpr size_t kMaxQueuedEvents = 1'000'000;

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
  return new WatchReactor<v1::FleetEvent>(
      kMaxQueuedEvents, [registry = registry_, selector = request->selector()](
                            std::shared_ptr<FleetEventSink> sink) {
        return registry->Watch(selector, std::move(sink));
      });
}

}  // namespace ecliptix::server
