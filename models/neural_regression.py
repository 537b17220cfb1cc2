"""Neural regression: MLE overfits, weight decay is MAP, the posterior widens away from the data.

``x = f_theta(u) + eps``, ``eps ~ N(0, scale)`` with ``scale`` learned, and ``f_theta`` a
one-hidden-layer network written in plain ``jax.numpy``,
``f_theta(u) = sum_j w2_j tanh(w1_j u + b1_j) + b2``, whose weights are probmodels ``param``s
with shapes. Twenty points on two separated intervals, ``u`` in [-3, -1] and [1, 3], so that
predictions on a grid show what each method says where there is no data (between the
intervals and beyond them).

* **MLE** (no priors) has 25 network weights for 20 points. The likelihood has no finite
  maximiser in practice: tanh units sharpen into steps that chase single points, the weights
  run off and the optimiser stops on its iteration limit with a training error far below the
  noise sd and a bad held-out error (RMSE 0.03 on the training points, noise sd 0.2; 0.45 on
  400 new points, against MAP's 0.22; in the report's held-out comparison, where the MLE is fitted
  to 16 points, its log predictive density on the other 4 is about -1e23). probmodels says so
  (non-convergence, information not positive definite).
* **MAP** with ``Normal(0, tau)`` priors on the weights is weight decay: it minimises
  ``sum (x - x_hat)^2 / (2 scale^2) + N log scale + sum_l |w_l|^2 / (2 tau_l^2)`` plus the
  scale's prior, i.e. squared error plus an L2 penalty of strength ``scale^2 / tau_l^2`` per
  layer. Output weights get ``tau / sqrt(hidden)`` (Neal's scaling, so the prior over functions
  does not grow with the width). The MAP found here has only 4 distinct units among its 8 (one
  three times, two twice, one once): under an L2 penalty, identical units sharing a job cost
  less than distinct ones.
* **The posterior** (NUTS on this 8-unit net) gives a predictive band that is narrow where the
  data are and wider between and beyond the intervals (90% band of ``x_hat``: about 0.3 at the
  intervals' centres, 1.5 between them, 1.0 at ``u = +-6``): the weights the data do not pin
  down are free to bend the function there. :func:`predictive` computes the predictive mean and
  intervals on a grid from any fit's draws (``numpyro.infer.Predictive`` on the unchanged
  program), :func:`plot_predictive` draws them.
* **VI** with probmodels' default mean-field guide does *not* fit these 20 points, on the
  50-unit :data:`wide` net nor on the 8-unit one: it explains them as noise (``scale`` 0.8 to
  1.2, training RMSE 0.6 to 0.9) under a band that is wide everywhere. That is the ELBO's own
  optimum, not an optimiser failure: numpyro's ``SVI`` with ``AutoNormal`` run directly from the
  same start reaches the same ELBO (-32.0 on the 8-unit net), and a fit that does follow the data
  (the full-rank guide, ``guide="multivariate_normal"``, on the 8-unit net) has a lower one
  (-40.2): independent Gaussians pay more in KL for the correlated, multimodal weight posterior
  than they gain in likelihood (Coker et al. 2022, "Wide mean-field Bayesian neural networks
  ignore the data"; Trippe and Turner 2018 on over-pruning). With ten times the data (200
  points) mean-field VI on the wide net follows the data, but its band is then nearly flat in
  ``u`` (0.6 to 0.8 inside, between and beyond the data): a single-hidden-layer mean-field
  Gaussian cannot widen between clusters (Foong et al. 2020). probmodels' Pareto k-hat (> 1)
  says not to trust any of these. The full-rank guide on the 8-unit net follows the data and
  widens away from it (0.45 inside, 0.7 to 1.3 away).

**Weight-space symmetries.** Permuting the hidden units, or flipping the signs of one unit's
``(w1_j, b1_j, w2_j)`` (tanh is odd), leaves ``f_theta`` unchanged: every posterior mode has
``hidden! * 2^hidden`` (here 10,321,920) exact copies, besides modes that differ in earnest.
A chain moves between copies only through narrow regions (a unit switched off, ``w2_j`` near 0,
lets its ``w1_j, b1_j`` change sign freely), so each chain visits a few copies in proportions
that differ from chain to chain: r-hat of the *weights* is large (1.14 on 2 short chains here)
and diagnoses nothing about the fit, and their posterior means and intervals (the report's
tables and forest plot) mostly show the symmetry (sign-symmetric around 0). What is identified
is the function: judge mixing by r-hat of ``x_hat`` at grid points (:func:`function_rhat`: 1.01
to 1.02 on the same short chains, 1.007 on 4 chains of 1000 draws), which the copies share,
and remember that chains can still miss modes that differ in earnest, which no r-hat on a few
chains detects. The Laplace and VI approximations are Gaussians around one copy of one mode.

The program starts where no gradient points anywhere: at the priors' medians, all weights are
0, every hidden unit is the same and the weight gradients vanish (a saddle; probmodels' damped
Newton solver does not leave it: MAP from there stops after 500 iterations with all weights
still 0). The point solvers, Laplace and VI are therefore started from seeded random weights
(:data:`INIT`, in ``FIT_OPTIONS``); NUTS starts from the prior median jittered by +-0.5 on every weight, which
breaks the symmetry.

Run: ``python models/neural_regression.py`` or ``probmodels report models/neural_regression.py``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import Predictive

from probmodels import noise, observe, param

HIDDEN = 8  # NUTS-sized: 25 weights and the noise scale
WIDE = 50  # the VI-sized network: 151 weights
TAU = 1.0  # prior sd of input weights and biases; output weights get TAU / sqrt(hidden)
NOISE_SD = 0.2
INTERVALS = ((-3.0, -1.0), (1.0, 3.0))
TRUTH = {"scale": NOISE_SD}


def f_true(u):
    """The function behind the data."""
    return np.sin(1.5 * u) + 0.3 * u


def mlp(u, w1, b1, w2, b2):
    """``f_theta(u)``: one hidden layer of tanh units, ``u`` of shape (N,) -> (N,)."""
    return jnp.tanh(u[:, None] * w1 + b1) @ w2 + b2


def network(hidden: int, tau: float = TAU):
    """The program with ``hidden`` tanh units and ``Normal`` (weight-decay) priors."""

    def program(u, x=None):
        w1 = param("w1", dist.Normal(0.0, tau), shape=(hidden,))
        b1 = param("b1", dist.Normal(0.0, tau), shape=(hidden,))
        w2 = param("w2", dist.Normal(0.0, tau / np.sqrt(hidden)), shape=(hidden,))
        b2 = param("b2", dist.Normal(0.0, tau))
        scale = param("scale", dist.HalfNormal(1.0))
        x_hat = numpyro.deterministic("x_hat", mlp(u, w1, b1, w2, b2))
        return observe("x", x_hat + noise.Gaussian(scale), obs=x)

    program.__name__ = f"mlp{hidden}"
    return program


program = network(HIDDEN)
wide = network(WIDE)


def random_init(hidden: int = HIDDEN, seed: int = 0) -> dict:
    """Seeded starting weights that break the units' symmetry (input layer ~ N(0, 1))."""
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(size=hidden),
        "b1": rng.normal(size=hidden),
        "w2": rng.normal(size=hidden) / np.sqrt(hidden),
        "b2": 0.0,
        "scale": 0.5,
    }


