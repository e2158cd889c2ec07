#include "client/ctl_bundle.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/ctl_format.h"
#include "common/bundle/bundle.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace ecliptix::client::ctl {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using Kind = FlagSpec::Kind;

int CountSteps(const v1::BundleManifest& manifest) {
  int steps = 0;
  for (const v1::Phase& phase : manifest.phases()) steps += phase.steps_size();
  return steps;
}

std::string Dialects(const v1::BundleManifest& manifest) {
  std::vector<std::string> names;
  for (int dialect : manifest.dialects()) {
    names.push_back(bundle::DialectName(static_cast<v1::Dialect>(dialect)));
  }
  return absl::StrJoin(names, ",");
}

std::string ShortId(const std::string& id) { return id.substr(0, 19); }

std::string Bytes(int64_t bytes) {
  if (bytes < 10 * 1024) return absl::StrCat(bytes, " B");
  if (bytes < 10 * 1024 * 1024) return absl::StrCat(bytes / 1024, " KiB");
  return absl::StrCat(bytes / (1024 * 1024), " MiB");
}

// Loads and validates a directory; on problems prints each on its own line and
// fails.
absl::StatusOr<bundle::Bundle> LoadChecked(const std::string& directory,
                                           CommandRuntime& runtime) {
  absl::StatusOr<bundle::Bundle> loaded =
      bundle::Bundle::LoadDirectory(directory);
  if (loaded.ok() ||
      loaded.status().code() != absl::StatusCode::kInvalidArgument)
    return loaded;
  // Every problem on its own line, then a one-line error.
  runtime.err() << loaded.status().message() << "\n";
  return absl::InvalidArgumentError(
      absl::StrCat(directory, " is not a valid bundle"));
}

}  // namespace

absl::Status BundleValidate(const Invocation& invocation,
                            CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(bundle::Bundle loaded,
                   LoadChecked(invocation.args[0], runtime));
  const v1::BundleManifest& manifest = loaded.manifest();
  runtime.out() << "bundle " << manifest.name() << "@" << manifest.version()
                << " is valid: " << manifest.phases_size() << " phases, "
                << CountSteps(manifest) << " steps, "
                << manifest.operations_size() << " operations, "
                << loaded.files().size() << " files, "
                << Bytes(loaded.size_bytes()) << "\n"
                << "dialects: " << Dialects(manifest) << "\n"
                << "id: " << loaded.id() << "\n";
  return absl::OkStatus();
}

absl::Status BundlePush(const Invocation& invocation, CommandRuntime& runtime) {
  // Validated here first: the same checks as the server's, with every problem
  // listed.
  ASSIGN_OR_RETURN(bundle::Bundle loaded,
                   LoadChecked(invocation.args[0], runtime));
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  ASSIGN_OR_RETURN(v1::BundleInfo info, client->UploadBundle(loaded.files()));
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(info));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  runtime.out() << "pushed " << info.name() << "@" << info.version() << "\n"
                << "id: " << info.bundle_id() << "\n";
  return absl::OkStatus();
}

absl::Status BundleList(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::ListBundlesRequest request;
  request.set_name(invocation.Flag("name"));
  v1::ListBundlesResponse all;
  while (true) {
    ASSIGN_OR_RETURN(v1::ListBundlesResponse page,
                     client->ListBundles(request));
    for (v1::BundleInfo& info : *page.mutable_bundles())
      *all.add_bundles() = std::move(info);
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(all));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  if (all.bundles().empty()) {
    runtime.err() << "No bundles found.\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "VERSION", "ID",
                                                 "PHASES", "STEPS", "FILES",
                                                 "SIZE", "UPLOADED"}};
  for (const v1::BundleInfo& info : all.bundles()) {
    rows.push_back(
        {info.name(), info.version(), ShortId(info.bundle_id()),
         absl::StrCat(info.manifest().phases_size()),
         absl::StrCat(CountSteps(info.manifest())),
         absl::StrCat(info.file_count()), Bytes(info.size_bytes()),
         RelativeTime(FromProtoTimestamp(info.upload_time()), runtime.Now())});
  }
  runtime.out() << AlignedTable(rows);
  return absl::OkStatus();
}

