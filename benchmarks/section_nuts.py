"""Posterior sampling: probmodels' NUTS against raw numpyro, PyMC, nutpie and pystan."""

from __future__ import annotations

import os
import shutil
import time
import uuid

import numpy as np

from frameworks import LATENT, MLP_GRID, STAN, TITLES, data_for, numpyro_models, posterior_diagnostics, probmodels_programs, pymc_model, span, stan_data
from harness import CFG, CompileLog, bg, fmt, max_depth


SAMPLERS = ("probmodels", "numpyro", "pymc", "nutpie", "pystan")
# extra probmodels rows per NUTS model: (key, worker job options, row label)
VARIANT_ROWS = (
    ("windowed", dict(options=dict(adaptation="windowed")), "probmodels, `adaptation='windowed'` (Stan's)"),
    ("xla_defaults", dict(xla_defaults=True), "probmodels compiled with XLA's default options"),
)
WARM_CACHE_MODELS = ("linear", "logistic", "poisson", "schools")  # the others: time budget



def w_probmodels_nuts(job):
    if job.get("xla_defaults"):
        os.environ["PROBMODELS_XLA_OPTIONS"] = "default"  # XLA's own compile options instead of probmodels'
    t0 = time.perf_counter()
    import probmodels

    import_s = time.perf_counter() - t0
    log = CompileLog(log_functions=job.get("log_functions", False))
    model = job["model"]
    prog = probmodels_programs()[model]
    data = data_for(model)
    opts = dict(chains=CFG["chains"], warmup=CFG["warmup"], draws=CFG["draws"], seed=0, max_tree_depth=max_depth(model))
    opts.update(job.get("options", {}))
    with log:
        t = time.perf_counter()
        f = probmodels.fit(prog, data, "nuts", **opts)
        wall = time.perf_counter() - t
    from probmodels.solvers.nuts import NUTS_DEFAULTS

    out = dict(
        chain_method=f.diagnostics.get("chain_method", opts.get("chain_method", NUTS_DEFAULTS.get("chain_method"))),
        import_s=import_s,
        wall_s=wall,
        compile_s=f.diagnostics["compile_s"],
        sample_s=f.diagnostics["run_s"],
        divergences=int(f.diagnostics["divergences"]),
        compile_log=log.summary(),
        lib_min_ess_bulk=f.diagnostics["min_ess_bulk"],
    )
    draws = {k: f.draws[k] for k in LATENT[model]}
    if job.get("refit"):
        data2 = data_for(model, rep=1)
        with log:
            t = time.perf_counter()
            f2 = probmodels.fit(prog, data2, "nuts", **opts)
            out["refit_wall_s"] = time.perf_counter() - t
        out["refit_compile_s"] = f2.diagnostics["compile_s"]
        out["refit_sample_s"] = f2.diagnostics["run_s"]
        out["refit_compile_log"] = log.summary()
    return out, draws


def w_numpyro_nuts(job):
    t0 = time.perf_counter()
    import jax

    if job.get("host_devices"):
        import numpyro

        numpyro.set_host_device_count(int(job["host_devices"]))
    jax.config.update("jax_enable_x64", not job.get("float32", False))
    import numpyro  # noqa: F811
    from numpyro.infer import MCMC, NUTS

    import_s = time.perf_counter() - t0
    log = CompileLog()
    model = job["model"]
    fn = numpyro_models()[model]
    data = data_for(model)
    dt = np.float32 if job.get("float32") else np.float64
    data = {k: np.asarray(v, dtype=dt) for k, v in data.items()}
    with log:
        t = time.perf_counter()
        m = MCMC(
            NUTS(fn, max_tree_depth=max_depth(model)),
            num_warmup=CFG["warmup"],
            num_samples=CFG["draws"],
            num_chains=CFG["chains"],
            chain_method=job.get("chain_method", "vectorized"),
            progress_bar=False,
        )
        m.run(jax.random.PRNGKey(0), extra_fields=("diverging",), **data)
        samples = m.get_samples(group_by_chain=True)
        jax.block_until_ready(samples)
        wall = time.perf_counter() - t
    c = log.summary()
    compile_s = c["trace"] + c["lower"] + c["xla"]
    div = int(np.asarray(m.get_extra_fields()["diverging"]).sum())
    out = dict(import_s=import_s, wall_s=wall, compile_s=compile_s, sample_s=wall - compile_s, divergences=div, compile_log=c)
    return out, {k: np.asarray(samples[k], dtype=np.float64) for k in LATENT[model]}


