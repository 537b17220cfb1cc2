"""MAP against scikit-learn's Ridge and Lasso, and the Beta-Bernoulli closed form.

A Normal(0, tau) prior on the weights with Gaussian noise of known scale sigma makes the MAP the
ridge estimate with alpha = sigma^2 / tau^2; a Laplace(0, b) prior makes it the lasso with
alpha = sigma^2 / (b N) (scikit-learn's 1/(2N) scaling of the squared error).
"""

import numpy as np
import numpyro.distributions as dist
import pytest
from sklearn.linear_model import Lasso, Ridge

import probmodels
from probmodels import noise, observe, param

from .conftest import hash_seed_digests

SIGMA = 0.8


def ridge(u, tau, x=None):
    intercept = param("intercept")  # flat: not penalised, as scikit-learn's intercept
    w = param("w", dist.Normal(0.0, tau), shape=(u.shape[1],))
    return observe("x", intercept + u @ w + noise.Gaussian(SIGMA), obs=x)


def lasso(u, b, x=None):
    intercept = param("intercept")
    w = param("w", dist.Laplace(0.0, b), shape=(u.shape[1],))
    return observe("x", intercept + u @ w + noise.Gaussian(SIGMA), obs=x)


def test_ridge(rng):
    u = rng.normal(size=(80, 6))
    x = 1.0 + u @ rng.normal(size=6) + rng.normal(scale=SIGMA, size=80)
    tau = 0.3
    fit = probmodels.fit(ridge, {"u": u, "tau": tau, "x": x}, "map")
    ref = Ridge(alpha=SIGMA**2 / tau**2, fit_intercept=True, tol=1e-14, solver="cholesky").fit(u, x)
    np.testing.assert_allclose(fit.estimate["w"], ref.coef_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(fit.estimate["intercept"], ref.intercept_, rtol=1e-7)
    # closed form: the MAP's curvature is U^T U / sigma^2 + I / tau^2 (intercept unpenalised)
    uc = np.column_stack([np.ones(80), u])
    prec = uc.T @ uc / SIGMA**2 + np.diag([0.0] + [1 / tau**2] * 6)
    np.testing.assert_allclose(fit.stderr["w"], np.sqrt(np.diag(np.linalg.inv(prec)))[1:], rtol=1e-7)


@pytest.mark.parametrize("b", [0.05, 0.01])
def test_lasso_exact_zeros(rng, b):
    n = 100
    u = rng.normal(size=(n, 8))
    coef = np.array([2.0, -1.5, 0, 0, 0.8, 0, 0, 0])
    x = 0.5 + u @ coef + rng.normal(scale=SIGMA, size=n)
    fit = probmodels.fit(lasso, {"u": u, "b": b, "x": x}, "map")
    ref = Lasso(alpha=SIGMA**2 / (b * n), fit_intercept=True, tol=1e-14, max_iter=1_000_000).fit(u, x)
    w = fit.estimate["w"]
    # the same zeros, exactly (a proximal step, not a smoothed |w|)
    assert np.array_equal(w == 0.0, ref.coef_ == 0.0), (w, ref.coef_)
    assert (w == 0).sum() >= 2
    # coordinate descent at tol 1e-14 vs our subgradient at 1e-9 x |objective|
    np.testing.assert_allclose(w, ref.coef_, atol=1e-7)
    np.testing.assert_allclose(fit.estimate["intercept"], ref.intercept_, atol=1e-7)
    # standard errors of exact zeros are undefined, not a number
    assert np.all(np.isnan(fit.stderr["w"][w == 0])) and np.all(np.isfinite(fit.stderr["w"][w != 0]))


def beta_bernoulli(x=None):
    p = param("p", dist.Beta(2.0, 3.0))
    return observe("x", noise.Bernoulli(probs=p), obs=x)


def test_beta_bernoulli_modes(rng):
    x = (rng.uniform(size=40) < 0.3).astype(float)
    k, n = x.sum(), 40
    mle = probmodels.fit(beta_bernoulli, {"x": x}, "mle")
    map_ = probmodels.fit(beta_bernoulli, {"x": x}, "map")
    # closed form k/n; the optimiser stops within 1e-10 standard errors (Newton decrement)
    np.testing.assert_allclose(mle.estimate["p"], k / n, atol=1e-9 * mle.stderr["p"])
    # closed form: se = sqrt(p (1 - p) / n)
    np.testing.assert_allclose(mle.stderr["p"], np.sqrt(k / n * (1 - k / n) / n), rtol=1e-7)
    # closed form: the Beta(a + k, b + n - k) mode, (a + k - 1) / (a + b + n - 2)
    np.testing.assert_allclose(map_.estimate["p"], (2 + k - 1) / (5 + n - 2), atol=1e-9 * map_.stderr["p"])


def exponential_only(x):
    t = param("t", dist.Exponential(1.0))
    return observe("x", 0.0 * t + noise.Gaussian(1.0), obs=x)


def test_jacobian_switch():
    # the Exponential(1) density has its mode at 0 in the natural space; the density of log t
    # (t e^-t) has its mode at t = 1
    x = np.zeros(3)
    on = probmodels.fit(exponential_only, {"x": x}, "map", jacobian=True)
    np.testing.assert_allclose(on.estimate["t"], 1.0, atol=1e-6)
    off = probmodels.fit(exponential_only, {"x": x}, "map")
    assert off.estimate["t"] < 1e-6
    assert any("boundary" in w for w in off.diagnostics["warnings"])


# ---------------------------------------------------------------------------------------------
# one compiled optimiser for MLE, MAP and Laplace: the priors and the log-Jacobian are traced
# weights (0 or 1), not constants of the trace


def shared_line(u, x=None):  # a program of its own: its compiled functions are this test's
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.StudentT(df=4.0, scale=scale), obs=x)


