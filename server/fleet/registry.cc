#include "server/fleet/registry.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/required_field.h"
#include "common/version.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr char kPageTokenPrefix[] = "after:";
constexpr size_t kMaxFieldLength = 1024;

// The store keeps these times in microseconds: stamp what it gives back.
google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  return ToProtoTimestamp(absl::FromUnixMicros(absl::ToUnixMicros(time)));
}

absl::Status ValidateHello(const v1::Hello& hello) {
  if (hello.database_id().empty()) {
    return RequiredFieldError("hello.database_id", "the database's stable id");
  }
  if (absl::Status status = ValidateDatabaseId(hello.database_id());
      !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.database_id: ", status.message()));
  }
  if (hello.engine() == v1::ENGINE_UNSPECIFIED) {
    return RequiredFieldError(
        "hello.engine", "ENGINE_SQLITE, ENGINE_POSTGRESQL or ENGINE_MSSQL");
  }
  if (!v1::Engine_IsValid(hello.engine())) {
    return absl::InvalidArgumentError(
        "hello.engine: must be ENGINE_SQLITE, ENGINE_POSTGRESQL or "
        "ENGINE_MSSQL");
  }
  if (hello.engine_version().empty()) {
    return RequiredFieldError("hello.engine_version");
  }
  if (hello.agent_version().empty()) {
    return RequiredFieldError("hello.agent_version");
  }
  if (!v1::Connector_IsValid(hello.connector())) {
    return absl::InvalidArgumentError("hello.connector: unknown value");
  }
  for (const std::string* field :
       {&hello.engine_version(), &hello.agent_version(), &hello.agent_host()}) {
    if (field->size() > kMaxFieldLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello: a text field is longer than ", kMaxFieldLength,
                       " characters"));
    }
  }
  for (const auto& [key, value] : hello.labels()) {
    if (absl::Status status = ValidateLabelKey(key); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello.labels: ", status.message()));
    }
    if (absl::Status status = ValidateLabelValue(value); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello.labels[", key, "]: ", status.message()));
    }
  }
  return absl::OkStatus();
}

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& map) {
  return Labels(map.begin(), map.end());
}

}  // namespace

Registry::Registry(StateStore* store, Clock* clock, RegistryOptions options)
    : store_(store), clock_(clock), options_(options) {
  if (store_ != nullptr) writer_ = std::thread([this] { WriterLoop(); });
}

Registry::~Registry() { Stop(); }

void Registry::Stop() {
  {
    absl::MutexLock lock(&writer_mutex_);
    writer_stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
}

absl::Status Registry::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<v1::Database>> databases = store_->LoadDatabases();
  if (!databases.ok()) return databases.status();
  absl::MutexLock lock(&mutex_);
  for (v1::Database& database : *databases) {
    database.set_connection_state(v1::CONNECTION_STATE_DISCONNECTED);
    Entry& entry = entries_[database.database_id()];
    entry.database = std::move(database);
  }
  Logger("registry")
      ->info("loaded {} databases from the state store", entries_.size());
  return absl::OkStatus();
}

void Registry::WriterLoop() {
  for (;;) {
    std::map<std::string, v1::Database> batch;
    bool stopping;
    {
      absl::MutexLock lock(&writer_mutex_);
      writer_mutex_.Await(absl::Condition(
          +[](Registry* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->writer_stopping_ || !self->pending_writes_.empty();
          },
          this));
      batch.swap(pending_writes_);
      stopping = writer_stopping_;
    }
    if (!batch.empty()) {
      std::vector<v1::Database> databases;
      databases.reserve(batch.size());
      for (auto& [id, database] : batch)
        databases.push_back(std::move(database));
      if (absl::Status status = store_->UpsertDatabases(databases);
          !status.ok()) {
        // Kept in memory; the next change of each database writes it again.
        Logger("registry")
            ->error("could not persist {} databases: {}", databases.size(),
                    status.ToString());
      }
    }
    if (stopping) {
      absl::MutexLock lock(&writer_mutex_);
      if (pending_writes_.empty()) return;
    }
  }
}