absl::Status BundleShow(const Invocation& invocation, CommandRuntime& runtime) {
  ASSIGN_OR_RETURN(FleetClient * client, runtime.Client());
  v1::GetBundleRequest request;
  const std::string& reference = invocation.args[0];
  if (reference.find('@') != std::string::npos) {
    request.set_name_version(reference);
  } else {
    request.set_bundle_id(reference);
  }
  ASSIGN_OR_RETURN(v1::GetBundleResponse response, client->GetBundle(request));
  const v1::BundleInfo& info = response.info();
  if (invocation.output == OutputFormat::kJson) {
    ASSIGN_OR_RETURN(std::string json, MessageJson(info));
    runtime.out() << json << "\n";
    return absl::OkStatus();
  }
  const v1::BundleManifest& manifest = info.manifest();
  std::ostream& out = runtime.out();
  out << "Bundle:       " << info.name() << "@" << info.version() << "\n"
      << "ID:           " << info.bundle_id() << "\n";
  if (!manifest.description().empty())
    out << "Description:  " << manifest.description() << "\n";
  out << "Dialects:     " << Dialects(manifest) << "\n"
      << "Files:        " << info.file_count() << " ("
      << Bytes(info.size_bytes()) << ")\n"
      << "Uploaded:     " << TimestampText(info.upload_time()) << "\n"
      << "Revert:       "
      << (manifest.require_revert() ? "required for versioned steps"
                                    : "optional")
      << "\n\nPhases:\n";
  int number = 0;
  for (const v1::Phase& phase : manifest.phases()) {
    out << "  " << ++number << ". " << phase.name();
    if (!phase.description().empty()) out << " - " << phase.description();
    out << "\n";
    for (const v1::Step& step : phase.steps()) {
      std::vector<std::string> traits = {
          step.kind() == v1::STEP_KIND_REPEATABLE ? "repeatable" : "versioned"};
      if (step.has_transactional() && !step.transactional())
        traits.push_back("non-transactional");
      if (step.has_revert()) traits.push_back("revert");
      if (step.has_verify()) traits.push_back("verify");
      out << "     - " << step.name() << " (" << absl::StrJoin(traits, ", ")
          << ")";
      if (!step.description().empty()) out << ": " << step.description();
      out << "\n";
    }
  }
  if (!manifest.operations().empty()) {
    out << "\nOperations:\n";
    for (const v1::Operation& operation : manifest.operations()) {
      std::vector<std::string> parameters;
      for (const v1::OperationParameter& parameter : operation.parameters()) {
        parameters.push_back(
            absl::StrCat(parameter.name(), " ", parameter.type()));
      }
      out << "  " << operation.name() << "(" << absl::StrJoin(parameters, ", ")
          << ")";
      if (!operation.description().empty())
        out << " - " << operation.description();
      out << "\n";
    }
  }
  return absl::OkStatus();
}

NounSpec BundleNoun() {
  return {
      "bundle",
      "Bundles: versioned, content-addressed packages of SQL (a directory with "
      "manifest.textproto).",
      {
          {"validate",
           {"DIR"},
           "Check a bundle directory without a server",
           "Lists every problem as file:line: message and exits 1, or prints "
           "the "
           "bundle's summary and id.\n",
           {},
           BundleValidate},
          {"push",
           {"DIR"},
           "Validate a bundle directory and upload it",
           "Pushing the same content again is harmless; the same name@version "
           "with "
           "other content is refused (ALREADY_EXISTS): bundles are "
           "immutable.\n",
           {},
           BundlePush},
          {"list",
           {},
           "List stored bundles, newest first",
           "",
           {{"name", Kind::kString, "NAME", "only bundles of this name"}},
           BundleList},
          {"show",
           {"BUNDLE"},
           "Show a stored bundle: phases, steps, operations",
           "BUNDLE is name@version, the id (sha256:...), or a unique prefix of "
           "at "
           "least 12 hex digits.\n",
           {},
           BundleShow},
      }};
}

}  // namespace ecliptix::client::ctl
