// Configuration commands: ApplyConfigCommand and ReadConfigCommand, through
// the bundle's ConfigSchema (its keys, and the get and set operations that
// read and store one key).
//
// Apply, on the executor's (main) session: every setting is checked against
// the schema first (a key it declares, a value of its type and range:
// bundle::CheckConfigValue), so a bad command writes nothing. Then, for each
// setting in order: read the previous value with the get operation (NULL or
// no row: missing), store the new one with the set operation, read it back.
// Each call is its own transaction. When a setting fails (or a cancel comes),
// the settings done before it are set back to their previous values before
// the command fails, and the error says so (a key that was missing before
// cannot be removed by the set operation: the error names it). Reports: one
// ConfigValueReport per key at the end, describing what the database holds
// then (after a failure: the keys set back).
//
// Read, on a read-only session of its own (read_only_session.h): one
// ConfigValueReport per key asked for (every key of the schema when none is),
// nothing written.
#ifndef ECLIPTIX_AGENT_EXECUTOR_CONFIG_COMMANDS_H_
#define ECLIPTIX_AGENT_EXECUTOR_CONFIG_COMMANDS_H_

#include "absl/status/status.h"
#include "agent/executor/cancel_signal.h"
#include "agent/executor/command_events.h"
#include "agent/executor/executor.h"
#include "agent/executor/read_only_session.h"
#include "common/bundle/bundle.h"
#include "ecliptix/fleet/v1/operations.pb.h"

namespace ecliptix::agent {

// FAILED_PRECONDITION when the bundle declares no configuration;
// INVALID_ARGUMENT listing every setting that names a key outside the schema,
// a value that does not fit its key, or a key given twice, or for no setting.
absl::Status CheckApplyConfig(const bundle::Bundle& bundle,
                              const fleet::v1::ApplyConfigCommand& command);

// Runs the command as described at the top (CheckApplyConfig first).
absl::Status ApplyConfig(Executor& executor, const bundle::Bundle& bundle,
                         const fleet::v1::ApplyConfigCommand& command,
                         const CancelSignal& cancel,
                         const CommandEventSink& sink);

// FAILED_PRECONDITION when the bundle declares no configuration;
// INVALID_ARGUMENT for keys outside the schema.
absl::Status CheckReadConfig(const bundle::Bundle& bundle,
                             const fleet::v1::ReadConfigCommand& command);

// Runs the command on `session` (CheckReadConfig first).
absl::Status ReadConfig(ReadOnlySession& session, const bundle::Bundle& bundle,
                        const fleet::v1::ReadConfigCommand& command,
                        const CommandEventSink& sink);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_CONFIG_COMMANDS_H_
