"""From a loss's name to its noise model, and the losses that are no likelihood."""

from __future__ import annotations

from ._base import NoiseModel
from .additive import Cauchy, Gaussian, Huber, Laplace, Logistic, StudentT
from .link import Bernoulli, Binomial, Categorical, Gamma, NegativeBinomial, Poisson

__all__ = ["for_loss", "LOSSES"]


_LIKELIHOOD_LOSSES = {
    "mse": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "squared_error": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "l2": lambda **kw: Gaussian(**{"scale": 1.0, **kw}),
    "mae": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "absolute_error": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "l1": lambda **kw: Laplace(**{"scale": 1.0, **kw}),
    "huber": lambda **kw: Huber(**kw),
    "log_cosh": lambda **kw: Logistic(**{"scale": 0.5, **kw}),
    "student_t": lambda **kw: StudentT(**kw),
    "cauchy": lambda **kw: Cauchy(**kw),
    "bce": lambda **kw: Bernoulli(**kw),
    "binary_cross_entropy": lambda **kw: Bernoulli(**kw),
    "log_loss": lambda **kw: Bernoulli(**kw),
    "binomial_cross_entropy": lambda **kw: Binomial(**kw),
    "cross_entropy": lambda **kw: Categorical(**kw),
    "softmax_cross_entropy": lambda **kw: Categorical(**kw),
    "poisson": lambda **kw: Poisson(**kw),
    "negative_binomial": lambda **kw: NegativeBinomial(**kw),
    "gamma": lambda **kw: Gamma(**kw),
    "gamma_deviance": lambda **kw: Gamma(**kw),
}

_NOT_LIKELIHOODS = {
    "hinge": "exp(-hinge(x, f)) cannot be normalised over x in {-1, +1} for every f: both labels "
    "get loss 0 once |f| >= 1, so it defines no conditional distribution p(x | f) (an SVM "
    "estimates a decision boundary, not probabilities)",
    "squared_hinge": "like the hinge loss, it is 0 for both labels beyond the margin, so "
    "exp(-loss) normalises to no distribution over labels",
    "margin": "a margin loss depends on x only through a margin that can be met by several labels "
    "at zero loss, so exp(-loss) is no normalised distribution over x",
    "contrastive": "a pairwise contrastive (margin) loss scores distances between pairs of "
    "embeddings, not the probability of an observation; there is no p(x | x_hat) whose negative log "
    "it is (InfoNCE is the exception: write it as Categorical noise over the batch)",
    "triplet": "the triplet loss max(0, d(a, p) - d(a, n) + m) compares distances with a margin; "
    "it is not the negative log of any normalised density of an observation",
    "gan": "a GAN discriminator/generator loss is a minimax objective between two networks, not "
    "the negative log-likelihood of the data under one model",
    "discriminator": "a GAN discriminator/generator loss is a minimax objective between two "
    "networks, not the negative log-likelihood of the data under one model",
    "score_matching": "score matching fits the gradient of the log-density and never evaluates "
    "the normalised likelihood; it is a consistent estimator, but not a negative log-likelihood",
    "focal": "the focal loss -(1 - p)^gamma log p reweights the likelihood by the model's own "
    "confidence; exp(-loss) is not a normalised distribution over labels",
    "dice": "the Dice loss is a set-overlap ratio over a whole image, not a sum of per-observation "
    "negative log-probabilities",
}

LOSSES: tuple[str, ...] = tuple(sorted(_LIKELIHOOD_LOSSES))


def for_loss(name: str, **kw) -> NoiseModel:
    """The noise model whose negative log-likelihood is the loss ``name``.

    Parameters
    ----------
    name : str
        ``"mse"``, ``"mae"``, ``"huber"``, ``"log_cosh"``, ``"student_t"``, ``"cauchy"``,
        ``"bce"``, ``"binomial_cross_entropy"``, ``"cross_entropy"``, ``"poisson"``,
        ``"negative_binomial"``, ``"gamma"`` (and aliases; see ``LOSSES``).
    **kw
        Passed to the noise model (``scale=``, ``delta=``, ``df=``, ...). ``"mse"`` is a
        unit-scale Gaussian unless ``scale`` is given.

    Returns
    -------
    NoiseModel

    Raises
    ------
    ValueError
        For a loss that is not a negative log-likelihood (hinge, margin, contrastive, triplet,
        GAN, score matching, focal, Dice), with the reason, and for an unknown name.

    Examples
    --------
    >>> from probmodels import noise
    >>> noise.for_loss("mse")
    noise.Gaussian(scale=1)
    """
    key = name.lower().replace("-", "_").replace(" ", "_")
    if key in _NOT_LIKELIHOODS:
        raise ValueError(
            f"noise.for_loss({name!r}): the {name} loss is not a negative log-likelihood: "
            f"{_NOT_LIKELIHOODS[key]}"
        )
    if key not in _LIKELIHOOD_LOSSES:
        raise ValueError(
            f"noise.for_loss({name!r}): unknown loss; known likelihood losses: {', '.join(LOSSES)}"
        )
    return _LIKELIHOOD_LOSSES[key](**kw)