def w_pymc(job):
    t0 = time.perf_counter()
    import pymc as pm

    import_s = time.perf_counter() - t0
    model = job["model"]
    data = data_for(model)
    t = time.perf_counter()
    m = pymc_model(model, data)
    idata = pm.sample(
        model=m,
        draws=CFG["draws"],
        tune=CFG["warmup"],
        chains=CFG["chains"],
        cores=job.get("cores", 2),
        random_seed=0,
        progressbar=False,
        compute_convergence_checks=False,
        nuts={"max_treedepth": max_depth(model)},
    )
    wall = time.perf_counter() - t
    sample_s = float(idata.posterior.attrs.get("sampling_time", np.nan))
    div = int(idata.sample_stats["diverging"].values.sum())
    draws = {k: idata.posterior[k].values for k in LATENT[model]}
    return dict(import_s=import_s, wall_s=wall, compile_s=wall - sample_s, sample_s=sample_s, divergences=div), draws


def w_pymc_prime(job):
    import pymc as pm

    y = np.random.default_rng(0).normal(size=20)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=y)
    pm.sample(model=m, draws=50, tune=50, chains=2, cores=2, progressbar=False, compute_convergence_checks=False)
    return {}, None


def w_nutpie(job):
    t0 = time.perf_counter()
    import nutpie

    import_s = time.perf_counter() - t0
    model = job["model"]
    data = data_for(model)
    t = time.perf_counter()
    m = pymc_model(model, data)
    compiled = nutpie.compile_pymc_model(m, backend=job.get("backend", "numba"))
    compile_s = time.perf_counter() - t
    t1 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=CFG["draws"], tune=CFG["warmup"], chains=CFG["chains"], seed=0, progress_bar=False,
                          maxdepth=max_depth(model))
    sample_s = time.perf_counter() - t1
    wall = time.perf_counter() - t
    div = int(idata.sample_stats["diverging"].values.sum())
    draws = {k: idata.posterior[k].values for k in LATENT[model]}
    return dict(import_s=import_s, wall_s=wall, compile_s=compile_s, sample_s=sample_s, divergences=div), draws


def w_pystan(job):
    t0 = time.perf_counter()
    import arviz as az
    import stan

    import_s = time.perf_counter() - t0
    model = job["model"]
    data = data_for(model)
    # a unique comment makes httpstan compile afresh (its model cache is keyed by the code)
    code = STAN[model] + (f"\n// {job['tag']}\n" if job.get("tag") else "")
    t = time.perf_counter()
    post = stan.build(code, data=stan_data(model, data), random_seed=1)
    compile_s = time.perf_counter() - t
    t1 = time.perf_counter()
    fit = post.sample(num_chains=CFG["chains"], num_samples=CFG["draws"], num_warmup=CFG["warmup"], max_depth=max_depth(model))
    sample_s = time.perf_counter() - t1
    wall = time.perf_counter() - t
    idata = az.from_pystan(posterior=fit)
    div = int(idata.sample_stats["diverging"].values.sum())
    draws = {k: idata.posterior[k].values for k in LATENT[model]}
    return dict(import_s=import_s, wall_s=wall, compile_s=compile_s, sample_s=sample_s, divergences=div), draws


# -- point fits -------------------------------------------------------------------------------



WORKERS = dict(probmodels=w_probmodels_nuts, numpyro=w_numpyro_nuts, pymc=w_pymc, pymc_prime=w_pymc_prime, nutpie=w_nutpie, pystan=w_pystan)


