#include "server/config/config_manager.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/bundle/manifest_rules.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/required_field.h"
#include "common/rollout_events.h"
#include "common/status_macros.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// Bundles asked of the catalog per page while looking for a schema.
constexpr int kBundlePage = 500;
// GetConfigHistory: the default and largest page.
constexpr int kDefaultHistory = 50;
constexpr int kMaxHistory = 1000;
// Rollout descriptions stay readable in `rollout list`.
constexpr size_t kMaxDescription = 200;

bool IsConfigOperation(const v1::Rollout& rollout) {
  return rollout.operation().has_config_change() ||
         rollout.operation().has_config_read();
}

// "r-12" -> 12; 0 for anything else. Orders the changes of one key: a
// desired value is never replaced by one from an older rollout.
int64_t RolloutNumber(absl::string_view rollout_id) {
  int64_t number = 0;
  if (!absl::ConsumePrefix(&rollout_id, "r-") ||
      !absl::SimpleAtoi(rollout_id, &number)) {
    return 0;
  }
  return number;
}

// A forgotten selector must never mean "change everything": every database
// is asked for explicitly with all_databases (as CreateRollout does).
absl::Status CheckSelection(const std::string& selector, bool all_databases) {
  const bool has_selector = !absl::StripAsciiWhitespace(selector).empty();
  if (!has_selector && !all_databases) {
    return RequiredFieldError(
        "selector",
        "a label selector such as env=prod; set all_databases (ecliptixctl: "
        "--all) to mean every database");
  }
  if (has_selector && all_databases) {
    return absl::InvalidArgumentError(
        "selector and all_databases exclude each other: give a selector, or "
        "set all_databases alone to mean every database");
  }
  return absl::OkStatus();
}

bool Blank(const std::string& text) {
  return absl::StripAsciiWhitespace(text).empty();
}

std::string SettingsText(
    const google::protobuf::RepeatedPtrField<v1::ConfigSetting>& settings) {
  return absl::StrJoin(
      settings, ", ", [](std::string* out, const v1::ConfigSetting& setting) {
        absl::StrAppend(out, setting.key(), "=", setting.value());
      });
}

std::string Where(const std::string& selector, bool all_databases) {
  return all_databases ? std::string("every database")
                       : absl::StrCat("\"", selector, "\"");
}

std::string Description(std::string text) {
  if (text.size() > kMaxDescription) {
    text.resize(kMaxDescription - 3);
    text += "...";
  }
  return text;
}

// Canary first, and the first failure stops the change and puts every
// changed database back: a wrong value must not reach the fleet.
v1::Strategy DefaultChangeStrategy() {
  v1::Strategy strategy;
  strategy.add_waves("1");
  strategy.add_waves("100%");
  strategy.set_failure_budget("0");
  strategy.set_auto_rollback(v1::AUTO_ROLLBACK_ROLLOUT);
  return strategy;
}

std::string DurationText(absl::Duration duration) {
  return absl::FormatDuration(duration);
}

}  // namespace

// A DiffConfig waiting for its read.
struct ConfigManager::DiffJob {
  std::string rollout_id;
  // The databases read, in id order (from the created rollout).
  std::vector<std::string> databases;
  // The keys compared, sorted.
  std::vector<std::string> keys;
  absl::Duration timeout;
  // Real time: how long a person waits is not the server's injectable clock.
  absl::Time deadline;
  Callback<v1::GetConfigResponse> done;
  std::shared_ptr<DiffSink> sink;
};

// Follows the read rollout (it must not block: the orchestrator's worker
// delivers) and hands its end to the manager's thread.
class ConfigManager::DiffSink : public RolloutEventSink {
 public:
  DiffSink(ConfigManager* manager, uint64_t id) : manager_(manager), id_(id) {}

  bool Deliver(const v1::RolloutEvent& event) override {
    absl::MutexLock lock(&mutex_);
    if (closed_) return false;
    ApplyRolloutEvent(event, &rollout_);
    return true;
  }

  void End(const absl::Status& status) override {
    {
      absl::MutexLock lock(&mutex_);
      if (ended_) return;
      ended_ = true;
      end_status_ = status;
    }
    ConfigManager* manager = manager_;
    const uint64_t id = id_;
    manager->Post([manager, id] { manager->FinishDiff(id); });
  }

