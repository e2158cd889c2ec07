#include "client/ctl_args.h"

#include <algorithm>
#include <map>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

absl::Status UnknownShortFlag(absl::string_view token) {
  return UsageError(
      absl::StrCat("unknown flag ", token,
                   "; short flags are -o (--output) and -h (--help)"));
}

// One flag as written on the command line.
struct RawFlag {
  const FlagSpec* spec = nullptr;  // null for an unknown flag
  std::string spelled;             // as typed, for messages: "--page-size"
  std::string value;               // "true" for a bool flag given bare
};

// ecliptixctl's command line as a CLI11 app: a subcommand per noun and per
// verb, each verb with its flags, and the global flags on the root. Every
// command flag is on the root too, so that it may come before the verb, as
// global flags may come after it (subcommands fall through to the root). CLI11
// reads the words and flags; ParseCommandLine then checks them against the
// table, in the order and with the messages of ecliptixctl.
class CommandApp {
 public:
  explicit CommandApp(const CommandTable& table) {
    root_.set_help_flag();  // --help is an ordinary flag here; see HelpFor
    root_.allow_extras();   // unknown flags: reported once the verb is known
    root_.require_subcommand(0, 1);
    for (const FlagSpec& flag : GlobalFlags()) AddFlag(root_, flag);
    for (const NounSpec& noun : table) {
      for (const VerbSpec& verb : noun.verbs) {
        for (const FlagSpec& flag : verb.flags) {
          if (Spec("--" + flag.name) == nullptr) AddFlag(root_, flag);
        }
      }
    }
    AddWords(root_);
    for (const NounSpec& noun : table) {
      CLI::App* noun_app = root_.add_subcommand(noun.name);
      noun_app->fallthrough()->require_subcommand(0, 1);
      AddWords(*noun_app);
      if (noun.standalone()) {
        for (const FlagSpec& flag : noun.verbs[0].flags) {
          AddFlag(*noun_app, flag);
        }
        continue;
      }
      for (const VerbSpec& verb : noun.verbs) {
        CLI::App* verb_app = noun_app->add_subcommand(verb.name);
        verb_app->fallthrough();
        for (const FlagSpec& flag : verb.flags) AddFlag(*verb_app, flag);
        AddWords(*verb_app);
      }
    }
  }

  // The flag that a spelling names ("--page-size", "-o"), on the root.
  const FlagSpec* Spec(const std::string& spelled) const {
    auto it = flags_.find(root_.get_option_no_throw(spelled));
    return it == flags_.end() ? nullptr : it->second.first;
  }

  // Parses `args`, the command line before "--". A flag that is missing its
  // value ends the line, so what came before it is read when this fails.
  absl::Status Parse(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());  // what CLI11 wants
    try {
      root_.parse(args);
    } catch (const CLI::ArgumentMismatch& error) {
      return absl::OutOfRangeError(error.what());  // a value is missing
    } catch (const CLI::ParseError& error) {
      return UsageError(error.what());
    }
    return absl::OkStatus();
  }

  // The apps given on the command line, outermost first: the root, then the
  // noun and the verb when they were given.
  std::vector<const CLI::App*> Apps() const {
    std::vector<const CLI::App*> apps = {&root_};
    while (!apps.back()->get_subcommands().empty()) {
      apps.push_back(apps.back()->get_subcommands()[0]);
    }
    return apps;
  }

  // The words (not flags) that `app` took, in order.
  static std::vector<std::string> Words(const CLI::App* app) {
    return app->get_option("words")->results();
  }

  // The known flags that `app` took, in order.
  std::vector<RawFlag> Flags(const CLI::App* app) const {
    std::vector<RawFlag> flags;
    std::map<const CLI::Option*, size_t> taken;
    for (const CLI::Option* option : app->parse_order()) {
      auto it = flags_.find(option);
      if (it == flags_.end()) continue;  // words
      RawFlag flag{it->second.first, it->second.second,
                   option->results()[taken[option]++]};
      // CLI11 keeps the "=" of "-o=json".
      if (flag.spelled == "-o") {
        flag.value = std::string(absl::StripPrefix(flag.value, "="));
      }
      flags.push_back(std::move(flag));
    }
    return flags;
  }

  // Flags CLI11 did not know, in order: they all fall through to the root.
  std::vector<std::string> Unknown() const { return root_.remaining(); }

 private:
  // "--page_size" is also "--page-size"; --output is also -o, --help -h. Each
  // spelling is an option of its own, so that messages name the one typed.
  void AddFlag(CLI::App& app, const FlagSpec& flag) {
    std::vector<std::string> spellings = {"--" + flag.name};
    const std::string dashed = absl::StrReplaceAll(flag.name, {{"_", "-"}});
    if (dashed != flag.name) spellings.push_back("--" + dashed);
    if (flag.name == "output") spellings.push_back("-o");
    if (flag.name == "help") spellings.push_back("-h");
    for (const std::string& spelled : spellings) {
      CLI::Option* option = flag.kind == Kind::kBool ? app.add_flag(spelled)
                                                     : app.add_option(spelled);
      option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      flags_[option] = {&flag, spelled};
    }
  }

  // Every word, as typed: no limit (checked against the verb's arguments
  // later), and no CLI11 list syntax ("[a,b]").
  static void AddWords(CLI::App& app) {
    app.add_option("words")->expected(1 << 28)->multi_option_policy(
        CLI::MultiOptionPolicy::TakeAll);
  }

  CLI::App root_{"", kProgram};
  std::map<const CLI::Option*, std::pair<const FlagSpec*, std::string>> flags_;
};

