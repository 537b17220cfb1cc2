"""``latent`` sites: integrated out by mle/map (Laplace), sampled as unknowns by the posteriors.

References: statsmodels ``MixedLM(...).fit(reml=False)`` (exact ML of a linear mixed model) for
Gaussian models; for GLMMs a Laplace-approximate marginal MLE written here from scratch (a
vectorised per-group Newton for the modes, scipy's BFGS outside) and adaptive Gauss-Hermite
quadrature with 40 nodes per group.
"""

import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, special

import probmodels
from probmodels import latent, noise, observe, param
from probmodels.solvers._objective import trace_count


def random_intercept(group, n_groups, u, x=None, family="gaussian"):
    b = param("b", shape=(2,))
    tau = param("tau", support="positive")
    a = latent("a", dist.Normal(0.0, tau), shape=(n_groups,))
    x_hat = b[0] + b[1] * u + a[group]
    if family == "gaussian":
        sigma = param("sigma", support="positive")
        return observe("x", x_hat + noise.Gaussian(sigma), obs=x)
    if family == "poisson":
        return observe("x", noise.Poisson(log_rate=x_hat), obs=x)
    return observe("x", noise.Bernoulli(logits=x_hat), obs=x)


def _grouped(n_groups, per_group, seed):
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), per_group)
    return rng, group, rng.normal(size=group.size)


def test_linear_mixed_model_is_exact_ml_of_mixedlm():
    rng, group, u = _grouped(30, 10, 1)
    x = 1.0 + 0.5 * u + rng.normal(0, 0.7, 30)[group] + rng.normal(0, 1.0, group.size)
    fit = probmodels.fit(random_intercept, dict(group=group, n_groups=30, u=u, x=x), "mle")
    # (statsmodels' default tolerance leaves tau 3e-5 from its optimum: a tight BFGS)
    ref = sm.MixedLM(x, sm.add_constant(u), groups=group).fit(reml=False, method="bfgs", gtol=1e-10)
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    # Gaussian latents in a Gaussian model: the Laplace approximation is exact, so these are the
    # same ML estimates (both optimisers converge far below 1e-5)
    np.testing.assert_allclose(fit.estimate["b"], ref.fe_params, atol=1e-5)
    np.testing.assert_allclose(fit.estimate["tau"], np.sqrt(np.asarray(ref.cov_re)[0, 0]), atol=1e-5)
    np.testing.assert_allclose(fit.estimate["sigma"], np.sqrt(ref.scale), atol=1e-5)
    np.testing.assert_allclose(fit.diagnostics["log_likelihood"], ref.llf, atol=1e-5)
    # statsmodels' bse_fe is the expected information; ours the observed: a few percent
    np.testing.assert_allclose(fit.stderr["b"], ref.bse_fe, rtol=0.03)
    # the latents: the conditional modes are the BLUPs; the conditional variance of a random
    # intercept with n observations is 1 / (n / sigma^2 + 1 / tau^2) (closed form)
    blup = np.array([ref.random_effects[g].iloc[0] for g in range(30)])
    np.testing.assert_allclose(fit.estimate["a"], blup, atol=1e-5)
    s2, t2 = fit.estimate["sigma"] ** 2, fit.estimate["tau"] ** 2
    np.testing.assert_allclose(fit.stderr["a"], np.sqrt(1.0 / (10 / s2 + 1 / t2)), rtol=1e-8)
    assert fit.diagnostics["latent"] == ["a"] and "diagonal" in fit.diagnostics["latent_hessian"]
    assert fit.latent == ("a",)
    # AIC counts the params (b, tau, sigma: 4), not the 30 random intercepts, on the marginal
    # log-likelihood (statsmodels' MixedLM llf)
    crit = fit.criteria()
    assert crit["k"] == 4
    np.testing.assert_allclose(crit["aic"], -2 * ref.llf + 2 * 4, atol=1e-4)
    # the tables list the params first, then the latents
    assert fit.summary().index[:4].tolist() == ["b[0]", "b[1]", "tau", "sigma"]
    assert fit.summary().attrs["latent"][0] == "a[0]"
    # compiled once per program and shapes: a second fit on new data traces nothing
    traced = trace_count(random_intercept)
    again = probmodels.fit(random_intercept, dict(group=group, n_groups=30, u=u, x=x + 0.1 * u), "mle")
    assert trace_count(random_intercept) == traced
    np.testing.assert_allclose(again.estimate["b"][1], fit.estimate["b"][1] + 0.1, atol=1e-8)


