"""Laplace, VI and NUTS against closed-form posteriors.

Conjugate Gaussian linear model with known noise scale sigma and prior w ~ N(0, tau^2 I):
the posterior is N(m, S), S = (U^T U / sigma^2 + I / tau^2)^-1, m = S U^T x / sigma^2.
"""

import arviz as az
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.stats as st

import probmodels
from probmodels import noise, observe, param

from .conftest import flat_draws, hash_seed_digests

SIGMA, TAU = 0.5, 2.0


def conjugate(u, x=None):
    w = param("w", dist.Normal(0.0, TAU), shape=(u.shape[1],))
    return observe("x", u @ w + noise.Gaussian(SIGMA), obs=x)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    u = rng.normal(size=(30, 3))
    x = u @ np.array([1.0, -0.5, 0.25]) + rng.normal(scale=SIGMA, size=30)
    s = np.linalg.inv(u.T @ u / SIGMA**2 + np.eye(3) / TAU**2)
    m = s @ u.T @ x / SIGMA**2
    return {"u": u, "x": x}, m, s


def test_laplace_is_exact(problem):
    data, m, s = problem
    fit = probmodels.fit(conjugate, data, "laplace")
    # the posterior is Gaussian in w (identity transform): q's exact moments, to the optimiser
    np.testing.assert_allclose(fit.estimate["w"], m, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.stderr["w"], np.sqrt(np.diag(s)), rtol=1e-6)
    # and its draws have the closed-form covariance (Monte Carlo: 4000 draws, ~2% on sds)
    d = flat_draws(fit, "w")
    np.testing.assert_allclose(np.cov(d.T), s, atol=0.1 * np.max(np.diag(s)))


@pytest.mark.parametrize("adaptation", ["gradient", "windowed"])
def test_nuts_matches_closed_form(problem, adaptation):
    data, m, s = problem
    fit = probmodels.fit(conjugate, data, "nuts", seed=1, adaptation=adaptation)
    assert fit.diagnostics["adaptation"] == adaptation
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    assert fit.draws["w"].shape == (4, 1000, 3)
    mcse = az.mcse(fit.to_arviz(log_likelihood=False), var_names=["w"])["w"].values
    # means within 5 Monte Carlo standard errors, sds within 10%
    assert np.all(np.abs(fit.estimate["w"] - m) < 5 * mcse), (fit.estimate["w"], m, mcse)
    np.testing.assert_allclose(fit.stderr["w"], np.sqrt(np.diag(s)), rtol=0.10)
    assert fit.diagnostics["divergences"] == 0
    assert fit.diagnostics["max_rhat"] < 1.01


def test_vi_full_rank(problem):
    data, m, s = problem
    fit = probmodels.fit(conjugate, data, "vi", guide="multivariate_normal")
    sd = np.sqrt(np.diag(s))
    assert np.all(np.abs(fit.estimate["w"] - m) < 0.1 * sd), (fit.estimate["w"] - m) / sd
    np.testing.assert_allclose(fit.stderr["w"], sd, rtol=0.1)
    assert fit.diagnostics["converged"]
    elbo = fit.diagnostics["elbo"]
    assert elbo.ndim == 1 and len(elbo) == fit.diagnostics["steps"]


def test_vi_mean_field_underestimates_marginal_sd(problem):
    # closed form: the mean-field optimum of a Gaussian target has sd_i = 1 / sqrt(Lambda_ii),
    # the conditional sd, below the marginal sd sqrt(S_ii) whenever the inputs correlate
    data, m, s = problem
    fit = probmodels.fit(conjugate, data, "vi")
    prec = np.linalg.inv(s)
    np.testing.assert_allclose(fit.stderr["w"], 1 / np.sqrt(np.diag(prec)), rtol=0.1)
    assert np.all(np.abs(fit.estimate["w"] - m) < 0.1 * np.sqrt(np.diag(s)))


SDS = np.array([1e-3, 1.0, 1e3])


def scales(x=None):
    # the posterior is the prior, N(0, diag(SDS^2)): x carries no information about w
    w = param("w", dist.Normal(0.0, SDS))
    return observe("x", 0.0 * w.sum() + noise.Gaussian(1.0), obs=x)


def test_gradient_adaptation_is_exact_on_independent_gaussians():
    # closed form: for N(0, diag(s^2)) the gradient of log p at z is -z / s^2, so
    # sqrt(Var(z) / Var(grad)) = s^2 exactly, from any draws (no Monte Carlo error); Stan's
    # windowed variance of the draws alone is off by its sampling error (~10% from ~200 draws)
    fit = probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", seed=0)
    inv = fit.diagnostics["inverse_mass_matrix"]
    assert inv.shape == (4, 3)
    np.testing.assert_allclose(inv, np.broadcast_to(SDS**2, inv.shape), rtol=1e-8)
    assert fit.diagnostics["converged"], fit.diagnostics["warnings"]
    np.testing.assert_allclose(flat_draws(fit, "w").std(axis=0), SDS, rtol=0.1)
    # sampling uses the step size dual averaging settled on, one per chain
    step = fit.to_arviz().sample_stats.step_size.values
    assert np.all(step == step[:, :1]) and np.all(step > 0)

    windowed = probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", seed=0, warmup=300, draws=300, adaptation="windowed")
    rel = windowed.diagnostics["inverse_mass_matrix"] / SDS**2 - 1
    assert np.max(np.abs(rel)) > 1e-3  # a Monte Carlo estimate, not exact


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_gradient_adaptation_short_warmups(warmup):
    fit = probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", seed=0, warmup=warmup, draws=20, chains=1)
    assert fit.draws["w"].shape == (1, 20, 3) and np.all(np.isfinite(fit.draws["w"]))
    # the start 1 / |grad log p(z0)| is already the inverse mass; it then only changes with draws
    assert np.all(np.isfinite(fit.diagnostics["inverse_mass_matrix"]))


