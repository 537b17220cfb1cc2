"""MLE against statsmodels (estimates and standard errors to 1e-5 relative) and closed forms.

Tolerance: the optimiser stops at a gradient of 1e-9 x |objective| and Newton converges
quadratically, so estimates agree with statsmodels' to ~1e-9; standard errors are the inverse
observed information at the same point. 1e-5 relative leaves room for statsmodels' own
convergence tolerance (1e-8 on the parameters).
"""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import scipy.linalg
import statsmodels.api as sm

import probmodels
from probmodels import noise, observe, param

RTOL = 1e-5


def linear(u, x=None):
    intercept = param("intercept")
    w = param("w", shape=(u.shape[1],))
    scale = param("scale", support="positive")
    return observe("x", intercept + u @ w + noise.Gaussian(scale), obs=x)


def logistic(u, x=None):
    intercept = param("intercept")
    w = param("w", dist.Normal(0.0, 1.0), shape=(u.shape[1],))  # ignored by MLE
    return observe("x", noise.Bernoulli(logits=intercept + u @ w), obs=x)


def poisson(u, x=None):
    intercept = param("intercept")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Poisson(log_rate=intercept + u @ w), obs=x)


def binomial(u, n, x=None):
    intercept = param("intercept")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Binomial(n, logits=intercept + u @ w), obs=x)


def softmax(u, k, x=None):
    b = param("b", shape=(k - 1,))
    w = param("w", shape=(u.shape[1], k - 1))
    eta = b + u @ w  # class 0 is the reference (logit 0), as in statsmodels' MNLogit
    logits = jnp.concatenate([jnp.zeros(eta.shape[:-1] + (1,)), eta], axis=-1)
    return observe("x", noise.Categorical(logits=logits), obs=x)


def _design(rng, n, d):
    return rng.normal(size=(n, d))


def _check(fit, params, bse, names):
    est = np.concatenate([np.ravel(fit.estimate[k]) for k in names])
    se = np.concatenate([np.ravel(fit.stderr[k]) for k in names])
    np.testing.assert_allclose(est, params, rtol=RTOL, atol=1e-8)
    np.testing.assert_allclose(se, bse, rtol=RTOL)
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    assert fit.diagnostics["warnings"] == []


def test_ols_and_gaussian_scale(rng):
    u = _design(rng, 300, 3)
    x = 0.5 + u @ np.array([1.0, -2.0, 0.3]) + rng.normal(scale=0.7, size=300)
    fit = probmodels.fit(linear, {"u": u, "x": x}, "mle")
    ref = sm.OLS(x, sm.add_constant(u)).fit()
    est = np.concatenate([[fit.estimate["intercept"]], fit.estimate["w"]])
    np.testing.assert_allclose(est, ref.params, rtol=RTOL)
    # closed form: the MLE of a Gaussian scale is sqrt(RSS / N), exactly (not RSS / (N - p))
    rss = np.sum(ref.resid**2)
    np.testing.assert_allclose(fit.estimate["scale"], np.sqrt(rss / 300), rtol=1e-8)
    # statsmodels' OLS bse use RSS/(N-p); the MLE's observed information uses RSS/N
    se = np.concatenate([[fit.stderr["intercept"]], fit.stderr["w"]])
    np.testing.assert_allclose(se, ref.bse * np.sqrt((300 - 4) / 300), rtol=RTOL)
    # closed form: se(sigma_hat) = sigma_hat / sqrt(2N)
    np.testing.assert_allclose(fit.stderr["scale"], fit.estimate["scale"] / np.sqrt(600), rtol=RTOL)


def test_logit(rng):
    u = _design(rng, 500, 3)
    p = 1 / (1 + np.exp(-(0.3 + u @ np.array([1.0, -1.0, 0.5]))))
    x = (rng.uniform(size=500) < p).astype(float)
    fit = probmodels.fit(logistic, {"u": u, "x": x}, "mle")
    ref = sm.Logit(x, sm.add_constant(u)).fit(disp=0, tol=1e-12)
    _check(fit, ref.params, ref.bse, ["intercept", "w"])


def test_poisson_glm(rng):
    u = _design(rng, 400, 2) * 0.5
    x = rng.poisson(np.exp(0.5 + u @ np.array([0.8, -0.4])))
    fit = probmodels.fit(poisson, {"u": u, "x": x}, "mle")
    ref = sm.GLM(x, sm.add_constant(u), family=sm.families.Poisson()).fit(tol=1e-12)
    _check(fit, ref.params, ref.bse, ["intercept", "w"])


def test_binomial_glm(rng):
    u = _design(rng, 200, 2)
    n = 12
    x = rng.binomial(n, 1 / (1 + np.exp(-(-0.2 + u @ np.array([0.7, 0.2])))))
    fit = probmodels.fit(binomial, {"u": u, "n": n, "x": x}, "mle")
    ref = sm.GLM(np.column_stack([x, n - x]), sm.add_constant(u), family=sm.families.Binomial()).fit(tol=1e-12)
    _check(fit, ref.params, ref.bse, ["intercept", "w"])


