// README.md's command examples, run as written so the README stays true. The
// fenced shell blocks are read the way a shell would read them; every
// `ecliptixctl ...` goes through ecliptixctl's real argument parser, and every
// `grpcurl ...` is played by this test: the method is found by its descriptor,
// the JSON request is converted with grpcurl's rules and the call is made for
// real against an ecliptix-server process with agents, a pushed reference
// bundle and finished rollouts (grpcurl is not packaged for Debian). The test
// reads whatever the README holds when it runs: new sections are checked
// without changing it.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "client/ctl_args.h"
#include "client/ctl_commands.h"
#include "ecliptix/fleet/v1/fleet_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace ecliptix {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
namespace reflection = ::grpc::reflection::v1alpha;
using ::google::protobuf::DescriptorPool;
using ::google::protobuf::DynamicMessageFactory;
using ::google::protobuf::Message;
using ::google::protobuf::MethodDescriptor;
using testing::ChildProcess;
using testing::RunfilePath;
using testing::WaitFor;

// ---------------------------------------------------------------------------
// Reading the README like a shell.

// One simple command of an example: a pipeline or list is split at its
// operators ('|', ';', '&&', '||', '&'); redirections are dropped.
struct Example {
  int line = 0;      // README line where the command starts
  std::string text;  // as written (continuation lines included)
  std::vector<std::string> words;
};

struct ShellScan {
  std::vector<std::vector<std::string>> commands;
  // An open quote or a trailing backslash: the command goes on on the next
  // line.
  bool incomplete = false;
};

// The subset of POSIX shell word splitting the README uses: single and double
// quotes, backslash escapes and line continuations, comments, command
// separators and redirections. Parameter expansion is not done ($X stays as
// written).
ShellScan ScanShell(absl::string_view text) {
  ShellScan scan;
  enum class Quote { kNone, kSingle, kDouble } quote = Quote::kNone;
  std::string word;
  bool in_word = false;         // an empty quoted word ('') is still a word
  bool skip_next_word = false;  // the target of a redirection
  std::vector<std::string> current;
  auto end_word = [&] {
    if (in_word) {
      if (skip_next_word) {
        skip_next_word = false;
      } else {
        current.push_back(word);
      }
    }
    word.clear();
    in_word = false;
  };
  auto end_command = [&] {
    end_word();
    skip_next_word = false;
    if (!current.empty()) scan.commands.push_back(current);
    current.clear();
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (quote == Quote::kSingle) {
      if (c == '\'') {
        quote = Quote::kNone;
      } else {
        word += c;
      }
      continue;
    }
    if (quote == Quote::kDouble) {
      if (c == '"') {
        quote = Quote::kNone;
      } else if (c == '\\' && i + 1 < n &&
                 absl::string_view("$`\"\\\n").find(text[i + 1]) !=
                     absl::string_view::npos) {
        if (text[i + 1] != '\n') word += text[i + 1];
        ++i;
      } else {
        word += c;
      }
      continue;
    }
    switch (c) {
      case '\\':
        if (i + 1 == n) {
          scan.incomplete = true;
          return scan;
        }
        if (text[i + 1] != '\n') {
          word += text[i + 1];
          in_word = true;
        }
        ++i;
        break;
      case '\'':
        quote = Quote::kSingle;
        in_word = true;
        break;
      case '"':
        quote = Quote::kDouble;
        in_word = true;
        break;
      case ' ':
      case '\t':
        end_word();
        break;
      case '\n':
        end_command();
        break;
      case '#':
        if (in_word) {
          word += c;
        } else {
          while (i + 1 < n && text[i + 1] != '\n') ++i;
        }
        break;
      case '|':
      case ';':
      case '&':
        end_command();
        if (i + 1 < n && text[i + 1] == c) ++i;
        break;
      case '>':
      case '<':
        // "2>/dev/null": the descriptor number belongs to the redirection.
        if (in_word && !word.empty() &&
            word.find_first_not_of("0123456789") == std::string::npos) {
          word.clear();
          in_word = false;
        }
        end_word();
        while (i + 1 < n && (text[i + 1] == '>' || text[i + 1] == '&')) ++i;
        skip_next_word = true;
        break;
      default:
        word += c;
        in_word = true;
    }
  }
  if (quote != Quote::kNone) {
    scan.incomplete = true;
    return scan;
  }
  end_command();
  return scan;
}

