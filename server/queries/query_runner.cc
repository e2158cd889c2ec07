#include "server/queries/query_runner.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/proto_status.h"
#include "common/proto_time.h"
#include "common/required_field.h"
#include "common/rollout_events.h"
#include "common/rollout_names.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;

// The part of a query command's id after "<rollout id>/<database id>" (see
// Engine::AssignCommand: rollout/database/verb/unit/attempt).
constexpr char kQueryCommandInfix[] = "/run/query/";

bool DeclaresOperation(const v1::BundleManifest& manifest,
                       const std::string& name) {
  for (const v1::Operation& operation : manifest.operations()) {
    if (operation.name() == name) return true;
  }
  return false;
}

std::string NameVersion(const v1::BundleInfo& info) {
  return absl::StrCat(info.name(), "@", info.version());
}

// "name (type)" or "name (type) = default".
std::string ParameterText(const v1::OperationParameter& parameter) {
  std::string text =
      absl::StrCat(parameter.name(), " (", parameter.type(), ")");
  if (parameter.has_default_value()) {
    absl::StrAppend(&text, " = ",
                    parameter.default_value().empty()
                        ? std::string("\"\"")
                        : parameter.default_value());
  }
  return text;
}

// The same rule as CreateRollout's: a forgotten selector never means every
// database.
absl::Status CheckSelection(const v1::RunQueryRequest& request) {
  const bool has_selector =
      !absl::StripAsciiWhitespace(request.selector()).empty();
  if (!has_selector && !request.all_databases()) {
    return RequiredFieldError(
        "selector",
        "a label selector such as env=prod; set all_databases (ecliptixctl: "
        "--all) to query every database");
  }
  if (has_selector && request.all_databases()) {
    return absl::InvalidArgumentError(
        "selector and all_databases exclude each other: give a selector, or "
        "set all_databases alone to mean every database");
  }
  return absl::OkStatus();
}

}  // namespace

// One query from Run until its answer ended. Its mutex orders everything
// sent to the sink: the orchestrator's worker (events), the deadline thread
// and the client's cancellation all take it.
class QueryRunner::Query {
 public:
  struct Database {
    int64_t rows = 0;
    int64_t truncated = 0;
    bool done = false;
  };

  uint64_t number = 0;
  std::string name;
  std::string requested_by;
  absl::Duration timeout;
  absl::Time deadline;

  absl::Mutex mutex;
  std::shared_ptr<QueryResultSink> sink ABSL_GUARDED_BY(mutex);
  // The answer ended (End was called): nothing more is sent.
  bool done ABSL_GUARDED_BY(mutex) = false;
  // Set once the operation exists.
  std::string rollout_id ABSL_GUARDED_BY(mutex);
  std::vector<std::string> order ABSL_GUARDED_BY(mutex);
  std::map<std::string, Database> databases ABSL_GUARDED_BY(mutex);
  int remaining ABSL_GUARDED_BY(mutex) = 0;

  // Sends one message; a client that is gone ends the query (false).
  bool Send(const v1::QueryResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    if (done) return false;
    if (sink->Deliver(result)) return true;
    done = true;
    return false;
  }

  void End(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    if (done) return;
    done = true;
    sink->End(status);
  }

  // The summary of one database; ends the answer (OK) after the last one.
  void Summarize(const std::string& database_id, const std::string& code,
                 const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    auto it = databases.find(database_id);
    if (it == databases.end() || it->second.done || done) return;
    it->second.done = true;
    --remaining;
    v1::QueryResult result;
    v1::QueryDatabaseSummary* summary = result.mutable_summary();
    summary->set_database_id(database_id);
    summary->set_code(code);
    summary->set_error(error);
    summary->set_rows(it->second.rows);
    summary->set_rows_truncated(it->second.truncated);
    if (!Send(result)) return;
    if (remaining == 0) End(absl::OkStatus());
  }
};

// The query's watch of its operation.
class QueryRunner::WatchSink : public RolloutEventSink {
 public:
  WatchSink(std::shared_ptr<Link> link, std::shared_ptr<Query> query)
      : link_(std::move(link)), query_(std::move(query)) {}

  bool Deliver(const v1::RolloutEvent& event) override {
    absl::ReaderMutexLock lock(&link_->mutex);
    return link_->runner != nullptr && link_->runner->OnEvent(query_, event);
  }

