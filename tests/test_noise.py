"""The noise-model catalogue, table-driven against independent references.

One row per noise model (``CASES``), in the style of numpyro's ``test_distributions.py``. Each row
carries the model's constructor, a hypothesis strategy over its inputs (extremes included: logits
up to |1e3|, log-rates in [-700, 700], scales from 1e-6 to 1e6), and, written here independently
of the library:

* ``textbook``: the textbook loss in numpy (squared error, BCE with logits, ...);
* ``a``: the known factor in ``nll = a * loss + c(x)``;
* ``terms``: the closed-form log-density as a list of terms built from numpy and
  ``scipy.special`` (``log_expit``, ``gammaln``, ``logsumexp``, ``xlogy``), stable for every
  finite input. The sum of their absolute values, ``mag``, is the size of the numbers that get
  added: every tolerance below is a multiple of ``EPS_TOL * mag``;
* ``stats``: minus ``scipy.stats`` logpdf/logpmf in the textbook parametrisation (probabilities,
  rates), or ``None`` where that parametrisation has lost the precision the model keeps (e.g.
  ``expit(1000) == 1.0``), so the closed form is the only reference there.

References per section: (1) affine loss <-> nll: textbook losses; (2) nll: ``scipy.stats`` and the
closed forms; (3) normalisation: ``scipy.integrate.quad`` and truncated sums with tail bounds;
(4) ``for_loss``: DESIGN.md's table; (5) heteroscedastic scales: ``scipy.stats`` elementwise;
(6) Huber sampling: KS against the quadrature CDF, variance by quadrature.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

import probmodels  # noqa: F401  (float64 before any array)
from probmodels import noise

# Each term of a log-density is computed to a few ulps by both sides (numpy/scipy here, XLA in
# the library); 1e-12 relative to the summed term magnitudes leaves ~4500 ulps of room for
# log1p/gammaln implementations that differ, while any wrong constant or factor is >= 1e-3 off.
EPS_TOL = 1e-12
EPS = np.finfo(float).eps

HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------------------
# strategies


def log_uniform(lo, hi):
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)


REAL = st.floats(-1e3, 1e3)  # observations and predictions of additive models
SCALE = log_uniform(1e-6, 1e6)
# logits and log-rates: a moderate range (where scipy.stats is well conditioned) and the extremes
LOGIT = st.one_of(st.floats(-20.0, 20.0), st.floats(-1e3, 1e3))
LOG_RATE = st.one_of(st.floats(-5.0, 10.0), st.floats(-700.0, 700.0))
COUNT = st.integers(0, 1000).map(float)


def additive(**extra):
    return st.fixed_dictionaries({"x": REAL, "h": REAL, "h2": REAL, "s": SCALE, **extra})


# --------------------------------------------------------------------------------------------
# the catalogue table


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[dict], noise.NoiseModel]
    params: st.SearchStrategy
    textbook: Callable[[dict, object], object]  # numpy loss at prediction h
    a: Callable[[dict], float]
    terms: Callable[[dict, object], list]  # closed-form log p(x | h), as terms
    stats: Callable[[dict, object], object]  # (log p from scipy.stats, extra atol) or None
    corners: list = field(default_factory=list)  # explicit extreme inputs
    scale_keys: tuple = ()  # positive parameters to differentiate (scale, concentration, shape)
    fixed: dict = field(default_factory=dict)  # moderate inputs for quadrature / broadcasting


def _r(p, h):
    return np.asarray(p["x"], dtype=float) - h


def grid(**axes):
    """All combinations of the given values, as dicts."""
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]


def additive_corners(**extra):
    # residuals of 0 and 2e3 at scales 1e-6 and 1e6: z from 0 to 2e9, nll up to ~2e18
    base = [{"x": 1e3, "h": -1e3, "h2": 0.0}, {"x": 0.0, "h": 0.0, "h2": 1e3}, {"x": -1e3, "h": 1e3, "h2": -1e3}]
    return [{**b, **g} for b in base for g in grid(s=[1e-6, 1e6], **extra)]


def huber_fn(t, delta):
    """Huber's function h_delta(t), written independently of the library."""
    a = np.abs(t)
    return np.where(a <= delta, 0.5 * np.square(t), delta * (a - 0.5 * delta))


def huber_z(delta):
    """Z(delta) = sqrt(2 pi) erf(delta / sqrt 2) + 2 exp(-delta^2 / 2) / delta."""
    return np.sqrt(2 * np.pi) * special.erf(delta / np.sqrt(2)) + 2 * np.exp(-0.5 * delta**2) / delta


def _mixture_comps(p):
    return [stats.norm(0.0, p["s"]), stats.laplace(0.0, p["s2"]), stats.t(3.0, 0.0, p["s3"])]


def _mixture_logp(p, h):
    # logsumexp over components of log w_k + scipy logpdf_k(r)
    r = _r(p, h)
    w = np.asarray(p["w"])
    logs = [np.log(w[k]) + c.logpdf(r) for k, c in enumerate(_mixture_comps(p))]
    return special.logsumexp(np.stack(np.broadcast_arrays(*logs)), axis=0)


def _mixture_weights():
    return st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3).map(lambda v: tuple(np.array(v) / np.sum(v)))


def _laplace_stats(p, h):
    # scipy.stats.laplace takes the log of exp(-|z|) / 2, which is subnormal beyond |z| ~ 708
    # (its logpdf at z = 724 is 2e-9 off): compare where it is a normal float
    if np.any(np.abs(_r(p, h) / p["s"]) > 700):
        return None
    return stats.laplace.logpdf(p["x"], h, p["s"]), 0.0


