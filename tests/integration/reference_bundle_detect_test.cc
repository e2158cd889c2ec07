// The detect queries of the Ecliptix reference bundle, proved against the
// database catalogs on SQLite and the test PostgreSQL: on an empty database
// every step's detect answers all 0 (no error although nothing exists); after
// each step's SQL is applied (in manifest order) its detect answers all 1, for
// exactly the objects the step created (the catalog before and after the step,
// compared), while the later steps' detects still answer all 0.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/sql/splitter.h"
#include "common/bundle/bundle.h"
#include "common/sql/session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using testing::RunfilePath;

std::string BundleDir() {
  return testing::PlainRunfilesCopy("bundles/ecliptix",
                                    "bundle-ecliptix-detect");
}

std::string CellText(const soci::row& row, size_t i) {
  if (row.get_indicator(i) == soci::i_null) return "NULL";
  switch (row.get_properties(i).get_data_type()) {
    case soci::dt_string:
      return row.get<std::string>(i);
    case soci::dt_integer:
      return std::to_string(row.get<int>(i));
    case soci::dt_long_long:
      return std::to_string(row.get<long long>(i));
    case soci::dt_unsigned_long_long:
      return std::to_string(row.get<unsigned long long>(i));
    case soci::dt_double:
      return std::to_string(static_cast<long long>(row.get<double>(i)));
    default:
      return "?";
  }
}

// Object names are compared case-insensitively: PostgreSQL folds the
// bundle's unquoted names to lower case.
std::string Key(const std::string& name) { return absl::AsciiStrToLower(name); }

class DetectTest {
 public:
  DetectTest(const std::string& url, v1::Dialect dialect) : dialect_(dialect) {
    auto parsed = sql::ParseDatabaseUrl(url);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    auto session = sql::OpenSession(*parsed);
    EXPECT_TRUE(session.ok()) << session.status();
    if (session.ok()) session_ = std::move(*session);
  }

  std::vector<std::vector<std::string>> Rows(const std::string& query) {
    std::vector<std::vector<std::string>> rows;
    absl::Status status = sql::Guard("query", [&] {
      soci::rowset<soci::row> result = session_->prepare << query;
      for (const soci::row& row : result) {
        std::vector<std::string>& cells = rows.emplace_back();
        for (size_t i = 0; i < row.size(); ++i) {
          cells.push_back(CellText(row, i));
        }
      }
    });
    EXPECT_TRUE(status.ok()) << status << "\n" << query;
    return rows;
  }

  // Every object of the schema the bundle works in, by lower-case name:
  // tables, views, indexes (not those SQLite or PostgreSQL create for
  // constraints), triggers and functions.
  std::set<std::string> Catalog() {
    const std::string query =
        dialect_ == v1::DIALECT_SQLITE
            ? "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
              "AND name NOT LIKE 'ecliptix_%'"
            : "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid "
              "= c.relnamespace WHERE n.nspname = 'dbo' AND c.relkind IN "
              "('r', 'p', 'v', 'i') AND NOT EXISTS (SELECT 1 FROM "
              "pg_constraint k WHERE k.conindid = c.oid) "
              "UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n "
              "ON n.oid = p.pronamespace WHERE n.nspname = 'dbo' "
              "UNION ALL SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON "
              "c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = "
              "c.relnamespace WHERE n.nspname = 'dbo' AND NOT t.tgisinternal";
    std::set<std::string> names;
    for (const auto& row : Rows(query)) names.insert(Key(row.at(0)));
    return names;
  }

  // name -> "0" or "1", checking the shape of the answer.
  std::map<std::string, std::string> Detect(const v1::Step& step) {
    std::map<std::string, std::string> found;
    for (const auto& row : Rows(bundle::SqlFor(step.detect(), dialect_))) {
      EXPECT_EQ(row.size(), 2u) << step.name();
      if (row.size() != 2) continue;
      EXPECT_THAT(row[1], ::testing::AnyOf("0", "1"))
          << step.name() << " " << row[0];
      EXPECT_TRUE(found.emplace(Key(row[0]), row[1]).second)
          << step.name() << " lists " << row[0] << " twice";
    }
    return found;
  }