void Registry::PersistLocked(const v1::Database& database) {
  if (store_ == nullptr) return;
  absl::MutexLock lock(&writer_mutex_);
  if (writer_stopping_) return;
  pending_writes_[database.database_id()] = database;
}

void Registry::PublishLocked(v1::FleetEvent::Type type,
                             const v1::Database& database,
                             const std::string& reason,
                             const Labels* previous_labels) {
  if (watchers_.empty()) return;
  auto event = std::make_shared<v1::FleetEvent>();
  event->set_type(type);
  *event->mutable_database() = database;
  *event->mutable_event_time() = ToTimestamp(clock_->Now());
  event->set_reason(reason);
  if (previous_labels != nullptr) {
    event->mutable_previous_labels()->insert(previous_labels->begin(),
                                             previous_labels->end());
  }
  const Labels labels = ToLabels(database.labels());
  Delivery delivery;
  for (const Watcher& watcher : watchers_) {
    // A label change may move a database into or out of a selector: tell
    // watchers that matched either before or after.
    if (watcher.selector.Matches(labels) ||
        (previous_labels != nullptr &&
         watcher.selector.Matches(*previous_labels))) {
      delivery.sinks.push_back(watcher.sink);
    }
  }
  if (delivery.sinks.empty()) return;
  delivery.event = std::move(event);
  deliveries_.push_back(std::move(delivery));
}

void Registry::DeliverQueued() {
  std::deque<Delivery> batch;
  {
    absl::MutexLock lock(&mutex_);
    // The delivering thread takes these too, after what it has.
    if (delivering_ || deliveries_.empty()) return;
    delivering_ = true;
    batch.swap(deliveries_);
  }
  // Kept alive until forgotten, so a new sink cannot take a closed one's
  // address.
  std::set<std::shared_ptr<FleetEventSink>> closed;
  for (;;) {
    for (const Delivery& delivery : batch) {
      for (const std::shared_ptr<FleetEventSink>& sink : delivery.sinks) {
        if (closed.count(sink) == 0 && !sink->Deliver(*delivery.event)) {
          closed.insert(sink);
        }
      }
    }
    batch.clear();
    absl::MutexLock lock(&mutex_);
    if (!closed.empty()) {
      watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                     [&](const Watcher& watcher) {
                                       return closed.count(watcher.sink) > 0;
                                     }),
                      watchers_.end());
    }
    if (deliveries_.empty()) {
      delivering_ = false;
      return;
    }
    batch.swap(deliveries_);
  }
}

Registry::Entry* Registry::FindSessionLocked(uint64_t session_id) {
  auto it = session_to_database_.find(session_id);
  if (it == session_to_database_.end()) return nullptr;
  auto entry = entries_.find(it->second);
  if (entry == entries_.end() || entry->second.session_id != session_id)
    return nullptr;
  return &entry->second;
}