// The program a command runs: "ecliptixctl" also for
// "bazel-bin/client/ecliptixctl".
std::string Program(const Example& example) {
  if (example.words.empty()) return "";
  absl::string_view first = example.words[0];
  const size_t slash = first.rfind('/');
  if (slash != absl::string_view::npos) first.remove_prefix(slash + 1);
  return std::string(first);
}

struct Extraction {
  std::vector<Example> examples;  // every simple command of every block
  std::vector<std::string> problems;
  int blocks = 0;  // fenced blocks read as shell
};

// Blocks with these info strings (or none) hold commands; others (text,
// textproto, ...) are diagrams, formats and synopses.
bool IsShellBlock(absl::string_view info) {
  static const auto* const kShell = new std::set<std::string>{
      "", "sh", "shell", "bash", "console", "shell-session"};
  return kShell->count(absl::AsciiStrToLower(info)) > 0;
}

Extraction ExtractExamples(absl::string_view markdown) {
  Extraction extraction;
  const std::vector<std::string> lines = absl::StrSplit(markdown, '\n');
  bool in_block = false;
  bool shell = false;
  bool console = false;
  size_t indent = 0;
  std::string fence;
  std::string pending;
  int pending_line = 0;
  auto flush_unfinished = [&] {
    if (pending.empty()) return;
    // An unfinished command only matters when it is one the test checks (a
    // stray apostrophe in another block's prose is not a command).
    const std::string first = pending.substr(0, pending.find_first_of(" \t\n"));
    if (absl::EndsWith(first, "ecliptixctl") ||
        absl::EndsWith(first, "grpcurl")) {
      extraction.problems.push_back(
          absl::StrCat("README.md:", pending_line,
                       ": the command never ends (an open quote or a "
                       "backslash at the end of the block): ",
                       pending));
    }
    pending.clear();
  };
  for (size_t index = 0; index < lines.size(); ++index) {
    const int line_number = static_cast<int>(index) + 1;
    std::string line = lines[index];
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first_char = line.find_first_not_of(' ');
    const absl::string_view trimmed =
        first_char == std::string::npos
            ? absl::string_view()
            : absl::string_view(line).substr(first_char);
    if (!in_block) {
      if (absl::StartsWith(trimmed, "```") ||
          absl::StartsWith(trimmed, "~~~")) {
        in_block = true;
        fence = std::string(trimmed.substr(0, 3));
        indent = first_char;
        const std::string info(absl::StripAsciiWhitespace(trimmed.substr(3)));
        const std::string language = info.substr(0, info.find_first_of(" {"));
        shell = IsShellBlock(language);
        console = language == "console" || language == "shell-session";
        if (shell) ++extraction.blocks;
      }
      continue;
    }
    if (absl::StartsWith(trimmed, fence) &&
        absl::StripAsciiWhitespace(trimmed.substr(3)).empty()) {
      flush_unfinished();
      in_block = false;
      continue;
    }
    if (!shell) continue;
    // The block's own indentation (a block inside a list item) is not part of
    // its lines.
    size_t strip = 0;
    while (strip < indent && strip < line.size() && line[strip] == ' ') ++strip;
    line = line.substr(strip);
    if (pending.empty()) {
      absl::string_view start = absl::StripLeadingAsciiWhitespace(line);
      if (absl::ConsumePrefix(&start, "$ ")) {
        start = absl::StripLeadingAsciiWhitespace(start);
      } else if (console) {
        continue;  // output shown after a prompt, not a command
      }
      if (start.empty() || start[0] == '#') continue;
      pending = std::string(start);
      pending_line = line_number;
    } else {
      absl::StrAppend(&pending, "\n", line);
    }
    const ShellScan scan = ScanShell(pending);
    if (scan.incomplete) continue;
    for (const std::vector<std::string>& words : scan.commands) {
      extraction.examples.push_back(Example{pending_line, pending, words});
    }
    pending.clear();
  }
  if (in_block) {
    flush_unfinished();
    extraction.problems.push_back("README.md: a fenced block is never closed");
  }
  return extraction;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A README line for a failure message: where, and the command as written.
std::string Where(const Example& example) {
  return absl::StrCat("README.md:", example.line, ": `", example.text, "`");
}

std::string Shorten(absl::string_view text, size_t limit = 160) {
  std::string one_line = absl::StrJoin(absl::StrSplit(text, '\n'), " ");
  if (one_line.size() <= limit) return one_line;
  return absl::StrCat(one_line.substr(0, limit), "...");
}

// ---------------------------------------------------------------------------
// grpcurl's command line.

struct GrpcurlCommand {
  enum class Verb { kList, kDescribe, kInvoke };
  bool plaintext = false;
  bool allow_unknown_fields = false;
  std::optional<std::string> data;  // -d; "@" reads stdin
  std::string address;
  Verb verb = Verb::kInvoke;
  std::string symbol;  // list/describe: optional; invoke: SERVICE/METHOD
};

// Parses grpcurl's arguments as its Go flag package does: flags (one or two
// dashes, "-f v" or "-f=v") before the positional arguments.
absl::StatusOr<GrpcurlCommand> ParseGrpcurl(
    const std::vector<std::string>& args) {
  static const auto* const kValueFlags =
      new std::set<std::string>{"d",
                                "H",
                                "rpc-header",
                                "reflect-header",
                                "max-time",
                                "connect-timeout",
                                "keepalive-time",
                                "format",
                                "authority",
                                "user-agent",
                                "max-msg-sz",
                                "proto",
                                "protoset",
                                "import-path",
                                "cacert",
                                "cert",
                                "key",
                                "servername",
                                "protoset-out"};
  static const auto* const kBoolFlags =
      new std::set<std::string>{"plaintext",
                                "insecure",
                                "emit-defaults",
                                "allow-unknown-fields",
                                "format-error",
                                "v",
                                "vv",
                                "use-reflection",
                                "msg-template",
                                "expand-headers"};
  GrpcurlCommand command;
  size_t i = 1;
  for (; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') break;
    if (arg == "--") {
      ++i;
      break;
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    std::string name(arg.substr(0, arg.find('=')));
    std::optional<std::string> value;
    if (arg.find('=') != absl::string_view::npos) {
      value = std::string(arg.substr(arg.find('=') + 1));
    }
    if (kBoolFlags->count(name) > 0) {
      const bool on = !value.has_value() || *value == "true";
      if (name == "plaintext") command.plaintext = on;
      if (name == "allow-unknown-fields") command.allow_unknown_fields = on;
      continue;
    }
    if (kValueFlags->count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("grpcurl flag -", name,
                       " is unknown to this test (add it to ParseGrpcurl if "
                       "grpcurl has it)"));
    }
    if (!value.has_value()) {
      if (i + 1 == args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("grpcurl flag -", name, " needs a value"));
      }
      value = args[++i];
    }
    if (name == "d") command.data = *value;
    if (name == "format" && *value != "json") {
      return absl::InvalidArgumentError(
          "only -format=json requests are checked by this test");
    }
  }
  std::vector<std::string> positional(args.begin() + i, args.end());
  if (positional.empty()) {
    return absl::InvalidArgumentError("grpcurl without an address");
  }
  command.address = positional[0];
  if (!std::regex_match(command.address, std::regex(R"([^\s/:]+:[0-9]+)"))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", command.address, "\" is not an address (HOST:PORT)"));
  }
  positional.erase(positional.begin());
  if (positional.empty()) {
    return absl::InvalidArgumentError(
        "grpcurl needs list, describe or a method after the address");
  }
  if (positional[0] == "list" || positional[0] == "describe") {
    command.verb = positional[0] == "list" ? GrpcurlCommand::Verb::kList
                                           : GrpcurlCommand::Verb::kDescribe;
    if (positional.size() > 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("too many arguments after ", positional[0]));
    }
    if (positional.size() == 2) command.symbol = positional[1];
  } else {
    if (positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("too many arguments after the method ", positional[0]));
    }
    command.symbol = positional[0];
  }
  if (!command.plaintext) {
    return absl::InvalidArgumentError(
        "grpcurl without -plaintext speaks TLS, which the server does not "
        "(yet) serve");
  }
  return command;
}

