# %% [markdown]
# # 1. Loss is likelihood
#
# Every training loss is the negative log-likelihood of a noise model, up to a positive factor
# and a constant that does not depend on the prediction: `nll(x, x_hat) = a * loss(x, x_hat) + c(x)`.
# Choosing a loss is choosing a noise model, and the noise model says which point prediction the
# loss makes optimal. This notebook walks the catalogue, draws its penalty geometry, and checks
# the optimal predictors by fitting a constant model.
#
# Set `PROBMODELS_QUICK=1` for small settings (the test suite does).

# %%
import os
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, imported by numpyro

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import numpyro.distributions as dist

import probmodels
from probmodels import noise, observe, param
from probmodels.plots import plot_penalty_geometry
from probmodels.priors import penalty, sklearn_prior

QUICK = os.environ.get("PROBMODELS_QUICK") == "1"

# %% [markdown]
# ## The catalogue
# Each noise model knows its textbook loss, the loss's name and the predictor it makes optimal.

# %%
catalogue = [
    noise.Gaussian(1.0), noise.Laplace(1.0), noise.Huber(1.345), noise.StudentT(4.0), noise.Cauchy(1.0),
    noise.Logistic(0.5), noise.Bernoulli(), noise.Binomial(10), noise.Categorical(), noise.Poisson(),
    noise.NegativeBinomial(concentration=2.0), noise.Gamma(shape=2.0),
]
pd.DataFrame(
    [{"noise model": type(m).__name__, "kind": "additive" if m.additive else "link", "loss": m.loss_name, "optimal predictor": m.predictor} for m in catalogue]
)

# %% [markdown]
# ## nll = a * loss + c, checked
# Gaussian noise with scale s: `a = 1 / (2 s^2)` and `c = log(s sqrt(2 pi))`; Bernoulli noise on
# the logit scale: `a = 1`, `c = 0` (binary cross-entropy with logits is exactly the nll).

# %%
x, x_hat = np.array([0.3, -1.2, 2.0]), np.array([0.0, 0.5, 1.0])
g = noise.Gaussian(2.0)
print("Gaussian:", np.allclose(g.nll(x, x_hat), g.loss(x, x_hat) / (2 * 2.0**2) + np.log(2.0 * np.sqrt(2 * np.pi))))
b, logits = np.array([1.0, 0.0, 1.0]), np.array([2.0, -0.3, -5.0])
print("Bernoulli:", np.allclose(noise.Bernoulli().nll(b, logits), noise.Bernoulli().loss(b, logits)))

# %% [markdown]
# Not every loss is a likelihood: the hinge loss gives both labels zero loss beyond the margin, so
# `exp(-loss)` normalises to no distribution.

# %%
for name in ["mse", "bce", "hinge"]:
    try:
        print(name, "->", noise.for_loss(name))
    except ValueError as e:
        print(name, "->", e)

# %% [markdown]
# ## Penalty geometry
# Left: the penalty a residual costs. Right: its influence, how hard one observation pulls on
# the fit: unbounded for the squared error, constant for the absolute error, clipped for Huber,
# redescending for Student-t and Cauchy (gross outliers stop pulling).

# %%
fig = plot_penalty_geometry([noise.Gaussian(1.0), noise.Laplace(1.0), noise.Huber(1.345), noise.StudentT(4.0, 1.0), noise.Cauchy(1.0)])

# %% [markdown]
# ## The predictor each loss makes optimal
# Fit a constant model `x = m + eps` by maximum likelihood to a skewed sample with two outliers:
# Gaussian noise gives the mean, Laplace the median, Huber an M-estimate in between.

# %%
rng = np.random.default_rng(0)
sample = np.concatenate([rng.exponential(1.0, 99 if not QUICK else 49), [15.0, 22.0]])


def constant(eps):
    def program(x):
        m = param("m")
        return observe("x", m + eps, obs=x)

    return program


rows = []
for label, eps in [("Gaussian (mse)", noise.Gaussian(1.0)), ("Laplace (mae)", noise.Laplace(1.0)), ("Huber", noise.Huber(1.345))]:
    f = probmodels.fit(constant(eps), {"x": sample}, "mle")
    rows.append({"noise model": label, "MLE of m": float(f.estimate["m"])})
rows += [{"noise model": "sample mean", "MLE of m": sample.mean()}, {"noise model": "sample median", "MLE of m": np.median(sample)}]
pd.DataFrame(rows)

# %% [markdown]
# ## Every prior is a regularizer
# The penalty a prior adds to the negative log-likelihood: Normal(0, tau) is L2 with
# `1 / (2 tau^2)`, Laplace(0, b) is L1 with `1 / b`, a Dirichlet(a) prior is additive smoothing
# by `a - 1` pseudo-counts. scikit-learn's `Ridge(alpha)` with noise scale sigma is the prior
# `Normal(0, sigma / sqrt(alpha))`.

# %%
print(penalty(dist.Normal(0.0, 2.0)))
print(penalty(dist.Laplace(0.0, 0.5)))
print(penalty(dist.Dirichlet(np.array([2.0, 2.0, 2.0]))))
print("Ridge(alpha=4), sigma=2 ->", sklearn_prior("Ridge", alpha=4.0, noise_scale=2.0))
