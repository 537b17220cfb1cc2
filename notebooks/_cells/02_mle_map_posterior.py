# %% [markdown]
# # 2. MLE, MAP and the posterior on one model
#
# `models/linear_regression.py`: twenty coefficients and 60 observations, Gaussian noise with a
# learned scale. The same program is solved five ways: MLE is least squares, MAP under
# Normal(0, 1) priors is ridge regression, and Laplace, VI and NUTS approximate or sample the
# posterior. What did the prior do, and which intervals can be trusted?

# %%
import os
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, imported by numpyro

import arviz as az
import numpy as np
import pandas as pd

import probmodels
from probmodels.compare import heldout
from probmodels.report import load_spec, split

QUICK = os.environ.get("PROBMODELS_QUICK") == "1"
NUTS = dict(chains=2, warmup=300, draws=300) if QUICK else {}

name, spec = load_spec(os.path.join("..", "models", "linear_regression.py"))
data = spec.data()
print(spec.__doc__.splitlines()[0])

# %%
fits = {
    "MLE": probmodels.fit(spec.program, data, "mle"),
    "MAP": probmodels.fit(spec.program, data, "map"),
    "Laplace": probmodels.fit(spec.program, data, "laplace"),
    "VI": probmodels.fit(spec.program, data, "vi"),
    "NUTS": probmodels.fit(spec.program, data, "nuts", **NUTS),
}
for label, f in fits.items():
    print(f"{label:8s} converged={f.diagnostics['converged']}  compile {f.diagnostics['compile_s']:.1f} s  run {f.diagnostics['run_s']:.2f} s")

# %% [markdown]
# ## The comparison table
# Per fit: the estimate, its standard error (point fits) or posterior sd, and a 94% interval;
# for the posteriors, how far their mean moved from the MLE in posterior sds.

# %%
table = probmodels.compare(fits)
table.loc[["intercept", "w[0]", "w[1]", "scale"]].T

# %% [markdown]
# ## The forest plot
# Everything side by side. The MLE's noise scale is `sqrt(RSS / N)`, with RSS on only 39
# degrees of freedom: too small, and the MLE's intervals are too narrow.

# %%
axes = az.plot_forest([f.to_arviz(log_likelihood=False) for f in fits.values()], model_names=list(fits), var_names=["intercept", "scale"], combined=True, figsize=(8, 4))

# %% [markdown]
# ## What the prior did: shrinkage
# The MAP (ridge) pulls every coefficient toward 0; the more so, the weaker the data's say.

# %%
mle, map_ = fits["MLE"].estimate["w"], fits["MAP"].estimate["w"]
pd.DataFrame({"truth": spec.TRUTH["w"], "MLE": mle, "MAP (ridge)": map_, "NUTS mean": fits["NUTS"].estimate["w"]}).round(3).head(10)

# %% [markdown]
# ## Held-out data
# Fit on 80%, score the other 20% by log predictive density: the plug-in predictive of MLE and
# MAP against the posterior predictive, which carries the uncertainty of every coefficient and
# of the scale.

# %%
train, test = split(data, "x")
held = {label: probmodels.fit(spec.program, train, f.method, **(NUTS if f.method == "nuts" else {})) for label, f in fits.items()}
heldout(held, spec.program, test)[["predictive", "lpd", "lpd_per_obs", "diff_vs_mle", "diff_se"]]