def _cond_expit(eta):
    """Absolute error of log(p) and log(1 - p) when p = expit(eta) is rounded: eps / min(p, 1-p)."""
    return 8 * EPS / special.expit(-abs(eta))


def _bernoulli_stats(p, h):
    if abs(h) > 20:  # expit(eta) rounds to within eps of 1: log(1 - p) is lost
        return None
    return stats.bernoulli.logpmf(p["x"], special.expit(h)), _cond_expit(h)


def _binomial_stats(p, h):
    if abs(h) > 20:  # as for Bernoulli
        return None
    return stats.binom.logpmf(p["x"], p["n"], special.expit(h)), p["n"] * _cond_expit(h)


def _nbinom_stats(p, h):
    r, mu, x = p["r"], np.exp(h), p["x"]
    q = mu / (r + mu)  # scipy computes log(1 - p) from p = r / (r + mu): relative error eps / q
    err = 8 * EPS * (x / max(q, 1e-300) + r + 1)
    if err > 1e-8:
        return None
    return stats.nbinom.logpmf(x, r, r / (r + mu)), err


def _nb_terms(p, h):
    x, r = p["x"], p["r"]
    lse = np.logaddexp(np.log(r), h)  # log(r + mu)
    return [special.gammaln(x + r), -special.gammaln(r), -special.gammaln(x + 1), r * np.log(r), -r * lse, x * h, -x * lse]


