#include "client/ctl_args.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace ecliptix::client::ctl {
namespace {

using Kind = FlagSpec::Kind;

// The flags every command accepts, anywhere on the line.
const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", Kind::kString, "HOST:PORT",
       absl::StrCat("ecliptix-server to talk to (default: $", kServerEnvVar,
                    " or ", kDefaultServer, ")")},
      {"output", Kind::kString, "FORMAT", "table (default) or json"},
      {"timeout", Kind::kString, "DURATION",
       "deadline of each call, e.g. 10s or 500ms (default 10s)"},
      {"help", Kind::kBool, "", "show help"},
  };
  return *flags;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags,
                         absl::string_view name) {
  for (const FlagSpec& flag : flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// The kind of a command flag, from any verb that declares it (see
// CommandTable).
const FlagSpec* FindAnyCommandFlag(const CommandTable& table,
                                   absl::string_view name) {
  for (const NounSpec& noun : table) {
    for (const VerbSpec& verb : noun.verbs) {
      if (const FlagSpec* flag = FindFlag(verb.flags, name)) return flag;
    }
  }
  return nullptr;
}

const NounSpec* FindNoun(const CommandTable& table, absl::string_view name) {
  for (const NounSpec& noun : table) {
    if (noun.name == name) return &noun;
  }
  return nullptr;
}

const VerbSpec* FindVerb(const NounSpec& noun, absl::string_view name) {
  for (const VerbSpec& verb : noun.verbs) {
    if (verb.name == name) return &verb;
  }
  return nullptr;
}

std::string NounNames(const CommandTable& table) {
  return absl::StrJoin(table, ", ", [](std::string* out, const NounSpec& noun) {
    out->append(noun.name);
  });
}

std::string VerbNames(const NounSpec& noun) {
  return absl::StrJoin(
      noun.verbs, ", ",
      [](std::string* out, const VerbSpec& verb) { out->append(verb.name); });
}

std::string FullName(const NounSpec& noun, const VerbSpec& verb) {
  return verb.name.empty() ? noun.name
                           : absl::StrCat(noun.name, " ", verb.name);
}

std::string FlagUsage(const FlagSpec& flag) {
  if (flag.kind == Kind::kBool) return absl::StrCat("--", flag.name);
  return absl::StrCat("--", flag.name, "=", flag.value_name);
}

std::string FlagNames(const std::vector<FlagSpec>& flags) {
  return absl::StrJoin(flags, ", ", [](std::string* out, const FlagSpec& flag) {
    absl::StrAppend(out, "--", flag.name);
  });
}

// Two columns: left padded to the widest left cell.
std::string TwoColumns(
    const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  std::string text;
  for (const auto& [left, right] : rows) {
    absl::StrAppend(&text, "  ", left,
                    std::string(width - left.size() + 3, ' '), right, "\n");
  }
  return text;
}

std::string GlobalFlagsHelp() {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagSpec& flag : GlobalFlags()) {
    std::string left = FlagUsage(flag);
    if (flag.name == "output") left = "-o, " + left;
    if (flag.name == "help") left = "-h, " + left;
    rows.emplace_back(std::move(left), flag.help);
  }
  return TwoColumns(rows);
}

std::string Usage(const NounSpec& noun, const VerbSpec& verb) {
  std::string usage = absl::StrCat(kProgram, " ", FullName(noun, verb));
  for (const std::string& arg : verb.args) absl::StrAppend(&usage, " ", arg);
  if (!verb.flags.empty()) absl::StrAppend(&usage, " [flags]");
  return usage;
}

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// One flag as written on the command line, before the verb is known.
struct RawFlag {
  std::string name;     // normalized: "page_size"
  std::string spelled;  // as typed, for messages: "--page-size"
  std::optional<std::string> value;
};

absl::Status CheckValue(const FlagSpec& spec, const RawFlag& flag) {
  const std::string& value = *flag.value;
  switch (spec.kind) {
    case Kind::kString:
      return absl::OkStatus();
    case Kind::kCount: {
      int64_t number;
      if (!absl::SimpleAtoi(value, &number) || number < 0) {
        return UsageError(absl::StrCat("flag ", flag.spelled,
                                       " wants a whole number >= 0, got \"",
                                       value, "\""));
      }
      return absl::OkStatus();
    }
    case Kind::kBool: {
      bool unused;
      if (!absl::SimpleAtob(value, &unused)) {
        return UsageError(absl::StrCat("flag ", flag.spelled,
                                       " wants true or false, got \"", value,
                                       "\""));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

std::string HelpFor(const CommandTable& table,
                    const std::vector<std::string>& words,
                    absl::Status* error) {
  if (words.empty()) return UsageText(table);
  const NounSpec* noun = FindNoun(table, words[0]);
  if (noun == nullptr) {
    *error = UsageError(absl::StrCat("no help for unknown command \"", words[0],
                                     "\"; commands: ", NounNames(table)));
    return "";
  }
  if (words.size() == 1 || noun->standalone()) {
    return noun->standalone() ? VerbHelp(*noun, noun->verbs[0])
                              : NounHelp(*noun);
  }
  const VerbSpec* verb = FindVerb(*noun, words[1]);
  if (verb == nullptr) {
    *error = UsageError(absl::StrCat("no help for unknown verb \"", words[1],
                                     "\" of ", noun->name,
                                     "; verbs: ", VerbNames(*noun)));
    return "";
  }
  return VerbHelp(*noun, *verb);
}

}  // namespace

std::string Invocation::Flag(absl::string_view name,
                             absl::string_view default_value) const {
  auto it = flags.find(std::string(name));
  return it == flags.end() ? std::string(default_value) : it->second;
}

int64_t Invocation::CountFlag(absl::string_view name,
                              int64_t default_value) const {
  auto it = flags.find(std::string(name));
  int64_t value;
  if (it == flags.end() || !absl::SimpleAtoi(it->second, &value)) {
    return default_value;
  }
  return value;
}

bool Invocation::BoolFlag(absl::string_view name) const {
  auto it = flags.find(std::string(name));
  bool value = false;
  return it != flags.end() && absl::SimpleAtob(it->second, &value) && value;
}

std::string Invocation::CommandName() const {
  if (noun == nullptr || verb == nullptr) return "";
  return FullName(*noun, *verb);
}

absl::StatusOr<Invocation> ParseCommandLine(
    const CommandTable& table, const std::vector<std::string>& args,
    absl::string_view env_server) {
  // Pass 1: split words from flags. Flags may come anywhere, so a flag's kind
  // (does it take the next word?) comes from its name alone.
  std::vector<std::string> words;
  std::vector<RawFlag> raw_flags;
  bool only_words = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& token = args[i];
    if (only_words || token.size() < 2 || token[0] != '-') {
      words.push_back(token);
      continue;
    }
    if (token == "--") {
      only_words = true;
      continue;
    }
    RawFlag flag;
    if (token[1] == '-') {
      absl::string_view body = absl::string_view(token).substr(2);
      const size_t equals = body.find('=');
      flag.name = std::string(body.substr(0, equals));
      if (equals != absl::string_view::npos) {
        flag.value = std::string(body.substr(equals + 1));
      }
      flag.spelled = absl::StrCat("--", flag.name);
      absl::StrReplaceAll({{"-", "_"}}, &flag.name);
    } else {
      // Short forms: -o json, -o=json, -ojson, -h.
      const char letter = token[1];
      absl::string_view rest = absl::string_view(token).substr(2);
      if (letter == 'o') {
        flag.name = "output";
      } else if (letter == 'h' && rest.empty()) {
        flag.name = "help";
      } else {
        return UsageError(
            absl::StrCat("unknown flag ", token,
                         "; short flags are -o (--output) and -h (--help)"));
      }
      flag.spelled = absl::StrCat("-", std::string(1, letter));
      if (!rest.empty()) {
        absl::ConsumePrefix(&rest, "=");
        flag.value = std::string(rest);
      }
    }
    if (flag.name.empty()) {
      return UsageError(absl::StrCat("malformed flag \"", token, "\""));
    }
    const FlagSpec* spec = FindFlag(GlobalFlags(), flag.name);
    if (spec == nullptr) spec = FindAnyCommandFlag(table, flag.name);
    // Unknown flags are reported once the verb is known, with its valid flags.
    if (spec != nullptr && spec->kind != Kind::kBool && !flag.value) {
      if (i + 1 >= args.size()) {
        return UsageError(absl::StrCat(
            "flag ", flag.spelled, " needs a value (", FlagUsage(*spec), ")"));
      }
      flag.value = args[++i];
    }
    raw_flags.push_back(std::move(flag));
  }

  Invocation invocation;
  bool help = false;
  for (const RawFlag& flag : raw_flags) {
    if (flag.name != "help") continue;
    const FlagSpec* spec = FindFlag(GlobalFlags(), "help");
    if (flag.value) {
      if (absl::Status status = CheckValue(*spec, flag); !status.ok()) {
        return status;
      }
      bool value = false;
      absl::SimpleAtob(*flag.value, &value);
      help = value;
    } else {
      help = true;
    }
  }

  // Pass 2: the command.
  if (words.empty()) {
    if (help) {
      invocation.help = UsageText(table);
      return invocation;
    }
    return UsageError(
        absl::StrCat("no command given; commands: ", NounNames(table),
                     " (see '", kProgram, " help')"));
  }
  const NounSpec* noun = FindNoun(table, words[0]);
  if (noun == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", words[0],
                                   "\"; commands: ", NounNames(table),
                                   " (see '", kProgram, " help')"));
  }
  if (noun->name == "help") {
    absl::Status error;
    std::string text =
        HelpFor(table, std::vector<std::string>(words.begin() + 1, words.end()),
                &error);
    if (!error.ok()) return error;
    invocation.help = std::move(text);
    return invocation;
  }
  const VerbSpec* verb;
  size_t first_arg;
  if (noun->standalone()) {
    verb = &noun->verbs[0];
    first_arg = 1;
  } else {
    if (words.size() < 2) {
      if (help) {
        invocation.help = NounHelp(*noun);
        return invocation;
      }
      return UsageError(
          absl::StrCat("\"", noun->name, "\" needs a verb: ", VerbNames(*noun),
                       " (see '", kProgram, " ", noun->name, " --help')"));
    }
    verb = FindVerb(*noun, words[1]);
    if (verb == nullptr) {
      return UsageError(absl::StrCat("unknown verb \"", words[1], "\" for \"",
                                     noun->name,
                                     "\"; verbs: ", VerbNames(*noun), " (see '",
                                     kProgram, " ", noun->name, " --help')"));
    }
    first_arg = 2;
  }
  if (help) {
    invocation.help = VerbHelp(*noun, *verb);
    return invocation;
  }
  invocation.noun = noun;
  invocation.verb = verb;
  invocation.args.assign(words.begin() + first_arg, words.end());
  const std::string command = FullName(*noun, *verb);

  // Flags, now that the verb is known.
  std::string server(env_server);
  if (server.empty()) server = kDefaultServer;
  for (const RawFlag& flag : raw_flags) {
    if (flag.name == "help") continue;
    if (flag.name == "server") {
      if (flag.value->empty()) {
        return UsageError("flag --server is empty: use --server=HOST:PORT");
      }
      server = *flag.value;
    } else if (flag.name == "output") {
      const std::string format = absl::AsciiStrToLower(*flag.value);
      if (format == "table") {
        invocation.output = OutputFormat::kTable;
      } else if (format == "json") {
        invocation.output = OutputFormat::kJson;
      } else {
        return UsageError(absl::StrCat("unknown output format \"", *flag.value,
                                       "\"; use table or json"));
      }
    } else if (flag.name == "timeout") {
      absl::Duration timeout;
      if (!absl::ParseDuration(*flag.value, &timeout) ||
          timeout <= absl::ZeroDuration()) {
        return UsageError(absl::StrCat(
            "flag --timeout wants a positive duration such as 10s or 500ms, "
            "got \"",
            *flag.value, "\""));
      }
      invocation.timeout = timeout;
    } else if (const FlagSpec* spec = FindFlag(verb->flags, flag.name)) {
      RawFlag checked = flag;
      if (!checked.value) checked.value = "true";  // a bool flag given bare
      if (absl::Status status = CheckValue(*spec, checked); !status.ok()) {
        return status;
      }
      std::string& value = invocation.flags[spec->name];
      if (spec->repeated && !value.empty()) {
        absl::StrAppend(&value, ",", *checked.value);
      } else {
        value = *checked.value;
      }
    } else {
      return UsageError(absl::StrCat(
          "unknown flag ", flag.spelled, " for \"", command, "\"; ",
          verb->flags.empty()
              ? std::string("it takes none")
              : absl::StrCat("its flags: ", FlagNames(verb->flags)),
          "; global flags: --server, --output (-o), --timeout, --help (-h)"));
    }
  }
  invocation.server = std::move(server);

  if (invocation.args.size() < verb->args.size()) {
    return UsageError(
        absl::StrCat("\"", command, "\" needs ",
                     absl::StrJoin(verb->args.begin() + invocation.args.size(),
                                   verb->args.end(), " "),
                     " (usage: ", Usage(*noun, *verb), ")"));
  }
  if (invocation.args.size() > verb->args.size()) {
    return UsageError(absl::StrCat(
        "unexpected argument \"", invocation.args[verb->args.size()],
        "\" for \"", command, "\" (usage: ", Usage(*noun, *verb), ")"));
  }
  return invocation;
}

std::string UsageText(const CommandTable& table) {
  std::vector<std::pair<std::string, std::string>> commands;
  for (const NounSpec& noun : table) {
    for (const VerbSpec& verb : noun.verbs) {
      std::string left = FullName(noun, verb);
      for (const std::string& arg : verb.args) absl::StrAppend(&left, " ", arg);
      commands.emplace_back(std::move(left), verb.summary);
    }
  }
  return absl::StrCat(
      kProgram,
      " controls a fleet of Ecliptix databases through ecliptix-server.\n\n"
      "Usage:\n  ",
      kProgram,
      " [--server=HOST:PORT] [-o table|json] <noun> <verb> [args] [flags]\n\n"
      "Commands:\n",
      TwoColumns(commands),
      "\nGlobal flags (before or after the command; --name=value or --name "
      "value):\n",
      GlobalFlagsHelp(), "\nRun '", kProgram, " <noun> --help' or '", kProgram,
      " <noun> <verb> --help' for more.\n");
}

std::string NounHelp(const NounSpec& noun) {
  std::vector<std::pair<std::string, std::string>> verbs;
  for (const VerbSpec& verb : noun.verbs) {
    std::string left = FullName(noun, verb);
    for (const std::string& arg : verb.args) absl::StrAppend(&left, " ", arg);
    verbs.emplace_back(std::move(left), verb.summary);
  }
  return absl::StrCat(noun.summary, "\n\nCommands:\n", TwoColumns(verbs),
                      "\nRun '", kProgram, " ", noun.name,
                      " <verb> --help' for a command's flags.\n");
}

std::string VerbHelp(const NounSpec& noun, const VerbSpec& verb) {
  std::string text =
      absl::StrCat("Usage: ", Usage(noun, verb), "\n\n", verb.summary, "\n");
  if (!verb.description.empty()) absl::StrAppend(&text, "\n", verb.description);
  if (!text.empty() && text.back() != '\n') text += '\n';
  if (!verb.flags.empty()) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const FlagSpec& flag : verb.flags) {
      rows.emplace_back(
          FlagUsage(flag),
          flag.repeated ? absl::StrCat(flag.help, " (repeatable)") : flag.help);
    }
    absl::StrAppend(&text, "\nFlags:\n", TwoColumns(rows));
  }
  absl::StrAppend(&text, "\nGlobal flags:\n", GlobalFlagsHelp());
  return text;
}

}  // namespace ecliptix::client::ctl