def run(ctx) -> None:
    """Run the section's workers (``ctx``: the runner and the run's settings) into ``ctx.raw``."""
    R, raw, failures, log, cache, sections, models, samplers, pytensor_flags = ctx.R, ctx.raw, ctx.failures, ctx.log, ctx.cache, ctx.sections, ctx.models, ctx.samplers, ctx.pytensor_flags
    # -- NUTS ---------------------------------------------------------------------------------
    nuts = {}
    if "nuts" in sections:
        log("== NUTS")
        # PyMC compiles its C code into a compile directory: a fresh one for this run, filled by
        # one tiny unrelated model first, so that the timed runs compile their model's own graph
        # (as a user's first run of a new model does) but not the shared basic ops.
        if "pymc" in samplers or "nutpie" in samplers:
            R.run(dict(kind="pymc_prime"), {"PYTENSOR_FLAGS": pytensor_flags})
        for model in models:
            nuts[model] = {}
            for s in samplers:
                job = dict(kind=s, model=model)
                if s == "numpyro":
                    # numpyro's own way to use every core on CPU (its vectorized and sequential
                    # chains in *Analysis runs*)
                    job.update(chain_method="parallel", host_devices=CFG["chains"])
                env = {}
                if s == "probmodels":
                    cdir = cache()
                    env["PROBMODELS_CACHE_DIR"] = cdir
                    job["log_functions"] = True
                if s == "pystan":
                    job["tag"] = uuid.uuid4().hex
                if s in ("pymc", "nutpie"):
                    env["PYTENSOR_FLAGS"] = pytensor_flags
                out, draws, err = R.run(job, env)
                if out is None:
                    failures[f"{s} / {model}"] = err
                    nuts[model][s] = None
                    continue
                out.update(posterior_diagnostics(draws, model))
                if s == "probmodels" and model in WARM_CACHE_MODELS:
                    # the same fit in a second process on the filled cache
                    w, wd, err = R.run(dict(kind="probmodels", model=model, log_functions=True), env)
                    if w is not None:
                        out["warm"] = dict(wall_s=w["wall_s"], compile_s=w["compile_s"], sample_s=w["sample_s"], compile_log=w["compile_log"], _process=w.get("_process"))
                        out["warm"].update(posterior_diagnostics(wd, model))
                    shutil.rmtree(cdir, ignore_errors=True)
                if s == "probmodels":
                    # what the warm-up scheme is worth (the same fit with Stan's windowed
                    # adaptation) and what probmodels' XLA options are (compiled with XLA's defaults)
                    for name, extra, label in VARIANT_ROWS:
                        cdir = cache()
                        w, wd, err = R.run(dict(kind="probmodels", model=model, **extra), {"PROBMODELS_CACHE_DIR": cdir})
                        if w is not None:
                            w.update(posterior_diagnostics(wd, model))
                            out[name] = w
                        else:
                            failures[f"probmodels {label} / {model}"] = err
                        shutil.rmtree(cdir, ignore_errors=True)
                nuts[model][s] = out
        raw["nuts"] = nuts



