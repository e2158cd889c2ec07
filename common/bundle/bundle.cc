#include "common/bundle/bundle.h"

#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/bundle/manifest_rules.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace ecliptix::bundle {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace fs = std::filesystem;
using google::protobuf::TextFormat;

constexpr size_t kMaxPathLength = 255;
const std::set<std::string>& ParameterTypes() {
  static const auto* types =
      new std::set<std::string>{"text", "int", "bool", "decimal"};
  return *types;
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

bool IsValidName(absl::string_view name) {
  return !name.empty() && name.size() <= 128 &&
         absl::ascii_isalnum(name.front()) &&
         std::all_of(name.begin(), name.end(), IsNameChar);
}

bool IsValidParameterName(absl::string_view name) {
  if (name.empty() ||
      !(absl::ascii_isalpha(name.front()) || name.front() == '_'))
    return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

// Why a path is unsafe or unusable, or empty when it is fine.
std::string PathProblem(absl::string_view path) {
  if (path.empty()) return "empty file path";
  if (path.size() > kMaxPathLength)
    return absl::StrCat("path longer than ", kMaxPathLength);
  if (path.front() == '/')
    return "absolute path: paths are relative to the bundle's root";
  for (char c : path) {
    if (c == '\\') return "backslash in path: use '/'";
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' ||
          c == '/')) {
      return absl::StrCat(
          "character '", absl::CHexEscape(absl::string_view(&c, 1)),
          "' in path: use letters, digits, '.', '_', '-' and '/'");
    }
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) return "empty path segment ('//' or a trailing '/')";
    if (segment == "..")
      return "'..' in path: a bundle cannot reach outside itself";
    if (segment == ".") return "'.' segment in path";
  }
  return "";
}

class ProblemCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ProblemCollector(std::vector<Problem>* problems)
      : problems_(problems) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    // TextFormat's parser already reports 1-based lines here (its ParseInfoTree
    // is 0-based).
    problems_->push_back({kManifestFile, line, message});
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {}

 private:
  std::vector<Problem>* problems_;
};

// Line numbers of manifest fields, for problems that name the place in the
// manifest.
class Locator {
 public:
  explicit Locator(const TextFormat::ParseInfoTree* tree) : tree_(tree) {}
  // The line of `field` (of the message this locator covers); `index` for
  // repeated fields.
  int Line(const google::protobuf::Message& message, const char* field,
           int index = -1) const {
    if (tree_ == nullptr) return 0;
    const auto* descriptor = message.GetDescriptor()->FindFieldByName(field);
    if (descriptor == nullptr) return 0;
    const auto location =
        tree_->GetLocation(descriptor, descriptor->is_repeated() ? index : -1);
    return location.line >= 0 ? location.line + 1 : 0;
  }
  Locator Nested(const google::protobuf::Message& message, const char* field,
                 int index = -1) const {
    if (tree_ == nullptr) return Locator(nullptr);
    const auto* descriptor = message.GetDescriptor()->FindFieldByName(field);
    if (descriptor == nullptr) return Locator(nullptr);
    return Locator(tree_->GetTreeForNested(
        descriptor, descriptor->is_repeated() ? index : -1));
  }

 private:
  const TextFormat::ParseInfoTree* tree_;
};

class Validator {
 public:
  Validator(const std::map<std::string, const v1::BundleFile*>& files,
            std::vector<Problem>* problems)
      : files_(files), problems_(problems) {}

