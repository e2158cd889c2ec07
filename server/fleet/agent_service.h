// The gRPC adapter of AgentService: one stream object per agent stream, on
// gRPC's async API over several completion queues, each drained by one thread
// (no thread per stream). It validates and converts messages and calls the
// Registry; it holds no fleet state itself.
//
// The async API rather than the callback API of the other services: with gRPC
// 1.51 every callback operation of a process completes through one completion
// queue, and a gRPC built without NDEBUG (Debian's) scans that queue's list of
// outstanding operations on every completion. Each agent stream keeps two
// operations outstanding, so with all of them on one queue every message costs
// O(connected agents). Spread over the queues here, it costs O(agents /
// queues).
#ifndef ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_
#define ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"
#include "server/fleet/registry.h"

namespace ecliptix::server {

class AgentServiceImpl final {
 public:
  static constexpr int kDefaultQueues = 16;

  explicit AgentServiceImpl(Registry* registry, int queues = kDefaultQueues);
  // Stops (see Stop) if nobody did: the grpc::Server must be shut down by
  // then.
  ~AgentServiceImpl();

  // Before ServerBuilder::BuildAndStart: registers the service and adds its
  // completion queues to the builder.
  void AddTo(grpc::ServerBuilder* builder);
  // After BuildAndStart: accepts agent streams, one thread per queue.
  void Start();
  // After the grpc::Server's Shutdown (which ends or cancels every stream and
  // fails every request for a new one): waits for every stream object to end,
  // then shuts the queues down and joins their threads. Later calls do
  // nothing.
  void Stop();

 private:
  class ConnectStream;

  void StreamCreated();
  void StreamDeleted();

  Registry* const registry_;
  const int queue_count_;
  fleet::v1::AgentService::AsyncService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;

  absl::Mutex mutex_;
  // ConnectStream objects alive: those waiting for a call, and those serving
  // one.
  int streams_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_FLEET_AGENT_SERVICE_H_