CASES = [
    Case(
        "Gaussian",
        make=lambda p: noise.Gaussian(p["s"]),
        params=additive(),
        textbook=lambda p, h: _r(p, h) ** 2,
        a=lambda p: 1 / (2 * p["s"] ** 2),
        terms=lambda p, h: [-0.5 * (_r(p, h) / p["s"]) ** 2, -np.log(p["s"]), -0.5 * np.log(2 * np.pi)],
        stats=lambda p, h: (stats.norm.logpdf(p["x"], h, p["s"]), 0.0),
        corners=additive_corners(),
        scale_keys=("s",),
        fixed={"s": 1.0},
    ),
    Case(
        "Laplace",
        make=lambda p: noise.Laplace(p["s"]),
        params=additive(),
        textbook=lambda p, h: np.abs(_r(p, h)),
        a=lambda p: 1 / p["s"],
        terms=lambda p, h: [-np.abs(_r(p, h)) / p["s"], -np.log(2.0), -np.log(p["s"])],
        stats=_laplace_stats,
        corners=additive_corners(),
        scale_keys=("s",),
        fixed={"s": 1.0},
    ),
    Case(
        "StudentT",
        make=lambda p: noise.StudentT(df=p["df"], scale=p["s"]),
        params=additive(df=log_uniform(0.2, 1e3)),
        textbook=lambda p, h: np.log1p(_r(p, h) ** 2 / (p["df"] * p["s"] ** 2)),
        a=lambda p: (p["df"] + 1) / 2,
        terms=lambda p, h: [
            special.gammaln((p["df"] + 1) / 2),
            -special.gammaln(p["df"] / 2),
            -0.5 * np.log(p["df"] * np.pi),
            -np.log(p["s"]),
            -(p["df"] + 1) / 2 * np.log1p((_r(p, h) / p["s"]) ** 2 / p["df"]),
        ],
        stats=lambda p, h: (stats.t.logpdf(p["x"], p["df"], h, p["s"]), 0.0),
        corners=additive_corners(df=[0.2, 1e3]),
        scale_keys=("s", "df"),
        fixed={"s": 1.0, "df": 3.0},
    ),
    Case(
        "Cauchy",
        make=lambda p: noise.Cauchy(p["s"]),
        params=additive(),
        textbook=lambda p, h: np.log1p((_r(p, h) / p["s"]) ** 2),
        a=lambda p: 1.0,
        terms=lambda p, h: [-np.log(np.pi), -np.log(p["s"]), -np.log1p((_r(p, h) / p["s"]) ** 2)],
        stats=lambda p, h: (stats.cauchy.logpdf(p["x"], h, p["s"]), 0.0),
        corners=additive_corners(),
        scale_keys=("s",),
        fixed={"s": 1.0},
    ),
    Case(
        "Logistic",
        make=lambda p: noise.Logistic(p["s"]),
        params=additive(),
        # log cosh(t) = log(e^t + e^-t) - log 2, overflow-free
        textbook=lambda p, h: np.logaddexp(_r(p, h) / (2 * p["s"]), -_r(p, h) / (2 * p["s"])) - np.log(2.0),
        a=lambda p: 2.0,
        # p(x) = 1 / (s (e^{z/2} + e^{-z/2})^2)
        terms=lambda p, h: [
            -2 * np.logaddexp(_r(p, h) / (2 * p["s"]), -_r(p, h) / (2 * p["s"])),
            -np.log(p["s"]),
        ],
        stats=lambda p, h: (stats.logistic.logpdf(p["x"], h, p["s"]), 0.0),
        corners=additive_corners(),
        scale_keys=("s",),
        fixed={"s": 1.0},
    ),
    Case(
        "Huber",
        make=lambda p: noise.Huber(delta=p["delta"], scale=p["s"]),
        params=additive(delta=log_uniform(0.01, 50.0)),
        # the textbook Huber loss with threshold d = delta * scale
        textbook=lambda p, h: np.where(
            np.abs(_r(p, h)) <= p["delta"] * p["s"],
            0.5 * _r(p, h) ** 2,
            p["delta"] * p["s"] * (np.abs(_r(p, h)) - 0.5 * p["delta"] * p["s"]),
        ),
        a=lambda p: 1 / p["s"] ** 2,
        # no scipy distribution: the closed form exp(-h_delta(r/s)) / (s Z(delta)) is the reference
        terms=lambda p, h: [-huber_fn(_r(p, h) / p["s"], p["delta"]), -np.log(p["s"]), -np.log(huber_z(p["delta"]))],
        stats=lambda p, h: None,
        corners=additive_corners(delta=[0.01, 50.0]),
        scale_keys=("s", "delta"),
        fixed={"s": 1.0, "delta": 1.345},
    ),
    Case(
        "Mixture",
        make=lambda p: noise.Mixture(
            [noise.Gaussian(p["s"]), noise.Laplace(p["s2"]), noise.StudentT(df=3.0, scale=p["s3"])], weights=p["w"]
        ),
        params=additive(s2=SCALE, s3=SCALE, w=_mixture_weights()),
        textbook=lambda p, h: -_mixture_logp(p, h),  # no simpler loss: the loss is the nll
        a=lambda p: 1.0,
        terms=lambda p, h: [_mixture_logp(p, h)],
        stats=lambda p, h: (_mixture_logp(p, h), 0.0),
        corners=additive_corners(s2=[1e-6, 1e6], s3=[1.0], w=[(0.2, 0.3, 0.5)]),
        scale_keys=("s", "s2", "s3"),
        fixed={"s": 1.0, "s2": 10.0, "s3": 0.5, "w": (0.7, 0.2, 0.1)},
    ),
    Case(
        "Bernoulli",
        make=lambda p: noise.Bernoulli(),
        params=st.fixed_dictionaries({"x": st.sampled_from([0.0, 1.0]), "h": LOGIT, "h2": LOGIT}),
        textbook=lambda p, h: np.logaddexp(0.0, h) - p["x"] * h,  # BCE with logits
        a=lambda p: 1.0,
        terms=lambda p, h: [p["x"] * special.log_expit(h), (1 - p["x"]) * special.log_expit(-h)],
        stats=_bernoulli_stats,
        corners=grid(x=[0.0, 1.0], h=[-1e3, 1e3], h2=[0.0]),
    ),
    Case(
        "Binomial",
        make=lambda p: noise.Binomial(total_count=p["n"]),
        params=st.integers(1, 50).flatmap(
            lambda n: st.fixed_dictionaries(
                {"n": st.just(float(n)), "x": st.integers(0, n).map(float), "h": LOGIT, "h2": LOGIT}
            )
        ),
        textbook=lambda p, h: p["n"] * np.logaddexp(0.0, h) - p["x"] * h,
        a=lambda p: 1.0,
        terms=lambda p, h: [
            special.gammaln(p["n"] + 1),
            -special.gammaln(p["x"] + 1),
            -special.gammaln(p["n"] - p["x"] + 1),
            p["x"] * special.log_expit(h),
            (p["n"] - p["x"]) * special.log_expit(-h),
        ],
        stats=_binomial_stats,
        corners=grid(n=[50.0], x=[0.0, 25.0, 50.0], h=[-1e3, 1e3], h2=[0.0]),
    ),
    Case(
        "Categorical",
        make=lambda p: noise.Categorical(),
        params=st.fixed_dictionaries(
            {
                "x": st.integers(0, 3),
                "h": st.lists(LOGIT, min_size=4, max_size=4).map(np.array),
                "h2": st.lists(LOGIT, min_size=4, max_size=4).map(np.array),
            }
        ),
        textbook=lambda p, h: special.logsumexp(h) - h[p["x"]],
        a=lambda p: 1.0,
        terms=lambda p, h: [h[p["x"]], -special.logsumexp(h)],
        stats=lambda p, h: (special.log_softmax(h)[p["x"]], 0.0),
        corners=grid(
            x=[0, 1, 3],
            h=[np.array([1e3, -1e3, 0.0, 1e3]), np.array([-1e3, -1e3, -1e3, 1e3])],
            h2=[np.zeros(4)],
        ),
    ),
    Case(
        "Poisson",
        make=lambda p: noise.Poisson(),
        params=st.fixed_dictionaries({"x": COUNT, "h": LOG_RATE, "h2": LOG_RATE}),
        textbook=lambda p, h: np.exp(h) - p["x"] * h,
        a=lambda p: 1.0,
        terms=lambda p, h: [p["x"] * h, -np.exp(h), -special.gammaln(p["x"] + 1)],
        # exp(eta) is a normal float on [-700, 700], so scipy's rate parametrisation keeps
        # log(rate) to an ulp there
        stats=lambda p, h: (stats.poisson.logpmf(p["x"], np.exp(h)), 0.0),
        corners=grid(x=[0.0, 1000.0], h=[-700.0, 700.0], h2=[0.0]),
    ),
    Case(
        "NegativeBinomial",
        make=lambda p: noise.NegativeBinomial(concentration=p["r"]),
        params=st.fixed_dictionaries({"x": COUNT, "h": LOG_RATE, "h2": LOG_RATE, "r": log_uniform(1e-2, 1e3)}),
        textbook=lambda p, h: (p["x"] + p["r"]) * np.logaddexp(np.log(p["r"]), h) - p["x"] * h,
        a=lambda p: 1.0,
        terms=_nb_terms,
        stats=_nbinom_stats,
        corners=grid(x=[0.0, 1000.0], h=[-700.0, 700.0], h2=[0.0], r=[1e-2, 1e3]),
        scale_keys=("r",),
    ),
    Case(
        "Gamma",
        make=lambda p: noise.Gamma(shape=p["shape"]),
        # x up to 10 and shape up to 10 keep shape * x * exp(700) below the float64 maximum
        params=st.fixed_dictionaries(
            {"x": log_uniform(1e-3, 10.0), "h": LOG_RATE, "h2": LOG_RATE, "shape": log_uniform(0.1, 10.0)}
        ),
        textbook=lambda p, h: p["x"] * np.exp(-h) + h,
        a=lambda p: p["shape"],
        terms=lambda p, h: [
            p["shape"] * np.log(p["shape"]),
            -p["shape"] * h,
            special.xlogy(p["shape"] - 1, p["x"]),
            -p["shape"] * p["x"] * np.exp(-h),
            -special.gammaln(p["shape"]),
        ],
        stats=lambda p, h: (stats.gamma.logpdf(p["x"], p["shape"], scale=np.exp(h) / p["shape"]), 0.0),
        corners=grid(x=[1e-3, 10.0], h=[-700.0, 700.0], h2=[0.0], shape=[0.1, 10.0]),
        scale_keys=("shape",),
    ),
]
ADDITIVE = [c for c in CASES if "s" in c.fixed]
DEFAULTS = {"s": 1.0, "n": 3.0, "r": 2.0, "shape": 2.0}  # moderate values for any row
ids = lambda c: c.name  # noqa: E731


