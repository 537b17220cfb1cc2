"""Priors as regularizers (probmodels.priors) and the penalty-geometry figure."""

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import numpy as np
import numpyro.distributions as dist
import pytest
from sklearn.linear_model import LogisticRegression

import probmodels
from probmodels import noise, observe, param
from probmodels.plots import plot_penalty_geometry
from probmodels.priors import penalty, prior_for, sklearn_prior

PRIORS = [
    (dist.Normal(0.3, 2.0), "l2", 1 / 8),
    (dist.Laplace(-1.0, 0.5), "l1", 2.0),
    (dist.StudentT(3.0, 0.0, 1.5), "student_t", 1.5),
    (dist.Cauchy(0.0, 0.7), "cauchy", 0.7),
]


@pytest.mark.parametrize("prior,kind,strength", PRIORS, ids=[p[1] for p in PRIORS])
def test_penalty_is_the_negative_log_prior(prior, kind, strength):
    pen = penalty(prior)
    assert pen.kind == kind
    np.testing.assert_allclose(pen.strength, strength)
    w = np.linspace(-5, 5, 41)
    # penalty(w) - penalty(w0) == -(log p(w) - log p(w0)): the same function up to a constant
    lhs = np.array([pen(v) for v in w]) - float(pen(w[0]))
    rhs = -(np.asarray(prior.log_prob(w)) - float(prior.log_prob(w[0])))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
    # and back: prior_for inverts penalty
    back = prior_for(kind, pen.strength, center=pen.center, df=pen.df)
    np.testing.assert_allclose(back.log_prob(w), prior.log_prob(w), rtol=1e-12)


def test_dirichlet_and_beta_are_pseudo_counts():
    pen = penalty(dist.Dirichlet(jnp.array([2.0, 1.0, 3.5])))
    assert pen.kind == "additive_smoothing"
    np.testing.assert_allclose(pen.strength, [1.0, 0.0, 2.5])
    p1, p2 = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    d = dist.Dirichlet(jnp.array([2.0, 1.0, 3.5]))
    np.testing.assert_allclose(pen(p1) - pen(p2), -(d.log_prob(p1) - d.log_prob(p2)), rtol=1e-12)
    assert prior_for("additive_smoothing", [1.0, 0.0, 2.5]).concentration.tolist() == [2.0, 1.0, 3.5]
    beta = penalty(dist.Beta(3.0, 1.5))
    assert beta.kind == "beta_pseudo_counts" and np.allclose(beta.strength, (2.0, 0.5))
    assert penalty(None).kind == "none" and penalty(dist.ImproperUniform(dist.constraints.real, (), ())).kind == "none"
    with pytest.raises(ValueError, match="Gamma prior has no textbook penalty"):
        penalty(dist.Gamma(2.0, 1.0))
    with pytest.raises(ValueError, match="strength must be > 0"):
        prior_for("l2", 0.0)


def test_expanded_priors_unwrap():
    pen = penalty(dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    assert pen.kind == "l2" and float(pen.strength) == 0.5


def logistic(u, prior, x=None):
    b = param("b")  # scikit-learn does not penalise the intercept
    w = param("w", prior, shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_logistic_regression_C_is_a_normal_prior(C, rng):
    u = rng.normal(size=(200, 3))
    x = (rng.uniform(size=200) < 1 / (1 + np.exp(-(u @ [1.5, -1.0, 0.5])))).astype(float)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10000).fit(u, x)
    fit = probmodels.fit(logistic, {"u": u, "prior": sklearn_prior("LogisticRegression_l2", C=C), "x": x}, "map")
    # lbfgs in scikit-learn at tol 1e-12 vs our Newton decrement 1e-10
    np.testing.assert_allclose(fit.estimate["w"], ref.coef_[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit.estimate["b"], ref.intercept_[0], rtol=1e-6, atol=1e-8)


def test_sklearn_prior_conventions():
    np.testing.assert_allclose(sklearn_prior("Ridge", alpha=4.0, noise_scale=2.0).scale, 1.0)
    np.testing.assert_allclose(sklearn_prior("Lasso", alpha=0.1, noise_scale=2.0, n_obs=80).scale, 0.5)
    np.testing.assert_allclose(sklearn_prior("MultinomialNB", alpha=1.0, n_categories=3).concentration, [2.0] * 3)
    with pytest.raises(ValueError, match="give noise_scale="):
        sklearn_prior("Ridge", alpha=1.0)


def test_penalty_geometry_figure(tmp_path):
    models = {"Gaussian": noise.Gaussian(1.0), "Laplace": noise.Laplace(1.0), "Huber": noise.Huber(1.345), "Student-t": noise.StudentT(4.0, 1.0)}
    fig = plot_penalty_geometry(models)
    left, right = fig.axes[:2]
    r = left.lines[0].get_xdata()
    curves = {line.get_label(): line.get_ydata() for line in right.lines}
    # influence functions, closed form: r (Gaussian), sign(r) (Laplace), clip(r, -d, d) (Huber),
    # (df + 1) r / (df + r^2) (Student-t, unit scale): redescending
    np.testing.assert_allclose(curves["Gaussian"], r, atol=1e-12)
    np.testing.assert_allclose(curves["Huber"], np.clip(r, -1.345, 1.345), atol=1e-12)
    np.testing.assert_allclose(curves["Student-t"], 5 * r / (4 + r**2), atol=1e-12)
    keep = np.abs(r) > 1e-9
    np.testing.assert_allclose(curves["Laplace"][keep], np.sign(r[keep]), atol=1e-12)
    path = tmp_path / "geometry.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="link noise model"):
        plot_penalty_geometry([noise.Bernoulli()])