  void End(const absl::Status& status) override {
    absl::ReaderMutexLock lock(&link_->mutex);
    if (link_->runner != nullptr) link_->runner->OnWatchEnd(query_, status);
  }

 private:
  const std::shared_ptr<Link> link_;
  const std::shared_ptr<Query> query_;
};

QueryRunner::QueryRunner(RolloutOrchestrator* rollouts, BundleCatalog* bundles,
                         Registry* registry, Clock* clock, QueryOptions options)
    : rollouts_(rollouts),
      bundles_(bundles),
      registry_(registry),
      clock_(clock),
      options_(options),
      link_(std::make_shared<Link>()) {
  absl::MutexLock lock(&link_->mutex);
  link_->runner = this;
}

QueryRunner::~QueryRunner() {
  Stop();
  absl::MutexLock lock(&link_->mutex);
  link_->runner = nullptr;
}

void QueryRunner::Start() {
  registry_->AddCommandObserver(
      [link = link_](const std::string&, const v1::AgentMessage& message) {
        absl::ReaderMutexLock lock(&link->mutex);
        if (link->runner != nullptr) link->runner->OnCommandMessage(message);
      });
  deadline_thread_ = std::thread([this] { DeadlineLoop(); });
}

void QueryRunner::Stop() {
  std::map<uint64_t, std::shared_ptr<Query>> running;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
    running.swap(running_);
  }
  if (deadline_thread_.joinable()) deadline_thread_.join();
  for (auto& [number, query] : running) {
    std::string rollout_id;
    {
      absl::MutexLock lock(&query->mutex);
      rollout_id = query->rollout_id;
      query->End(absl::UnavailableError(
          "the server is shutting down; run the query again"));
    }
    // Best effort: the orchestrator may stop before it gets to it, and then
    // resumes the operation at the next start, where it ends by itself.
    if (!rollout_id.empty())
      AbortOperation(rollout_id, query->requested_by, "server shutting down");
  }
}

size_t QueryRunner::RunningQueries() {
  absl::MutexLock lock(&mutex_);
  return running_.size();
}

absl::StatusOr<v1::ListQueriesResponse> QueryRunner::ListQueries(
    const v1::ListQueriesRequest& request) const {
  absl::StatusOr<v1::BundleInfo> info;
  if (!request.bundle().empty()) {
    info = bundles_->Resolve(request.bundle());
  } else {
    v1::ListBundlesRequest newest;
    newest.set_page_size(1);
    absl::StatusOr<v1::ListBundlesResponse> listed = bundles_->List(newest);
    if (!listed.ok()) return listed.status();
    if (listed->bundles().empty()) {
      return absl::NotFoundError(
          "no bundle is uploaded yet: `ecliptixctl bundle push DIR` first");
    }
    info = listed->bundles(0);
  }
  if (!info.ok()) return info.status();
  v1::ListQueriesResponse response;
  response.set_bundle(NameVersion(*info));
  for (const v1::Operation& operation : info->manifest().operations()) {
    if (!operation.read_only()) continue;
    v1::QueryInfo* query = response.add_queries();
    query->set_name(operation.name());
    query->set_description(operation.description());
    for (const v1::OperationParameter& parameter : operation.parameters())
      query->add_parameters(ParameterText(parameter));
  }
  return response;
}