  // No more deliveries wanted: the diff was answered.
  void Close() {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
  }
  v1::Rollout rollout() const {
    absl::MutexLock lock(&mutex_);
    return rollout_;
  }
  // OK while it goes on.
  absl::Status end_status() const {
    absl::MutexLock lock(&mutex_);
    return end_status_;
  }

 private:
  ConfigManager* const manager_;
  const uint64_t id_;
  mutable absl::Mutex mutex_;
  v1::Rollout rollout_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mutex_);
};

ConfigManager::ConfigManager(StateStore* store, Registry* registry,
                             BundleCatalog* bundles,
                             RolloutOrchestrator* orchestrator,
                             ConfigOptions options)
    : store_(store),
      registry_(registry),
      bundles_(bundles),
      orchestrator_(orchestrator),
      options_(options) {}

ConfigManager::~ConfigManager() { Stop(); }

// ---- starting and stopping ----

absl::Status ConfigManager::Start() {
  ASSIGN_OR_RETURN(std::vector<v1::ConfigEntry> stored,
                   store_->LoadConfigEntries());
  {
    absl::MutexLock lock(&entries_mutex_);
    for (v1::ConfigEntry& entry : stored) {
      std::pair<std::string, std::string> at(entry.database_id(), entry.key());
      entries_[std::move(at)] = std::move(entry);
    }
  }
  RETURN_IF_ERROR(Replay());
  orchestrator_->AddCommitObserver(
      [this](const v1::Rollout& rollout,
             const std::vector<v1::RolloutEvent>& events) {
        OnCommit(rollout, events);
      });
  {
    absl::MutexLock lock(&mutex_);
    started_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void ConfigManager::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  std::map<uint64_t, std::shared_ptr<DiffJob>> waiting;
  {
    absl::MutexLock lock(&mutex_);
    waiting.swap(diffs_);
  }
  for (auto& [id, job] : waiting) {
    if (job->sink != nullptr) job->sink->Close();
    job->done(absl::UnavailableError(
        "ecliptix-server is shutting down: the configuration read " +
        job->rollout_id + " goes on when it is back; ask again then"));
  }
}

bool ConfigManager::Post(std::function<void()> task) {
  absl::MutexLock lock(&mutex_);
  if (!started_ || stopping_) return false;
  tasks_.push_back(std::move(task));
  return true;
}

void ConfigManager::Loop() {
  // Records waiting after a failed save are tried again from then on.
  absl::Time retry_at = absl::InfinitePast();
  absl::MutexLock lock(&mutex_);
  while (true) {
    absl::Time wake = absl::InfiniteFuture();
    for (const auto& [id, job] : diffs_) wake = std::min(wake, job->deadline);
    if (!unsaved_.empty()) wake = std::min(wake, retry_at);
    auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_ || !tasks_.empty();
    };
    const bool retrying = retry_at != absl::InfinitePast();
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return has_work() || (!unsaved_.empty() && !retrying);
    };
    if (!ready() && wake > absl::Now()) {
      mutex_.AwaitWithDeadline(absl::Condition(&ready), wake);
    }
    const absl::Time now = absl::Now();
    std::deque<std::function<void()>> tasks;
    tasks.swap(tasks_);
    std::vector<Records> records;
    if (!unsaved_.empty() && (now >= retry_at || stopping_)) {
      records.swap(unsaved_);
      saving_ = true;
    }
    std::vector<uint64_t> due;
    for (const auto& [id, job] : diffs_) {
      if (job->deadline <= now) due.push_back(id);
    }
    const bool stop = stopping_;
    mutex_.Unlock();

    for (std::function<void()>& task : tasks) task();
    absl::Status saved;
    if (!records.empty()) {
      // One transaction for all that waited; an entry changed twice is
      // saved once, as it is now.
      std::map<std::pair<std::string, std::string>, const v1::ConfigEntry*>
          latest;
      std::vector<v1::ConfigChange> changes;
      for (const Records& batch : records) {
        for (const v1::ConfigEntry& entry : batch.entries)
          latest[{entry.database_id(), entry.key()}] = &entry;
        changes.insert(changes.end(), batch.changes.begin(),
                       batch.changes.end());
      }
      std::vector<v1::ConfigEntry> entries;
      entries.reserve(latest.size());
      for (const auto& [at, entry] : latest) entries.push_back(*entry);
      saved = store_->SaveConfig(entries, changes);
      if (!saved.ok()) {
        Logger("config")->error(
            "could not save {} configuration values and {} changes{}: {}",
            entries.size(), changes.size(),
            stop ? " (given up: stopping)" : "; trying again",
            saved.ToString());
      }
    }
    for (uint64_t id : due) {
      FinishDiff(id);
    }

    mutex_.Lock();
    if (!records.empty()) {
      saving_ = false;
      last_save_ = saved;
      if (saved.ok()) {
        retry_at = absl::InfinitePast();
      } else if (!stop) {
        // Kept, in order, ahead of what came meanwhile.
        unsaved_.insert(unsaved_.begin(),
                        std::make_move_iterator(records.begin()),
                        std::make_move_iterator(records.end()));
        retry_at = absl::Now() + options_.write_retry;
      }
    }
    if (stop && tasks_.empty() && (unsaved_.empty() || !saved.ok())) break;
  }
}

