#include "tests/client/fake_fleet_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/labels.h"

namespace ecliptix::testing {

using fleet::v1::Database;
using fleet::v1::FleetEvent;

void FakeFleetService::SetDatabases(std::vector<Database> databases) {
  std::sort(databases.begin(), databases.end(),
            [](const Database& a, const Database& b) {
              return a.database_id() < b.database_id();
            });
  absl::MutexLock lock(&mutex_);
  databases_ = std::move(databases);
}

void FakeFleetService::SetWatchEvents(std::vector<FleetEvent> events,
                                      std::optional<grpc::Status> finish) {
  absl::MutexLock lock(&mutex_);
  events_ = std::move(events);
  finish_ = std::move(finish);
}

void FakeFleetService::SetRepeatPageToken(bool repeat) {
  absl::MutexLock lock(&mutex_);
  repeat_page_token_ = repeat;
}

void FakeFleetService::SetGetHangs(bool hangs) {
  absl::MutexLock lock(&mutex_);
  get_hangs_ = hangs;
}

std::vector<std::string> FakeFleetService::page_tokens_seen() const {
  absl::MutexLock lock(&mutex_);
  return page_tokens_seen_;
}

grpc::Status FakeFleetService::ListDatabases(
    grpc::ServerContext*, const fleet::v1::ListDatabasesRequest* request,
    fleet::v1::ListDatabasesResponse* response) {
  absl::StatusOr<LabelSelector> selector =
      LabelSelector::Parse(request->selector());
  if (!selector.ok()) return ToGrpcStatus(selector.status());
  absl::MutexLock lock(&mutex_);
  page_tokens_seen_.push_back(request->page_token());
  // The token is the offset of the page's first database among the matches.
  size_t offset = 0;
  if (!request->page_token().empty() &&
      !absl::SimpleAtoi(request->page_token(), &offset)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad page token");
  }
  const size_t page_size =
      request->page_size() > 0 ? request->page_size() : 100;
  std::vector<const Database*> matches;
  for (const Database& database : databases_) {
    Labels labels(database.labels().begin(), database.labels().end());
    if (selector->Matches(labels)) matches.push_back(&database);
  }
  for (size_t i = offset; i < matches.size() && i < offset + page_size; ++i) {
    *response->add_databases() = *matches[i];
  }
  if (offset + page_size < matches.size()) {
    response->set_next_page_token(repeat_page_token_ &&
                                          !request->page_token().empty()
                                      ? request->page_token()
                                      : absl::StrCat(offset + page_size));
  }
  response->set_total_size(static_cast<int32_t>(matches.size()));
  return grpc::Status::OK;
}

grpc::Status FakeFleetService::GetDatabase(
    grpc::ServerContext* context, const fleet::v1::GetDatabaseRequest* request,
    Database* response) {
  bool hangs;
  {
    absl::MutexLock lock(&mutex_);
    hangs = get_hangs_;
    for (const Database& database : databases_) {
      if (database.database_id() == request->database_id() && !hangs) {
        *response = database;
        return grpc::Status::OK;
      }
    }
  }
  if (hangs) {
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::CANCELLED;
  }
  return grpc::Status(
      grpc::StatusCode::NOT_FOUND,
      absl::StrCat("database \"", request->database_id(), "\" is not known"));
}

grpc::Status FakeFleetService::WatchFleet(
    grpc::ServerContext* context, const fleet::v1::WatchFleetRequest*,
    grpc::ServerWriter<FleetEvent>* writer) {
  std::vector<FleetEvent> events;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&mutex_);
    events = events_;
    finish = finish_;
  }
  for (const FleetEvent& event : events) {
    if (!writer->Write(event)) break;
    if (!first_event_sent_.HasBeenNotified()) first_event_sent_.Notify();
  }
  if (finish) return *finish;
  // The sync API has no cancellation callback; polling is enough for a test.
  while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
  if (!watch_cancelled_.HasBeenNotified()) watch_cancelled_.Notify();
  return grpc::Status::CANCELLED;
}

FakeFleetServer::FakeFleetServer() {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service_);
  builder.RegisterService(&rollouts_);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeFleetServer::~FakeFleetServer() {
  // A deadline in the past cancels open watches instead of waiting for them.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

Database MakeDatabase(const std::string& id,
                      const std::map<std::string, std::string>& labels) {
  Database database;
  database.set_database_id(id);
  database.set_engine(fleet::v1::ENGINE_SQLITE);
  database.set_engine_version("3.40.1");
  database.set_connector(fleet::v1::CONNECTOR_SQLITE);
  database.set_connection_state(fleet::v1::CONNECTION_STATE_CONNECTED);
  database.mutable_labels()->insert(labels.begin(), labels.end());
  database.set_agent_version("0.1.0");
  database.mutable_last_seen_time()->set_seconds(1'700'000'000);
  return database;
}

std::string UnusedAddress() {
  // Bind port 0, note the port, and close the socket: nothing listens there
  // after.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return absl::StrCat("127.0.0.1:", port);
}

}  // namespace ecliptix::testing
