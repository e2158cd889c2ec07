// Fleet queries end to end: a real ecliptix-server process, 20 real
// ecliptix-agent processes on SQLite files (3 PostgreSQL databases when the
// tests have a server), the reference bundle deployed by a rollout, and
// ecliptixctl over loopback gRPC. Each database holds a different number of
// AuditLog rows, so every row of an answer is checked against the database it
// is tagged with. A test bundle adds the queries the reference bundle does
// not have: one that is slow on one database only, one that tries to write,
// one that returns many rows.
#include "tests/testing/query.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ecliptix/fleet/v1/bundle.grpc.pb.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "ecliptix/fleet/v1/query_service.grpc.pb.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;
using google::protobuf::Struct;
using testing::ChildProcess;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::RunfilePath;
using testing::WaitFor;

constexpr char kReference[] = "ecliptix-production-enhancements@1.0.0";
constexpr char kTests[] = "query-tests@1.0.0";
// How much slower the slow database is than the deadline: it never answers.
constexpr char kForever[] = "1000000000000";

// Queries the reference bundle does not have. QuerySlowness (created by the
// test in each database) says how long SlowCount takes there.
constexpr char kTestManifest[] =
    R"pb(name: "query-tests"
         version: "1.0.0"
         dialects: DIALECT_SQLITE
         dialects: DIALECT_POSTGRESQL
         phases {
           name: "setup"
           steps {
             name: "noop"
             kind: STEP_KIND_VERSIONED
             sql { sqlite: "sqlite/noop.sql" postgresql: "postgresql/noop.sql" }
           }
         }
         operations {
           name: "SlowCount"
           read_only: true
           description: "Counts to QuerySlowness.n (SQLite) or sleeps QuerySlowness.seconds (PostgreSQL)."
           sql {
             sqlite: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < (SELECT n FROM QuerySlowness)) SELECT count(*) AS N FROM c"
             postgresql: "SELECT n AS N FROM QuerySlowness CROSS JOIN pg_sleep(seconds)"
           }
         }
         operations {
           name: "WriteAttempt"
           read_only: true
           description: "Declared read-only, yet writes."
           sql {
             sqlite: "WITH v(n) AS (SELECT -1) INSERT INTO QuerySlowness (n, seconds) SELECT n, "
                     "0 FROM v RETURNING n"
             postgresql: "WITH w AS (INSERT INTO QuerySlowness (n, seconds) VALUES (-1, 0) RETURNING n) SELECT n FROM w"
           }
         }
         operations {
           name: "Numbers"
           read_only: true
           description: "1 to Count."
           parameters { name: "Count" type: "int" description: "how many" }
           sql {
             sqlite: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < CAST(:Count AS INTEGER)) SELECT x AS X FROM c"
             postgresql: "SELECT generate_series(1, CAST(:Count AS integer)) AS X"
           }
         }
    )pb";

enum class Engine { kSqlite, kPostgresql };

// A value of a JSON object by key, ignoring case (PostgreSQL folds the
// unquoted column names of the bundle's SQL to lower case).
const google::protobuf::Value* Field(const Struct& object,
                                     const std::string& key) {
  for (const auto& [name, value] : object.fields()) {
    if (absl::EqualsIgnoreCase(name, key)) return &value;
  }
  return nullptr;
}

std::string Text(const Struct& object, const std::string& key) {
  const google::protobuf::Value* value = Field(object, key);
  if (value == nullptr) return "<missing>";
  if (value->has_null_value()) return "<null>";
  if (value->has_number_value()) return absl::StrCat(value->number_value());
  return value->string_value();
}

// What `ecliptixctl query run ... --format=json` printed, read back.
struct JsonAnswer {
  int exit_code = -1;
  std::string output;
  absl::Duration elapsed;
  // The "columns" object of each row, by database.
  std::map<std::string, std::vector<Struct>> rows;
  // The "summary" object, by database.
  std::map<std::string, Struct> summaries;
  // The last line.
  Struct totals;
};

