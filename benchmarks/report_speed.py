"""Wall time of the main job, ``probmodels report`` on the built-in example, as a user waits for it.

Each run is a fresh process (the ``probmodels report --out DIR`` command, as a user runs it:
the command starts the report's helper process before its own imports), timed from start to
exit. "cold": an empty JAX compilation cache (a fresh clone); "warm": the cache the cold run
filled. With and without the report's helper process (``PROBMODELS_REPORT_HELPER``).

Usage::

    python benchmarks/report_speed.py [--repeats 3] [--model models/robust_regression.py]

Prints one line per run and the medians; run it on an idle machine (two cores here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["run_once", "main"]


def run_once(cache: str, out: str, helper: bool, model: str | None = None) -> float:
    """Seconds from the start of a ``probmodels report`` process to its exit."""
    env = dict(os.environ, PROBMODELS_CACHE_DIR=cache, PROBMODELS_REPORT_HELPER="1" if helper else "0")
    command = os.path.join(os.path.dirname(sys.executable), "probmodels")  # (the venv's own)
    if not os.path.exists(command):  # not installed as a command: the module (no early helper)
        command = None
    cmd = ([command] if command else [sys.executable, "-m", "probmodels"]) + ["report"] + ([model] if model else []) + ["--out", out, "--quiet"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"report failed:\n{res.stderr[-3000:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):  # (alternated: a machine that slows down hits both alike)
            for helper in (True, False):
                name = "helper" if helper else "one process"
                cache = os.path.join(tmp, f"cache-{name}-{i}")  # empty: a cold run, then a warm one
                cold = run_once(cache, os.path.join(tmp, "out"), helper, args.model)
                warm = run_once(cache, os.path.join(tmp, "out"), helper, args.model)
                results.setdefault((name, "cold"), []).append(cold)
                results.setdefault((name, "warm"), []).append(warm)
                print(f"{name:12s} run {i + 1}: cold {cold:5.1f} s, warm {warm:5.1f} s", flush=True)
    for (name, kind), values in results.items():
        print(f"median {name:12s} {kind}: {statistics.median(values):5.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
