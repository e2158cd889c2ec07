#include "agent/control_stream.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/version.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr char kUnsupportedCommand[] =
    "command kind not supported by this agent";
// Used when a Welcome carries no interval; a floor keeps a bogus tiny value
// from spinning.
constexpr absl::Duration kDefaultHeartbeatInterval = absl::Seconds(10);
constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(10);

std::shared_ptr<spdlog::logger> Log() {
  static auto* logger =
      new std::shared_ptr<spdlog::logger>(Logger("agent.stream"));
  return *logger;
}

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

v1::Status ProtoStatus(absl::StatusCode code, std::string message) {
  v1::Status status;
  status.set_code(static_cast<int>(code));
  status.set_message(std::move(message));
  return status;
}

std::string Describe(const absl::Status& status) {
  if (status.ok()) return "the server closed the stream";
  return status.ToString();
}

}  // namespace

// The state of one session, shared between the reader (Run's thread), the
// heartbeat thread and Stop().
struct ControlStream::Session {
  grpc::ClientContext context;

  // Serializes writes, and guards the stream's creation against Stop().
  absl::Mutex write_mutex;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream ABSL_GUARDED_BY(write_mutex);
  uint64_t next_sequence ABSL_GUARDED_BY(write_mutex) = 1;
  // Set by WritesDone (Stop) and before Finish: no write may follow either.
  bool writes_closed ABSL_GUARDED_BY(write_mutex) = false;

  absl::Mutex mutex;
  bool welcomed ABSL_GUARDED_BY(mutex) = false;
  bool ended ABSL_GUARDED_BY(mutex) = false;
  absl::Duration heartbeat_interval ABSL_GUARDED_BY(mutex) =
      kDefaultHeartbeatInterval;
};

ControlStream::ControlStream(ControlStreamOptions options)
    : options_(std::move(options)), hello_(options_.hello) {
  if (hello_.agent_version().empty()) hello_.set_agent_version(kVersion);
  if (hello_.agent_host().empty()) hello_.set_agent_host(HostName());
  hello_.clear_capabilities();
  for (const char* capability : kCapabilities)
    hello_.add_capabilities(capability);
  if (options_.listener != nullptr) {
    for (const std::string& capability : options_.listener->Capabilities())
      hello_.add_capabilities(capability);
  }
}

ControlStream::~ControlStream() = default;

bool ControlStream::connected() const {
  absl::MutexLock lock(&mutex_);
  return connected_;
}

int64_t ControlStream::sessions() const {
  absl::MutexLock lock(&mutex_);
  return sessions_;
}

int64_t ControlStream::attempts() const {
  absl::MutexLock lock(&mutex_);
  return attempts_;
}

int64_t ControlStream::commands_executed() const {
  absl::MutexLock lock(&mutex_);
  return commands_executed_;
}

std::string ControlStream::session_id() const {
  absl::MutexLock lock(&mutex_);
  return session_id_;
}

bool ControlStream::AwaitSessions(int64_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mutex_);
  auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return sessions_ >= count && connected_;
  };
  return mutex_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

void ControlStream::Run() {
  Backoff backoff(options_.backoff, options_.backoff_random);
  while (true) {
    int64_t attempt = 0;
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) break;
      attempt = ++attempts_;
    }
    bool welcomed = false;
    const absl::Status status = RunSession(&welcomed);
    {
      absl::MutexLock lock(&mutex_);
      connected_ = false;
      if (stopping_) break;
    }
    // A session that got as far as Welcome proves the path works: start over
    // from a short delay.
    if (welcomed) backoff.Reset();
    // Whole milliseconds: enough for people reading logs.
    const absl::Duration delay =
        absl::Trunc(backoff.Next(), absl::Milliseconds(1));
    if (welcomed) {
      Log()->warn("session with server {} ended: {}; reconnecting in {}",
                  options_.server_address, Describe(status),
                  absl::FormatDuration(delay));
    } else {
      Log()->warn(
          "cannot open a session with server {} (attempt {}): {}; retrying in "
          "{}",
          options_.server_address, attempt, Describe(status),
          absl::FormatDuration(delay));
    }
    absl::MutexLock lock(&mutex_);
    if (mutex_.AwaitWithTimeout(absl::Condition(&stopping_), delay)) break;
  }
  Log()->info("control stream stopped");
}