def test_adaptation_options_are_checked():
    with pytest.raises(ValueError, match="adaptation must be one of"):
        probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", adaptation="nutpie")
    with pytest.raises(ValueError, match="dense_mass=True"):
        probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", adaptation="gradient", dense_mass=True)
    dense = probmodels.fit(scales, {"x": np.zeros(1)}, "nuts", dense_mass=True, warmup=50, draws=20, chains=1)
    assert dense.diagnostics["adaptation"] == "windowed"
    assert dense.diagnostics["inverse_mass_matrix"].shape == (1, 3, 3)


def beta_bernoulli(x=None):
    p = param("p", dist.Beta(2.0, 3.0))
    return observe("x", noise.Bernoulli(probs=p), obs=x)


def test_beta_bernoulli_nuts():
    x = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0], float)
    k, n = x.sum(), len(x)
    fit = probmodels.fit(beta_bernoulli, {"x": x}, "nuts")
    post = st.beta(2 + k, 3 + n - k)  # closed-form posterior
    d = flat_draws(fit, "p")
    mcse = post.std() / np.sqrt(fit.diagnostics["min_ess_bulk"])
    assert abs(d.mean() - post.mean()) < 5 * mcse
    np.testing.assert_allclose(d.std(), post.std(), rtol=0.1)
    # the whole law: KS against the Beta, on a thinned (near-independent) subsample
    assert st.kstest(d[::4], post.cdf).pvalue > 1e-3


def garch_like(x):
    # Stan's real<lower=0, upper=1 - alpha1> beta1: a support that depends on another parameter
    from numpyro.distributions import constraints

    alpha1 = param("alpha1", support="unit_interval")
    beta1 = param("beta1", support=constraints.interval(0.0, 1.0 - alpha1))
    return observe("x", 0.0 * (alpha1 + beta1) + noise.Gaussian(1.0), obs=x)


def test_dependent_support_samples_the_triangle():
    # uniform on {a, b >= 0, a + b <= 1}: E a = E b = 1/3 (closed form). A transform frozen at
    # its initial value (alpha1 = 0.5, so beta1 in (0, 0.5)) would give E b = 1/4 and E a = 1/2.
    fit = probmodels.fit(garch_like, {"x": np.zeros(3)}, "nuts", seed=3)
    a, b = flat_draws(fit, "alpha1"), flat_draws(fit, "beta1")
    assert np.all(a + b <= 1.0)
    mcse = np.sqrt(1 / 18) / np.sqrt(fit.diagnostics["min_ess_bulk"])  # Var a = 1/18
    assert abs(a.mean() - 1 / 3) < 5 * mcse and abs(b.mean() - 1 / 3) < 5 * mcse
    assert b.max() > 0.8  # reaches the far corner, beyond 1 - alpha1(init) = 0.5


def test_chain_methods_give_the_same_chains(problem):
    # each chain is the same compiled function of its own key and start, wherever it runs:
    # split over the CPU devices (one per core), one after the other, or vmapped in lockstep
    from probmodels.solvers.nuts import parallel_devices

    data, _, _ = problem
    fits = {m: probmodels.fit(conjugate, data, "nuts", seed=2, warmup=200, draws=200, chain_method=m) for m in ("parallel", "sequential", "vectorized")}
    for m in ("sequential", "vectorized"):
        np.testing.assert_allclose(fits[m].draws["w"], fits["parallel"].draws["w"], rtol=1e-9, atol=1e-12)
    n = parallel_devices(4)
    assert fits["parallel"].diagnostics["chain_method"] == (f"parallel ({n} CPU devices)" if n > 1 else "sequential")
    assert fits["vectorized"].diagnostics["chain_method"] == "vectorized"


def test_parallel_devices_divide_the_chains():
    import jax

    from probmodels.solvers.nuts import parallel_devices

    n = len(jax.local_devices(backend="cpu"))
    for chains in range(1, 9):
        k = parallel_devices(chains)
        assert chains % k == 0 and 1 <= k <= min(n, chains)
        assert all(chains % j for j in range(k + 1, min(n, chains) + 1))


