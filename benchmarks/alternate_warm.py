"""Warm runs of ``rexfit JOB`` taken in alternation, for before/after comparisons on a machine
whose speed drifts from minute to minute: every (tree, job) pair gets its own compilation
cache, filled by one cold run, then the pairs run in turn (the order reversed every round) and
each run's CPU seconds (user + system of the whole process) and wall seconds are printed, with
the median, range and, for two pairs, the per-round ratio.

    python benchmarks/alternate_warm.py --trees /tmp/before /tmp/after --jobs job.xml
    python benchmarks/alternate_warm.py --trees . --jobs job-one.xml job-split.xml --rounds 8

A tree is a rexfit checkout (put first on PYTHONPATH of its runs); runs use ``-q
--no-plots`` as ``benchmarks/whole_job.py`` does.  Caches and outputs go under ``--work``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run(tree: Path, job: Path, out: Path, cache: Path) -> tuple[float, float]:
    """(CPU s, wall s) of one ``python -m rexfit job -q --no-plots`` with ``tree``'s rexfit."""
    env = dict(os.environ, REXFIT_CACHE_DIR=str(cache), PYTHONPATH=str(tree))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rexfit", str(job), "-q", "--no-plots",
                             "--output-dir", str(out)], env=env, cwd=tree,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{job} with {tree} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", type=Path, required=True)
    ap.add_argument("--jobs", nargs="+", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rexfit-alternate"))
    args = ap.parse_args()
    pairs = [(t.resolve(), j.resolve()) for t in args.trees for j in args.jobs]
    names = {p: f"{p[0].name}:{p[1].stem}" for p in pairs}
    places = {p: args.work / f"{k}-{p[0].name}-{p[1].stem}" for k, p in enumerate(pairs)}
    for p in pairs:  # one cold run fills each pair's cache
        cache = places[p] / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        cpu, wall = run(*p, places[p] / "cold", cache)
        print(f"cold  {names[p]:40s} CPU {cpu:6.2f}  wall {wall:6.2f}", flush=True)
    seen: dict = {p: [] for p in pairs}
    for r in range(args.rounds):
        for p in (pairs if r % 2 == 0 else pairs[::-1]):
            cpu, wall = run(*p, places[p] / "warm", places[p] / "cache")
            seen[p].append((cpu, wall))
            print(f"round {r} {names[p]:38s} CPU {cpu:6.2f}  wall {wall:6.2f}", flush=True)
    print()
    for p in pairs:
        cpu, wall = [c for c, _ in seen[p]], [w for _, w in seen[p]]
        print(f"{names[p]:40s} CPU median {statistics.median(cpu):5.2f} "
              f"({min(cpu):.2f}–{max(cpu):.2f}), wall median {statistics.median(wall):5.2f}")
    if len(pairs) == 2:
        ratio = [b[0] / a[0] for a, b in zip(seen[pairs[0]], seen[pairs[1]])]
        print(f"CPU {names[pairs[1]]} / {names[pairs[0]]} per round: "
              f"{', '.join(f'{x:.2f}' for x in ratio)} (median {statistics.median(ratio):.2f})")


if __name__ == "__main__":
    main()