void ControlStream::Stop() {
  std::shared_ptr<Session> session;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    session = current_;
  }
  if (session == nullptr) return;
  // Half-close so the server ends the session as a clean goodbye. A write in
  // progress holds the lock and may be stuck on flow control: then cancel
  // rather than wait behind it.
  bool half_closed = false;
  if (session->write_mutex.TryLock()) {
    if (session->stream != nullptr && !session->writes_closed) {
      session->writes_closed = true;
      half_closed = session->stream->WritesDone();
    }
    session->write_mutex.Unlock();
  }
  bool ended = false;
  if (half_closed) {
    absl::MutexLock lock(&mutex_);
    auto gone = [this, &session]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return current_ != session;
    };
    ended =
        mutex_.AwaitWithTimeout(absl::Condition(&gone), options_.stop_grace);
  }
  if (!ended) session->context.TryCancel();
}

bool ControlStream::Send(Session* session, v1::AgentMessage message) {
  absl::MutexLock lock(&session->write_mutex);
  if (session->stream == nullptr || session->writes_closed) return false;
  message.set_sequence(session->next_sequence++);
  return session->stream->Write(message);
}

absl::Status ControlStream::RunSession(bool* welcomed) {
  auto session = std::make_shared<Session>();
  v1::Hello hello = hello_;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return absl::CancelledError("stopping");
    current_ = session;
    hello.set_last_processed_server_sequence(last_processed_server_sequence_);
  }

  // A fresh channel (with its own subchannel pool) per attempt, so every
  // attempt is a real connection attempt paced by our backoff rather than by
  // gRPC's internal reconnect backoff.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options_.server_address,
      options_.credentials != nullptr ? options_.credentials
                                      : grpc::InsecureChannelCredentials(),
      args);
  std::unique_ptr<v1::AgentService::Stub> stub =
      v1::AgentService::NewStub(channel);
  {
    auto stream = stub->Connect(&session->context);
    absl::MutexLock lock(&session->write_mutex);
    session->stream = std::move(stream);
  }

  v1::AgentMessage hello_message;
  *hello_message.mutable_hello() = std::move(hello);
  std::thread heartbeat;
  if (Send(session.get(), std::move(hello_message))) {
    heartbeat = std::thread([this, &session] { HeartbeatLoop(session.get()); });
  }

  absl::Status protocol_error;
  uint64_t last_sequence = 0;
  v1::ServerMessage message;
  // Read is the reader's side; writes go through Send, so the sync API's
  // one-reader-one-writer rule holds. If Hello could not be written, Read fails
  // at once and Finish says why.
  while (session->stream->Read(&message)) {
    if (!*welcomed) {
      if (!message.has_welcome()) {
        protocol_error = absl::InternalError(
            "protocol error: the server's first message is not a Welcome");
        session->context.TryCancel();
        break;
      }
      const v1::Welcome& welcome = message.welcome();
      absl::Duration interval = FromProtoDuration(welcome.heartbeat_interval());
      if (interval <= absl::ZeroDuration())
        interval = kDefaultHeartbeatInterval;
      interval = std::max(interval, kMinHeartbeatInterval);
      {
        absl::MutexLock lock(&session->mutex);
        session->welcomed = true;
        session->heartbeat_interval = interval;
      }
      {
        absl::MutexLock lock(&mutex_);
        connected_ = true;
        ++sessions_;
        session_id_ = welcome.session_id();
      }
      *welcomed = true;
      if (options_.listener != nullptr) {
        // Bound to this session: a write after it ended fails rather than
        // landing on the next one out of order.
        options_.listener->SessionStarted(
            [this, session](v1::AgentMessage message) {
              return Send(session.get(), std::move(message));
            });
      }
      Log()->info(
          "connected to server {} (version {}) as database {}: session {}, "
          "heartbeat every {}{}",
          options_.server_address, welcome.server_version(),
          hello_.database_id(), welcome.session_id(),
          absl::FormatDuration(interval),
          welcome.first_registration() ? ", first registration" : "");
    } else {
      switch (message.payload_case()) {
        case v1::ServerMessage::kCommand:
          HandleCommand(session.get(), message.command());
          break;
        case v1::ServerMessage::kMessageError:
          Log()->warn(
              "the server refused agent message {}: {}",
              message.message_error().agent_sequence(),
              FromProtoStatus(message.message_error().status()).ToString());
          break;
        case v1::ServerMessage::kWelcome:
          Log()->warn("ignoring a second Welcome in session {}", session_id());
          break;
        default:
          if (options_.listener != nullptr) {
            options_.listener->Received(message);
            break;
          }
          // A newer server may send payloads this agent does not know; they are
          // not for it.
          Log()->debug("ignoring server message {} with an unknown payload",
                       message.sequence());
          break;
      }
    }
    last_sequence = message.sequence();
  }

  {
    absl::MutexLock lock(&session->mutex);
    session->ended = true;
  }
  if (*welcomed && options_.listener != nullptr)
    options_.listener->SessionEnded();
  if (heartbeat.joinable()) heartbeat.join();
  grpc::Status finished;
  {
    absl::MutexLock lock(&session->write_mutex);
    session->writes_closed = true;
  }
  finished = session->stream->Finish();
  {
    absl::MutexLock lock(&mutex_);
    if (*welcomed) last_processed_server_sequence_ = last_sequence;
    current_ = nullptr;
  }
  if (!protocol_error.ok()) return protocol_error;
  return FromGrpcStatus(finished);
}

