"""The benchmark harness: sizes, the worker runner (one fresh process per measurement), the
machine and library state, and helpers shared by the sections."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEED = 20240607

# sizes (overridden by --quick)
CFG = dict(
    chains=4,
    warmup=1000,
    draws=1000,
    sizes=dict(linear=(10_000, 20), logistic=(10_000, 20), poisson=(10_000, 10), schools=(8, 0), student=(2_000, 5), mlp=(500, 10)),
    big=(1_000_000, 50),
    reps=5,
    # warm point fits and their references take milliseconds at N = 10,000: a median of 31
    point_reps=31,
    # NUTS on the MLP posterior uses deep trees: at the default maximum depth (10) probmodels
    # samples for ~120 s (identified min ESS 2400, 20 ESS/s) and PyMC and pystan would take many
    # times longer, so the MLP runs with max tree depth 7 for every sampler.
    mlp_max_depth=7,
    pathfinder_draws=1000,
)
QUICK = dict(
    chains=4,
    warmup=150,
    draws=150,
    sizes=dict(linear=(1_000, 5), logistic=(1_000, 5), poisson=(1_000, 4), schools=(8, 0), student=(300, 3), mlp=(100, 5)),
    big=(50_000, 20),
    reps=2,
    point_reps=3,
    mlp_max_depth=7,
    pathfinder_draws=1000,
)

RUN = os.path.join(HERE, "run.py")  # the command line the workers run (``--worker``)


class CompileLog:
    """JAX's compile events while active: seconds of tracing, lowering to MLIR and XLA compiling,
    in total and per jitted function (JAX passes ``fun_name`` to its monitoring listeners), and
    persistent-cache hits (an XLA "compile" that was a cache read)."""

    EVENTS = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "xla",
    }

    def __init__(self, log_functions=False):
        import jax

        self.active = False
        self._hit = False
        self.__enter__()
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._on)
        jax.monitoring.register_event_listener(self._on_event)

    def _on_event(self, event, **_):
        if self.active and event == "/jax/compilation_cache/cache_hits":
            self._hit = True

    def _on(self, event, duration, **kw):
        if not (self.active and event in self.EVENTS):
            return
        k = self.EVENTS[event]
        self.totals[k] += duration
        name = str(kw.get("fun_name", "?"))
        m = re.fullmatch(r"(?:jit|pjit)\((.*)\)", name)
        name = m.group(1) if m else name
        a = self.functions.setdefault(name, {"trace": 0.0, "lower": 0.0, "xla": 0.0, "n": 0, "cache_hit": 0})
        a[k] += duration
        if k == "xla":
            self.totals["n_xla"] += 1
            a["n"] += 1
            if self._hit:
                self.totals["cache_hits"] += 1
                a["cache_hit"] += 1
            self._hit = False

    def __enter__(self):
        self.totals = {"trace": 0.0, "lower": 0.0, "xla": 0.0, "n_xla": 0, "cache_hits": 0}
        self.functions = {}
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        return False

    def summary(self):
        return dict(self.totals, functions={k: dict(v) for k, v in self.functions.items()})


def max_depth(model):
    return CFG["mlp_max_depth"] if model == "mlp" and CFG.get("mlp_max_depth") else 10


def _median_time(fn, reps):
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def _first_time(fn):
    """The first call of a reference in this process (its modules imported, nothing run yet):
    what its user waits for on a first fit, as probmodels' first fit is timed."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Clock:
    """``with clock("name")``: wall seconds into ``out[name + "_s"]``, this process's CPU seconds
    (all its threads) into ``out[name + "_cpu_s"]``; CPU time is what other processes on a busy
    machine disturb least."""

    def __init__(self, out):
        self.out = out

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.out[self.name + "_s"] = time.perf_counter() - self.t
        self.out[self.name + "_cpu_s"] = time.process_time() - self.c
        return False


# =============================================================================================
# the parent: run the workers, compute the diagnostics, write RESULTS.md


def machine_busy(seconds: float = 2.0) -> float:
    """Share of the machine's CPU busy over the next ``seconds`` (no worker runs meanwhile: it is
    what other processes use)."""
    def snap():
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
        return sum(f[:8]), f[3] + f[4]

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


