// What a watcher of a core's events implements: the registry's fleet watches
// and the orchestrator's rollout watches take the same shape, so one stream
// adapter (server/streams/watch_reactor.h) serves both.
#ifndef ECLIPTIX_SERVER_STREAMS_EVENT_SINK_H_
#define ECLIPTIX_SERVER_STREAMS_EVENT_SINK_H_

#include "absl/status/status.h"

namespace ecliptix::server {

template <typename Event>
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues one event; must not block. False when the sink is closed: the core
  // then forgets it.
  virtual bool Deliver(const Event& event) = 0;
  // No more events: the watched subject ended (OK), or the watch was refused.
  // Cores whose watches never end on their own do not call it.
  virtual void End(const absl::Status& status) { (void)status; }
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_STREAMS_EVENT_SINK_H_
