"""Wall time of ``Fit.predict`` at the size issue 20 names: 4000 predictive draws for 10,000 new
rows of a GLM (logistic and Gaussian), warm (the program compiled by an earlier call of the same
shapes), for a point fit (plug-in) and a posterior.

Usage::

    python benchmarks/predict_speed.py [--repeats 5] [--features 5]

Prints the first call (tracing and compiling, or loading from the persistent cache) and the
median of the warm calls, per fit and observation model, and the same draws written by hand in
JAX (one jitted function: the linear predictor, the inverse link and the noise) for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import probmodels
from probmodels import noise, observe, param

__all__ = ["main"]


def logistic(X, y=None):
    w = param("w", prior=dist.Normal(0.0, 2.0).expand([X.shape[1]]).to_event(1))
    b = param("b", prior=dist.Normal(0.0, 2.0))
    return observe("y", noise.Bernoulli(logits=X @ w + b), obs=y)


def gaussian(X, y=None):
    w = param("w", prior=dist.Normal(0.0, 2.0).expand([X.shape[1]]).to_event(1))
    b = param("b", prior=dist.Normal(0.0, 2.0))
    s = param("s", prior=dist.HalfNormal(2.0))
    return observe("y", X @ w + b + noise.Gaussian(s), obs=y)


def _timed(f, repeats):
    t = time.perf_counter()
    f()
    first = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        warm.append(time.perf_counter() - t)
    return first, statistics.median(warm)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--features", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n, d, rows, draws = 500, args.features, 10_000, 4000
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(d)
    new = {"X": rng.normal(size=(rows, d))}
    data = {
        "logistic": (logistic, {"X": X, "y": (rng.uniform(size=n) < 1 / (1 + np.exp(-X @ w))).astype(float)}),
        "gaussian": (gaussian, {"X": X, "y": X @ w + 0.5 * rng.normal(size=n)}),
    }
    for name, (program, d_) in data.items():
        for method in ("mle", "nuts"):
            fit = probmodels.fit(program, d_, method, seed=1, **({"chains": 4, "warmup": 500, "draws": 1000} if method == "nuts" else {}))
            kw = {"draws": draws} if method == "mle" else {}
            first, warm = _timed(lambda: fit.predict(new, seed=3, **kw), args.repeats)
            p = fit.predict(new, seed=3, **kw)
            print(f"{name:8s} {method:4s}: draws {p.draws.shape} {p.draws.dtype}; first {first:5.2f} s, warm {warm:5.3f} s", flush=True)
        # by hand: the posterior's draws, the linear predictor, the inverse link and the noise
        post = fit.draws
        W = jnp.asarray(np.asarray(post["w"]).reshape(-1, d))
        B = jnp.asarray(np.asarray(post["b"]).reshape(-1))
        S = jnp.asarray(np.asarray(post["s"]).reshape(-1)) if "s" in post else None

        @jax.jit
        def by_hand(key, Xn):
            eta = W @ Xn.T + B[:, None]
            u = jax.random.uniform(key, eta.shape, dtype=eta.dtype)
            if S is None:
                p = jax.nn.sigmoid(eta)
                return (u < p).astype(eta.dtype), p
            return eta + S[:, None] * jax.random.normal(key, eta.shape, dtype=eta.dtype), eta

        key = jax.random.key(3, impl="rbg")
        first, warm = _timed(lambda: jax.block_until_ready(by_hand(key, jnp.asarray(new["X"]))), args.repeats)
        print(f"{name:8s} by hand (posterior): warm {warm:5.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
