# %% [markdown]
# # 4. Hierarchical shrinkage: where the MLE fails and the posterior does not
#
# Rubin's eight schools (`models/hierarchical.py`). Each school reports an effect `x_j` with a
# known standard error `sigma_j`; the true effects come from a population `N(mu, tau)`. The
# school effects are `latent`: the marginal MLE integrates them out, and its population scale
# `tau` is 0, on the boundary (complete pooling); the posterior keeps every `tau` the data allow
# and pools each school partially. The centred program makes NUTS diverge; the non-centred one
# does not.

# %%
import os
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, imported by numpyro

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import probmodels
from probmodels.report import load_spec

QUICK = os.environ.get("PROBMODELS_QUICK") == "1"
NUTS = dict(chains=2, warmup=500, draws=500) if QUICK else {}

name, spec = load_spec(os.path.join("..", "models", "hierarchical.py"))
data = spec.data()
pd.DataFrame({"x (effect)": data["x"], "sigma (s.e.)": data["sigma"]}, index=list("ABCDEFGH"))

# %% [markdown]
# ## Four answers to one program
# In `program` the standardised school effects `eta` are a `latent` site, not parameters. So
# the same program gives:
#
# * **the marginal MLE** (`mle`): `eta` integrated out by the Laplace approximation, exact here
#   because everything is Gaussian, i.e. the likelihood of `x_j ~ N(mu, sqrt(tau^2 + sigma_j^2))`;
# * **the marginal MAP** (`map`): the same with the priors of `mu` and `tau`;
# * **the joint mode** (`map` with `joint=True`): `mu`, `tau` and `eta` maximised together,
#   which is what a toolkit without latents computes;
# * **the posterior** (`nuts`): `eta` sampled with the parameters.

# %%
fits = {
    "joint mode": probmodels.fit(spec.program, data, "map", joint=True),
    "marginal MLE": probmodels.fit(spec.program, data, "mle"),
    "marginal MAP": probmodels.fit(spec.program, data, "map"),
    "posterior": probmodels.fit(spec.program, data, "nuts", seed=0, **{**spec.FIT_OPTIONS["nuts"], **NUTS}),
}
table = probmodels.compare(fits)
table.loc[["mu", "tau"], (slice(None), "estimate")].round(3)

# %% [markdown]
# ## The boundary: tau = 0 is the MLE, and the fit says so
# The spread of the eight estimates is smaller than their standard errors alone explain, so the
# marginal likelihood is largest at `tau = 0`: complete pooling, every school at the
# precision-weighted mean. That is a correct answer on the boundary of `tau`'s support, not a
# failure to converge, and probmodels says what it implies: no Wald interval for `tau` (the
# curvature there is not a standard error), and a plug-in predictive with no between-school
# spread at all. The marginal MAP (the HalfCauchy prior is largest at 0) and the joint mode (at
# `tau = 0` the likelihood no longer sees `eta`) land on the same boundary. Only the posterior
# keeps the values of `tau` the data do not rule out.

# %%
mle = fits["marginal MLE"]
print(mle)
print("precision-weighted mean:", round(spec.pooled_mean(), 4))
for label, f in fits.items():
    for w in f.diagnostics["warnings"]:
        print(f"{label}: {w}")

# %% [markdown]
# ## The posterior: partial pooling

# %%
post = fits["posterior"]
print("divergences:", post.diagnostics["divergences"], " max r-hat:", round(post.diagnostics["max_rhat"], 3))
theta = post.draws["theta"].reshape(-1, 8)
fig, ax = plt.subplots(figsize=(7, 4))
ax.errorbar(np.arange(8) - 0.1, data["x"], yerr=data["sigma"], fmt="o", color="0.5", label="x_j +- sigma_j (no pooling)")
lo, hi = np.percentile(theta, [3, 97], axis=0)
ax.errorbar(np.arange(8) + 0.1, theta.mean(0), yerr=[theta.mean(0) - lo, hi - theta.mean(0)], fmt="o", color="C0", label="posterior theta_j (94%)")
ax.axhline(float(mle.estimate["mu"]), color="C1", ls="--", label="marginal MLE: complete pooling")
ax.set_xticks(range(8), list("ABCDEFGH")); ax.set_ylabel("effect"); ax.legend(fontsize=8);

# %% [markdown]
# The posterior of `tau` reaches far from 0: the data do not rule out large differences between
# schools, they only fail to show them.

# %%
az.plot_posterior(post.to_arviz(log_likelihood=False), var_names=["tau"], figsize=(5, 3));

# %% [markdown]
# ## Centred vs non-centred
# The same model, written with `theta ~ N(mu, tau)` directly: as `tau` shrinks, `theta` is
# squeezed into a funnel whose neck NUTS cannot follow. probmodels counts the divergences and
# names the remedy.

# %%
centred = probmodels.fit(spec.centred, data, "nuts", seed=0, **NUTS)
for w in centred.diagnostics["warnings"]:
    print("-", w)
