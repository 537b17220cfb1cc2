"""Pathfinder: probmodels' ``fit(..., "pathfinder")`` against probmodels' VI and blackjax's
multi-path Pathfinder, in wall time and accuracy against a long NUTS run.

Each cell is one fresh Python process with an empty persistent cache: *first* is the first fit
(compile included), *warm* a second fit of the same program with another seed (nothing compiles).
Accuracy: the largest ``|mean - NUTS mean| / NUTS sd`` and ``|sd / NUTS sd - 1|`` over every
scalar parameter (the natural space), NUTS being 4 chains x (1000 warm-up + ``ref_draws``) draws.
blackjax runs on the same unconstrained log density (probmodels' objective), 4 paths x
``draws`` / 4 draws (its ``num_samples``, also the ELBO draws at each iterate), its default L-BFGS
settings (``maxiter=30``), compiled with probmodels' XLA options, its PSIS weights (each draw weighted by its own path's density)
and importance resampling. pymc-extras' Pathfinder is not measured: PyMC is not installed in
this environment.
"""

from __future__ import annotations

import time

import numpy as np

from frameworks import TITLES, data_for, probmodels_programs
from harness import CFG

MODELS = ("linear", "logistic", "poisson", "schools")
METHODS = ("pathfinder", "vi", "blackjax")
LABELS = dict(pathfinder="probmodels `pathfinder`", vi="probmodels `vi` (mean-field)", blackjax="blackjax `multi_approximate`")
REF_DRAWS = dict(full=5000, quick=1000)


def _flat(d: dict, names) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(d[k])) for k in names])


def w_pathfinder_ref(job):
    """The long NUTS run a model's approximations are measured against: flat means and sds."""
    import probmodels

    model = job["model"]
    prog, data = probmodels_programs()[model], data_for(model)
    draws = REF_DRAWS["quick" if job.get("quick") else "full"]
    f = probmodels.fit(prog, data, "nuts", chains=4, warmup=1000, draws=draws, target_accept=0.95, seed=0)
    return dict(mean=f.flat(f.estimate).tolist(), sd=f.flat(f.stderr).tolist(), labels=f.labels(),
                max_rhat=f.diagnostics["max_rhat"], min_ess_bulk=f.diagnostics["min_ess_bulk"],
                divergences=f.diagnostics["divergences"]), None


