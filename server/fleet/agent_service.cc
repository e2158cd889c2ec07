#include "server/fleet/agent_service.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "server/streams/stream_writer.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Enough for bursts of commands; an agent that stops reading is cut off rather
// than buffered forever.
constexpr size_t kMaxQueuedToAgent = 10'000;

// Requests for a new call kept waiting on each queue, so that a burst of
// agents connecting at once is taken up without waiting for a queue's thread
// to ask for the next one.
constexpr int kAcceptsPerQueue = 4;

// What the registry holds for a live stream: numbers and queues messages to the
// agent.
class StreamSession : public AgentSession {
 public:
  StreamSession(StreamWriter<v1::ServerMessage>::StartWriteFn start_write,
                StreamWriter<v1::ServerMessage>::FinishFn finish)
      : writer_(std::move(start_write), std::move(finish), kMaxQueuedToAgent) {}

  void Send(v1::ServerMessage message) override {
    // Numbering and queueing under one lock keeps sequence numbers in write
    // order.
    absl::MutexLock lock(&sequence_mutex_);
    message.set_sequence(next_sequence_);
    if (writer_.Write(std::move(message))) ++next_sequence_;
  }

  void Close(const absl::Status& status) override {
    writer_.Finish(ToGrpcStatus(status));
  }

  StreamWriter<v1::ServerMessage>& writer() { return writer_; }

 private:
  StreamWriter<v1::ServerMessage> writer_;
  absl::Mutex sequence_mutex_;
  uint64_t next_sequence_ ABSL_GUARDED_BY(sequence_mutex_) = 1;
};

// Reads the next message of a stream held back by flow control, from the
// thread that frees room (the stream does not read while it waits). Closed
// when the stream is done, so a late resume does nothing.
class ReadGate {
 public:
  explicit ReadGate(std::function<void()> start_read)
      : start_read_(std::move(start_read)) {}

  void Resume() {
    // Under the lock: Close waits for a read being started, and the stream
    // object is not deleted while that read is in flight.
    absl::MutexLock lock(&mutex_);
    if (!closed_) start_read_();
  }

  void Close() {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
  }

 private:
  absl::Mutex mutex_;
  const std::function<void()> start_read_;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace

// One agent stream, from the request for a call to its end. Every operation
// completes on this object's queue, whose one thread calls Proceed; reads
// also start from the thread that resumes a stream held by flow control, and
// writes and the Finish from any thread that sends to the agent or closes its
// session (through the StreamWriter, which keeps one write in flight and
// finishes once). So the operations in flight are counted under a lock, and
// the object deletes itself once the call is over (its Finish and its
// "done" notification completed) and nothing is in flight.
class AgentServiceImpl::ConnectStream {
 public:
  enum class Op { kAccept, kRead, kWrite, kFinish, kDone };
  // What a completion queue hands back: which stream, which operation.
  struct Tag {
    ConnectStream* stream;
    Op op;
  };

  // Asks for the next Connect call on `queue`.
  ConnectStream(AgentServiceImpl* owner, grpc::ServerCompletionQueue* queue)
      : owner_(owner),
        registry_(owner->registry_),
        queue_(queue),
        stream_(&context_) {
    owner_->StreamCreated();
    context_.AsyncNotifyWhenDone(&done_tag_);
    in_flight_ = 1;
    owner_->service_.RequestConnect(&context_, &stream_, queue_, queue_,
                                    &accept_tag_);
  }

  ~ConnectStream() { owner_->StreamDeleted(); }

