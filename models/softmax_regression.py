"""Softmax regression: softmax cross-entropy is the Categorical likelihood, with a reference class.

A label ``x`` in {0, 1, 2} from two inputs ``u``. The prediction is a vector of K = 3 logits,
and the noise model is Categorical with class probabilities ``softmax(x_hat)``; its negative
log-likelihood is, exactly, the softmax cross-entropy

    -log p(x | x_hat) = logsumexp_k(x_hat_k) - x_hat_x .

Adding the same number to every logit leaves the softmax unchanged, so K free logits are not
identified: the likelihood is flat along that direction and the MLE is not unique. Class 0 is
the reference class, its logit fixed at 0; the other two are ``intercept[k] + u @ w[:, k]``, the
log-odds of class k + 1 against class 0 (statsmodels' MNLogit makes the same choice). Normal(0, 2)
priors on every coefficient (an L2 penalty of ``1/8`` per squared coefficient) pull the MAP a
little towards equal probabilities; the posterior adds the uncertainty of every log-odds.

Run: ``python models/softmax_regression.py`` or ``probmodels report models/softmax_regression.py``.
"""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

K = 3  # classes; class 0 is the reference
TRUTH = {
    "intercept": np.array([0.5, -0.5]),  # log-odds of classes 1 and 2 against class 0 at u = 0
    "w": np.array([[1.5, -1.0], [0.5, 1.5]]),  # w[j, k]: input j's effect on class k + 1
}


def program(u, x=None):
    intercept = param("intercept", prior=dist.Normal(0.0, 2.0), shape=(K - 1,))
    w = param("w", prior=dist.Normal(0.0, 2.0), shape=(u.shape[1], K - 1))
    free = intercept + u @ w  # (N, K - 1) log-odds against class 0
    x_hat = jnp.concatenate([jnp.zeros((u.shape[0], 1)), free], axis=1)  # (N, K) logits
    return observe("x", noise.Categorical(logits=x_hat), obs=x)


def data(n: int = 300, seed: int = 2) -> dict:
    """``n`` draws from the program at ``TRUTH``, inputs standard normal."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, TRUTH["w"].shape[0]))
    logits = np.column_stack([np.zeros(n), TRUTH["intercept"] + u @ TRUTH["w"]])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    x = (rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)  # inverse CDF, 0..K-1
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-softmax_regression")
