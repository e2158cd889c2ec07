// The QueryRunner over the real orchestrator and registry, with fake agents
// that answer RunQueryCommands as the test says (rows, a failure, silence) on
// a fake clock: every database's rows tagged with it and then its summary,
// the agent's failure code, the deadline (the silent database reported
// DEADLINE_EXCEEDED, an offline one UNAVAILABLE, the operation aborted), the
// client's cancel, and the refusals (nothing created).
#include "server/queries/query_runner.h"

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleet/registry.h"
#include "server/rollouts/rollout_orchestrator.h"
#include "tests/server/server_testing.h"
#include "tests/testing/process.h"

namespace ecliptix::server {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kManifest[] = R"(name: "queries"
version: "1.0.0"
dialects: DIALECT_SQLITE
phases {
  name: "one"
  steps {
    name: "t"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/t.sql" }
  }
}
operations {
  name: "CountThings"
  read_only: true
  description: "Counts things."
  parameters { name: "Minutes" type: "int" description: "how far back" default_value: "10" }
  sql { sqlite: "SELECT 1" }
}
operations {
  name: "Plain"
  read_only: true
  parameters { name: "Note" type: "text" default_value: "" }
  sql { sqlite: "SELECT 1" }
}
operations {
  name: "SetThing"
  parameters { name: "Value" type: "text" }
  sql { sqlite: "UPDATE t SET id = :Value" }
}
)";

// How a fake agent answers a query.
struct Answer {
  enum Kind { kRows, kFail, kSilent } kind = kRows;
  int rows = 0;
  int64_t truncated = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;
};

