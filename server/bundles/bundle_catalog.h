// The server's bundles: upload (validated, content-addressed, immutable),
// listing and lookup by id or name@version. Infos are kept in memory; files are
// read from the StateStore when asked for.
#ifndef ECLIPTIX_SERVER_BUNDLES_BUNDLE_CATALOG_H_
#define ECLIPTIX_SERVER_BUNDLES_BUNDLE_CATALOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "server/storage/state_store.h"

namespace ecliptix::server {

class BundleCatalog {
 public:
  // Neither pointer is owned. `max_bundle_bytes` bounds an upload's total file
  // size.
  BundleCatalog(StateStore* store, Clock* clock, int64_t max_bundle_bytes);

  // Loads the stored bundles' infos.
  absl::Status Load();

  // Validates and stores. Same content again: the stored info. Same
  // name@version with other content: ALREADY_EXISTS. Invalid: INVALID_ARGUMENT
  // listing every problem. Too big: RESOURCE_EXHAUSTED.
  absl::StatusOr<fleet::v1::BundleInfo> Upload(
      std::vector<fleet::v1::BundleFile> files);
  absl::StatusOr<fleet::v1::ListBundlesResponse> List(
      const fleet::v1::ListBundlesRequest& request) const;
  absl::StatusOr<fleet::v1::GetBundleResponse> Get(
      const fleet::v1::GetBundleRequest& request) const;
  // The info of a bundle by id, name@version, or a unique id prefix.
  absl::StatusOr<fleet::v1::BundleInfo> Resolve(
      const std::string& reference) const;

 private:
  absl::StatusOr<fleet::v1::BundleInfo> ResolveLocked(
      const std::string& reference) const ABSL_SHARED_LOCKS_REQUIRED(mutex_);

  StateStore* const store_;
  Clock* const clock_;
  const int64_t max_bundle_bytes_;

  mutable absl::Mutex mutex_;
  // Uploads are serialized so that the name@version check and the insert agree.
  absl::Mutex upload_mutex_;
  std::map<std::string, fleet::v1::BundleInfo> by_id_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::string> id_by_name_version_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_BUNDLES_BUNDLE_CATALOG_H_
