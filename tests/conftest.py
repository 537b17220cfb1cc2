"""Shared test helpers. Every test names its reference (closed form, statsmodels, scikit-learn,
scipy) and the reason for its tolerance."""

import numpy as np
import pytest

import probmodels  # noqa: F401  (float64 before any array)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def flat_draws(fit, name):
    """Draws of one site with chains and draws merged."""
    d = np.asarray(fit.draws[name])
    return d.reshape((-1,) + d.shape[2:])