INIT = random_init()
FIT_OPTIONS = {
    "mle": {"init": INIT, "max_iter": 2000},
    "map": {"init": INIT},
    "laplace": {"init": INIT},
    "vi": {"init": INIT},
    "nuts": {"target_accept": 0.95},
}


def data(n: int = 10, seed: int = 0) -> dict:
    """``n`` points on each interval of :data:`INTERVALS`, ``x = f_true(u) + N(0, NOISE_SD)``.

    A different ``seed`` gives new data from the same distribution (a held-out set)."""
    rng = np.random.default_rng(seed)
    u = np.concatenate([rng.uniform(lo, hi, n) for lo, hi in INTERVALS])
    u.sort()
    x = f_true(u) + rng.normal(scale=NOISE_SD, size=u.size)
    return {"u": u, "x": x}


def _samples(fit, n: int | None):
    """The fit's parameter draws, chains merged (``n`` evenly spaced ones), or the point estimate
    as a single draw for mle / map."""
    if fit.is_point or fit.draws is None:
        return {k: np.asarray(v)[None] for k, v in fit.estimate.items()}
    out = {}
    for k in fit.estimate:
        d = np.asarray(fit.draws[k])
        out[k] = d.reshape((-1,) + d.shape[2:])
    total = len(next(iter(out.values())))
    if n is not None and n < total:
        idx = np.linspace(0, total - 1, n).astype(int)
        out = {k: v[idx] for k, v in out.items()}
    return out


def predictive(fit, u, model=program, prob: float = 0.9, n: int | None = 1000, seed: int = 0) -> dict:
    """Predictive mean and central intervals on a grid ``u`` from a fit.

    Runs the unchanged program under ``numpyro.infer.Predictive`` with the fit's draws
    substituted for the parameters (posterior fits), or its estimate (mle, map: the plug-in
    predictive).

    Parameters
    ----------
    fit : probmodels.Fit
        A fit of ``model``.
    u : array (G,)
        Grid of inputs.
    model : callable
        The program the fit solved (:data:`program` or :data:`wide`).
    prob : float
        Central interval probability.
    n : int or None
        Number of draws used (evenly spaced over the chains); ``None`` for all.
    seed : int
        Seed of the simulated noise.

    Returns
    -------
    dict with arrays of shape (G,): ``mean`` (of ``x_hat``), ``f_lo``/``f_hi`` (the interval of
    ``x_hat``: the uncertainty about the function; zero width for point fits) and
    ``x_lo``/``x_hi`` (the interval of a new observation ``x``: function and noise).

    Examples
    --------
    >>> import probmodels
    >>> post = probmodels.fit(program, data(), "nuts", chains=2, warmup=300, draws=300)  # doctest: +SKIP
    >>> band = predictive(post, np.linspace(-6, 6, 121))  # doctest: +SKIP
    """
    u = np.asarray(u, dtype=float)
    samples = _samples(fit, n)
    sim = Predictive(model, posterior_samples=samples, return_sites=["x_hat", "x"])(
        jax.random.PRNGKey(seed), u=u, x=None
    )
    f, x = np.asarray(sim["x_hat"]), np.asarray(sim["x"])
    a = 100 * (1 - prob) / 2
    if fit.is_point:
        # the plug-in predictive: x ~ N(x_hat, scale), its quantiles exactly
        from scipy.stats import norm

        s = float(fit.estimate["scale"])
        half = norm.ppf(0.5 + prob / 2) * s
        return dict(mean=f[0], f_lo=f[0], f_hi=f[0], x_lo=f[0] - half, x_hi=f[0] + half)
    f_lo, f_hi = np.percentile(f, [a, 100 - a], axis=0)
    x_lo, x_hi = np.percentile(x, [a, 100 - a], axis=0)
    return dict(mean=f.mean(axis=0), f_lo=f_lo, f_hi=f_hi, x_lo=x_lo, x_hi=x_hi)


