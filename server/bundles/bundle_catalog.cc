#include "server/bundles/bundle_catalog.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/bundle/bundle.h"
#include "common/logging.h"
#include "google/protobuf/util/time_util.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using google::protobuf::util::TimeUtil;

constexpr int kDefaultPageSize = 100;
constexpr size_t kMinIdPrefixHexDigits = 12;

std::string NameVersion(const v1::BundleInfo& info) {
  return absl::StrCat(info.name(), "@", info.version());
}

// Newest first; ties by id so paging is stable.
bool Newer(const v1::BundleInfo& a, const v1::BundleInfo& b) {
  const int64_t at = TimeUtil::TimestampToMicroseconds(a.upload_time());
  const int64_t bt = TimeUtil::TimestampToMicroseconds(b.upload_time());
  return at != bt ? at > bt : a.bundle_id() < b.bundle_id();
}

}  // namespace

BundleCatalog::BundleCatalog(StateStore* store, Clock* clock,
                             int64_t max_bundle_bytes)
    : store_(store), clock_(clock), max_bundle_bytes_(max_bundle_bytes) {}

absl::Status BundleCatalog::Load() {
  absl::StatusOr<std::vector<v1::BundleInfo>> infos = store_->LoadBundleInfos();
  if (!infos.ok()) return infos.status();
  absl::MutexLock lock(&mutex_);
  for (v1::BundleInfo& info : *infos) {
    id_by_name_version_[NameVersion(info)] = info.bundle_id();
    by_id_[info.bundle_id()] = std::move(info);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::BundleInfo> BundleCatalog::Upload(
    std::vector<v1::BundleFile> files) {
  int64_t total = 0;
  for (const v1::BundleFile& file : files)
    total += static_cast<int64_t>(file.content().size());
  if (total > max_bundle_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the bundle is ", total, " bytes; this server accepts at most ",
        max_bundle_bytes_, " (ecliptix-server --max_bundle_bytes)"));
  }
  absl::StatusOr<bundle::Bundle> bundle =
      bundle::Bundle::FromFiles(std::move(files));
  if (!bundle.ok()) return bundle.status();

  absl::MutexLock upload_lock(&upload_mutex_);
  v1::BundleInfo info;
  info.set_bundle_id(bundle->id());
  info.set_name(bundle->manifest().name());
  info.set_version(bundle->manifest().version());
  *info.mutable_manifest() = bundle->manifest();
  info.set_size_bytes(bundle->size_bytes());
  info.set_file_count(static_cast<int>(bundle->files().size()));
  *info.mutable_upload_time() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_->Now()));
  {
    absl::ReaderMutexLock lock(&mutex_);
    if (auto it = by_id_.find(info.bundle_id()); it != by_id_.end())
      return it->second;
    if (auto it = id_by_name_version_.find(NameVersion(info));
        it != id_by_name_version_.end()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "bundle ", NameVersion(info), " already exists with other content (",
          it->second,
          "); bundles are immutable: give the changed bundle a new version"));
    }
  }
  if (absl::Status status = store_->InsertBundle(info, bundle->files());
      !status.ok()) {
    return status;
  }
  Logger("bundles")->info("stored bundle {} ({}, {} files, {} bytes)",
                          NameVersion(info), info.bundle_id(),
                          info.file_count(), info.size_bytes());
  absl::MutexLock lock(&mutex_);
  id_by_name_version_[NameVersion(info)] = info.bundle_id();
  by_id_[info.bundle_id()] = info;
  return info;
}

absl::StatusOr<v1::ListBundlesResponse> BundleCatalog::List(
    const v1::ListBundlesRequest& request) const {
  if (request.page_size() < 0)
    return absl::InvalidArgumentError("page_size must not be negative");
  const int page_size =
      request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  int offset = 0;
  if (!request.page_token().empty()) {
    std::string decoded;
    if (!absl::WebSafeBase64Unescape(request.page_token(), &decoded) ||
        !absl::SimpleAtoi(decoded, &offset) || offset < 0) {
      return absl::InvalidArgumentError(
          "page_token is not one this server returned; start again with an "
          "empty token");
    }
  }
  std::vector<v1::BundleInfo> matching;
  {
    absl::ReaderMutexLock lock(&mutex_);
    for (const auto& [id, info] : by_id_) {
      if (request.name().empty() || info.name() == request.name())
        matching.push_back(info);
    }
  }
  std::sort(matching.begin(), matching.end(), Newer);
  v1::ListBundlesResponse response;
  for (int i = offset;
       i < static_cast<int>(matching.size()) && i < offset + page_size; ++i) {
    *response.add_bundles() = matching[i];
  }
  if (offset + page_size < static_cast<int>(matching.size())) {
    response.set_next_page_token(
        absl::WebSafeBase64Escape(absl::StrCat(offset + page_size)));
  }
  return response;
}

absl::StatusOr<v1::BundleInfo> BundleCatalog::Resolve(
    const std::string& reference) const {
  absl::ReaderMutexLock lock(&mutex_);
  return ResolveLocked(reference);
}

absl::StatusOr<v1::BundleInfo> BundleCatalog::ResolveLocked(
    const std::string& reference) const {
  if (reference.empty()) {
    return absl::InvalidArgumentError(
        "no bundle given: use its id (sha256:...) or name@version");
  }
  if (absl::StrContains(reference, "@")) {
    auto it = id_by_name_version_.find(reference);
    if (it == id_by_name_version_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no bundle ", reference,
                       "; `ecliptixctl bundle list` shows the stored ones"));
    }
    return by_id_.at(it->second);
  }
  std::string prefix = reference;
  if (!absl::StartsWith(prefix, "sha256:"))
    prefix = absl::StrCat("sha256:", prefix);
  if (prefix.size() < std::string("sha256:").size() + kMinIdPrefixHexDigits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle id \"", reference, "\" is too short: give at least ",
        kMinIdPrefixHexDigits, " hex digits, or name@version"));
  }
  auto it = by_id_.lower_bound(prefix);
  if (it == by_id_.end() || !absl::StartsWith(it->first, prefix)) {
    return absl::NotFoundError(
        absl::StrCat("no bundle ", reference,
                     "; `ecliptixctl bundle list` shows the stored ones"));
  }
  auto next = std::next(it);
  if (next != by_id_.end() && absl::StartsWith(next->first, prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle id prefix \"", reference, "\" matches several bundles"));
  }
  return it->second;
}

absl::StatusOr<v1::GetBundleResponse> BundleCatalog::Get(
    const v1::GetBundleRequest& request) const {
  std::string reference;
  switch (request.selector_case()) {
    case v1::GetBundleRequest::kBundleId:
      reference = request.bundle_id();
      break;
    case v1::GetBundleRequest::kNameVersion:
      reference = request.name_version();
      if (!absl::StrContains(reference, "@")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "name_version \"", reference, "\" must look like name@version"));
      }
      break;
    default:
      return absl::InvalidArgumentError("give bundle_id or name_version");
  }
  absl::StatusOr<v1::BundleInfo> info = Resolve(reference);
  if (!info.ok()) return info.status();
  v1::GetBundleResponse response;
  *response.mutable_info() = *info;
  if (request.include_files()) {
    absl::StatusOr<std::vector<v1::BundleFile>> files =
        store_->LoadBundleFiles(info->bundle_id());
    if (!files.ok()) return files.status();
    for (v1::BundleFile& file : *files) *response.add_files() = std::move(file);
  }
  return response;
}

}  // namespace ecliptix::server
