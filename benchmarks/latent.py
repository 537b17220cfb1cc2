"""Random-intercept logistic GLMM (issue 21): the marginal (Laplace) MLE's wall time against
statsmodels' ``BinomialBayesMixedGLM.fit_vb`` and a NUTS fit of the same program.

1,000 groups, 50,000 rows, ``x ~ Bernoulli(logit^-1(b0 + b1 u + a_g))``, ``a_g ~ N(0, tau)``.
Each probmodels fit runs in a fresh Python process with the persistent compilation cache off, so
its wall time includes every compile (a first fit); the MLE is then repeated in the same
process (warm: the compiled programs reused for new data of the same shapes).

Run: ``python benchmarks/latent.py [--nuts-draws 500]`` (needs the ``dev`` extra for
statsmodels). Prints one JSON line per measurement and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

__all__ = ["main"]

SETUP = """
import time, json, numpy as np
G, PER = 1000, 50
rng = np.random.default_rng(0)
group = np.repeat(np.arange(G), PER)
u = rng.normal(size=G * PER)
a = rng.normal(0.0, 0.8, G)
x = rng.binomial(1, 1.0 / (1.0 + np.exp(-(-0.3 + 1.0 * u + a[group])))).astype(float)
"""

PROGRAM = """
import numpyro.distributions as dist
import probmodels
from probmodels import latent, noise, observe, param
def glmm(group, n_groups, u, x=None):
    b = param("b", dist.Normal(0.0, 10.0), shape=(2,))
    tau = param("tau", dist.HalfNormal(2.0))
    a = latent("a", dist.Normal(0.0, tau), shape=(n_groups,))
    return observe("x", noise.Bernoulli(logits=b[0] + b[1] * u + a[group]), obs=x)
data = dict(group=group, n_groups=G, u=u, x=x)
"""

MLE = SETUP + PROGRAM + """
t = time.perf_counter(); f = probmodels.fit(glmm, data, "mle"); wall = time.perf_counter() - t
t = time.perf_counter(); g = probmodels.fit(glmm, {**data, "x": x[::-1].copy()}, "mle"); warm = time.perf_counter() - t
print(json.dumps(dict(name="probmodels mle (marginal Laplace)", wall_s=wall, compile_s=f.diagnostics["compile_s"],
    warm_s=warm, converged=f.diagnostics["converged"], b=f.estimate["b"].tolist(), tau=float(f.estimate["tau"]),
    se_b=f.stderr["b"].tolist(), se_tau=float(f.stderr["tau"]), structure=f.diagnostics["latent_hessian"])))
"""

NUTS = SETUP + PROGRAM + """
t = time.perf_counter()
f = probmodels.fit(glmm, data, "nuts", chains=__CHAINS__, warmup=__DRAWS__, draws=__DRAWS__)
wall = time.perf_counter() - t
print(json.dumps(dict(name="probmodels nuts (__CHAINS__ chains x __DRAWS__ + __DRAWS__)", wall_s=wall,
    compile_s=f.diagnostics["compile_s"], b=f.estimate["b"].tolist(), tau=float(f.estimate["tau"]),
    divergences=f.diagnostics["divergences"], max_rhat=f.diagnostics["max_rhat"])))
"""

STATSMODELS = SETUP + """
import scipy.sparse as sp
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
t = time.perf_counter()
exog = np.column_stack([np.ones_like(u), u])
exog_vc = sp.csr_matrix((np.ones(G * PER), (np.arange(G * PER), group)), shape=(G * PER, G))
model = BinomialBayesMixedGLM(x, exog, exog_vc, np.zeros(G, dtype=int), vcp_p=2.0, fe_p=10.0)
r = model.fit_vb()
wall = time.perf_counter() - t
print(json.dumps(dict(name="statsmodels BinomialBayesMixedGLM.fit_vb", wall_s=wall, b=r.fe_mean.tolist(),
    tau=float(np.exp(r.vcp_mean[0])), se_b=r.fe_sd.tolist())))
"""


def _run(code: str) -> dict:
    env = dict(os.environ, PROBMODELS_CACHE_DIR="off")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    """Run the three fits, each in a fresh process; print JSON lines and a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuts-chains", type=int, default=2)
    ap.add_argument("--nuts-draws", type=int, default=500)
    ap.add_argument("--skip-nuts", action="store_true")
    ap.add_argument("--skip-statsmodels", action="store_true")
    args = ap.parse_args(argv)
    rows = [_run(MLE)] + ([] if args.skip_statsmodels else [_run(STATSMODELS)])
    if not args.skip_nuts:
        code = NUTS.replace("__CHAINS__", str(args.nuts_chains)).replace("__DRAWS__", str(args.nuts_draws))
        rows.append(_run(code))
    for r in rows:
        print(json.dumps(r))
    print(f"\n{'fit':<52} {'wall s':>8} {'compile s':>10}  b, tau")
    for r in rows:
        comp = r.get("compile_s")
        comp = f"{comp:10.1f}" if comp is not None else f"{'':>10}"
        print(f"{r['name']:<52} {r['wall_s']:8.1f} {comp}  {[round(v, 3) for v in r['b']]}, {r['tau']:.3f}")


if __name__ == "__main__":
    main()
