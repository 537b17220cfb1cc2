"""The program seen from the unconstrained space, as a numpyro model over one vector ``z``.

VI (numpyro's ``SVI`` and autoguides) runs on this thin model:
``z ~ flat``, ``factor(log p(x, T(z)) + log|dT/dz|)``. Every solver then shares the one log
density of :mod:`._objective`, whose transforms follow supports that depend on other
parameters, and the data arrays are arguments of the compiled code, never constants in it.
"""

from __future__ import annotations

from functools import partial

import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from ._objective import Objective

__all__ = ["zmodel"]


def _zmodel(arrays, obs_scale=None, *, log_joint, dim):
    z = numpyro.sample("z", dist.ImproperUniform(constraints.real, (), (dim,)))
    numpyro.factor("log_joint", log_joint(z, arrays, None, obs_scale))


def zmodel(obj: Objective):
    """The unconstrained model of ``obj`` (one function object per program and layout, so that
    numpyro's and JAX's caches hit on the next fit)."""
    fns = obj.fns
    if "zmodel" not in fns:
        fns["zmodel"] = partial(
            _zmodel, log_joint=partial(fns["log_joint"], priors=True, jacobian=True), dim=obj.dim
        )
    return fns["zmodel"]