def render(raw: dict, add) -> None:
    """The section's part of RESULTS.md, line by line through ``add``."""
    cfg = raw["config"]
    nuts = raw.get("nuts") or {}
    if nuts:
        add(f"## Posterior sampling: {cfg['chains']} chains x ({cfg['warmup']} warm-up + {cfg['draws']} draws)\n")
        add("Each cell is one fresh Python process. *wall* is model building + compilation + sampling "
            "(imports excluded); *compile* is what each tool spends before its first draw (probmodels: "
            "`diagnostics['compile_s']`, empty persistent cache; raw numpyro: JAX's trace + lower + XLA compile "
            "events; PyMC: wall minus its `sampling_time`; nutpie: `compile_pymc_model`; pystan: `stan.build`, "
            "a fresh C++ build every time); *sample* is the rest. probmodels compiles its programs with two XLA "
            "CPU options (`xla_cpu_use_fusion_emitters=false`, `xla_backend_optimization_level=1`; "
            "`probmodels._config.compiler_options`); the row *compiled with XLA's default options* is the same "
            "fit without them, raw numpyro's rows use XLA's defaults. min ESS (bulk) and max r-hat come from "
            "`arviz.ess` / `arviz.rhat` on every method's draws of the latent parameters; ESS/s = min bulk "
            "ESS / wall (compile included). Parallelism: probmodels its default "
            "`chain_method='parallel'` (the chains split over one JAX CPU device per core, each running "
            "its share one after the other: one compile for all chains), raw numpyro "
            "`chain_method='parallel'` with `numpyro.set_host_device_count(chains)` (its fastest here; "
            "sequential and vectorized in *Analysis runs*), PyMC `cores=2` (its default assumes "
            "hyper-threading and would use 1 here), nutpie and pystan all cores.\n")
        for model, row in nuts.items():
            n, d = cfg["sizes"][model]
            size = "J = 8" if model == "schools" else (f"N = {n:,}, {d} hidden units" if model == "mlp" else f"N = {n:,}, d = {d}")
            add(f"### {TITLES[model]} ({size})\n")
            add("| method | wall (s) | compile (s) | sample (s) | min ESS bulk | ESS/s (wall) | ESS/s (sampling) | max r-hat | divergences | other processes |")
            add("|---|---|---|---|---|---|---|---|---|---|")
            for s in SAMPLERS:
                if s not in row:
                    continue
                o = row[s]
                name = dict(probmodels="probmodels `fit(nuts)`", numpyro="raw numpyro `MCMC(NUTS)`", pymc="PyMC `pm.sample`", nutpie="nutpie", pystan="pystan 3")[s]
                if o is None:
                    add(f"| {name} | failed | | | | | | | | |")
                    continue
                add(f"| {name} | {fmt(o['wall_s'])} | {fmt(o['compile_s'])} | {fmt(o['sample_s'])} | {o['min_ess_bulk']:.0f} | "
                    f"{fmt(o['min_ess_bulk'] / o['wall_s'])} | {fmt(o['min_ess_bulk'] / max(o['sample_s'], 1e-9))} | {o['max_rhat']:.3f} | {o['divergences']} | {bg(o)} |")
                if s == "probmodels" and o.get("warm"):
                    w = o["warm"]
                    add(f"| probmodels, warm persistent cache | {fmt(w['wall_s'])} | {fmt(w['compile_s'])} | {fmt(w['sample_s'])} | {w['min_ess_bulk']:.0f} | "
                        f"{fmt(w['min_ess_bulk'] / w['wall_s'])} | {fmt(w['min_ess_bulk'] / max(w['sample_s'], 1e-9))} | {w['max_rhat']:.3f} | | {bg(w)} |")
                for name, _, label in VARIANT_ROWS if s == "probmodels" else ():
                    w = o.get(name)
                    if w:
                        add(f"| {label} | {fmt(w['wall_s'])} | {fmt(w['compile_s'])} | {fmt(w['sample_s'])} | {w['min_ess_bulk']:.0f} | "
                            f"{fmt(w['min_ess_bulk'] / w['wall_s'])} | {fmt(w['min_ess_bulk'] / max(w['sample_s'], 1e-9))} | {w['max_rhat']:.3f} | {w['divergences']} | {bg(w)} |")
            add("")
            if model == "mlp":
                ok = [o for o in row.values() if o and "weights_min_ess_bulk" in o]
                if ok:
                    add(
                        "ESS and r-hat of the MLP are those of what the posterior identifies: its predictions at "
                        f"u = {', '.join(f'{v:g}' for v in MLP_GRID)} and the noise scale. The weights "
                        "themselves are not identified (permuting the hidden units, or flipping the sign of one "
                        "unit's weights, leaves every prediction unchanged), and chains in symmetric copies of a "
                        f"mode give every tool min ESS {span([o['weights_min_ess_bulk'] for o in ok], '.0f')} and "
                        f"max r-hat {span([o['weights_max_rhat'] for o in ok], '.2f')} on the weights: that "
                        "measures which copies the chains settled in, not the sampler.\n"
                    )
        # summary: probmodels relative to each peer
        add("### probmodels' ESS/s (wall, cold cache) relative to each peer\n")
        add("| model | " + " | ".join(s for s in SAMPLERS[1:]) + " |")
        add("|---|" + "---|" * (len(SAMPLERS) - 1))
        for model, row in nuts.items():
            p = row.get("probmodels")
            cells = []
            for s in SAMPLERS[1:]:
                o = row.get(s)
                if p is None or o is None:
                    cells.append("n/a")
                else:
                    cells.append(f"{(p['min_ess_bulk'] / p['wall_s']) / (o['min_ess_bulk'] / o['wall_s']):.2f}x")
            add(f"| {model} | " + " | ".join(cells) + " |")
        add("\n(> 1: probmodels ahead.)\n")
        add("### Where probmodels' NUTS compile time goes (cold cache, seconds)\n")
        add("| model | compile_s | trace | lower | XLA compile | # XLA compiles | largest function: trace / lower / XLA | warm-cache compile_s |")
        add("|---|---|---|---|---|---|---|---|")
        for model, row in nuts.items():
            p = row.get("probmodels")
            if not p:
                continue
            c = p["compile_log"]
            fns = c["functions"]
            top = max(fns, key=lambda k: fns[k]["trace"] + fns[k]["lower"] + fns[k]["xla"]) if fns else None
            fnr = fns.get(top, {})
            w = p.get("warm", {})
            add(f"| {model} | {fmt(p['compile_s'])} | {fmt(c['trace'])} | {fmt(c['lower'])} | {fmt(c['xla'])} | {c['n_xla']} | "
                f"`{top}`: {fmt(fnr.get('trace'))} / {fmt(fnr.get('lower'))} / {fmt(fnr.get('xla'))} | {fmt(w.get('compile_s'))} |")
        add("")

