#include "common/bundle/bundle.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::bundle {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::HasSubstr;

constexpr char kManifest[] = R"manifest(name: "demo"
version: "1.0.0"
dialects: DIALECT_SQLITE
dialects: DIALECT_POSTGRESQL
require_revert: true
phases {
  name: "one"
  steps {
    name: "create"
    kind: STEP_KIND_VERSIONED
    sql { sqlite: "sqlite/create.sql" postgresql: "postgresql/create.sql" }
    revert { sqlite: "sqlite/drop.sql" postgresql: "postgresql/drop.sql" }
    verify {
      query { sqlite: "SELECT 1" postgresql: "SELECT 1" }
      expect: "1"
    }
  }
}
operations {
  name: "GetThing"
  parameters { name: "Key" type: "text" }
  sql { sqlite: "SELECT :Key" postgresql: "SELECT :Key" }
}
)manifest";

v1::BundleFile File(const std::string& path, const std::string& content) {
  v1::BundleFile file;
  file.set_path(path);
  file.set_content(content);
  return file;
}

std::vector<v1::BundleFile> ValidFiles(
    const std::string& manifest = kManifest) {
  return {File("manifest.textproto", manifest),
          File("sqlite/create.sql", "CREATE TABLE t (x);"),
          File("sqlite/drop.sql", "DROP TABLE t;"),
          File("postgresql/create.sql", "CREATE TABLE t (x int);"),
          File("postgresql/drop.sql", "DROP TABLE t;"),
          File("README.md", "docs")};
}

std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

std::string ProblemsOf(std::vector<v1::BundleFile> files) {
  auto bundle = Bundle::FromFiles(std::move(files));
  EXPECT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(bundle.status().message());
}