def function_rhat(fit, u, model=program) -> np.ndarray:
    """r-hat of ``x_hat`` at the grid points ``u`` (ArviZ's rank-normalised r-hat), per point.

    The function is what the weight-space symmetries leave identified, so this is the r-hat
    that means something for a network (see the module docstring)."""
    import arviz as az

    draws = {k: np.asarray(fit.draws[k]) for k in fit.estimate}
    c, d = next(iter(draws.values())).shape[:2]
    flat = {k: v.reshape((c * d,) + v.shape[2:]) for k, v in draws.items()}
    f = Predictive(model, posterior_samples=flat, return_sites=["x_hat"])(
        jax.random.PRNGKey(0), u=np.asarray(u, dtype=float), x=None
    )["x_hat"]
    f = np.asarray(f).reshape(c, d, -1)
    return np.asarray(az.rhat(az.convert_to_dataset({"x_hat": f}))["x_hat"].values)


def rmse(fit, d: dict, model=program) -> float:
    """Root mean squared error of the fit's predictive mean on data ``d``."""
    return float(np.sqrt(np.mean((predictive(fit, d["u"], model)["mean"] - d["x"]) ** 2)))


def plot_predictive(fits: dict, train: dict, grid=None, models: dict | None = None, prob: float = 0.9):
    """One panel per fit: the data, the true function, the predictive mean, the interval of the
    function (dark) and of a new observation (light).

    ``fits`` maps labels to fits; ``models`` maps the same labels to their programs where that
    is not :data:`program` (e.g. ``{"VI, 50 units": wide}``)."""
    import matplotlib.pyplot as plt

    grid = np.linspace(-6.0, 6.0, 241) if grid is None else np.asarray(grid)
    models = models or {}
    fig, axes = plt.subplots(1, len(fits), figsize=(3.6 * len(fits), 3.4), sharey=True, squeeze=False)
    for ax, (label, f) in zip(axes[0], fits.items()):
        p = predictive(f, grid, models.get(label, program), prob=prob)
        for lo, hi in INTERVALS:
            ax.axvspan(lo, hi, color="0.93", zorder=0)
        ax.fill_between(grid, p["x_lo"], p["x_hi"], color="C0", alpha=0.18, lw=0, label=f"{prob:.0%} new x")
        ax.fill_between(grid, p["f_lo"], p["f_hi"], color="C0", alpha=0.45, lw=0, label=f"{prob:.0%} f(u)")
        ax.plot(grid, p["mean"], color="C0", lw=1.5, label="mean")
        ax.plot(grid, f_true(grid), "k--", lw=1, label="truth")
        ax.plot(train["u"], train["x"], "o", color="C3", ms=3.5, label="data")
        ax.set_title(label)
        ax.set_xlabel("u")
        ax.set_ylim(-5, 5)
    axes[0, 0].set_ylabel("x")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("predictive mean and intervals on a grid (grey: where the data are)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    import os

    import probmodels
    from probmodels.report import report

    out = "report-neural_regression"
    rep = report(__file__, out=out)
    train = data()
    vi_wide = probmodels.fit(wide, train, "vi", init=random_init(WIDE))  # mean-field
    vi_full = probmodels.fit(program, train, "vi", init=INIT, guide="multivariate_normal")
    fits = {k: rep.fits[k] for k in ("MLE", "MAP", "NUTS") if k in rep.fits}
    fits.update({"VI, 50 units, mean-field": vi_wide, "VI, 8 units, full-rank": vi_full})
    models = {"VI, 50 units, mean-field": wide}
    plot_predictive(fits, train, models=models).savefig(os.path.join(out, "predictive.png"), dpi=110)
    test = data(n=200, seed=1)
    for label, f in fits.items():
        model = models.get(label, program)
        print(f"{label:>26}: train RMSE {rmse(f, train, model):.3f}, held-out RMSE {rmse(f, test, model):.3f}")
    if "NUTS" in rep.fits:
        print("max r-hat of x_hat on [-6, 6]:", float(np.max(function_rhat(rep.fits["NUTS"], np.linspace(-6, 6, 25)))))
