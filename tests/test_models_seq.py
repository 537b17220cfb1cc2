"""The model files of issue 5 (models/hierarchical.py, bigram_language_model.py, denoising.py,
contrastive.py) against closed forms and independently written references.

Each model file is loaded the way ``probmodels report`` loads it (``load_spec``), so these tests
check the specifications users copy, not copies of them.
"""

import os

import numpy as np
import pytest
from numpyro.infer.util import log_likelihood
from scipy.optimize import minimize
from scipy.special import logsumexp

import probmodels
from probmodels.report import load_spec

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def spec(name):
    return load_spec(os.path.join(MODELS, f"{name}.py"))[1]


# --- hierarchical: eight schools ----------------------------------------------------------------

# BDA3 table 5.2, typed here independently of the model file
SCHOOLS_X = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


@pytest.fixture(scope="module")
def schools():
    return spec("hierarchical")


def test_eight_schools_data_is_bda3(schools):
    d = schools.data()
    np.testing.assert_array_equal(d["x"], SCHOOLS_X)
    np.testing.assert_array_equal(d["sigma"], SCHOOLS_SIGMA)


def test_marginal_mle_of_tau_is_on_the_boundary(schools):
    fit = probmodels.fit(schools.marginal, schools.data(), "mle")
    # why it must be: d loglik / d tau^2 at tau = 0 and mu = the pooled mean is
    # sum((x - mu)^2 / sigma^4 - 1 / sigma^2) / 2, negative for these data
    w = 1.0 / SCHOOLS_SIGMA**2
    pooled = np.sum(w * SCHOOLS_X) / np.sum(w)
    assert np.sum((SCHOOLS_X - pooled) ** 2 * w**2 - w) < 0
    warnings = fit.diagnostics["warnings"]
    assert any("tau" in w and "boundary" in w for w in warnings), warnings
    # the boundary warning fires at log(tau) < -16, i.e. tau < 1.2e-7
    assert fit.estimate["tau"] < 1.2e-7
    # closed form at tau = 0: the precision-weighted mean; the optimiser's gradient tolerance
    # (1e-9 x |objective| ~ 2e-8) over the curvature sum(1 / sigma^2) ~ 0.06 bounds the error by 4e-7
    np.testing.assert_allclose(fit.estimate["mu"], pooled, atol=4e-7)
    np.testing.assert_allclose(schools.pooled_mean(), pooled, rtol=1e-15)


def test_non_centred_nuts_pools_partially(schools):
    fit = probmodels.fit(schools.program, schools.data(), "nuts", **schools.FIT_OPTIONS["nuts"])
    assert fit.diagnostics["divergences"] == 0
    theta = np.asarray(fit.draws["theta"]).reshape(-1, 8).mean(axis=0)
    mu = float(fit.estimate["mu"])
    # every school is pulled toward mu, by at least half its distance (the Monte Carlo se of a
    # posterior mean here is ~0.1 with ~2000 effective draws, the margins are > 0.8)
    assert np.all(np.abs(theta - mu) < 0.5 * np.abs(SCHOOLS_X - mu)), (theta, mu)
    # partial, not complete pooling: the school means keep the order of the raw estimates and a
    # spread between 5% and 50% of theirs (complete pooling: 0; no pooling: 100%)
    assert np.corrcoef(theta, SCHOOLS_X)[0, 1] > 0.9
    assert 0.05 < theta.std() / SCHOOLS_X.std() < 0.5, theta


# --- bigram language model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bigram():
    m = spec("bigram_language_model")
    train, test = m.data(), m.heldout()
    V = m.V
    # counts written independently of the model file's helpers
    n = np.bincount(train["u"] * V + train["x"], minlength=V * V).reshape(V, V).astype(float)
    return m, train, test, n


@pytest.fixture(scope="module")
def bigram_fits(bigram):
    m, train, _, _ = bigram
    return {method: probmodels.fit(m.program, train, method) for method in ("mle", "map")}


