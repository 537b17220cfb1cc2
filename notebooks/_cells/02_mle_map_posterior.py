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

# %% [markdown]
# ## Before the data: the prior predictive
# Simulate coefficients from their priors and data from the noise model: do the priors put the
# data where they could plausibly be? (`probmodels.prior_predictive`; ArviZ draws the check.)

# %%
prior = probmodels.prior_predictive(spec.program, data, draws=500)
axes = az.plot_ppc(prior, group="prior", num_pp_samples=100, figsize=(7, 3))

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

# %% [markdown]
# ## Predictions for new inputs
# `Fit.predict` runs the unchanged program at new inputs. For the MLE with
# `parameter_uncertainty=True`, the band of the mean is the Wald band by the delta method (as
# statsmodels' `get_prediction`) and new observations draw the coefficients from its Gaussian
# approximation; the plug-in predictive (the default) keeps theta-hat fixed. NUTS gives the
# posterior predictive. The MLE's observation interval is narrower than the posterior's: its
# scale is too small.

# %%
new = {"u": test["u"][:5]}
pd.concat(
    {
        "MLE plug-in": fits["MLE"].predict(new).summary(),
        "MLE + Wald": fits["MLE"].predict(new, parameter_uncertainty=True).summary(),
        "NUTS": fits["NUTS"].predict(new).summary(),
    },
    axis=1,
).round(2)

# %% [markdown]
# ## Posterior predictive check
# `to_arviz()` carries replicated data (`posterior_predictive`), so ArviZ's checks work directly.

# %%
axes = az.plot_loo_pit(fits["NUTS"].to_arviz(), y="x", figsize=(6, 3))

# %% [markdown]
# ## One scale for every method: information criteria
# AIC on the elpd scale (`log L - k`) for the point fits, PSIS-LOO for the posteriors: both
# estimate the expected log predictive density of new data, so they rank together. Here AIC
# puts the MLE first while the held-out comparison above says the opposite: AIC's penalty (k)
# assumes many more observations than parameters, and 22 parameters on 60 points are not that;
# AICc (`aicc`) penalises more (`-aicc / 2` is below every posterior's elpd_loo), and PSIS-LOO,
# which assumes no such thing, agrees with the held-out data.

# %%
probmodels.criteria(fits)[["method", "criterion", "elpd", "d_elpd", "k", "aic", "bic", "elpd_loo", "se", "p_loo"]]

# %% [markdown]
# ## How much did the prior matter?
# Power-scaling sensitivity (Kallioinen et al. 2024): above 0.05, strengthening or weakening the
# prior (or the likelihood) moves that coefficient's posterior.

# %%
probmodels.sensitivity(fits["NUTS"]).head(8)