// "pkg.Service/Method" or "pkg.Service.Method" -> "pkg.Service.Method".
std::string MethodFullName(absl::string_view symbol) {
  std::string name(symbol);
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos) name[slash] = '.';
  return name;
}

// ---------------------------------------------------------------------------
// Reflection, as grpcurl uses it.

absl::StatusOr<reflection::ServerReflectionResponse> AskReflection(
    const std::shared_ptr<grpc::Channel>& channel,
    const reflection::ServerReflectionRequest& request) {
  auto stub = reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  stream->Write(request);
  stream->WritesDone();
  reflection::ServerReflectionResponse response;
  const bool read = stream->Read(&response);
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "reflection: ", status.error_code(), ": ", status.error_message()));
  }
  if (!read) return absl::UnavailableError("reflection: no answer");
  if (response.has_error_response()) {
    return absl::NotFoundError(absl::StrCat(
        "reflection: ", response.error_response().error_message()));
  }
  return response;
}

absl::StatusOr<std::set<std::string>> ReflectedServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  absl::StatusOr<reflection::ServerReflectionResponse> response =
      AskReflection(channel, request);
  if (!response.ok()) return response.status();
  std::set<std::string> services;
  for (const auto& service : response->list_services_response().service()) {
    services.insert(service.name());
  }
  return services;
}

