"""The program primitives: param, observe, additive noise, numpyro compatibility, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st
from numpyro import handlers
from numpyro.infer import Predictive

import probmodels
from probmodels import noise, observe, param


def line(u, x=None):
    slope = param("slope", dist.Normal(0.0, 10.0))
    intercept = param("intercept")
    scale = param("scale", dist.HalfNormal(5.0))
    return observe("x", intercept + slope * u + noise.Gaussian(scale), obs=x)


def test_program_is_a_numpyro_model():
    u = np.linspace(0, 1, 5)
    tr = handlers.trace(handlers.substitute(handlers.seed(line, 0), {"intercept": 0.3})).get_trace(u=u)
    assert isinstance(tr["intercept"]["fn"], dist.ImproperUniform)  # flat, a real sample site
    assert tr["scale"]["fn"].support is dist.constraints.positive
    assert tr["x"]["fn"].batch_shape == (5,) and not tr["x"]["is_observed"]
    # Predictive over point draws simulates x
    samples = {"slope": jnp.array([1.0, 2.0]), "intercept": jnp.zeros(2), "scale": jnp.array([1e-9, 1e-9])}
    sim = Predictive(line, samples)(jax.random.PRNGKey(0), u=u)["x"]
    np.testing.assert_allclose(sim, np.stack([u, 2 * u]), atol=1e-7)


# (noise model, scipy law of x - x_hat): simulation from observe(obs=None) has the noise's law
CONTINUOUS = [
    (noise.Gaussian(0.7), st.norm(scale=0.7)),
    (noise.Laplace(0.7), st.laplace(scale=0.7)),
    (noise.StudentT(df=3.0, scale=0.7), st.t(df=3.0, scale=0.7)),
]


@pytest.mark.parametrize("eps,law", CONTINUOUS, ids=lambda v: repr(v) if isinstance(v, noise.NoiseModel) else "")
def test_simulated_noise_has_its_law(eps, law):
    def program(x=None):
        return observe("x", 1.5 + eps, obs=x)

    x = Predictive(program, num_samples=4000)(jax.random.PRNGKey(1))["x"]
    r = np.asarray(x).ravel() - 1.5
    assert st.kstest(r, law.cdf).pvalue > 1e-3
    # and the test can fail: the same draws against the wrong law
    wrong = st.norm(scale=law.std()) if not isinstance(eps, noise.Gaussian) else st.laplace(scale=0.7)
    if np.isfinite(law.std()):
        assert st.kstest(r, wrong.cdf).pvalue < 1e-3


def test_simulated_counts_have_their_law():
    def program(x=None):
        observe("y", noise.Poisson(log_rate=jnp.log(3.0)), obs=x)

    y = np.asarray(Predictive(program, num_samples=20000)(jax.random.PRNGKey(2))["y"]).ravel()
    k = np.arange(0, 9)
    observed = np.array([np.sum(y == i) for i in k] + [np.sum(y > 8)])
    expected = np.append(st.poisson(3.0).pmf(k), st.poisson(3.0).sf(8)) * len(y)
    assert st.chisquare(observed, expected).pvalue > 1e-3


def test_link_noise_cannot_be_added():
    with pytest.raises(TypeError, match=r"noise.Bernoulli\(logits=x_hat\)"):
        _ = jnp.zeros(3) + noise.Bernoulli()
    with pytest.raises(TypeError, match="one noise model"):
        _ = (jnp.zeros(3) + noise.Gaussian(1.0)) + noise.Laplace(1.0)


def test_observe_rejects_unbound_and_foreign():
    with pytest.raises(TypeError, match="not bound"):
        handlers.seed(lambda: observe("x", noise.Gaussian(1.0), obs=jnp.zeros(2)), 0)()
    with pytest.raises(TypeError, match="expected a noise model"):
        handlers.seed(lambda: observe("x", dist.Normal(0, 1), obs=jnp.zeros(2)), 0)()


@pytest.mark.parametrize(
    "data,match",
    [
        ({"u": np.array([0.0, np.nan, 1.0]), "x": np.zeros(3)}, r"data\['u'\] has 1 non-finite values \(NaN or inf\), first at index 1"),
        ({"u": np.zeros(3), "x": np.array([0.0, 1.0, np.inf])}, r"data\['x'\] has 1 non-finite"),
        ({"u": np.zeros(3), "x": np.zeros((3, 1))}, r"observe\('x'\): obs has shape \(3, 1\) but the prediction gives shape \(3,\)"),
        ({"u": np.zeros(3), "x": np.zeros(3), "w": 1.0}, r"data has key\(s\) \['w'\] that the program does not take"),
        ({"x": np.zeros(3)}, r"the program needs \['u'\]"),
        ({"u": np.array(["a", "b", "c"]), "x": np.zeros(3)}, r"data\['u'\] has dtype <U1"),
    ],
)
def test_bad_data_is_named(data, match):
    with pytest.raises((ValueError, TypeError), match=match):
        probmodels.fit(line, data, "mle")


def test_bad_method_option_support_and_init():
    data = {"u": np.zeros(3), "x": np.zeros(3)}
    with pytest.raises(ValueError, match="unknown method 'mcmc'"):
        probmodels.fit(line, data, "mcmc")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['chainz'\]"):
        probmodels.fit(line, data, "nuts", chainz=2)
    with pytest.raises(ValueError, match=r"init: \['slop'\] are not latent sites"):
        probmodels.fit(line, data, "mle", init={"slop": 1.0})
    with pytest.raises(ValueError, match=r"init\['scale'\] = -1.0 lies outside"):
        probmodels.fit(line, data, "mle", init={"scale": -1.0})

    def bad_support(x):
        s = param("s", support="postive")
        return observe("x", 0.0 + noise.Gaussian(s), obs=x)

    with pytest.raises(ValueError, match=r"param\('s'\): unknown support 'postive'"):
        probmodels.fit(bad_support, {"x": np.zeros(2)}, "mle")

    def conflicting(x):
        s = param("s", dist.HalfNormal(1.0), support="real")
        return observe("x", 0.0 + noise.Gaussian(s), obs=x)

    with pytest.raises(ValueError, match="conflicts with the prior's support"):
        probmodels.fit(conflicting, {"x": np.zeros(2)}, "mle")


def test_obs_outside_support_is_named():
    def logistic(x):
        b = param("b")
        return observe("x", noise.Bernoulli(logits=b), obs=x)

    with pytest.raises(ValueError, match=r"observe\('x'\): 1 values of obs lie outside the support.*index 2"):
        probmodels.fit(logistic, {"x": np.array([0.0, 1.0, 2.0])}, "mle")


def test_undefined_at_zero_needs_init_and_gets_it():
    # f(u) = log(b) u is undefined at the default start b = 0 (flat: z = 0 -> b = 0)
    def program(u, x=None):
        b = param("b")
        return observe("x", jnp.log(b) * u + noise.Gaussian(1.0), obs=x)

    u = np.linspace(1, 2, 20)
    with pytest.raises(ValueError, match="log density of observation site 'x' is -inf at the starting values.*init="):
        probmodels.fit(program, {"u": u, "x": np.log(3.0) * u}, "mle")
    fit = probmodels.fit(program, {"u": u, "x": np.log(3.0) * u}, "mle", init={"b": 1.0})
    np.testing.assert_allclose(fit.estimate["b"], 3.0, rtol=1e-8)


def test_numpy_prediction_plus_noise():
    # numpy would otherwise broadcast ndarray + noise into an object array of Noisy objects
    x_hat = np.linspace(0.0, 1.0, 4)
    noisy = x_hat + noise.Gaussian(0.5)
    assert isinstance(noisy, noise.Noisy) and noisy.distribution().batch_shape == (4,)
    with pytest.raises(TypeError, match="link noise model"):
        _ = x_hat + noise.Poisson()