  void Check(const v1::BundleManifest& manifest, const Locator& at) {
    if (!IsValidName(manifest.name())) {
      Add(at.Line(manifest, "name"),
          "name: required; letters, digits, '.', '_', '-', starting with a "
          "letter or digit");
    }
    if (!IsValidName(manifest.version())) {
      Add(at.Line(manifest, "version"), "version: required, e.g. \"1.0.0\"");
    }
    if (manifest.dialects().empty()) {
      Add(0,
          "dialects: list at least one of DIALECT_SQLITE, DIALECT_POSTGRESQL, "
          "DIALECT_MSSQL");
    }
    std::set<int> seen_dialects;
    for (int i = 0; i < manifest.dialects_size(); ++i) {
      const int dialect = manifest.dialects(i);
      if (dialect == v1::DIALECT_UNSPECIFIED) {
        Add(at.Line(manifest, "dialects", i),
            "dialects: DIALECT_UNSPECIFIED is not a dialect");
      } else if (!seen_dialects.insert(dialect).second) {
        Add(at.Line(manifest, "dialects", i),
            absl::StrCat("dialects: ", v1::Dialect_Name(manifest.dialects(i)),
                         " listed twice"));
      } else {
        dialects_.push_back(manifest.dialects(i));
      }
    }
    if (manifest.default_step_timeout().seconds() < 0) {
      Add(at.Line(manifest, "default_step_timeout"),
          "default_step_timeout: must not be negative");
    }
    if (manifest.phases().empty())
      Add(0, "phases: a bundle needs at least one phase");
    std::set<std::string> phase_names;
    for (int p = 0; p < manifest.phases_size(); ++p) {
      const v1::Phase& phase = manifest.phases(p);
      const Locator phase_at = at.Nested(manifest, "phases", p);
      const int phase_line = at.Line(manifest, "phases", p);
      const std::string where = absl::StrCat("phase \"", phase.name(), "\"");
      if (!IsValidName(phase.name())) {
        Add(phase_line,
            absl::StrCat("phase ", p + 1,
                         ": name required (letters, digits, '.', '_', '-')"));
      } else if (!phase_names.insert(phase.name()).second) {
        Add(phase_line, absl::StrCat(where, " is declared twice"));
      }
      if (phase.steps().empty())
        Add(phase_line, absl::StrCat(where, " has no steps"));
      std::set<std::string> step_names;
      for (int s = 0; s < phase.steps_size(); ++s) {
        const v1::Step& step = phase.steps(s);
        const int step_line = phase_at.Line(phase, "steps", s);
        const Locator step_at = phase_at.Nested(phase, "steps", s);
        if (!IsValidName(step.name())) {
          Add(step_line,
              absl::StrCat(where, ", step ", s + 1,
                           ": name required (letters, digits, '.', '_', '-')"));
        } else if (!step_names.insert(step.name()).second) {
          Add(step_line, absl::StrCat(where, ": step \"", step.name(),
                                      "\" is declared twice"));
        }
        CheckStep(manifest, step,
                  absl::StrCat(where, ", step \"", step.name(), "\""),
                  step_line, step_at);
      }
    }
    std::set<std::string> operation_names;
    for (int o = 0; o < manifest.operations_size(); ++o) {
      const v1::Operation& operation = manifest.operations(o);
      const int line = at.Line(manifest, "operations", o);
      const std::string where =
          absl::StrCat("operation \"", operation.name(), "\"");
      if (!IsValidParameterName(operation.name())) {
        Add(line, absl::StrCat("operation ", o + 1,
                               ": name required (letters, digits and '_', not "
                               "starting with a digit)"));
      } else if (!operation_names.insert(operation.name()).second) {
        Add(line, absl::StrCat(where, " is declared twice"));
      }
      std::set<std::string> parameter_names;
      const Locator operation_at = at.Nested(manifest, "operations", o);
      for (int i = 0; i < operation.parameters_size(); ++i) {
        const v1::OperationParameter& parameter = operation.parameters(i);
        if (!IsValidParameterName(parameter.name())) {
          Add(line, absl::StrCat(where, ": parameter name \"", parameter.name(),
                                 "\" must be letters, digits and '_'"));
        } else if (!parameter_names.insert(parameter.name()).second) {
          Add(line, absl::StrCat(where, ": parameter \"", parameter.name(),
                                 "\" declared twice"));
        }
        if (ParameterTypes().count(parameter.type()) == 0) {
          Add(line, absl::StrCat(where, ": parameter \"", parameter.name(),
                                 "\" has type \"", parameter.type(),
                                 "\"; use text, int, bool or decimal"));
        } else if (parameter.has_default_value() &&
                   !HasType(parameter.default_value(), parameter.type())) {
          Add(operation_at.Line(operation, "parameters", i),
              absl::StrCat(where, ": parameter \"", parameter.name(),
                           "\" has default_value \"", parameter.default_value(),
                           "\" that is not of type ", parameter.type()));
        }
      }
      for (v1::Dialect dialect : dialects_) {
        if (absl::StripAsciiWhitespace(SqlFor(operation.sql(), dialect))
                .empty()) {
          Add(line, absl::StrCat(where, ": no SQL for ", DialectName(dialect)));
        }
      }
    }
    for (std::string& problem : DayTwoProblems(manifest))
      Add(0, std::move(problem));
  }

