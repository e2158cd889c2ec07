#include "agent/bundle_source.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace ecliptix::agent {

namespace v1 = ::ecliptix::fleet::v1;

// How long a bundle fetch keeps trying through server restarts and network
// trouble.
constexpr absl::Duration kFetchPatience = absl::Minutes(2);

ServerBundleSource::ServerBundleSource(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::BundleService::NewStub(std::move(channel))) {}

absl::StatusOr<std::shared_ptr<const bundle::Bundle>> ServerBundleSource::Fetch(
    const std::string& bundle_id) {
  {
    absl::MutexLock lock(&mutex_);
    if (auto it = cache_.find(bundle_id); it != cache_.end()) return it->second;
  }
  // A server restart while a command runs must not fail the command: wait for
  // the server and retry what may be transient, for a bounded time.
  const absl::Time deadline = absl::Now() + kFetchPatience;
  absl::Duration delay = absl::Milliseconds(200);
  v1::GetBundleResponse response;
  for (;;) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(
        std::min(deadline, absl::Now() + absl::Seconds(30))));
    v1::GetBundleRequest request;
    request.set_bundle_id(bundle_id);
    request.set_include_files(true);
    const grpc::Status status = stub_->GetBundle(&context, request, &response);
    if (status.ok()) break;
    const absl::Status error = FromGrpcStatus(status);
    const bool transient = error.code() == absl::StatusCode::kUnavailable ||
                           error.code() == absl::StatusCode::kDeadlineExceeded;
    if (!transient || absl::Now() + delay >= deadline) {
      return absl::Status(error.code(),
                          absl::StrCat("cannot fetch bundle ", bundle_id, ": ",
                                       error.message()));
    }
    Logger("agent.deploy")
        ->warn("fetching bundle {}: {}; retrying in {}", bundle_id,
               error.ToString(), absl::FormatDuration(delay));
    absl::SleepFor(delay);
    delay = std::min(delay * 2, absl::Seconds(5));
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
