"""Latent factors: probabilistic PCA (z integrated out) and a small non-amortised "VAE" on digits.

**Probabilistic PCA** (Tipping and Bishop 1999). A latent ``z_i ~ N(0, I_q)`` per observation and
``x_i = mu + W z_i + eps``, ``eps ~ N(0, sigma^2 I_D)``. The prior is on ``z``, not on the
data; integrating ``z`` out gives the marginal program this file fits,
``x_i ~ N(mu, W W^T + sigma^2 I)``, with parameters ``mu`` (D), ``W`` (D x q) and ``sigma``.
probmodels' noise catalogue has no multivariate Gaussian (its noise models are elementwise), but
a probmodels program is a plain numpyro model, so the observation is written
``numpyro.sample("x", dist.MultivariateNormal(mu, cov), obs=x)``: every solver accepts it, and its
log-likelihood is per row (one term per observation, for LOO and held-out scores). For large D,
``dist.LowRankMultivariateNormal(mu, W, sigma^2)`` is the same density at O(D q^2) cost.

The MLE has a closed form (Tipping and Bishop 1999, eqs. 7-8): with ``S`` the sample covariance
(divided by N) and eigenvalues ``l_1 >= ... >= l_D``, ``mu`` is the sample mean,
``sigma^2 = mean(l_{q+1}, ..., l_D)`` and ``W W^T = U_q (L_q - sigma^2 I) U_q^T``
(:func:`tipping_bishop`). Only ``W W^T`` is identified: ``W R`` for any orthogonal ``R`` gives
the same likelihood, so the observed information is singular along the ``q (q - 1) / 2``
rotation directions and probmodels reports every ``W`` entry as not identified (its warning
blames "collinear inputs, or parameters the likelihood does not depend on" and suggests a prior,
neither of which fits a rotation). An isotropic
prior on ``W`` (``Normal(0, tau)`` on every entry) does not help: ``|W R|^2 = |W|^2``, so the MAP
and the Laplace approximation are singular along the same directions. What identifies ``W`` is
a constraint, e.g. lower-triangular with a positive diagonal (:data:`identified`), the usual
choice in Bayesian factor analysis. Posterior samplers see the symmetry too: NUTS moves freely
along the rotation circle, so every ``W`` entry has a symmetric, two-humped marginal (a circle
seen edge-on) with mean near 0 and r-hat near 1 (4 chains agree on it): the posterior means and
intervals of ``W`` in the report's tables describe the symmetry, not the loadings. Summarise
``W W^T`` or the identified form.

The default starting point ``W = 0`` (the prior median) is a stationary point of the PPCA
likelihood (its gradient in ``W`` is ``C^-1 (S - C) C^-1 W = 0``), a saddle, not the maximum.
probmodels' damped Newton solver does not leave it (on this data it stops after 500 iterations
with ``W`` still 0 and says it did not converge; on other data it reports ``converged=True``
there). The solvers are therefore started from a seeded random ``W`` (:data:`INIT`, in
``FIT_OPTIONS``), from which the MLE converges in about 25 Newton steps.

**A VAE-like model on scikit-learn's bundled 8x8 digits** (no download): a 2-D latent
``z_i ~ N(0, I)`` per image and a linear decoder ``x_hat_i = W z_i + b`` (64 pixels), with two
noise models for the same binarised pixels (intensity > 8 of 16): Bernoulli (``x_hat`` are
logits; binary cross-entropy) and Gaussian with a learned scale (squared error).
:func:`decoder` writes them. ``fit(..., "vi")`` treats every latent site alike, so the guide is
mean-field Gaussian over *all* latents: the ``2 N`` coordinates of the ``z_i`` and the decoder
weights together. This is **not** a variational auto-encoder: there is no encoder network
(no amortisation), each ``q(z_i)`` has its own free mean and sd, the cost grows with N, and a
new image needs a new optimisation (here: quadrature) to get its latent. It is kept small (200
training images, 2-D latent, linear decoder: 400 latents + 192 or 193 weights). The decoder
weights are uncertain too (``q`` covers them), unlike a VAE's point-estimated decoder. The
program's ``z`` is a plain ``numpyro.sample`` site, not a ``param``: its ``N(0, I)`` is part of
the generative model, not a regulariser, so it must not be dropped by ``method="mle"``.

The decoders are compared (:func:`compare_decoders`) by

* the ELBO, a lower bound on ``log p(x_train)`` (``diagnostics["final_elbo"]``). The Bernoulli
  ELBO bounds a probability (of the binary images), the Gaussian one a *density* at 0/1 values:
  the two numbers are in different units and **their difference means nothing**;
* the held-out log-probability of 100 new binarised images, ``log P(x_new) = log int
  P(x_new | z, theta) N(z; 0, I) dz`` at the variational posterior mean of the decoder
  ``theta``, by quadrature over the 2-D ``z`` (:func:`heldout_log_lik`): for the Gaussian
  decoder ``P`` is the mass it puts on the side of 0.5 that the pixel was binarised to,
  ``Phi(+-(x_hat - 0.5) / scale)``. Both are probabilities of the same binary images:
  comparable.

The Gaussian decoder's (linear-Gaussian) marginal is again PPCA, ``N(b, W W^T + scale^2 I)``;
the quadrature is checked against that closed form.

Results (200 training and 100 held-out images, seed 0): held-out ``log P`` per image -22.84
(Bernoulli) against -24.17 (Gaussian), a paired difference of 1.33 +- 0.21 nats per image in
favour of the noise model that matches binary data; ELBOs -4774 and -4887 (not comparable, see
above). Both fits converge (the ELBO stops improving after 4,500 to 6,500 Adam steps) in 5 to 30
s on 2 cores, most of it compilation; both have Pareto k-hat 1.6 to 2.3: a mean-field Gaussian
over 592 (593) coordinates is far from the joint posterior (the z_i and W are coupled, and W is
rotation-symmetric), so the ELBO is a loose bound and the draws should not be trusted as a
posterior. The 2-D means of ``q(z_i)``, coloured by digit, set 4 and 6 apart and overlap most other
digits (:func:`plot_latents`).

Run: ``python models/latent_factor.py`` or ``probmodels report models/latent_factor.py --methods
mle,map,vi,nuts`` (the report covers PPCA; the script also runs the decoder comparison). Laplace
is left out: the rotation makes its Hessian singular, so (correctly) it returns no draws, and the
report's held-out comparison then stops with "log_predictive_density: the laplace fit has no
draws" instead of leaving that fit out of the table.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm as jnorm

from probmodels import noise, observe, param

# ---------------------------------------------------------------------------------------------
# probabilistic PCA: the marginal program

D, Q, N = 6, 2, 200
_rng = np.random.default_rng(11)
W_TRUE = np.round(_rng.normal(size=(D, Q)), 2)  # identified only as W W^T
TRUTH = {"mu": np.round(_rng.normal(size=D), 2), "sigma": 0.5}


def program(x=None):
    """PPCA with ``z`` integrated out: ``x_i ~ N(mu, W W^T + sigma^2 I)``, one row per
    observation (``x=None`` simulates N rows)."""
    n, d = (N, D) if x is None else x.shape
    mu = param("mu", dist.Normal(0.0, 10.0), shape=(d,))
    W = param("W", dist.Normal(0.0, 2.0), shape=(d, Q))  # isotropic: keeps the rotation symmetry
    sigma = param("sigma", dist.HalfNormal(2.0))
    cov = W @ W.T + sigma**2 * jnp.eye(d)
    return numpyro.sample("x", dist.MultivariateNormal(mu, covariance_matrix=cov).expand((n,)), obs=x)


def lower_triangular(diag, below, d=D, q=Q):
    """A D x q matrix, zero above the diagonal, from its diagonal and its entries below it
    (row-major)."""
    rows, cols = np.tril_indices(d, -1, q)
    W = jnp.zeros((d, q)).at[rows, cols].set(below)
    return W.at[np.arange(q), np.arange(q)].set(diag)


def identified(x=None):
    """The same PPCA with ``W`` lower-triangular and a positive diagonal: identified.

    Parameters ``W_diag`` (q, positive) and ``W_below`` (the ``D q - q (q + 1) / 2`` entries below
    the diagonal); ``W`` itself is a deterministic site."""
    n, d = (N, D) if x is None else x.shape
    n_below = d * Q - Q * (Q + 1) // 2
    mu = param("mu", dist.Normal(0.0, 10.0), shape=(d,))
    W_diag = param("W_diag", dist.HalfNormal(2.0), shape=(Q,))
    W_below = param("W_below", dist.Normal(0.0, 2.0), shape=(n_below,))
    W = numpyro.deterministic("W", lower_triangular(W_diag, W_below, d, Q))
    sigma = param("sigma", dist.HalfNormal(2.0))
    cov = W @ W.T + sigma**2 * jnp.eye(d)
    return numpyro.sample("x", dist.MultivariateNormal(mu, covariance_matrix=cov).expand((n,)), obs=x)


def data(n: int = N, seed: int = 0) -> dict:
    """``n`` draws of the generative model (``z`` sampled, then dropped) at :data:`TRUTH` and
    :data:`W_TRUE`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, Q))
    x = TRUTH["mu"] + z @ W_TRUE.T + TRUTH["sigma"] * rng.normal(size=(n, D))
    return {"x": x}


