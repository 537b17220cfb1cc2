"""probmodels against its peers, side by side, in one run (issue 7): writes ``benchmarks/RESULTS.md``.

Run (about 25 minutes on 2 cores)::

    python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,bench]'
    .venv/bin/python benchmarks/run.py            # everything -> benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --quick    # small sizes, short chains: a smoke test

Not part of the test suite (pytest collects ``tests/`` only).

Layout: this file is the command line (``main``) and the page's frame (``render``);
``harness.py`` runs the workers (one fresh process per measurement) and holds the sizes;
``frameworks.py`` the models written for each framework and their data; one module per section
(``section_nuts``, ``section_point``, ``section_gradient``, ``section_analysis``,
``section_pathfinder``), each with its workers, its ``run(ctx)`` and its ``render(raw, add)``.

What it measures
----------------
* Posterior sampling, the same six models on the same data: probmodels ``fit(..., "nuts")``, raw
  numpyro ``MCMC(NUTS)``, PyMC's default sampler (``pm.sample``), nutpie (compiling the PyMC model)
  and pystan (Stan 3: ``stan.build`` + ``sample``); 4 chains, 1000 warm-up, 1000 draws each. Wall
  time including compilation, sampling time, min bulk ESS and max r-hat (``arviz.ess`` /
  ``arviz.rhat`` on every method's draws, computed here, the same way for all), ESS per second
  (compile included), divergences.
* MLE and MAP: first fit and warm fit (new data of the same shapes) against statsmodels and
  scikit-learn, and the largest difference of the estimates; N = 10,000 and N = 1,000,000.
* One gradient of the logistic negative log-likelihood at N = 1e6, d = 50 against the time to
  stream the 400 MB design matrix once (the memory-bandwidth floor).
* Where probmodels' time goes: tracing / lowering / XLA compile per jitted function, chain_method,
  float32 vs float64 (raw numpyro), the persistent compilation cache.

Every measurement of a first fit or a compile runs in a fresh Python subprocess (``--worker``);
probmodels' "cold" numbers use an empty ``PROBMODELS_CACHE_DIR``, its "warm-cache" numbers a second
process on the same directory. Every worker builds its data from a fixed seed, so all methods see
identical arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import NamedTuple

import numpy as np

import section_analysis
import section_gradient
import section_nuts
import section_pathfinder
import section_point
from frameworks import MODELS
from harness import CFG, HERE, QUICK, Runner, library_state, machine, versions
from section_nuts import SAMPLERS

#: the sections, in the order they run and appear in RESULTS.md
SECTIONS = dict(nuts=section_nuts, point=section_point, gradient=section_gradient, analysis=section_analysis, pathfinder=section_pathfinder)
WORKERS = {kind: fn for s in SECTIONS.values() for kind, fn in s.WORKERS.items()}


def worker_main(spec: str):
    """One measurement in this (fresh) process: the job's worker, its numbers to ``job["out"]``."""
    job = json.loads(spec)
    if job.get("quick"):
        CFG.update(QUICK)
    out, draws = WORKERS[job["kind"]](job)
    if draws is not None:
        np.savez(job["out"] + ".npz", **{k: np.asarray(v, dtype=np.float64) for k, v in draws.items()})
    with open(job["out"], "w") as fh:
        json.dump(out, fh)


