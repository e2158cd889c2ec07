// The one server-streaming reactor of every Watch* RPC: it hands a core an
// EventSink and relays what the core delivers to the client through a
// StreamWriter (one write in flight, a bounded queue, StartWrite and Finish
// outside any lock, Finish exactly once). The sink outlives the reactor for as
// long as the core holds it; once the stream is finishing, Deliver returns
// false and the core forgets it.
#ifndef ECLIPTIX_SERVER_STREAMS_WATCH_REACTOR_H_
#define ECLIPTIX_SERVER_STREAMS_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "common/grpc_status.h"
#include "server/streams/event_sink.h"
#include "server/streams/stream_writer.h"

namespace ecliptix::server {

template <typename Event>
class WatchReactor final : public grpc::ServerWriteReactor<Event> {
 public:
  // Registers the sink with the core. A status that is not OK ends the stream
  // with it (the core did not take the sink).
  using SubscribeFn =
      std::function<absl::Status(std::shared_ptr<EventSink<Event>>)>;

  // `max_queued` bounds the events queued for a client that reads slowly:
  // past it the stream ends with RESOURCE_EXHAUSTED. `subscribe` runs here,
  // once; the core may deliver from within it.
  WatchReactor(size_t max_queued, const SubscribeFn& subscribe)
      : sink_(std::make_shared<Sink>(
            [this](const Event* event) { this->StartWrite(event); },
            [this](const grpc::Status& status) { this->Finish(status); },
            max_queued)) {
    if (absl::Status status = subscribe(sink_); !status.ok()) {
      sink_->End(status);
    }
  }

  void OnWriteDone(bool ok) override { sink_->writer().OnWriteDone(ok); }

  void OnCancel() override {
    sink_->writer().Abort(
        grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override { delete this; }

 private:
  class Sink final : public EventSink<Event> {
   public:
    Sink(typename StreamWriter<Event>::StartWriteFn start_write,
         typename StreamWriter<Event>::FinishFn finish, size_t max_queued)
        : writer_(std::move(start_write), std::move(finish), max_queued) {}

    bool Deliver(const Event& event) override { return writer_.Write(event); }

    void End(const absl::Status& status) override {
      writer_.Finish(ToGrpcStatus(status));
    }

    StreamWriter<Event>& writer() { return writer_; }

   private:
    StreamWriter<Event> writer_;
  };

  const std::shared_ptr<Sink> sink_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_STREAMS_WATCH_REACTOR_H_