def test_mle_map_laplace_run_one_optimizer_program(rng):
    from probmodels.solvers._objective import trace_count

    u = rng.uniform(-2.0, 2.0, size=40)
    data = {"u": u, "x": 1.0 + 2.0 * u + rng.normal(scale=0.5, size=40)}
    mle = probmodels.fit(shared_line, data, "mle", weights=np.ones(40))
    # Laplace grades itself by PSIS: the log density at its 4000 draws is a program of its own
    # (shared with VI and pathfinder), compiled here so that the count below is the optimiser's
    obj = mle._result.objective
    obj.fns["log_joint_batch"](np.zeros((2, obj.dim)), obj.arrays)
    before = trace_count(shared_line)
    map_ = probmodels.fit(shared_line, data, "map", weights=np.ones(40))
    map_jac = probmodels.fit(shared_line, data, "map", jacobian=True, weights=np.ones(40))
    lap = probmodels.fit(shared_line, data, "laplace", weights=np.ones(40))
    assert trace_count(shared_line) == before  # not one new trace of the log density
    # and the switches switch: four different optima (the priors pull the MAP towards 0; the
    # log-Jacobian of the scale's log transform moves the mode of log(scale) up)
    assert mle.estimate["slope"] > map_.estimate["slope"]
    assert map_jac.estimate["scale"] > map_.estimate["scale"]
    np.testing.assert_allclose(lap.diagnostics["mode"]["scale"], map_jac.estimate["scale"], rtol=1e-8)


def pinned(u, x=None):
    # a point-mass prior: log density -inf at every slope but 0, its derivative there NaN
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    slope = param("slope", dist.Delta(0.0))
    return observe("x", intercept + slope * u + noise.Gaussian(1.0), obs=x)


def unpinned(u, x=None):
    intercept = param("intercept", dist.Normal(0.0, 10.0))
    slope = param("slope")
    return observe("x", intercept + slope * u + noise.Gaussian(1.0), obs=x)


def test_mle_ignores_a_prior_that_is_not_finite_where_it_goes(rng):
    """The MLE steps to slopes where the Delta(0) prior's log density is -inf. Switched off by a
    weight of 0 it contributes exactly nothing (0 * -inf would be NaN, and Newton would reject
    every step): the MLE is that of the same program without the prior, to the last bit."""
    u = rng.normal(size=30)
    data = {"u": u, "x": 1.0 + 2.0 * u + rng.normal(size=30)}
    a = probmodels.fit(pinned, data, "mle")
    b = probmodels.fit(unpinned, data, "mle")
    assert a.diagnostics["converged"] and abs(a.estimate["slope"] - 2.0) < 0.5
    for k in a.estimate:
        assert np.array_equal(a.estimate[k], b.estimate[k]) and np.array_equal(a.stderr[k], b.stderr[k])
    assert a.diagnostics["iterations"] == b.diagnostics["iterations"]


def gamma_scale(x=None):
    # Gamma(0.5, 1) at s = exp(-800) = 0.0: log density -inf, derivative and Hessian NaN
    s = param("s", dist.Gamma(0.5, 1.0))
    return observe("x", s + noise.Gaussian(1.0), obs=x)