class QueryTest : public ::testing::TestWithParam<Engine> {
 protected:
  // One fleet per engine for the whole suite: starting 20 agents and
  // deploying the reference bundle is the expensive part.
  struct Fleet {
    std::string dir;
    int port = 0;
    std::unique_ptr<ChildProcess> server;
    std::map<std::string, std::unique_ptr<ChildProcess>> agents;
    std::map<std::string, std::string> urls;
    // database id -> its AuditLog rows marked TableName = 'QueryTest'.
    std::map<std::string, int> seeded;
    std::string slow;
  };

  static void TearDownTestSuite() {
    for (auto& [engine, fleet] : *fleets_) {
      for (auto& [id, agent] : fleet->agents) agent->Signal(SIGTERM);
      if (fleet->server != nullptr) fleet->server->Signal(SIGTERM);
    }
    fleets_->clear();
  }

  void SetUp() override {
    if (postgresql() && !testing::PostgresAdminUrl().has_value()) {
      GTEST_SKIP() << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test "
                      "sets it)";
    }
    auto& fleet = (*fleets_)[GetParam()];
    if (fleet == nullptr) {
      fleet = std::make_unique<Fleet>();
      fleet_ = fleet.get();
      StartFleet();
      if (HasFatalFailure()) {
        fleets_->erase(GetParam());
        fleet_ = nullptr;
      }
      return;
    }
    fleet_ = fleet.get();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", fleet_->port),
                                   grpc::InsecureChannelCredentials());
  }

  bool postgresql() const { return GetParam() == Engine::kPostgresql; }
  int databases() const { return postgresql() ? 3 : 20; }
  std::string Table(const std::string& name) const {
    return postgresql() ? absl::StrCat("dbo.", name) : name;
  }

  void StartFleet() {
    Fleet& fleet = *fleet_;
    static int counter = 0;
    fleet.dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/query-", ++counter);
    fs::remove_all(fleet.dir);
    fs::create_directories(fleet.dir);
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", fleet.dir, "/state.db"),
         "--heartbeat_interval=200ms", "--heartbeat_timeout=2s"},
        absl::StrCat(fleet.dir, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    fleet.server = std::make_unique<ChildProcess>(std::move(*server));
    ASSERT_TRUE(WaitFor([&] {
      return (fleet.port = testing::LoggedServerPort(fleet.server->Output())) >
             0;
    })) << fleet.server->Output();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", fleet.port),
                                   grpc::InsecureChannelCredentials());
    for (int i = 1; i <= databases(); ++i) {
      const std::string id = absl::StrFormat("db-%02d", i);
      if (postgresql()) {
        auto scratch = testing::CreateScratchDatabase("queries");
        ASSERT_TRUE(scratch.ok()) << scratch.status();
        fleet.urls[id] = scratch->url;
      } else {
        fleet.urls[id] = absl::StrCat("sqlite://", fleet.dir, "/", id, ".db");
      }
      StartAgent(id);
    }
    ASSERT_TRUE(
        WaitFor([&] { return Connected() == databases(); }, absl::Seconds(60)));
    // The reference bundle, deployed everywhere by a rollout.
    auto pushed =
        Ctl({"bundle", "push",
             testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix")});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.output;
    auto deployed = Ctl({"rollout", "create", kReference, "--all", "--watch"});
    ASSERT_EQ(deployed.exit_code, 0) << deployed.output;
    // The test bundle is pushed after it: the newest upload.
    PushTestBundle();
    // A different number of audit rows in each database, and the table
    // SlowCount reads; the slow database is the one in the middle.
    fleet.slow = absl::StrFormat("db-%02d", databases() / 2 + 1);
    int i = 0;
    for (const auto& [id, url] : fleet.urls) {
      ++i;
      std::string sql;
      for (int row = 0; row < i; ++row) {
        absl::StrAppend(&sql, "INSERT INTO ", Table("AuditLog"),
                        " (TableName, OperationType, RecordId) VALUES "
                        "('QueryTest', 'INSERT', 'row-",
                        row, "');\n");
      }
      const bool slow = id == fleet.slow;
      absl::StrAppend(&sql, "CREATE TABLE QuerySlowness (n BIGINT, seconds ",
                      postgresql() ? "DOUBLE PRECISION" : "REAL", ");\n",
                      "INSERT INTO QuerySlowness (n, seconds) VALUES (",
                      slow ? kForever : "10", ", ", slow ? "600" : "0", ");\n");
      const absl::Status seeded = testing::ExecuteSql(url, sql);
      ASSERT_TRUE(seeded.ok()) << id << ": " << seeded;
      fleet.seeded[id] = i;
    }
  }

  void StartAgent(const std::string& id) {
    auto agent = ChildProcess::Start(
        {RunfilePath("agent/ecliptix-agent"),
         absl::StrCat("--server=127.0.0.1:", fleet_->port),
         absl::StrCat("--database=", fleet_->urls[id]), "--labels=env=prod",
         absl::StrCat("--database_id=", id), "--initial_backoff=100ms",
         "--max_backoff=500ms"},
        absl::StrCat(fleet_->dir, "/agent-", id, ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    fleet_->agents[id] = std::make_unique<ChildProcess>(std::move(*agent));
  }

  void PushTestBundle() {
    auto stub = v1::BundleService::NewStub(channel_);
    grpc::ClientContext context;
    v1::UploadBundleRequest request;
    auto add = [&](const std::string& path, const std::string& content) {
      v1::BundleFile* file = request.add_files();
      file->set_path(path);
      file->set_content(content);
    };
    add("manifest.textproto", kTestManifest);
    add("sqlite/noop.sql", "SELECT 1;\n");
    add("postgresql/noop.sql", "SELECT 1;\n");
    v1::BundleInfo info;
    const grpc::Status status = stub->UploadBundle(&context, request, &info);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  int Connected() {
    auto fleet = v1::FleetService::NewStub(channel_);
    grpc::ClientContext context;
    v1::ListDatabasesResponse response;
    if (!fleet->ListDatabases(&context, v1::ListDatabasesRequest(), &response)
             .ok())
      return 0;
    int connected = 0;
    for (const auto& database : response.databases())
      connected +=
          database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
    return connected;
  }

  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {RunfilePath("client/ecliptixctl"),
                 absl::StrCat("--server=127.0.0.1:", fleet_->port)});
    auto result = RunCommand(args, absl::Seconds(180));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{-1, ""};
  }

  // `ecliptixctl query run QUERY args... --format=json`, read back.
  JsonAnswer RunJson(const std::string& query, std::vector<std::string> args) {
    args.insert(args.begin(), {"query", "run", query});
    args.push_back("--format=json");
    JsonAnswer answer;
    const absl::Time start = absl::Now();
    const testing::CommandResult result = Ctl(args);
    answer.elapsed = absl::Now() - start;
    answer.exit_code = result.exit_code;
    answer.output = result.output;
    for (absl::string_view line : absl::StrSplit(result.output, '\n')) {
      if (!absl::StartsWith(line, "{")) continue;
      Struct object;
      const auto parsed = google::protobuf::util::JsonStringToMessage(
          std::string(line), &object);
      EXPECT_TRUE(parsed.ok()) << line;
      if (object.fields().count("columns") > 0) {
        answer.rows[object.fields().at("database_id").string_value()].push_back(
            object.fields().at("columns").struct_value());
      } else if (object.fields().count("summary") > 0) {
        answer.summaries[object.fields().at("database_id").string_value()] =
            object.fields().at("summary").struct_value();
      } else if (object.fields().count("rollout_id") > 0) {
        answer.totals = object;
      }
    }
    return answer;
  }

  v1::Rollout Get(const std::string& id) {
    auto stub = v1::RolloutService::NewStub(channel_);
    grpc::ClientContext context;
    v1::GetRolloutRequest request;
    request.set_rollout_id(id);
    v1::Rollout rollout;
    stub->GetRollout(&context, request, &rollout);
    return rollout;
  }

  int RolloutCount() {
    auto stub = v1::RolloutService::NewStub(channel_);
    grpc::ClientContext context;
    v1::ListRolloutsRequest request;
    request.set_page_size(1000);
    v1::ListRolloutsResponse response;
    if (!stub->ListRollouts(&context, request, &response).ok()) return -1;
    return response.rollouts_size();
  }

  // RunQuery over gRPC: the messages and the final status.
  grpc::Status RunQuery(const v1::RunQueryRequest& request,
                        std::vector<v1::QueryResult>* results) {
    auto stub = v1::QueryService::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(90)));
    auto reader = stub->RunQuery(&context, request);
    v1::QueryResult result;
    while (reader->Read(&result)) results->push_back(result);
    return reader->Finish();
  }

  static std::map<Engine, std::unique_ptr<Fleet>>* fleets_;
  Fleet* fleet_ = nullptr;
  std::shared_ptr<grpc::Channel> channel_;
};

