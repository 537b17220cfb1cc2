"""Core performance checks (issue 2): NUTS through ``fit`` vs raw numpyro, repeat fits vs
statsmodels, and what the first fit costs in compilation, with and without the persistent cache.

Run: ``python benchmarks/core.py`` (needs the ``dev`` extra for statsmodels). Each measurement of
a first fit runs in a fresh Python process so that nothing is cached in memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """
import time, numpy as np
N, D = __N__, __D__
rng = np.random.default_rng(0)
u = rng.normal(size=(N, D)); w_true = rng.normal(size=D) * 0.5
x = 1.0 + u @ w_true + rng.normal(size=N)
"""

PROBMODELS_NUTS = SETUP + """
import numpyro.distributions as dist
import probmodels
from probmodels import param, observe, noise
def linear(u, x=None):
    b = param("b", dist.Normal(0, 10)); w = param("w", dist.Normal(0, 10), shape=(u.shape[1],))
    s = param("s", dist.HalfNormal(5))
    return observe("x", b + u @ w + noise.Gaussian(s), obs=x)
out = {}
for i in range(3):
    t = time.perf_counter()
    f = probmodels.fit(linear, {"u": u, "x": x + 0.01 * i}, "nuts", chains=4, warmup=1000, draws=1000)
    out[f"run{i}"] = time.perf_counter() - t
    out[f"compile{i}"] = f.diagnostics["compile_s"]
out["ess"] = f.diagnostics["min_ess_bulk"]
print("RESULT", json.dumps(out))
"""

RAW_NUTS = SETUP + """
import jax
jax.config.update("jax_enable_x64", True)
import numpyro, numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
def linear(u, x=None):
    b = numpyro.sample("b", dist.Normal(0, 10))
    w = numpyro.sample("w", dist.Normal(0, 10).expand([u.shape[1]]).to_event(1))
    s = numpyro.sample("s", dist.HalfNormal(5))
    numpyro.sample("x", dist.Normal(b + u @ w, s), obs=x)
out = {}
for i in range(3):
    t = time.perf_counter()
    m = MCMC(NUTS(linear), num_warmup=1000, num_samples=1000, num_chains=4, chain_method="vectorized", progress_bar=False)
    m.run(jax.random.PRNGKey(i), u=u, x=x + 0.01 * i)
    m.get_samples()["w"].block_until_ready()
    out[f"run{i}"] = time.perf_counter() - t
print("RESULT", json.dumps(out))
"""

LOGIT = """
import time, numpy as np
import probmodels
from probmodels import param, observe, noise
import statsmodels.api as sm
def logistic(u, x=None):
    b = param("b"); w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)
N, D = 100_000, 20
def make(seed):
    r = np.random.default_rng(seed); u = r.normal(size=(N, D)); w = r.normal(size=D) * 0.3
    return u, (r.uniform(size=N) < 1 / (1 + np.exp(-(0.2 + u @ w)))).astype(float)
out = {}
u, x = make(0)
t = time.perf_counter(); f = probmodels.fit(logistic, {"u": u, "x": x}, "mle")
out["first"] = time.perf_counter() - t; out["first_compile"] = f.diagnostics["compile_s"]
pm, sm_t = [], []
for seed in range(1, 8):
    u, x = make(seed)
    t = time.perf_counter(); f = probmodels.fit(logistic, {"u": u, "x": x}, "mle"); pm.append(time.perf_counter() - t)
    assert f.diagnostics["compile_s"] == 0.0
    X = sm.add_constant(u)
    t = time.perf_counter(); r = sm.Logit(x, X).fit(disp=0); sm_t.append(time.perf_counter() - t)
    out["max_abs_diff"] = float(np.max(np.abs(r.params - np.r_[f.estimate["b"], f.estimate["w"]])))
out["probmodels_repeat_median"] = float(np.median(pm)); out["statsmodels_median"] = float(np.median(sm_t))
print("RESULT", json.dumps(out))
"""


def run(code: str, cache: str | None) -> dict:
    env = dict(os.environ)
    env["PROBMODELS_CACHE_DIR"] = cache or "off"
    src = "import json\n" + textwrap.dedent(code)
    res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(line[-1][len("RESULT ") :])


def main() -> None:
    n, d = 1000, 20
    print(f"## NUTS, Gaussian linear regression (N = {n}, d = {d}), 4 chains x (1000 warm-up + 1000 draws), vectorized\n")
    raw = run(RAW_NUTS.replace("__N__", str(n)).replace("__D__", str(d)), None)
    pm = run(PROBMODELS_NUTS.replace("__N__", str(n)).replace("__D__", str(d)), None)
    print("| | first run (compile included) | second run, new data | third run |")
    print("|---|---|---|---|")
    print(f"| raw numpyro `MCMC(NUTS)` | {raw['run0']:.2f} s | {raw['run1']:.2f} s | {raw['run2']:.2f} s |")
    print(f"| `probmodels.fit(..., 'nuts')` | {pm['run0']:.2f} s (compile {pm['compile0']:.2f} s) | {pm['run1']:.2f} s (compile {pm['compile1']:.2f} s) | {pm['run2']:.2f} s |")
    print(f"\nratio fit / raw numpyro: first {pm['run0'] / raw['run0']:.2f}, second {pm['run1'] / raw['run1']:.2f}; min bulk ESS {pm['ess']:.0f}\n")

    with tempfile.TemporaryDirectory() as cache:
        cold = run(PROBMODELS_NUTS.replace("__N__", str(n)).replace("__D__", str(d)), cache)
        warm = run(PROBMODELS_NUTS.replace("__N__", str(n)).replace("__D__", str(d)), cache)
    print("## Persistent compilation cache (NUTS as above, first fit of a fresh process)\n")
    print(f"- empty cache: {cold['run0']:.2f} s (compile {cold['compile0']:.2f} s)")
    print(f"- filled cache: {warm['run0']:.2f} s (compile {warm['compile0']:.2f} s)\n")

    lg = run(LOGIT, None)
    print("## MLE, logistic regression N = 100,000, d = 20\n")
    print(f"- first fit: {lg['first']:.2f} s (compile {lg['first_compile']:.2f} s)")
    print(f"- repeat fit on new data of the same shapes (median of 7): {lg['probmodels_repeat_median']:.3f} s, nothing compiled")
    print(f"- statsmodels `Logit.fit()` (median of 7): {lg['statsmodels_median']:.3f} s; ratio {lg['probmodels_repeat_median'] / lg['statsmodels_median']:.2f}")
    print(f"- largest difference of the estimates from statsmodels: {lg['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