absl::StatusOr<Registration> Registry::Register(
    const v1::Hello& hello, const std::string& peer,
    std::shared_ptr<AgentSession> session) {
  if (absl::Status status = ValidateHello(hello); !status.ok()) return status;
  const absl::Time now = clock_->Now();
  std::shared_ptr<AgentSession> superseded;
  Registration registration;
  bool first_registration;
  {
    absl::MutexLock lock(&mutex_);
    registration.session_id = next_session_id_++;
    first_registration = entries_.count(hello.database_id()) == 0;
  }
  v1::Welcome& welcome = registration.welcome;
  welcome.set_session_id(
      absl::StrCat(hello.database_id(), "/", registration.session_id));
  *welcome.mutable_heartbeat_interval() =
      ToProtoDuration(options_.heartbeat_interval);
  *welcome.mutable_heartbeat_timeout() =
      ToProtoDuration(options_.heartbeat_timeout);
  welcome.set_server_version(kVersion);
  *welcome.mutable_server_time() = ToTimestamp(now);
  welcome.set_first_registration(first_registration);
  // The Welcome is queued before the session is published: a command sent the
  // moment the database shows as connected can never overtake it (the agent
  // takes anything else first as a protocol error). Sent outside the lock, as
  // every message to a session is.
  v1::ServerMessage welcome_message;
  *welcome_message.mutable_welcome() = welcome;
  session->Send(std::move(welcome_message));
  {
    absl::MutexLock lock(&mutex_);
    auto [it, inserted] = entries_.try_emplace(hello.database_id());
    Entry& entry = it->second;
    v1::Database& database = entry.database;
    const Labels previous_labels = ToLabels(database.labels());
    const bool labels_changed =
        !inserted && previous_labels != ToLabels(hello.labels());
    const bool versions_changed =
        !inserted && (database.engine_version() != hello.engine_version() ||
                      database.agent_version() != hello.agent_version() ||
                      database.engine() != hello.engine());
    if (entry.session != nullptr) {
      superseded = std::move(entry.session);
      session_to_database_.erase(entry.session_id);
      Logger("registry")
          ->warn(
              "database {}: a new session from {} replaces the live one from "
              "{} (agent restarted, or "
              "two agents claim the same database id)",
              hello.database_id(), peer, database.agent_peer());
    }
    database.set_database_id(hello.database_id());
    database.set_engine(hello.engine());
    database.set_engine_version(hello.engine_version());
    database.set_connector(hello.connector());
    database.mutable_labels()->clear();
    database.mutable_labels()->insert(hello.labels().begin(),
                                      hello.labels().end());
    database.set_agent_version(hello.agent_version());
    database.mutable_capabilities()->CopyFrom(hello.capabilities());
    database.set_agent_host(hello.agent_host());
    database.set_agent_peer(peer);
    database.set_connection_state(v1::CONNECTION_STATE_CONNECTED);
    if (inserted) *database.mutable_first_seen_time() = ToTimestamp(now);
    *database.mutable_connected_time() = ToTimestamp(now);
    *database.mutable_last_seen_time() = ToTimestamp(now);
    entry.session = std::move(session);
    entry.session_id = registration.session_id;
    entry.last_message_time = now;
    entry.reads_held = false;
    session_to_database_[entry.session_id] = hello.database_id();

    PersistLocked(database);
    if (inserted) {
      PublishLocked(v1::FleetEvent::TYPE_REGISTERED, database,
                    "first connection");
    }
    PublishLocked(v1::FleetEvent::TYPE_CONNECTED, database,
                  absl::StrCat("connected from ", peer));
    if (labels_changed) {
      PublishLocked(v1::FleetEvent::TYPE_LABELS_CHANGED, database,
                    "agent reconnected with new labels", &previous_labels);
    }
    if (versions_changed) {
      PublishLocked(
          v1::FleetEvent::TYPE_UPDATED, database,
          "agent reconnected with a different engine or agent version");
    }
  }
  Logger("registry")
      ->info("database {} connected from {} ({} {}, labels {})",
             hello.database_id(), peer, v1::Engine_Name(hello.engine()),
             hello.engine_version(), FormatLabels(ToLabels(hello.labels())));
  DeliverQueued();
  NotifyConnection(hello.database_id(), true);
  if (superseded != nullptr) {
    superseded->Close(absl::AbortedError(absl::StrCat(
        "superseded by a newer session for database ", hello.database_id())));
  }
  return registration;
}

void Registry::Touch(uint64_t session_id) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mutex_);
  Entry* entry = FindSessionLocked(session_id);
  if (entry == nullptr) return;
  entry->last_message_time = now;
  // last_seen_time in the record is refreshed lazily (on reads and state
  // changes), so a heartbeat costs no allocation and no write.
}

