"""Diagnostics a user can act on: warnings with counts, causes and remedies; approximations that
grade themselves (PSIS k-hat)."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import probmodels
from probmodels import noise, observe, param

# Rubin's eight schools (Gelman et al., BDA3 5.5)
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centred(sigma, x=None):
    mu = param("mu", dist.Normal(0.0, 5.0))
    tau = param("tau", dist.HalfCauchy(5.0))
    theta = param("theta", dist.Normal(mu, tau), shape=(8,))
    return observe("x", theta + noise.Gaussian(sigma), obs=x)


def non_centred(sigma, x=None):
    mu = param("mu", dist.Normal(0.0, 5.0))
    tau = param("tau", dist.HalfCauchy(5.0))
    eta = param("eta", dist.Normal(0.0, 1.0), shape=(8,))
    theta = numpyro.deterministic("theta", mu + tau * eta)
    return observe("x", theta + noise.Gaussian(sigma), obs=x)


def test_centred_eight_schools_diverges_and_says_so():
    fit = probmodels.fit(centred, {"sigma": SIGMA, "x": Y}, "nuts", seed=0)
    n = fit.diagnostics["divergences"]
    assert n > 0
    msg = next(w for w in fit.diagnostics["warnings"] if "diverged" in w)
    assert msg.startswith(f"{n} of 4000 draws ({100 * n / 4000:.1f}%) diverged after warm-up")
    assert "target_accept" in msg and "non-centred" in msg
    assert not fit.diagnostics["converged"]
    assert "diverged" in repr(fit)


def test_non_centred_eight_schools_does_not():
    fit = probmodels.fit(non_centred, {"sigma": SIGMA, "x": Y}, "nuts", seed=0, target_accept=0.9)
    assert fit.diagnostics["divergences"] == 0
    assert not any("diverged" in w for w in fit.diagnostics["warnings"])
    assert fit.draws["theta"].shape == (4, 1000, 8)  # the deterministic site is drawn too


def test_short_chains_warn_about_ess():
    fit = probmodels.fit(non_centred, {"sigma": SIGMA, "x": Y}, "nuts", seed=0, warmup=100, draws=40, chains=2)
    ess = fit.diagnostics["min_ess_bulk"]
    assert ess < 200
    assert any(w.startswith(f"the bulk effective sample size is {ess:.0f} (< 100 per chain x 2 chains)") for w in fit.diagnostics["warnings"])


def two_modes(x):
    # x ~ N(m^2, 0.1): m = +2 and m = -2 explain the data equally well
    m = param("m", dist.Normal(0.0, 10.0))
    return observe("x", m**2 + noise.Gaussian(0.1), obs=x)


def test_chains_in_different_modes_give_rhat_warning():
    # seed 3 sends two chains to each mode (with seed 1 all four find m = -2 and r-hat cannot tell)
    fit = probmodels.fit(two_modes, {"x": np.full(5, 4.0)}, "nuts", seed=3, warmup=300, draws=300, init_jitter=1.0)
    signs = np.sign(fit.draws["m"].mean(axis=1))
    assert len(set(signs)) == 2, signs  # some chains in each mode (seeded)
    assert fit.diagnostics["max_rhat"] > 1.5
    assert any("r-hat is" in w and "chains disagree" in w for w in fit.diagnostics["warnings"])


def correlated(x):
    w = param("w", dist.MultivariateNormal(jnp.zeros(2), jnp.array([[1.0, 0.999], [0.999, 1.0]])))
    return observe("x", w[0] + noise.Gaussian(100.0), obs=x)


def test_tree_depth_warning():
    fit = probmodels.fit(correlated, {"x": np.zeros(1)}, "nuts", max_tree_depth=2, warmup=200, draws=200, chains=1)
    assert fit.diagnostics["tree_depth_hits"] > 0
    assert any("maximum tree depth (2)" in w for w in fit.diagnostics["warnings"])


# --- approximations that grade themselves -------------------------------------------------------

SIG, TAU = 0.5, 2.0


def conjugate(u, x=None):
    w = param("w", dist.Normal(0.0, TAU), shape=(u.shape[1],))
    return observe("x", u @ w + noise.Gaussian(SIG), obs=x)


@pytest.fixture(scope="module")
def gaussian_data():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(30, 3))
    return {"u": u, "x": u @ np.array([1.0, -0.5, 0.25]) + rng.normal(scale=SIG, size=30)}


def test_pareto_k_small_on_a_gaussian_posterior(gaussian_data):
    lap = probmodels.fit(conjugate, gaussian_data, "laplace")
    # exact approximation: the log-weights are constant, recognised (ArviZ would say inf)
    assert lap.diagnostics["pareto_k"] == -np.inf
    vi = probmodels.fit(conjugate, gaussian_data, "vi", guide="multivariate_normal")
    assert vi.diagnostics["pareto_k"] < 0.5
    assert not any("Pareto" in w for w in vi.diagnostics["warnings"] + lap.diagnostics["warnings"])


def funnel():
    # Neal's funnel: y ~ N(0, 3), z_i ~ N(0, exp(y / 2)); no data
    y = param("y", dist.Normal(0.0, 3.0))
    param("z", dist.Normal(0.0, jnp.exp(y / 2)), shape=(9,))


def test_pareto_k_large_on_neals_funnel():
    fit = probmodels.fit(funnel, {}, "laplace")
    assert fit.diagnostics["pareto_k"] > 0.7
    assert any("Pareto k-hat of the Laplace approximation" in w and "cannot be trusted" in w for w in fit.diagnostics["warnings"])


def test_psis_reweighting_moves_toward_the_posterior():
    # a skewed posterior: p ~ Beta(2, 8) (no data); Laplace in logit space is slightly off
    def beta_only():
        param("p", dist.Beta(2.0, 8.0))

    plain = probmodels.fit(beta_only, {}, "laplace", draws=20000)
    weighted = probmodels.fit(beta_only, {}, "laplace", draws=20000, psis=True)
    exact = 2.0 / 10.0  # closed form: the Beta mean
    # Monte Carlo sd of the mean of 20000 draws ~ sd/sqrt(20000) ~ 9e-4
    assert abs(weighted.estimate["p"] - exact) < 5e-3 < abs(plain.estimate["p"] - exact) + 5e-3
    assert abs(weighted.estimate["p"] - exact) < abs(plain.estimate["p"] - exact)


def unidentified(x):
    a = param("a")
    b = param("b")
    return observe("x", a + b + noise.Gaussian(1.0), obs=x)


def test_laplace_fails_loudly():
    fit = probmodels.fit(unidentified, {"x": np.array([0.3, -0.2, 1.0])}, "laplace")
    assert fit.draws is None and not fit.diagnostics["converged"]
    msg = " ".join(fit.diagnostics["warnings"])
    assert "singular along a, b" in msg and "no draws" in msg


def test_chain_diagnostics_equal_arviz_on_the_dataset():
    # r-hat and ESS coordinate by coordinate (no xarray in fit) = ArviZ's on the whole dataset
    import arviz as az

    from probmodels.solvers.nuts import chain_diagnostics

    rng = np.random.default_rng(0)
    latent = {"a": rng.normal(size=(4, 300)), "b": rng.normal(size=(4, 300, 2, 3)).cumsum(axis=1)}
    ds = az.convert_to_dataset(latent)
    ref = (
        max(float(az.rhat(ds)[k].max()) for k in latent),
        min(float(az.ess(ds, method="bulk")[k].min()) for k in latent),
        min(float(az.ess(ds, method="tail")[k].min()) for k in latent),
    )
    np.testing.assert_allclose(chain_diagnostics(latent, 4), ref, rtol=1e-12)