class Context(NamedTuple):
    """What a section's ``run`` needs of the run."""

    R: Runner
    raw: dict
    failures: dict
    log: object
    cache: object
    sections: set
    models: list
    samplers: list
    pytensor_flags: str


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and short chains (a smoke test)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--models", default=",".join(MODELS), help="models for the NUTS section")
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="samplers for the NUTS section")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    ap.add_argument("--wait", type=float, default=900.0,
                    help="seconds in all to wait for other processes to leave the CPU before jobs, and to rerun "
                         "a job they disturbed (0: never wait)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--render", default=None, metavar="RAW_JSON",
                    help="only rewrite --out from the raw numbers of an earlier run (its --json or raw.json)")
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker)
        return
    if args.render:
        with open(args.render) as fh:
            raw = json.load(fh)
        if raw.get("config"):
            CFG.update(raw["config"])
        with open(args.out, "w") as fh:
            fh.write(render(raw, args))
        print(f"wrote {args.out} from {args.render}")
        return
    if args.quick:
        CFG.update(QUICK)
    sections = set(args.sections.split(","))
    models = [m for m in args.models.split(",") if m]
    samplers = [s for s in args.samplers.split(",") if s]
    t_start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="probmodels-bench-")

    def log(msg):
        print(msg, flush=True)

    R = Runner(args.quick, workdir, log, wait_budget=args.wait)
    raw = dict(config={k: v for k, v in CFG.items()}, versions=versions(), machine=machine(), library_start=library_state())
    failures = {}

    def cache():
        return tempfile.mkdtemp(prefix="pmcache-", dir=workdir)

    pytensor_flags = f"compiledir={tempfile.mkdtemp(prefix='pytensor-', dir=workdir)}"

    ctx = Context(R, raw, failures, log, cache, sections, models, samplers, pytensor_flags)
    for name, section in SECTIONS.items():
        if name in sections:
            section.run(ctx)

    total = time.perf_counter() - t_start
    raw["total_s"] = total
    raw["failures"] = failures
    raw["background"] = R.loads
    raw["waited_s"], raw["retries"] = R.waited, R.retries
    raw["library_end"] = library_state()
    raw["generated"] = time.strftime("%Y-%m-%d %H:%M")
    raw["quick"] = bool(args.quick)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1, default=str)
    with open(os.path.join(workdir, "raw.json"), "w") as fh:
        json.dump(raw, fh, indent=1, default=str)
    text = render(raw, args)
    with open(args.out, "w") as fh:
        fh.write(text)
    log(f"wrote {args.out} ({total / 60:.1f} min); raw numbers in {os.path.join(workdir, 'raw.json')}")



# =============================================================================================
# RESULTS.md


def render(raw: dict, args) -> str:
    v, mach = raw["versions"], raw["machine"]
    L = []
    add = L.append
    quick = bool(args.quick or raw.get("quick"))  # (--render: as the run was)
    cmd = ".venv/bin/python benchmarks/run.py" + (" --quick" if quick else "")
    add("# probmodels benchmarks (issue 7)\n")
    add(f"Generated by `benchmarks/run.py` on {raw.get('generated') or time.strftime('%Y-%m-%d %H:%M')} in {raw['total_s'] / 60:.1f} min"
        + (" (**--quick: small sizes, short chains; not the reference numbers**)" if quick else "") + ".\n")
    add("Rerun (from the repository root):\n")
    add("```bash\npython3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,bench]'\n" + cmd + "\n```\n")
    add(f"**Machine**: `nproc` = {mach['nproc']}, memory {mach['memory']}, CPU {mach['cpu']}, {mach['os']}.\n")
    add("**Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".\n")
    ls, le = raw.get("library_start") or {}, raw.get("library_end") or {}
    if ls:
        state = f"probmodels at commit `{ls['commit']}`" + (f" with uncommitted changes (diff {ls['diff_hash']})" if ls["dirty"] else "")
        ident = "tree" if ls.get("tree") and le.get("tree") else "commit"
        if le and (le.get(ident), le.get("diff_hash")) != (ls.get(ident), ls.get("diff_hash")):
            state += (f"; **the library changed while the benchmark ran** (at the end: `{le['commit']}`"
                      + (f", diff {le['diff_hash']}" if le.get("dirty") else "") + "), so later sections may measure newer code")
        add(f"**Library measured**: {state}.\n")
    loads = raw.get("background") or []
    if loads:
        mean = 100 * float(np.mean(loads))
        add(f"**Other processes** used on average {mean:.0f}% of the machine's CPU while the benchmark's "
            f"workers ran (from `/proc/stat`, minus the workers' own CPU time; per run in the *other processes* "
            f"columns); the run waited {raw.get('waited_s', 0):.0f} s in all for a quiet machine and "
            f"reran {raw.get('retries', 0)} disturbed job(s)." + (" **The machine was shared: wall times are inflated, most for the tools that "
                            "use both cores (PyMC with `cores=2`, nutpie, pystan), least for single-threaded runs.**"
                            if mean > 10 else "") + "\n")

    for section in SECTIONS.values():
        section.render(raw, add)

    fails = raw.get("failures") or {}
    add("## Peers that failed\n")
    if not fails:
        add("None: probmodels, raw numpyro, PyMC, nutpie and pystan all installed and ran every model.\n")
    else:
        for k, e in fails.items():
            add(f"- **{k}**:\n\n```\n{e}\n```\n")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()