def tsum(terms):
    return np.sum(np.stack(np.broadcast_arrays(*[np.asarray(t, dtype=float) for t in terms])), axis=0)


def tmag(terms):
    return tsum([np.abs(t) for t in terms])


def nll_of(case, p, h):
    return np.asarray(case.make(p).nll(p["x"], h))


def loss_of(case, p, h):
    return np.asarray(case.make(p).loss(p["x"], h))


def check_nll(case, p):
    """nll at (x, h) against the closed form and scipy.stats; nll and its gradients finite."""
    h = p["h"]
    nll = float(nll_of(case, p, h))
    terms = case.terms(p, h)
    ref, mag = -float(tsum(terms)), float(tmag(terms))
    assert np.isfinite(ref), (p, ref)  # the inputs stay inside float64's range by construction
    assert np.isfinite(nll), (case.name, p, nll)
    tol = EPS_TOL * (mag + 1)
    assert abs(nll - ref) <= tol, (case.name, p, nll, ref, nll - ref, tol)
    ref_stats = case.stats(p, h)
    if ref_stats is not None:
        logp, extra = ref_stats
        assert abs(nll + float(logp)) <= tol + extra, (case.name, p, nll, -float(logp), nll + float(logp))
    # the gradients a fit needs: d nll / d x_hat, and d nll / d (scale, df, delta, r, shape)
    g = np.asarray(jax.grad(lambda hh: case.make(p).nll(p["x"], hh))(jnp.asarray(h, dtype=float)))
    assert np.all(np.isfinite(g)), (case.name, "d/dx_hat", p, g)
    for key in case.scale_keys:
        gs = jax.grad(lambda v: case.make({**p, key: v}).nll(p["x"], h))(jnp.asarray(p[key], dtype=float))
        assert np.isfinite(float(gs)), (case.name, f"d/d{key}", p, gs)


# --------------------------------------------------------------------------------------------
# 1. nll = a * loss + c(x)


def check_affine(case, p):
    h, h2 = p["h"], p["h2"]
    a = case.a(p)
    assert a > 0
    loss1, loss2 = float(loss_of(case, p, h)), float(loss_of(case, p, h2))
    mag1, mag2 = float(tmag(case.terms(p, h))), float(tmag(case.terms(p, h2)))
    # the loss is the textbook loss (its terms are those of the log-density divided by a)
    book = float(case.textbook(p, h))
    assert abs(loss1 - book) <= EPS_TOL * (mag1 + 1) / a, (case.name, p, loss1, book)
    # and the nll is that loss times a, plus a constant free of the prediction
    d_nll = float(nll_of(case, p, h)) - float(nll_of(case, p, h2))
    d_loss = loss1 - loss2
    tol = EPS_TOL * (mag1 + mag2 + 2)
    assert abs(d_nll - a * d_loss) <= tol, (case.name, p, d_nll, a * d_loss, tol)


@pytest.mark.parametrize("case", CASES, ids=ids)
@HYPOTHESIS
@given(data=st.data())
def test_nll_is_affine_in_textbook_loss(case, data):
    check_affine(case, data.draw(case.params))


# --------------------------------------------------------------------------------------------
# 2. nll against scipy (and the closed forms at the extremes), finite nll and gradients


@pytest.mark.parametrize("case", CASES, ids=ids)
@HYPOTHESIS
@given(data=st.data())
def test_nll_matches_scipy(case, data):
    check_nll(case, data.draw(case.params))


CORNERS = [pytest.param(c, p, id=f"{c.name}-{i}") for c in CASES for i, p in enumerate(c.corners)]


@pytest.mark.parametrize("case,p", CORNERS)
def test_extremes(case, p):
    # the corners hypothesis may not reach: every extreme of every input at once
    check_nll(case, p)
    check_affine(case, p)


