"""probmodels' programs kept on disk under their jaxpr (probmodels/_programs.py): a fresh process
loads them without lowering, gets the very numbers a compiled program gives, and is never
served the executable of another program (a stale program would be a confident wrong answer)."""

import json
import os
import subprocess
import sys

import numpy as np

import probmodels  # noqa: F401  (float64 before any array)
from probmodels import _programs
from probmodels._config import jit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# MLE of the report's robust line (Newton with Cholesky factors: LAPACK kernels, which only
# lowering registers) and its NUTS posterior; prints the numbers and the JAX events seen
FIT = """
import json, sys, collections
import jax, numpy as np
events = collections.Counter()
jax.monitoring.register_event_duration_secs_listener(lambda e, d, **k: events.update([e.rsplit("/", 1)[-1]]))
import probmodels as pm
from probmodels.examples import robust_line as rl
d = rl.data()
mle = pm.fit(rl.program, d, "mle")
nuts = pm.fit(rl.program, d, "nuts", warmup=200, draws=200, chains=2, progress=False)
print(json.dumps(dict(
    mle=[float(mle.estimate[k]) for k in ("slope", "intercept", "scale")],
    se=[float(mle.stderr[k]) for k in ("slope", "intercept", "scale")],
    nuts=float(np.asarray(nuts.draws["slope"]).sum()),
    lowered=events["jaxpr_to_mlir_module_duration"],
    files=len(os.listdir(sys.argv[1])) if os.path.isdir(sys.argv[1]) else 0,
)))
"""