 private:
  void Add(int line, std::string message) {
    problems_->push_back({kManifestFile, line, std::move(message)});
  }

  // A referenced file must exist and hold SQL.
  void CheckFile(const std::string& path, const std::string& what, int line) {
    if (std::string problem = PathProblem(path); !problem.empty()) {
      Add(line, absl::StrCat(what, ": \"", path, "\": ", problem));
      return;
    }
    auto it = files_.find(path);
    if (it == files_.end()) {
      Add(line,
          absl::StrCat(what, ": file \"", path, "\" is not in the bundle"));
    } else if (absl::StripAsciiWhitespace(it->second->content()).empty()) {
      problems_->push_back({path, 0, absl::StrCat("empty file (", what, ")")});
    }
  }

  void CheckStep(const v1::BundleManifest& manifest, const v1::Step& step,
                 const std::string& where, int step_line, const Locator& at) {
    if (step.kind() == v1::STEP_KIND_UNSPECIFIED ||
        !v1::StepKind_IsValid(step.kind())) {
      Add(step_line, absl::StrCat(where,
                                  ": kind required (STEP_KIND_VERSIONED or "
                                  "STEP_KIND_REPEATABLE)"));
    }
    if (step.timeout().seconds() < 0 || step.timeout().nanos() < 0) {
      Add(at.Line(step, "timeout"),
          absl::StrCat(where, ": timeout must not be negative"));
    }
    const int sql_line = step.has_sql() ? at.Line(step, "sql") : step_line;
    const int revert_line =
        step.has_revert() ? at.Line(step, "revert") : step_line;
    const bool revert_required =
        manifest.require_revert() && step.kind() == v1::STEP_KIND_VERSIONED;
    for (v1::Dialect dialect : dialects_) {
      const std::string name = DialectName(dialect);
      const std::string& sql = PathFor(step.sql(), dialect);
      if (sql.empty()) {
        Add(sql_line, absl::StrCat(where, ": no SQL file for ", name));
      } else {
        CheckFile(sql, absl::StrCat(where, " sql.", name), sql_line);
      }
      const std::string& revert = PathFor(step.revert(), dialect);
      if (!revert.empty()) {
        CheckFile(revert, absl::StrCat(where, " revert.", name), revert_line);
      } else if (revert_required) {
        Add(revert_line, absl::StrCat(where, ": no revert script for ", name,
                                      " (the manifest sets require_revert)"));
      }
      if (step.has_verify()) {
        if (absl::StripAsciiWhitespace(SqlFor(step.verify().query(), dialect))
                .empty()) {
          Add(at.Line(step, "verify"),
              absl::StrCat(where, ": verify has no query for ", name));
        }
      }
      // Adoption runs the detect query of whatever engine the database is.
      if (step.has_detect() &&
          absl::StripAsciiWhitespace(SqlFor(step.detect(), dialect)).empty()) {
        Add(at.Line(step, "detect"),
            absl::StrCat(where, ": detect has no query for ", name));
      }
    }
  }

  const std::map<std::string, const v1::BundleFile*>& files_;
  std::vector<Problem>* problems_;
  std::vector<v1::Dialect> dialects_;
};