@pytest.mark.parametrize("delta", [0.01, 0.5, 1.345, 3.0, 20.0])
def test_huber_normaliser_by_quadrature(delta):
    # Z(delta) = int exp(-h_delta(t)) dt by quad, against the closed form the Huber rows use
    core, e1 = integrate.quad(lambda t: np.exp(-huber_fn(t, delta)), -delta, delta, epsabs=0, epsrel=1e-13)
    tail, e2 = integrate.quad(lambda t: np.exp(-huber_fn(t, delta)), delta, np.inf, epsabs=0, epsrel=1e-13)
    z = core + 2 * tail
    np.testing.assert_allclose(huber_z(delta), z, rtol=1e-11, atol=10 * (e1 + 2 * e2))
    # and the library's nll at the mode is log(s Z): its normaliser is this one
    nll0 = float(noise.Huber(delta=delta, scale=2.5).nll(0.0, 0.0))
    np.testing.assert_allclose(nll0, np.log(2.5 * z), rtol=1e-11)


@pytest.mark.parametrize(
    "model,x,logp",
    [  # DESIGN.md: rate= / probs= are accepted too; the prediction may be bound in the constructor
        (noise.Bernoulli(probs=0.3), 1.0, stats.bernoulli.logpmf(1, 0.3)),
        (noise.Bernoulli(logits=special.logit(0.3)), 0.0, stats.bernoulli.logpmf(0, 0.3)),
        (noise.Binomial(total_count=9, probs=0.3), 4.0, stats.binom.logpmf(4, 9, 0.3)),
        (noise.Categorical(probs=jnp.array([0.2, 0.5, 0.3])), 2, np.log(0.3)),
        (noise.Poisson(rate=4.5), 3.0, stats.poisson.logpmf(3, 4.5)),
        (noise.NegativeBinomial(rate=4.5, concentration=2.0), 3.0, stats.nbinom.logpmf(3, 2.0, 2.0 / 6.5)),
        (noise.Gamma(mean=4.5, shape=2.0), 3.0, stats.gamma.logpdf(3.0, 2.0, scale=4.5 / 2.0)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, noise.NoiseModel) else "",
)
def test_bound_prediction_and_alternative_parametrisations(model, x, logp):
    # scipy.stats in the probability / rate / mean parametrisation, all well conditioned here
    np.testing.assert_allclose(float(model.nll(x)), -logp, rtol=1e-13)


def test_categorical_labels_as_floats():
    # class labels often arrive as floats (a data frame, an obs array): loss() casts them to int,
    # so nll = loss + 0 must accept them too; reference: scipy.special.log_softmax
    eta = np.array([0.1, 2.0, -1.0])
    eps = noise.Categorical()
    expected = -special.log_softmax(eta)[2]
    np.testing.assert_allclose(float(eps.loss(2.0, eta)), expected, rtol=1e-14)
    np.testing.assert_allclose(float(eps.nll(2.0, eta)), expected, rtol=1e-14)


# --------------------------------------------------------------------------------------------
# 3. densities integrate to 1, pmfs sum to 1


def _scaled(case, s):
    """The case's moderate inputs with every scale multiplied by s."""
    keys = [k for k in ("s", "s2", "s3") if k in case.fixed]
    return {**case.fixed, **{k: case.fixed[k] * s for k in keys}}, max(case.fixed[k] for k in keys)


@pytest.mark.parametrize("case", ADDITIVE, ids=ids)
def test_additive_density_integrates_to_one(case):
    f = jax.jit(lambda x, s: jnp.exp(-case.make(_scaled(case, s)[0]).nll(x, 0.0)))
    for s in (1e-4, 1.0, 1e4):  # small and large scales as a heteroscedastic program produces
        _, widest = _scaled(case, s)
        w = widest * s
        # int p(x) dx as int w p(w u) du: quad's transform of an infinite range assumes unit
        # width, and a 1e-4-wide peak would slip between its nodes; split at 0 (Laplace's kink)
        # and at +-30 widths so that the heavy tails get their own intervals
        g = lambda u: w * float(f(w * u, s))  # noqa: E731
        pieces = [(-np.inf, -30.0), (-30.0, 0.0), (0.0, 30.0), (30.0, np.inf)]
        vals, errs = zip(*(integrate.quad(g, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=200) for lo, hi in pieces))
        total, err = math.fsum(vals), sum(errs)
        assert err < 1e-9, (case.name, s, errs)  # quad converged, so its estimate means something
        # tolerance: quad's own error estimate (x10 for its being an estimate), floor 1e-11
        assert abs(total - 1.0) <= max(10 * err, 1e-11), (case.name, s, total, err)


@pytest.mark.parametrize("eta", [-30.0, -2.0, 0.0, 0.7, 30.0])
def test_finite_pmfs_sum_to_one(eta):
    # full supports: {0, 1}, {0..n}, {0..K-1}; exp(-nll) summed exactly (fsum)
    pb = np.exp(-np.asarray(noise.Bernoulli().nll(np.array([0.0, 1.0]), eta)))
    pn = np.exp(-np.asarray(noise.Binomial(total_count=7).nll(np.arange(8.0), eta)))
    pc = np.exp(-np.asarray(noise.Categorical().nll(np.arange(4), jnp.array([eta, 0.0, -eta / 3, 1.5]))))
    for name, probs in [("Bernoulli", pb), ("Binomial", pn), ("Categorical", pc)]:
        assert np.all(probs >= 0)
        # each nll has terms up to ~30, so each pmf carries relative error ~30 eps
        assert abs(math.fsum(probs) - 1.0) <= 1e-13, (name, eta, math.fsum(probs))


@pytest.mark.parametrize("eta", [-800.0, -30.0, -1.0, 0.0, 1e-300, 2.5, 30.0, 800.0])
def test_logit_models_derivatives_everywhere(eta):
    # d/d eta of -nll = n x/n ... in closed form: x - n sigmoid(eta), second derivative
    # -n sigmoid(eta) sigmoid(-eta); at eta = 0 (every logit at the start z = 0) differentiating
    # max(eta, 0) + log1p(exp(-|eta|)) naively gives the wrong first derivative
    sig, sig_neg = special.expit(eta), special.expit(-eta)
    for model, n in [(noise.Bernoulli(), 1.0), (noise.Binomial(total_count=7), 7.0)]:
        for x in (0.0, 1.0):
            lp = lambda e, x=x: -model.nll(x, e)  # noqa: E731
            g, h = float(jax.grad(lp)(eta)), float(jax.hessian(lp)(eta))
            assert abs(g - (x - n * sig)) <= 1e-15 * n, (model, x, eta, g)
            assert abs(h + n * sig * sig_neg) <= 1e-15 * n, (model, x, eta, h)
        # the numpyro distribution the program samples and conditions on, too
        d = model.distribution(jnp.asarray(eta))
        g = float(jax.grad(lambda e: model.distribution(e).log_prob(1.0))(jnp.asarray(eta)))
        assert abs(g - (1.0 - n * sig)) <= 1e-15 * n, (model, eta, g, d)


N_COUNT = 12_000  # one truncation for every rate, so that the nll compiles once per model


@pytest.mark.parametrize("mu", [0.05, 1.0, 50.0, 1e4])
def test_poisson_pmf_sums_to_one(mu):
    x = np.arange(N_COUNT + 1.0)
    total = math.fsum(np.exp(-np.asarray(noise.Poisson().nll(x, np.log(mu)))))
    # tail beyond N: pmf ratios p(x+1)/p(x) = mu/(x+1) <= q < 1, so the tail <= p(N) q / (1 - q)
    q = mu / (N_COUNT + 1)
    tail = stats.poisson.pmf(N_COUNT, mu) * q / (1 - q)
    assert tail < 1e-15
    # nll terms reach gammaln(N + 1) ~ 1e5, so each pmf carries relative error ~1e5 eps ~ 2e-11
    assert abs(total - 1.0) <= 1e-10 + tail, (mu, total)


@pytest.mark.parametrize("mu,r", [(0.05, 0.5), (20.0, 0.5), (100.0, 0.5), (20.0, 5.0), (100.0, 50.0)])
def test_negative_binomial_pmf_sums_to_one(mu, r):
    x = np.arange(N_COUNT + 1.0)
    total = math.fsum(np.exp(-np.asarray(noise.NegativeBinomial(np.log(mu), concentration=r).nll(x, np.log(mu)))))
    # p(x+1)/p(x) = (x + r)/(x + 1) * mu/(r + mu), for x >= N at most q below: tail <= p(N) q/(1-q)
    q = max(1.0, (N_COUNT + r) / (N_COUNT + 1)) * mu / (r + mu)
    tail = stats.nbinom.pmf(N_COUNT, r, r / (r + mu)) * q / (1 - q)
    assert tail < 1e-15
    assert abs(total - 1.0) <= 1e-10 + tail, (mu, r, total)  # as for Poisson


@pytest.mark.parametrize("mu,shape", [(1.0, 1.0), (20.0, 0.5), (0.05, 50.0), (1e3, 3.0)])
def test_gamma_density_integrates_to_one(mu, shape):
    f = noise.Gamma(shape=shape)
    g = lambda x: float(np.exp(-f.nll(x, np.log(mu))))  # noqa: E731
    v1, e1 = integrate.quad(g, 0.0, mu, epsabs=1e-14, epsrel=1e-12, limit=200)
    v2, e2 = integrate.quad(g, mu, np.inf, epsabs=1e-14, epsrel=1e-12, limit=200)
    assert e1 + e2 < 1e-9
    assert abs(v1 + v2 - 1.0) <= max(10 * (e1 + e2), 1e-11), (mu, shape, v1 + v2)


# --------------------------------------------------------------------------------------------
# 4. for_loss

EXPECTED = {  # DESIGN.md's loss -> noise table, with the aliases for_loss documents
    "mse": noise.Gaussian,
    "squared_error": noise.Gaussian,
    "l2": noise.Gaussian,
    "mae": noise.Laplace,
    "absolute_error": noise.Laplace,
    "l1": noise.Laplace,
    "huber": noise.Huber,
    "log_cosh": noise.Logistic,
    "student_t": noise.StudentT,
    "cauchy": noise.Cauchy,
    "bce": noise.Bernoulli,
    "binary_cross_entropy": noise.Bernoulli,
    "log_loss": noise.Bernoulli,
    "binomial_cross_entropy": noise.Binomial,
    "cross_entropy": noise.Categorical,
    "softmax_cross_entropy": noise.Categorical,
    "poisson": noise.Poisson,
    "negative_binomial": noise.NegativeBinomial,
    "gamma": noise.Gamma,
    "gamma_deviance": noise.Gamma,
}
NOT_LIKELIHOODS = [
    "hinge",
    "squared_hinge",
    "margin",
    "contrastive",
    "triplet",
    "gan",
    "discriminator",
    "score_matching",
    "focal",
    "dice",
]


def test_for_loss_names():
    assert set(noise.LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_for_loss_class(name):
    assert type(noise.for_loss(name)) is EXPECTED[name]


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "Mixture"], ids=ids)
def test_loss_name_round_trip(case):
    # every model's loss_name is a name for_loss knows, and leads back to its class (a Mixture's
    # needs its components, so it has no for_loss name)
    model = case.make({**DEFAULTS, **case.fixed})
    assert type(noise.for_loss(model.loss_name)) is type(model)