def test_mnlogit(rng):
    n, d, k = 600, 2, 3
    u = _design(rng, n, d)
    eta = np.column_stack([np.zeros(n), 0.2 + u @ [1.0, -0.5], -0.3 + u @ [-0.7, 0.8]])
    p = np.exp(eta) / np.exp(eta).sum(1, keepdims=True)
    x = np.array([rng.choice(k, p=pi) for pi in p])
    fit = probmodels.fit(softmax, {"u": u, "k": k, "x": x}, "mle")
    ref = sm.MNLogit(x, sm.add_constant(u)).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
    # statsmodels: params[(const, u1, u2), class 1..K-1]
    np.testing.assert_allclose(fit.estimate["b"], ref.params[0], rtol=RTOL)
    np.testing.assert_allclose(fit.estimate["w"], ref.params[1:], rtol=RTOL)
    np.testing.assert_allclose(fit.stderr["b"], ref.bse[0], rtol=RTOL)
    np.testing.assert_allclose(fit.stderr["w"], ref.bse[1:], rtol=RTOL)


def test_sandwich_matches_statsmodels_hc0(rng):
    # statsmodels cov_type="HC0" on the same OLS and Logit fits
    u = _design(rng, 300, 2)
    x = 1.0 + u @ [0.5, -0.5] + rng.normal(size=300) * (0.5 + np.abs(u[:, 0]))
    fit = probmodels.fit(linear, {"u": u, "x": x}, "mle", stderr="sandwich")
    ref = sm.OLS(x, sm.add_constant(u)).fit(cov_type="HC0")
    se = np.concatenate([[fit.stderr["intercept"]], fit.stderr["w"]])
    np.testing.assert_allclose(se, ref.bse, rtol=RTOL)
    assert fit.diagnostics["stderr"] == "sandwich"

    p = 1 / (1 + np.exp(-(0.3 + u @ [1.0, -1.0])))
    xb = (rng.uniform(size=300) < p).astype(float)
    fit = probmodels.fit(logistic, {"u": u, "x": xb}, "mle", stderr="sandwich")
    ref = sm.Logit(xb, sm.add_constant(u)).fit(disp=0, tol=1e-12, cov_type="HC0")
    _check(fit, ref.params, ref.bse, ["intercept", "w"])


def test_lbfgs_path_reaches_least_squares(rng):
    # 450 coefficients: over the dense-Newton limit, so L-BFGS runs, then Newton steps with the
    # Hessian computed for the standard errors polish it. Closed form: lstsq and (U^T U)^-1.
    def wide(u, x=None):
        w = param("w", shape=(u.shape[1],))
        return observe("x", u @ w + noise.Gaussian(1.0), obs=x)

    u = rng.normal(size=(1200, 450))
    x = u @ rng.normal(size=450) + rng.normal(size=1200)
    fit = probmodels.fit(wide, {"u": u, "x": x}, "mle", draws=0)
    assert fit.diagnostics["optimizer"] == "lbfgs" and fit.diagnostics["converged"]
    np.testing.assert_allclose(fit.estimate["w"], np.linalg.lstsq(u, x, rcond=None)[0], atol=1e-10)
    np.testing.assert_allclose(fit.stderr["w"], np.sqrt(np.diag(np.linalg.inv(u.T @ u))), rtol=1e-8)


def test_newton_hessian_reuse_exact_at_the_optimum(rng):
    # Newton carries its Hessian between steps by BFGS updates while the decrement falls 4-fold
    # a step, but declares convergence only on an exact Hessian at the point it returns: the
    # optimum (closed form: least squares and sqrt(RSS / N)) and the Hessian returned (for the
    # standard errors) are the same as without reuse, with fewer Hessians.
    import jax

    from probmodels.solvers._optimize import hessian_of, newton

    n, d = 2000, 10
    u = np.column_stack([np.ones(n), rng.normal(size=(n, d))])
    x = u @ rng.normal(size=d + 1) + 2.0 * rng.normal(size=n)

    def nll(z, args):
        u, x = args
        w, log_s = z[:-1], z[-1]
        r = x - u @ w
        return n * log_s + 0.5 * jnp.sum(r**2) * jnp.exp(-2.0 * log_s)

    zero = jnp.zeros(d + 2)
    def run(reuse):
        return jax.jit(lambda: newton(nll, zero, (u, x), zero, zero, 1e-9, 500, has_l1=False, reuse=reuse))()

    fast, plain = run(True), run(False)
    w = np.linalg.lstsq(u, x, rcond=None)[0]
    exact = np.r_[w, 0.5 * np.log(np.sum((x - u @ w) ** 2) / n)]
    for res in (fast, plain):
        assert int(res.status) == 0
        np.testing.assert_allclose(res.z, exact, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.hess, hessian_of(lambda z: nll(z, (u, x)))(res.z), rtol=1e-12, atol=1e-9)
    # the Gaussian scale's rows are all that change between steps: BFGS tracks them
    assert int(fast.n_hess) <= int(plain.n_hess) - 2, (int(fast.n_hess), int(plain.n_hess))


