"""The model files models/neural_regression.py and models/latent_factor.py against references.

* neural regression: the MLE overfits (training error far below the noise sd, held-out error
  worse than MAP's); the MAP is the weight-decay optimum found by an independent scipy BFGS on
  the objective written out in jax; the NUTS predictive band is wider far from the data.
* PPCA: the MLE against the Tipping-Bishop (1999) closed form, the singular-information warning
  on the rotation of W, and the lower-triangular parameterisation that removes it.
* the non-amortised "VAE" on 8x8 digits: the held-out quadrature against the closed-form PPCA
  marginal, the ELBO below the PPCA maximum log-likelihood, Bernoulli against Gaussian noise.
"""

import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import probmodels

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"models_{name}", os.path.join(MODELS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nr = _load("neural_regression")
lf = _load("latent_factor")


# ---------------------------------------------------------------------------------------------
# neural regression


@pytest.fixture(scope="module")
def nn_data():
    return nr.data(), nr.data(n=200, seed=1)  # 20 training points; 400 held-out ones


@pytest.fixture(scope="module")
def nn_point(nn_data):
    train, _ = nn_data
    return {m: probmodels.fit(nr.program, train, m, **nr.FIT_OPTIONS[m]) for m in ("mle", "map")}


def test_mle_overfits_map_does_not(nn_data, nn_point):
    train, test = nn_data
    mle, map_ = nn_point["mle"], nn_point["map"]
    # 25 weights for 20 points: the MLE chases the noise. The data were simulated with noise sd
    # 0.2, so an honest fit has a training RMSE near 0.2 (less by the fitted degrees of freedom);
    # the MLE's is below half of it (0.03 observed).
    assert nr.rmse(mle, train) < 0.5 * nr.NOISE_SD
    # ... and its held-out RMSE on 400 new points is worse than MAP's (0.45 vs 0.22 observed;
    # the held-out RMSE's sampling error at n = 400 is ~4% of it)
    held_mle, held_map = nr.rmse(mle, test), nr.rmse(map_, test)
    assert held_mle > 1.5 * held_map, (held_mle, held_map)
    # the MAP's own fit is not an overfit: its noise scale estimate is in the right range
    assert 0.5 * nr.NOISE_SD < float(map_.estimate["scale"]) < 1.5 * nr.NOISE_SD


def _canonical(w1, b1, w2):
    """Hidden units with ``w1 >= 0`` (tanh is odd: ``(w1, b1, w2) -> -(w1, b1, w2)`` is the same
    function), sorted: one representative of the ``hidden! 2^hidden`` copies of a network."""
    units = np.stack([w1, b1, w2], axis=1)
    units = units * np.where(units[:, :1] < 0, -1.0, 1.0)
    return units[np.lexsort(units.T[::-1])]


def test_map_is_weight_decay_optimum(nn_data, nn_point):
    """The MAP against scipy's BFGS on the weight-decay objective written out directly."""
    train, _ = nn_data
    map_ = nn_point["map"]
    assert map_.diagnostics["converged"], map_.diagnostics["warnings"]
    u, x, h, tau = train["u"], train["x"], nr.HIDDEN, nr.TAU
    sizes = (h, h, h, 1)

    def unpack(theta):
        w1, b1, w2, b2 = jnp.split(theta[:-1], np.cumsum(sizes)[:-1])
        return w1, b1, w2, b2[0], jnp.exp(theta[-1])

    # -log posterior in the natural space (no Jacobian), constants dropped:
    # squared error / (2 s^2) + N log s + weight decay + the HalfNormal(1) prior of s
    def objective(theta):
        w1, b1, w2, b2, s = unpack(theta)
        x_hat = jnp.tanh(jnp.outer(u, w1) + b1) @ w2 + b2
        decay = (jnp.sum(w1**2) + jnp.sum(b1**2) + b2**2) / (2 * tau**2) + jnp.sum(w2**2) * h / (2 * tau**2)
        return jnp.sum((x - x_hat) ** 2) / (2 * s**2) + len(x) * jnp.log(s) + decay + s**2 / 2

    # A network's weight-decay objective has many local optima besides the copies under the
    # weight-space symmetries, and two optimisers from the same start may end in different ones.
    # So the reference is the objective written out above, independently of the program: at the
    # MAP its gradient must vanish (to the optimiser's tolerance: a Newton decrement of 1e-10 is a
    # gradient of ~1e-10 x the largest curvature) and its Hessian be positive definite.
    est = map_.estimate
    theta_map = jnp.asarray(np.concatenate([est["w1"], est["b1"], est["w2"], [est["b2"]], [np.log(est["scale"])]]))
    grad = np.asarray(jax.grad(objective)(theta_map))
    hess = np.asarray(jax.hessian(objective)(theta_map))
    eig = np.linalg.eigvalsh(0.5 * (hess + hess.T))
    assert eig[0] > 0, eig[:3]
    assert np.max(np.abs(grad)) < 1e-8 * max(1.0, eig[-1]), np.max(np.abs(grad))


def test_posterior_band_widens_away_from_data(nn_data):
    train, _ = nn_data
    post = probmodels.fit(nr.program, train, "nuts", chains=2, warmup=300, draws=300, seed=0, **nr.FIT_OPTIONS["nuts"])
    far = np.array([-6.0, 6.0])  # 3 units beyond the data
    inside = np.array([-2.0, 2.0])  # the centres of the two data intervals
    band = post.predict({"u": np.concatenate([far, inside])}).summary(prob=0.9)
    width = (band["mean_high"] - band["mean_low"]).to_numpy()
    # 90% band of f: ~1.0-1.1 far away, ~0.3 inside (seed 0); over seeds 0-3 the ratio was 3.0 to
    # 3.7, so the factor 2 leaves room for the Monte Carlo error of 5%/95% quantiles from 600
    # correlated draws
    assert width[:2].min() > 2.0 * width[2:].max(), width
    # the predictive mean inside the data follows the data (within 3 noise sds of the truth)
    assert np.all(np.abs(band["mean"].to_numpy()[2:] - nr.f_true(inside)) < 3 * nr.NOISE_SD)


# ---------------------------------------------------------------------------------------------
# probabilistic PCA


@pytest.fixture(scope="module")
def ppca():
    d = lf.data()
    return d, lf.tipping_bishop(d["x"]), probmodels.fit(lf.program, d, "mle", **lf.FIT_OPTIONS["mle"])


def test_ppca_mle_matches_tipping_bishop(ppca):
    d, ref, mle = ppca
    assert mle.diagnostics["converged"], mle.diagnostics["warnings"]
    est = mle.estimate
    W = est["W"]
    # closed form (Tipping and Bishop 1999, eqs. 7-8); the optimiser stops at a Newton decrement
    # of 1e-10 standard errors (se of sigma ~0.012, of W W^T entries ~0.1): 1e-8 is loose
    np.testing.assert_allclose(est["sigma"] ** 2, ref["sigma2"], rtol=1e-8)
    np.testing.assert_allclose(W @ W.T, ref["WWt"], atol=1e-8)  # rotation-invariant
    np.testing.assert_allclose(est["mu"], ref["mu"], atol=1e-8)
    # the maximum log-likelihood itself (scipy's multivariate normal at the closed form)
    np.testing.assert_allclose(
        mle.diagnostics["log_likelihood"], lf.ppca_log_lik(d["x"], ref["mu"], ref["WWt"], ref["sigma2"]), rtol=1e-12
    )


def test_ppca_rotation_is_named(ppca):
    _, _, mle = ppca
    # W R has the likelihood of W for every orthogonal R: the information is singular along the
    # rotation, and that direction loads on every entry of W (and on nothing else)
    singular = [w for w in mle.diagnostics["warnings"] if "singular" in w]
    assert len(singular) == 1, mle.diagnostics["warnings"]
    labels = [lab for lab in mle.labels() if lab.startswith("W[")]  # the fit's own label format
    assert len(labels) == lf.D * lf.Q
    assert all(lab in singular[0] for lab in labels), singular[0]
    assert not re.search(r"\bmu\[|\bsigma\b", singular[0]), singular[0]
    assert np.all(np.isnan(mle.stderr["W"]))
    assert np.all(np.isfinite(mle.stderr["mu"])) and np.isfinite(mle.stderr["sigma"])


def test_ppca_lower_triangular_w_is_identified(ppca):
    d, ref, _ = ppca
    fit = probmodels.fit(lf.identified, d, "mle")
    assert fit.diagnostics["converged"] and not fit.diagnostics["warnings"], fit.diagnostics["warnings"]
    W = np.asarray(fit._result.objective.natural(fit._result.zhat)["W"])
    assert np.all(np.triu(W, 1) == 0) and np.all(np.diag(W) > 0)
    # the same maximum (closed form, as above) and, now, standard errors for every entry
    np.testing.assert_allclose(W @ W.T, ref["WWt"], atol=1e-8)
    np.testing.assert_allclose(fit.estimate["sigma"] ** 2, ref["sigma2"], rtol=1e-8)
    assert np.all(np.isfinite(fit.stderr["W_below"])) and np.all(np.isfinite(fit.stderr["W_diag"]))


def test_ppca_default_start_reaches_the_maximum(ppca):
    # W = 0 (the default start) is a saddle of the PPCA likelihood: the trust-region step leaves
    # it along the negative curvature (a damped Newton step there is zero)
    d, ref, _ = ppca
    fit = probmodels.fit(lf.program, d, "mle", max_iter=100)  # no init: W starts at 0 (converges in ~25 from INIT)
    np.testing.assert_allclose(fit.estimate["sigma"] ** 2, ref["sigma2"], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# the non-amortised "VAE" on 8x8 digits


@pytest.fixture(scope="module")
def decoders():
    d = lf.digits(n_train=200, n_test=100)
    table, fits, lpd = lf.compare_decoders(d)
    return d, table, fits, lpd


def test_heldout_quadrature_matches_ppca_marginal(decoders):
    d, _, fits, _ = decoders
    theta = lf.decoder_mean(fits["gaussian"])
    quad = lf.heldout_log_lik("gaussian", theta, d["x_test"], density=True)
    # closed form: a linear-Gaussian decoder's marginal is PPCA, N(b, W W^T + scale^2 I)
    cov = theta["W"] @ theta["W"].T + theta["scale"] ** 2 * np.eye(64)
    ref = multivariate_normal(theta["b"], cov).logpdf(d["x_test"])
    # the trapezoid rule over +-7 sds in steps of 0.25 sd is exact for a Gaussian integrand to
    # ~exp(-2 pi^2 / 0.25^2); what is left is rounding in a sum of 3,249 terms
    np.testing.assert_allclose(quad, ref, atol=1e-8)


def test_gaussian_decoder_elbo_below_ppca_maximum(decoders):
    d, _, fits, _ = decoders
    ref = lf.tipping_bishop(d["x"])
    # ELBO <= log p(x) = log E_prior[p(x | theta)] <= max_theta log p(x | theta), and the
    # Gaussian decoder's maximum is the PPCA closed form (q = 2, mu = b free). One-sided: it
    # catches an ELBO that is too high (a missing entropy or prior term), not one that is low.
    bound = lf.ppca_log_lik(d["x"], ref["mu"], ref["WWt"], ref["sigma2"])
    assert fits["gaussian"].diagnostics["final_elbo"] < bound
    # the VI converged (the ELBO stopped improving) on both decoders
    assert fits["gaussian"].diagnostics["converged"] and fits["bernoulli"].diagnostics["converged"]


def test_bernoulli_decoder_beats_gaussian_on_heldout_images(decoders):
    d, table, fits, lpd = decoders
    diff = lpd["bernoulli"] - lpd["gaussian"]  # log P of the same 100 binary images
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    # binary pixels: Bernoulli noise is the right likelihood; the Gaussian's mass on the right
    # side of 0.5 is worse. Paired over images, by more than 3 standard errors.
    assert diff.mean() > 3 * se, (diff.mean(), se)
    # the same score from the other side: the Bernoulli decoder's quadrature against Monte Carlo
    # over 200,000 prior draws of z (standard error ~0.005 nats on these images, measured over
    # 10 seeds; 0.03 is 6 of them)
    theta = lf.decoder_mean(fits["bernoulli"])
    z = np.random.default_rng(0).normal(size=(200_000, 2))
    logits = z @ theta["W"].T + theta["b"]
    for i in range(3):
        x = d["x_test"][i]
        ll = (x * logits - np.logaddexp(0.0, logits)).sum(axis=1)
        mc = np.logaddexp.reduce(ll) - np.log(len(z))
        assert abs(mc - lpd["bernoulli"][i]) < 0.03, (i, mc, lpd["bernoulli"][i])
