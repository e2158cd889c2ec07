#include "agent/bundle_source.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace ecliptix::agent {

namespace v1 = ::ecliptix::fleet::v1;

ServerBundleSource::ServerBundleSource(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::BundleService::NewStub(std::move(channel))) {}

absl::StatusOr<std::shared_ptr<const bundle::Bundle>> ServerBundleSource::Fetch(
    const std::string& bundle_id) {
  {
    absl::MutexLock lock(&mutex_);
    if (auto it = cache_.find(bundle_id); it != cache_.end()) return it->second;
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  v1::GetBundleRequest request;
  request.set_bundle_id(bundle_id);
  request.set_include_files(true);
  v1::GetBundleResponse response;
  const grpc::Status status = stub_->GetBundle(&context, request, &response);
  if (!status.ok()) {
    const absl::Status error = FromGrpcStatus(status);
    return absl::Status(
        error.code(),
        absl::StrCat("cannot fetch bundle ", bundle_id, ": ", error.message()));
  }
  std::vector<v1::BundleFile> files(response.files().begin(),
                                    response.files().end());
  absl::StatusOr<bundle::Bundle> loaded =
      bundle::Bundle::FromFiles(std::move(files));
  if (!loaded.ok()) {
    return absl::DataLossError(absl::StrCat(
        "bundle ", bundle_id,
        " from the server does not validate: ", loaded.status().message()));
  }
  if (loaded->id() != bundle_id) {
    return absl::DataLossError(
        absl::StrCat("bundle ", bundle_id,
                     " from the server has content address ", loaded->id()));
  }
  auto shared = std::make_shared<const bundle::Bundle>(*std::move(loaded));
  absl::MutexLock lock(&mutex_);
  cache_[bundle_id] = shared;
  return shared;
}

}  // namespace ecliptix::agent
