"""Every prior is a regularizer: the penalty a prior adds to the objective, and back.

MAP minimises ``-log p(x | theta) - log p(theta)``; the second term is the penalty. Up to a
constant that does not move the optimum:

=====================================  ===========================================================
prior                                  penalty (added to the negative log-likelihood)
=====================================  ===========================================================
``Normal(m, tau)``                     L2, ``lam * (w - m)^2`` with ``lam = 1 / (2 tau^2)``
``Laplace(m, b)``                      L1, ``lam * |w - m|`` with ``lam = 1 / b``
``StudentT(df, m, s)``                 ``(df + 1)/2 * log(1 + (w - m)^2 / (df s^2))`` (robust shrinkage)
``Cauchy(m, s)``                       ``log(1 + (w - m)^2 / s^2)``
``Dirichlet(a)``                       ``-(a - 1) . log p``: additive smoothing with ``a - 1`` pseudo-counts
``Beta(a, b)``                         ``a - 1`` pseudo-successes and ``b - 1`` pseudo-failures
``Uniform(lo, hi)``                    a box constraint, no penalty inside it
none (flat)                            no penalty
=====================================  ===========================================================

scikit-learn's conventions (Gaussian noise with scale ``sigma``, ``N`` observations):

* ``Ridge(alpha)`` minimises ``||x - U w||^2 + alpha ||w||^2``: the prior ``Normal(0, sigma / sqrt(alpha))``.
* ``Lasso(alpha)`` minimises ``||x - U w||^2 / (2N) + alpha ||w||_1``: ``Laplace(0, sigma^2 / (alpha N))``.
* ``LogisticRegression(C, penalty="l2")`` minimises ``||w||^2 / 2 + C sum loss``: ``Normal(0, sqrt(C))``;
  with ``penalty="l1"``, ``||w||_1 + C sum loss``: ``Laplace(0, C)``.
* ``MultinomialNB(alpha)`` / ``CategoricalNB(alpha)``: additive smoothing, the MAP under ``Dirichlet(alpha + 1)``.

Examples
--------
>>> import numpyro.distributions as dist
>>> from probmodels.priors import penalty, prior_for
>>> penalty(dist.Normal(0.0, 2.0))
Penalty(kind='l2', strength=0.125, center=0.0)
>>> prior_for("l1", 4.0)  # doctest: +ELLIPSIS
<numpyro.distributions.continuous.Laplace object at ...>
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

__all__ = ["Penalty", "penalty", "prior_for", "sklearn_prior", "PENALTIES"]

PENALTIES = ("l2", "l1", "student_t", "cauchy", "additive_smoothing", "beta_pseudo_counts", "box", "none")


@dataclass(frozen=True)
class Penalty:
    """The regularizer a prior induces.

    Attributes
    ----------
    kind : str
        One of ``PENALTIES``.
    strength
        ``lam`` for l2 / l1; the pseudo-counts ``a - 1`` for additive smoothing; ``(a - 1, b - 1)``
        for a Beta; the scale for student_t / cauchy; ``(lo, hi)`` for a box.
    center
        Where the penalty is smallest (the prior's location); None where it has none.
    df : float, optional
        Degrees of freedom of a student_t penalty.
    """

    kind: str
    strength: object
    center: object = None
    df: float | None = None

    def __repr__(self) -> str:
        def show(v):
            a = np.asarray(v)
            return repr(float(a)) if a.ndim == 0 else repr(a.tolist())

        parts = [f"kind={self.kind!r}", f"strength={show(self.strength) if not isinstance(self.strength, tuple) else tuple(float(np.asarray(s)) for s in self.strength)}"]
        if self.center is not None:
            parts.append(f"center={show(self.center)}")
        if self.df is not None:
            parts.append(f"df={self.df!r}")
        return f"Penalty({', '.join(parts)})"

    def __call__(self, w):
        """The penalty at ``w`` (summed over its elements), the negative log prior up to a constant."""
        w = jnp.asarray(w)
        k = self.kind
        if k == "l2":
            return jnp.sum(self.strength * (w - self.center) ** 2)
        if k == "l1":
            return jnp.sum(self.strength * jnp.abs(w - self.center))
        if k == "student_t":
            return jnp.sum((self.df + 1) / 2 * jnp.log1p((w - self.center) ** 2 / (self.df * self.strength**2)))
        if k == "cauchy":
            return jnp.sum(jnp.log1p(((w - self.center) / self.strength) ** 2))
        if k == "additive_smoothing":
            return -jnp.sum(self.strength * jnp.log(w))
        if k == "beta_pseudo_counts":
            a1, b1 = self.strength
            return -jnp.sum(a1 * jnp.log(w) + b1 * jnp.log1p(-w))
        if k == "box":
            lo, hi = self.strength
            return jnp.sum(jnp.where((w >= lo) & (w <= hi), 0.0, jnp.inf))
        return jnp.zeros(())


def _unwrap(prior):
    while isinstance(prior, (dist.Independent, dist.ExpandedDistribution)):
        prior = prior.base_dist
    return prior


def penalty(prior) -> Penalty:
    """The penalty a prior adds to the negative log-likelihood (MAP's objective).

    Parameters
    ----------
    prior : numpyro Distribution or None
        ``Normal``, ``Laplace``, ``StudentT``, ``Cauchy``, ``Dirichlet``, ``Beta``, ``Uniform``,
        ``ImproperUniform`` or None (flat); expanded or ``to_event`` versions too.

    Returns
    -------
    Penalty

    Raises
    ------
    ValueError
        For a prior with no textbook penalty form (say which instead).
    """
    if prior is None:
        return Penalty("none", 0.0)
    p = _unwrap(prior)
    if isinstance(p, dist.ImproperUniform):
        return Penalty("none", 0.0)
    if type(p) is dist.Normal:
        return Penalty("l2", 1.0 / (2.0 * np.asarray(p.scale) ** 2), np.asarray(p.loc))
    if type(p) is dist.Laplace:
        return Penalty("l1", 1.0 / np.asarray(p.scale), np.asarray(p.loc))
    if type(p) is dist.StudentT:
        return Penalty("student_t", np.asarray(p.scale), np.asarray(p.loc), df=float(np.asarray(p.df)))
    if type(p) is dist.Cauchy:
        return Penalty("cauchy", np.asarray(p.scale), np.asarray(p.loc))
    if type(p) is dist.Dirichlet:
        return Penalty("additive_smoothing", np.asarray(p.concentration) - 1.0)
    if type(p) is dist.Beta:
        return Penalty("beta_pseudo_counts", (np.asarray(p.concentration1) - 1.0, np.asarray(p.concentration0) - 1.0))
    if type(p) is dist.Uniform:
        return Penalty("box", (np.asarray(p.low), np.asarray(p.high)))
    raise ValueError(
        f"penalty: a {type(p).__name__} prior has no textbook penalty; its penalty is "
        "-log_prob(w) (use prior.log_prob), or pick one of Normal (L2), Laplace (L1), StudentT, "
        "Cauchy, Dirichlet (additive smoothing), Beta, Uniform (box)"
    )


def prior_for(kind: str, strength, *, center=0.0, df: float | None = None):
    """The prior whose penalty is ``kind`` with ``strength`` (the inverse of :func:`penalty`).

    ``"l2"``: ``lam * (w - c)^2`` -> ``Normal(c, 1 / sqrt(2 lam))``; ``"l1"``: ``lam |w - c|`` ->
    ``Laplace(c, 1 / lam)``; ``"additive_smoothing"``: pseudo-counts ``alpha`` ->
    ``Dirichlet(alpha + 1)``; ``"student_t"`` / ``"cauchy"``: ``strength`` is the scale.
    """
    strength_arr = np.asarray(strength, dtype=float)
    if kind in ("l2", "l1", "student_t", "cauchy") and np.any(strength_arr <= 0):
        raise ValueError(f"prior_for({kind!r}): the strength must be > 0, got {strength}")
    if kind == "l2":
        return dist.Normal(center, 1.0 / np.sqrt(2.0 * strength_arr))
    if kind == "l1":
        return dist.Laplace(center, 1.0 / strength_arr)
    if kind == "student_t":
        if df is None:
            raise ValueError("prior_for('student_t'): give df=")
        return dist.StudentT(df, center, strength_arr)
    if kind == "cauchy":
        return dist.Cauchy(center, strength_arr)
    if kind == "additive_smoothing":
        if np.any(strength_arr < 0):
            raise ValueError("prior_for('additive_smoothing'): pseudo-counts must be >= 0 (a Dirichlet needs a > 0; a < 1 has no mode)")
        return dist.Dirichlet(jnp.asarray(strength_arr + 1.0))
    raise ValueError(f"prior_for: unknown penalty {kind!r}; use one of l2, l1, student_t, cauchy, additive_smoothing")


def sklearn_prior(estimator: str, *, alpha=None, C=None, n_obs=None, noise_scale=None, n_categories=None):
    """The prior that makes MAP reproduce a scikit-learn estimator's penalty.

    Parameters
    ----------
    estimator : {"Ridge", "Lasso", "LogisticRegression_l2", "LogisticRegression_l1", "MultinomialNB"}
    alpha, C : float
        The estimator's penalty parameter (``alpha`` for Ridge / Lasso / naive Bayes, ``C`` for
        LogisticRegression).
    n_obs : int
        N, for Lasso (its squared error is divided by 2N).
    noise_scale : float
        The Gaussian noise scale sigma, for Ridge and Lasso (their loss is the squared error,
        sigma^2 times the negative log-likelihood up to a constant).
    n_categories : int
        The number of categories (features, for naive Bayes' per-class probabilities).
    """
    if estimator == "Ridge":
        _need(estimator, alpha=alpha, noise_scale=noise_scale)
        return dist.Normal(0.0, noise_scale / np.sqrt(alpha))
    if estimator == "Lasso":
        _need(estimator, alpha=alpha, noise_scale=noise_scale, n_obs=n_obs)
        return dist.Laplace(0.0, noise_scale**2 / (alpha * n_obs))
    if estimator == "LogisticRegression_l2":
        _need(estimator, C=C)
        return dist.Normal(0.0, np.sqrt(C))
    if estimator == "LogisticRegression_l1":
        _need(estimator, C=C)
        return dist.Laplace(0.0, float(C))
    if estimator == "MultinomialNB":
        _need(estimator, alpha=alpha, n_categories=n_categories)
        return dist.Dirichlet(jnp.full(int(n_categories), alpha + 1.0))
    raise ValueError(
        f"sklearn_prior: unknown estimator {estimator!r}; use Ridge, Lasso, LogisticRegression_l2, "
        "LogisticRegression_l1 or MultinomialNB"
    )


def _need(estimator, **kw):
    missing = [k for k, v in kw.items() if v is None]
    if missing:
        raise ValueError(f"sklearn_prior({estimator!r}): give {', '.join(missing)}=")
    for k, v in kw.items():
        if not np.all(np.asarray(v) > 0):
            raise ValueError(f"sklearn_prior({estimator!r}): {k} must be > 0, got {v}")