bool Registry::OnCommandMessage(uint64_t session_id,
                                const v1::AgentMessage& message,
                                std::function<void()> resume) {
  std::string database_id;
  std::vector<CommandObserver> observers;
  std::vector<PacedCommandObserver> paced;
  {
    absl::MutexLock lock(&mutex_);
    Entry* entry = FindSessionLocked(session_id);
    if (entry == nullptr) return true;
    entry->last_message_time = clock_->Now();
    database_id = entry->database.database_id();
    observers = command_observers_;
    paced = paced_command_observers_;
    // Held from here until every paced observer has taken the message and
    // has room again (set before asking them, so that a resume coming from
    // another thread at once cannot be overtaken).
    entry->reads_held = true;
  }
  for (const CommandObserver& observer : observers)
    observer(database_id, message);
  // One hold for this call and one per paced observer; whoever releases the
  // last one ends the hold (and resumes the reader unless it is this call).
  struct Hold {
    std::atomic<int> count{1};
    std::function<void()> resume;
  };
  auto hold = std::make_shared<Hold>();
  hold->resume = std::move(resume);
  auto release = [this, session_id, hold] {
    if (--hold->count != 0) return;
    ReadsResumed(session_id);
    if (hold->resume) hold->resume();
  };
  for (const PacedCommandObserver& observer : paced) {
    ++hold->count;
    if (observer(database_id, message, release)) release();
  }
  if (--hold->count != 0) return false;
  ReadsResumed(session_id);
  return true;
}

bool Registry::OnMetricBatch(uint64_t session_id,
                             const v1::AgentMessage& message,
                             std::function<void()> resume) {
  std::string database_id;
  MetricBatchObserver observer;
  {
    absl::MutexLock lock(&mutex_);
    Entry* entry = FindSessionLocked(session_id);
    if (entry == nullptr) return true;
    entry->last_message_time = clock_->Now();
    observer = metric_batch_observer_;
    if (!observer) return true;
    database_id = entry->database.database_id();
    // As in OnCommandMessage: held before the observer is asked.
    entry->reads_held = true;
  }
  auto release = [this, session_id, resume = std::move(resume)] {
    ReadsResumed(session_id);
    if (resume) resume();
  };
  if (!observer(database_id, message.metric_batch(), release)) return false;
  ReadsResumed(session_id);
  return true;
}

absl::Status Registry::SendMetricAck(const std::string& database_id,
                                     v1::MetricAck ack) {
  std::shared_ptr<AgentSession> session;
  {
    absl::MutexLock lock(&mutex_);
    auto it = entries_.find(database_id);
    if (it == entries_.end()) {
      return absl::NotFoundError(
          absl::StrCat("database ", database_id, " is not registered"));
    }
    if (it->second.session == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", database_id, " has no connected agent"));
    }
    session = it->second.session;
  }
  v1::ServerMessage message;
  *message.mutable_metric_ack() = std::move(ack);
  session->Send(std::move(message));
  return absl::OkStatus();
}

void Registry::SetMetricBatchObserver(MetricBatchObserver observer) {
  absl::MutexLock lock(&mutex_);
  metric_batch_observer_ = std::move(observer);
}

void Registry::ReadsResumed(uint64_t session_id) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mutex_);
  Entry* entry = FindSessionLocked(session_id);
  if (entry == nullptr) return;
  entry->reads_held = false;
  // Messages sent while the stream was held were waiting in the transport:
  // the silence counts again from now.
  entry->last_message_time = std::max(entry->last_message_time, now);
}

void Registry::Unregister(uint64_t session_id, const std::string& reason) {
  std::string database_id;
  {
    absl::MutexLock lock(&mutex_);
    database_id = UnregisterLocked(session_id, reason);
  }
  DeliverQueued();
  if (!database_id.empty()) NotifyConnection(database_id, false);
}

std::string Registry::UnregisterLocked(uint64_t session_id,
                                       const std::string& reason) {
  Entry* entry = FindSessionLocked(session_id);
  session_to_database_.erase(session_id);
  if (entry == nullptr) return "";  // Superseded or already lost.
  entry->session.reset();
  entry->session_id = 0;
  v1::Database& database = entry->database;
  database.set_connection_state(v1::CONNECTION_STATE_DISCONNECTED);
  *database.mutable_last_seen_time() = ToTimestamp(entry->last_message_time);
  PersistLocked(database);
  PublishLocked(v1::FleetEvent::TYPE_DISCONNECTED, database, reason);
  Logger("registry")
      ->info("database {} disconnected: {}", database.database_id(), reason);
  return database.database_id();
}

