#!/usr/bin/python3
"""Lists the databases of an Ecliptix fleet through FleetService.ListDatabases, page by page.

    examples/python/generate.sh            # once: the stubs, into examples/python/build
    /usr/bin/python3 examples/python/list_fleet.py --server=127.0.0.1:7070 [--selector=env=prod]

Prints one line per database (id, engine, connection state, labels), then the count. Exit code 1 when
the server answers with an error (printed as CODE: message).
"""
import argparse
import os
import sys

sys.path.insert(0, os.environ.get(
    "ECLIPTIX_STUBS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "build")))

import grpc  # noqa: E402
from ecliptix.fleet.v1 import fleet_service_pb2, fleet_service_pb2_grpc, types_pb2  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("ECLIPTIX_SERVER", "127.0.0.1:7070"),
                        help="HOST:PORT of ecliptix-server")
    parser.add_argument("--selector", default="", help="label selector, e.g. env=prod")
    parser.add_argument("--page_size", type=int, default=100)
    args = parser.parse_args()

    with grpc.insecure_channel(args.server) as channel:
        fleet = fleet_service_pb2_grpc.FleetServiceStub(channel)
        request = fleet_service_pb2.ListDatabasesRequest(
            selector=args.selector, page_size=args.page_size)
        count = 0
        try:
            while True:
                page = fleet.ListDatabases(request, timeout=10)
                for database in page.databases:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(database.labels.items()))
                    print(database.database_id, types_pb2.Engine.Name(database.engine),
                          types_pb2.ConnectionState.Name(database.connection_state), labels)
                    count += 1
                if not page.next_page_token:
                    break
                request.page_token = page.next_page_token
        except grpc.RpcError as error:
            print(f"list_fleet: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(f"{count} databases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