// An agent that answers query commands on a thread of its own (never inside
// Send, where the registry may hold its lock): acknowledges, streams its rows
// in batches of two ("<database>", "<n>"), then finishes; a silent agent
// answers only a cancel (CANCELLED). Like a real agent, it runs a command id
// once.
class FakeAgent : public AgentSession {
 public:
  FakeAgent(std::string id, Answer answer)
      : id_(std::move(id)), answer_(std::move(answer)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeAgent() override {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }
  void Bind(Registry* registry, uint64_t session_id) {
    absl::MutexLock lock(&mutex_);
    registry_ = registry;
    session_id_ = session_id;
  }
  void Send(v1::ServerMessage message) override {
    if (!message.has_command()) return;
    absl::MutexLock lock(&mutex_);
    // The server sends a command again when it learns the agent is there;
    // an agent runs an id once.
    if (!seen_.insert(message.command().command_id()).second) return;
    inbox_.push_back(message.command());
    if (message.command().has_run_query())
      queries_.push_back(message.command().run_query());
  }
  void Close(const absl::Status&) override {}
  std::vector<v1::RunQueryCommand> queries() {
    absl::MutexLock lock(&mutex_);
    return queries_;
  }
  int cancels() {
    absl::MutexLock lock(&mutex_);
    return cancels_;
  }

 private:
  void Loop() {
    while (true) {
      v1::Command command;
      Registry* registry;
      uint64_t session_id;
      {
        absl::MutexLock lock(&mutex_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
          return stopping_ || (!inbox_.empty() && registry_ != nullptr);
        };
        mutex_.Await(absl::Condition(&ready));
        if (stopping_) return;
        command = inbox_.front();
        inbox_.pop_front();
        registry = registry_;
        session_id = session_id_;
        if (command.has_cancel()) ++cancels_;
      }
      auto send = [&](v1::AgentMessage message) {
        registry->OnCommandMessage(session_id, message);
      };
      if (command.has_cancel()) {
        v1::AgentMessage finished;
        finished.mutable_command_event()->set_command_id(
            command.cancel().command_id());
        finished.mutable_command_event()->mutable_finished()->set_code(
            static_cast<int>(absl::StatusCode::kCancelled));
        send(finished);
        continue;
      }
      if (!command.has_run_query()) continue;
      v1::AgentMessage ack;
      ack.mutable_command_ack()->set_command_id(command.command_id());
      send(ack);
      if (answer_.kind == Answer::kSilent) continue;
      if (answer_.kind == Answer::kRows) {
        int sent = 0;
        do {
          v1::AgentMessage rows;
          rows.mutable_command_event()->set_command_id(command.command_id());
          v1::QueryRows* batch =
              rows.mutable_command_event()->mutable_query_rows();
          batch->add_columns("Database");
          batch->add_columns("N");
          for (int i = 0; i < 2 && sent < answer_.rows; ++i, ++sent) {
            v1::QueryRow* row = batch->add_rows();
            row->add_values()->set_text(id_);
            row->add_values()->set_text(absl::StrCat(sent + 1));
          }
          if (sent == answer_.rows) {
            batch->set_last(true);
            batch->set_rows_truncated(answer_.truncated);
          }
          send(rows);
        } while (sent < answer_.rows);
      }
      v1::AgentMessage finished;
      finished.mutable_command_event()->set_command_id(command.command_id());
      finished.mutable_command_event()->mutable_finished()->set_code(
          static_cast<int>(answer_.code));
      finished.mutable_command_event()->mutable_finished()->set_message(
          answer_.message);
      send(finished);
    }
  }

  const std::string id_;
  const Answer answer_;
  absl::Mutex mutex_;
  std::deque<v1::Command> inbox_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> seen_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::RunQueryCommand> queries_ ABSL_GUARDED_BY(mutex_);
  int cancels_ ABSL_GUARDED_BY(mutex_) = 0;
  Registry* registry_ ABSL_GUARDED_BY(mutex_) = nullptr;
  uint64_t session_id_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

// What a client would receive.
class ResultLog : public QueryResultSink {
 public:
  bool Deliver(const v1::QueryResult& result) override {
    absl::MutexLock lock(&mutex_);
    if (ended_) return false;
    results_.push_back(result);
    return true;
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mutex_);
    ++ends_;
    end_ = status;
    ended_ = true;
  }
  absl::Status WaitEnd() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(&ended_));
    return end_;
  }
  bool ended() {
    absl::MutexLock lock(&mutex_);
    return ended_;
  }
  int ends() {
    absl::MutexLock lock(&mutex_);
    return ends_;
  }
  std::vector<v1::QueryResult> results() {
    absl::MutexLock lock(&mutex_);
    return results_;
  }
  // Waits until the query started (or ended).
  void WaitStarted() {
    absl::MutexLock lock(&mutex_);
    auto started = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return ended_ || (!results_.empty() && results_[0].has_started());
    };
    mutex_.Await(absl::Condition(&started));
  }
  // Waits until `database_id` was summarized (or the answer ended).
  void WaitSummary(const std::string& database_id) {
    absl::MutexLock lock(&mutex_);
    auto summarized = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      if (ended_) return true;
      for (const v1::QueryResult& result : results_) {
        if (result.has_summary() &&
            result.summary().database_id() == database_id)
          return true;
      }
      return false;
    };
    mutex_.Await(absl::Condition(&summarized));
  }
  std::map<std::string, v1::QueryDatabaseSummary> summaries() {
    std::map<std::string, v1::QueryDatabaseSummary> by_database;
    for (const v1::QueryResult& result : results()) {
      if (result.has_summary())
        by_database[result.summary().database_id()] = result.summary();
    }
    return by_database;
  }

 private:
  absl::Mutex mutex_;
  std::vector<v1::QueryResult> results_ ABSL_GUARDED_BY(mutex_);
  absl::Status end_ ABSL_GUARDED_BY(mutex_);
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
  int ends_ ABSL_GUARDED_BY(mutex_) = 0;
};

class QueryRunnerTest : public testing::ServerCoreTest {
 protected:
  void SetUp() override {
    RolloutOptions options;
    options.tick = absl::Milliseconds(1);
    OpenCore(options);
    absl::StatusOr<v1::BundleInfo> bundle = bundles_->Upload(
        {testing::File("manifest.textproto", kManifest),
         testing::File("sqlite/t.sql", "CREATE TABLE t (id INTEGER);\n")});
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    bundle_id_ = bundle->bundle_id();
    ASSERT_TRUE(orchestrator_->Start().ok());
    QueryOptions query_options;
    query_options.deadline_check = absl::Milliseconds(1);
    runner_ =
        std::make_unique<QueryRunner>(orchestrator_.get(), bundles_.get(),
                                      registry_.get(), &clock_, query_options);
    runner_->Start();
  }

  void TearDown() override {
    runner_->Stop();
    orchestrator_->Stop();
    registry_->Stop();
    runner_.reset();
  }

