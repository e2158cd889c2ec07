#include "tests/agent/reference_database.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/executor/executor.h"
#include "agent/target/open_target.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix::agent::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::ecliptix::fleet::v1;

constexpr char kTestOperations[] = R"pb(
  # Test operations (tests/agent/reference_database.h).
  operations {
    name: "WriteInSelect"
    read_only: true
    description: "A read-only query that writes (PostgreSQL): refused."
    parameters { name: "ConfigKey" type: "text" }
    parameters { name: "ConfigValue" type: "text" }
    sql {
      sqlite: "SELECT :ConfigKey AS ConfigKey, :ConfigValue AS ConfigValue"
      postgresql: "SELECT * FROM dbo.SetConfigValue(:ConfigKey, :ConfigValue)"
      mssql: "SELECT :ConfigKey AS ConfigKey, :ConfigValue AS ConfigValue"
    }
  }
  operations {
    name: "SlowQuery"
    read_only: true
    description: "Runs for about a minute."
    sql {
      sqlite: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000000) SELECT COUNT(*) AS N FROM c"
      postgresql: "SELECT 1 AS N FROM pg_sleep(60)"
      mssql: "SELECT 1 AS N"
    }
  }
  operations {
    name: "Numbers"
    read_only: true
    description: "Count rows: N, and Parity (NULL for even N)."
    parameters { name: "Count" type: "int" }
    sql {
      sqlite: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :Count) SELECT x AS N, CASE WHEN x % 2 = 0 THEN NULL ELSE 'odd' END AS Parity FROM c ORDER BY x"
      postgresql: "SELECT x AS N, CASE WHEN x % 2 = 0 THEN NULL ELSE 'odd' END AS Parity FROM generate_series(1, CAST(:Count AS integer)) AS x ORDER BY x"
      mssql: "SELECT 1 AS N, NULL AS Parity"
    }
  }
)pb";

}  // namespace

std::string EngineParamName(const ::testing::TestParamInfo<Engine>& info) {
  switch (info.param) {
    case Engine::kSqlite:
      return "Sqlite";
    case Engine::kPostgresql:
      return "Postgresql";
    default:
      return "PostgresqlOdbc";
  }
}

std::shared_ptr<const bundle::Bundle> TestBundle() {
  static const auto* loaded = [] {
    const std::string reference = ::ecliptix::testing::PlainRunfilesCopy(
        "bundles/ecliptix", "bundle-ecliptix-reference");
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string root =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/bundle-ecliptix-day2");
    fs::remove_all(root);
    fs::copy(reference, root, fs::copy_options::recursive);
    std::ofstream(absl::StrCat(root, "/", bundle::kManifestFile), std::ios::app)
        << kTestOperations;
    absl::StatusOr<bundle::Bundle> bundle = bundle::Bundle::LoadDirectory(root);
    if (!bundle.ok()) {
      ADD_FAILURE() << bundle.status();
      return new std::shared_ptr<const bundle::Bundle>();
    }
    return new std::shared_ptr<const bundle::Bundle>(
        std::make_shared<const bundle::Bundle>(*std::move(bundle)));
  }();
  return *loaded;
}

absl::StatusOr<std::string> DeployedDatabase(Engine engine,
                                             const std::string& dir) {
  // Deployed through libpq even for ODBC: the reference bundle's detect
  // queries do not run through PostgreSQL's ODBC driver, and the deployment
  // is not what these tests are about.
  std::string url;
  std::string deploy_url;
  if (engine == Engine::kSqlite) {
    url = deploy_url = absl::StrCat("sqlite://", dir, "/target.db");
  } else {
    absl::StatusOr<::ecliptix::testing::ScratchDatabase> scratch =
        ::ecliptix::testing::CreateScratchDatabase("day2");
    if (!scratch.ok()) return scratch.status();
    deploy_url = scratch->url;
    url = engine == Engine::kPostgresqlOdbc ? scratch->odbc_url : scratch->url;
  }
  std::shared_ptr<const bundle::Bundle> bundle = TestBundle();
  if (bundle == nullptr) return absl::InternalError("no test bundle");
  absl::StatusOr<std::unique_ptr<Target>> database = OpenTarget(deploy_url);
  if (!database.ok()) return database.status();
  ExecutorOptions options;
  options.backup_dir = absl::StrCat(dir, "/backups");
  Executor executor(database->get(), options);
  for (const v1::Phase& phase : bundle->manifest().phases()) {
    absl::Status status = executor.RunPhase(*bundle, phase.name(), false,
                                            [](const v1::DeploymentEvent&) {});
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("deploying phase ", phase.name(), ": ",
                                       status.message()));
    }
  }
  return url;
}

std::string Table(Engine engine, const std::string& name) {
  return engine == Engine::kSqlite ? name : absl::StrCat("dbo.", name);
}

int64_t QueryInt(Target& database, const std::string& sql) {
  const std::string text = QueryText(database, sql);
  int64_t value = -1;
  if (!absl::SimpleAtoi(text, &value)) {
    ADD_FAILURE() << sql << " returned \"" << text << "\"";
    return -1;
  }
  return value;
}

std::string QueryText(Target& database, const std::string& sql) {
  absl::StatusOr<QueryResult> result = database.Query(sql);
  if (!result.ok()) {
    ADD_FAILURE() << sql << ": " << result.status();
    return "<error>";
  }
  if (result->rows.empty() || result->rows[0].values.empty()) return "<none>";
  if (result->rows[0].nulls[0]) return "<NULL>";
  return result->rows[0].values[0];
}

void Exec(Target& database, const std::string& sql) {
  absl::Status status = database.Execute(sql);
  EXPECT_TRUE(status.ok()) << sql << ": " << status;
}

void InsertAuditRows(Engine engine, Target& database,
                     const std::string& table_name, int count, int days) {
  const std::string created =
      engine == Engine::kSqlite
          ? "datetime('now', '-' || CAST(:days AS TEXT) || ' days')"
          : "now() - make_interval(days => CAST(:days AS integer))";
  const std::string sql =
      absl::StrCat("INSERT INTO ", Table(engine, "AuditLog"),
                   " (TableName, OperationType, RecordId, CreatedAt) VALUES "
                   "(:table_name, 'TEST', :record, ",
                   created, ")");
  for (int i = 0; i < count; ++i) {
    absl::Status status =
        database.Execute(sql, {SqlParam::Text("table_name", table_name),
                               SqlParam::Text("record", absl::StrCat(i)),
                               SqlParam::Int("days", days)});
    ASSERT_TRUE(status.ok()) << status;
  }
}

}  // namespace ecliptix::agent::testing
