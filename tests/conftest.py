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