absl::Status ConfigManager::Flush() {
  absl::MutexLock lock(&mutex_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || (!saving_ && (unsaved_.empty() || !last_save_.ok()));
  };
  mutex_.Await(absl::Condition(&settled));
  return unsaved_.empty() ? absl::OkStatus() : last_save_;
}

// ---- recording what operations report ----

void ConfigManager::OnCommit(const v1::Rollout& rollout,
                             const std::vector<v1::RolloutEvent>& events) {
  if (!IsConfigOperation(rollout)) return;
  Records records = Record(rollout, events);
  if (records.entries.empty() && records.changes.empty()) return;
  absl::MutexLock lock(&mutex_);
  unsaved_.push_back(std::move(records));
}

v1::ConfigEntry ConfigManager::Shown(const v1::ConfigEntry& entry) {
  v1::ConfigEntry shown = entry;
  shown.set_drift(entry.desired_set() && entry.actual_known() &&
                  (entry.actual_missing() ||
                   entry.actual_value() != entry.desired_value()));
  return shown;
}

ConfigManager::Records ConfigManager::Record(
    const v1::Rollout& rollout, const std::vector<v1::RolloutEvent>& events) {
  Records records;
  const bool change = rollout.operation().has_config_change();
  if (!change && !rollout.operation().has_config_read()) return records;
  const v1::ConfigChangeSpec& spec = rollout.operation().config_change();
  std::map<std::string, std::string> wanted;
  for (const v1::ConfigSetting& setting : spec.settings())
    wanted[setting.key()] = setting.value();
  const int64_t number = RolloutNumber(rollout.rollout_id());

  std::map<std::pair<std::string, std::string>, v1::ConfigEntry> touched;
  absl::MutexLock lock(&entries_mutex_);
  for (const v1::RolloutEvent& event : events) {
    if (!event.has_config_value()) continue;
    const v1::TargetConfigValue& reported = event.config_value();
    const v1::ConfigValueReport& value = reported.value();
    std::pair<std::string, std::string> at(reported.database_id(), value.key());
    v1::ConfigEntry& entry = entries_[at];
    entry.set_database_id(reported.database_id());
    entry.set_key(value.key());
    bool changed = false;
    if (!entry.actual_known() || FromProtoTimestamp(event.event_time()) >=
                                     FromProtoTimestamp(entry.actual_time())) {
      entry.set_actual_value(value.present() ? value.value() : "");
      entry.set_actual_known(true);
      entry.set_actual_missing(!value.present());
      *entry.mutable_actual_time() = event.event_time();
      changed = true;
    }
    // A change holds where the database stores the value asked for. An agent
    // that could not make every setting of a command hold sets the earlier
    // ones back and reports what they hold again: no change, only a value
    // read. A rollback makes the restored value the wanted one again.
    auto setting = wanted.find(value.key());
    const bool held = change && (reported.rollback() ||
                                 (setting != wanted.end() && value.present() &&
                                  value.value() == setting->second));
    if (held) {
      if (!entry.desired_set() ||
          number >= RolloutNumber(entry.desired_by_rollout())) {
        entry.set_desired_value(value.value());
        entry.set_desired_set(true);
        entry.set_desired_by_rollout(rollout.rollout_id());
        changed = true;
      }
      v1::ConfigChange& row = records.changes.emplace_back();
      row.set_database_id(reported.database_id());
      row.set_key(value.key());
      row.set_previous_value(value.previous_missing() ? ""
                                                      : value.previous_value());
      row.set_value(value.value());
      row.set_rollout_id(rollout.rollout_id());
      row.set_reason(spec.reason());
      row.set_actor(rollout.created_by());
      *row.mutable_change_time() = event.event_time();
      row.set_rollback(reported.rollback());
    }
    if (changed) {
      entry = Shown(entry);
      touched[at] = entry;
    }
  }
  for (auto& [at, entry] : touched) records.entries.push_back(std::move(entry));
  return records;
}