INIT = {"W": np.random.default_rng(1).normal(size=(D, Q))}  # any W off the saddle at 0
FIT_OPTIONS = {m: {"init": INIT} for m in ("mle", "map", "laplace", "vi")}


def tipping_bishop(x, q: int = Q) -> dict:
    """The closed-form PPCA MLE (Tipping and Bishop 1999, eqs. 7-8).

    Returns ``mu`` (the sample mean), ``sigma2`` (the mean of the ``D - q`` smallest eigenvalues
    of the sample covariance ``S``, divided by N) and ``WWt = U_q (L_q - sigma2 I) U_q^T``.
    """
    x = np.asarray(x, dtype=float)
    mu = x.mean(axis=0)
    s = (x - mu).T @ (x - mu) / len(x)
    lam, u = np.linalg.eigh(s)
    lam, u = lam[::-1], u[:, ::-1]
    sigma2 = lam[q:].mean()
    return {"mu": mu, "sigma2": sigma2, "WWt": u[:, :q] @ np.diag(lam[:q] - sigma2) @ u[:, :q].T}


def ppca_log_lik(x, mu, WWt, sigma2) -> float:
    """``sum_i log N(x_i; mu, W W^T + sigma^2 I)`` (numpy/scipy)."""
    from scipy.stats import multivariate_normal

    cov = np.asarray(WWt) + sigma2 * np.eye(len(mu))
    return float(multivariate_normal(mean=mu, cov=cov).logpdf(np.asarray(x)).sum())


