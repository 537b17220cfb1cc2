"""Shared test helpers. Every test names its reference (closed form, statsmodels, scikit-learn,
scipy) and the reason for its tolerance."""

import numpy as np
import pytest

import probmodels  # float64 before any array


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module. An XLA CPU executable maps 100-300
    memory regions (about 275 per first MLE fit of a new program, measured); the suite compiles
    thousands, and past the kernel's vm.max_map_count (65,530) XLA's next compile or cache read
    crashes the process (SIGSEGV), which the full suite did at its ~400th test."""
    yield
    probmodels.clear_compiled()


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def flat_draws(fit, name):
    """Draws of one site with chains and draws merged."""
    d = np.asarray(fit.draws[name])
    return d.reshape((-1,) + d.shape[2:])


# A small Student-t line, its Objective ``obj``, in a script run under several hash seeds (see
# hash_seed_digests): the lowered programs must not depend on the seed (the persistent cache
# keys on them).
LOWER_PRELUDE = """
import hashlib, numpy as np, numpyro.distributions as dist
from probmodels import noise, observe, param
from probmodels.solvers._objective import Objective

def program(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", slope * u + noise.StudentT(df=4.0, scale=scale), obs=x)

u = np.linspace(-1.0, 1.0, 20)
obj = Objective(program, {"u": u, "x": 2.0 * u})
"""


def hash_seed_digests(script: str, seeds=("1", "2", "3")) -> set:
    """The last line ``LOWER_PRELUDE + script`` prints, in a fresh process per hash seed."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    out = set()
    for seed in seeds:
        env = dict(os.environ, PYTHONHASHSEED=seed, PROBMODELS_CACHE_DIR="off", PYTHONPATH=str(root))
        res = subprocess.run([sys.executable, "-c", LOWER_PRELUDE + script], env=env, cwd=root, capture_output=True, text=True, check=True)
        out.add(res.stdout.strip().splitlines()[-1])
    return out
