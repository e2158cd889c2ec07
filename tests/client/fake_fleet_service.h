// A tiny in-process FleetService for unit tests of the client library and
// ecliptixctl: serves a fixed list of databases with paging, a fixed sequence
// of watch events, and injected failures. Binds 127.0.0.1:0.
#ifndef ECLIPTIX_TESTS_CLIENT_FAKE_FLEET_SERVICE_H_
#define ECLIPTIX_TESTS_CLIENT_FAKE_FLEET_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "tests/client/fake_rollout_service.h"

namespace ecliptix::testing {

class FakeFleetService final : public fleet::v1::FleetService::Service {
 public:
  // Served by ListDatabases (filtered by the request's selector) and
  // GetDatabase.
  void SetDatabases(std::vector<fleet::v1::Database> databases);
  // Sent at the start of each watch; then the watch stays open until the client
  // cancels it, or ends with `finish` when given.
  void SetWatchEvents(std::vector<fleet::v1::FleetEvent> events,
                      std::optional<grpc::Status> finish = std::nullopt);
  // Every ListDatabases answers with the token it was given (a broken server).
  void SetRepeatPageToken(bool repeat);
  // GetDatabase waits until the client gives up (to test deadlines).
  void SetGetHangs(bool hangs);

  // The page tokens of every ListDatabases call so far, in order.
  std::vector<std::string> page_tokens_seen() const;
  // Notified when a watch saw its client cancel.
  absl::Notification& watch_cancelled() { return watch_cancelled_; }
  // Notified when the first event of a watch has been written.
  absl::Notification& first_event_sent() { return first_event_sent_; }

  grpc::Status ListDatabases(
      grpc::ServerContext* context,
      const fleet::v1::ListDatabasesRequest* request,
      fleet::v1::ListDatabasesResponse* response) override;
  grpc::Status GetDatabase(grpc::ServerContext* context,
                           const fleet::v1::GetDatabaseRequest* request,
                           fleet::v1::Database* response) override;
  grpc::Status WatchFleet(
      grpc::ServerContext* context, const fleet::v1::WatchFleetRequest* request,
      grpc::ServerWriter<fleet::v1::FleetEvent>* writer) override;

 private:
  mutable absl::Mutex mutex_;
  std::vector<fleet::v1::Database> databases_ ABSL_GUARDED_BY(mutex_);
  std::vector<fleet::v1::FleetEvent> events_ ABSL_GUARDED_BY(mutex_);
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mutex_);
  bool repeat_page_token_ ABSL_GUARDED_BY(mutex_) = false;
  bool get_hangs_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::string> page_tokens_seen_ ABSL_GUARDED_BY(mutex_);
  absl::Notification watch_cancelled_;
  absl::Notification first_event_sent_;
};

// The fake services (FleetService and RolloutService) on a port of their own;
// shut down (cancelling open watches) when destroyed.
class FakeFleetServer {
 public:
  FakeFleetServer();
  ~FakeFleetServer();

  std::string address() const { return address_; }
  FakeFleetService& service() { return service_; }
  FakeRolloutService& rollouts() { return rollouts_; }

 private:
  FakeFleetService service_;
  FakeRolloutService rollouts_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// A database for tests.
fleet::v1::Database MakeDatabase(
    const std::string& id, const std::map<std::string, std::string>& labels);

// An address where nothing listens (a port that was just bound and released).
std::string UnusedAddress();

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_CLIENT_FAKE_FLEET_SERVICE_H_
