"""Logistic regression: binary cross-entropy is the Bernoulli likelihood, L2 the Normal prior.

A binary outcome ``x`` in {0, 1} from three inputs ``u``: the prediction is a logit,
``x_hat = intercept + u @ w``, and the noise model is Bernoulli with ``P(x = 1) = sigmoid(x_hat)``.
Its negative log-likelihood is, exactly, the binary cross-entropy with logits,

    -log p(x | x_hat) = log(1 + exp(x_hat)) - x * x_hat = BCE(x, sigmoid(x_hat)),

so minimising the summed BCE is maximum likelihood (MLE: statsmodels' Logit). A Normal(0, tau)
prior on the weights adds ``||w||^2 / (2 tau^2)``, the L2 penalty: scikit-learn's
``LogisticRegression(C=C)`` minimises ``||w||^2 / 2 + C * sum BCE``, which is the MAP under
Normal(0, sqrt(C)) on ``w`` and a flat (unpenalised) intercept, the prior
``probmodels.priors.sklearn_prior("LogisticRegression_l2", C=C)`` returns. The MAP is pulled
towards 0 by the prior; the posterior (NUTS) averages over every weight the data allow instead of
committing to one.

Run: ``python models/logistic_regression.py`` or ``probmodels report models/logistic_regression.py``.
"""

import numpy as np

from probmodels import noise, observe, param
from probmodels.priors import sklearn_prior

C = 1.0  # scikit-learn's inverse regularisation strength: the prior on w is Normal(0, sqrt(C))
TRUTH = {"intercept": -0.5, "w": np.array([1.5, -1.0, 0.5])}


def program(u, x=None):
    intercept = param("intercept")  # flat: scikit-learn does not penalise the intercept
    w = param("w", prior=sklearn_prior("LogisticRegression_l2", C=C), shape=(u.shape[1],))  # L2
    x_hat = intercept + u @ w  # logits
    return observe("x", noise.Bernoulli(logits=x_hat), obs=x)


def data(n: int = 200, seed: int = 1) -> dict:
    """``n`` draws from the program at ``TRUTH``, inputs standard normal."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, TRUTH["w"].size))
    p = 1.0 / (1.0 + np.exp(-(TRUTH["intercept"] + u @ TRUTH["w"])))
    x = (rng.uniform(size=n) < p).astype(int)
    return {"u": u, "x": x}


if __name__ == "__main__":
    from probmodels.report import report

    report(__file__, out="report-logistic_regression")