// Parses and validates; `manifest` is filled when the text parses.
std::vector<Problem> ValidateFiles(const std::vector<v1::BundleFile>& files,
                                   v1::BundleManifest* manifest) {
  std::vector<Problem> problems;
  if (files.size() > static_cast<size_t>(kMaxFiles)) {
    problems.push_back(
        {"", 0,
         absl::StrCat("the bundle has ", files.size(), " files; at most ",
                      kMaxFiles, " are allowed")});
  }
  std::map<std::string, const v1::BundleFile*> by_path;
  for (const v1::BundleFile& file : files) {
    if (std::string problem = PathProblem(file.path()); !problem.empty()) {
      problems.push_back({file.path(), 0, problem});
      continue;
    }
    if (static_cast<int64_t>(file.content().size()) > kMaxFileBytes) {
      problems.push_back(
          {file.path(), 0,
           absl::StrCat("file is ", file.content().size(), " bytes; at most ",
                        kMaxFileBytes, " are allowed")});
    }
    if (!by_path.emplace(file.path(), &file).second) {
      problems.push_back({file.path(), 0, "file appears twice"});
    }
  }
  auto manifest_file = by_path.find(kManifestFile);
  if (manifest_file == by_path.end()) {
    problems.push_back(
        {kManifestFile, 0, "missing: every bundle has a manifest.textproto"});
    return problems;
  }
  TextFormat::Parser parser;
  ProblemCollector collector(&problems);
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&collector);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(manifest_file->second->content(), manifest)) {
    return problems;  // The collector recorded where and why.
  }
  Validator(by_path, &problems).Check(*manifest, Locator(&tree));
  return problems;
}

absl::Status ProblemsToStatus(const std::vector<Problem>& problems) {
  return absl::InvalidArgumentError(
      absl::StrCat("the bundle has ", problems.size(),
                   problems.size() == 1 ? " problem" : " problems", ":\n",
                   FormatProblems(problems)));
}

}  // namespace

std::string FormatProblems(const std::vector<Problem>& problems) {
  std::vector<std::string> lines;
  for (const Problem& problem : problems) {
    std::string place = problem.file.empty() ? "bundle" : problem.file;
    if (problem.line > 0) absl::StrAppend(&place, ":", problem.line);
    lines.push_back(absl::StrCat(place, ": ", problem.message));
  }
  return absl::StrJoin(lines, "\n");
}

std::string Sha256Id(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  return absl::StrCat(
      "sha256:", absl::BytesToHexString(absl::string_view(
                     reinterpret_cast<const char*>(digest), sizeof(digest))));
}

v1::Dialect DialectForEngine(v1::Engine engine) {
  switch (engine) {
    case v1::ENGINE_SQLITE:
      return v1::DIALECT_SQLITE;
    case v1::ENGINE_POSTGRESQL:
      return v1::DIALECT_POSTGRESQL;
    case v1::ENGINE_MSSQL:
      return v1::DIALECT_MSSQL;
    default:
      return v1::DIALECT_UNSPECIFIED;
  }
}

std::string DialectName(v1::Dialect dialect) {
  switch (dialect) {
    case v1::DIALECT_SQLITE:
      return "sqlite";
    case v1::DIALECT_POSTGRESQL:
      return "postgresql";
    case v1::DIALECT_MSSQL:
      return "mssql";
    default:
      return "unspecified";
  }
}

const std::string& PathFor(const v1::DialectFiles& files, v1::Dialect dialect) {
  static const std::string* empty = new std::string();
  switch (dialect) {
    case v1::DIALECT_SQLITE:
      return files.sqlite();
    case v1::DIALECT_POSTGRESQL:
      return files.postgresql();
    case v1::DIALECT_MSSQL:
      return files.mssql();
    default:
      return *empty;
  }
}

const std::string& SqlFor(const v1::DialectSql& sql, v1::Dialect dialect) {
  static const std::string* empty = new std::string();
  switch (dialect) {
    case v1::DIALECT_SQLITE:
      return sql.sqlite();
    case v1::DIALECT_POSTGRESQL:
      return sql.postgresql();
    case v1::DIALECT_MSSQL:
      return sql.mssql();
    default:
      return *empty;
  }
}

std::vector<Problem> Bundle::Validate(
    const std::vector<v1::BundleFile>& files) {
  v1::BundleManifest manifest;
  return ValidateFiles(files, &manifest);
}