absl::StatusOr<v1::BundleInfo> QueryRunner::BundleFor(
    const std::string& reference, const std::string& query) const {
  if (!reference.empty()) return bundles_->Resolve(reference);
  v1::ListBundlesRequest request;
  bool any = false;
  // Newest first: the first that declares the query.
  while (true) {
    absl::StatusOr<v1::ListBundlesResponse> page = bundles_->List(request);
    if (!page.ok()) return page.status();
    for (const v1::BundleInfo& info : page->bundles()) {
      any = true;
      if (DeclaresOperation(info.manifest(), query)) return info;
    }
    if (page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  if (!any) {
    return absl::NotFoundError(
        "no bundle is uploaded yet: `ecliptixctl bundle push DIR` first");
  }
  return absl::NotFoundError(absl::StrCat(
      "no uploaded bundle declares a query \"", query,
      "\"; `ecliptixctl query list` shows the queries of the newest bundle"));
}

absl::StatusOr<std::shared_ptr<QueryRunner::Query>> QueryRunner::Run(
    v1::RunQueryRequest request, std::shared_ptr<QueryResultSink> sink) {
  if (absl::StripAsciiWhitespace(request.query()).empty()) {
    return RequiredFieldError(
        "query",
        "the name of a declared read-only query; `ecliptixctl query list` "
        "shows them");
  }
  if (absl::Status status = CheckSelection(request); !status.ok())
    return status;
  if (request.row_limit() < 0 || request.row_limit() > options_.max_row_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "row_limit must be between 0 (", options_.default_row_limit, ") and ",
        options_.max_row_limit, ", got ", request.row_limit()));
  }
  const absl::Duration asked = FromProtoDuration(request.timeout());
  if (asked < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "timeout must not be negative (0: 30 seconds)");
  }
  if (request.max_parallel() < 0) {
    return absl::InvalidArgumentError(
        "max_parallel must not be negative (0: every database at once)");
  }
  absl::StatusOr<v1::BundleInfo> bundle =
      BundleFor(request.bundle(), request.query());
  if (!bundle.ok()) return bundle.status();

  const absl::Duration timeout =
      asked == absl::ZeroDuration() ? options_.default_timeout : asked;
  const int32_t row_limit = request.row_limit() == 0
                                ? options_.default_row_limit
                                : request.row_limit();
  v1::CreateRolloutRequest create;
  create.set_bundle(bundle->bundle_id());
  create.set_selector(request.selector());
  create.set_all_databases(request.all_databases());
  create.set_requested_by(request.requested_by());
  create.set_description(absl::StrCat("query ", request.query()));
  // One wave, everything at once unless asked otherwise; each database
  // answers or fails on its own; an agent offline is not waited for past the
  // query's deadline.
  v1::Strategy* strategy = create.mutable_strategy();
  strategy->set_max_parallel(request.max_parallel());
  strategy->set_failure_budget("100%");
  strategy->set_offline_policy(v1::OFFLINE_POLICY_SKIP);
  *strategy->mutable_offline_deadline() = ToProtoDuration(timeout);
  v1::RunQueryCommand* command =
      create.mutable_operation()->mutable_query()->mutable_command();
  command->set_query(request.query());
  *command->mutable_arguments() = request.arguments();
  command->set_row_limit(row_limit);
  *command->mutable_timeout() = ToProtoDuration(timeout);

  auto query = std::make_shared<Query>();
  query->name = request.query();
  query->requested_by = request.requested_by();
  query->timeout = timeout;
  query->deadline = clock_->Now() + timeout;
  {
    absl::MutexLock lock(&query->mutex);
    query->sink = std::move(sink);
  }
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) {
      return absl::UnavailableError(
          "the server is shutting down; run the query again");
    }
    query->number = next_query_++;
    running_[query->number] = query;
  }
  rollouts_->Create(std::move(create),
                    [this, query](absl::StatusOr<v1::Rollout> rollout) {
                      OnCreated(query, std::move(rollout));
                    });
  return query;
}

void QueryRunner::OnCreated(const std::shared_ptr<Query>& query,
                            absl::StatusOr<v1::Rollout> rollout) {
  if (!rollout.ok()) {
    {
      absl::MutexLock lock(&query->mutex);
      query->End(rollout.status());
    }
    Forget(*query);
    return;
  }
  bool watch = false;
  bool abort = false;
  {
    absl::MutexLock lock(&query->mutex);
    query->rollout_id = rollout->rollout_id();
    if (query->done) {
      // Cancelled, or past its deadline, while the operation was created.
      abort = true;
    } else {
      v1::QueryResult started;
      started.mutable_started()->set_rollout_id(rollout->rollout_id());
      for (const v1::RolloutTarget& target : rollout->targets()) {
        query->order.push_back(target.database_id());
        query->databases[target.database_id()];
        started.mutable_started()->add_database_ids(target.database_id());
      }
      query->remaining = static_cast<int>(query->databases.size());
      Logger("audit")->info(
          "{} ran query {} of {} on {} databases (rollout {})",
          query->requested_by, query->name, rollout->bundle_name_version(),
          rollout->targets_size(), rollout->rollout_id());
      if (query->Send(started)) watch = true;
      abort = !watch;
    }
  }
  if (abort) {
    AbortOperation(rollout->rollout_id(), query->requested_by,
                   "the query ended before its operation started");
    Forget(*query);
    return;
  }
  // From the rollout as created on: no event of it is missed, none repeated.
  rollouts_->Watch(rollout->rollout_id(), rollout->last_event_sequence(),
                   std::make_shared<WatchSink>(link_, query));
}

