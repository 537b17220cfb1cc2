"""Shared test helpers. Every test names its reference (closed form, statsmodels, scikit-learn,
scipy) and the reason for its tolerance."""

import os

# The test run compiles without JAX's persistent compilation cache (and so do the processes it
# starts: notebook kernels, the report's CLI, dask workers inherit the environment). With the
# cache on, the full suite twice ended in a crash (SIGSEGV/SIGABRT) inside JAX's deserialisation
# of a cached executable (jax/_src/compilation_cache.py get_executable_and_time), at the same
# point-fit test, on an idle machine and a fresh cache directory; the tests of the library's own
# behaviour do not depend on the cache.
os.environ.setdefault("PROBMODELS_CACHE_DIR", "off")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import probmodels  # noqa: E402, F401  (float64 before any array)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def flat_draws(fit, name):
    """Draws of one site with chains and draws merged."""
    d = np.asarray(fit.draws[name])
    return d.reshape((-1,) + d.shape[2:])