# -- GLMMs: an independent Laplace marginal MLE, and adaptive Gauss-Hermite quadrature --------


def _family(kind):
    """(log p(x | eta), d/deta, d2/deta2), elementwise."""
    if kind == "poisson":
        return (
            lambda x, e: x * e - np.exp(e) - special.gammaln(x + 1),
            lambda x, e: x - np.exp(e),
            lambda x, e: -np.exp(e),
        )
    return (
        lambda x, e: x * e - np.logaddexp(0.0, e),
        lambda x, e: x - special.expit(e),
        lambda x, e: -special.expit(e) * special.expit(-e),
    )


def _modes(theta, group, u, x, kind, n_groups):
    """Per group: the mode of h_j(a) = -sum_i log p(x_i | eta_i + a) - log N(a | 0, tau) by
    Newton (vectorised over groups), and h_j'' there."""
    ll, d1, d2 = _family(kind)
    b0, b1, tau = theta[0], theta[1], np.exp(theta[2])
    eta = b0 + b1 * u
    a = np.zeros(n_groups)
    for _ in range(100):
        e = eta + a[group]
        g = -np.bincount(group, d1(x, e), n_groups) + a / tau**2
        h = -np.bincount(group, d2(x, e), n_groups) + 1 / tau**2
        a = a - g / h
        if np.max(np.abs(g / np.sqrt(h))) < 1e-13:
            break
    e = eta + a[group]
    hval = -np.bincount(group, ll(x, e), n_groups) - _log_normal(a, tau)
    h = -np.bincount(group, d2(x, e), n_groups) + 1 / tau**2
    return a, hval, h, eta, tau


def _log_normal(a, tau):
    return -0.5 * (a / tau) ** 2 - np.log(tau) - 0.5 * np.log(2 * np.pi)


def _neg_laplace(theta, *args):
    _, hval, h, _, _ = _modes(theta, *args)
    return float(np.sum(hval + 0.5 * np.log(h) - 0.5 * np.log(2 * np.pi)))


def _neg_aghq(theta, group, u, x, kind, n_groups, nodes=40):
    ll = _family(kind)[0]
    a, _, h, eta, tau = _modes(theta, group, u, x, kind, n_groups)
    t, w = np.polynomial.hermite.hermgauss(nodes)
    s = 1.0 / np.sqrt(h)
    vals = []
    for tk in t:  # log of the integrand at a_j + sqrt(2) s_j t_k
        ak = a + np.sqrt(2) * s * tk
        vals.append(np.bincount(group, ll(x, eta + ak[group]), n_groups) + _log_normal(ak, tau) + tk**2)
    vals = np.asarray(vals)
    return -float(np.sum(special.logsumexp(vals, axis=0, b=w[:, None]) + np.log(np.sqrt(2) * s)))


def _reference(fun, args):
    res = optimize.minimize(fun, np.zeros(3), args=args, method="BFGS", options=dict(gtol=1e-9, xrtol=1e-12))
    res = optimize.minimize(fun, res.x, args=args, method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-13, maxiter=4000))
    return np.array([res.x[0], res.x[1], np.exp(res.x[2])]), res.fun


