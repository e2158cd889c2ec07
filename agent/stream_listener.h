// StreamListener: what rides on the control stream besides commands (metric
// batches today). The control stream tells a listener when a session reaches
// Welcome (handing it a writer bound to that session) and when the session
// ends, and passes it the server messages it does not handle itself (e.g.
// metric_ack). The listener adds its capabilities to Hello.
//
// A writer is bound to one session on purpose: what a listener sends after a
// reconnect goes out in order on the new session, never half on the old one.
#ifndef ECLIPTIX_AGENT_STREAM_LISTENER_H_
#define ECLIPTIX_AGENT_STREAM_LISTENER_H_

#include <functional>
#include <string>
#include <vector>

#include "ecliptix/fleet/v1/agent_service.pb.h"

namespace ecliptix::agent {

class StreamListener {
 public:
  // Sends one message on the session it was given for (the stream stamps the
  // sequence number); false once that session cannot write any more. May
  // block on flow control: call it from a thread of the listener's own.
  using Writer = std::function<bool(fleet::v1::AgentMessage)>;

  virtual ~StreamListener() = default;

  // Added to the capabilities announced in Hello, e.g. "metrics".
  virtual std::vector<std::string> Capabilities() const = 0;
  // A session reached Welcome. Called on the stream's reader thread: must not
  // block (and so must not write there).
  virtual void SessionStarted(Writer writer) = 0;
  // The session of the last SessionStarted ended; its writer now fails.
  virtual void SessionEnded() = 0;
  // A server message whose payload the stream does not handle itself. Reader
  // thread; must not block.
  virtual void Received(const fleet::v1::ServerMessage& message) = 0;
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_STREAM_LISTENER_H_
