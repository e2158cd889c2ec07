# The API examples, run against a real ecliptix-server with real agents on SQLite files: the C++ client
# library from another Bazel workspace (examples/bazel-consumer) and the Python stubs
# (examples/python). Source it and call run_examples WORK_DIR: it prints a line per example and adds
# to EXAMPLES_PASSED and EXAMPLES_FAILED. Needs the project's root as the current directory and
# tools/lib/common.sh sourced. Run alone: bash tools/lib/examples.sh

EXAMPLES_PASSED=0
EXAMPLES_FAILED=0
EXAMPLES_PIDS=()

# Stops every process run_examples started (tools/test also calls it on exit).
examples_stop() {
  local pid
  for pid in "${EXAMPLES_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${EXAMPLES_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  EXAMPLES_PIDS=()
}

# example_result NAME LOG STATUS: counts one example, shows the log of a failure.
example_result() {
  if (($3 == 0)); then
    EXAMPLES_PASSED=$((EXAMPLES_PASSED + 1))
    echo "examples: PASSED $1" >&2
  else
    EXAMPLES_FAILED=$((EXAMPLES_FAILED + 1))
    echo "examples: FAILED $1 (log: $2)" >&2
    tail -n 30 "$2" 2>/dev/null | sed 's/^/    /' >&2 || true
  fi
}

# expect_lines FILE PATTERN...: every extended regular expression matches some line of FILE.
expect_lines() {
  local file=$1 pattern
  shift
  for pattern in "$@"; do
    grep -Eq -- "$pattern" "$file" || { echo "missing a line matching: $pattern" >>"$file"; return 1; }
  done
}

EXAMPLES=("bazel-consumer list_databases" "python list_fleet.py" "python watch_rollout.py")

# examples_all_failed LOG: the fleet could not be set up, so no example ran.
examples_all_failed() {
  echo "examples: cannot set up the fleet (log: $1)" >&2
  tail -n 20 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true
  EXAMPLES_FAILED=$((EXAMPLES_FAILED + ${#EXAMPLES[@]}))
}

run_examples() {
  local work=$1 started=$SECONDS
  mkdir -p "$work"
  local status

  if ! bazel build //server:ecliptix-server //agent:ecliptix-agent //client:ecliptixctl \
    >"$work/build.log" 2>&1; then
    examples_all_failed "$work/build.log"
    return
  fi
  local bin
  bin=$(bazel info bazel-bin 2>/dev/null)
  local server=127.0.0.1:$(free_port)
  local ctl=("$bin/client/ecliptixctl" --server="$server")

  "$bin/server/ecliptix-server" --listen="$server" --data_dir="$work/server" \
    >"$work/server.log" 2>&1 &
  EXAMPLES_PIDS+=($!)
  local name
  for name in example-1 example-2; do
    "$bin/agent/ecliptix-agent" --server="$server" --database="sqlite://$work/$name.db" \
      --labels="env=example,name=$name" --database_id="ecliptix-$name" \
      --initial_backoff=100ms --max_backoff=1s >"$work/agent-$name.log" 2>&1 &
    EXAMPLES_PIDS+=($!)
  done
  connected() {
    [[ $("${ctl[@]}" fleet list -o json | grep -o CONNECTION_STATE_CONNECTED | wc -l) -eq 2 ]]
  }
  if ! wait_until 30 connected; then
    tail -n 5 "$work"/server.log "$work"/agent-*.log >"$work/fleet.log"
    examples_all_failed "$work/fleet.log"
    examples_stop
    return
  fi
  local fleet_lines=(
    '^ecliptix-example-1 ENGINE_SQLITE CONNECTION_STATE_CONNECTED env=example,name=example-1$'
    '^ecliptix-example-2 ENGINE_SQLITE CONNECTION_STATE_CONNECTED env=example,name=example-2$'
    '^2 databases$'
  )

  # The C++ client library from a workspace of its own (its first build is cold: the disk cache
  # shared with this workspace's build makes the next ones quick).
  local log=$work/bazel-consumer.log
  status=0
  (
    cd examples/bazel-consumer &&
      bazel build //:list_databases &&
      "$(bazel info bazel-bin 2>/dev/null)/list_databases" --server="$server" --selector=env=example
  ) >"$log" 2>&1 && expect_lines "$log" "${fleet_lines[@]}" || status=1
  example_result "bazel-consumer list_databases" "$log" "$status"

  # Python: stubs generated with protoc and grpc_python_plugin, run with Debian's python3 (the
  # python3 first on PATH may be another installation, without grpc).
  log=$work/python-list.log
  status=0
  {
    examples/python/generate.sh "$work/python-stubs" &&
      ECLIPTIX_STUBS=$work/python-stubs /usr/bin/python3 examples/python/list_fleet.py \
        --server="$server" --selector=env=example
  } >"$log" 2>&1 && expect_lines "$log" "${fleet_lines[@]}" || status=1
  example_result "python list_fleet.py" "$log" "$status"

  # A real rollout of bundles/ecliptix, held at a gate until the watcher has its snapshot, so the
  # watcher sees it live: the gate, both databases deployed, the end.
  log=$work/python-watch.log
  status=0
  local rollout='' watcher
  {
    "${ctl[@]}" bundle push bundles/ecliptix &&
      rollout=$("${ctl[@]}" -o json rollout create ecliptix-production-enhancements@1.0.0 \
        --selector=env=example --gate=team --description="API example" |
        grep -o '"rolloutId": *"[^"]*"' | head -1 | sed 's/.*"\(r-[0-9]*\)"/\1/') &&
      [[ -n $rollout ]]
  } >"$log" 2>&1 || status=1
  if ((status == 0)); then
    ECLIPTIX_STUBS=$work/python-stubs timeout 120 /usr/bin/python3 \
      examples/python/watch_rollout.py --server="$server" "$rollout" >"$work/watch.out" 2>&1 &
    watcher=$!
    EXAMPLES_PIDS+=("$watcher")
    snapshot() { grep -q ' snapshot ' "$work/watch.out"; }
    if wait_until 30 snapshot &&
      "${ctl[@]}" rollout attest "$rollout" team --by=examples --comment="API example" >>"$log" 2>&1 &&
      wait "$watcher"; then
      cat "$work/watch.out" >>"$log"
      expect_lines "$log" \
        ' snapshot ecliptix-production-enhancements@1\.0\.0 selector=env=example ROLLOUT_STATE_WAITING_FOR_GATE 2 targets' \
        ' gate GATE_KIND_TEAM_NOTIFIED satisfied=True' \
        ' target ecliptix-example-1 TARGET_STATE_SUCCEEDED' \
        ' target ecliptix-example-2 TARGET_STATE_SUCCEEDED' \
        ' deployment ecliptix-example-1 [a-z-]+/[a-z-]+ step_finished' \
        "^rollout $rollout ended: ROLLOUT_STATE_SUCCEEDED\$" || status=1
    else
      cat "$work/watch.out" >>"$log"
      status=1
    fi
  fi
  example_result "python watch_rollout.py" "$log" "$status"

  examples_stop
  echo "examples: $((SECONDS - started)) s" >&2
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  cd "$(dirname "$0")/../.."
  source tools/lib/common.sh
  examples_work=$(mktemp -d /tmp/ecliptix-examples.XXXXXX)
  trap 'examples_stop; rm -rf "$examples_work"' EXIT
  run_examples "$examples_work"
  echo "examples: $EXAMPLES_PASSED passed, $EXAMPLES_FAILED failed" >&2
  ((EXAMPLES_FAILED == 0))
fi
