"""MLE and MAP against statsmodels and scikit-learn, first and warm fits."""

from __future__ import annotations

import shutil
import time

import numpy as np

from frameworks import make_data, point_programs
from harness import CFG, CompileLog, _first_time, _median_time, bg, fmt




def w_point(job):
    """First fit, warm fits on new data of the same shape, and the references, for one GLM and
    one method (mle or map)."""
    t0 = time.perf_counter()
    import probmodels

    import_s = time.perf_counter() - t0
    import statsmodels.api as sm
    from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

    model, method = job["model"], job["method"]
    n, d = job["n"], job["d"]
    reps = job.get("reps", CFG["reps"])
    P = point_programs()
    PALPHA = 1e-3
    if method == "mle":
        prog = P[model]
    else:
        prog = dict(linear=P["ridge"], logistic=P["logistic_l2"], poisson=P["poisson_l2_for"](n, PALPHA))[model]
    base = "linear" if model == "linear" else model
    datas = [make_data(base, n, d, rep) for rep in range(2)]
    log = CompileLog(log_functions=job.get("log_functions", False))
    with log:
        t = time.perf_counter()
        f = probmodels.fit(prog, datas[0], method)
        first = time.perf_counter() - t
    out = dict(import_s=import_s, first_s=first, first_compile_s=f.diagnostics["compile_s"], first_run_s=f.diagnostics["run_s"],
               compile_log=log.summary(), iterations=f.diagnostics["iterations"], converged=f.diagnostics["converged"])
    if job.get("first_only"):
        return out, None
    with log:
        warm, f2 = _median_time(lambda: probmodels.fit(prog, datas[1], method), reps)
    out["warm_s"] = warm
    out["warm_compile_s"] = f2.diagnostics["compile_s"]
    out["warm_solver_s"] = f2.diagnostics["run_s"]
    out["warm_compile_log"] = log.summary()
    est = np.r_[f2.estimate["b"], f2.estimate["w"]]

    u, x = datas[1]["u"], datas[1]["x"]
    refs = {}
    if method == "mle":
        X = sm.add_constant(u, has_constant="add")
        if model == "linear":
            fn = lambda: sm.OLS(x, X).fit()  # noqa: E731
            name = "statsmodels OLS"
        elif model == "logistic":
            fn = lambda: sm.Logit(x, X).fit(disp=0)  # noqa: E731
            name = "statsmodels Logit (Newton)"
        else:
            fn = lambda: sm.GLM(x, X, family=sm.families.Poisson()).fit()  # noqa: E731
            name = "statsmodels GLM Poisson (IRLS)"
        rfirst = _first_time(fn)
        tref, r = _median_time(fn, reps)
        tadd = _median_time(lambda: sm.add_constant(u, has_constant="add"), reps)[0]
        refs[name] = dict(time_s=tref, first_s=rfirst, time_with_design_s=tref + tadd, max_abs_diff=float(np.max(np.abs(np.asarray(r.params) - est))))
    else:
        if model == "linear":
            fn = lambda: Ridge(alpha=P["ALPHA"]).fit(u, x)  # noqa: E731
            name = f"sklearn Ridge(alpha={P['ALPHA']:g})"
        elif model == "logistic":
            fn = lambda: LogisticRegression(C=P["C"], solver="newton-cholesky", tol=1e-10, max_iter=1000).fit(u, x)  # noqa: E731
            name = f"sklearn LogisticRegression(C={P['C']:g}, newton-cholesky, tol=1e-10)"
        else:
            fn = lambda: PoissonRegressor(alpha=PALPHA, solver="newton-cholesky", tol=1e-10, max_iter=1000).fit(u, x)  # noqa: E731
            name = f"sklearn PoissonRegressor(alpha={PALPHA:g}, newton-cholesky, tol=1e-10)"
        rfirst = _first_time(fn)
        tref, r = _median_time(fn, reps)
        coef = np.r_[np.ravel(r.intercept_), np.ravel(r.coef_)]
        refs[name] = dict(time_s=tref, first_s=rfirst, max_abs_diff=float(np.max(np.abs(coef - est))))
        if model == "logistic":
            fdef = lambda: LogisticRegression(C=P["C"]).fit(u, x)  # noqa: E731
            rfirst = _first_time(fdef)
            tdef, rdef = _median_time(fdef, reps)
            coef = np.r_[np.ravel(rdef.intercept_), np.ravel(rdef.coef_)]
            refs[f"sklearn LogisticRegression(C={P['C']:g}) defaults (lbfgs, tol=1e-4)"] = dict(time_s=tdef, first_s=rfirst, max_abs_diff=float(np.max(np.abs(coef - est))))
    out["refs"] = refs
    return out, None


def w_point_floor(job):
    """The fixed cost of a first fit: a program with one parameter and 10 observations, fitted
    once in a fresh process (probmodels' import timed apart)."""
    t0 = time.perf_counter()
    import probmodels
    from probmodels import noise, observe, param

    import_s = time.perf_counter() - t0

    def one_mean(u, x=None):
        b = param("b")
        return observe("x", b + noise.Gaussian(1.0), obs=x)

    rng = np.random.default_rng(0)
    data = dict(u=rng.normal(size=10), x=rng.normal(size=10))
    t = time.perf_counter()
    f = probmodels.fit(one_mean, data, "mle")
    first = time.perf_counter() - t
    t = time.perf_counter()
    probmodels.fit(one_mean, dict(u=data["u"], x=data["x"] + 1.0), "mle")
    warm = time.perf_counter() - t
    return dict(import_s=import_s, first_s=first, compile_s=f.diagnostics["compile_s"], warm_s=warm), None



WORKERS = dict(point=w_point, point_floor=w_point_floor)