int Registry::CheckHeartbeats() {
  const absl::Time now = clock_->Now();
  std::vector<std::shared_ptr<AgentSession>> to_close;
  std::vector<std::string> lost;
  {
    absl::MutexLock lock(&mutex_);
    for (auto& [id, entry] : entries_) {
      if (entry.session == nullptr || entry.reads_held) continue;
      const absl::Duration silence = now - entry.last_message_time;
      if (silence <= options_.heartbeat_timeout) continue;
      v1::Database& database = entry.database;
      database.set_connection_state(v1::CONNECTION_STATE_LOST);
      *database.mutable_last_seen_time() = ToTimestamp(entry.last_message_time);
      const std::string reason =
          absl::StrCat("no message for ", absl::FormatDuration(silence),
                       " (heartbeat timeout ",
                       absl::FormatDuration(options_.heartbeat_timeout), ")");
      Logger("registry")->warn("database {} lost: {}", id, reason);
      PersistLocked(database);
      PublishLocked(v1::FleetEvent::TYPE_LOST, database, reason);
      session_to_database_.erase(entry.session_id);
      entry.session_id = 0;
      to_close.push_back(std::move(entry.session));
      lost.push_back(id);
    }
  }
  DeliverQueued();
  for (const auto& session : to_close) {
    session->Close(
        absl::UnavailableError("heartbeat deadline missed; reconnect"));
  }
  for (const std::string& id : lost) NotifyConnection(id, false);
  return static_cast<int>(to_close.size());
}

absl::StatusOr<std::string> Registry::SendCommand(
    const std::string& database_id, v1::Command command) {
  std::shared_ptr<AgentSession> session;
  {
    absl::MutexLock lock(&mutex_);
    auto it = entries_.find(database_id);
    if (it == entries_.end()) {
      return absl::NotFoundError(
          absl::StrCat("database ", database_id, " is not registered"));
    }
    if (it->second.session == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", database_id, " has no connected agent"));
    }
    if (command.command_id().empty()) {
      command.set_command_id(absl::StrCat("cmd-",
                                          absl::ToUnixMicros(clock_->Now()),
                                          "-", next_command_number_++));
    }
    session = it->second.session;
  }
  const std::string command_id = command.command_id();
  v1::ServerMessage message;
  *message.mutable_command() = std::move(command);
  session->Send(std::move(message));
  return command_id;
}

void Registry::AddConnectionObserver(ConnectionObserver observer) {
  absl::MutexLock lock(&mutex_);
  connection_observers_.push_back(std::move(observer));
}

void Registry::NotifyConnection(const std::string& database_id,
                                bool connected) {
  std::vector<ConnectionObserver> observers;
  {
    absl::MutexLock lock(&mutex_);
    observers = connection_observers_;
  }
  for (const ConnectionObserver& observer : observers)
    observer(database_id, connected);
}

void Registry::AddCommandObserver(CommandObserver observer) {
  absl::MutexLock lock(&mutex_);
  command_observers_.push_back(std::move(observer));
}

void Registry::AddPacedCommandObserver(PacedCommandObserver observer) {
  absl::MutexLock lock(&mutex_);
  paced_command_observers_.push_back(std::move(observer));
}