class Runner:
    """Runs workers one at a time. On a shared machine it first waits (up to ``wait_budget``
    seconds over the whole run) until other processes use less than ``quiet`` of the CPU, and
    runs a job again once if other processes took more than ``retry_above`` of the machine while
    it ran: timings are only comparable when the tools had the machine to themselves."""

    def __init__(self, quick: bool, workdir: str, log, wait_budget: float = 0.0, quiet: float = 0.10, retry_above: float = 0.15):
        self.quick, self.workdir, self.log = quick, workdir, log
        self.failures = {}
        self.loads = []
        self.wait_budget, self.quiet, self.retry_above = wait_budget, quiet, retry_above
        self.waited = 0.0
        self.retries = 0

    def wait_quiet(self):
        while self.waited < self.wait_budget:
            busy = machine_busy(2.0)
            self.waited += 2.0
            if busy < self.quiet:
                return
            time.sleep(3.0)
            self.waited += 3.0

    def run(self, job: dict, env_extra: dict | None = None, timeout: float = 1200.0):
        if self.wait_budget > 0:
            self.wait_quiet()
        out, draws, err = self._run(job, env_extra, timeout)
        bg = ((out or {}).get("_process") or {}).get("background", 0.0)
        if out is not None and bg > self.retry_above and self.waited < self.wait_budget:
            self.retries += 1
            self.log(f"    other processes took {100 * bg:.0f}% of the machine: waiting for a quiet machine and running it again")
            self.wait_quiet()
            out2, draws2, err2 = self._run(job, env_extra, timeout)
            if out2 is not None and out2["_process"]["background"] < bg:
                out, draws, err = out2, draws2, err2
        return out, draws, err

    def _run(self, job: dict, env_extra: dict | None = None, timeout: float = 1200.0):
        job = dict(job, quick=self.quick, out=os.path.join(self.workdir, f"job-{uuid.uuid4().hex[:10]}.json"))
        env = dict(os.environ)
        env.setdefault("PROBMODELS_CACHE_DIR", "off")
        env["PYTHONWARNINGS"] = "ignore"
        env.update(env_extra or {})
        label = " ".join(f"{k}={v}" for k, v in job.items() if k not in ("out", "quick"))
        load0 = os.getloadavg()[0]
        busy0 = busy_cpu_seconds()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        try:
            res = subprocess.run(
                [sys.executable, RUN, "--worker", json.dumps(job)],
                capture_output=True, text=True, env=env, timeout=timeout, cwd=self.workdir,
            )
            rc, err = res.returncode, res.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = "timeout", f"timed out after {timeout:.0f} s\n" + (e.stderr or b"").decode(errors="replace")[-2000:] if isinstance(e.stderr, bytes) else f"timed out after {timeout:.0f} s"
        took = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        load1 = os.getloadavg()[0]
        # CPU seconds other processes used meanwhile (the other engineer's tests, ...)
        foreign = max(busy_cpu_seconds() - busy0 - cpu, 0.0)
        ncpu = os.cpu_count() or 1
        bg = foreign / max(took * ncpu, 1e-9)
        self.loads.append(bg)
        if rc != 0 or not os.path.exists(job["out"]):
            tail = "\n".join(err.strip().splitlines()[-15:]) if err else ""
            self.log(f"  FAILED ({took:.0f} s): {label}\n{textwrap.indent(tail, '    ')}")
            return None, None, tail
        with open(job["out"]) as fh:
            out = json.load(fh)
        draws = None
        if os.path.exists(job["out"] + ".npz"):
            with np.load(job["out"] + ".npz") as z:
                draws = {k: z[k] for k in z.files}
        self.log(f"  ok ({took:.0f} s, cpu {cpu:.0f} s, other processes {100 * bg:.0f}% of the machine): {label}")
        out["_process"] = dict(elapsed_s=took, cpu_s=cpu, load_before=load0, load_after=load1, background=bg)
        return out, draws, None


def busy_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``), 0 where unavailable."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def versions() -> dict:
    out = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for p in ("probmodels", "jax", "jaxlib", "numpyro", "arviz", "numpy", "scipy", "optax", "pymc", "pytensor", "nutpie", "numba", "pystan", "httpstan", "statsmodels", "scikit-learn"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def library_state() -> dict:
    """The probmodels commit measured, and a hash of its working-tree changes (the library may be
    edited while the benchmark runs: the start and end states are compared)."""
    import hashlib

    def git(*a):
        try:
            return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD")
    tree = git("rev-parse", "--short", "HEAD:probmodels")  # the library's files (a commit elsewhere leaves it)
    dirty = git("status", "--porcelain", "--", "probmodels")
    diff = git("diff", "HEAD", "--", "probmodels")
    return dict(commit=head, tree=tree, dirty=bool(dirty), diff_hash=hashlib.sha1(diff.encode()).hexdigest()[:10] if diff else "")


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return dict(nproc=nproc, memory=mem, cpu=cpu, os=platform.platform())


def fmt(v, nd=2):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def bg(o) -> str:
    p = (o or {}).get("_process") or {}
    return f"{100 * p['background']:.0f}%" if "background" in p else "n/a"