absl::Status CheckValue(const FlagSpec& spec, const RawFlag& flag) {
  const std::string& value = flag.value;
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
  CommandApp app(table);
  // After "--" everything is a word, even what looks like a flag.
  const auto dashes = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> line;
  for (auto it = args.begin(); it != dashes; ++it) {
    const std::string& token = *it;
    if (token.size() > 2 && token[0] == '-' && token[1] == 'h') {
      return UnknownShortFlag(token);  // CLI11 would read "-hx" as "-h -x"
    }
    // CLI11 reads "--name=" as "--name", which takes the next word.
    if (absl::StartsWith(token, "--") && absl::EndsWith(token, "=")) {
      std::string name = token.substr(0, token.size() - 1);
      if (const FlagSpec* spec = app.Spec(name)) {
        if (spec->kind == Kind::kBool) {
          return CheckValue(*spec, {spec, std::move(name), ""});
        }
        line.push_back(std::move(name));
        line.emplace_back();
        continue;
      }
    }
    line.push_back(token);
  }
  const absl::Status parsed = app.Parse(line);
  if (!parsed.ok() && !absl::IsOutOfRange(parsed)) return parsed;

  // Pass 1: the words, the flags, and the flags no command knows (first, so
  // that they are reported before the others).
  std::vector<std::string> words;
  std::vector<std::string> unknown = app.Unknown();
  std::vector<RawFlag> raw_flags;
  const std::vector<const CLI::App*> apps = app.Apps();
  for (const CLI::App* given : apps) {
    if (given != apps.front()) words.push_back(given->get_name());
    for (std::string& word : CommandApp::Words(given)) {
      // "-1", "---x": not flags to CLI11, but ecliptixctl has always said so.
      if (word.size() > 1 && word[0] == '-') {
        unknown.push_back(std::move(word));
      } else {
        words.push_back(std::move(word));
      }
    }
  }
  if (dashes != args.end()) words.insert(words.end(), dashes + 1, args.end());
  for (const std::string& token : unknown) {
    if (token[1] != '-') return UnknownShortFlag(token);
    RawFlag flag;
    flag.spelled = token.substr(0, token.find('='));
    if (flag.spelled.size() == 2) {
      return UsageError(absl::StrCat("malformed flag \"", token, "\""));
    }
    raw_flags.push_back(std::move(flag));
  }
  for (const CLI::App* given : apps) {
    std::vector<RawFlag> flags = app.Flags(given);
    raw_flags.insert(raw_flags.end(), flags.begin(), flags.end());
  }
  if (!parsed.ok()) {
    // Only the last word can be a flag that is missing its value.
    const FlagSpec* spec = app.Spec(line.back());
    if (spec == nullptr) return UsageError(parsed.message());
    return UsageError(absl::StrCat("flag ", line.back(), " needs a value (",
                                   FlagUsage(*spec), ")"));
  }

  Invocation invocation;
  bool help = false;
  for (const RawFlag& flag : raw_flags) {
    if (flag.spec == nullptr || flag.spec->name != "help") continue;
    if (absl::Status status = CheckValue(*flag.spec, flag); !status.ok()) {
      return status;
    }
    absl::SimpleAtob(flag.value, &help);
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
    const std::string name = flag.spec ? flag.spec->name : "";
    if (name == "help") continue;
    if (name == "server") {
      if (flag.value.empty()) {
        return UsageError("flag --server is empty: use --server=HOST:PORT");
      }
      server = flag.value;
    } else if (name == "output") {
      const std::string format = absl::AsciiStrToLower(flag.value);
      if (format == "table") {
        invocation.output = OutputFormat::kTable;
      } else if (format == "json") {
        invocation.output = OutputFormat::kJson;
      } else {
        return UsageError(absl::StrCat("unknown output format \"", flag.value,
                                       "\"; use table or json"));
      }
    } else if (name == "timeout") {
      absl::Duration timeout;
      if (!absl::ParseDuration(flag.value, &timeout) ||
          timeout <= absl::ZeroDuration()) {
        return UsageError(absl::StrCat(
            "flag --timeout wants a positive duration such as 10s or 500ms, "
            "got \"",
            flag.value, "\""));
      }
      invocation.timeout = timeout;
      invocation.timeout_set = true;
    } else if (const FlagSpec* spec = FindFlag(verb->flags, name)) {
      if (absl::Status status = CheckValue(*spec, flag); !status.ok()) {
        return status;
      }
      std::string& value = invocation.flags[spec->name];
      if (spec->repeated && !value.empty()) {
        absl::StrAppend(&value, ",", flag.value);
      } else {
        value = flag.value;
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
  const bool variadic =
      !verb->args.empty() && absl::EndsWith(verb->args.back(), "...");
  if (invocation.args.size() > verb->args.size() && !variadic) {
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
