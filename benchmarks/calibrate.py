"""What batching buys simulation-based calibration (issue 6).

100 simulated data sets of a small Gaussian regression (3 parameters, 20 observations), NUTS with
2 chains x (300 warm-up + 300 draws): ``probmodels.calibrate`` (vmapped batches of 25 sharing
the cores) against 100 separate ``probmodels.fit`` calls (each already compiled once) and
against 100 raw numpyro ``MCMC(NUTS)`` runs, which re-trace their sampler on every run.
Run: ``python benchmarks/calibrate.py`` (times in seconds, warm: compile excluded where noted).
"""

import time

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

import probmodels
from probmodels import noise, observe, param
from probmodels.calibrate import _simulate

U = np.linspace(-1, 1, 20)
KW = dict(chains=2, warmup=300, draws=300)


def line(u, x=None):
    a = param("a", dist.Normal(0, 1))
    b = param("b", dist.Normal(0, 1))
    s = param("s", dist.HalfNormal(1.0))
    return observe("x", a + b * u + noise.Gaussian(s), obs=x)


def raw(u, x=None):
    a = numpyro.sample("a", dist.Normal(0, 1))
    b = numpyro.sample("b", dist.Normal(0, 1))
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    numpyro.sample("x", dist.Normal(a + b * u, s), obs=x)


def main(n=100):
    sims = _simulate(line, {"u": U}, "x", n, 0)
    probmodels.calibrate(line, {"u": U}, "nuts", n_sims=n, **KW)  # compile
    t = time.perf_counter()
    probmodels.calibrate(line, {"u": U}, "nuts", n_sims=n, **KW)
    batched = time.perf_counter() - t

    probmodels.fit(line, {"u": U, "x": sims["x"][0]}, "nuts", **KW)  # compile
    t = time.perf_counter()
    for i in range(n):
        probmodels.fit(line, {"u": U, "x": sims["x"][i]}, "nuts", seed=i, **KW)
    separate = time.perf_counter() - t

    k = 10  # raw numpyro: 10 runs, scaled to n
    t = time.perf_counter()
    for i in range(k):
        m = MCMC(NUTS(raw), num_warmup=300, num_samples=300, num_chains=2, chain_method="vectorized", progress_bar=False)
        m.run(jax.random.PRNGKey(i), u=U, x=sims["x"][i])
        m.get_samples()["a"].block_until_ready()
    numpyro_runs = (time.perf_counter() - t) * n / k

    print(f"| {n} NUTS fits | seconds | ratio to calibrate |")
    print("|---|---|---|")
    print(f"| probmodels.calibrate (batched, warm) | {batched:.1f} | 1.0 |")
    print(f"| {n} separate probmodels.fit calls (warm) | {separate:.1f} | {separate / batched:.1f} |")
    print(f"| {n} raw numpyro MCMC runs (extrapolated from {k}) | {numpyro_runs:.0f} | {numpyro_runs / batched:.0f} |")


if __name__ == "__main__":
    main()