// What grpcurl does first for `describe X`, `list X` and every call: the file
// defining X (and its imports), by reflection.
absl::Status ReflectSymbol(const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& symbol) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  absl::StatusOr<reflection::ServerReflectionResponse> response =
      AskReflection(channel, request);
  if (!response.ok()) return response.status();
  if (response->file_descriptor_response().file_descriptor_proto().empty()) {
    return absl::NotFoundError(
        absl::StrCat("reflection: no file for ", symbol));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// A call made as grpcurl makes it: bytes through a generic stub.

std::string CodeName(grpc::StatusCode code) {
  // absl's codes have the same numbers and names as gRPC's.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

struct CallResult {
  grpc::Status status;
  std::vector<std::string> responses;  // as JSON
  bool cancelled_by_test = false;
};

std::string ByteBufferToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// Unary: the request, the response, the status. Server streaming: the first
// two messages, then the call is cancelled (a short deadline ends a watch that
// sends fewer). The generic call is a bidi stream on the wire, which serves
// every kind of method.
CallResult Call(const std::shared_ptr<grpc::Channel>& channel,
                const MethodDescriptor& method, const Message& request,
                DynamicMessageFactory& factory) {
  CallResult result;
  const bool streaming = method.server_streaming() || method.client_streaming();
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      (streaming ? std::chrono::seconds(3) : std::chrono::seconds(20)));
  grpc::CompletionQueue queue;
  // One operation at a time, so each Next() answers the operation just
  // started.
  auto await = [&queue] {
    void* tag = nullptr;
    bool ok = false;
    queue.Next(&tag, &ok);
    return ok;
  };
  void* const tag = reinterpret_cast<void*>(1);
  auto call = stub.PrepareCall(
      &context,
      absl::StrCat("/", method.service()->full_name(), "/", method.name()),
      &queue);
  call->StartCall(tag);
  bool ok = await();
  if (ok) {
    grpc::Slice slice(request.SerializeAsString());
    grpc::ByteBuffer buffer(&slice, 1);
    call->WriteLast(buffer, grpc::WriteOptions(), tag);
    ok = await();
  }
  const size_t wanted = method.server_streaming() ? 2 : 1;
  while (ok && result.responses.size() < wanted) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, tag);
    if (!await()) break;
    std::unique_ptr<Message> response(
        factory.GetPrototype(method.output_type())->New());
    std::string json;
    if (response->ParseFromString(ByteBufferToString(buffer))) {
      google::protobuf::util::MessageToJsonString(*response, &json);
    } else {
      json = "(unparseable response)";
    }
    result.responses.push_back(json);
  }
  if (method.server_streaming() && result.responses.size() == wanted) {
    context.TryCancel();
    result.cancelled_by_test = true;
  }
  call->Finish(&result.status, tag);
  await();
  queue.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (queue.Next(&ignored_tag, &ignored_ok)) {
  }
  return result;
}

// ---------------------------------------------------------------------------
// The test server: ecliptix-server, three agents on SQLite files labelled as
// the README's examples expect, the reference bundle pushed and rolled out to
// staging (r-1) and then to production (r-2).

