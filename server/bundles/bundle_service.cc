#include "server/bundles/bundle_service.h"

#include <utility>
#include <vector>

#include "common/grpc_status.h"
#include "common/required_field.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 absl::StatusOr<Response> result,
                                 Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

// Validation and the store write of an upload are short (bounded by the size
// limit); they run on the callback thread.
grpc::ServerUnaryReactor* BundleServiceImpl::UploadBundle(
    grpc::CallbackServerContext* context,
    const v1::UploadBundleRequest* request, v1::BundleInfo* response) {
  if (request->files().empty()) {
    return Refuse(context, RequiredFieldError("files",
                                              "the bundle's files, "
                                              "manifest.textproto included"));
  }
  std::vector<v1::BundleFile> files(request->files().begin(),
                                    request->files().end());
  return Answer(context, catalog_->Upload(std::move(files)), response);
}

grpc::ServerUnaryReactor* BundleServiceImpl::ListBundles(
    grpc::CallbackServerContext* context, const v1::ListBundlesRequest* request,
    v1::ListBundlesResponse* response) {
  return Answer(context, catalog_->List(*request), response);
}

grpc::ServerUnaryReactor* BundleServiceImpl::GetBundle(
    grpc::CallbackServerContext* context, const v1::GetBundleRequest* request,
    v1::GetBundleResponse* response) {
  if (request->bundle_id().empty() && request->name_version().empty()) {
    return Refuse(context, RequiredFieldError("bundle_id or name_version"));
  }
  return Answer(context, catalog_->Get(*request), response);
}

}  // namespace ecliptix::server
