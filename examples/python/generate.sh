#!/usr/bin/env bash
# Generates the Python stubs of the Ecliptix Fleet API into a build directory (default: ./build next to
# this script), with Debian's protoc and grpc_python_plugin (packages protobuf-compiler and
# protobuf-compiler-grpc). google/protobuf's own .proto files come from /usr/include (libprotobuf-dev);
# at run time their Python modules come from python3-protobuf.
#   examples/python/generate.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto_root=$here/../../proto
out=${1:-$here/build}
mkdir -p "$out"
/usr/bin/protoc \
  --proto_path="$proto_root" \
  --proto_path=/usr/include \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  "$proto_root"/ecliptix/fleet/v1/*.proto
echo "$out"