absl::Status ConfigManager::Replay() {
  // The writer saves in the order events were committed, so what a crash
  // lost is what came after the newest value saved.
  absl::Time newest = absl::InfinitePast();
  {
    absl::MutexLock lock(&entries_mutex_);
    for (const auto& [at, entry] : entries_) {
      if (entry.actual_known())
        newest = std::max(newest, FromProtoTimestamp(entry.actual_time()));
    }
  }
  ASSIGN_OR_RETURN(std::vector<v1::ConfigChange> last,
                   store_->LoadConfigHistory("", "", 1));
  if (!last.empty())
    newest = std::max(newest, FromProtoTimestamp(last[0].change_time()));
  const absl::Time cutoff = newest == absl::InfinitePast()
                                ? absl::InfinitePast()
                                : newest - options_.replay_margin;

  ASSIGN_OR_RETURN(
      std::vector<StateStore::StoredRollout> headers,
      store_->LoadRolloutHeaders(std::numeric_limits<long long>::max(), {},
                                 std::numeric_limits<int>::max()));
  int replayed = 0;
  // Oldest first, as they happened.
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    const v1::Rollout& rollout = it->rollout;
    if (!IsConfigOperation(rollout)) continue;
    if (!IsActiveRolloutState(rollout.state()) && rollout.has_finish_time() &&
        FromProtoTimestamp(rollout.finish_time()) < cutoff) {
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<v1::RolloutEvent> events,
                     store_->LoadRolloutEvents(rollout.rollout_id(), 0));
    std::vector<v1::RolloutEvent> recent;
    for (v1::RolloutEvent& event : events) {
      if (event.has_config_value() &&
          FromProtoTimestamp(event.event_time()) >= cutoff) {
        recent.push_back(std::move(event));
      }
    }
    if (recent.empty()) continue;
    Records records = Record(rollout, recent);
    RETURN_IF_ERROR(store_->SaveConfig(records.entries, records.changes));
    ++replayed;
  }
  if (replayed > 0) {
    Logger("config")->info(
        "recorded again what {} configuration operations reported last",
        replayed);
  }
  return absl::OkStatus();
}

// ---- changes ----

