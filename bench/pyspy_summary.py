"""Summarise a `py-spy record --format raw --subprocesses` file by cluster process role.

    python -m bench.pyspy_summary bench/logs/pyspy-tp0-....txt bench/results/latest.json \
        --broker orm --scenario tp0 [--top 30]

Roles (worker, pusher, ...) come from the processes recorded in the results JSON. For
each role: samples, then the functions with the most inclusive samples (a function is
counted once per stack), then the most self samples (the innermost frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict

# Where a worker's GIL time goes: the first bucket whose marker is in the stack.
BUCKETS = [
    ("claim: deliveries_claim", "deliveries_claim ("),
    ("record: endpoint health", "endpoints_after_attempts ("),
    ("record: ordered_release_next", "ordered_release_next ("),
    ("record: rest of attempts_record", "attempts_record ("),
    ("send: transport.send (pool threads)", "send (deliveries/transport.py"),
    ("send: build_request", "build_request ("),
    ("deliver: other", "deliver (deliveries/engine.py"),
    ("task wrapper (close_old_connections...)", "deliver (deliveries/tasks.py"),
    ("dispatcher loop", "dispatch_loop ("),
    ("django-q2 worker loop (queue, signals, pickling)", "worker (django_q/worker.py"),
    ("thread pool idle/other", "_worker (concurrent/futures/thread.py"),
]


def buckets(raw_path: str, roles: dict[int, str]) -> str:
    totals: Counter = Counter()
    per: dict[str, Counter] = defaultdict(Counter)
    with open(raw_path) as raw:
        for line in raw:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            procs = [i for i, frame in enumerate(frames) if frame.startswith("process ")]
            if not procs:
                continue
            pid = int(frames[procs[-1]].split()[1].split(":")[0])
            role = roles.get(pid, f"pid {pid}")
            if not role.startswith("worker"):
                continue
            n = int(count)
            name = next((b for b, marker in BUCKETS if marker in stack), "other")
            totals[role] += n
            per[role][name] += n
    out = []
    for role, total in totals.most_common():
        out.append(f"=== {role}: {total} samples, by stage")
        for name, n in per[role].most_common():
            out.append(f"    {n:6d} {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)


def summarise(raw_path: str, roles: dict[int, str], top: int) -> str:
    per_role: Counter = Counter()
    inclusive: dict[str, Counter] = defaultdict(Counter)
    own: dict[str, Counter] = defaultdict(Counter)
    with open(raw_path) as raw:
        for line in raw:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            procs = [i for i, frame in enumerate(frames) if frame.startswith("process ")]
            if not procs:
                continue
            last = procs[-1]
            pid = int(frames[last].split()[1].split(":")[0])
            role = roles.get(pid, f"pid {pid}")
            body = [
                f.split(" (")[0] + " (" + f.split(" (")[1].rsplit(":", 1)[0] + ")"
                if " (" in f
                else f
                for f in frames[last + 1 :]
            ]
            per_role[role] += n
            for frame in set(body):
                inclusive[role][frame] += n
            if body:
                own[role][body[-1]] += n
    out = []
    for role, total in per_role.most_common():
        out.append(f"=== {role}: {total} samples")
        out.append("  inclusive:")
        for frame, n in inclusive[role].most_common(top):
            out.append(f"    {n:6d} {100 * n / total:5.1f}%  {frame}")
        out.append("  self:")
        for frame, n in own[role].most_common(max(10, top // 2)):
            out.append(f"    {n:6d} {100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("results")
    parser.add_argument("--broker", default="orm")
    parser.add_argument("--scenario", default="tp0")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    with open(args.results) as fh:
        results = json.load(fh)
    processes = results["delivery"][args.broker]["scenarios"][args.scenario]["qcluster"][
        "processes"
    ]
    roles = {p["pid"]: p["role"] for p in processes}
    print(buckets(args.raw, roles))
    print(summarise(args.raw, roles, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