def test_newton_hessian_reuse_nonconvex():
    # Rosenbrock from (-1.2, 1) (a curved valley: the carried model must give way to exact
    # Hessians) and a start on a saddle's ridge (zero gradient along the negative curvature:
    # the first step, on an exact Hessian, follows it); minima (1, 1) and (0, +-sqrt(2)).
    import jax

    from probmodels.solvers._optimize import newton

    def rosen(z, _):
        return (1.0 - z[0]) ** 2 + 100.0 * (z[1] - z[0] ** 2) ** 2

    def saddle(z, _):
        return z[0] ** 2 - z[1] ** 2 + 0.25 * z[1] ** 4

    zero = jnp.zeros(2)
    for fun, z0, opt in [
        (rosen, jnp.array([-1.2, 1.0]), [1.0, 1.0]),
        (saddle, jnp.array([1.0, 0.0]), [0.0, np.sqrt(2.0)]),
    ]:
        for reuse in (True, False):
            res = jax.jit(lambda z0: newton(fun, z0, None, zero, zero, 1e-12, 500, has_l1=False, reuse=reuse))(z0)
            assert int(res.status) == 0, (fun.__name__, reuse, int(res.status))
            np.testing.assert_allclose(np.abs(res.z), opt, atol=1e-8)


def test_over_the_dense_hessian_limit_no_standard_errors(rng):
    # 3100 coefficients: over the 3000 limit for a dense Hessian, so L-BFGS alone, no standard
    # errors (and no D-column Jacobian for the delta method), a warning that says why. Closed
    # forms: least squares, within the bound the gradient test allows (|g|_inf <= gtol |f|, so
    # |w - w_ls|_2 <= ||(U^T U)^-1||_2 sqrt(D) gtol |f|), and the Gaussian log-likelihood.
    def wide(u, x=None):
        w = param("w", shape=(u.shape[1],))
        return observe("x", u @ w + noise.Gaussian(1.0), obs=x)

    n, d = 4000, 3100
    u = rng.normal(size=(n, d)) / 10
    x = 0.1 * u @ rng.normal(size=d) + rng.normal(size=n)
    fit = probmodels.fit(wide, {"u": u, "x": x}, "mle", draws=0)
    assert fit.diagnostics["optimizer"] == "lbfgs" and fit.diagnostics["converged"]
    assert any("standard errors not computed: 3100" in w for w in fit.diagnostics["warnings"])
    assert np.isnan(fit.stderr["w"]).all()
    w = fit.estimate["w"]
    r = x - u @ w
    loglik = -0.5 * np.sum(r**2) - 0.5 * n * np.log(2 * np.pi)
    np.testing.assert_allclose(fit.diagnostics["log_likelihood"], loglik, rtol=1e-12)
    # least squares by the normal equations (Cholesky; U^T U's condition number is about 250 here:
    # 1.8e-14 from lstsq's SVD, measured, at a twentieth of its time)
    gram = u.T @ u
    w_ls = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram), u.T @ x)
    bound = np.sqrt(d) * 1e-9 * abs(fit.diagnostics["objective"]) / np.linalg.eigvalsh(gram)[0]
    assert np.linalg.norm(w - w_ls) <= bound


def test_hessian_reuse_in_fit_matches_statsmodels(rng):
    # N = 10,000, d = 20 (data size x D over 1e6): Newton carries its Hessian between exact ones,
    # and the fit still matches the closed form (OLS, sqrt(RSS / N), se(sigma) = sigma / sqrt(2N))
    # and statsmodels' Logit (estimates and standard errors).
    n, d = 10_000, 20
    u = rng.normal(size=(n, d))
    x = 1.0 + u @ (0.5 * rng.normal(size=d)) + rng.normal(size=n)
    fit = probmodels.fit(linear, {"u": u, "x": x}, "mle")
    assert fit.diagnostics["converged"] and fit.diagnostics["warnings"] == []
    assert fit.diagnostics["hessians"] < fit.diagnostics["iterations"], fit.diagnostics
    ref = sm.OLS(x, sm.add_constant(u)).fit()
    est = np.concatenate([[fit.estimate["intercept"]], fit.estimate["w"]])
    np.testing.assert_allclose(est, ref.params, rtol=1e-9, atol=1e-12)
    sigma = np.sqrt(np.sum(ref.resid**2) / n)
    np.testing.assert_allclose(fit.estimate["scale"], sigma, rtol=1e-10)
    se = np.concatenate([[fit.stderr["intercept"]], fit.stderr["w"]])
    np.testing.assert_allclose(se, ref.bse * np.sqrt((n - d - 1) / n), rtol=1e-8)
    np.testing.assert_allclose(fit.stderr["scale"], sigma / np.sqrt(2 * n), rtol=1e-8)

    p = 1 / (1 + np.exp(-(0.2 + u @ (0.3 * rng.normal(size=d)))))
    xb = (rng.uniform(size=n) < p).astype(float)
    fit = probmodels.fit(logistic, {"u": u, "x": xb}, "mle")
    assert fit.diagnostics["hessians"] < fit.diagnostics["iterations"], fit.diagnostics
    ref = sm.Logit(xb, sm.add_constant(u)).fit(disp=0, tol=1e-12)
    _check(fit, ref.params, ref.bse, ["intercept", "w"])
