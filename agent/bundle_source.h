// Where the agent gets bundles for commands that name them by id: BundleService
// on the server, with an in-memory cache. A fetched bundle is re-validated and
// its content address checked, so a bundle cannot be altered on the way.
#ifndef ECLIPTIX_AGENT_BUNDLE_SOURCE_H_
#define ECLIPTIX_AGENT_BUNDLE_SOURCE_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/bundle/bundle.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"

namespace ecliptix::agent {

class BundleSource {
 public:
  virtual ~BundleSource() = default;
  virtual absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) = 0;
};

class ServerBundleSource : public BundleSource {
 public:
  explicit ServerBundleSource(std::shared_ptr<grpc::Channel> channel);
  absl::StatusOr<std::shared_ptr<const bundle::Bundle>> Fetch(
      const std::string& bundle_id) override;

 private:
  std::unique_ptr<fleet::v1::BundleService::Stub> stub_;
  absl::Mutex mutex_;
  std::map<std::string, std::shared_ptr<const bundle::Bundle>> cache_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_BUNDLE_SOURCE_H_