@pytest.mark.parametrize("kind, b, tau", [("poisson", (0.5, 0.3), 0.5), ("bernoulli", (-0.3, 1.0), 0.8)])
def test_glmm_matches_an_independent_laplace_mle_and_quadrature(kind, b, tau):
    n_groups, per = 40, 15
    rng, group, u = _grouped(n_groups, per, 2)
    eta = b[0] + b[1] * u + rng.normal(0, tau, n_groups)[group]
    x = rng.poisson(np.exp(eta)) if kind == "poisson" else rng.binomial(1, special.expit(eta))
    x = x.astype(float)
    fit = probmodels.fit(random_intercept, dict(group=group, n_groups=n_groups, u=u, x=x, family=kind), "mle")
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    est = np.r_[fit.estimate["b"], fit.estimate["tau"]]
    se = np.r_[fit.stderr["b"], fit.stderr["tau"]]
    args = (group, u, x, kind, n_groups)
    laplace, neg_ll = _reference(_neg_laplace, args)
    # the same approximation computed independently: equal to the optimisers' precision
    np.testing.assert_allclose(est, laplace, atol=1e-6)
    np.testing.assert_allclose(fit.diagnostics["log_likelihood"], -neg_ll, atol=1e-8)
    # the conditional modes at the estimate
    a_hat = _modes(np.r_[est[:2], np.log(est[2])], *args)[0]
    np.testing.assert_allclose(fit.estimate["a"], a_hat, atol=1e-7)
    # standard errors: the exact Hessian through the inner optimum (implicit differentiation)
    # against central differences of the reference objective (step 1e-4: error ~1e-8 from the
    # step, ~1e-5 relative from the reference's inner tolerance over the step squared)
    theta = np.r_[est[:2], np.log(est[2])]
    step = 1e-4
    h = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            e_i, e_j = np.eye(3)[i] * step, np.eye(3)[j] * step
            h[i, j] = (
                _neg_laplace(theta + e_i + e_j, *args) - _neg_laplace(theta + e_i - e_j, *args)
                - _neg_laplace(theta - e_i + e_j, *args) + _neg_laplace(theta - e_i - e_j, *args)
            ) / (4 * step**2)
    se_ref = np.sqrt(np.diag(np.linalg.inv(h)))
    np.testing.assert_allclose(se, np.r_[se_ref[:2], est[2] * se_ref[2]], rtol=1e-4)
    # quadrature with 40 adaptive nodes is (nearly) the exact marginal MLE: the Laplace error
    # is far inside the standard errors
    aghq, _ = _reference(_neg_aghq, args)
    assert np.all(np.abs(est - aghq) < se), (est, aghq, se)