  // A connected agent for `id` answering `answer`.
  FakeAgent& Connect(const std::string& id, Answer answer) {
    auto agent = std::make_shared<FakeAgent>(id, std::move(answer));
    v1::Hello hello = testing::MakeHello(id, {{"env", "test"}});
    hello.add_capabilities("query");
    absl::StatusOr<Registration> registration =
        registry_->Register(hello, "peer", agent);
    EXPECT_TRUE(registration.ok()) << registration.status();
    if (registration.ok()) {
      agent->Bind(registry_.get(), registration->session_id);
      sessions_[id] = registration->session_id;
    }
    agents_[id] = agent;
    return *agent;
  }

  v1::RunQueryRequest Request(const std::string& query) {
    v1::RunQueryRequest request;
    request.set_query(query);
    request.set_selector("env=test");
    request.set_requested_by("test");
    return request;
  }

  // Runs `request`; the results go to the returned log.
  std::shared_ptr<ResultLog> Run(v1::RunQueryRequest request,
                                 absl::Status* refused = nullptr) {
    auto log = std::make_shared<ResultLog>();
    absl::StatusOr<std::shared_ptr<QueryRunner::Query>> query =
        runner_->Run(std::move(request), log);
    if (refused != nullptr) *refused = query.status();
    if (query.ok()) query_ = *query;
    return log;
  }

  v1::Rollout OnlyRollout() {
    absl::StatusOr<v1::ListRolloutsResponse> listed =
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>([&](auto done) {
          orchestrator_->List(v1::ListRolloutsRequest(), std::move(done));
        });
    EXPECT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(listed->rollouts_size(), 1);
    if (!listed.ok() || listed->rollouts_size() != 1) return v1::Rollout();
    return *RolloutOrchestrator::Await<v1::Rollout>([&](auto done) {
      orchestrator_->Get(listed->rollouts(0).rollout_id(), std::move(done));
    });
  }

  int RolloutCount() {
    absl::StatusOr<v1::ListRolloutsResponse> listed =
        RolloutOrchestrator::Await<v1::ListRolloutsResponse>([&](auto done) {
          orchestrator_->List(v1::ListRolloutsRequest(), std::move(done));
        });
    return listed.ok() ? listed->rollouts_size() : -1;
  }

  std::string bundle_id_;
  std::unique_ptr<QueryRunner> runner_;
  std::map<std::string, std::shared_ptr<FakeAgent>> agents_;
  std::map<std::string, uint64_t> sessions_;
  std::shared_ptr<QueryRunner::Query> query_;
};

TEST_F(QueryRunnerTest, EveryDatabaseRowsTaggedThenItsSummary) {
  for (int i = 1; i <= 5; ++i) {
    Answer answer;
    answer.rows = i;
    Connect(absl::StrCat("db-", i), answer);
  }
  v1::RunQueryRequest request = Request("CountThings");
  (*request.mutable_arguments())["Minutes"] = "5";
  request.set_row_limit(50);
  std::shared_ptr<ResultLog> log = Run(request);
  ASSERT_TRUE(log->WaitEnd().ok());

  const std::vector<v1::QueryResult> results = log->results();
  ASSERT_FALSE(results.empty());
  ASSERT_TRUE(results[0].has_started());
  EXPECT_THAT(results[0].started().database_ids(),
              ElementsAre("db-1", "db-2", "db-3", "db-4", "db-5"));
  EXPECT_EQ(results[0].started().rollout_id(), OnlyRollout().rollout_id());
  std::map<std::string, int> rows;
  std::map<std::string, bool> summarized;
  for (const v1::QueryResult& result : results) {
    if (result.has_rows()) {
      const std::string& database_id = result.rows().database_id();
      EXPECT_FALSE(summarized[database_id]) << "rows after the summary";
      for (const v1::QueryRow& row : result.rows().rows().rows()) {
        // Each row is tagged with the database it came from.
        EXPECT_EQ(row.values(0).text(), database_id);
        ++rows[database_id];
      }
    }
    if (result.has_summary()) {
      const v1::QueryDatabaseSummary& summary = result.summary();
      summarized[summary.database_id()] = true;
      EXPECT_EQ(summary.code(), "OK") << summary.error();
      EXPECT_EQ(summary.rows(), rows[summary.database_id()]);
    }
  }
  for (int i = 1; i <= 5; ++i) {
    const std::string id = absl::StrCat("db-", i);
    EXPECT_EQ(rows[id], i) << id;
    EXPECT_TRUE(summarized[id]) << id;
  }
  // What the agents were asked: the query, its arguments, the limits.
  const std::vector<v1::RunQueryCommand> asked = agents_["db-1"]->queries();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].query(), "CountThings");
  EXPECT_EQ(asked[0].bundle_id(), bundle_id_);
  EXPECT_EQ(asked[0].arguments().at("Minutes"), "5");
  EXPECT_EQ(asked[0].row_limit(), 50);
  EXPECT_EQ(FromProtoDuration(asked[0].timeout()), absl::Seconds(30));
  // The operation: a query, one wave, every database on its own.
  const v1::Rollout rollout = OnlyRollout();
  EXPECT_TRUE(rollout.operation().has_query());
  EXPECT_EQ(rollout.wave_count(), 1);
  EXPECT_EQ(rollout.strategy().failure_budget(), "100%");
  EXPECT_EQ(rollout.strategy().offline_policy(), v1::OFFLINE_POLICY_SKIP);
  EXPECT_EQ(rollout.created_by(), "test");
  EXPECT_EQ(runner_->RunningQueries(), 0u);
}

