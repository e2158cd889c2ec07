#!/usr/bin/python3
"""Watches a rollout through RolloutService.WatchRollout until it ends, printing each event.

    examples/python/generate.sh            # once: the stubs, into examples/python/build
    /usr/bin/python3 examples/python/watch_rollout.py --server=127.0.0.1:7070 r-1

The stream starts with a snapshot of the rollout, then sends every event with consecutive sequence
numbers, and ends when the rollout reaches a final state. Prints one line per event and, at the end,
"rollout r-1 ended: ROLLOUT_STATE_...". Exit code 0 when the rollout succeeded, 1 otherwise
(another final state, or an error from the server, printed as CODE: message).
"""
import argparse
import os
import sys

sys.path.insert(0, os.environ.get(
    "ECLIPTIX_STUBS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "build")))

import grpc  # noqa: E402
from ecliptix.fleet.v1 import rollout_pb2, rollout_pb2_grpc  # noqa: E402


def describe(event):
    """One line for an event."""
    kind = event.WhichOneof("kind")
    if kind == "snapshot":
        rollout = event.snapshot
        return (f"snapshot {rollout.bundle_name_version} selector={rollout.selector} "
                f"{rollout_pb2.RolloutState.Name(rollout.state)} "
                f"{len(rollout.targets)} targets in {rollout.wave_count} waves")
    if kind == "state_changed":
        change = event.state_changed
        return f"rollout {rollout_pb2.RolloutState.Name(change.state)} {change.reason}".rstrip()
    if kind == "wave":
        wave = event.wave
        return (f"wave {wave.wave} {'started' if wave.started else 'ended'} "
                f"{','.join(wave.database_ids)}").rstrip()
    if kind == "target":
        target = event.target
        line = f"target {target.database_id} {rollout_pb2.TargetState.Name(target.state)}"
        return f"{line} {target.error}" if target.error else line
    if kind == "deployment":
        deployment = event.deployment.event
        return (f"deployment {event.deployment.database_id} {deployment.phase}/{deployment.step} "
                f"{deployment.WhichOneof('kind')}")
    if kind == "gate":
        return f"gate {rollout_pb2.GateKind.Name(event.gate.kind)} satisfied={event.gate.satisfied}"
    return f"event {kind}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("ECLIPTIX_SERVER", "127.0.0.1:7070"),
                        help="HOST:PORT of ecliptix-server")
    parser.add_argument("--after_sequence", type=int, default=0,
                        help="resume after this event sequence number")
    parser.add_argument("--progress", action="store_true",
                        help="also print each statement's progress within a step")
    parser.add_argument("rollout_id")
    args = parser.parse_args()

    state = rollout_pb2.ROLLOUT_STATE_UNSPECIFIED
    with grpc.insecure_channel(args.server) as channel:
        rollouts = rollout_pb2_grpc.RolloutServiceStub(channel)
        request = rollout_pb2.WatchRolloutRequest(
            rollout_id=args.rollout_id, after_sequence=args.after_sequence)
        try:
            for event in rollouts.WatchRollout(request):
                if (not args.progress and event.HasField("deployment")
                        and event.deployment.event.HasField("statement_progress")):
                    continue
                print(f"#{event.sequence} {describe(event)}", flush=True)
                if event.HasField("snapshot"):
                    state = event.snapshot.state
                elif event.HasField("state_changed"):
                    state = event.state_changed.state
        except grpc.RpcError as error:
            print(f"watch_rollout: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(f"rollout {args.rollout_id} ended: {rollout_pb2.RolloutState.Name(state)}")
    return 0 if state == rollout_pb2.ROLLOUT_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
