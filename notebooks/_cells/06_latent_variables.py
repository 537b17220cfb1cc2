# %% [markdown]
# # 6. Latent variables: probabilistic PCA and a small VAE-like model
#
# A prior on a latent `z`, not on the data. `models/latent_factor.py`: probabilistic PCA, whose
# MLE has a closed form (Tipping and Bishop 1999) and is identified only up to a rotation; and a
# linear decoder of 8x8 digits with a 2-D latent, fitted by (non-amortised, mean-field) VI, with
# Bernoulli against Gaussian decoder noise.

# %%
import os
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, imported by numpyro

import numpy as np
import pandas as pd

import probmodels
from probmodels.report import load_spec

QUICK = os.environ.get("PROBMODELS_QUICK") == "1"

_, lf = load_spec(os.path.join("..", "models", "latent_factor.py"))

# %% [markdown]
# ## PPCA: the MLE against its closed form
# `x_i ~ N(mu, W W^T + sigma^2 I)` with `z` integrated out. `W` is identified only up to a
# rotation, and probmodels' singular-information warning names it; `W W^T` and `sigma` are
# identified and match Tipping and Bishop.

# %%
d = lf.data()
mle = probmodels.fit(lf.program, d, "mle", **lf.FIT_OPTIONS["mle"])
ref = lf.tipping_bishop(d["x"])
W = mle.estimate["W"]
print("sigma^2: probmodels", float(mle.estimate["sigma"]) ** 2, " closed form", ref["sigma2"])
print("max |W W^T - closed form|:", np.max(np.abs(W @ W.T - ref["WWt"])))
for w in mle.diagnostics["warnings"]:
    print("-", w[:200], "...")

# %% [markdown]
# The lower-triangular parameterisation (`identified`) removes the rotation: no warning, finite
# standard errors, the same `W W^T`.

# %%
ident = probmodels.fit(lf.identified, d, "mle")
print(ident.diagnostics["warnings"], np.all(np.isfinite(ident.stderr["W_below"])))

# %% [markdown]
# ## A linear decoder of 8x8 digits: Bernoulli or Gaussian pixels?
# Each image `i` has a 2-D latent `z_i ~ N(0, I)`; the pixels are `decoder(z_i) + noise`. VI
# fits a mean-field Gaussian over every `z_i` and the decoder (no encoder network: this is the
# non-amortised version of a VAE). The decoders are compared on held-out images by their log
# probability, with `z` integrated out by quadrature.

# %%
digits = lf.digits(n_train=120 if QUICK else 200, n_test=60 if QUICK else 100)
table, fits, lpd = lf.compare_decoders(digits, vi_options={"steps": 6000} if QUICK else None)
table

# %%
fig = lf.plot_latents(fits, digits)
