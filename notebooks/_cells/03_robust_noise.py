# %% [markdown]
# # 3. Robust noise: outliers and the LOO comparison of noise models
#
# `models/robust_regression.py`: a line with 10% gross outliers, under five noise models. The
# squared error (Gaussian noise) is dragged by the outliers; Student-t, Laplace, Huber and a
# contamination mixture are not. PSIS-LOO (ArviZ) says which noise model the data support.

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
NUTS = dict(chains=2, warmup=300, draws=300) if QUICK else {}

name, spec = load_spec(os.path.join("..", "models", "robust_regression.py"))
data = spec.data()
programs = {"Student-t": spec.program, **spec.ALTERNATIVES}

# %% [markdown]
# ## Maximum likelihood under each noise model

# %%
mle = {label: probmodels.fit(p, data, "mle") for label, p in programs.items()}
pd.DataFrame({label: {k: float(v) for k, v in f.estimate.items()} for label, f in mle.items()}).T.assign(truth_slope=spec.TRUTH["slope"])

# %%
u, x = data["u"], data["x"]
grid = np.linspace(u.min(), u.max(), 50)
fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(u, x, s=12, color="0.4", label="data")
for label, f in mle.items():
    ax.plot(grid, f.estimate["intercept"] + f.estimate["slope"] * grid, label=label)
ax.legend(); ax.set(xlabel="u", ylabel="x", title="MLE lines: Gaussian noise is dragged by the outliers");

# %% [markdown]
# ## LOO: which noise model do the data support?
# NUTS under each program, then `az.compare` on PSIS-LOO. Pareto k > 0.7 flags observations
# whose leave-one-out estimate is unreliable.

# %%
post = {label: probmodels.fit(p, data, "nuts", **NUTS) for label, p in programs.items()}
idatas = {label: f.to_arviz() for label, f in post.items()}
az.compare(idatas, ic="loo")

# %%
for label, idata in idatas.items():
    k = az.loo(idata, pointwise=True).pareto_k.values
    print(f"{label:10s} observations with Pareto k > 0.7: {int((k > 0.7).sum())} of {k.size}")

# %% [markdown]
# ## Penalty geometry at the fitted scales

# %%
from probmodels._report_figures import noise_models_at
from probmodels.plots import plot_penalty_geometry

models = {}
for label, p in programs.items():
    models.update({f"{label}": m for m in noise_models_at(p, data, mle[label].estimate, label).values()})
fig = plot_penalty_geometry(models, residual=np.linspace(-10, 10, 801))