TEST_F(QueryRunnerTest, AFailedDatabaseCarriesTheAgentsCodeAndTheOthersGoOn) {
  Answer ok;
  ok.rows = 1;
  Connect("db-1", ok);
  Answer denied;
  denied.kind = Answer::kFail;
  denied.code = absl::StatusCode::kPermissionDenied;
  denied.message = "cannot execute INSERT in a read-only transaction";
  Connect("db-2", denied);
  Connect("db-3", ok);
  std::shared_ptr<ResultLog> log = Run(Request("CountThings"));
  ASSERT_TRUE(log->WaitEnd().ok());
  auto summaries = log->summaries();
  ASSERT_EQ(summaries.size(), 3u);
  EXPECT_EQ(summaries["db-1"].code(), "OK");
  EXPECT_EQ(summaries["db-3"].code(), "OK");
  EXPECT_EQ(summaries["db-2"].code(), "PERMISSION_DENIED");
  EXPECT_EQ(summaries["db-2"].error(),
            "cannot execute INSERT in a read-only transaction");
  EXPECT_EQ(summaries["db-2"].rows(), 0);
}

TEST_F(QueryRunnerTest, TheRowLimitsTruncationIsInTheSummary) {
  Answer capped;
  capped.rows = 3;
  capped.truncated = 7;
  Connect("db-1", capped);
  v1::RunQueryRequest request = Request("Plain");
  request.set_row_limit(3);
  std::shared_ptr<ResultLog> log = Run(request);
  ASSERT_TRUE(log->WaitEnd().ok());
  auto summaries = log->summaries();
  EXPECT_EQ(summaries["db-1"].rows(), 3);
  EXPECT_EQ(summaries["db-1"].rows_truncated(), 7);
}

TEST_F(QueryRunnerTest, AtTheDeadlineTheSlowAndOfflineAreReportedAndItStops) {
  Answer ok;
  ok.rows = 2;
  Connect("db-1", ok);
  Answer silent;
  silent.kind = Answer::kSilent;
  FakeAgent& slow = Connect("db-2", silent);
  Connect("db-3", ok);
  registry_->Unregister(sessions_["db-3"], "gone");
  v1::RunQueryRequest request = Request("CountThings");
  *request.mutable_timeout() = ToProtoDuration(absl::Seconds(5));
  std::shared_ptr<ResultLog> log = Run(request);
  log->WaitSummary("db-1");
  ASSERT_FALSE(log->ended());
  // Nothing ends before the deadline, whatever the real time.
  EXPECT_EQ(log->summaries().size(), 1u);

  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(log->WaitEnd().ok());
  auto summaries = log->summaries();
  ASSERT_EQ(summaries.size(), 3u);
  EXPECT_EQ(summaries["db-1"].code(), "OK");
  EXPECT_EQ(summaries["db-2"].code(), "DEADLINE_EXCEEDED");
  EXPECT_THAT(summaries["db-2"].error(), HasSubstr("no answer within 5s"));
  EXPECT_EQ(summaries["db-3"].code(), "UNAVAILABLE");
  EXPECT_THAT(summaries["db-3"].error(), HasSubstr("agent offline"));
  // The operation is aborted: the slow database's command is cancelled.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return OnlyRollout().state() == v1::ROLLOUT_STATE_ABORTED; }));
  ASSERT_TRUE(testing::WaitFor([&] { return slow.cancels() == 1; }));
  EXPECT_EQ(log->ends(), 1);
}

