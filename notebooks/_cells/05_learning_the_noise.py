# %% [markdown]
# # 5. Learning the noise
#
# Two programs where the noise itself is learned. `models/heteroscedastic_regression.py`: the
# noise scale is a function of the input, `scale = exp(a + b u)`. `models/neural_regression.py`:
# a small neural network as `f_theta`, whose MLE overfits, whose MAP is weight decay, and whose
# posterior widens away from the data.

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

_, het = load_spec(os.path.join("..", "models", "heteroscedastic_regression.py"))
_, nn = load_spec(os.path.join("..", "models", "neural_regression.py"))

# %% [markdown]
# ## Heteroscedastic regression
# The mean and the log-scale are both linear in `u`. MLE, and the posterior, recover both; a
# single-scale model is worse by LOO.

# %%
d = het.data()
fits = {"MLE": probmodels.fit(het.program, d, "mle"), "NUTS": probmodels.fit(het.program, d, "nuts", **NUTS)}
table = probmodels.compare(fits)[[("MLE", "estimate"), ("MLE", "se (observed)"), ("NUTS", "estimate"), ("NUTS", "sd")]]
table[("truth", "")] = [het.TRUTH[k] for k in table.index]
table

# %%
u, x = d["u"], d["x"]
grid = np.linspace(u.min(), u.max(), 100)
e = fits["MLE"].estimate
mean = e["intercept"] + e["slope"] * grid
scale = np.exp(e["log_scale_intercept"] + e["log_scale_slope"] * grid)
fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(u, x, s=10, color="0.4")
ax.plot(grid, mean, color="C0", label="MLE mean")
ax.fill_between(grid, mean - 2 * scale, mean + 2 * scale, color="C0", alpha=0.2, label="+- 2 learned scales")
ax.legend(); ax.set(xlabel="u", ylabel="x", title="the noise scale is learned as a function of u");

# %%
single = probmodels.fit(het.one_scale, d, "nuts", **NUTS)
az.compare({"learned scale": fits["NUTS"].to_arviz(), "one scale": single.to_arviz()})

# %% [markdown]
# ## Neural regression: MLE overfits, MAP is weight decay, the posterior knows where it has no data
# Twenty points on two intervals. The MLE interpolates them; the MAP under Normal priors on the
# weights (weight decay) is smoother; NUTS on the 8-unit network gives a band that widens where
# there are no data.

# %%
train = nn.data()
test = nn.data(seed=1)
nn_fits = {
    "MLE": probmodels.fit(nn.program, train, "mle", **nn.FIT_OPTIONS["mle"]),
    "MAP": probmodels.fit(nn.program, train, "map", **nn.FIT_OPTIONS["map"]),
    "NUTS": probmodels.fit(nn.program, train, "nuts", seed=0, **{**nn.FIT_OPTIONS["nuts"], **NUTS}),
}
pd.DataFrame({label: {"train RMSE": nn.rmse(f, train), "held-out RMSE": nn.rmse(f, test)} for label, f in nn_fits.items()}).T

# %%
fig = nn.plot_predictive(nn_fits, train)
