// ecliptixctl's command line: the table that describes every noun, verb and
// flag (with its help text), the parser that turns argv into an Invocation (a
// CLI11 app made from the table, with ecliptixctl's checks and messages), and
// the help texts made from the table. Knows nothing of gRPC, so it is tested
// without a server.
#ifndef ECLIPTIX_CLIENT_CTL_ARGS_H_
#define ECLIPTIX_CLIENT_CTL_ARGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecliptix::client::ctl {

inline constexpr char kProgram[] = "ecliptixctl";
inline constexpr char kDefaultServer[] = "127.0.0.1:7070";
inline constexpr char kServerEnvVar[] = "ECLIPTIX_SERVER";

enum class OutputFormat { kTable, kJson };

// The help of every --selector flag. Where --all is offered, it adds
// kSelectorOrAllHelp.
inline constexpr char kSelectorHelp[] =
    "label selector: k=v, k!=v, k in (a,b), k notin (a,b), k, !k; "
    "comma-separated, all must hold";
inline constexpr char kSelectorOrAllHelp[] =
    "label selector: k=v, k!=v, k in (a,b), k notin (a,b), k, !k; "
    "comma-separated, all must hold (required unless --all)";
// Reconnections in a row without an event before a watch gives up on a
// server that went away.
inline constexpr int kMaxWatchReconnects = 8;

// A flag of one verb. Global flags (--server, --output, --timeout, --help) are
// built in.
struct FlagSpec {
  enum class Kind {
    kString,
    kCount,  // a whole number >= 0
    kBool,   // takes no value ("--name" or "--name=true|false")
  };
  std::string name;  // snake_case, without dashes; "--page-size" is accepted
                     // for "page_size"
  Kind kind = Kind::kString;
  std::string value_name;  // shown in help, e.g. "SELECTOR"
  std::string help;
  // May be given several times: the values are joined with "," (so
  // "--gate=a --gate=b" reads as "--gate=a,b"). Otherwise the last one wins.
  bool repeated = false;
};

struct Invocation;
class CommandRuntime;  // ctl_commands.h: what a handler uses (output, client).
using Handler = std::function<absl::Status(const Invocation&, CommandRuntime&)>;

struct VerbSpec {
  // Empty for a noun that is a command by itself ("version").
  std::string name;
  // Required positional arguments, e.g. {"DATABASE_ID"}. A last one whose
  // name ends in "..." (e.g. "KEY=VALUE...") takes one or more words.
  std::vector<std::string> args;
  std::string summary;      // one line, for the command list
  std::string description;  // the rest, for "--help"
  std::vector<FlagSpec> flags;
  Handler run;
};

struct NounSpec {
  std::string name;
  std::string summary;
  std::vector<VerbSpec> verbs;

  bool standalone() const { return verbs.size() == 1 && verbs[0].name.empty(); }
};

// Adding a noun (bundle, rollout, job, ...) means adding an entry here; parser
// and help follow. A flag name must have the same kind in every verb that
// declares it: a command flag may come before its verb, where the parser must
// know whether "--name value" takes the next word before it knows the verb.
using CommandTable = std::vector<NounSpec>;

// What the command line asks for.
struct Invocation {
  // Set when the user asked for help: the text to print on stdout. Nothing else
  // is set then.
  std::optional<std::string> help;

  std::string server;
  OutputFormat output = OutputFormat::kTable;
  absl::Duration timeout = absl::Seconds(10);
  // --timeout was given (commands whose own deadline defaults otherwise, such
  // as `query run`, take it then).
  bool timeout_set = false;

  const NounSpec* noun = nullptr;
  const VerbSpec* verb = nullptr;
  std::vector<std::string> args;
  // The verb's flags that were given (already checked against their kind), by
  // name.
  std::map<std::string, std::string> flags;

  std::string Flag(absl::string_view name,
                   absl::string_view default_value = "") const;
  int64_t CountFlag(absl::string_view name, int64_t default_value) const;
  bool BoolFlag(absl::string_view name) const;
  // "fleet list", "version".
  std::string CommandName() const;
};

// Parses `args` (argv without the program name). `env_server` is
// $ECLIPTIX_SERVER ("" when unset);
// --server wins over it, and it wins over 127.0.0.1:7070. Usage errors are
// INVALID_ARGUMENT with a message of one line that names what is wrong and
// lists what would be valid.
absl::StatusOr<Invocation> ParseCommandLine(
    const CommandTable& table, const std::vector<std::string>& args,
    absl::string_view env_server);

// "ecliptixctl help" / "ecliptixctl --help".
std::string UsageText(const CommandTable& table);
// "ecliptixctl fleet --help".
std::string NounHelp(const NounSpec& noun);
// "ecliptixctl fleet list --help".
std::string VerbHelp(const NounSpec& noun, const VerbSpec& verb);

}  // namespace ecliptix::client::ctl

#endif  // ECLIPTIX_CLIENT_CTL_ARGS_H_