def test_bigram_data(bigram):
    m, train, test, n = bigram
    assert m.V == 14 and train["u"].shape == (m.N_TRAIN,)
    np.testing.assert_array_equal(train["u"][1:], train["x"][:-1])  # consecutive characters
    assert np.all(n.sum(axis=1) > 0)  # every row of P is seen in training
    # some held-out bigrams were never seen in training (what makes the MLE's perplexity infinite)
    assert np.sum(n[test["u"], test["x"]] == 0) >= 10


def test_bigram_map_is_additive_smoothing(bigram, bigram_fits):
    m, _, _, n = bigram
    a, V = m.A, m.V
    # closed form: the Dirichlet(a) mode of each row, (n_ij + a - 1) / (n_i + V (a - 1))
    expected = (n + a - 1) / (n.sum(axis=1, keepdims=True) + V * (a - 1))
    fit = bigram_fits["map"]
    assert fit.diagnostics["converged"] and not fit.diagnostics["warnings"]
    # Newton on a smooth, strictly concave objective: converged to rounding (1e-15 observed)
    np.testing.assert_allclose(fit.estimate["P"], expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(m.smoothed(n), expected, rtol=1e-14)


def test_bigram_mle_is_relative_frequency(bigram, bigram_fits):
    m, _, _, n = bigram
    fit = bigram_fits["mle"]
    expected = n / n.sum(axis=1, keepdims=True)
    P = fit.estimate["P"]
    # the unseen pairs have their MLE on the boundary P_ij = 0: the optimiser approaches it in
    # the unconstrained space and stops once the gradient there, ~ n_i P_ij, is below its
    # tolerance 1e-9 x |objective| (~3e-6); with n_i >= 20 that leaves P_ij < 1.5e-7
    assert any("boundary" in w and "P" in w for w in fit.diagnostics["warnings"])
    assert np.all(n.sum(axis=1) >= 20)
    assert np.max(P[n == 0]) < 1.5e-7
    # the seen pairs: the mass left on a row's unseen pairs (< 13 x 1.5e-7) is all the error
    np.testing.assert_allclose(P, expected, rtol=0, atol=2e-6)


def test_bigram_heldout_perplexity(bigram, bigram_fits):
    m, _, test, n = bigram
    u, x = test["u"], test["x"]

    def perplexity(p):
        with np.errstate(divide="ignore"):
            return float(np.exp(-np.mean(np.log(p))))

    exact_mle = n / n.sum(axis=1, keepdims=True)
    assert perplexity(exact_mle[u, x]) == np.inf
    ppl_map = perplexity(bigram_fits["map"].estimate["P"][u, x])
    # the fitted MLE stops just short of the boundary (P < 1.5e-7, see above): its perplexity is
    # finite only because the optimiser stopped there, and already worse than the MAP's
    ppl_mle_fit = perplexity(bigram_fits["mle"].estimate["P"][u, x])
    assert ppl_mle_fit > 1.1 * ppl_map
    # the posterior predictive of the next character, per token: the posterior mean
    # (n_ij + a) / (n_i + V a) in closed form (Dirichlet-Categorical conjugacy)
    post = (n + m.A) / (n.sum(axis=1, keepdims=True) + m.V * m.A)
    ppl_post = perplexity(post[u, x])
    assert np.isfinite(ppl_map) and np.isfinite(ppl_post)
    assert 1.0 < ppl_post < m.V and 1.0 < ppl_map < m.V  # better than uniform guessing
    # ... and by NUTS: its Monte Carlo posterior predictive matches the closed form within 1%
    # (per-token relative MC error ~ 1/sqrt(ESS) ~ 5% for the rarest pairs, averaged over 3700
    # tokens in the log)
    nuts = probmodels.fit(m.program, m.data(), "nuts", chains=1, warmup=300, draws=400)
    ppl = m.heldout_perplexities({"MLE": bigram_fits["mle"], "MAP": bigram_fits["map"], "NUTS": nuts}, test)
    np.testing.assert_allclose(ppl["NUTS"], ppl_post, rtol=0.01)
    assert ppl["exact MLE n_ij / n_i"] == np.inf
    np.testing.assert_allclose(ppl["MAP"], ppl_map, rtol=1e-12)


# --- denoising ---------------------------------------------------------------------------------


def test_denoising_mle_is_least_squares_on_the_noise():
    m = spec("denoising")
    d = m.data()
    fit = probmodels.fit(m.program, d, "mle")
    assert fit.diagnostics["converged"] and not fit.diagnostics["warnings"]
    # reference: numpy lstsq of the noise eps on [1, u], one column per output
    design = np.column_stack([np.ones(len(d["u"])), d["u"]])
    coef, *_ = np.linalg.lstsq(design, d["x"], rcond=None)
    rss = np.sum((d["x"] - design @ coef) ** 2, axis=0)
    # Newton decrement below 1e-10: the estimates agree to ~1e-9 relative
    np.testing.assert_allclose(fit.estimate["b"], coef[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.estimate["W"], coef[1:], rtol=1e-8, atol=1e-10)
    # the MLE of a Gaussian scale: sqrt(RSS / N), exactly (no degrees-of-freedom correction)
    np.testing.assert_allclose(fit.estimate["scale"], np.sqrt(rss / len(d["u"])), rtol=1e-8)
    # and the fit is near the Tweedie optimum the file states as TRUTH (200 points: the
    # standard errors are ~0.05, allow 4 of them)
    for k in ("b", "W", "scale"):
        assert np.all(np.abs(fit.estimate[k] - m.TRUTH[k]) < 4 * fit.stderr[k]), k


# --- contrastive -------------------------------------------------------------------------------


def infonce(W, a, b, T):
    """InfoNCE summed over batches: sum_i logsumexp_j s_ij - s_ii, s_ij = (a_i W) . b_j / T."""
    s = np.einsum("nik,kl,njl->nij", a, W, b) / T
    return float(np.sum(logsumexp(s, axis=-1) - np.diagonal(s, axis1=1, axis2=2)))


def test_contrastive_nll_is_infonce_and_mle_recovers_pairs(rng):
    m = spec("contrastive")
    d = m.data()
    fit = probmodels.fit(m.program, d, "mle")
    assert fit.diagnostics["converged"] and not fit.diagnostics["warnings"]
    W_hat = fit.estimate["W"]
    W_rand = rng.normal(size=W_hat.shape)
    for W in (W_hat, W_rand):
        # the program's own log-likelihood (numpyro, through the Categorical noise model)
        ll = log_likelihood(m.program, {"W": W[None]}, **d)["x"]
        assert ll.shape == (1,) + d["x"].shape
        np.testing.assert_allclose(-float(np.sum(ll)), infonce(W, d["a"], d["b"], m.T), rtol=1e-12)
    nll_hat = -fit.diagnostics["log_likelihood"]
    np.testing.assert_allclose(nll_hat, infonce(W_hat, d["a"], d["b"], m.T), rtol=1e-12)
    def loss(w):
        return infonce(w.reshape(W_hat.shape), d["a"], d["b"], m.T)

    # reference optimum: scipy BFGS on the numpy InfoNCE; BFGS stops on gtol 1e-8 with its own
    # Hessian estimate, which leaves W within ~1e-6 of the optimum (1.1e-6 observed)
    ref = minimize(loss, np.zeros(W_hat.size), method="BFGS", options={"gtol": 1e-8})
    np.testing.assert_allclose(W_hat.ravel(), ref.x, atol=1e-5)
    # it recovers the pairing: most a_i rank their own partner first (chance: 1 / 16)
    s = np.einsum("nik,kl,njl->nij", d["a"], W_hat, d["b"])
    acc = np.mean(np.argmax(s, axis=-1) == np.arange(m.B))
    assert acc > 0.6, acc
    assert acc == m.accuracy(W_hat, d["a"], d["b"])
    # and the direction of W is the rotation between the views, R^T (cosine > 0.99)
    assert np.sum(W_hat * m.R.T) / (np.linalg.norm(W_hat) * np.sqrt(3)) > 0.99