class ExampleFleet {
 public:
  // Starts everything; ASSERTs on failure.
  void Start() {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/readme-fleet");
    std::filesystem::create_directories(dir_);
    auto server = ChildProcess::Start(
        {RunfilePath("server/ecliptix-server"), "--listen=127.0.0.1:0",
         absl::StrCat("--store=sqlite://", dir_, "/state.db"),
         "--heartbeat_interval=500ms", "--heartbeat_timeout=5s"},
        absl::StrCat(dir_, "/server.log"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::make_unique<ChildProcess>(std::move(*server));
    int port = 0;
    ASSERT_TRUE(WaitFor([&] {
      return (port = testing::LoggedServerPort(server_->Output())) > 0;
    })) << server_->Output();
    address_ = absl::StrCat("127.0.0.1:", port);
    channel_ =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());

    // Ids and labels the README's examples use (fleet get ecliptix-prod-eu-1,
    // --selector=env=prod, region in (eu,us), env=staging, ...).
    const std::map<std::string, std::string> databases = {
        {"ecliptix-staging-eu-1", "env=staging,region=eu,tier=standard"},
        {"ecliptix-prod-eu-1", "env=prod,region=eu,tier=gold"},
        {"ecliptix-prod-us-1", "env=prod,region=us,tier=standard"},
    };
    for (const auto& [id, labels] : databases) {
      auto agent = ChildProcess::Start(
          {RunfilePath("agent/ecliptix-agent"),
           absl::StrCat("--server=", address_),
           absl::StrCat("--database=sqlite://", dir_, "/", id, ".db"),
           absl::StrCat("--labels=", labels),
           absl::StrCat("--database_id=", id),
           absl::StrCat("--backup_dir=", dir_, "/backups-", id),
           "--initial_backoff=100ms", "--max_backoff=500ms"},
          absl::StrCat(dir_, "/agent-", id, ".log"));
      ASSERT_TRUE(agent.ok()) << agent.status();
      agents_.push_back(std::make_unique<ChildProcess>(std::move(*agent)));
    }
    auto fleet = v1::FleetService::NewStub(channel_);
    ASSERT_TRUE(WaitFor(
        [&] {
          grpc::ClientContext context;
          v1::ListDatabasesResponse response;
          if (!fleet->ListDatabases(&context, {}, &response).ok()) return false;
          int connected = 0;
          for (const auto& database : response.databases()) {
            connected +=
                database.connection_state() == v1::CONNECTION_STATE_CONNECTED;
          }
          return connected == static_cast<int>(databases.size());
        },
        absl::Seconds(30)))
        << server_->Output();

    const std::string bundle_dir =
        testing::PlainRunfilesCopy("bundles/ecliptix", "ecliptix-bundle");
    std::string output;
    ASSERT_EQ(Ctl({"bundle", "push", bundle_dir}, &output), 0) << output;
    std::smatch pushed;
    ASSERT_TRUE(
        std::regex_search(output, pushed, std::regex(R"(pushed (\S+))")))
        << output;
    const std::string bundle = pushed[1];
    // r-1 on staging; r-2 on production as the README's walkthrough makes it
    // (waves, gates, attestations), both to the end.
    ASSERT_EQ(Ctl({"rollout", "create", bundle, "--selector=env=staging",
                   "--backup", "--watch"},
                  &output),
              0)
        << output;
    ASSERT_EQ(
        Ctl({"rollout", "create", bundle, "--selector=env=prod",
             "--waves=1,50%,100%", "--max_parallel=2", "--order_by=region",
             "--order_values=eu,us", "--auto_rollback=failed", "--backup",
             "--gate=backup,staging,rollback-plan,monitoring,team"},
            &output),
        0)
        << output;
    ASSERT_THAT(output, ::testing::HasSubstr("r-2")) << output;
    for (const char* gate : {"monitoring", "team"}) {
      ASSERT_EQ(Ctl({"rollout", "attest", "r-2", gate, "--by=alice"}, &output),
                0)
          << output;
    }
    ASSERT_EQ(Ctl({"rollout", "watch", "r-2"}, &output), 0) << output;
  }

  void Stop() {
    if (server_ != nullptr) {
      server_->Signal(SIGTERM);
      server_->Wait(absl::Seconds(20));
    }
  }

  // ecliptixctl in this process, against the test server.
  int Ctl(std::vector<std::string> args, std::string* output) {
    std::ostringstream out;
    std::ostringstream err;
    client::ctl::CtlContext context;
    context.out = &out;
    context.err = &err;
    context.env_server = address_;
    context.user = "readme-test";
    const int code = client::ctl::RunCtl(args, context);
    *output = absl::StrCat("ecliptixctl ", absl::StrJoin(args, " "), "\n",
                           out.str(), err.str());
    return code;
  }

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  std::string ServerOutput() const {
    return server_ == nullptr ? "" : server_->Output();
  }

 private:
  std::string dir_;
  std::string address_;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::shared_ptr<grpc::Channel> channel_;
};

// ---------------------------------------------------------------------------
// The tests.

class ReadmeExamplesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    readme_ = new std::string(ReadFile(RunfilePath("README.md")));
    extraction_ = new Extraction(ExtractExamples(*readme_));
  }

  static void TearDownTestSuite() {
    std::cout << "README examples: " << ctl_parsed_
              << " ecliptixctl examples parsed, " << grpcurl_called_
              << " grpcurl examples called (" << grpcurl_checked_
              << " grpcurl examples checked in all)" << std::endl;
    delete extraction_;
    delete readme_;
  }

  static std::vector<Example> ExamplesOf(const std::string& program) {
    std::vector<Example> found;
    for (const Example& example : extraction_->examples) {
      if (Program(example) == program) found.push_back(example);
    }
    return found;
  }

  static std::string* readme_;
  static Extraction* extraction_;
  static int ctl_parsed_;
  static int grpcurl_called_;
  static int grpcurl_checked_;
};

