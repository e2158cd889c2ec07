#include "client/fleet_client.h"

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
using fleet::v1::WatchFleetRequest;

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
      bundle_stub_(fleet::v1::BundleService::NewStub(channel_)) {}

void FleetClient::PrepareUnary(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
  // Fail fast instead of waiting for a server that is down; the deadline bounds
  // slow servers.
  context.set_wait_for_ready(false);
}

absl::Status FleetClient::ToStatus(const grpc::Status& status) const {
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
        " within ", absl::FormatDuration(options_.rpc_timeout), ": ",
        result.message()));
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

absl::Status FleetClient::WatchFleet(
    const WatchFleetRequest& request,
    std::function<bool(const FleetEvent&)> on_event) {
  grpc::ClientContext context;
  // No deadline: a watch lasts until someone stops it. Not wait-for-ready, so a
  // server that is down is reported at once instead of the watch hanging
  // silently.
  context.set_wait_for_ready(false);
  {
    absl::MutexLock lock(&mutex_);
    watches_.emplace(&context, false);
  }
  std::unique_ptr<grpc::ClientReader<FleetEvent>> reader =
      stub_->WatchFleet(&context, request);
  FleetEvent event;
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

void FleetClient::CancelWatches() {
  absl::MutexLock lock(&mutex_);
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

}  // namespace ecliptix::client