bool QueryRunner::OnEvent(const std::shared_ptr<Query>& query,
                          const v1::RolloutEvent& event) {
  bool gone = false;
  bool over = false;
  std::string rollout_id;
  {
    absl::MutexLock lock(&query->mutex);
    if (query->done) return false;
    rollout_id = query->rollout_id;
    if (event.has_query_rows()) {
      auto it = query->databases.find(event.query_rows().database_id());
      if (it != query->databases.end() && !it->second.done) {
        const v1::QueryRows& rows = event.query_rows().rows();
        it->second.rows += rows.rows_size();
        if (rows.last()) it->second.truncated = rows.rows_truncated();
        v1::QueryResult result;
        *result.mutable_rows() = event.query_rows();
        gone = !query->Send(result);
      }
    } else if (event.has_target() &&
               IsFinalTargetState(event.target().state())) {
      const v1::TargetStateChanged& target = event.target();
      const std::string& database_id = target.database_id();
      switch (target.state()) {
        case v1::TARGET_STATE_SUCCEEDED:
          query->Summarize(database_id, "OK", "");
          break;
        case v1::TARGET_STATE_FAILED: {
          // The agent's code and message when it reported one; the engine's
          // text otherwise.
          const absl::Status failure =
              TakeFailure(absl::StrCat(rollout_id, "/", database_id));
          if (!failure.ok()) {
            query->Summarize(database_id,
                             absl::StatusCodeToString(failure.code()),
                             std::string(failure.message()));
          } else {
            query->Summarize(database_id,
                             absl::StartsWith(target.error(), "cancelled")
                                 ? "CANCELLED"
                                 : "UNKNOWN",
                             target.error());
          }
          break;
        }
        case v1::TARGET_STATE_SKIPPED:
          if (absl::StrContains(target.error(), "offline")) {
            query->Summarize(
                database_id, "UNAVAILABLE",
                absl::StrCat("agent offline (", target.error(), ")"));
          } else {
            query->Summarize(database_id, "ABORTED", target.error());
          }
          break;
        case v1::TARGET_STATE_UNKNOWN:
          // Its agent went away while the query ran and did not come back
          // within the deadline.
          query->Summarize(database_id, "UNAVAILABLE",
                           "agent offline: it went away during the query");
          break;
        default:
          query->Summarize(database_id, "UNKNOWN", target.error());
          break;
      }
      // A client gone before the last summary: stop the others.
      gone = query->done && query->remaining > 0;
    }
    over = query->done;
  }
  if (gone) {
    AbortOperation(rollout_id, query->requested_by,
                   "the client stopped reading the query's answer");
  }
  if (over) Forget(*query);
  return !over;
}

void QueryRunner::OnWatchEnd(const std::shared_ptr<Query>& query,
                             const absl::Status& status) {
  {
    absl::MutexLock lock(&query->mutex);
    if (query->done) return;
    if (status.ok()) {
      // The operation ended (aborted by someone) with databases not
      // summarized: they will not answer any more.
      for (const std::string& database_id : query->order) {
        if (query->databases[database_id].done) continue;
        query->Summarize(database_id, "ABORTED",
                         absl::StrCat("operation ", query->rollout_id,
                                      " ended before this database answered"));
      }
      query->End(absl::OkStatus());
    } else {
      query->End(status);
    }
  }
  Forget(*query);
}

void QueryRunner::OnDeadline(const std::shared_ptr<Query>& query) {
  std::string rollout_id;
  {
    absl::MutexLock lock(&query->mutex);
    if (query->done) return;
    rollout_id = query->rollout_id;
    if (rollout_id.empty()) {
      // OnCreated aborts the operation when it comes.
      query->End(absl::DeadlineExceededError(
          absl::StrCat("the query's operation was not created within ",
                       absl::FormatDuration(query->timeout))));
    } else {
      for (const std::string& database_id : query->order) {
        if (query->databases[database_id].done) continue;
        absl::StatusOr<v1::Database> database =
            registry_->GetDatabase(database_id);
        if (database.ok() &&
            database->connection_state() == v1::CONNECTION_STATE_CONNECTED) {
          query->Summarize(database_id, "DEADLINE_EXCEEDED",
                           absl::StrCat("no answer within ",
                                        absl::FormatDuration(query->timeout)));
        } else {
          query->Summarize(
              database_id, "UNAVAILABLE",
              absl::StrCat("agent offline; not waited for past the query's "
                           "deadline (",
                           absl::FormatDuration(query->timeout), ")"));
        }
      }
      query->End(absl::OkStatus());
    }
  }
  if (!rollout_id.empty()) {
    AbortOperation(
        rollout_id, query->requested_by,
        absl::StrCat("the query's deadline (",
                     absl::FormatDuration(query->timeout), ") passed"));
    Forget(*query);
  }
}