absl::StatusOr<v1::BundleInfo> ConfigManager::ResolveBundle(
    const std::string& reference, const std::vector<std::string>& keys) const {
  if (!Blank(reference)) {
    return bundles_->Resolve(
        std::string(absl::StripAsciiWhitespace(reference)));
  }
  std::optional<v1::BundleInfo> with_schema;
  v1::ListBundlesRequest request;
  request.set_page_size(kBundlePage);
  while (true) {
    ASSIGN_OR_RETURN(v1::ListBundlesResponse page, bundles_->List(request));
    for (v1::BundleInfo& info : *page.mutable_bundles()) {
      if (info.manifest().config().keys().empty()) continue;
      const bool declares_all =
          std::all_of(keys.begin(), keys.end(), [&](const std::string& key) {
            return bundle::FindConfigKey(info.manifest(), key) != nullptr;
          });
      if (declares_all) return std::move(info);
      if (!with_schema) with_schema = std::move(info);
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  // The check of the operation names the key it does not know.
  if (with_schema) return *std::move(with_schema);
  return absl::FailedPreconditionError(
      "no uploaded bundle declares configuration keys: push the bundle "
      "deployed on the databases first (ecliptixctl bundle push DIR)");
}

void ConfigManager::Set(v1::SetConfigRequest request,
                        Callback<v1::Rollout> done) {
  if (absl::Status status =
          CheckSelection(request.selector(), request.all_databases());
      !status.ok()) {
    return done(status);
  }
  if (request.settings().empty()) {
    return done(
        RequiredFieldError("settings",
                           "the keys and values to store, e.g. {\"key\": "
                           "\"Audit.RetentionDays\", \"value\": \"90\"}"));
  }
  if (Blank(request.reason())) {
    return done(RequiredFieldError(
        "reason",
        "say why the configuration changes (it is audited and kept in "
        "the history)"));
  }
  std::vector<std::string> keys;
  for (const v1::ConfigSetting& setting : request.settings())
    keys.push_back(setting.key());
  absl::StatusOr<v1::BundleInfo> bundle = ResolveBundle(request.bundle(), keys);
  if (!bundle.ok()) return done(bundle.status());

  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector(request.selector());
  create.set_all_databases(request.all_databases());
  create.set_requested_by(request.requested_by());
  create.set_description(Description(absl::StrCat(
      "config ", SettingsText(request.settings()), ": ", request.reason())));
  *create.mutable_strategy() =
      request.has_strategy() ? request.strategy() : DefaultChangeStrategy();
  v1::ConfigChangeSpec* change =
      create.mutable_operation()->mutable_config_change();
  *change->mutable_settings() = request.settings();
  change->set_reason(request.reason());

  orchestrator_->Create(
      std::move(create), [request = std::move(request), done = std::move(done)](
                             absl::StatusOr<v1::Rollout> rollout) {
        if (rollout.ok()) {
          Logger("audit")->info(
              "{} changed configuration {} on {} as rollout {} ({} databases, "
              "{} waves): {}",
              request.requested_by(), SettingsText(request.settings()),
              Where(request.selector(), request.all_databases()),
              rollout->rollout_id(), rollout->targets_size(),
              rollout->wave_count(), request.reason());
        }
        done(std::move(rollout));
      });
}

void ConfigManager::SetLogging(v1::EmergencyLoggingRequest request,
                               bool enabled, Callback<v1::Rollout> done) {
  if (absl::Status status =
          CheckSelection(request.selector(), request.all_databases());
      !status.ok()) {
    return done(status);
  }
  if (Blank(request.reason())) {
    return done(RequiredFieldError(
        "reason", absl::StrCat("say why logging is switched ",
                               enabled ? "on" : "off", " (it is audited)")));
  }
  absl::StatusOr<v1::BundleInfo> bundle =
      ResolveBundle("", {kMetricsKey, kValidationLogKey});
  if (!bundle.ok()) return done(bundle.status());
  // Off is 0 for both; on is each key's default in the bundle (the runbook:
  // metrics on, validation auditing off unless needed), not blindly 1.
  std::map<std::string, std::string> values;
  for (const char* key : {kMetricsKey, kValidationLogKey}) {
    const v1::ConfigKeySpec* spec =
        bundle::FindConfigKey(bundle->manifest(), key);
    values[key] = !enabled ? "0"
                  : spec != nullptr && !spec->default_value().empty()
                      ? spec->default_value()
                      : "1";
  }

  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector(request.selector());
  create.set_all_databases(request.all_databases());
  create.set_requested_by(request.requested_by());
  create.set_description(Description(absl::StrCat(
      "emergency: logging ", enabled ? "on" : "off", ": ", request.reason())));
  // Every database at once and each one tried whatever the others do; a
  // database whose agent is away counts as failed within seconds, so people
  // see where logging is still on. Nothing is rolled back by itself.
  v1::Strategy& strategy = *create.mutable_strategy();
  strategy.set_max_parallel(0);
  strategy.set_failure_budget("100%");
  strategy.set_offline_policy(v1::OFFLINE_POLICY_FAIL);
  *strategy.mutable_offline_deadline() =
      ToProtoDuration(options_.emergency_offline_deadline);
  v1::ConfigChangeSpec* change =
      create.mutable_operation()->mutable_config_change();
  for (const char* key : {kMetricsKey, kValidationLogKey}) {
    v1::ConfigSetting* setting = change->add_settings();
    setting->set_key(key);
    setting->set_value(values[key]);
  }
  change->set_reason(request.reason());
  change->set_emergency(true);

  orchestrator_->Create(
      std::move(create),
      [request = std::move(request), enabled, values,
       done = std::move(done)](absl::StatusOr<v1::Rollout> rollout) {
        if (rollout.ok()) {
          Logger("audit")->warn(
              "{} switched logging {} ({}={}, {}={}) on {} as rollout {} ({} "
              "databases, emergency): {}",
              request.requested_by(), enabled ? "ON" : "OFF", kMetricsKey,
              values.at(kMetricsKey), kValidationLogKey,
              values.at(kValidationLogKey),
              Where(request.selector(), request.all_databases()),
              rollout->rollout_id(), rollout->targets_size(), request.reason());
        }
        done(std::move(rollout));
      });
}

// ---- reads ----

absl::StatusOr<v1::GetConfigResponse> ConfigManager::Get(
    const v1::GetConfigRequest& request) const {
  std::set<std::string> keys;
  for (const std::string& key : request.keys()) {
    if (Blank(key)) return absl::InvalidArgumentError("keys: a key is empty");
    keys.insert(key);
  }
  ASSIGN_OR_RETURN(std::vector<v1::Database> selected,
                   registry_->Select(request.selector()));
  v1::GetConfigResponse response;
  absl::MutexLock lock(&entries_mutex_);
  for (const v1::Database& database : selected) {
    const std::string& id = database.database_id();
    if (keys.empty()) {
      for (auto it = entries_.lower_bound({id, ""});
           it != entries_.end() && it->first.first == id; ++it) {
        *response.add_entries() = Shown(it->second);
      }
      continue;
    }
    for (const std::string& key : keys) {
      auto it = entries_.find({id, key});
      if (it != entries_.end()) {
        *response.add_entries() = Shown(it->second);
      } else {
        v1::ConfigEntry* entry = response.add_entries();
        entry->set_database_id(id);
        entry->set_key(key);
      }
    }
  }
  return response;
}

void ConfigManager::Diff(v1::DiffConfigRequest request, std::string actor,
                         Callback<v1::GetConfigResponse> done) {
  if (absl::Status status =
          CheckSelection(request.selector(), request.all_databases());
      !status.ok()) {
    return done(status);
  }
  absl::Duration timeout = FromProtoDuration(request.timeout());
  if (timeout < absl::ZeroDuration()) {
    return done(absl::InvalidArgumentError("timeout must not be negative"));
  }
  if (timeout == absl::ZeroDuration()) timeout = options_.diff_timeout;
  if (timeout > options_.max_diff_timeout) {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "timeout must be at most ", DurationText(options_.max_diff_timeout))));
  }
  std::vector<std::string> keys;
  for (const std::string& key : request.keys()) {
    if (Blank(key)) {
      return done(absl::InvalidArgumentError("keys: a key is empty"));
    }
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      keys.push_back(key);
  }
  absl::StatusOr<v1::BundleInfo> bundle = ResolveBundle("", keys);
  if (!bundle.ok()) return done(bundle.status());

  auto job = std::make_shared<DiffJob>();
  job->timeout = timeout;
  job->done = std::move(done);
  if (keys.empty()) {
    for (const v1::ConfigKeySpec& key : bundle->manifest().config().keys())
      job->keys.push_back(key.key());
  } else {
    job->keys = keys;
  }
  std::sort(job->keys.begin(), job->keys.end());

  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector(request.selector());
  create.set_all_databases(request.all_databases());
  create.set_requested_by(std::move(actor));
  create.set_description("config diff: what the databases store");
  // Every database read at once, each whatever the others answer; one whose
  // agent is away is skipped soon (it is reported as not read).
  v1::Strategy& strategy = *create.mutable_strategy();
  strategy.set_failure_budget("100%");
  strategy.set_offline_policy(v1::OFFLINE_POLICY_SKIP);
  *strategy.mutable_offline_deadline() =
      ToProtoDuration(std::min(options_.read_offline_deadline, timeout));
  for (const std::string& key : keys)
    create.mutable_operation()->mutable_config_read()->add_keys(key);
  // Sets the oneof when no key is given (every key of the schema).
  create.mutable_operation()->mutable_config_read();

  orchestrator_->Create(
      std::move(create), [this, job](absl::StatusOr<v1::Rollout> rollout) {
        if (!rollout.ok()) return job->done(rollout.status());
        job->rollout_id = rollout->rollout_id();
        for (const v1::RolloutTarget& target : rollout->targets())
          job->databases.push_back(target.database_id());
        std::sort(job->databases.begin(), job->databases.end());
        job->deadline = absl::Now() + job->timeout;
        // Watching is asked from this component's thread, never from the
        // orchestrator's own.
        const bool posted = Post([this, job] {
          uint64_t id;
          {
            absl::MutexLock lock(&mutex_);
            id = next_diff_++;
            job->sink = std::make_shared<DiffSink>(this, id);
            diffs_[id] = job;
          }
          orchestrator_->Watch(job->rollout_id, 0, job->sink);
        });
        if (!posted) {
          job->done(absl::UnavailableError(
              "ecliptix-server is shutting down; ask again when it is back"));
        }
      });
}