std::string* ReadmeExamplesTest::readme_ = nullptr;
Extraction* ReadmeExamplesTest::extraction_ = nullptr;
int ReadmeExamplesTest::ctl_parsed_ = 0;
int ReadmeExamplesTest::grpcurl_called_ = 0;
int ReadmeExamplesTest::grpcurl_checked_ = 0;

TEST_F(ReadmeExamplesTest, ReadmeHasExamples) {
  ASSERT_FALSE(readme_->empty())
      << "README.md is missing or empty at " << RunfilePath("README.md");
  for (const std::string& problem : extraction_->problems) {
    ADD_FAILURE() << problem;
  }
  EXPECT_GT(extraction_->blocks, 0)
      << "no fenced shell block found in README.md: the extractor is broken";
  EXPECT_FALSE(ExamplesOf("ecliptixctl").empty())
      << "no ecliptixctl example found in README.md's fenced blocks ("
      << extraction_->blocks << " blocks, " << extraction_->examples.size()
      << " commands): the extractor is broken or the examples are gone";
  EXPECT_FALSE(ExamplesOf("grpcurl").empty())
      << "no grpcurl example found in README.md's fenced blocks ("
      << extraction_->blocks << " blocks, " << extraction_->examples.size()
      << " commands): the extractor is broken or the examples are gone";
}

TEST_F(ReadmeExamplesTest, EcliptixctlExamplesParse) {
  const std::vector<Example> examples = ExamplesOf("ecliptixctl");
  ASSERT_FALSE(examples.empty()) << "no ecliptixctl example in README.md";
  for (const Example& example : examples) {
    const std::vector<std::string> args(example.words.begin() + 1,
                                        example.words.end());
    absl::StatusOr<client::ctl::Invocation> invocation =
        client::ctl::ParseCommandLine(client::ctl::Commands(), args, "");
    if (!invocation.ok()) {
      ADD_FAILURE() << Where(example) << ": " << invocation.status().message();
      continue;
    }
    ++ctl_parsed_;
    std::cout << "README.md:" << example.line << " ecliptixctl "
              << (invocation->help.has_value() ? "help"
                                               : invocation->CommandName())
              << ": parsed" << std::endl;
  }
}

