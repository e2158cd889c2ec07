// The events of day-2 commands (operations.proto) as the agent streams them:
// a sink for CommandEvents, and operation results turned into QueryRows.
#ifndef ECLIPTIX_AGENT_EXECUTOR_COMMAND_EVENTS_H_
#define ECLIPTIX_AGENT_EXECUTOR_COMMAND_EVENTS_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "agent/executor/operation.h"
#include "ecliptix/fleet/v1/agent_service.pb.h"
#include "ecliptix/fleet/v1/operations.pb.h"

namespace ecliptix::agent {

// Receives a command's events in order, on the thread running it
// (command_id and event_time are the caller's to fill in).
using CommandEventSink = std::function<void(fleet::v1::CommandEvent)>;

// `result`'s rows as QueryRows messages of at most `rows_per_message` rows
// each, every one with the columns, the last with last=true and
// rows_truncated = result.rows_left_out + `more_truncated`. At least one
// message, even for no rows.
std::vector<fleet::v1::QueryRows> ToQueryRows(const OperationResult& result,
                                              size_t rows_per_message,
                                              int64_t more_truncated = 0);

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_EXECUTOR_COMMAND_EVENTS_H_
