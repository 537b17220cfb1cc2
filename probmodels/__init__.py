"""probmodels: every training loss a likelihood, every regularizer a prior.

Write a generative program ``x = f_theta(u) + eps`` with :func:`param` and :func:`observe`, pick a
noise model from :mod:`probmodels.noise`, and solve the same program by MLE, MAP, a Laplace
approximation, variational inference or NUTS with :func:`fit`; :func:`compare` sets the answers
side by side and every :class:`Fit` converts to an ArviZ ``InferenceData``.

Importing probmodels turns on JAX's 64-bit mode and its persistent compilation cache (see
``probmodels._config``); import it before creating JAX arrays.
"""

from . import _config  # noqa: F401  (first: float64 and the compilation cache, before any array)

import warnings as _warnings

with _warnings.catch_warnings():
    # ArviZ 0.x announces its 1.0 refactor once a day; probmodels pins arviz < 1.
    _warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz as _arviz  # noqa: F401

from . import noise, plots, priors
from ._config import clear_compiled
from .calibrate import calibrate
from .compare import compare
from .criteria import criteria
from .fit import METHODS, Fit, fit, load
from .predict import Prediction, prior_predictive
from .program import latent, observe, param
from .report import report
from .sensitivity import sensitivity

__all__ = ["param", "latent", "observe", "noise", "priors", "plots", "fit", "Fit", "METHODS", "load", "compare", "report",
           "calibrate", "Prediction", "prior_predictive", "criteria", "sensitivity", "clear_compiled"]
__version__ = "0.1.0"