  // On the queue's thread only.
  void Proceed(Op op, bool ok) {
    switch (op) {
      case Op::kAccept:
        if (!ok) {
          // The server is shutting down: no call came, nothing else was
          // started.
          delete this;
          return;
        }
        new ConnectStream(owner_, queue_);  // Waits for the next agent.
        Begin();
        break;
      case Op::kRead:
        OnReadDone(ok);
        break;
      case Op::kWrite:
        session_->writer().OnWriteDone(ok);
        break;
      case Op::kFinish:
        finish_done_ = true;
        break;
      case Op::kDone:
        done_ = true;
        // Cancelled (the connection dropped, or the server is going away):
        // reads fail next; make sure queued writes do not hold the stream
        // open.
        if (context_.IsCancelled()) {
          session_->writer().Abort(
              grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
        }
        break;
    }
    Completed();
  }

 private:
  void Begin() {
    peer_ = context_.peer();
    session_ = std::make_shared<StreamSession>(
        [this](const v1::ServerMessage* message) {
          Started();
          stream_.Write(*message, &write_tag_);
        },
        [this](const grpc::Status& status) {
          Started();
          stream_.Finish(status, &finish_tag_);
        });
    read_gate_ = std::make_shared<ReadGate>([this] {
      if (!session_->writer().finishing()) StartRead();
    });
    // The call's "done" notification is armed from here on.
    Started();
    StartRead();
  }

  void StartRead() {
    Started();
    stream_.Read(&incoming_, &read_tag_);
  }

  void Started() {
    absl::MutexLock lock(&mutex_);
    ++in_flight_;
  }

  // One operation completed. The stream's end (as the callback API's OnDone)
  // once both its Finish and its "done" notification completed; the object
  // goes once nothing else is in flight. Nothing new can start by then: the
  // writer is finished, and the read gate closed.
  void Completed() {
    if (done_ && finish_done_ && !ended_) {
      ended_ = true;
      read_gate_->Close();
      EndSession("stream ended");
    }
    bool last = false;
    {
      absl::MutexLock lock(&mutex_);
      last = --in_flight_ == 0 && ended_;
    }
    if (last) delete this;
  }

  void OnReadDone(bool ok) {
    if (!ok) {
      // The agent half-closed its side, or the connection dropped.
      EndSession(context_.IsCancelled() ? "connection lost"
                                        : "agent closed the stream");
      session_->writer().Finish(grpc::Status::OK);
      return;
    }
    // A read the read gate started just before the stream finished may still
    // bring a message after the end: the session is over.
    if (ended_) return;
    if (session_id_ == 0) {
      if (!HandleHello()) return;
    } else if (!HandleMessage()) {
      // Held back by flow control: the read gate reads on.
      return;
    }
    if (!session_->writer().finishing()) StartRead();
  }

  // Returns false when the stream is being finished.
  bool HandleHello() {
    if (incoming_.payload_case() != v1::AgentMessage::kHello) {
      Refuse(absl::InvalidArgumentError(
          "the first message on AgentService.Connect must be a Hello"));
      return false;
    }
    if (incoming_.sequence() != 1) {
      Refuse(absl::InvalidArgumentError(absl::StrCat(
          "the Hello must carry sequence 1, not ", incoming_.sequence())));
      return false;
    }
    absl::StatusOr<Registration> registration =
        registry_->Register(incoming_.hello(), peer_, session_);
    if (!registration.ok()) {
      Refuse(registration.status());
      return false;
    }
    // The registry has queued the Welcome.
    session_id_ = registration->session_id;
    expected_sequence_ = 2;
    return true;
  }

  // Returns false when the stream is not to be read until the read gate
  // resumes it (the orchestrator or the metrics core cannot take more agent
  // messages yet).
  bool HandleMessage() {
    const uint64_t sequence = incoming_.sequence();
    if (sequence != expected_sequence_) {
      SendError(sequence, absl::InvalidArgumentError(absl::StrCat(
                              "sequence ", sequence, " out of order: expected ",
                              expected_sequence_)));
    }
    expected_sequence_ = sequence + 1;
    switch (incoming_.payload_case()) {
      case v1::AgentMessage::kHeartbeat:
        registry_->Touch(session_id_);
        break;
      case v1::AgentMessage::kCommandAck:
      case v1::AgentMessage::kCommandEvent:
        // The last use of `incoming_` until the next read: when held, the
        // next read may start on another thread at any moment.
        return registry_->OnCommandMessage(
            session_id_, incoming_, [gate = read_gate_] { gate->Resume(); });
      case v1::AgentMessage::kMetricBatch:
        // To the metrics core, with flow control of its own: never through
        // the orchestrator's queue.
        return registry_->OnMetricBatch(
            session_id_, incoming_, [gate = read_gate_] { gate->Resume(); });
      case v1::AgentMessage::kHello:
        registry_->Touch(session_id_);
        SendError(sequence, absl::FailedPreconditionError(
                                "the session is already established; a Hello "
                                "is sent only once"));
        break;
      case v1::AgentMessage::PAYLOAD_NOT_SET:
        registry_->Touch(session_id_);
        SendError(sequence,
                  absl::InvalidArgumentError("the message carries no payload"));
        break;
    }
    return true;
  }

  void SendError(uint64_t agent_sequence, const absl::Status& status) {
    Logger("agent.stream")
        ->warn("{}: message {} refused: {}", peer_, agent_sequence,
               status.ToString());
    v1::ServerMessage message;
    message.mutable_message_error()->set_agent_sequence(agent_sequence);
    *message.mutable_message_error()->mutable_status() = ToProtoStatus(status);
    session_->Send(std::move(message));
  }

  void Refuse(const absl::Status& status) {
    Logger("agent.stream")
        ->warn("{}: session refused: {}", peer_, status.ToString());
    session_->writer().Finish(ToGrpcStatus(status));
  }

  void EndSession(const std::string& reason) {
    if (session_id_ == 0) return;
    registry_->Unregister(session_id_, reason);
    session_id_ = 0;
  }

  AgentServiceImpl* const owner_;
  Registry* const registry_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::ServerMessage, v1::AgentMessage> stream_;
  Tag accept_tag_{this, Op::kAccept};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
  Tag done_tag_{this, Op::kDone};
  std::string peer_;
  std::shared_ptr<StreamSession> session_;
  std::shared_ptr<ReadGate> read_gate_;

  absl::Mutex mutex_;
  int in_flight_ ABSL_GUARDED_BY(mutex_) = 0;

  // Touched on the queue's thread only: reads are sequential (each read's
  // completion starts the next, or hands it to the read gate, which starts it
  // only after this thread is done with the message).
  v1::AgentMessage incoming_;
  uint64_t session_id_ = 0;
  uint64_t expected_sequence_ = 1;
  bool finish_done_ = false;
  bool done_ = false;
  bool ended_ = false;
};

AgentServiceImpl::AgentServiceImpl(Registry* registry, int queues)
    : registry_(registry), queue_count_(queues < 1 ? 1 : queues) {}

AgentServiceImpl::~AgentServiceImpl() { Stop(); }

void AgentServiceImpl::AddTo(grpc::ServerBuilder* builder) {
  builder->RegisterService(&service_);
  for (int i = 0; i < queue_count_; ++i) {
    queues_.push_back(builder->AddCompletionQueue());
  }
}

void AgentServiceImpl::Start() {
  for (auto& queue : queues_) {
    for (int i = 0; i < kAcceptsPerQueue; ++i) {
      new ConnectStream(this, queue.get());
    }
    threads_.emplace_back([queue = queue.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) {
        auto* which = static_cast<ConnectStream::Tag*>(tag);
        which->stream->Proceed(which->op, ok);
      }
    });
  }
}

void AgentServiceImpl::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopped_) return;
    stopped_ = true;
    // Nothing may start an operation on a queue once it is shut down: every
    // stream ends first (their threads still run).
    mutex_.Await(absl::Condition(
        +[](int* streams) { return *streams == 0; }, &streams_));
  }
  for (auto& queue : queues_) queue->Shutdown();
  if (threads_.empty()) {
    // Never started: drain the queues here.
    void* tag = nullptr;
    bool ok = false;
    for (auto& queue : queues_) {
      while (queue->Next(&tag, &ok)) {
      }
    }
  }
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

void AgentServiceImpl::StreamCreated() {
  absl::MutexLock lock(&mutex_);
  ++streams_;
}

void AgentServiceImpl::StreamDeleted() {
  absl::MutexLock lock(&mutex_);
  --streams_;
}

}  // namespace ecliptix::server
