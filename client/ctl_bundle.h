// ecliptixctl's `bundle` noun: validate a bundle directory locally, push it to
// the server, list and show stored bundles.
#ifndef ECLIPTIX_CLIENT_CTL_BUNDLE_H_
#define ECLIPTIX_CLIENT_CTL_BUNDLE_H_

#include "absl/status/status.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"

namespace ecliptix::client::ctl {

absl::Status BundleValidate(const Invocation& invocation,
                            CommandRuntime& runtime);
absl::Status BundlePush(const Invocation& invocation, CommandRuntime& runtime);
absl::Status BundleList(const Invocation& invocation, CommandRuntime& runtime);
absl::Status BundleShow(const Invocation& invocation, CommandRuntime& runtime);

// The noun's entry in the command table.
NounSpec BundleNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_BUNDLE_H_
