"""Contrastive learning: InfoNCE is the cross-entropy of Categorical noise over the batch.

Each example comes as two views, ``a_i`` and ``b_i`` (two noisy measurements of one hidden
``z_i``). In a batch of ``B`` pairs the model scores every ``a_i`` against every ``b_j``,

.. math::

    s_{ij} = \\langle f(a_i), g(b_j)\\rangle / T,

and the InfoNCE loss asks each ``a_i`` to pick out its own partner among the ``B`` candidates:

.. math::

    \\mathcal L = -\\sum_i \\log\\frac{e^{s_{ii}}}{\\sum_j e^{s_{ij}}}.

That is, exactly, the negative log-likelihood of Categorical noise over the batch: the
observation is the index of the partner, ``x_i = i``, and the logits are row ``i`` of the score
matrix, ``observe("x", noise.Categorical(logits=scores), obs=arange(B))``. So InfoNCE training is
an MLE, weight decay on ``f`` is a Normal prior (MAP), and the posterior over ``f`` is one NUTS run
away. (It is a *conditional* likelihood: of which ``b`` goes with which ``a``, given the batch, not
of the views themselves.)

``f(a) = a @ W`` is a learned linear map and ``g(b) = b`` the identity: a second learned map
``g(b) = b @ G`` would only replace ``W`` by ``W @ G.T``, which is all the scores can see, and
leave ``W`` and ``G`` unidentified (probmodels names them in its singular-information warning).
The temperature ``T`` is fixed for the same reason: with ``W`` learned it only rescales ``W``.

The data: a hidden direction ``z_i`` on the unit sphere; view ``a_i`` is ``z_i`` and view ``b_i``
is ``z_i`` turned by a fixed rotation ``R``, each with measurement noise and scaled back to unit
length (like the L2-normalised embeddings of SimCLR or CLIP). The score that picks out partners is
then ``a^T R^T b``, so the MLE of ``W`` is close to a multiple of ``R^T``: the direction of ``W`` is
the rotation between the views, its size how sharply partners are told apart (a concentration,
as in a von Mises-Fisher density). The ``Normal(0, 5)`` prior shrinks that size, as weight decay
does; at ``Normal(0, 1)`` it shrinks it to a third of the MLE's, and the report's held-out
comparison shows the price (an under-confident, too "hot" softmax).

There are ``N_BATCHES`` batches of ``B`` pairs; each batch is its own softmax (as in training with
minibatches), so ``x`` has shape ``(N_BATCHES, B)`` and the report's held-out comparison holds out
whole batches. With enough pairs per parameter, and views noisy enough that no ``W`` ranks every
partner first, the MLE exists; when some ``W`` does rank every partner first, the loss falls towards
0 as that ``W`` grows, like logistic regression under perfect separation, and probmodels reports
that the MLE does not exist (the prior keeps the MAP finite).

Run: ``python models/contrastive.py`` or ``probmodels report models/contrastive.py``.
"""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

N_BATCHES, B = 12, 16
D = 3  # views and hidden directions live on the unit sphere in R^3
T = 0.5  # temperature
VIEW_NOISE = 0.15  # sd of each view's measurement noise, before it is scaled back to length 1


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


R = _rotation(2, np.pi / 3) @ _rotation(0, np.pi / 6)  # view b = R z (+ noise)


def program(a, b, x=None):
    """``a``, ``b``: the two views, ``(batches, B, D)``; ``x[n, i]``: the position of ``a[n, i]``'s
    partner in batch ``n`` (``i``: the views are stored aligned)."""
    W = param("W", prior=dist.Normal(0.0, 5.0), shape=(a.shape[-1], b.shape[-1]))  # weight decay
    f = a @ W  # f(a)
    g = b  # g(b)
    scores = jnp.einsum("nik,njk->nij", f, g) / T  # s[n, i, j] = <f(a_i), g(b_j)> / T
    return observe("x", noise.Categorical(logits=scores), obs=x)


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def data(n_batches: int = N_BATCHES, seed: int = 0) -> dict:
    """``n_batches`` batches of ``B`` aligned pairs of views (``x = arange(B)`` in every batch)."""
    rng = np.random.default_rng(seed)
    z = _unit(rng.normal(size=(n_batches, B, D)))
    a = _unit(z + VIEW_NOISE * rng.normal(size=z.shape))
    b = _unit(z @ R.T + VIEW_NOISE * rng.normal(size=z.shape))
    return {"a": a, "b": b, "x": np.tile(np.arange(B), (n_batches, 1))}


def infonce(W, a, b) -> float:
    """The InfoNCE loss summed over every batch, written with numpy (a reference)."""
    from scipy.special import logsumexp

    s = np.einsum("nik,kl,njl->nij", a, np.asarray(W), b) / T
    return float(np.sum(logsumexp(s, axis=-1) - np.einsum("nii->ni", s)))


def accuracy(W, a, b) -> float:
    """Share of ``a_i`` whose highest-scoring candidate is their own partner (chance: ``1 / B``)."""
    s = np.einsum("nik,kl,njl->nij", a, np.asarray(W), b)
    return float(np.mean(np.argmax(s, axis=-1) == np.arange(s.shape[-1])))


def alignment(W) -> float:
    """Cosine similarity of ``W`` and ``R^T`` (Frobenius): 1 when ``W`` is a multiple of ``R^T``."""
    W = np.asarray(W)
    return float(np.sum(W * R.T) / (np.linalg.norm(W) * np.linalg.norm(R)))


if __name__ == "__main__":
    from probmodels.report import report

    rep = report(__file__, out="report-contrastive")
    d = data()
    for label, f in rep.fits.items():
        W = f.estimate["W"]
        print(
            f"{label:>8}: training accuracy {accuracy(W, d['a'], d['b']):.2f} (chance {1 / B:.2f}), "
            f"|W| = {np.linalg.norm(W):.1f}, cosine(W, R^T) = {alignment(W):.3f}"
        )
