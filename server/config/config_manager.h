// Fleet configuration: the desired and last read value of every key on every
// database, kept in memory (answers come from there) and in the StateStore
// (written on this component's own thread), with the history of changes.
// Changes, reads and the runbook's emergency switch are fleet operations of the
// RolloutOrchestrator (waves, canary, failure budget, undo, resumption): this
// component builds their requests and records what they report through a
// commit observer. Knows no gRPC.
#ifndef ECLIPTIX_SERVER_CONFIG_CONFIG_MANAGER_H_
#define ECLIPTIX_SERVER_CONFIG_CONFIG_MANAGER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/config_service.pb.h"
#include "ecliptix/fleet/v1/rollout.pb.h"
#include "server/bundles/bundle_catalog.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "server/storage/state_store.h"

namespace ecliptix::server {

// The runbook's emergency switch ("Disable new logging immediately"), in the
// runbook's order.
inline constexpr char kMetricsKey[] = "Monitoring.EnableMetrics";
inline constexpr char kValidationLogKey[] = "Audit.LogValidations";

struct ConfigOptions {
  // How long DiffConfig waits for the agents when the request says 0.
  absl::Duration diff_timeout = absl::Seconds(30);
  // The longest wait a DiffConfig request may ask for.
  absl::Duration max_diff_timeout = absl::Minutes(10);
  // A read skips a database whose agent is offline after this long (never
  // longer than the request's timeout): a read is worth nothing late.
  absl::Duration read_offline_deadline = absl::Seconds(3);
  // The emergency switch counts a database whose agent is offline after this
  // long as failed (people must hear within seconds where logging is still
  // on).
  absl::Duration emergency_offline_deadline = absl::Seconds(10);
  // A failed store write is tried again after this long.
  absl::Duration write_retry = absl::Seconds(1);
  // At start, events this much older than the newest one recorded are read
  // again too (clocks that stepped back).
  absl::Duration replay_margin = absl::Minutes(1);
};

class ConfigManager {
 public:
  template <typename T>
  using Callback = RolloutOrchestrator::Callback<T>;

  // None of the pointers is owned.
  ConfigManager(StateStore* store, Registry* registry, BundleCatalog* bundles,
                RolloutOrchestrator* orchestrator, ConfigOptions options = {});
  ~ConfigManager();

  ConfigManager(const ConfigManager&) = delete;
  ConfigManager& operator=(const ConfigManager&) = delete;

  // Loads the stored entries, records what stored configuration operations
  // reported after the newest value recorded (a crash can come between the
  // orchestrator's save and this component's), registers the commit
  // observer and starts the writer. Before orchestrator->Start().
  absl::Status Start();
  // After orchestrator->Stop(): answers every DiffConfig still waiting
  // (UNAVAILABLE), saves what is recorded, stops the thread. Requests that
  // come later are answered UNAVAILABLE.
  void Stop();

  // SetConfig: the keys on the selected databases as a configuration change
  // of the orchestrator, checked against the bundle's schema first (see
  // config_service.proto). Without a strategy: canary first (waves 1,
  // 100%), no failure tolerated, AUTO_ROLLBACK_ROLLOUT. `done` is called
  // once, on another thread or at once.
  void Set(fleet::v1::SetConfigRequest request,
           Callback<fleet::v1::Rollout> done);
  // DisableLogging (`enabled` false) / EnableLogging: both keys of the switch
  // to "0" / "1" on every selected database in one wave, every database
  // tried whatever fails, no gates, no automatic rollback; audited as a
  // warning.
  void SetLogging(fleet::v1::EmergencyLoggingRequest request, bool enabled,
                  Callback<fleet::v1::Rollout> done);
  // GetConfig, from memory. With keys: every selected database and key (with
  // nothing known when nothing is); without: what is known.
  absl::StatusOr<fleet::v1::GetConfigResponse> Get(
      const fleet::v1::GetConfigRequest& request) const;
  // DiffConfig: reads the selected databases (a configuration read of the
  // orchestrator, watched until it ends or the timeout), then answers the
  // entries with drift or an unknown or missing value; databases not read go
  // to unread_databases with the reason. `actor` names the read's creator.
  void Diff(fleet::v1::DiffConfigRequest request, std::string actor,
            Callback<fleet::v1::GetConfigResponse> done);
  // GetConfigHistory, read from the store on this component's thread.
  void History(fleet::v1::GetConfigHistoryRequest request,
               Callback<fleet::v1::GetConfigHistoryResponse> done);

  // Blocks until everything recorded so far is saved (or a save failed); for
  // tests and tools.
  absl::Status Flush();

 private:
  struct DiffJob;
  class DiffSink;
  // Records of one batch of events, to save.
  struct Records {
    std::vector<fleet::v1::ConfigEntry> entries;
    std::vector<fleet::v1::ConfigChange> changes;
  };

  // The commit observer (orchestrator worker): records the events of
  // configuration operations and queues them for the writer.
  void OnCommit(const fleet::v1::Rollout& rollout,
                const std::vector<fleet::v1::RolloutEvent>& events);
  // Applies the config_value events of `rollout` to the entries: a value is
  // taken only when it is not older than what the entry holds (so replaying
  // events is harmless), history rows for changes and rollbacks.
  Records Record(const fleet::v1::Rollout& rollout,
                 const std::vector<fleet::v1::RolloutEvent>& events);
  // Start: the events that may have been lost between two saves.
  absl::Status Replay();
  // The bundle whose schema holds `keys`: `reference` when given, else the
  // newest uploaded bundle declaring all of them (else the newest with a
  // schema, so that the check names the unknown key).
  absl::StatusOr<fleet::v1::BundleInfo> ResolveBundle(
      const std::string& reference, const std::vector<std::string>& keys) const;
  // Runs `task` on this component's thread; false when stopping.
  bool Post(std::function<void()> task);
  void Loop();
  // Answers a diff from what its read saw and the entries (once; at its
  // deadline, databases not read yet are named as such).
  void FinishDiff(uint64_t id);
  // The entry with drift computed.
  static fleet::v1::ConfigEntry Shown(const fleet::v1::ConfigEntry& entry);

  StateStore* const store_;
  Registry* const registry_;
  BundleCatalog* const bundles_;
  RolloutOrchestrator* const orchestrator_;
  const ConfigOptions options_;

  // The entries, by (database, key).
  mutable absl::Mutex entries_mutex_;
  std::map<std::pair<std::string, std::string>, fleet::v1::ConfigEntry> entries_
      ABSL_GUARDED_BY(entries_mutex_);

  // This component's thread: tasks, the records to save, diff deadlines.
  absl::Mutex mutex_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  std::vector<Records> unsaved_ ABSL_GUARDED_BY(mutex_);
  // Records taken by the writer and not saved yet (Flush waits for them).
  bool saving_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status last_save_ ABSL_GUARDED_BY(mutex_);
  std::map<uint64_t, std::shared_ptr<DiffJob>> diffs_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_diff_ ABSL_GUARDED_BY(mutex_) = 1;
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_CONFIG_CONFIG_MANAGER_H_