def test_prior_and_jacobian_weights_of_the_log_density(rng):
    """The weights themselves (``priors`` and ``jacobian`` given as numbers, as the point solvers
    pass them) where the prior's log density or its derivatives are not finite: weight 0 is the
    density without the prior exactly (value, gradient, Hessian), weight 1 the density with it
    and with the log-Jacobian, to rounding (the terms are summed in another order)."""
    import warnings

    import jax
    import jax.numpy as jnp

    from probmodels.solvers._objective import Objective

    def derivatives(obj, z, **kw):
        f = lambda y: obj.fns["log_joint_raw"](y, obj.arrays, **kw)  # noqa: E731
        with warnings.catch_warnings():  # numpyro warns of the boundary value s = 0
            warnings.simplefilter("ignore")
            return [np.asarray(g(jnp.asarray(z))) for g in (f, jax.grad(f), jax.hessian(f))]

    u = rng.normal(size=10)
    cases = [
        (Objective(pinned, {"u": u, "x": 2.0 * u}), [0.3, 0.5]),  # slope 0.5: the Delta prior is -inf
        (Objective(gamma_scale, {"x": np.zeros(5)}), [-800.0]),  # s = 0: the Gamma prior's gradient NaN
    ]
    for obj, z in cases:
        with_prior = derivatives(obj, z, priors=True, jacobian=False)
        assert not all(np.all(np.isfinite(d)) for d in with_prior)  # the trap is there
        off, ref = derivatives(obj, z, priors=0.0, jacobian=0.0), derivatives(obj, z, priors=False, jacobian=False)
        for a, b in zip(off[1:], ref[1:]):
            assert np.all(np.isfinite(a)) and np.array_equal(a, b)
        assert np.array_equal(off[0], ref[0])  # (-inf for s = 0: outside the flat prior's support)
        on, ref = derivatives(obj, z, priors=1.0, jacobian=0.0), with_prior
        for a, b in zip(on, ref):
            np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
    # at interior points, every combination of the weights against the static switches
    obj = Objective(gamma_scale, {"x": np.full(5, 0.7)})
    for p in (0.0, 1.0):
        for j in (0.0, 1.0):
            got, ref = derivatives(obj, [-0.4], priors=p, jacobian=j), derivatives(obj, [-0.4], priors=bool(p), jacobian=bool(j))
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b, rtol=1e-14)  # the same terms, summed in another order


class _HandNormal(dist.Distribution):
    """A user's prior that is no JAX pytree (no pytree fields declared): the switched prior term
    closes over it, so any distribution will do."""

    support = dist.constraints.real

    def __init__(self, loc, scale):
        self.loc, self.scale = loc, scale
        super().__init__(batch_shape=np.shape(loc))

    def log_prob(self, value):
        return dist.Normal(self.loc, self.scale).log_prob(value)

    def sample(self, key, sample_shape=()):
        return dist.Normal(self.loc, self.scale).sample(key, sample_shape)


def hand_prior(u, x=None):
    b = param("b", _HandNormal(0.0, 0.2))
    return observe("x", b * u + noise.Gaussian(1.0), obs=x)


def library_prior(u, x=None):
    b = param("b", dist.Normal(0.0, 0.2))
    return observe("x", b * u + noise.Gaussian(1.0), obs=x)


def test_a_prior_that_is_no_pytree_is_switched_too(rng):
    u = rng.normal(size=30)
    data = {"u": u, "x": 0.8 * u + rng.normal(size=30)}
    for method in ("mle", "map"):
        a, b = probmodels.fit(hand_prior, data, method), probmodels.fit(library_prior, data, method)
        np.testing.assert_allclose(a.estimate["b"], b.estimate["b"], rtol=1e-12)  # the same density
    # closed form: MAP = sum(u x) / (sum(u^2) + 1 / 0.2^2), the MLE without the prior's 25
    np.testing.assert_allclose(a.estimate["b"], u @ data["x"] / (u @ u + 25.0), rtol=1e-9)


_LOWER = """
from probmodels.solvers import point
fns = point._solver(obj, "newton", (), False, "exact")
zeros = np.zeros(obj.dim)
text = fns["run"].trace(obj.z0, obj.arrays, point.switches(0.0, True, True), zeros, zeros, 1e-9, 50).lower().as_text()
print(hashlib.sha256(text.encode()).hexdigest())
"""


def test_the_shared_optimizer_compiles_to_the_same_program_in_every_process():
    """The persistent compilation cache keys on the lowered program: it must not depend on the
    process's hash seed (numpyro flattens a distribution in the order of a set of field names,
    so priors passed to the switch's cond as pytrees in that order made a different program in
    every other process, and a cache miss; they are passed in sorted order)."""
    digests = hash_seed_digests(_LOWER)
    assert len(digests) == 1, digests
