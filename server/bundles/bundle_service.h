// The gRPC adapter of BundleService over the BundleCatalog.
#ifndef ECLIPTIX_SERVER_BUNDLES_BUNDLE_SERVICE_H_
#define ECLIPTIX_SERVER_BUNDLES_BUNDLE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "server/bundles/bundle_catalog.h"

namespace ecliptix::server {

class BundleServiceImpl final
    : public fleet::v1::BundleService::CallbackService {
 public:
  explicit BundleServiceImpl(BundleCatalog* catalog) : catalog_(catalog) {}

  grpc::ServerUnaryReactor* UploadBundle(
      grpc::CallbackServerContext* context,
      const fleet::v1::UploadBundleRequest* request,
      fleet::v1::BundleInfo* response) override;
  grpc::ServerUnaryReactor* ListBundles(
      grpc::CallbackServerContext* context,
      const fleet::v1::ListBundlesRequest* request,
      fleet::v1::ListBundlesResponse* response) override;
  grpc::ServerUnaryReactor* GetBundle(
      grpc::CallbackServerContext* context,
      const fleet::v1::GetBundleRequest* request,
      fleet::v1::GetBundleResponse* response) override;

 private:
  BundleCatalog* const catalog_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_BUNDLES_BUNDLE_SERVICE_H_
