"""Bigram language model: the MLE gives unseen pairs probability 0, the Dirichlet prior smooths them.

A character-level language model that conditions on the previous character only. The next
character ``x_t`` is Categorical noise around the row of a transition matrix picked by the
previous character ``u_t = x_{t-1}``; training by next-token cross-entropy is its maximum
likelihood:

.. math::

    x_t \\mid u_t \\sim \\mathrm{Categorical}(P_{u_t,\\cdot}),\\qquad
    P_{i\\cdot} \\sim \\mathrm{Dirichlet}(a, \\dots, a),\\qquad
    -\\log p(x \\mid u, P) = -\\sum_{ij} n_{ij}\\log P_{ij},

with ``n_ij`` the number of times character ``j`` follows ``i``. Each row of ``P`` is a
parameter on the simplex. The closed forms, row by row (``n_i = sum_j n_ij``):

* MLE: ``P_ij = n_ij / n_i``, so a pair never seen in training gets probability exactly 0 (on
  the boundary of the simplex, and probmodels says so);
* MAP under ``Dirichlet(a)``: ``(n_ij + a - 1) / (n_i + V (a - 1))``, additive smoothing with
  ``a - 1`` pseudo-counts (``a = 2``: add-one, Laplace's rule of succession);
* posterior predictive of the next character: the posterior mean ``(n_ij + a) / (n_i + V a)``.

The text is ``models/data/river_notes.txt`` (written for the project, public domain), lower-cased
with every run of non-letters turned into one space. The vocabulary is small: the space, the
twelve most frequent English letters in the Linotype order "etaoin shrdlu", and ``#`` for the
other fourteen letters (an unknown-token class, as real vocabularies have); ``V = 14`` and ``P``
has 182 free parameters. The model is trained on the first ``N_TRAIN`` characters and scored on
the rest, where some pairs occur that training never saw: the MLE assigns them probability 0, so
its held-out perplexity ``exp(-mean log p)`` is infinite, while the MAP and the posterior
predictive stay finite (``heldout_perplexities`` computes the three).

Run: ``python models/bigram_language_model.py`` or ``probmodels report models/bigram_language_model.py``.
"""

import os
import re

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from probmodels import noise, observe, param

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "river_notes.txt")
VOCAB = " etaoinshrdlu#"  # space, "etaoin shrdlu", and # for every other letter
V = len(VOCAB)
A = 2.0  # Dirichlet concentration: MAP = add-(A - 1) smoothing
N_TRAIN = 1500  # characters of training text; the rest is held out


def program(u, x=None):
    """``u``: previous-character ids; ``x``: next-character ids (both of shape ``(N,)``)."""
    P = param("P", prior=dist.Dirichlet(jnp.full(V, A)), shape=(V,))  # row i: p(next | previous i)
    return observe("x", noise.Categorical(probs=P[u]), obs=x)


def encode(text: str) -> np.ndarray:
    """Character ids: lower-cased, runs of non-letters -> one space, letters outside VOCAB -> ``#``."""
    text = re.sub(r"[^a-z]+", " ", text.lower()).strip()
    return np.array([VOCAB.find(c) if c in VOCAB else V - 1 for c in text])


def tokens() -> np.ndarray:
    """The whole text as ids, without its title and licence paragraphs."""
    with open(TEXT, encoding="utf-8") as fh:
        body = "\n\n".join(fh.read().split("\n\n")[2:])
    return encode(body)


def data(n: int = N_TRAIN) -> dict:
    """The bigrams (previous, next) of the first ``n + 1`` characters."""
    ids = tokens()[: n + 1]
    return {"u": ids[:-1], "x": ids[1:]}


def heldout() -> dict:
    """The bigrams of the rest of the text (contiguous with, and after, the training part)."""
    ids = tokens()[N_TRAIN:]
    return {"u": ids[:-1], "x": ids[1:]}


def counts(u, x) -> np.ndarray:
    """``n_ij``: how often ``j`` follows ``i``."""
    n = np.zeros((V, V))
    np.add.at(n, (np.asarray(u), np.asarray(x)), 1.0)
    return n


def mle(n) -> np.ndarray:
    """Closed-form MLE ``n_ij / n_i`` (exact zeros for unseen pairs)."""
    return n / n.sum(axis=1, keepdims=True)


def smoothed(n, a: float = A) -> np.ndarray:
    """Closed-form MAP under ``Dirichlet(a)``: ``(n_ij + a - 1) / (n_i + V (a - 1))``."""
    return (n + a - 1.0) / (n.sum(axis=1, keepdims=True) + V * (a - 1.0))


def perplexity(prob) -> float:
    """``exp(-mean log p)`` of per-token probabilities (``inf`` if any is 0)."""
    with np.errstate(divide="ignore"):
        return float(np.exp(-np.mean(np.log(np.asarray(prob)))))


def heldout_perplexities(fits: dict, test: dict | None = None) -> dict:
    """Held-out perplexity per fit: plug-in ``P_hat[u, x]`` for point fits, the posterior
    predictive ``mean_s P_s[u, x]`` (per token) for fits with draws; plus the closed-form MLE
    and posterior predictive."""
    test = heldout() if test is None else test
    u, x = test["u"], test["x"]
    out = {}
    for label, f in fits.items():
        if f.method in ("mle", "map") or f.draws is None:
            out[label] = perplexity(f.estimate["P"][u, x])
        else:
            draws = np.asarray(f.draws["P"]).reshape(-1, V, V)
            out[label] = perplexity(draws[:, u, x].mean(axis=0))
    n = counts(**data())
    out["exact MLE n_ij / n_i"] = perplexity(mle(n)[u, x])
    out["exact posterior predictive"] = perplexity(((n + A) / (n.sum(axis=1, keepdims=True) + V * A))[u, x])
    return out


if __name__ == "__main__":
    from probmodels.report import report

    rep = report(__file__, out="report-bigram_language_model")
    test = heldout()
    unseen = int(np.sum(counts(**data())[test["u"], test["x"]] == 0))
    print(f"\nheld-out text: {len(test['x'])} characters; {unseen} complete a pair never seen in training")
    print("perplexity (the fitted MLE stops short of P_ij = 0, at ~1e-8, so its value is finite):")
    for label, ppl in heldout_perplexities(rep.fits, test).items():
        print(f"  {label:>26}: {ppl:.4g}")