TEST_F(ReadmeExamplesTest, GrpcurlExamplesCallTheRealServer) {
  const std::vector<Example> examples = ExamplesOf("grpcurl");
  ASSERT_FALSE(examples.empty()) << "no grpcurl example in README.md";

  // Every example's command line first: a wrong one needs no server to fail.
  std::vector<std::pair<Example, GrpcurlCommand>> commands;
  for (const Example& example : examples) {
    absl::StatusOr<GrpcurlCommand> command = ParseGrpcurl(example.words);
    if (!command.ok()) {
      ADD_FAILURE() << Where(example) << ": " << command.status().message();
      continue;
    }
    commands.emplace_back(example, *std::move(command));
  }

  ExampleFleet fleet;
  ASSERT_NO_FATAL_FAILURE(fleet.Start());
  const std::shared_ptr<grpc::Channel>& channel = fleet.channel();
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  DynamicMessageFactory factory(pool);

  absl::StatusOr<std::set<std::string>> served = ReflectedServices(channel);
  ASSERT_TRUE(served.ok()) << served.status();
  // The test must know every method the server serves, or it would fail a
  // correct example.
  for (const std::string& service : *served) {
    if (absl::StartsWith(service, "grpc.reflection.")) continue;
    EXPECT_NE(pool->FindServiceByName(service), nullptr)
        << "the server serves " << service
        << ", which this test does not link: add its proto library to "
           "readme_examples_test's deps";
  }

  // The services the README names: by their full name in its text, and those
  // of its grpcurl calls.
  std::set<std::string> mentioned;
  {
    const std::regex full_name(
        R"(\b(?:[a-z][a-z0-9_]*\.)+[A-Z][A-Za-z0-9]*Service\b)");
    for (auto it =
             std::sregex_iterator(readme_->begin(), readme_->end(), full_name);
         it != std::sregex_iterator(); ++it) {
      mentioned.insert(it->str());
    }
    for (const auto& [example, command] : commands) {
      if (command.verb != GrpcurlCommand::Verb::kInvoke) continue;
      const MethodDescriptor* method =
          pool->FindMethodByName(MethodFullName(command.symbol));
      if (method != nullptr) mentioned.insert(method->service()->full_name());
    }
  }

  for (const auto& [example, command] : commands) {
    ++grpcurl_checked_;
    const std::string where = Where(example);
    if (command.verb == GrpcurlCommand::Verb::kList) {
      if (!command.symbol.empty()) {
        const absl::Status found = ReflectSymbol(channel, command.symbol);
        EXPECT_TRUE(found.ok()) << where << ": " << found;
        std::cout << "README.md:" << example.line << " grpcurl list "
                  << command.symbol << " -> " << found << std::endl;
        ++grpcurl_called_;
        continue;
      }
      absl::StatusOr<std::set<std::string>> listed = ReflectedServices(channel);
      ASSERT_TRUE(listed.ok()) << where << ": " << listed.status();
      for (const std::string& service : mentioned) {
        EXPECT_EQ(listed->count(service), 1u)
            << where << ": the README mentions " << service
            << ", which the server does not list; it lists "
            << absl::StrJoin(*listed, ", ");
      }
      std::cout << "README.md:" << example.line << " grpcurl list -> "
                << absl::StrJoin(*listed, " ") << std::endl;
      ++grpcurl_called_;
      continue;
    }
    if (command.verb == GrpcurlCommand::Verb::kDescribe) {
      absl::Status found;
      if (command.symbol.empty()) {
        found = ReflectedServices(channel).status();
      } else {
        found = ReflectSymbol(channel, command.symbol);
      }
      EXPECT_TRUE(found.ok()) << where << ": describe " << command.symbol
                              << " finds nothing by reflection: " << found;
      std::cout << "README.md:" << example.line << " grpcurl describe "
                << command.symbol << " -> "
                << (found.ok() ? "found by reflection" : found.ToString())
                << std::endl;
      ++grpcurl_called_;
      continue;
    }

    const std::string method_name = MethodFullName(command.symbol);
    const MethodDescriptor* method = pool->FindMethodByName(method_name);
    if (method == nullptr) {
      ADD_FAILURE() << where << ": no method " << command.symbol
                    << " in the API (write it SERVICE/METHOD with the "
                       "package, e.g. ecliptix.fleet.v1.FleetService/"
                       "ListDatabases)";
      continue;
    }
    // grpcurl learns the method from the server's reflection, not from
    // local files.
    const absl::Status reflected =
        ReflectSymbol(channel, method->service()->full_name());
    if (!reflected.ok()) {
      ADD_FAILURE() << where << ": grpcurl would not find "
                    << method->service()->full_name()
                    << " by reflection: " << reflected;
      continue;
    }
    if (command.data.has_value() && absl::StartsWith(*command.data, "@")) {
      std::cout << "README.md:" << example.line << " grpcurl " << command.symbol
                << ": method found (request from stdin, not called)"
                << std::endl;
      continue;
    }
    std::unique_ptr<Message> request(
        factory.GetPrototype(method->input_type())->New());
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = command.allow_unknown_fields;
    const std::string json = command.data.value_or("{}");
    const auto converted = google::protobuf::util::JsonStringToMessage(
        json, request.get(), options);
    if (!converted.ok()) {
      ADD_FAILURE() << where << ": the JSON is not a "
                    << method->input_type()->full_name() << ": "
                    << converted.ToString();
      continue;
    }
    const CallResult result = Call(channel, *method, *request, factory);
    ++grpcurl_called_;
    const grpc::StatusCode code = result.status.error_code();
    EXPECT_NE(code, grpc::StatusCode::UNIMPLEMENTED)
        << where << ": the server does not serve " << method_name << ": "
        << result.status.error_message();
    EXPECT_NE(code, grpc::StatusCode::INVALID_ARGUMENT)
        << where << ": the server refuses the example's request: "
        << result.status.error_message();
    std::string outcome =
        result.cancelled_by_test
            ? absl::StrCat(result.responses.size(),
                           " responses streamed, then cancelled by the test")
            : absl::StrCat(code == grpc::StatusCode::OK
                               ? "OK"
                               : absl::StrCat(CodeName(code), ": ",
                                              result.status.error_message()),
                           ", ", result.responses.size(), " responses");
    std::cout << "README.md:" << example.line << " grpcurl " << command.symbol
              << " -> " << Shorten(outcome)
              << (result.responses.empty()
                      ? ""
                      : absl::StrCat(": ", Shorten(result.responses[0])))
              << std::endl;
  }
  fleet.Stop();
}