# ---------------------------------------------------------------------------------------------
# a non-amortised "VAE" on 8x8 digits: linear decoder, Bernoulli or Gaussian noise

LATENT = 2
DECODERS = ("bernoulli", "gaussian")


def digits(n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict:
    """Binarised 8x8 digits (scikit-learn's bundled copy: intensity > 8 of 16 -> 1), split once.

    Returns ``x`` (n_train, 64), ``x_test`` (n_test, 64) and their labels ``y``, ``y_test``
    (for plots only; the model never sees them)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.data))
    pixels = (d.data > 8.0).astype(float)
    tr, te = idx[:n_train], idx[n_train : n_train + n_test]
    return {"x": pixels[tr], "x_test": pixels[te], "y": d.target[tr], "y_test": d.target[te]}


def decoder(kind: str, q: int = LATENT):
    """The latent-variable program ``z_i ~ N(0, I_q)``, ``x_hat_i = W z_i + b``, with Bernoulli
    (``x_hat`` logits) or Gaussian (learned scale) pixel noise."""
    if kind not in DECODERS:
        raise ValueError(f"decoder: kind must be one of {DECODERS}, got {kind!r}")

    def program(x):
        n, p = x.shape
        b = param("b", dist.Normal(0.0, 3.0), shape=(p,))
        W = param("W", dist.Normal(0.0, 1.0), shape=(p, q))
        scale = param("scale", dist.HalfNormal(1.0)) if kind == "gaussian" else None
        # a latent variable of the generative model, not a param: MLE keeps its prior
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand((n, q)).to_event(2))
        x_hat = z @ W.T + b
        if kind == "bernoulli":
            return observe("x", noise.Bernoulli(logits=x_hat), obs=x)
        return observe("x", x_hat + noise.Gaussian(scale), obs=x)

    program.__name__ = f"{kind}_decoder"
    return program


bernoulli_decoder = decoder("bernoulli")
gaussian_decoder = decoder("gaussian")


def pca_init(x, q: int = LATENT) -> dict:
    """Start ``z`` and ``W`` at the PCA scores and loadings (unit-variance scores): off the
    saddle at ``z = W = 0``, where no gradient points anywhere."""
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    n = len(x)
    return {"z": u[:, :q] * np.sqrt(n), "W": vt[:q].T * s[:q] / np.sqrt(n)}


def _pixel_log_lik(kind, x, x_hat, scale, density):
    """``log P(x | x_hat)`` summed over pixels (last axis)."""
    if kind == "bernoulli":
        return jnp.sum(x * x_hat - jnp.logaddexp(0.0, x_hat), axis=-1)
    if density:
        return jnp.sum(jnorm.logpdf(x, x_hat, scale), axis=-1)
    # the Gaussian's mass on the side of 0.5 the binarised pixel lies on
    sign = 2.0 * x - 1.0
    return jnp.sum(jnorm.logcdf(sign * (x_hat - 0.5) / scale), axis=-1)


def heldout_log_lik(kind: str, theta: dict, x_new, *, density: bool = False):
    """``log int P(x_new | z, theta) N(z; 0, I) dz`` per image, by quadrature over the 2-D ``z``.

    Per image the posterior ``p(z | x_new, theta)`` is log-concave (a linear predictor under a
    Bernoulli, Gaussian or probit likelihood, times a Gaussian prior), so it is located first
    (the mode by Newton's method from the best point of a coarse grid, and the curvature there);
    the integral is then the trapezoid rule on a grid in the standardised coordinates ``t``
    (``z = mode + L t``, ``L L^T`` the inverse curvature), ``|t_k| <= 7`` in steps of 0.25:
    spectrally accurate for a smooth, fast-decaying integrand (for a Gaussian one the error is
    ~exp(-2 pi^2 / 0.25^2), below rounding).

    Parameters
    ----------
    kind : {"bernoulli", "gaussian"}
    theta : dict
        Decoder parameters ``W`` (64, 2), ``b`` (64,), and ``scale`` for the Gaussian.
    x_new : array (M, 64)
        Binarised images.
    density : bool
        Gaussian decoder only: the density at the 0/1 values (the model's own likelihood, for
        checking against the closed form) instead of the probability of the binarised values.

    Returns
    -------
    array (M,)
    """
    W = jnp.asarray(theta["W"], dtype=float)
    if W.shape[1] != 2:
        raise ValueError(f"heldout_log_lik: the quadrature is written for a 2-D latent, got {W.shape[1]}")
    scale = jnp.asarray(theta.get("scale", 1.0), dtype=float)
    run = _quadrature(kind, bool(density))
    return np.asarray(run(W, jnp.asarray(theta["b"], dtype=float), scale, jnp.asarray(x_new, dtype=float)))


_QUADRATURE = {}


def _quadrature(kind, density, half_width=7.0, step=0.25):
    """The jitted quadrature for one decoder kind (compiled once, decoder parameters as arguments)."""
    key = (kind, density, half_width, step)
    if key in _QUADRATURE:
        return _QUADRATURE[key]
    coarse = jnp.stack(jnp.meshgrid(*(jnp.linspace(-5.0, 5.0, 51),) * 2), -1).reshape(-1, 2)
    t1 = jnp.arange(-half_width, half_width + step / 2, step)
    tgrid = jnp.stack(jnp.meshgrid(t1, t1), -1).reshape(-1, 2)

    def run(W, b, scale, x_new):
        def log_joint(z, x):
            prior = -0.5 * jnp.sum(z**2, -1) - jnp.log(2 * jnp.pi)
            return _pixel_log_lik(kind, x, z @ W.T + b, scale, density) + prior

        grad, hess = jax.grad(log_joint), jax.hessian(log_joint)

        def one(x):
            z = coarse[jnp.argmax(log_joint(coarse, x))]
            z, _ = jax.lax.scan(lambda z, _: (z - jnp.linalg.solve(hess(z, x), grad(z, x)), None), z, None, length=30)
            chol = jnp.linalg.cholesky(jnp.linalg.inv(-hess(z, x)))
            log_det = jnp.sum(jnp.log(jnp.diag(chol)))
            return logsumexp(log_joint(z + tgrid @ chol.T, x)) + 2 * jnp.log(step) + log_det

        return jax.lax.map(one, x_new)

    _QUADRATURE[key] = jax.jit(run)
    return _QUADRATURE[key]


def decoder_mean(fit) -> dict:
    """The decoder parameters at their variational posterior mean."""
    return {k: np.asarray(fit.estimate[k]) for k in ("W", "b", "scale") if k in fit.estimate}


def compare_decoders(d: dict | None = None, vi_options: dict | None = None):
    """Fit both decoders by VI on ``d["x"]`` and score them on ``d["x_test"]``.

    Returns ``(table, fits, lpd)``: a pandas DataFrame indexed by decoder (columns ``elbo``,
    ``elbo_per_image``, ``elbo_units``, ``heldout_per_image``, ``heldout_se``, ``pareto_k``,
    ``vi_seconds``), the fits, and the per-image held-out log-probabilities."""
    import time

    import pandas as pd

    import probmodels

    d = digits() if d is None else d
    opts = {"init": pca_init(d["x"]), **(vi_options or {})}
    rows, fits, lpds = {}, {}, {}
    for kind, prog in (("bernoulli", bernoulli_decoder), ("gaussian", gaussian_decoder)):
        t0 = time.perf_counter()
        f = probmodels.fit(prog, {"x": d["x"]}, "vi", **opts)
        seconds = time.perf_counter() - t0
        fits[kind] = f
        lpd = lpds[kind] = heldout_log_lik(kind, decoder_mean(f), d["x_test"])
        rows[kind] = {
            "elbo": f.diagnostics["final_elbo"],
            "elbo_per_image": f.diagnostics["final_elbo"] / len(d["x"]),
            "elbo_units": "log probability" if kind == "bernoulli" else "log density (not comparable)",
            "heldout_per_image": float(lpd.mean()),
            "heldout_se": float(lpd.std(ddof=1) / np.sqrt(len(lpd))),
            "pareto_k": f.diagnostics["pareto_k"],
            "vi_seconds": seconds,
        }
    table = pd.DataFrame(rows).T
    table.index.name = "decoder"
    return table, fits, lpds


def plot_latents(fits: dict, d: dict):
    """The variational means of the training images' ``z_i``, coloured by digit (which the model
    never saw), one panel per decoder."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fits), figsize=(4.6 * len(fits), 4.2), squeeze=False, layout="constrained")
    for ax, (kind, f) in zip(axes[0], fits.items()):
        z = np.asarray(f.estimate["z"])
        sc = ax.scatter(z[:, 0], z[:, 1], c=d["y"], cmap="tab10", s=12, vmin=-0.5, vmax=9.5)
        ax.set_title(f"{kind} decoder: E_q[z_i]")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="digit")
    return fig


if __name__ == "__main__":
    import os

    import probmodels
    from probmodels.report import report

    out = "report-latent_factor"
    # no "laplace": its fit has no draws here, which the report's held-out comparison cannot take
    rep = report(__file__, out=out, methods=("mle", "map", "vi", "nuts"))
    tb = tipping_bishop(data()["x"])
    mle = rep.fits["MLE"].estimate
    print("Tipping-Bishop sigma^2:", tb["sigma2"], " MLE:", float(mle["sigma"]) ** 2)
    print("max |W W^T - closed form|:", float(np.max(np.abs(mle["W"] @ mle["W"].T - tb["WWt"]))))
    ident = probmodels.fit(identified, data(), "mle", init={"W_diag": np.ones(Q)})
    print(ident)
    d = digits()
    table, fits, _ = compare_decoders(d)
    print(table.to_string())
    plot_latents(fits, d).savefig(os.path.join(out, "latents.png"), dpi=110)