std::map<Engine, std::unique_ptr<QueryTest::Fleet>>* QueryTest::fleets_ =
    new std::map<Engine, std::unique_ptr<QueryTest::Fleet>>();

TEST_P(QueryTest, EveryDatabaseAnswersWithItsOwnRowsTaggedWithIt) {
  const JsonAnswer answer = RunJson("AuditLogByTable", {"--selector=env=prod"});
  ASSERT_EQ(answer.exit_code, 0) << answer.output;
  ASSERT_EQ(static_cast<int>(answer.summaries.size()), databases())
      << answer.output;
  for (const auto& [id, seeded] : fleet_->seeded) {
    ASSERT_EQ(answer.rows.count(id), 1u) << id << "\n" << answer.output;
    // The row of the test's marker, with this database's own count.
    int found = 0;
    for (const Struct& row : answer.rows.at(id)) {
      if (Text(row, "TableName") != "QueryTest") continue;
      ++found;
      EXPECT_EQ(Text(row, "RecordCount"), absl::StrCat(seeded)) << id;
    }
    EXPECT_EQ(found, 1) << id << "\n" << answer.output;
    const Struct& summary = answer.summaries.at(id);
    EXPECT_EQ(Text(summary, "code"), "OK") << id;
    EXPECT_EQ(Text(summary, "rows"), absl::StrCat(answer.rows.at(id).size()));
  }
  EXPECT_EQ(Text(answer.totals, "ok"), absl::StrCat(databases()));

  // The rows stay in the operation's events: a watch from after its first
  // event replays them.
  const std::string rollout_id = Text(answer.totals, "rollout_id");
  auto stub = v1::RolloutService::NewStub(channel_);
  grpc::ClientContext context;
  v1::WatchRolloutRequest watch;
  watch.set_rollout_id(rollout_id);
  watch.set_after_sequence(1);
  auto reader = stub->WatchRollout(&context, watch);
  v1::RolloutEvent event;
  std::map<std::string, int> replayed;
  while (reader->Read(&event)) {
    if (event.has_query_rows()) {
      replayed[event.query_rows().database_id()] +=
          event.query_rows().rows().rows_size();
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  for (const auto& [id, rows] : answer.rows)
    EXPECT_EQ(replayed[id], static_cast<int>(rows.size())) << id;
  // And the operation counts them per database.
  const v1::Rollout rollout = Get(rollout_id);
  for (const v1::RolloutTarget& target : rollout.targets()) {
    auto rows = answer.rows.find(target.database_id());
    ASSERT_NE(rows, answer.rows.end()) << target.database_id();
    EXPECT_EQ(target.rows_returned(),
              static_cast<int64_t>(rows->second.size()));
  }
}

TEST_P(QueryTest, RecentAuditCountAsCsvMatchesEachDatabase) {
  const testing::CommandResult result =
      Ctl({"query", "run", "RecentAuditCount", "--arg=Minutes=60",
           "--selector=env=prod", "--format=csv"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::map<std::string, std::string> counts;
  for (absl::string_view line : absl::StrSplit(result.output, "\r\n")) {
    if (!absl::StartsWith(line, "db-")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, ',');
    ASSERT_EQ(cells.size(), 2u) << line;
    counts[cells[0]] = cells[1];
  }
  EXPECT_THAT(absl::AsciiStrToLower(result.output),
              HasSubstr("database,recentauditcount\r\n"));
  ASSERT_EQ(static_cast<int>(counts.size()), databases()) << result.output;
  for (const auto& [id, url] : fleet_->urls) {
    const std::string truth = testing::QueryScalar(
        url, absl::StrCat("SELECT COUNT(*) FROM ", Table("AuditLog"),
                          " WHERE CreatedAt > ",
                          postgresql() ? "now() - interval '60 minutes'"
                                       : "datetime('now', '-60 minutes')"));
    EXPECT_EQ(counts[id], truth) << id;
    int count = 0;
    ASSERT_TRUE(absl::SimpleAtoi(counts[id], &count)) << counts[id];
    EXPECT_GE(count, fleet_->seeded[id]) << id;
  }
  EXPECT_THAT(
      result.output,
      HasSubstr(absl::StrCat(databases(), " databases: ", databases(), " ok")));
}

TEST_P(QueryTest, ASlowDatabaseEndsAtTheDeadlineAndTheOthersAnswer) {
  const absl::Duration timeout = absl::Seconds(5);
  const JsonAnswer answer =
      RunJson("SlowCount", {"--selector=env=prod", "--timeout=5s"});
  EXPECT_EQ(answer.exit_code, 1) << answer.output;
  // Within the deadline and a margin for starting ecliptixctl.
  EXPECT_LT(answer.elapsed, timeout + absl::Seconds(20));
  ASSERT_EQ(static_cast<int>(answer.summaries.size()), databases())
      << answer.output;
  for (const auto& [id, summary] : answer.summaries) {
    if (id == fleet_->slow) {
      EXPECT_EQ(Text(summary, "code"), "DEADLINE_EXCEEDED") << answer.output;
      EXPECT_EQ(answer.rows.count(id), 0u);
    } else {
      EXPECT_EQ(Text(summary, "code"), "OK") << id << ": " << answer.output;
      ASSERT_EQ(answer.rows.count(id), 1u) << id;
      EXPECT_EQ(Text(answer.rows.at(id)[0], "N"), "10");
    }
  }
  EXPECT_EQ(Text(answer.totals, "timed_out"), "1");
  // The operation is over: aborted at the server's deadline, or ended by
  // itself when the agent's own deadline (the same) came first.
  const std::string rollout_id = Text(answer.totals, "rollout_id");
  EXPECT_TRUE(WaitFor([&] {
    const v1::RolloutState state = Get(rollout_id).state();
    return state == v1::ROLLOUT_STATE_ABORTED ||
           state == v1::ROLLOUT_STATE_SUCCEEDED;
  })) << Get(rollout_id).DebugString();
}

TEST_P(QueryTest, AnUnknownQueryIsNotFound) {
  const testing::CommandResult result =
      Ctl({"query", "run", "NoSuchQuery", "--all"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(result.output, HasSubstr("NoSuchQuery"));

  v1::RunQueryRequest request;
  request.set_query("NoSuchQuery");
  request.set_bundle(kReference);
  request.set_all_databases(true);
  std::vector<v1::QueryResult> results;
  const grpc::Status status = RunQuery(request, &results);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
      << status.error_message();
  EXPECT_TRUE(results.empty());
}

TEST_P(QueryTest, AnOperationNotDeclaredReadOnlyIsRefusedAndWritesNothing) {
  const int rollouts = RolloutCount();
  const testing::CommandResult result =
      Ctl({"query", "run", "SetConfigValue",
           "--arg=ConfigKey=Authentication.MaxFailedAttempts",
           "--arg=ConfigValue=9", "--all"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(RolloutCount(), rollouts);
  for (const auto& [id, url] : fleet_->urls) {
    EXPECT_EQ(testing::QueryScalar(
                  url, absl::StrCat("SELECT ConfigValue FROM ",
                                    Table("SystemConfiguration"),
                                    " WHERE ConfigKey = "
                                    "'Authentication.MaxFailedAttempts'")),
              "5")
        << id;
  }
}

TEST_P(QueryTest, AReadOnlyQueryThatWritesIsRefusedOnEveryDatabase) {
  const JsonAnswer answer =
      RunJson("WriteAttempt", {"--all", absl::StrCat("--bundle=", kTests)});
  EXPECT_EQ(answer.exit_code, 1) << answer.output;
  ASSERT_EQ(static_cast<int>(answer.summaries.size()), databases())
      << answer.output;
  for (const auto& [id, summary] : answer.summaries) {
    EXPECT_EQ(Text(summary, "code"), "PERMISSION_DENIED")
        << id << ": " << answer.output;
  }
  EXPECT_TRUE(answer.rows.empty()) << answer.output;
  for (const auto& [id, url] : fleet_->urls) {
    EXPECT_EQ(testing::QueryScalar(
                  url, "SELECT COUNT(*) FROM QuerySlowness WHERE n = -1"),
              "0")
        << id;
  }
}

TEST_P(QueryTest, TheRowLimitTruncatesAndSaysSo) {
  const JsonAnswer answer =
      RunJson("Numbers", {"--arg=Count=50", "--row_limit=10", "--all"});
  EXPECT_EQ(answer.exit_code, 0) << answer.output;
  ASSERT_EQ(static_cast<int>(answer.summaries.size()), databases());
  for (const auto& [id, summary] : answer.summaries) {
    EXPECT_EQ(Text(summary, "code"), "OK") << id;
    EXPECT_EQ(Text(summary, "rows"), "10") << id;
    EXPECT_EQ(Text(summary, "rows_truncated"), "40") << id;
    ASSERT_EQ(answer.rows.at(id).size(), 10u) << id;
    EXPECT_EQ(Text(answer.rows.at(id)[9], "X"), "10") << id;
  }
  EXPECT_EQ(Text(answer.totals, "rows_truncated"),
            absl::StrCat(40 * databases()));
  // The table says it too.
  const testing::CommandResult table = Ctl(
      {"query", "run", "Numbers", "--arg=Count=3", "--row_limit=2", "--all"});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr(absl::StrCat(databases(),
                                                   " more left out by the row "
                                                   "limit")));
}

TEST_P(QueryTest, AnOfflineDatabaseIsReportedNotWaitedForPastTheDeadline) {
  const std::string offline = absl::StrFormat("db-%02d", databases());
  fleet_->agents[offline]->Signal(SIGTERM);
  ASSERT_TRUE(fleet_->agents[offline]->Wait(absl::Seconds(30)).has_value());
  ASSERT_TRUE(WaitFor([&] { return Connected() == databases() - 1; },
                      absl::Seconds(30)));
  const absl::Duration timeout = absl::Seconds(4);
  const JsonAnswer answer =
      RunJson("ConfigurationCount", {"--all", "--timeout=4s"});
  EXPECT_EQ(answer.exit_code, 1) << answer.output;
  EXPECT_LT(answer.elapsed, timeout + absl::Seconds(20));
  ASSERT_EQ(static_cast<int>(answer.summaries.size()), databases())
      << answer.output;
  for (const auto& [id, summary] : answer.summaries) {
    if (id == offline) {
      EXPECT_EQ(Text(summary, "code"), "UNAVAILABLE");
      EXPECT_THAT(Text(summary, "error"), HasSubstr("agent offline"));
    } else {
      EXPECT_EQ(Text(summary, "code"), "OK") << id << ": " << answer.output;
      ASSERT_EQ(answer.rows.count(id), 1u);
      EXPECT_EQ(Text(answer.rows.at(id)[0], "ConfigurationCount"), "9");
    }
  }
  EXPECT_EQ(Text(answer.totals, "offline"), "1");
  // Back for the other tests.
  StartAgent(offline);
  ASSERT_TRUE(
      WaitFor([&] { return Connected() == databases(); }, absl::Seconds(30)));
}

TEST_P(QueryTest, ListQueriesShowsABundlesReadOnlyQueries) {
  const testing::CommandResult reference =
      Ctl({"query", "list", absl::StrCat("--bundle=", kReference)});
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  EXPECT_THAT(reference.output, HasSubstr("RecentAuditCount"));
  EXPECT_THAT(reference.output, HasSubstr("Minutes (int) = 10"));
  EXPECT_THAT(reference.output, HasSubstr("AuditLogByTable"));
  EXPECT_THAT(reference.output, ::testing::Not(HasSubstr("SetConfigValue")));
  // Without --bundle: the newest upload.
  const testing::CommandResult newest = Ctl({"query", "list"});
  ASSERT_EQ(newest.exit_code, 0) << newest.output;
  EXPECT_THAT(newest.output, HasSubstr(kTests));
  EXPECT_THAT(newest.output, HasSubstr("Count (int)"));
}

INSTANTIATE_TEST_SUITE_P(Engines, QueryTest,
                         ::testing::Values(Engine::kSqlite,
                                           Engine::kPostgresql),
                         [](const auto& info) {
                           return info.param == Engine::kSqlite ? "Sqlite"
                                                                : "Postgresql";
                         });

}  // namespace
}  // namespace ecliptix