TEST_F(QueryRunnerTest, ACancelledQueryAbortsItsOperation) {
  Answer silent;
  silent.kind = Answer::kSilent;
  FakeAgent& agent = Connect("db-1", silent);
  std::shared_ptr<ResultLog> log = Run(Request("CountThings"));
  log->WaitStarted();
  ASSERT_TRUE(testing::WaitFor([&] { return agent.queries().size() == 1; }))
      << OnlyRollout().DebugString();
  runner_->Cancel(query_);
  EXPECT_EQ(log->WaitEnd().code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return OnlyRollout().state() == v1::ROLLOUT_STATE_ABORTED; }));
  ASSERT_TRUE(testing::WaitFor([&] { return agent.cancels() == 1; }));
  EXPECT_EQ(runner_->RunningQueries(), 0u);
}

TEST_F(QueryRunnerTest, RefusalsCreateNothing) {
  Connect("db-1", Answer());
  absl::Status refused;

  // Checked by the runner, at once.
  Run(Request(""), &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("query is required"));
  v1::RunQueryRequest everywhere = Request("CountThings");
  everywhere.clear_selector();
  Run(everywhere, &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  v1::RunQueryRequest too_many = Request("CountThings");
  too_many.set_row_limit(100001);
  Run(too_many, &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  Run(Request("NoSuchQuery"), &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kNotFound) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("NoSuchQuery"));
  v1::RunQueryRequest unknown_bundle = Request("CountThings");
  unknown_bundle.set_bundle("nope@1.0.0");
  Run(unknown_bundle, &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kNotFound) << refused;

  // Checked by the orchestrator against the bundle: the sink ends with it.
  std::shared_ptr<ResultLog> writes = Run(Request("SetThing"), &refused);
  ASSERT_TRUE(refused.ok()) << refused;
  EXPECT_EQ(writes->WaitEnd().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(writes->results().empty());
  v1::RunQueryRequest named = Request("NoSuchQuery");
  named.set_bundle("queries@1.0.0");
  std::shared_ptr<ResultLog> missing = Run(named, &refused);
  ASSERT_TRUE(refused.ok()) << refused;
  EXPECT_EQ(missing->WaitEnd().code(), absl::StatusCode::kNotFound);
  v1::RunQueryRequest bad_argument = Request("CountThings");
  (*bad_argument.mutable_arguments())["Minutes"] = "ten";
  EXPECT_EQ(Run(bad_argument)->WaitEnd().code(),
            absl::StatusCode::kInvalidArgument);
  v1::RunQueryRequest nobody = Request("CountThings");
  nobody.set_selector("env=nowhere");
  EXPECT_EQ(Run(nobody)->WaitEnd().code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(RolloutCount(), 0);
  EXPECT_EQ(runner_->RunningQueries(), 0u);
}

TEST_F(QueryRunnerTest, ListQueriesShowsTheReadOnlyOperationsOfTheNewest) {
  absl::StatusOr<v1::ListQueriesResponse> listed =
      runner_->ListQueries(v1::ListQueriesRequest());
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->bundle(), "queries@1.0.0");
  ASSERT_EQ(listed->queries_size(), 2);
  EXPECT_EQ(listed->queries(0).name(), "CountThings");
  EXPECT_EQ(listed->queries(0).description(), "Counts things.");
  EXPECT_THAT(listed->queries(0).parameters(),
              ElementsAre("Minutes (int) = 10"));
  EXPECT_EQ(listed->queries(1).name(), "Plain");
  EXPECT_THAT(listed->queries(1).parameters(),
              ElementsAre("Note (text) = \"\""));

  v1::ListQueriesRequest unknown;
  unknown.set_bundle("nope@2.0.0");
  EXPECT_EQ(runner_->ListQueries(unknown).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ecliptix::server