def run(ctx) -> None:
    """Run the section's workers (``ctx``: the runner and the run's settings) into ``ctx.raw``."""
    R, raw, failures, log, cache, sections = ctx.R, ctx.raw, ctx.failures, ctx.log, ctx.cache, ctx.sections
    # -- MLE / MAP ------------------------------------------------------------------------------
    point = {}
    if "point" in sections:
        log("== MLE / MAP")
        n_small = CFG["sizes"]["linear"][0]
        specs = [(m, meth, n_small, CFG["sizes"][m][1]) for m in ("linear", "logistic", "poisson") for meth in ("mle", "map")]
        nb, db = CFG["big"]
        specs += [("logistic", "mle", nb, db), ("logistic", "map", nb, db)]
        for model, meth, n, d in specs:
            key = f"{model}/{meth}/{n}x{d}"
            cdir = cache()
            reps = CFG["point_reps"] if n < 100_000 else 3
            out, _, err = R.run(dict(kind="point", model=model, method=meth, n=n, d=d, reps=reps, log_functions=True), {"PROBMODELS_CACHE_DIR": cdir})
            if out is None:
                failures[f"point {key}"] = err
                continue
            w, _, err = R.run(dict(kind="point", model=model, method=meth, n=n, d=d, first_only=True), {"PROBMODELS_CACHE_DIR": cdir})
            if w is not None:
                out["warm_cache_first_s"] = w["first_s"]
                out["warm_cache_first_compile_s"] = w["first_compile_s"]
            shutil.rmtree(cdir, ignore_errors=True)
            point[key] = out
        # the fixed cost of any first fit: a trivial program, empty cache then filled cache
        cdir = cache()
        floor = {}
        for label in ("cold", "warm"):
            w, _, err = R.run(dict(kind="point_floor"), {"PROBMODELS_CACHE_DIR": cdir})
            if w is None:
                failures[f"point floor ({label} cache)"] = err
            floor[label] = w
        shutil.rmtree(cdir, ignore_errors=True)
        raw["point_floor"] = floor
        raw["point"] = point



def render(raw: dict, add) -> None:
    """The section's part of RESULTS.md, line by line through ``add``."""
    point = raw.get("point") or {}
    if point:
        add("## MLE and MAP against statsmodels and scikit-learn\n")
        add("probmodels: *first fit* in a fresh process with an empty persistent cache (compile included), "
            "*warm-cache first fit* in a second fresh process on the filled cache, *warm fit* the median "
            f"over repeated fits on new data of the same shapes in the same process (nothing compiles; "
            f"{CFG['point_reps']} fits at N = {CFG['sizes']['linear'][0]:,}, 3 at N = {CFG['big'][0]:,}). "
            "References: median time of as many fits on the same new data (*reference (s)*) and their first "
            "call in the same process, imports done (*reference first call (s)*); *warm / ref* sets the warm "
            "fits side by side, *first / ref first* the first ones. *max |diff|* is the largest "
            "absolute difference of the intercept and coefficients. MAP programs use the prior that "
            "reproduces the estimator's penalty (`probmodels.priors.sklearn_prior`; PoissonRegressor by "
            "the same translation by hand, prior N(0, 1/sqrt(N alpha))).\n")
        add("| model | method | N x d | first fit (s) | of which compile (s) | warm-cache first fit (s) | warm fit (s) | reference | reference (s) | reference first call (s) | warm / ref | first / ref first | max abs diff | other processes |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for key, o in point.items():
            model, meth, shape = key.split("/")
            nn, dd = shape.split("x")
            for i, (rname, r) in enumerate(o["refs"].items()):
                first = (f"{fmt(o['first_s'])} | {fmt(o['first_compile_s'])} | {fmt(o.get('warm_cache_first_s'))} | {fmt(o['warm_s'], 3)}"
                         if i == 0 else " | | | ")
                rf = r.get("first_s")
                add(f"| {model} | {meth} | {int(nn):,} x {dd} | {first} | {rname} | {fmt(r['time_s'], 3)} | {fmt(rf, 3)} | "
                    f"{o['warm_s'] / r['time_s']:.2f} | {o['first_s'] / rf if rf else float('nan'):.1f} | {r['max_abs_diff']:.1e} | {bg(o) if i == 0 else ''} |")
        add("")
        fl = raw.get("point_floor") or {}
        if fl.get("cold") and fl.get("warm"):
            c, w = fl["cold"], fl["warm"]
            add(f"The fixed cost of a first fit, whatever the data: a program with one parameter and 10 "
                f"observations (`b + noise.Gaussian(1.0)`) fits first in {fmt(c['first_s'])} s in a fresh process "
                f"(compile {fmt(c['compile_s'])} s; its second fit {1e3 * c['warm_s']:.1f} ms), {fmt(w['first_s'])} s "
                f"(compile {fmt(w['compile_s'])} s) in a second process on the filled persistent cache. "
                f"`import probmodels` (JAX, numpyro, ArviZ) takes {fmt(c['import_s'])} s, timed apart.\n")
        add("Where a first point fit's time goes (cold cache): seconds of JAX trace / lower / XLA compile, "
            "and the number of XLA compiles, in the whole `fit` call.\n")
        add("| model | method | N x d | first fit | trace | lower | XLA | # XLA compiles | solver run_s (first) | warm solver run_s | Newton iterations |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for key, o in point.items():
            model, meth, shape = key.split("/")
            c = o["compile_log"]
            add(f"| {model} | {meth} | {shape} | {fmt(o['first_s'])} | {fmt(c['trace'])} | {fmt(c['lower'])} | {fmt(c['xla'])} | {c['n_xla']} | "
                f"{fmt(o['first_run_s'], 3)} | {fmt(o['warm_solver_s'], 3)} | {o['iterations']} |")
        add("")