def _run(script, cache, *args):
    env = dict(os.environ, PROBMODELS_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    folder = os.path.join(str(cache), "probmodels-programs")
    res = subprocess.run(
        [sys.executable, "-c", "import os\n" + script, folder, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_fresh_process_loads_the_fits_programs_without_lowering_them(tmp_path):
    """Reference: the same fits in a process that compiled every program (empty cache). The
    second process lowers none of them and gets bit-identical numbers: the same executables."""
    first = _run(FIT, tmp_path)
    second = _run(FIT, tmp_path)
    assert first["files"] >= 4 and second["files"] == first["files"]  # kept once, read back
    assert first["lowered"] >= first["files"]
    assert second["lowered"] == 0, second
    for k in ("mle", "se", "nuts"):
        assert second[k] == first[k], k


# a program whose constants and code are chosen on the command line
CHANGED = """
import json, sys
import numpy as np
import jax.numpy as jnp
import probmodels
from probmodels._config import jit
scale, table, op = float(sys.argv[2]), np.asarray(json.loads(sys.argv[3])), sys.argv[4]
f = jit(lambda x: getattr(jnp, op)(x) * scale + jnp.asarray(table))
print(json.dumps(dict(out=np.asarray(f(np.arange(3.0))).tolist(), files=len(os.listdir(sys.argv[1])))))
"""


def test_a_changed_program_is_never_served_a_stale_executable(tmp_path):
    """Reference: numpy. A closed-over Python number (a literal of the jaxpr), a closed-over
    array (a constant of the jaxpr) or another operation each make another program: each run
    gives its own numbers and adds its own file; the same program again adds none."""
    x = np.arange(3.0)
    runs = [
        (2.0, [0.0, 1.0, 2.0], "sin"),
        (3.0, [0.0, 1.0, 2.0], "sin"),
        (3.0, [5.0, 1.0, 2.0], "sin"),
        (3.0, [5.0, 1.0, 2.0], "cos"),
        (2.0, [0.0, 1.0, 2.0], "sin"),
    ]
    files = []
    for scale, table, op in runs:
        got = _run(CHANGED, tmp_path, str(scale), json.dumps(table), op)
        np.testing.assert_allclose(got["out"], getattr(np, op)(x) * scale + np.asarray(table), rtol=1e-15)
        files.append(got["files"])
    assert files == [1, 2, 3, 4, 4]


def test_static_arguments_and_keywords_dispatch_as_jit_does():
    """Reference: the same function under ``jax.jit``. Static arguments by position and by
    name, keywords, Python scalars and arrays of two shapes: each signature its own program."""
    import jax

    def f(x, n, scale=1.0, *, mode="sum"):
        y = x * scale + n
        return y.sum() if mode == "sum" else y.max()

    ours = jit(f, static_argnums=(1,), static_argnames=("mode",))
    ref = jax.jit(f, static_argnums=(1,), static_argnames=("mode",))
    calls = [
        ((np.arange(3.0), 2), {}),
        ((np.arange(3.0), 3), {"scale": 2.0}),
        ((np.arange(4.0), 3), {"scale": 2.0, "mode": "max"}),
        ((np.arange(4.0), 3, 0.5), {"mode": "max"}),
        ((np.arange(3.0),), {"n": 2}),  # a static position passed by name
    ]
    for args, kwargs in calls:
        assert float(ours(*args, **kwargs)) == float(ref(*args, **kwargs))
    if _programs.directory() is not None:
        assert len(ours._kept.table) == 5


def test_off_with_the_cache():
    """``PROBMODELS_CACHE_DIR=off`` keeps nothing on disk: the programs go through jax.jit."""
    res = subprocess.run(
        [sys.executable, "-c", "import probmodels; from probmodels import _programs; print(_programs.directory())"],
        env=dict(os.environ, PROBMODELS_CACHE_DIR="off", PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip() == "None"


def test_a_program_with_a_host_callback_stays_in_memory(tmp_path):
    """A host callback's Python function is not in the jaxpr's text (nor could its executable
    call it from another process): not kept on disk, computed by jax.jit."""
    script = """
import json, sys
import jax, numpy as np
import probmodels
from probmodels._config import jit
f = jit(lambda x: jax.pure_callback(lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct((3,), np.float64), x) + 1.0)
out = np.asarray(f(np.arange(3.0))).tolist()
print(json.dumps(dict(out=out, files=len(os.listdir(sys.argv[1])) if os.path.isdir(sys.argv[1]) else 0)))
"""
    got = _run(script, tmp_path)
    assert got == {"out": [1.0, 3.0, 5.0], "files": 0}


def test_outputs_named_after_the_inputs_keep_their_names():
    """One jaxpr for two input trees (a function that names its outputs after its inputs'
    keys): each call gets its own tree back, in this process and from the file."""
    f = jit(lambda d: {k: v * (i + 2) for i, (k, v) in enumerate(sorted(d.items()))})
    x, y = np.arange(3.0), np.ones(3)
    first = f({"a": x, "b": y})
    second = f({"c": x, "d": y})
    assert sorted(first) == ["a", "b"] and sorted(second) == ["c", "d"]
    np.testing.assert_array_equal(second["c"], 2 * x)
    np.testing.assert_array_equal(second["d"], 3 * y)


# the report helper's figures that run JAX outside a fit: the noise models at an estimate (the
# program run outside any trace) and the prior predictive check
FIGURES = """
import json, sys, collections
import jax, numpy as np
events = collections.Counter()
jax.monitoring.register_event_duration_secs_listener(lambda e, d, **k: events.update([e.rsplit("/", 1)[-1]]))
import probmodels
from probmodels import _report_figures as figs, _report_helper
from probmodels.examples import robust_line as rl
d = rl.data()
models = figs.noise_models_at(rl.program, d, {"slope": np.array(2.0), "intercept": np.array(1.0), "scale": np.array(0.5)}, "program")
fig = figs.plot_penalty_geometry(models)
prior, note = _report_helper.prior_figure(rl.program, d, "x")
print(json.dumps(dict(
    models={k: [type(m).__name__, float(m.scale), float(getattr(m, "df", 0.0))] for k, m in models.items()},
    curve=[float(v) for v in fig.axes[0].lines[0].get_ydata()[::100]],
    lowered=events["jaxpr_to_mlir_module_duration"],
    mlir=any("mlir.dialects.mhlo" in m for m in sys.modules),
)))
"""


def test_the_figures_lower_nothing_in_a_fresh_process(tmp_path):
    """Reference: the first process, which compiled every program. A program that compiles in
    milliseconds is kept too, and the noise models are read off the program without running its
    JAX operations one by one (each would be an XLA program of its own, compiled in every
    process): the second process lowers nothing, not even XLA's MLIR modules are imported,
    and it draws the same curves."""
    first = _run(FIGURES, tmp_path)
    second = _run(FIGURES, tmp_path)
    assert first["lowered"] > 0
    assert second["lowered"] == 0 and not second["mlir"], second
    assert second["models"] == first["models"] and second["curve"] == first["curve"]
    assert list(first["models"].values()) == [["StudentT", 0.5, 4.0]]