  void Apply(const bundle::Bundle& bundle, const v1::Step& step) {
    auto text = bundle.File(bundle::PathFor(step.sql(), dialect_));
    ASSERT_TRUE(text.ok()) << text.status();
    auto statements = agent::sql::SplitStatements(dialect_, *text);
    ASSERT_TRUE(statements.ok()) << statements.status();
    absl::Status status = sql::Guard(step.name(), [&] {
      soci::transaction transaction(*session_);
      for (const auto& statement : *statements) *session_ << statement.text;
      transaction.commit();
    });
    ASSERT_TRUE(status.ok()) << status;
  }

 private:
  v1::Dialect dialect_;
  std::unique_ptr<soci::session> session_;
};

std::string Names(const std::map<std::string, std::string>& detected,
                  const std::string& value) {
  std::vector<std::string> names;
  for (const auto& [name, present] : detected) {
    if (present == value) names.push_back(name);
  }
  return absl::StrJoin(names, ", ");
}

void ProveDetectQueries(const std::string& url, v1::Dialect dialect) {
  auto bundle = bundle::Bundle::LoadDirectory(BundleDir());
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::vector<const v1::Step*> steps;
  for (const v1::Phase& phase : bundle->manifest().phases()) {
    for (const v1::Step& step : phase.steps()) {
      ASSERT_TRUE(step.has_detect()) << step.name() << " has no detect";
      steps.push_back(&step);
    }
  }
  ASSERT_EQ(steps.size(), 7u);

  DetectTest db(url, dialect);
  for (const v1::Step* step : steps) {
    auto detected = db.Detect(*step);
    EXPECT_FALSE(detected.empty()) << step->name();
    EXPECT_EQ(Names(detected, "1"), "")
        << step->name() << " on an empty database";
  }

  for (size_t s = 0; s < steps.size(); ++s) {
    const v1::Step& step = *steps[s];
    SCOPED_TRACE(step.name());
    const std::set<std::string> before = db.Catalog();
    db.Apply(*bundle, step);
    if (::testing::Test::HasFatalFailure()) return;
    std::set<std::string> created;
    for (const std::string& name : db.Catalog()) {
      if (before.count(name) == 0) created.insert(name);
    }
    auto detected = db.Detect(step);
    EXPECT_EQ(Names(detected, "0"), "") << "missing after the step ran";
    std::set<std::string> listed;
    for (const auto& [name, present] : detected) listed.insert(name);
    EXPECT_EQ(detected.size(), created.size());
    EXPECT_EQ(absl::StrJoin(listed, ", "), absl::StrJoin(created, ", "))
        << "detect must list exactly the objects the step creates";
    for (size_t later = s + 1; later < steps.size(); ++later) {
      EXPECT_EQ(Names(db.Detect(*steps[later]), "1"), "")
          << steps[later]->name() << " before it ran";
    }
  }
}

TEST(ReferenceBundleDetectTest, SqliteCatalogs) {
  ProveDetectQueries(
      absl::StrCat("sqlite://", std::getenv("TEST_TMPDIR"), "/detect.db"),
      v1::DIALECT_SQLITE);
}

TEST(ReferenceBundleDetectTest, PostgresqlCatalogs) {
  if (!testing::PostgresAdminUrl()) {
    GTEST_SKIP()
        << "ECLIPTIX_TEST_POSTGRES_URL is not set (tools/test sets it)";
  }
  auto scratch = testing::CreateScratchDatabase("ecliptix_detect");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  ProveDetectQueries(scratch->url, v1::DIALECT_POSTGRESQL);
}

}  // namespace
}  // namespace ecliptix
