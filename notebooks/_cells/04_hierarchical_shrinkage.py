# %% [markdown]
# # 4. Hierarchical shrinkage: where the MLE fails and the posterior does not
#
# Rubin's eight schools (`models/hierarchical.py`). Each school reports an effect `x_j` with a
# known standard error `sigma_j`; the true effects come from a population `N(mu, tau)`. The MLE
# of the population scale `tau` collapses to 0 (complete pooling); the posterior keeps every
# `tau` the data allow and pools each school partially. The centred program makes NUTS diverge;
# the non-centred one does not.

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
# ## The MLE: tau on the boundary
# With `theta` integrated out, `x_j ~ N(mu, sqrt(tau^2 + sigma_j^2))`. The spread of the eight
# estimates is smaller than their standard errors alone explain, so the likelihood is largest
# at `tau = 0`, and probmodels says so.

# %%
mle = probmodels.fit(spec.marginal, data, "mle")
print(mle)
print("precision-weighted mean:", spec.pooled_mean())

# %% [markdown]
# ## The posterior: partial pooling

# %%
post = probmodels.fit(spec.program, data, "nuts", seed=0, **{**spec.FIT_OPTIONS["nuts"], **NUTS})
print("divergences:", post.diagnostics["divergences"], " max r-hat:", round(post.diagnostics["max_rhat"], 3))
theta = post.draws["theta"].reshape(-1, 8)
fig, ax = plt.subplots(figsize=(7, 4))
ax.errorbar(np.arange(8) - 0.1, data["x"], yerr=data["sigma"], fmt="o", color="0.5", label="x_j +- sigma_j (no pooling)")
lo, hi = np.percentile(theta, [3, 97], axis=0)
ax.errorbar(np.arange(8) + 0.1, theta.mean(0), yerr=[theta.mean(0) - lo, hi - theta.mean(0)], fmt="o", color="C0", label="posterior theta_j (94%)")
ax.axhline(float(mle.estimate["mu"]), color="C1", ls="--", label="MLE: complete pooling")
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
