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
  down are free to bend the function there. ``fit.predict({"u": grid}).summary()`` gives the
  predictive mean and intervals on a grid for any fit (:func:`band`), :func:`plot_predictive`
  draws them.
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

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

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


def band(fit, u, prob: float = 0.9, draws: int | None = 1000):
    """The predictive mean and central intervals of a fit on a grid ``u``: :meth:`Fit.predict`'s
    summary (``mean`` of ``x_hat``; ``mean_low``/``mean_high``, the interval of ``x_hat``, the
    uncertainty about the function, of zero width for a point fit's plug-in predictive;
    ``obs_low``/``obs_high``, the interval of a new observation ``x``).

    Examples
    --------
    >>> import probmodels
    >>> post = probmodels.fit(program, data(), "nuts", chains=2, warmup=300, draws=300)  # doctest: +SKIP
    >>> band(post, np.linspace(-6, 6, 121))  # doctest: +SKIP
    """
    n = None if fit.is_point or draws is None else min(draws, int(np.prod(fit.draws["scale"].shape[:2])))
    return fit.predict({"u": np.asarray(u, dtype=float)}, draws=n).summary(prob=prob)


def function_rhat(fit, u) -> np.ndarray:
    """r-hat of ``x_hat`` at the grid points ``u`` (ArviZ's rank-normalised r-hat), per point.

    The function is what the weight-space symmetries leave identified, so this is the r-hat
    that means something for a network (see the module docstring). ``x_hat`` is the location
    of the Gaussian noise, which :meth:`Fit.predict` returns at every draw."""
    import arviz as az

    f = fit.predict({"u": np.asarray(u, dtype=float)}).location
    return np.asarray(az.rhat(az.convert_to_dataset({"x_hat": f}))["x_hat"].values)


def rmse(fit, d: dict) -> float:
    """Root mean squared error of the fit's predictive mean on data ``d``."""
    return float(np.sqrt(np.mean((band(fit, d["u"])["mean"].to_numpy() - d["x"]) ** 2)))


def plot_predictive(fits: dict, train: dict, grid=None, prob: float = 0.9):
    """One panel per fit: the data, the true function, the predictive mean, the interval of the
    function (dark) and of a new observation (light), from :meth:`Fit.predict` (each fit knows
    its program, :data:`program` or :data:`wide`)."""
    import matplotlib.pyplot as plt

    grid = np.linspace(-6.0, 6.0, 241) if grid is None else np.asarray(grid)
    fig, axes = plt.subplots(1, len(fits), figsize=(3.6 * len(fits), 3.4), sharey=True, squeeze=False)
    for ax, (label, f) in zip(axes[0], fits.items()):
        p = band(f, grid, prob=prob)
        for lo, hi in INTERVALS:
            ax.axvspan(lo, hi, color="0.93", zorder=0)
        ax.fill_between(grid, p["obs_low"], p["obs_high"], color="C0", alpha=0.18, lw=0, label=f"{prob:.0%} new x")
        ax.fill_between(grid, p["mean_low"], p["mean_high"], color="C0", alpha=0.45, lw=0, label=f"{prob:.0%} f(u)")
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
    plot_predictive(fits, train).savefig(os.path.join(out, "predictive.png"), dpi=110)
    test = data(n=200, seed=1)
    for label, f in fits.items():
        print(f"{label:>26}: train RMSE {rmse(f, train):.3f}, held-out RMSE {rmse(f, test):.3f}")
    if "NUTS" in rep.fits:
        print("max r-hat of x_hat on [-6, 6]:", float(np.max(function_rhat(rep.fits["NUTS"], np.linspace(-6, 6, 25)))))
