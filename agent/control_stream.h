// ControlStream: the agent's side of AgentService.Connect. It owns the one
// bidirectional stream of the process: Hello, waiting for Welcome, heartbeats,
// answering commands, and reconnecting with a jittered backoff whenever the
// stream ends, until Stop().
//
// There is exactly one stream per agent process, so the synchronous client API
// is used on purpose: Run() reads on the caller's thread, a per-session
// heartbeat thread writes heartbeats, and a mutex serializes every Write (the
// sync API allows one reader and one writer at a time). The callback API buys
// nothing here and costs clarity.
#ifndef ECLIPTIX_AGENT_CONTROL_STREAM_H_
#define ECLIPTIX_AGENT_CONTROL_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/backoff.h"
#include "agent/command_handler.h"
#include "agent/stream_listener.h"
#include "ecliptix/fleet/v1/agent_service.grpc.pb.h"

namespace ecliptix::agent {

struct ControlStreamOptions {
  // Runs the commands other than ping; nullptr refuses them. Not owned.
  CommandHandler* handler = nullptr;
  // Sends and receives the other payloads (metric batches and their acks);
  // its capabilities join Hello's. nullptr: none. Not owned; must outlive
  // Run().
  StreamListener* listener = nullptr;
  // host:port of ecliptix-server.
  std::string server_address;
  // nullptr = insecure (plaintext); pluggable for TLS.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Who this agent is: database_id, engine, engine_version, connector, labels.
  // ControlStream fills agent_version, capabilities, agent_host (when empty)
  // and last_processed_server_sequence.
  fleet::v1::Hello hello;
  // Delays between attempts; reset after every session that reached Welcome.
  Backoff::Options backoff;
  // For tests: the backoff's random source (nullptr = real randomness).
  Backoff::RandomSource backoff_random;
  // A session whose Welcome does not arrive within this time is cancelled and
  // retried.
  absl::Duration welcome_timeout = absl::Seconds(30);
  // How long Stop() waits for the server to close the stream after WritesDone
  // before cancelling.
  absl::Duration stop_grace = absl::Seconds(2);
};

class ControlStream {
 public:
  // What this agent announces in Hello: only these commands are ever sent to
  // it.
  // "operations": run_operation (maintenance jobs); "config": apply_config
  // and read_config; "query": run_query. The listener's (e.g. "metrics")
  // follow.
  static constexpr const char* kCapabilities[] = {
      "heartbeat", "ping", "operations", "config", "query"};
  // How many command ids are remembered to refuse re-running them (oldest
  // forgotten first).
  static constexpr size_t kMaxJournalEntries = 10000;

  explicit ControlStream(ControlStreamOptions options);
  // Run() must have returned (call Stop() and join the thread running it)
  // before destruction.
  ~ControlStream();

  ControlStream(const ControlStream&) = delete;
  ControlStream& operator=(const ControlStream&) = delete;

  // Connects, serves sessions and reconnects until Stop(). Blocks; call once.
  void Run();
  // Ends the current session cleanly (WritesDone, then TryCancel after
  // `stop_grace`) and makes Run() return. Idempotent; safe from any thread,
  // also before Run().
  void Stop();

  // Observers, for callers and tests. Thread-safe.
  // True between a Welcome and the end of that session.
  bool connected() const;
  // Sessions that reached Welcome.
  int64_t sessions() const;
  // Connection attempts started (successful or not).
  int64_t attempts() const;
  // Commands actually executed (a repeated command id does not count).
  int64_t commands_executed() const;
  // The session id the server gave in the last Welcome.
  std::string session_id() const;
  // Waits until at least `count` sessions reached Welcome and one is connected.
  // False on timeout.
  bool AwaitSessions(int64_t count, absl::Duration timeout) const;

 private:
  struct Session;
  // What was answered for a command id, replayed when the id comes again.
  struct JournalEntry {
    fleet::v1::Status ack;
    // Unset while the command runs.
    std::optional<fleet::v1::Status> finished;
    // The configuration values the command reported (one per key): sent
    // again with the outcome, so that a server that lost them (it restarted
    // while the command ran) still learns what the database held before and
    // holds now. Other progress is not kept: deployments are settled from the
    // history table, and a job's or a query's rows can be many.
    std::vector<fleet::v1::CommandEvent> config_values;
  };
  class Reporter;

  // One session: connect, Hello, Welcome, then serve until the stream ends.
  // Sets `*welcomed`.
  absl::Status RunSession(bool* welcomed);
  void HeartbeatLoop(Session* session);
  void HandleCommand(Session* session, const fleet::v1::Command& command);
  void SendOutcome(Session* session, const std::string& command_id,
                   const JournalEntry& entry);
  void Remember(const std::string& command_id, JournalEntry entry);
  // Adds a configuration value the command reported to its journal entry.
  void RememberConfigValue(const std::string& command_id,
                           const fleet::v1::CommandEvent& event);
  // Sends on the current session, if any (commands outlive sessions).
  bool SendCurrent(fleet::v1::AgentMessage message);
  // Records a running command's outcome and sends its finished event.
  void FinishCommand(const std::string& command_id, const absl::Status& status);
  // Stamps the next sequence number and writes. False when the stream is closed
  // for writing.
  bool Send(Session* session, fleet::v1::AgentMessage message);

  const ControlStreamOptions options_;
  fleet::v1::Hello hello_;  // The template of every Hello.

  mutable absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mutex_);
  bool connected_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t sessions_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t attempts_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t commands_executed_ ABSL_GUARDED_BY(mutex_) = 0;
  std::string session_id_ ABSL_GUARDED_BY(mutex_);
  // The highest server sequence processed in the last session that reached
  // Welcome.
  uint64_t last_processed_server_sequence_ ABSL_GUARDED_BY(mutex_) = 0;

  // In memory: a restarted agent relies on the database's history table,
  // which makes re-running a deployment command safe.
  absl::Mutex journal_mutex_;
  std::unordered_map<std::string, JournalEntry> journal_
      ABSL_GUARDED_BY(journal_mutex_);
  std::deque<std::string> journal_order_ ABSL_GUARDED_BY(journal_mutex_);
};

}  // namespace ecliptix::agent

#endif  // ECLIPTIX_AGENT_CONTROL_STREAM_H_