absl::StatusOr<Bundle> Bundle::FromFiles(std::vector<v1::BundleFile> files) {
  Bundle bundle;
  std::vector<Problem> problems = ValidateFiles(files, &bundle.manifest_);
  if (!problems.empty()) return ProblemsToStatus(problems);
  std::sort(files.begin(), files.end(),
            [](const v1::BundleFile& a, const v1::BundleFile& b) {
              return a.path() < b.path();
            });
  std::string canonical;
  for (size_t i = 0; i < files.size(); ++i) {
    const v1::BundleFile& file = files[i];
    absl::StrAppend(&canonical, file.path(), std::string(1, '\0'),
                    file.content().size(), std::string(1, '\0'),
                    file.content());
    bundle.size_bytes_ += static_cast<int64_t>(file.content().size());
    bundle.index_.emplace(file.path(), i);
  }
  bundle.id_ = Sha256Id(canonical);
  bundle.files_ = std::move(files);
  return bundle;
}

absl::StatusOr<Bundle> Bundle::LoadDirectory(const std::string& directory) {
  std::error_code error;
  const fs::path root = fs::path(directory);
  if (!fs::is_directory(root, error)) {
    return absl::NotFoundError(
        absl::StrCat("bundle directory ", directory, " does not exist"));
  }
  std::vector<v1::BundleFile> files;
  std::vector<Problem> problems;
  for (auto it = fs::recursive_directory_iterator(root, error);
       !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    // Lexical: fs::relative would follow a symbolic link to its target.
    const fs::path relative = it->path().lexically_relative(root);
    const std::string path = relative.generic_string();
    if (it->is_symlink()) {
      problems.push_back(
          {path, 0, "symbolic links are not allowed in a bundle"});
      continue;
    }
    if (it->is_directory()) continue;
    if (!it->is_regular_file()) {
      problems.push_back({path, 0, "not a regular file"});
      continue;
    }
    if (static_cast<int64_t>(it->file_size()) > kMaxFileBytes) {
      problems.push_back(
          {path, 0,
           absl::StrCat("file is ", it->file_size(), " bytes; at most ",
                        kMaxFileBytes, " are allowed")});
      continue;
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    v1::BundleFile& file = files.emplace_back();
    file.set_path(path);
    file.set_content(content.str());
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot read ", directory, ": ", error.message()));
  }
  if (!problems.empty()) return ProblemsToStatus(problems);
  return FromFiles(std::move(files));
}

absl::StatusOr<absl::string_view> Bundle::File(absl::string_view path) const {
  auto it = index_.find(path);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("bundle ", manifest_.name(), " has no file ", path));
  }
  return absl::string_view(files_[it->second].content());
}

const v1::Phase* Bundle::FindPhase(absl::string_view name) const {
  for (const v1::Phase& phase : manifest_.phases()) {
    if (phase.name() == name) return &phase;
  }
  return nullptr;
}

const v1::Operation* Bundle::FindOperation(absl::string_view name) const {
  for (const v1::Operation& operation : manifest_.operations()) {
    if (operation.name() == name) return &operation;
  }
  return nullptr;
}

absl::StatusOr<std::string> Bundle::StepChecksum(const v1::Step& step,
                                                 v1::Dialect dialect) const {
  const std::string& path = PathFor(step.sql(), dialect);
  if (path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "step ", step.name(), " has no SQL for ", DialectName(dialect)));
  }
  absl::StatusOr<absl::string_view> content = File(path);
  if (!content.ok()) return content.status();
  return Sha256Id(*content);
}

absl::Status Bundle::WriteTo(const std::string& directory) const {
  for (const v1::BundleFile& file : files_) {
    const fs::path path = fs::path(directory) / file.path();
    std::error_code error;
    fs::create_directories(path.parent_path(), error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot create ",
                                              path.parent_path().string(), ": ",
                                              error.message()));
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << file.content();
    if (!out)
      return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  }
  return absl::OkStatus();
}

}  // namespace ecliptix::bundle
