// Lists the databases of an Ecliptix fleet with the C++ client library:
//   list_databases --server=HOST:PORT [--selector=S]
// One line per database: id, engine, connection state and labels. Exit code 1
// when the server cannot be asked, 2 for bad arguments.
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "client/fleet_client.h"

namespace {

namespace v1 = ::ecliptix::fleet::v1;

}  // namespace

int main(int argc, char** argv) {
  ecliptix::client::ClientOptions options;
  std::string selector;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--server=")) {
      options.server_address = arg.substr(sizeof("--server=") - 1);
    } else if (absl::StartsWith(arg, "--selector=")) {
      selector = arg.substr(sizeof("--selector=") - 1);
    } else {
      std::cerr << "usage: list_databases --server=HOST:PORT [--selector=S]\n";
      return 2;
    }
  }
  auto client = ecliptix::client::FleetClient::Create(options);
  if (!client.ok()) {
    std::cerr << "list_databases: " << client.status() << "\n";
    return 2;
  }
  auto databases = (*client)->ListAllDatabases(selector);
  if (!databases.ok()) {
    std::cerr << "list_databases: " << databases.status() << "\n";
    return 1;
  }
  for (const v1::Database& database : *databases) {
    std::cout << database.database_id() << " "
              << v1::Engine_Name(database.engine()) << " "
              << v1::ConnectionState_Name(database.connection_state()) << " "
              << absl::StrJoin(
                     std::map<std::string, std::string>(
                         database.labels().begin(), database.labels().end()),
                     ",", absl::PairFormatter("="))
              << "\n";
  }
  std::cout << databases->size() << " databases\n";
  return 0;
}