def _blackjax_fit(prog, data, seed, n_draws, paths=4):
    import blackjax.vi.multipathfinder as mpf
    import jax

    from probmodels._config import jit
    from probmodels.solvers import Objective

    obj = Objective(prog, data)
    log_p = lambda z: obj.fns["log_joint"](z, obj.arrays, priors=True, jacobian=True)  # noqa: E731

    # compiled with probmodels' XLA options, as probmodels' own programs are (with XLA's defaults
    # this program fails at run time here: "YNNPACK operation failed", jaxlib 0.10.2 on CPU)
    @jit
    def run(key):
        k_init, k_fit, k_res = jax.random.split(key, 3)
        starts = obj.z0[None] + jax.random.uniform(k_init, (paths, obj.dim), minval=-2.0, maxval=2.0)
        # blackjax's num_samples is both the ELBO draws at every L-BFGS iterate and each path's
        # draws: n_draws / paths of them, with its default L-BFGS settings (maxiter=30)
        state, _ = mpf.multi_approximate(k_fit, log_p, starts, n_draws // paths)
        lw, k = mpf.psis_weights(state)
        idx = jax.random.choice(k_res, lw.shape[0], (n_draws,), p=jax.numpy.exp(lw))
        return state.samples.reshape(-1, obj.dim)[idx], k

    zs, k = run(jax.random.PRNGKey(seed))
    nat = obj.natural_draws(np.asarray(zs))
    names = [s["name"] for s in obj.sites]
    d = np.concatenate([np.asarray(nat[n]).reshape(n_draws, -1) for n in names], axis=1)
    return d.mean(0), d.std(0, ddof=1), float(k), []


def w_pathfinder_fit(job):
    """One method on one model: the first fit and a warm one, their estimates, k-hat, warnings."""
    t0 = time.perf_counter()
    import probmodels

    import_s = time.perf_counter() - t0
    model, method = job["model"], job["method"]
    prog, data = probmodels_programs()[model], data_for(model)
    out = dict(import_s=import_s)
    for key, seed in (("first", 0), ("warm", 1)):
        t = time.perf_counter()
        if method == "blackjax":
            mean, sd, k, warnings = _blackjax_fit(prog, data, seed, CFG["pathfinder_draws"])
        else:
            opts = dict(draws=CFG["pathfinder_draws"]) if method == "pathfinder" else {}
            f = probmodels.fit(prog, data, method, seed=seed, **opts)
            mean, sd, k = f.flat(f.estimate), f.flat(f.stderr), f.diagnostics["pareto_k"]
            warnings = [str(w) for w in f.diagnostics["warnings"]]
        out[key] = dict(wall_s=time.perf_counter() - t, mean=np.asarray(mean).tolist(), sd=np.asarray(sd).tolist(),
                        pareto_k=float(k), warnings=warnings)
    return out, None


WORKERS = dict(pathfinder_ref=w_pathfinder_ref, pathfinder_fit=w_pathfinder_fit)


def run(ctx) -> None:
    """The NUTS references, then each method on each model, one fresh process each."""
    R, raw, failures, log, cache = ctx.R, ctx.raw, ctx.failures, ctx.log, ctx.cache
    log("== Pathfinder")
    out = {}
    for model in MODELS:
        ref, _, err = R.run(dict(kind="pathfinder_ref", model=model))
        if ref is None:
            failures[f"pathfinder reference / {model}"] = err
            continue
        row = dict(ref=ref)
        for method in METHODS:
            r, _, err = R.run(dict(kind="pathfinder_fit", model=model, method=method), {"PROBMODELS_CACHE_DIR": cache()})
            if r is None:
                failures[f"{method} / {model}"] = err
                continue
            row[method] = r
        out[model] = row
    raw["pathfinder"] = out


def _errors(fit: dict, ref: dict):
    mean, sd = np.asarray(ref["mean"]), np.asarray(ref["sd"])
    return float(np.max(np.abs(np.asarray(fit["mean"]) - mean) / sd)), float(np.max(np.abs(np.asarray(fit["sd"]) / sd - 1)))


def render(raw: dict, add) -> None:
    """The section's part of RESULTS.md."""
    pf = raw.get("pathfinder") or {}
    if not pf:
        return
    cfg = raw["config"]
    add("## Pathfinder against VI and blackjax\n")
    add(__doc__.split("\n\n", 1)[1].replace("``ref_draws``", str(REF_DRAWS["quick" if raw.get("quick") else "full"]))
        .replace("``draws``", str(cfg.get("pathfinder_draws", 1000))) + "\n")
    for model, row in pf.items():
        n, d = cfg["sizes"][model]
        size = "J = 8" if model == "schools" else f"N = {n:,}, d = {d}"
        ref = row["ref"]
        add(f"### {TITLES[model]} ({size})\n")
        add(f"NUTS reference: max r-hat {ref['max_rhat']:.3f}, min bulk ESS {ref['min_ess_bulk']:.0f}, {ref['divergences']} divergences.\n")
        add("| method | first fit (s) | warm fit (s) | max mean error (NUTS sd) | max sd error | k-hat | warnings | other processes |")
        add("|---|---|---|---|---|---|---|---|")
        for method in METHODS:
            r = row.get(method)
            if r is None:
                add(f"| {LABELS[method]} | failed | | | | | | |")
                continue
            e_mean, e_sd = _errors(r["first"], ref)
            w = "; ".join(x[:90] + ("..." if len(x) > 90 else "") for x in r["first"]["warnings"]) or "none"
            p = (r.get("_process") or {}).get("background")
            add(f"| {LABELS[method]} | {r['first']['wall_s']:.2f} | {r['warm']['wall_s']:.3f} | {e_mean:.2f} | {100 * e_sd:.0f}% | "
                f"{r['first']['pareto_k']:.2f} | {w} | {'n/a' if p is None else f'{100 * p:.0f}%'} |")
        add("")