void ControlStream::HeartbeatLoop(Session* session) {
  session->mutex.Lock();
  auto welcomed_or_ended = [session]()
                               ABSL_EXCLUSIVE_LOCKS_REQUIRED(session->mutex) {
                                 return session->welcomed || session->ended;
                               };
  // Also the Welcome watchdog: a blocking Read cannot time out by itself.
  if (!session->mutex.AwaitWithTimeout(absl::Condition(&welcomed_or_ended),
                                       options_.welcome_timeout)) {
    session->mutex.Unlock();
    Log()->warn("no Welcome from server {} within {}; cancelling the session",
                options_.server_address,
                absl::FormatDuration(options_.welcome_timeout));
    session->context.TryCancel();
    return;
  }
  while (!session->ended) {
    if (session->mutex.AwaitWithTimeout(absl::Condition(&session->ended),
                                        session->heartbeat_interval)) {
      break;
    }
    session->mutex.Unlock();
    v1::AgentMessage message;
    *message.mutable_heartbeat()->mutable_sent_time() =
        ToProtoTimestamp(absl::Now());
    const bool sent = Send(session, std::move(message));
    session->mutex.Lock();
    // A failed write means the stream is gone; the reader sees it too and ends
    // the session.
    if (!sent) break;
  }
  session->mutex.Unlock();
}

// Reports on one command to whichever session is current when it reports.
class ControlStream::Reporter : public CommandReporter {
 public:
  Reporter(ControlStream* stream, std::string command_id)
      : stream_(stream), command_id_(std::move(command_id)) {}

  void Report(v1::CommandEvent event) override {
    event.set_command_id(command_id_);
    *event.mutable_event_time() = ToProtoTimestamp(absl::Now());
    if (event.has_config_value())
      stream_->RememberConfigValue(command_id_, event);
    v1::AgentMessage message;
    *message.mutable_command_event() = std::move(event);
    stream_->SendCurrent(std::move(message));
  }

  void Finish(const absl::Status& status) override {
    stream_->FinishCommand(command_id_, status);
  }

 private:
  ControlStream* const stream_;
  const std::string command_id_;
};

bool ControlStream::SendCurrent(v1::AgentMessage message) {
  std::shared_ptr<Session> session;
  {
    absl::MutexLock lock(&mutex_);
    session = current_;
  }
  return session != nullptr && Send(session.get(), std::move(message));
}

void ControlStream::FinishCommand(const std::string& command_id,
                                  const absl::Status& status) {
  const v1::Status finished = ToProtoStatus(status);
  {
    absl::MutexLock lock(&journal_mutex_);
    if (auto it = journal_.find(command_id); it != journal_.end()) {
      it->second.finished = finished;
    }
  }
  {
    absl::MutexLock lock(&mutex_);
    ++commands_executed_;
  }
  Log()->info("command {} finished: {}", command_id,
              status.ok() ? "OK" : status.ToString());
  v1::AgentMessage event;
  v1::CommandEvent* command_event = event.mutable_command_event();
  command_event->set_command_id(command_id);
  *command_event->mutable_event_time() = ToProtoTimestamp(absl::Now());
  *command_event->mutable_finished() = finished;
  SendCurrent(std::move(event));
}