void QueryRunner::Cancel(const std::shared_ptr<Query>& query) {
  // The caller's reference may go with the stream this ends.
  const std::shared_ptr<Query> keep = query;
  std::string rollout_id;
  {
    absl::MutexLock lock(&keep->mutex);
    if (keep->done) return;
    rollout_id = keep->rollout_id;
    keep->End(absl::CancelledError("the client cancelled the query"));
  }
  // Before the operation exists, OnCreated aborts it.
  if (!rollout_id.empty()) {
    AbortOperation(rollout_id, keep->requested_by,
                   "the client cancelled the query");
    Forget(*keep);
  }
}

void QueryRunner::AbortOperation(const std::string& rollout_id,
                                 const std::string& actor,
                                 const std::string& reason) {
  v1::RolloutActionRequest request;
  request.set_rollout_id(rollout_id);
  request.set_actor(actor);
  request.set_reason(reason);
  rollouts_->Abort(std::move(request), [](absl::StatusOr<v1::Rollout>) {});
}

void QueryRunner::Forget(Query& query) {
  std::string rollout_id;
  {
    absl::MutexLock lock(&mutex_);
    running_.erase(query.number);
  }
  {
    absl::MutexLock lock(&query.mutex);
    rollout_id = query.rollout_id;
  }
  if (rollout_id.empty()) return;
  absl::MutexLock lock(&failures_mutex_);
  const std::string prefix = absl::StrCat(rollout_id, "/");
  for (auto it = failures_.lower_bound(prefix);
       it != failures_.end() && absl::StartsWith(it->first, prefix);) {
    it = failures_.erase(it);
  }
}

void QueryRunner::DeadlineLoop() {
  absl::MutexLock lock(&mutex_);
  while (!stopping_) {
    mutex_.AwaitWithTimeout(absl::Condition(&stopping_),
                            options_.deadline_check);
    if (stopping_) break;
    const absl::Time now = clock_->Now();
    std::vector<std::shared_ptr<Query>> due;
    for (const auto& [number, query] : running_) {
      if (query->deadline <= now) due.push_back(query);
    }
    if (due.empty()) continue;
    mutex_.Unlock();
    for (const std::shared_ptr<Query>& query : due) OnDeadline(query);
    mutex_.Lock();
  }
}

void QueryRunner::OnCommandMessage(const v1::AgentMessage& message) {
  // Cheap for every other message of the fleet: only failures are looked at.
  const std::string* command_id = nullptr;
  const v1::Status* status = nullptr;
  if (message.has_command_ack() && message.command_ack().status().code() != 0) {
    command_id = &message.command_ack().command_id();
    status = &message.command_ack().status();
  } else if (message.has_command_event() &&
             message.command_event().has_finished() &&
             message.command_event().finished().code() != 0) {
    command_id = &message.command_event().command_id();
    status = &message.command_event().finished();
  } else {
    return;
  }
  const size_t infix = command_id->find(kQueryCommandInfix);
  if (infix == std::string::npos) return;
  std::string key = command_id->substr(0, infix);
  absl::MutexLock lock(&failures_mutex_);
  auto [it, inserted] =
      failures_.insert_or_assign(key, FromProtoStatus(*status));
  if (!inserted) return;
  failure_order_.push_back(std::move(key));
  while (failure_order_.size() > options_.max_remembered_failures) {
    failures_.erase(failure_order_.front());
    failure_order_.pop_front();
  }
}

absl::Status QueryRunner::TakeFailure(const std::string& key) {
  absl::MutexLock lock(&failures_mutex_);
  auto it = failures_.find(key);
  if (it == failures_.end()) return absl::OkStatus();
  absl::Status status = std::move(it->second);
  failures_.erase(it);
  return status;
}

}  // namespace ecliptix::server
