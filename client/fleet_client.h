// The C++ client library of ecliptix-server's FleetService: one channel, unary
// calls with a deadline, paging, and blocking watches that another thread can
// cancel. Every failure is an absl::Status.
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
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"

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

  // Cancels every WatchFleet running now; later ones are not affected.
  void CancelWatches();

  // BundleService: upload (the server validates and answers with the stored
  // bundle's info), list and get.
  absl::StatusOr<fleet::v1::BundleInfo> UploadBundle(
      const std::vector<fleet::v1::BundleFile>& files);
  absl::StatusOr<fleet::v1::ListBundlesResponse> ListBundles(
      const fleet::v1::ListBundlesRequest& request);
  absl::StatusOr<fleet::v1::GetBundleResponse> GetBundle(
      const fleet::v1::GetBundleRequest& request);

  const ClientOptions& options() const { return options_; }

 private:
  FleetClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // A context with the unary deadline.
  void PrepareUnary(grpc::ClientContext& context) const;
  // FromGrpcStatus, plus the server's address when the failure is about
  // reaching it.
  absl::Status ToStatus(const grpc::Status& status) const;

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<fleet::v1::FleetService::Stub> stub_;
  std::unique_ptr<fleet::v1::BundleService::Stub> bundle_stub_;

  absl::Mutex mutex_;
  // The running watches, each with whether CancelWatches() cancelled it (so its
  // CANCELLED status means "stopped as asked" rather than a failure).
  std::map<grpc::ClientContext*, bool> watches_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::client

#endif  // ECLIPTIX_CLIENT_FLEET_CLIENT_H_
