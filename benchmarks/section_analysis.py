"""Where probmodels' time goes: chain methods, precision, compile breakdowns."""

from __future__ import annotations

import os
import time
from functools import partial

import numpy as np

from frameworks import MODELS, data_for, make_data, point_programs, posterior_diagnostics, probmodels_programs
from harness import CFG, Clock, CompileLog, _median_time, bg, fmt, max_depth




def w_prototype_breakdown(job):
    """Where a first and a warm MLE fit spend their time: the Objective (data checks, prototype
    trace), the solver, and the rest of ``fit`` (standard errors, existence probes, the Gaussian
    approximation's draws, the log-likelihood); every jitted function compiled on the way."""
    import cProfile
    import pstats

    import probmodels
    from probmodels.solvers._objective import Objective

    log = CompileLog()
    model, n, d = job["model"], job["n"], job["d"]
    prog = point_programs()[model]
    data = make_data(model, n, d, 0)
    data2 = make_data(model, n, d, 1)
    out = {}
    with log:
        t = time.perf_counter()
        Objective(prog, data)
        out["objective_s"] = time.perf_counter() - t
    out["objective_log"] = log.summary()
    with log:
        t = time.perf_counter()
        f = probmodels.fit(prog, data, "mle")
        out["fit_s"] = time.perf_counter() - t
    out["fit_log"] = log.summary()
    out["fit_compile_s"] = f.diagnostics["compile_s"]
    out["fit_run_s"] = f.diagnostics["run_s"]
    # warm: same shapes, new data, nothing compiles
    probmodels.fit(prog, data2, "mle", draws=0)
    reps = 3 if n >= 100_000 else 7
    out["warm_objective_s"] = _median_time(lambda: Objective(prog, data2), reps)[0]
    out["warm_fit_s"], f2 = _median_time(lambda: probmodels.fit(prog, data2, "mle"), reps)
    out["warm_fit_solver_s"] = f2.diagnostics["wall_s"]
    out["warm_fit_nodraws_s"] = _median_time(lambda: probmodels.fit(prog, data2, "mle", draws=0), reps)[0]
    from probmodels.solvers._objective import _split_data

    out["warm_split_data_s"] = _median_time(lambda: _split_data(prog, data2), reps)[0]
    prof = cProfile.Profile()
    prof.enable()
    probmodels.fit(prog, data2, "mle")
    prof.disable()
    st = pstats.Stats(prof)
    rows = []
    for (fname, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
        if "probmodels" in fname or func in ("asarray", "isfinite", "astype"):
            rows.append((ct, tt, f"{os.path.basename(fname)}:{func}"))
    rows.sort(reverse=True)
    out["warm_profile"] = rows[:14]
    return out, None


def w_nuts_variant(job):
    """probmodels' NUTS sampler for one program, compiled ahead of time so that tracing, lowering,
    XLA compiling and running are timed apart; and variants of it that the library could adopt:

    * ``parallel`` / ``vectorized`` / ``sequential``: ``probmodels.solvers.nuts._sampler`` itself
      with that ``chain_method`` (one scan over warm-up and draws, gradient-based adaptation);
    * ``single_scan`` / ``sequential_single_scan``: numpyro's own windowed adaptation in one
      ``lax.scan`` over warm-up + draws (its ``hmc`` sample kernel adapts during the first
      ``num_warmup`` calls by itself), chains vmapped / one after the other;
    * ``pmap``: the vectorized chains split over the host's cores (``jax.pmap`` over
      ``n`` CPU devices, each running ``chains / n`` chains vectorized; needs
      ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` before JAX starts, or
      ``jax.config.update("jax_num_cpu_devices", n)``);
    * ``pmap_sequential``: the same split, each device running its chains one after the other.
    ``XLA_FLAGS`` in the environment (e.g. ``--xla_backend_optimization_level=1``) applies to all.
    """
    import probmodels
    import jax
    from numpyro.infer.hmc import hmc

    from probmodels.solvers import nuts as pn
    from probmodels.solvers._objective import Objective

    model, variant = job["model"], job["variant"]
    prog = probmodels_programs()[model]
    obj = Objective(prog, data_for(model))
    W, D, C = CFG["warmup"], CFG["draws"], CFG["chains"]
    opts = dict(pn.NUTS_DEFAULTS, warmup=W, draws=D, chains=C, max_tree_depth=max_depth(model))
    starts = obj.z0[None] + jax.random.uniform(jax.random.PRNGKey(7919), (C, obj.dim), minval=-0.5, maxval=0.5)
    keys = jax.random.split(jax.random.PRNGKey(0), C)

    def chain_fn(single):
        log_joint = partial(obj.fns["log_joint_raw"], priors=True, jacobian=True)
        init_kernel, sample_kernel = hmc(potential_fn_gen=lambda arrays: (lambda z: -log_joint(z, arrays)), algo="NUTS")

        def chain(key, z0, arrays):
            state = init_kernel(z0, num_warmup=W, target_accept_prob=0.8, max_tree_depth=opts["max_tree_depth"],
                                dense_mass=False, model_args=(arrays,), rng_key=key)

            def collect(s, _):
                s = sample_kernel(s, model_args=(arrays,))
                return s, (s.z, s.diverging, s.num_steps, s.accept_prob, s.energy, s.potential_energy, s.adapt_state.step_size)

            if single:
                _, out = jax.lax.scan(collect, state, None, length=W + D)
                return jax.tree_util.tree_map(lambda a: a[W:], out)
            state, _ = jax.lax.scan(lambda s, _: (sample_kernel(s, model_args=(arrays,)), None), state, None, length=W)
            _, out = jax.lax.scan(collect, state, None, length=D)
            return out

        return chain

    out = dict(variant=variant, xla_flags=os.environ.get("XLA_FLAGS", ""))
    from probmodels.solvers._objective import trace_count

    # what one trace of the program's log density and its gradient costs
    lj = partial(obj.fns["log_joint_raw"], priors=True, jacobian=True)
    jax.make_jaxpr(jax.value_and_grad(lj))(obj.z0, obj.arrays)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        jax.make_jaxpr(jax.value_and_grad(lj))(obj.z0, obj.arrays)
        ts.append(time.perf_counter() - t)
    out["program_value_and_grad_trace_s"] = float(np.median(ts))
    n0 = trace_count(prog)
    clock = Clock(out)
    if variant in ("pmap", "pmap_sequential"):
        n = jax.local_device_count()
        per = C // n
        if variant == "pmap":
            inner = jax.vmap(chain_fn(False), in_axes=(0, 0, None))
        else:
            ch = chain_fn(False)

            def inner(ks, zs, arrays):
                return jax.lax.map(lambda a: ch(a[0], a[1], arrays), (ks, zs))

        fn = jax.pmap(inner, in_axes=(0, 0, None))
        args = (keys.reshape((n, per) + keys.shape[1:]), starts.reshape((n, per, -1)), obj.arrays)
        with clock("trace_lower"):
            lowered = fn.lower(*args)
        out["devices"] = n
    else:
        if variant in ("parallel", "vectorized", "sequential"):
            fn = jax.jit(pn._sampler(obj, dict(opts, chain_method=variant)))
        elif variant == "single_scan":
            fn = jax.jit(jax.vmap(chain_fn(True), in_axes=(0, 0, None)))
        else:  # sequential_single_scan
            ch = chain_fn(True)
            fn = jax.jit(lambda ks, zs, arrays: jax.lax.map(lambda a: ch(a[0], a[1], arrays), (ks, zs)))
        args = (keys, starts, obj.arrays)
        with clock("trace"):
            traced = fn.trace(*args)
        with clock("lower"):
            lowered = traced.lower()
    out["program_traces"] = trace_count(prog) - n0
    with clock("xla"):
        # every variant with the XLA options probmodels compiles its own programs with
        compiled = lowered.compile(compiler_options=probmodels._config.compiler_options())
    with clock("run"):
        res = jax.block_until_ready(compiled(*args))
    zs = np.asarray(res[0]).reshape((C, D, -1))
    out["mean_leapfrog_steps"] = float(np.mean(np.asarray(res[2])))
    out["divergences"] = int(np.asarray(res[1]).sum())
    return out, {"z": zs}



WORKERS = dict(breakdown=w_prototype_breakdown, nuts_variant=w_nuts_variant)


def run(ctx) -> None:
    """Run the section's workers (``ctx``: the runner and the run's settings) into ``ctx.raw``."""
    R, raw, log, sections = ctx.R, ctx.raw, ctx.log, ctx.sections
    # -- analysis -----------------------------------------------------------------------------
    analysis = {}
    if "analysis" in sections:
        log("== analysis")
        # chain_method and precision (sampling time; compile separately)
        for model in ("logistic",):
            a = analysis.setdefault(model, {})
            main_cm = ((raw.get("nuts") or {}).get(model) or {}).get("probmodels") or {}
            other = "vectorized" if main_cm.get("chain_method", "sequential") == "sequential" else "sequential"
            out, d_, err = R.run(dict(kind="probmodels", model=model, options=dict(chain_method=other), refit=(model == "logistic")))
            if out is not None:
                out.update(posterior_diagnostics(d_))
            a["probmodels_other"] = out
            for cm, extra in (("sequential", {}), ("vectorized", {})):
                out, d_, err = R.run(dict(kind="numpyro", model=model, chain_method=cm, **extra))
                if out is not None:
                    out.update(posterior_diagnostics(d_))
                a[f"numpyro_{cm}"] = out
            out, d_, err = R.run(dict(kind="numpyro", model=model, chain_method="vectorized", float32=True))
            if out is not None:
                out.update(posterior_diagnostics(d_))
            a["numpyro_vectorized_float32"] = out
        ndev = f"--xla_force_host_platform_device_count={os.cpu_count() or 2}"
        variants = [
            ("parallel", ""),
            ("vectorized", ""),
            ("sequential", ""),
            ("single_scan", ""),
            ("sequential_single_scan", ""),
            ("pmap", ndev),
            ("pmap_sequential", ndev),
            ("sequential", "--xla_backend_optimization_level=1"),
        ]
        analysis["variants"] = []
        for variant, flags in variants:
            out, _, err = R.run(dict(kind="nuts_variant", model="logistic", variant=variant), {"XLA_FLAGS": flags} if flags else {})
            if out is not None:
                analysis["variants"].append(out)
        analysis["breakdown"] = []
        for n, d in (CFG["sizes"]["logistic"], CFG["big"]):
            out, _, err = R.run(dict(kind="breakdown", model="logistic", n=n, d=d))
            if out is not None:
                analysis["breakdown"].append(dict(out, n=n, d=d))
        raw["analysis"] = analysis



def render(raw: dict, add) -> None:
    """The section's part of RESULTS.md, line by line through ``add``."""
    cfg = raw["config"]
    an = raw.get("analysis") or {}
    if an:
        add("## Analysis runs\n")
        add("Sampling-only seconds unless said otherwise (4 chains x 2000 iterations).\n")
        add("| model | configuration | wall (s) | compile (s) | sample (s) | min ESS bulk | max r-hat | other processes |")
        add("|---|---|---|---|---|---|---|---|")
        for model in [m for m in MODELS if m in an]:
            a = an.get(model) or {}
            ref = (raw.get("nuts") or {}).get(model) or {}
            pm_main, pm_other = ref.get("probmodels") or {}, a.get("probmodels_other") or {}
            rows = [
                (f"probmodels, default chain_method={pm_main.get('chain_method', '?')!r} (main table)", ref.get("probmodels")),
                (f"probmodels, chain_method={pm_other.get('chain_method', '?')!r}", a.get("probmodels_other")),
                (f"raw numpyro parallel ({cfg['chains']} host devices on {os.cpu_count()} cores, main table)", ref.get("numpyro")),
                ("raw numpyro sequential", a.get("numpyro_sequential")),
                ("raw numpyro vectorized", a.get("numpyro_vectorized")),
                ("raw numpyro vectorized, float32", a.get("numpyro_vectorized_float32")),
            ]
            for name, o in rows:
                if not o:
                    add(f"| {model} | {name} | n/a | | | | |")
                    continue
                ess = o.get("min_ess_bulk", o.get("lib_min_ess_bulk"))
                add(f"| {model} | {name} | {fmt(o['wall_s'])} | {fmt(o['compile_s'])} | {fmt(o['sample_s'])} | {fmt(ess)} | {fmt(o.get('max_rhat'), 3)} | {bg(o)} |")
            ps = a.get("probmodels_other") or {}
            if "refit_wall_s" in ps:
                add(f"| {model} | probmodels, chain_method={ps.get('chain_method', '?')!r}, second fit on new data (same process) | {fmt(ps['refit_wall_s'])} | {fmt(ps['refit_compile_s'])} | {fmt(ps['refit_sample_s'])} | | | |")
        add("")
        vs = an.get("variants") or []
        if vs:
            n, d = cfg["sizes"]["logistic"]
            add(f"### probmodels' NUTS sampler compiled ahead of time: logistic regression N = {n:,}, d = {d}\n")
            add("`jax.jit(...).trace() / .lower() / .compile()` and one run (4 chains x 2000 iterations) timed "
                "apart, persistent cache off. *parallel*, *vectorized* and *sequential* are `probmodels.solvers.nuts._sampler` "
                "with that `chain_method` (gradient-based adaptation; *parallel* is the default); *single_scan* / *sequential_single_scan* "
                "numpyro's windowed adaptation, warm-up and sampling in one `lax.scan` (vmapped / sequential chains); *pmap* the vectorized chains split over 2 CPU "
                "devices (2 chains each, vectorized); *pmap_sequential* the same split, each device running its 2 chains one after the other. CPU seconds (all threads of the process) in brackets: "
                "other processes on the machine disturb them least.\n")
            add("| variant | XLA_FLAGS | trace (s) | lower (s) | XLA compile (s) | run (s) | compile + run (s) | mean leapfrog steps / iteration | program traces | other processes |")
            add("|---|---|---|---|---|---|---|---|---|---|")
            for o in vs:
                tr = o.get("trace_s", o.get("trace_lower_s", 0.0))
                lo = o.get("lower_s")
                trc = o.get("trace_cpu_s", o.get("trace_lower_cpu_s", 0.0))
                total = tr + (lo or 0.0) + o["xla_s"] + o["run_s"]
                add(f"| {o['variant']} | `{o['xla_flags'] or '-'}` | {tr:.2f} [{trc:.2f}]{' (with lower)' if lo is None else ''} | "
                    f"{'' if lo is None else f'{lo:.2f}'} | {o['xla_s']:.2f} [{o['xla_cpu_s']:.2f}] | {o['run_s']:.2f} [{o['run_cpu_s']:.2f}] | {total:.2f} | "
                    f"{o['mean_leapfrog_steps']:.1f} | {o['program_traces']} | {bg(o)} |")
            add(f"\nOne trace of the program's log density and gradient (`jax.make_jaxpr(jax.value_and_grad(...))`): {1e3 * vs[0]['program_value_and_grad_trace_s']:.0f} ms.\n")
        for b in an.get("breakdown") or []:
            add(f"### MLE, logistic regression N = {b['n']:,}, d = {b['d']}: where a fit's time goes (persistent cache off)\n")
            add(f"First fit in a fresh process: `Objective(...)` alone {b['objective_s']:.2f} s, then the whole `fit` "
                f"{b['fit_s']:.2f} s, of which `diagnostics['compile_s']` {b['fit_compile_s']:.2f} s and `run_s` {b['fit_run_s']:.3f} s; "
                f"JAX compile events over the whole `fit`: trace {b['fit_log']['trace']:.2f} s, lower {b['fit_log']['lower']:.2f} s, "
                f"XLA {b['fit_log']['xla']:.2f} s in {b['fit_log']['n_xla']} compiles.\n")
            add(f"Warm fit (new data, same shapes; medians): whole `fit` {1e3 * b['warm_fit_s']:.1f} ms = `Objective(...)` "
                f"{1e3 * b['warm_objective_s']:.1f} ms (of which data checks and conversion `_split_data` {1e3 * b['warm_split_data_s']:.1f} ms) "
                f"+ the optimiser {1e3 * b['warm_fit_solver_s']:.1f} ms + the rest; with `draws=0` {1e3 * b['warm_fit_nodraws_s']:.1f} ms.\n")
            add("| jitted function compiled during the first fit | trace (s) | lower (s) | XLA compile (s) | # compiles |")
            add("|---|---|---|---|---|")
            fns = {}
            for key in ("objective_log", "fit_log"):
                for name, f in b[key]["functions"].items():
                    a = fns.setdefault(name, [0.0, 0.0, 0.0, 0])
                    a[0] += f["trace"]; a[1] += f["lower"]; a[2] += f["xla"]; a[3] += f["n"]  # noqa: E702
            for name, f in sorted(fns.items(), key=lambda kv: -sum(kv[1][:3])):
                add(f"| `{name}` | {f[0]:.3f} | {f[1]:.3f} | {f[2]:.3f} | {f[3]} |")
            add("\nWarm fit, cProfile (cumulative seconds, probmodels functions):\n")
            add("| function | cumulative (s) | own (s) |")
            add("|---|---|---|")
            for ct, tt, name in b["warm_profile"]:
                add(f"| `{name}` | {ct:.4f} | {tt:.4f} |")
            add("")

