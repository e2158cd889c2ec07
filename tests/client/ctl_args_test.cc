#include "client/ctl_args.h"

#include <map>

#include "client/ctl_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::client::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

absl::StatusOr<Invocation> Parse(std::vector<std::string> args,
                                 absl::string_view env_server = "") {
  return ParseCommandLine(Commands(), args, env_server);
}

// The usage error's message, or "" when the command line parsed.
std::string UsageError(std::vector<std::string> args) {
  absl::StatusOr<Invocation> invocation = Parse(std::move(args));
  if (invocation.ok()) return "";
  EXPECT_EQ(invocation.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(invocation.status().message());
}

TEST(CtlArgsTest, NounVerbAndDefaults) {
  absl::StatusOr<Invocation> invocation = Parse({"fleet", "list"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->CommandName(), "fleet list");
  EXPECT_EQ(invocation->server, "127.0.0.1:7070");
  EXPECT_EQ(invocation->output, OutputFormat::kTable);
  EXPECT_EQ(invocation->timeout, absl::Seconds(10));
  EXPECT_THAT(invocation->args, IsEmpty());
  EXPECT_THAT(invocation->flags, IsEmpty());
  EXPECT_FALSE(invocation->help.has_value());
}

TEST(CtlArgsTest, ServerComesFromFlagThenEnvironmentThenDefault) {
  EXPECT_EQ(Parse({"fleet", "list"}, "10.0.0.1:9000")->server, "10.0.0.1:9000");
  EXPECT_EQ(Parse({"--server=h:1", "fleet", "list"}, "10.0.0.1:9000")->server,
            "h:1");
  EXPECT_THAT(UsageError({"--server=", "fleet", "list"}),
              HasSubstr("--server is empty"));
}

TEST(CtlArgsTest, GlobalFlagsBeforeOrAfterTheCommandInEveryForm) {
  const std::vector<std::vector<std::string>> forms = {
      {"--server=h:1", "-o", "json", "fleet", "list"},
      {"--server", "h:1", "fleet", "list", "-o=json"},
      {"fleet", "--server", "h:1", "list", "--output=json"},
      {"fleet", "list", "--server=h:1", "--output", "json"},
      {"fleet", "list", "--server=h:1", "-ojson"},
      {"fleet", "list", "--server=h:1", "-o", "JSON"},
  };
  for (const auto& form : forms) {
    absl::StatusOr<Invocation> invocation = Parse(form);
    ASSERT_TRUE(invocation.ok()) << invocation.status();
    EXPECT_EQ(invocation->server, "h:1");
    EXPECT_EQ(invocation->output, OutputFormat::kJson);
    EXPECT_EQ(invocation->CommandName(), "fleet list");
  }
}

TEST(CtlArgsTest, CommandFlagsInEveryForm) {
  for (const auto& form : std::vector<std::vector<std::string>>{
           {"fleet", "list", "--selector=env=prod,tier in (a,b)",
            "--page_size=5"},
           {"fleet", "list", "--selector", "env=prod,tier in (a,b)",
            "--page-size", "5"},
           {"--selector", "env=prod,tier in (a,b)", "--page_size", "5", "fleet",
            "list"},
       }) {
    absl::StatusOr<Invocation> invocation = Parse(form);
    ASSERT_TRUE(invocation.ok()) << invocation.status();
    EXPECT_EQ(invocation->Flag("selector"), "env=prod,tier in (a,b)");
    EXPECT_EQ(invocation->CountFlag("page_size", 0), 5);
  }
}

TEST(CtlArgsTest, LastValueOfARepeatedFlagWins) {
  absl::StatusOr<Invocation> invocation =
      Parse({"fleet", "watch", "--count=1", "--count=3"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->CountFlag("count", 0), 3);
}

TEST(CtlArgsTest, PositionalArguments) {
  absl::StatusOr<Invocation> invocation =
      Parse({"fleet", "get", "db-1", "-o", "json"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_THAT(invocation->args, ElementsAre("db-1"));
  // After "--" everything is an argument, even what looks like a flag.
  invocation = Parse({"fleet", "get", "--", "-odd-id"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_THAT(invocation->args, ElementsAre("-odd-id"));
}

// The command line reads as it always has where CLI11 alone would read it
// otherwise.
TEST(CtlArgsTest, EdgesOfTheCommandLine) {
  // A word that looks like CLI11's list syntax stays one word.
  absl::StatusOr<Invocation> invocation = Parse({"fleet", "get", "[a,b]"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_THAT(invocation->args, ElementsAre("[a,b]"));
  // A verb's name after the verb is an argument, not a second verb.
  invocation = Parse({"fleet", "get", "list"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_THAT(invocation->args, ElementsAre("list"));
  // "--" may come before the command too.
  invocation = Parse({"-o", "json", "--", "fleet", "get", "-1"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->CommandName(), "fleet get");
  EXPECT_THAT(invocation->args, ElementsAre("-1"));
  // An empty value is a value, not a request for the next word.
  invocation = Parse({"fleet", "list", "--selector=", "--page-size=2"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->flags.at("selector"), "");
  EXPECT_EQ(invocation->CountFlag("page_size", 0), 2);
  EXPECT_THAT(UsageError({"rollout", "create", "b", "--all="}),
              HasSubstr("flag --all wants true or false, got \"\""));
  // Messages name the spelling typed.
  EXPECT_THAT(UsageError({"fleet", "list", "--page-size=x"}),
              HasSubstr("flag --page-size wants a whole number"));
  EXPECT_THAT(UsageError({"fleet", "list", "--page-size"}),
              HasSubstr("flag --page-size needs a value (--page_size=N)"));
  // A repeated flag gathers its values, before and after the verb.
  invocation = Parse({"--gate=a", "rollout", "create", "b", "--gate", "c"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->Flag("gate"), "a,c");
  // Words before the noun or the verb are not skipped.
  EXPECT_THAT(UsageError({"x", "fleet", "list"}),
              HasSubstr("unknown command \"x\""));
  EXPECT_THAT(UsageError({"fleet", "x", "list"}),
              HasSubstr("unknown verb \"x\""));
  // Whatever starts with "-" is a flag.
  EXPECT_THAT(UsageError({"fleet", "get", "-1"}),
              HasSubstr("unknown flag -1; short flags are -o"));
  EXPECT_THAT(UsageError({"fleet", "list", "-hx"}),
              HasSubstr("unknown flag -hx; short flags are -o"));
  EXPECT_THAT(UsageError({"fleet", "list", "---x"}),
              HasSubstr("unknown flag ---x for \"fleet list\""));
  EXPECT_THAT(UsageError({"--a", "fleet", "list", "--b"}),
              HasSubstr("unknown flag --a for"));
  EXPECT_THAT(UsageError({"fleet", "list", "--=x"}),
              HasSubstr("malformed flag \"--=x\""));
}

TEST(CtlArgsTest, TimeoutFlag) {
  EXPECT_EQ(Parse({"--timeout=500ms", "version"})->timeout,
            absl::Milliseconds(500));
  EXPECT_THAT(UsageError({"--timeout=soon", "version"}),
              HasSubstr("positive duration"));
  EXPECT_THAT(UsageError({"--timeout=0s", "version"}),
              HasSubstr("positive duration"));
}

TEST(CtlArgsTest, StandaloneNoun) {
  absl::StatusOr<Invocation> invocation = Parse({"version"});
  ASSERT_TRUE(invocation.ok()) << invocation.status();
  EXPECT_EQ(invocation->CommandName(), "version");
  EXPECT_THAT(UsageError({"version", "extra"}),
              HasSubstr("unexpected argument \"extra\" for \"version\""));
}

TEST(CtlArgsTest, UsageErrorsNameTheProblemAndTheValidChoices) {
  // Every noun is listed (fleet first, help last).
  EXPECT_THAT(UsageError({"flet", "list"}),
              HasSubstr("unknown command \"flet\"; commands: fleet, bundle, "
                        "rollout, "));
  EXPECT_THAT(UsageError({"flet", "list"}), HasSubstr(", job, "));
  EXPECT_THAT(UsageError({"flet", "list"}), HasSubstr(", query, "));
  EXPECT_THAT(UsageError({"flet", "list"}), HasSubstr(", version, help"));
  EXPECT_THAT(UsageError({"flet", "list"}), HasSubstr(", config, emergency, "));
  EXPECT_THAT(
      UsageError({"fleet", "lst"}),
      HasSubstr("unknown verb \"lst\" for \"fleet\"; verbs: list, get, watch"));
  EXPECT_THAT(UsageError({"fleet"}),
              HasSubstr("\"fleet\" needs a verb: list, get, watch"));
  EXPECT_THAT(UsageError({"fleet", "list", "--bogus"}),
              HasSubstr("unknown flag --bogus for \"fleet list\"; its flags: "
                        "--selector, --page_size"));
  // --count exists, but not for "fleet list".
  EXPECT_THAT(UsageError({"fleet", "list", "--count=3"}),
              HasSubstr("unknown flag --count for \"fleet list\""));
  EXPECT_THAT(UsageError({"fleet", "get", "--selector=x", "db-1"}),
              HasSubstr("it takes none"));
  EXPECT_THAT(UsageError({"fleet", "get"}),
              HasSubstr("\"fleet get\" needs DATABASE_ID"));
  EXPECT_THAT(UsageError({"fleet", "get", "a", "b"}),
              HasSubstr("unexpected argument \"b\""));
  EXPECT_THAT(UsageError({"fleet", "list", "x"}),
              HasSubstr("unexpected argument \"x\" for \"fleet list\""));
  EXPECT_THAT(UsageError({"-o", "yaml", "fleet", "list"}),
              HasSubstr("unknown output format \"yaml\"; use table or json"));
  EXPECT_THAT(UsageError({"fleet", "list", "--selector"}),
              HasSubstr("flag --selector needs a value"));
  EXPECT_THAT(UsageError({"fleet", "list", "--page_size=many"}),
              HasSubstr("--page_size wants a whole number >= 0, got \"many\""));
  EXPECT_THAT(UsageError({"fleet", "watch", "--count=-1"}),
              HasSubstr("wants a whole number"));
  EXPECT_THAT(UsageError({"-x", "fleet", "list"}),
              HasSubstr("unknown flag -x"));
  EXPECT_THAT(UsageError({"--help=maybe"}), HasSubstr("true or false"));
  EXPECT_THAT(UsageError({}), HasSubstr("no command given"));
}

TEST(CtlArgsTest, HelpAtEveryLevel) {
  auto help = [](std::vector<std::string> args) {
    absl::StatusOr<Invocation> invocation = Parse(std::move(args));
    EXPECT_TRUE(invocation.ok()) << invocation.status();
    return invocation.ok() ? invocation->help.value_or("") : "";
  };
  const std::string usage = UsageText(Commands());
  EXPECT_EQ(help({"--help"}), usage);
  EXPECT_EQ(help({"-h"}), usage);
  EXPECT_EQ(help({"help"}), usage);
  const NounSpec& fleet = Commands()[0];
  EXPECT_EQ(help({"fleet", "--help"}), NounHelp(fleet));
  EXPECT_EQ(help({"help", "fleet"}), NounHelp(fleet));
  EXPECT_EQ(help({"fleet", "list", "--help"}), VerbHelp(fleet, fleet.verbs[0]));
  EXPECT_EQ(help({"help", "fleet", "list"}), VerbHelp(fleet, fleet.verbs[0]));
  // Help wins over a command line that would otherwise be incomplete.
  EXPECT_EQ(help({"fleet", "get", "-h"}), VerbHelp(fleet, fleet.verbs[1]));
  EXPECT_THAT(UsageError({"help", "nope"}),
              HasSubstr("unknown command \"nope\""));
  EXPECT_THAT(UsageError({"help", "fleet", "nope"}),
              HasSubstr("unknown verb \"nope\""));
}

TEST(CtlArgsTest, HelpTextsMentionEveryCommandAndFlag) {
  const std::string usage = UsageText(Commands());
  EXPECT_THAT(usage,
              HasSubstr("ecliptixctl [--server=HOST:PORT] [-o table|json] "
                        "<noun> <verb> [args] [flags]"));
  for (const NounSpec& noun : Commands()) {
    for (const VerbSpec& verb : noun.verbs) {
      EXPECT_THAT(usage, HasSubstr(verb.summary));
      const std::string verb_help = VerbHelp(noun, verb);
      for (const FlagSpec& flag : verb.flags) {
        EXPECT_THAT(verb_help, HasSubstr("--" + flag.name));
      }
      EXPECT_THAT(verb_help, HasSubstr("--server=HOST:PORT"));
    }
  }
}

// The parser decides whether "--name value" takes the next word before it knows
// the verb, so a flag name must mean the same in every verb; and every verb
// needs a handler.
TEST(CtlArgsTest, CommandTableIsConsistent) {
  std::map<std::string, FlagSpec::Kind> kinds;
  for (const NounSpec& noun : Commands()) {
    EXPECT_FALSE(noun.verbs.empty()) << noun.name;
    for (const VerbSpec& verb : noun.verbs) {
      EXPECT_TRUE(verb.run != nullptr) << noun.name << " " << verb.name;
      for (const FlagSpec& flag : verb.flags) {
        EXPECT_THAT(flag.name, Not(HasSubstr("-")));
        auto [it, inserted] = kinds.emplace(flag.name, flag.kind);
        EXPECT_TRUE(inserted || it->second == flag.kind) << flag.name;
        EXPECT_NE(flag.name, "server");
        EXPECT_NE(flag.name, "output");
        EXPECT_NE(flag.name, "timeout");
        EXPECT_NE(flag.name, "help");
      }
    }
  }
}

}  // namespace
}  // namespace ecliptix::client::ctl
