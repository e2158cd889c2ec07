// ecliptixctl's `job` noun: maintenance jobs (a bundle operation on a cron
// schedule over a selector): create (from flags or a bundle's job template),
// list, show, run now (and watch the run), runs of a job, what the jobs did on
// one database, enable / disable, delete.
#ifndef ECLIPTIX_CLIENT_CTL_JOB_H_
#define ECLIPTIX_CLIENT_CTL_JOB_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "ecliptix/fleet/v1/job_service.pb.h"

namespace ecliptix::client::ctl {

// The JobSpec of `job create NAME ...` from its flags; `template_job` (from
// --template, may be null) gives operation, arguments and schedule that flags
// override. Malformed values (--arg without '=', --missed=sometimes, a bad
// --window or --batch_pause) are usage errors naming the flag.
absl::StatusOr<fleet::v1::JobSpec> JobSpecFromFlags(
    const Invocation& invocation, const fleet::v1::JobTemplate* template_job);

// The noun's entry in the command table.
NounSpec JobNoun();

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_JOB_H_