void ControlStream::HandleCommand(Session* session,
                                  const v1::Command& command) {
  const std::string& id = command.command_id();
  std::optional<JournalEntry> known;
  {
    absl::MutexLock lock(&journal_mutex_);
    if (auto it = journal_.find(id); it != journal_.end()) known = it->second;
  }
  if (known.has_value()) {
    Log()->info(
        "command {} was already received; acknowledging it again without "
        "running it",
        id);
    SendOutcome(session, id, *known);
    return;
  }
  JournalEntry entry;
  switch (command.kind_case()) {
    case v1::Command::kPing:
      entry.ack = ProtoStatus(absl::StatusCode::kOk, "");
      entry.finished =
          ProtoStatus(absl::StatusCode::kOk, command.ping().payload());
      {
        absl::MutexLock lock(&mutex_);
        ++commands_executed_;
      }
      Log()->debug("ping {} answered", id);
      break;
    case v1::Command::KIND_NOT_SET:
      entry.ack =
          ProtoStatus(absl::StatusCode::kInvalidArgument, kUnsupportedCommand);
      Log()->warn("refusing command {}: {}", id, kUnsupportedCommand);
      break;
    default: {
      if (options_.handler == nullptr) {
        entry.ack = ProtoStatus(absl::StatusCode::kInvalidArgument,
                                kUnsupportedCommand);
        Log()->warn("refusing command {}: {}", id, kUnsupportedCommand);
        break;
      }
      const absl::Status accepted = options_.handler->Accept(command);
      entry.ack = ToProtoStatus(accepted);
      // Journaled (as running) and acknowledged before it runs: the ack
      // comes before any event, and Finish, from another thread, finds the
      // entry.
      Remember(id, entry);
      SendOutcome(session, id, entry);
      if (accepted.ok()) {
        options_.handler->Run(command, std::make_shared<Reporter>(this, id));
      } else {
        Log()->warn("refusing command {}: {}", id, accepted.ToString());
      }
      return;
    }
  }
  // Journal before acknowledging: the ack promises the command will not run
  // twice.
  Remember(id, entry);
  SendOutcome(session, id, entry);
}

void ControlStream::SendOutcome(Session* session, const std::string& command_id,
                                const JournalEntry& entry) {
  v1::AgentMessage ack;
  ack.mutable_command_ack()->set_command_id(command_id);
  *ack.mutable_command_ack()->mutable_status() = entry.ack;
  Send(session, std::move(ack));
  for (const v1::CommandEvent& reported : entry.config_values) {
    v1::AgentMessage event;
    *event.mutable_command_event() = reported;
    Send(session, std::move(event));
  }
  if (!entry.finished.has_value()) return;
  v1::AgentMessage event;
  v1::CommandEvent* command_event = event.mutable_command_event();
  command_event->set_command_id(command_id);
  *command_event->mutable_event_time() = ToProtoTimestamp(absl::Now());
  *command_event->mutable_finished() = *entry.finished;
  Send(session, std::move(event));
}

void ControlStream::RememberConfigValue(const std::string& command_id,
                                        const v1::CommandEvent& event) {
  absl::MutexLock lock(&journal_mutex_);
  if (auto it = journal_.find(command_id); it != journal_.end()) {
    it->second.config_values.push_back(event);
  }
}

void ControlStream::Remember(const std::string& command_id,
                             JournalEntry entry) {
  absl::MutexLock lock(&journal_mutex_);
  if (auto it = journal_.find(command_id); it != journal_.end()) {
    it->second = std::move(entry);
    return;
  }
  journal_[command_id] = std::move(entry);
  journal_order_.push_back(command_id);
  while (journal_order_.size() > kMaxJournalEntries) {
    journal_.erase(journal_order_.front());
    journal_order_.pop_front();
  }
}

}  // namespace ecliptix::agent