void ConfigManager::FinishDiff(uint64_t id) {
  std::shared_ptr<DiffJob> job;
  {
    absl::MutexLock lock(&mutex_);
    auto it = diffs_.find(id);
    if (it == diffs_.end()) return;
    job = std::move(it->second);
    diffs_.erase(it);
  }
  job->sink->Close();
  const absl::Status ended = job->sink->end_status();
  if (!ended.ok()) return job->done(ended);
  const v1::Rollout rollout = job->sink->rollout();
  std::map<std::string, const v1::RolloutTarget*> targets;
  for (const v1::RolloutTarget& target : rollout.targets())
    targets[target.database_id()] = &target;

  v1::GetConfigResponse response;
  absl::MutexLock lock(&entries_mutex_);
  for (const std::string& database_id : job->databases) {
    auto target = targets.find(database_id);
    const v1::TargetState state = target == targets.end()
                                      ? v1::TARGET_STATE_PENDING
                                      : target->second->state();
    const std::string error =
        target == targets.end() ? "" : target->second->error();
    switch (state) {
      case v1::TARGET_STATE_SUCCEEDED:
        for (const std::string& key : job->keys) {
          auto entry = entries_.find({database_id, key});
          v1::ConfigEntry shown;
          if (entry != entries_.end()) {
            shown = Shown(entry->second);
          } else {
            shown.set_database_id(database_id);
            shown.set_key(key);
          }
          if (shown.drift() || !shown.actual_known() || shown.actual_missing())
            *response.add_entries() = std::move(shown);
        }
        break;
      case v1::TARGET_STATE_SKIPPED:
        // "agent offline for more than 3s" from the engine.
        response.add_unread_databases(absl::StrCat(
            database_id, ": ", error.empty() ? "agent offline" : error));
        break;
      case v1::TARGET_STATE_FAILED:
      case v1::TARGET_STATE_UNKNOWN:
        response.add_unread_databases(absl::StrCat(
            database_id, ": ", error.empty() ? "the read failed" : error));
        break;
      default:
        response.add_unread_databases(absl::StrCat(
            database_id, ": no answer within ", DurationText(job->timeout),
            " (read ", job->rollout_id, " goes on)"));
        break;
    }
  }
  job->done(std::move(response));
}

void ConfigManager::History(v1::GetConfigHistoryRequest request,
                            Callback<v1::GetConfigHistoryResponse> done) {
  if (request.limit() < 0 || request.limit() > kMaxHistory) {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "limit must be between 0 (", kDefaultHistory, ") and ", kMaxHistory)));
  }
  auto shared =
      std::make_shared<Callback<v1::GetConfigHistoryResponse>>(std::move(done));
  const bool posted = Post([this, request, shared] {
    absl::StatusOr<std::vector<v1::ConfigChange>> changes =
        store_->LoadConfigHistory(
            request.key(), request.database_id(),
            request.limit() == 0 ? kDefaultHistory : request.limit());
    if (!changes.ok()) return (*shared)(changes.status());
    v1::GetConfigHistoryResponse response;
    for (v1::ConfigChange& change : *changes)
      *response.add_changes() = std::move(change);
    (*shared)(std::move(response));
  });
  if (!posted) {
    (*shared)(absl::UnavailableError(
        "ecliptix-server is shutting down; ask again when it is back"));
  }
}

}  // namespace ecliptix::server