absl::StatusOr<v1::ListDatabasesResponse> Registry::ListDatabases(
    const v1::ListDatabasesRequest& request) const {
  absl::StatusOr<LabelSelector> selector =
      LabelSelector::Parse(request.selector());
  if (!selector.ok()) return selector.status();
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError("page_size must not be negative");
  }
  const int page_size = request.page_size() == 0
                            ? kDefaultPageSize
                            : std::min(request.page_size(), kMaxPageSize);
  std::string after;
  if (!request.page_token().empty()) {
    std::string decoded;
    absl::string_view token;
    if (absl::WebSafeBase64Unescape(request.page_token(), &decoded))
      token = decoded;
    if (!absl::ConsumePrefix(&token, kPageTokenPrefix)) {
      return absl::InvalidArgumentError(
          "page_token is not one this server returned; start again with an "
          "empty token");
    }
    after = std::string(token);
  }
  v1::ListDatabasesResponse response;
  int total = 0;
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, entry] : entries_) {
    if (!selector->Matches(ToLabels(entry.database.labels()))) continue;
    ++total;
    if (!after.empty() && id <= after) continue;
    if (response.databases_size() < page_size) {
      *response.add_databases() = Shown(entry);
    } else if (response.next_page_token().empty()) {
      response.set_next_page_token(absl::WebSafeBase64Escape(absl::StrCat(
          kPageTokenPrefix, response.databases().rbegin()->database_id())));
    }
  }
  response.set_total_size(total);
  return response;
}

std::map<v1::Engine, int64_t> Registry::ConnectedByEngine() const {
  std::map<v1::Engine, int64_t> counts;
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, entry] : entries_) {
    if (entry.database.connection_state() == v1::CONNECTION_STATE_CONNECTED)
      ++counts[entry.database.engine()];
  }
  return counts;
}

std::map<std::string, Labels> Registry::LabelsOf(
    const std::vector<std::string>& database_ids) const {
  std::map<std::string, Labels> labels;
  absl::MutexLock lock(&mutex_);
  for (const std::string& database_id : database_ids) {
    auto it = entries_.find(database_id);
    if (it == entries_.end()) continue;
    const auto& known = it->second.database.labels();
    labels[database_id] = Labels(known.begin(), known.end());
  }
  return labels;
}

absl::StatusOr<v1::Database> Registry::GetDatabase(
    const std::string& database_id) const {
  if (absl::Status status = ValidateDatabaseId(database_id); !status.ok())
    return status;
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(database_id);
  if (it == entries_.end()) {
    return absl::NotFoundError(
        absl::StrCat("database \"", database_id,
                     "\" is not known to this server; `ecliptixctl fleet list` "
                     "shows the registered ones"));
  }
  return Shown(it->second);
}

absl::StatusOr<std::vector<v1::Database>> Registry::Select(
    absl::string_view selector_text) const {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(selector_text);
  if (!selector.ok()) return selector.status();
  return Select(*selector);
}

std::vector<v1::Database> Registry::Select(
    const LabelSelector& selector) const {
  std::vector<v1::Database> databases;
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, entry] : entries_) {
    if (selector.Matches(ToLabels(entry.database.labels()))) {
      databases.push_back(Shown(entry));
    }
  }
  return databases;
}

v1::Database Registry::Shown(const Entry& entry) {
  v1::Database database = entry.database;
  if (entry.session != nullptr) {
    *database.mutable_last_seen_time() = ToTimestamp(entry.last_message_time);
  }
  return database;
}

absl::Status Registry::Watch(const std::string& selector_text,
                             std::shared_ptr<FleetEventSink> sink) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(selector_text);
  if (!selector.ok()) return selector.status();
  {
    absl::MutexLock lock(&mutex_);
    // Snapshot and subscription under one lock, queued in line with the
    // changes: no change is missed or seen twice.
    const auto now = ToTimestamp(clock_->Now());
    for (const auto& [id, entry] : entries_) {
      if (!selector->Matches(ToLabels(entry.database.labels()))) continue;
      auto event = std::make_shared<v1::FleetEvent>();
      event->set_type(v1::FleetEvent::TYPE_SNAPSHOT);
      *event->mutable_database() = Shown(entry);
      *event->mutable_event_time() = now;
      deliveries_.push_back(Delivery{std::move(event), {sink}});
    }
    auto complete = std::make_shared<v1::FleetEvent>();
    complete->set_type(v1::FleetEvent::TYPE_SNAPSHOT_COMPLETE);
    *complete->mutable_event_time() = now;
    deliveries_.push_back(Delivery{std::move(complete), {sink}});
    watchers_.push_back(Watcher{*std::move(selector), std::move(sink)});
  }
  DeliverQueued();
  return absl::OkStatus();
}

}  // namespace ecliptix::server