def test_cpu_devices_at_import():
    # one JAX CPU device per core unless PROBMODELS_CPU_DEVICES says otherwise; a bad value is an error
    import os
    import subprocess
    import sys

    code = "import probmodels, jax; print(len(jax.devices()))"
    env = {k: v for k, v in os.environ.items() if k not in ("PROBMODELS_CPU_DEVICES", "XLA_FLAGS")}
    one = subprocess.run([sys.executable, "-c", code], env={**env, "PROBMODELS_CPU_DEVICES": "1"}, capture_output=True, text=True)
    assert one.returncode == 0 and one.stdout.strip() == "1", one.stderr
    three = subprocess.run([sys.executable, "-c", code], env={**env, "PROBMODELS_CPU_DEVICES": "3"}, capture_output=True, text=True)
    assert three.returncode == 0 and three.stdout.strip() == "3", three.stderr
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "PROBMODELS_CPU_DEVICES": "two"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "PROBMODELS_CPU_DEVICES must be a whole number" in bad.stderr



def test_probmodels_jit_top_level_with_xla_options_nested_without():
    # probmodels' programs compile with its XLA options when called from Python; the same
    # function traced into a user's jit, grad or vmap (where JAX refuses compiler options) works
    import os
    import subprocess
    import sys

    import jax

    from probmodels._config import _FAST_COMPILE, compiler_options, jit

    if jax.default_backend() == "cpu" and not os.environ.get("XLA_FLAGS"):
        assert compiler_options() == _FAST_COMPILE
    f = jit(lambda x, a: jnp.sum(jnp.tanh(a * x) ** 2))
    x = jnp.linspace(-1.0, 1.0, 7)
    top = float(f(x, 2.0))
    assert top == pytest.approx(float(np.sum(np.tanh(2.0 * np.linspace(-1.0, 1.0, 7)) ** 2)), rel=1e-14)
    assert float(jax.jit(f)(x, 2.0)) == pytest.approx(top, rel=1e-14)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(None, 0))(x, jnp.asarray([2.0, 3.0]))[0], top, rtol=1e-14)
    g = jax.grad(f)(x, 2.0)  # d/dx tanh(2x)^2 = 4 tanh(2x) (1 - tanh(2x)^2)
    t = np.tanh(2.0 * np.linspace(-1.0, 1.0, 7))
    np.testing.assert_allclose(g, 4 * t * (1 - t**2), rtol=1e-12, atol=1e-14)
    # an option this XLA does not know is dropped (once, for good), not an error
    import probmodels._config as config

    saved = (config._FAST_COMPILE, config._options)
    try:
        config._FAST_COMPILE = config._options = {"xla_cpu_no_such_option_zz": False}
        h = jit(lambda x: 2.0 * x + 1.0)
        assert float(h(jnp.asarray(3.0))) == 7.0 and config._options == {}
    finally:
        config._FAST_COMPILE, config._options = saved
    # an option the user set in XLA_FLAGS is theirs
    code = "import probmodels._config as c; print(sorted(c.compiler_options()))"
    env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if jax.default_backend() == "cpu":
        assert out.stdout.strip() == "['xla_cpu_use_fusion_emitters']"


def cliff(x=None):
    # the log density is -inf for w < -0.2 (numpyro.factor)
    w = param("w", dist.Normal(0.0, 1.0))
    numpyro.factor("cliff", jnp.where(w > -0.2, 0.0, -jnp.inf))
    return observe("x", w + noise.Gaussian(1.0), obs=x)


def test_chains_whose_jittered_start_is_impossible_start_at_z0():
    import jax

    # the jitter fit(seed=0, init_jitter=2) draws (PRNGKey(seed + 7919)): some chain's falls off the cliff
    u = 2.0 * np.asarray(jax.random.uniform(jax.random.PRNGKey(7919), (4, 1), minval=-1.0, maxval=1.0))
    assert np.any(u < -0.2)
    fit = probmodels.fit(cliff, {"x": np.full(3, 1.0)}, "nuts", seed=0, init_jitter=2.0, warmup=200, draws=200)
    # a chain left at an impossible start never moves (every proposal's energy is undefined)
    assert np.all(fit.draws["w"] > -0.2)
    assert np.all(np.ptp(fit.draws["w"], axis=1) > 0)


_LOWER_VI = """
from probmodels.solvers import vi
digests = []
for kind in ("normal", "multivariate_normal"):
    fns = vi._svi(obj, kind, 1)
    state, rng = fns["init"](0, obj.arrays, 1.0, 1e-2, obj.natural(obj.z0))
    text = fns["chunk"].trace(state, obj.arrays, rng, 10).lower().as_text(debug_info=False)
    digests.append(hashlib.sha256(text.encode()).hexdigest())
print(" ".join(digests))
"""


def test_vi_compiles_to_the_same_program_in_every_process():
    """The persistent compilation cache keys on the lowered program: numpyro's Trace_ELBO sums
    its per-site terms over a set of site names (an order that changes with the hash seed), so
    the SVI program differed in about every other process (a cache miss, a fresh compile);
    probmodels' ELBO sums them in sorted order."""
    digests = hash_seed_digests(_LOWER_VI, seeds=("1", "2", "3", "4"))
    assert len(digests) == 1, digests