TEST(BundleTest, ValidBundleLoadsWithAStableContentAddress) {
  auto bundle = Bundle::FromFiles(ValidFiles());
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->manifest().name(), "demo");
  EXPECT_THAT(bundle->id(), ::testing::MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_NE(bundle->FindPhase("one"), nullptr);
  EXPECT_EQ(bundle->FindPhase("two"), nullptr);
  EXPECT_NE(bundle->FindOperation("GetThing"), nullptr);

  // Order of upload does not matter; content does.
  auto files = ValidFiles();
  std::reverse(files.begin(), files.end());
  EXPECT_EQ(Bundle::FromFiles(files)->id(), bundle->id());
  files = ValidFiles();
  files[1].set_content("CREATE TABLE t (y);");
  EXPECT_NE(Bundle::FromFiles(files)->id(), bundle->id());

  auto checksum = bundle->StepChecksum(bundle->FindPhase("one")->steps(0),
                                       v1::DIALECT_SQLITE);
  ASSERT_TRUE(checksum.ok());
  EXPECT_EQ(*checksum, Sha256Id("CREATE TABLE t (x);"));
  EXPECT_EQ(
      bundle
          ->StepChecksum(bundle->FindPhase("one")->steps(0), v1::DIALECT_MSSQL)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST(BundleTest, DirectoryRoundTrip) {
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/roundtrip");
  auto bundle = Bundle::FromFiles(ValidFiles());
  ASSERT_TRUE(bundle.ok());
  ASSERT_TRUE(bundle->WriteTo(dir).ok());
  auto loaded = Bundle::LoadDirectory(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->id(), bundle->id());
  EXPECT_EQ(Bundle::LoadDirectory(dir + "/missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BundleTest, MissingManifest) {
  auto files = ValidFiles();
  files.erase(files.begin());
  EXPECT_THAT(ProblemsOf(files), HasSubstr("manifest.textproto: missing"));
}

TEST(BundleTest, ManifestSyntaxErrorNamesTheLine) {
  EXPECT_THAT(ProblemsOf(ValidFiles(Replace(kManifest, "require_revert: true",
                                            "require_revert: maybe"))),
              HasSubstr("manifest.textproto:5:"));
  EXPECT_THAT(
      ProblemsOf(ValidFiles(Replace(kManifest, "dialects: DIALECT_SQLITE",
                                    "dialects: DIALECT_ORACLE"))),
      HasSubstr("manifest.textproto:3:"));
}

TEST(BundleTest, MissingFileNamesTheManifestLine) {
  const std::string problems = ProblemsOf(
      ValidFiles(Replace(kManifest, "sqlite/create.sql", "sqlite/nope.sql")));
  EXPECT_THAT(problems, HasSubstr("manifest.textproto:11:"));
  EXPECT_THAT(problems, HasSubstr("\"sqlite/nope.sql\" is not in the bundle"));
}

TEST(BundleTest, EveryProblemIsReportedAtOnce) {
  std::string manifest = Replace(kManifest, "name: \"create\"", "name: \"\"");
  manifest = Replace(manifest, "kind: STEP_KIND_VERSIONED", "");
  manifest = Replace(manifest, "postgresql: \"postgresql/create.sql\"", "");
  const std::string problems = ProblemsOf(ValidFiles(manifest));
  EXPECT_THAT(problems, HasSubstr("no SQL file for postgresql"));
  EXPECT_THAT(problems, HasSubstr("name required"));
  EXPECT_THAT(problems, HasSubstr("kind required"));
  EXPECT_THAT(problems, HasSubstr("3 problems"));
}

TEST(BundleTest, RevertRequiredForVersionedSteps) {
  EXPECT_THAT(ProblemsOf(ValidFiles(Replace(
                  kManifest, "postgresql: \"postgresql/drop.sql\"", ""))),
              HasSubstr("no revert script for postgresql (the manifest sets "
                        "require_revert)"));
}

TEST(BundleTest, DialectWithoutSql) {
  EXPECT_THAT(ProblemsOf(ValidFiles(Replace(
                  kManifest, "postgresql: \"postgresql/create.sql\"", ""))),
              HasSubstr("no SQL file for postgresql"));
  EXPECT_THAT(ProblemsOf(ValidFiles(
                  Replace(kManifest, "postgresql: \"SELECT :Key\"", ""))),
              HasSubstr("operation \"GetThing\": no SQL for postgresql"));
}

TEST(BundleTest, DetectNeedsAQueryForEveryDialect) {
  const std::string verify = "    verify {\n";
  // A step without detect is valid (the base manifest has none).
  ASSERT_TRUE(Bundle::FromFiles(ValidFiles()).ok());
  const std::string both = Replace(
      kManifest, verify,
      "    detect { sqlite: \"SELECT 't', 1\" postgresql: \"SELECT 't', 1\" "
      "}\n" +
          verify);
  auto bundle = Bundle::FromFiles(ValidFiles(both));
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_TRUE(bundle->manifest().phases(0).steps(0).has_detect());

  const std::string problems = ProblemsOf(ValidFiles(
      Replace(kManifest, verify,
              "    detect { sqlite: \"SELECT 't', 1\" postgresql: \"  \" }\n" +
                  verify)));
  EXPECT_THAT(problems, HasSubstr("manifest.textproto:13:"));
  EXPECT_THAT(problems, HasSubstr("phase \"one\", step \"create\": detect "
                                  "has no query for postgresql"));
  EXPECT_THAT(problems, HasSubstr("1 problem"));
}

TEST(BundleTest, ParameterDefaultsMustParseAsTheirType) {
  const std::string key = "parameters { name: \"Key\" type: \"text\" }";
  auto with = [&](const std::string& parameter) {
    return ValidFiles(Replace(kManifest, key, key + "\n  " + parameter));
  };
  EXPECT_TRUE(Bundle::FromFiles(with("parameters { name: \"N\" type: \"int\" "
                                     "default_value: \"1000\" }"))
                  .ok());
  EXPECT_TRUE(Bundle::FromFiles(with("parameters { name: \"B\" type: \"bool\" "
                                     "default_value: \"false\" }"))
                  .ok());
  EXPECT_TRUE(Bundle::FromFiles(with("parameters { name: \"T\" type: \"text\" "
                                     "default_value: \"\" }"))
                  .ok());
  const std::string problems = ProblemsOf(with(
      "parameters { name: \"N\" type: \"int\" default_value: \"many\" }\n"
      "  parameters { name: \"B\" type: \"bool\" default_value: \"2\" }\n"
      "  parameters { name: \"D\" type: \"decimal\" default_value: \"1.5x\" "
      "}"));
  EXPECT_THAT(problems, HasSubstr("manifest.textproto:22:"));
  EXPECT_THAT(problems, HasSubstr("manifest.textproto:24:"));
  EXPECT_THAT(problems,
              HasSubstr("operation \"GetThing\": parameter \"N\" has "
                        "default_value \"many\" that is not of type int"));
  EXPECT_THAT(problems, HasSubstr("parameter \"B\" has default_value \"2\""));
  EXPECT_THAT(problems, HasSubstr("parameter \"D\" has default_value"));
  EXPECT_THAT(problems, HasSubstr("3 problems"));
}

TEST(BundleTest, DuplicateNames) {
  const std::string step = R"manifest(steps {
    name: "create"
    kind: STEP_KIND_REPEATABLE
    sql { sqlite: "sqlite/create.sql" postgresql: "postgresql/create.sql" }
  }
)manifest";
  // Inserted before the phase's closing brace: a second step of the same name.
  EXPECT_THAT(ProblemsOf(ValidFiles(
                  Replace(kManifest, "}\noperations", step + "}\noperations"))),
              HasSubstr("step \"create\" is declared twice"));
}

TEST(BundleTest, UnsafePathsAreRefused) {
  for (const std::string path :
       {"../etc/passwd", "/etc/passwd", "a/../../b.sql", "a\\b.sql", "a//b.sql",
        "a b.sql"}) {
    auto files = ValidFiles();
    files.push_back(File(path, "x"));
    EXPECT_THAT(ProblemsOf(files), HasSubstr(path)) << path;
  }
  EXPECT_THAT(ProblemsOf(ValidFiles(
                  Replace(kManifest, "sqlite/create.sql", "../create.sql"))),
              HasSubstr("'..' in path"));
}

TEST(BundleTest, OversizeAndEmptyFiles) {
  auto files = ValidFiles();
  files.push_back(File("big.sql", std::string(kMaxFileBytes + 1, 'x')));
  EXPECT_THAT(ProblemsOf(files), HasSubstr("big.sql: file is"));
  files = ValidFiles();
  files[1].set_content("  \n");
  EXPECT_THAT(ProblemsOf(files), HasSubstr("sqlite/create.sql: empty file"));
}

TEST(BundleTest, SymlinksAreRefused) {
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/symlinked");
  ASSERT_TRUE(Bundle::FromFiles(ValidFiles())->WriteTo(dir).ok());
  std::filesystem::create_symlink("/etc/passwd", dir + "/sqlite/evil.sql");
  auto bundle = Bundle::LoadDirectory(dir);
  EXPECT_EQ(bundle.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bundle.status().message(),
              HasSubstr("sqlite/evil.sql: symbolic links"));
}

}  // namespace
}  // namespace ecliptix::bundle