// The extractor on small cases, so a README change that trips it is told
// apart from a broken extractor.
TEST(ReadmeExtractorTest, ReadsBlocksLikeAShell) {
  const Extraction extraction = ExtractExamples(
      "text\n"
      "```sh\n"
      "$ ecliptixctl fleet list --selector='env=prod,region in (eu,us)'\n"
      "# a comment\n"
      "ecliptixctl rollout create b \\\n"
      "    --selector=env=prod   # trailing comment\n"
      "grpcurl -plaintext -d '{\"a\": 1,\n"
      "  \"b\": \"x y\"}' \\\n"
      "  127.0.0.1:7070 p.S/M\n"
      "ecliptixctl fleet list -o json | jq . > out.json 2>/dev/null\n"
      "tools/setup && bazel-bin/client/ecliptixctl version\n"
      "ecliptixctl rollout attest r-2 team --by=alice --comment=\"a "
      "\\\"b\\\"\"\n"
      "```\n"
      "```text\n"
      "ecliptixctl [--server=HOST:PORT] <noun>\n"
      "```\n"
      "```console\n"
      "$ ecliptixctl version\n"
      "ecliptixctl 1.0\n"
      "```\n");
  EXPECT_TRUE(extraction.problems.empty())
      << absl::StrJoin(extraction.problems, "\n");
  std::vector<std::pair<int, std::vector<std::string>>> got;
  for (const Example& example : extraction.examples) {
    got.emplace_back(example.line, example.words);
  }
  using W = std::vector<std::string>;
  EXPECT_THAT(
      got,
      ::testing::ElementsAre(
          std::make_pair(3, W{"ecliptixctl", "fleet", "list",
                              "--selector=env=prod,region in (eu,us)"}),
          std::make_pair(5, W{"ecliptixctl", "rollout", "create", "b",
                              "--selector=env=prod"}),
          std::make_pair(
              7, W{"grpcurl", "-plaintext", "-d",
                   "{\"a\": 1,\n  \"b\": \"x y\"}", "127.0.0.1:7070", "p.S/M"}),
          std::make_pair(10, W{"ecliptixctl", "fleet", "list", "-o", "json"}),
          std::make_pair(10, W{"jq", "."}),
          std::make_pair(11, W{"tools/setup"}),
          std::make_pair(11, W{"bazel-bin/client/ecliptixctl", "version"}),
          std::make_pair(12, W{"ecliptixctl", "rollout", "attest", "r-2",
                               "team", "--by=alice", "--comment=a \"b\""}),
          std::make_pair(18, W{"ecliptixctl", "version"})));
}

TEST(ReadmeExtractorTest, AnUnfinishedCommandIsAProblem) {
  const Extraction extraction =
      ExtractExamples("```sh\ngrpcurl -plaintext -d '{\"a\": 1}\n```\n");
  ASSERT_EQ(extraction.problems.size(), 1u);
  EXPECT_THAT(extraction.problems[0], ::testing::HasSubstr("README.md:2"));
}

TEST(ReadmeExtractorTest, ParsesGrpcurlCommandLines) {
  absl::StatusOr<GrpcurlCommand> call =
      ParseGrpcurl({"grpcurl", "-plaintext", "-d", "{}", "127.0.0.1:7070",
                    "ecliptix.fleet.v1.FleetService/ListDatabases"});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->verb, GrpcurlCommand::Verb::kInvoke);
  EXPECT_EQ(call->data, "{}");
  EXPECT_EQ(MethodFullName(call->symbol),
            "ecliptix.fleet.v1.FleetService.ListDatabases");

  absl::StatusOr<GrpcurlCommand> describe = ParseGrpcurl(
      {"grpcurl", "--plaintext", "localhost:7070", "describe", "a.B"});
  ASSERT_TRUE(describe.ok()) << describe.status();
  EXPECT_EQ(describe->verb, GrpcurlCommand::Verb::kDescribe);
  EXPECT_EQ(describe->symbol, "a.B");

  EXPECT_FALSE(ParseGrpcurl({"grpcurl", "127.0.0.1:7070", "list"}).ok())
      << "TLS without -plaintext";
  EXPECT_FALSE(
      ParseGrpcurl({"grpcurl", "-plaintext", "-bogus", "a:1", "list"}).ok());
  EXPECT_FALSE(ParseGrpcurl({"grpcurl", "-plaintext", "list"}).ok());
}

}  // namespace
}  // namespace ecliptix
