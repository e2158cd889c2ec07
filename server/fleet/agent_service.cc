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
// thread that frees room (the reactor does not read while it waits). Closed
// when the reactor is done, so a late resume does nothing.
class ReadGate {
 public:
  explicit ReadGate(std::function<void()> start_read)
      : start_read_(std::move(start_read)) {}

  void Resume() {
    // Under the lock: Close (from OnDone) waits for a read being started, and
    // once the read is pending OnDone cannot come before it completes.
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

class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  ConnectReactor(Registry* registry, grpc::CallbackServerContext* context)
      : registry_(registry),
        context_(context),
        peer_(context->peer()),
        session_(std::make_shared<StreamSession>(
            [this](const v1::ServerMessage* message) { StartWrite(message); },
            [this](const grpc::Status& status) { Finish(status); })),
        read_gate_(std::make_shared<ReadGate>([this] {
          if (!session_->writer().finishing()) StartRead(&incoming_);
        })) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent half-closed its side, or the connection dropped.
      EndSession(context_->IsCancelled() ? "connection lost"
                                         : "agent closed the stream");
      session_->writer().Finish(grpc::Status::OK);
      return;
    }
    if (session_id_ == 0) {
      if (!HandleHello()) return;
    } else if (!HandleMessage()) {
      // Held back by flow control: the read gate reads on.
      return;
    }
    if (!session_->writer().finishing()) StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override { session_->writer().OnWriteDone(ok); }

  void OnCancel() override {
    // Reads fail next; make sure queued writes do not hold the stream open.
    session_->writer().Abort(
        grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
  }

  void OnDone() override {
    read_gate_->Close();
    EndSession("stream ended");
    delete this;
  }

 private:
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
  // resumes it (the orchestrator cannot take more agent messages yet).
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

  Registry* const registry_;
  grpc::CallbackServerContext* const context_;
  const std::string peer_;
  const std::shared_ptr<StreamSession> session_;
  const std::shared_ptr<ReadGate> read_gate_;
  // Reads are sequential (each OnReadDone starts the next), so these need no
  // lock.
  v1::AgentMessage incoming_;
  uint64_t session_id_ = 0;
  uint64_t expected_sequence_ = 1;
};

}  // namespace

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>*
AgentServiceImpl::Connect(grpc::CallbackServerContext* context) {
  return new ConnectReactor(registry_, context);
}

}  // namespace ecliptix::server