def test_crossed_random_effects_match_mixedlm_variance_components():
    rng = np.random.default_rng(3)
    n1, n2, reps = 10, 8, 3
    g1, g2 = (np.repeat(g.ravel(), reps) for g in np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"))
    x = 2.0 + rng.normal(0, 1.0, n1)[g1] + rng.normal(0, 0.6, n2)[g2] + rng.normal(0, 0.8, g1.size)

    def crossed(g1, g2, n1, n2, x=None):
        b0 = param("b0")
        s1, s2 = param("s1", support="positive"), param("s2", support="positive")
        sigma = param("sigma", support="positive")
        a = latent("a", dist.Normal(0.0, s1), shape=(n1,))
        c = latent("c", dist.Normal(0.0, s2), shape=(n2,))
        return observe("x", b0 + a[g1] + c[g2] + noise.Gaussian(sigma), obs=x)

    fit = probmodels.fit(crossed, dict(g1=g1, g2=g2, n1=n1, n2=n2, x=x), "mle")
    df = pd.DataFrame(dict(x=x, g1=g1, g2=g2, one=1))
    ref = sm.MixedLM.from_formula(
        "x ~ 1", groups="one", re_formula="0", vc_formula={"g1": "0 + C(g1)", "g2": "0 + C(g2)"}, data=df
    ).fit(reml=False, method="bfgs", gtol=1e-10)
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    assert "dense" in fit.diagnostics["latent_hessian"]
    # exact ML both
    np.testing.assert_allclose(fit.estimate["b0"], ref.fe_params.iloc[0], atol=1e-5)
    np.testing.assert_allclose([fit.estimate["s1"], fit.estimate["s2"]], np.sqrt(ref.vcomp), atol=1e-5)
    np.testing.assert_allclose(fit.estimate["sigma"], np.sqrt(ref.scale), atol=1e-5)
    np.testing.assert_allclose(fit.diagnostics["log_likelihood"], ref.llf, atol=1e-5)


def test_bad_latent_input_is_named():
    with pytest.raises(TypeError, match="latent\\('a'\\): dist must be a numpyro distribution"):
        latent("a", None)
    with pytest.raises(ValueError, match="discrete"):
        latent("k", dist.Poisson(3.0))


def test_posterior_methods_treat_latents_as_unknowns():
    def non_centred(group, n_groups, u, x=None):
        b = param("b", dist.Normal(0.0, 10.0), shape=(2,))
        tau = param("tau", dist.HalfNormal(1.0))
        sigma = param("sigma", dist.HalfNormal(2.0))
        eta = latent("eta", dist.Normal(0.0, 1.0), shape=(n_groups,))
        return observe("x", b[0] + b[1] * u + tau * eta[group] + noise.Gaussian(sigma), obs=x)

    rng, group, u = _grouped(12, 6, 4)
    x = 1.0 + 0.5 * u + rng.normal(0, 0.7, 12)[group] + rng.normal(0, 1.0, group.size)
    data = dict(group=group, n_groups=12, u=u, x=x)
    lap = probmodels.fit(non_centred, data, "laplace", draws=200)
    # the Laplace approximation's centre is the joint mode of the unconstrained posterior over
    # params and latents together, which is map(joint=True, jacobian=True); for real sites (b,
    # eta) its estimate is q's exact mean, i.e. that mode (Newton's tolerance: 1e-10 sds)
    joint = probmodels.fit(non_centred, data, "map", joint=True, jacobian=True)
    assert "latent" not in joint.diagnostics and joint.diagnostics["converged"]
    np.testing.assert_allclose(lap.estimate["eta"], joint.estimate["eta"], atol=1e-7)
    np.testing.assert_allclose(lap.estimate["b"], joint.estimate["b"], atol=1e-7)
    assert lap.draws["eta"].shape == (1, 200, 12) and lap.latent == ("eta",)
    assert lap.summary().attrs["latent"] == [f"eta[{j}]" for j in range(12)]


def random_intercept_with_priors(group, n_groups, u, x=None):
    b = param("b", dist.Normal(0.0, 0.3), shape=(2,))
    tau = param("tau", dist.HalfNormal(1.0))
    a = latent("a", dist.Normal(0.0, tau), shape=(n_groups,))
    sigma = param("sigma", dist.HalfNormal(1.0))
    return observe("x", b[0] + b[1] * u + a[group] + noise.Gaussian(sigma), obs=x)


def test_marginal_map_runs_the_mle_program_and_is_the_exact_posterior_mode():
    """The param priors enter the marginal outside its inner solve, under a traced weight: after
    the marginal MLE, the MAP traces nothing. Gaussian latents in a Gaussian model make the
    Laplace marginal exact, so the MAP is the mode of the closed-form marginal likelihood
    x ~ N(U b, sigma^2 I + tau^2 Z Z^T) times the priors (scipy on that density)."""
    from scipy import optimize, stats

    rng, group, u = _grouped(12, 6, 3)
    x = 1.0 + 0.5 * u + rng.normal(0, 0.7, 12)[group] + rng.normal(0, 1.0, group.size)
    data = dict(group=group, n_groups=12, u=u, x=x)
    mle = probmodels.fit(random_intercept_with_priors, data, "mle")
    traced = trace_count(random_intercept_with_priors)
    map_ = probmodels.fit(random_intercept_with_priors, data, "map")
    assert trace_count(random_intercept_with_priors) == traced
    assert map_.diagnostics["converged"], map_.diagnostics["warnings"]

    U, Z = np.column_stack([np.ones_like(u), u]), np.eye(12)[group]

    def neg_log_posterior(t):  # natural-space density, searched over (b, log tau, log sigma)
        b, tau, sigma = t[:2], np.exp(t[2]), np.exp(t[3])
        cov = sigma**2 * np.eye(len(x)) + tau**2 * Z @ Z.T
        return -(stats.multivariate_normal(U @ b, cov).logpdf(x) + stats.norm(0, 0.3).logpdf(b).sum()
                 + stats.halfnorm(scale=1.0).logpdf(tau) + stats.halfnorm(scale=1.0).logpdf(sigma))

    start = np.r_[mle.estimate["b"], np.log(mle.estimate["tau"]), np.log(mle.estimate["sigma"])]
    ref = optimize.minimize(neg_log_posterior, start, method="BFGS", options={"gtol": 1e-9}).x
    # BFGS on finite differences stops ~1e-6 from the mode; ours at a decrement of 1e-10
    np.testing.assert_allclose(map_.estimate["b"], ref[:2], atol=2e-5)
    np.testing.assert_allclose([map_.estimate["tau"], map_.estimate["sigma"]], np.exp(ref[2:]), atol=2e-5)
    assert abs(map_.estimate["b"][1] - mle.estimate["b"][1]) > 1e-3  # the priors pull