def test_for_loss_mse_is_unit_gaussian():
    eps = noise.for_loss("mse")
    assert float(eps.scale) == 1.0
    # closed form: r^2 / 2 + log sqrt(2 pi)
    np.testing.assert_allclose(float(eps.nll(2.0, 0.5)), 0.5 * 1.5**2 + 0.5 * np.log(2 * np.pi), rtol=1e-14)
    # and "log_cosh" has the textbook log cosh(x - x_hat) as its loss (Logistic scale 1/2)
    np.testing.assert_allclose(float(noise.for_loss("log_cosh").loss(2.0, 0.5)), np.log(np.cosh(1.5)), rtol=1e-14)


@pytest.mark.parametrize(
    "name,kw,model",
    [
        ("mse", {"scale": 2.5}, noise.Gaussian(2.5)),
        ("mae", {"scale": 0.3}, noise.Laplace(0.3)),
        ("huber", {"delta": 0.7, "scale": 3.0}, noise.Huber(delta=0.7, scale=3.0)),
        ("log_cosh", {"scale": 2.0}, noise.Logistic(2.0)),
        ("student_t", {"df": 7.0, "scale": 0.4}, noise.StudentT(df=7.0, scale=0.4)),
        ("cauchy", {"scale": 5.0}, noise.Cauchy(5.0)),
        ("binomial_cross_entropy", {"total_count": 10}, noise.Binomial(total_count=10)),
        ("negative_binomial", {"concentration": 3.0}, noise.NegativeBinomial(concentration=3.0)),
        ("gamma", {"shape": 2.5}, noise.Gamma(shape=2.5)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_for_loss_passes_parameters(name, kw, model):
    eps = noise.for_loss(name, **kw)
    for k, v in kw.items():
        attr = {"total_count": "total_count", "concentration": "concentration"}.get(k, k)
        assert float(getattr(eps, attr)) == v
    # the same density as the model built directly (x = 3, x_hat = 0.4, valid for every row)
    assert float(eps.nll(3.0, 0.4)) == float(model.nll(3.0, 0.4))
    # and not the default one: the parameter changed the density
    assert float(eps.nll(3.0, 0.4)) != float(noise.for_loss(name).nll(3.0, 0.4))


@pytest.mark.parametrize("name", NOT_LIKELIHOODS)
def test_for_loss_refuses_non_likelihoods(name):
    with pytest.raises(ValueError, match="not a negative log-likelihood"):
        noise.for_loss(name)


def test_for_loss_unknown_name():
    with pytest.raises(ValueError, match="frobnicate") as info:
        noise.for_loss("frobnicate")
    # an unknown name is not claimed to be a known non-likelihood
    assert "not a negative log-likelihood" not in str(info.value)


# --------------------------------------------------------------------------------------------
# 5. heteroscedastic noise: one scale per observation


HETERO_S = np.array([1e-3, 0.5, 2.0, 1e3])
# (scale shape, x, x_hat): one scale per observation; scales down a column against a row of
# predictions; per-observation scales around one scalar prediction
HETERO = [
    ((4,), np.array([0.3, -1.2, 4.0, -2.0]), np.array([0.1, -0.7, 2.0, 5.0])),
    ((4, 1), np.array([0.3, -1.2, 4.0]), np.array([0.0, -1.0, 3.0])),
    ((4,), 0.3, 0.25),
]


@pytest.mark.parametrize("case", ADDITIVE, ids=ids)
@pytest.mark.parametrize("s_shape,x,h", HETERO, ids=["per-obs", "column-vs-row", "scalar-x_hat"])
def test_heteroscedastic_scale_broadcasts(case, s_shape, x, h):
    keys = [k for k in ("s", "s2", "s3") if k in case.fixed]
    p = {**case.fixed, **{k: case.fixed[k] * HETERO_S.reshape(s_shape) for k in keys}, "x": x}
    nll = np.asarray(case.make(p).nll(x, h))
    shape = np.broadcast_shapes(s_shape, np.shape(h), np.shape(x))
    assert nll.shape == shape, (case.name, nll.shape, shape)
    terms = case.terms(p, h)
    ref = case.stats(p, h)
    ref = -np.asarray(ref[0]) if ref is not None else -tsum(terms)  # Huber: its closed form
    # scipy.stats elementwise; tolerance as in check_nll, from the largest element's terms
    np.testing.assert_allclose(nll, ref, rtol=0, atol=EPS_TOL * (float(np.max(tmag(terms))) + 1))
    # and each element is the homoscedastic model at that observation's scale
    for idx in np.ndindex(shape):
        s_i = HETERO_S[idx[0]]
        p_i = {**case.fixed, **{k: case.fixed[k] * s_i for k in keys}}
        x_i, h_i = np.broadcast_to(x, shape)[idx], np.broadcast_to(h, shape)[idx]
        np.testing.assert_allclose(nll[idx], float(case.make(p_i).nll(x_i, h_i)), rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------------------------
# 6. Huber sampling and variance


def huber_cdf_by_quadrature(delta):
    """Standardised Huber CDF on a fine grid: cumulative Simpson of the closed-form density."""
    z, _ = integrate.quad(lambda t: np.exp(-huber_fn(t, delta)), -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    top = delta + 60.0 / delta  # mass beyond: exp(-60) / (delta^2 Z), negligible
    t = np.linspace(-top, top, 400_001)
    cdf = integrate.cumulative_simpson(np.exp(-huber_fn(t, delta)) / z, x=t, initial=0.0)
    assert abs(cdf[-1] - 1.0) < 1e-8  # the grid holds all the mass
    return t, cdf


@pytest.mark.parametrize("loc,scale,delta", [(0.5, 2.0, 1.345), (-3.0, 0.01, 0.5)])
def test_huber_sampling_ks(loc, scale, delta):
    d = noise.HuberDistribution(loc, scale, delta)
    draws = np.asarray(d.sample(jax.random.PRNGKey(0), (20000,)))
    assert draws.shape == (20000,) and np.all(np.isfinite(draws))
    t, cdf = huber_cdf_by_quadrature(delta)
    ks = stats.kstest(draws, lambda v: np.interp((v - loc) / scale, t, cdf))
    assert ks.pvalue > 1e-3, ks
    # negative control: the same draws against a Gaussian of the Huber's variance (by quadrature)
    var = integrate.quad(lambda u: u * u * np.exp(-huber_fn(u, delta)), -np.inf, np.inf, epsrel=1e-12)[0] / huber_z(delta)
    wrong = stats.kstest(draws, stats.norm(loc, scale * np.sqrt(var)).cdf)
    assert wrong.pvalue < 1e-3, wrong


@pytest.mark.parametrize("delta", [0.1, 1.345, 5.0])
def test_huber_variance_by_quadrature(delta):
    scale = 2.0
    num, e1 = integrate.quad(lambda t: t * t * np.exp(-huber_fn(t, delta)), -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    den, e2 = integrate.quad(lambda t: np.exp(-huber_fn(t, delta)), -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    expected = scale**2 * num / den
    # quad reaches ~1e-13 relative; 1e-10 leaves room for erf/exp in the closed form
    np.testing.assert_allclose(float(noise.HuberDistribution(1.0, scale, delta).variance), expected, rtol=1e-10)
    # batched: one variance per (scale, delta), as a heteroscedastic program needs
    v = np.asarray(noise.HuberDistribution(0.0, np.array([scale, 1.0]), np.array([delta, delta])).variance)
    np.testing.assert_allclose(v, [expected, expected / scale**2], rtol=1e-10)


@pytest.mark.parametrize("impl", ["rbg", "threefry2x32"])
def test_vectorized_gamma_and_student_t_samplers(impl):
    """The vectorized Marsaglia-Tsang gamma sampler (and the Student-t noise drawn with it)
    against scipy's distributions: Kolmogorov-Smirnov on 100,000 draws (fixed seeds; a p-value
    under 1e-3 would mean a wrong distribution, not bad luck at these sizes) and the mean within
    5 standard errors."""
    import scipy.stats as st

    from probmodels.noise._sampling import gamma

    key = jax.random.key(7, impl=impl)
    n = 100_000
    draw_gamma = jax.jit(lambda k, a: gamma(k, a, (n,)))  # (one program: the shape parameter is an input)
    for a in (0.05, 0.4, 1.0, 3.0, 250.0):
        g = np.asarray(draw_gamma(key, a))
        assert np.all(g > 0)
        assert st.kstest(g, st.gamma(a).cdf).pvalue > 1e-3, a
        assert abs(g.mean() - a) < 5 * np.sqrt(a / n), a
    # a whole df (the chi-square as a sum of squared normals) and others (the gamma sampler);
    # the distribution is an input: one program per whole df, one for the others
    draw_t = jax.jit(lambda k, d: d.sample(k, (n,)))
    for df, whole in ((3.0, 3), (30.0, 30), (2.5, None), (31.0, None)):
        d = noise.StudentT(df=df, scale=2.0).distribution(1.0)
        assert d.whole_df == whole
        x = np.asarray(draw_t(key, d))
        assert st.kstest(x, st.t(df, loc=1.0, scale=2.0).cdf).pvalue > 1e-3, df
    # expanded over observations and batched over draws, as predictions run it
    d = noise.StudentT(df=4.0, scale=2.0).distribution(np.zeros(50)).expand((4, 50))
    x = np.asarray(jax.jit(jax.vmap(lambda k: d.sample(k)))(jax.random.split(key, 500)))
    assert x.shape == (500, 4, 50) and st.kstest(x.ravel(), st.t(4.0, scale=2.0).cdf).pvalue > 1e-3
    # batched as predictions run it: one key per draw
    keys = jax.random.split(key, 500)
    g = np.asarray(jax.jit(jax.vmap(lambda k: gamma(k, jnp.array([0.5, 2.0]), (2,))))(keys))
    assert st.kstest(g[:, 0], st.gamma(0.5).cdf).pvalue > 1e-3
    assert st.kstest(g[:, 1], st.gamma(2.0).cdf).pvalue > 1e-3
