// Bundles in memory: loading from a directory or from uploaded files,
// validation that reports every problem with its file and line, the content
// address (SHA-256), and lookups the executor needs. A Bundle that exists has
// passed validation.
#ifndef ECLIPTIX_COMMON_BUNDLE_BUNDLE_H_
#define ECLIPTIX_COMMON_BUNDLE_BUNDLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecliptix/fleet/v1/bundle.pb.h"
#include "ecliptix/fleet/v1/types.pb.h"

namespace ecliptix::bundle {

inline constexpr char kManifestFile[] = "manifest.textproto";
// Limits that keep a bundle something a person can review and an agent can hold
// in memory.
inline constexpr int64_t kMaxFileBytes = 4 << 20;
inline constexpr int kMaxFiles = 1000;

// One validation problem. `line` is 1-based; 0 when the problem has no line.
struct Problem {
  std::string file;
  int line = 0;
  std::string message;
};

// "file:line: message" lines, one per problem.
std::string FormatProblems(const std::vector<Problem>& problems);

// "sha256:" + 64 lowercase hex digits.
std::string Sha256Id(absl::string_view data);

// The dialect of an engine's SQL.
fleet::v1::Dialect DialectForEngine(fleet::v1::Engine engine);
// "sqlite", "postgresql", "mssql".
std::string DialectName(fleet::v1::Dialect dialect);

// The entry of `files` / `sql` for a dialect; empty when none.
const std::string& PathFor(const fleet::v1::DialectFiles& files,
                           fleet::v1::Dialect dialect);
const std::string& SqlFor(const fleet::v1::DialectSql& sql,
                          fleet::v1::Dialect dialect);

class Bundle {
 public:
  // Reads every regular file under `directory` (symbolic links and special
  // files are refused). INVALID_ARGUMENT lists every problem, one "file:line:
  // message" per line.
  static absl::StatusOr<Bundle> LoadDirectory(const std::string& directory);
  // From uploaded files, with the same validation.
  static absl::StatusOr<Bundle> FromFiles(
      std::vector<fleet::v1::BundleFile> files);
  // Every problem of a set of files (empty when the bundle is valid).
  static std::vector<Problem> Validate(
      const std::vector<fleet::v1::BundleFile>& files);

  // "sha256:..." over the files (sorted by path; each as path, NUL, decimal
  // size, NUL, bytes).
  const std::string& id() const { return id_; }
  const fleet::v1::BundleManifest& manifest() const { return manifest_; }
  // Sorted by path.
  const std::vector<fleet::v1::BundleFile>& files() const { return files_; }
  int64_t size_bytes() const { return size_bytes_; }

  // A file's content; NOT_FOUND when the bundle has no such file.
  absl::StatusOr<absl::string_view> File(absl::string_view path) const;
  // nullptr when absent.
  const fleet::v1::Phase* FindPhase(absl::string_view name) const;
  const fleet::v1::Operation* FindOperation(absl::string_view name) const;
  // "sha256:..." of the step's SQL file for the dialect: what the history table
  // records. FAILED_PRECONDITION when the step has no SQL for the dialect.
  absl::StatusOr<std::string> StepChecksum(const fleet::v1::Step& step,
                                           fleet::v1::Dialect dialect) const;
  // Writes the files under `directory` (created if missing).
  absl::Status WriteTo(const std::string& directory) const;

 private:
  Bundle() = default;
  std::string id_;
  fleet::v1::BundleManifest manifest_;
  std::vector<fleet::v1::BundleFile> files_;
  std::map<std::string, size_t, std::less<>> index_;
  int64_t size_bytes_ = 0;
};

}  // namespace ecliptix::bundle

#endif  // ECLIPTIX_COMMON_BUNDLE_BUNDLE_H_
