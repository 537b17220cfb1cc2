"""probmodels against its peers, side by side, in one run (issue 7): writes ``benchmarks/RESULTS.md``.

Run (about 25 minutes on 2 cores)::

    python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,bench]'
    .venv/bin/python benchmarks/run.py            # everything -> benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --quick    # small sizes, short chains: a smoke test

Not part of the test suite (pytest collects ``tests/`` only).

What it measures
----------------
* Posterior sampling, the same six models on the same data: probmodels ``fit(..., "nuts")``, raw
  numpyro ``MCMC(NUTS)``, PyMC's default sampler (``pm.sample``), nutpie (compiling the PyMC model)
  and pystan (Stan 3: ``stan.build`` + ``sample``); 4 chains, 1000 warm-up, 1000 draws each. Wall
  time including compilation, sampling time, min bulk ESS and max r-hat (``arviz.ess`` /
  ``arviz.rhat`` on every method's draws, computed here, the same way for all), ESS per second
  (compile included), divergences.
* MLE and MAP: first fit and warm fit (new data of the same shapes) against statsmodels and
  scikit-learn, and the largest difference of the estimates; N = 10,000 and N = 1,000,000.
* One gradient of the logistic negative log-likelihood at N = 1e6, d = 50 against the time to
  stream the 400 MB design matrix once (the memory-bandwidth floor).
* Where probmodels' time goes: tracing / lowering / XLA compile per jitted function, chain_method,
  float32 vs float64 (raw numpyro), the persistent compilation cache.

Every measurement of a first fit or a compile runs in a fresh Python subprocess (``--worker``);
probmodels' "cold" numbers use an empty ``PROBMODELS_CACHE_DIR``, its "warm-cache" numbers a second
process on the same directory. Every worker builds its data from a fixed seed, so all methods see
identical arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

from functools import partial

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEED = 20240607

# sizes (overridden by --quick)
CFG = dict(
    chains=4,
    warmup=1000,
    draws=1000,
    sizes=dict(linear=(10_000, 20), logistic=(10_000, 20), poisson=(10_000, 10), schools=(8, 0), student=(2_000, 5), mlp=(500, 10)),
    big=(1_000_000, 50),
    reps=5,
    # warm point fits and their references take milliseconds at N = 10,000: a median of 31
    point_reps=31,
    # NUTS on the MLP posterior uses deep trees: at the default maximum depth (10) probmodels
    # samples for ~120 s (identified min ESS 2400, 20 ESS/s) and PyMC and pystan would take many
    # times longer, so the MLP runs with max tree depth 7 for every sampler.
    mlp_max_depth=7,
)
QUICK = dict(
    chains=4,
    warmup=150,
    draws=150,
    sizes=dict(linear=(1_000, 5), logistic=(1_000, 5), poisson=(1_000, 4), schools=(8, 0), student=(300, 3), mlp=(100, 5)),
    big=(50_000, 20),
    reps=2,
    point_reps=3,
    mlp_max_depth=7,
)

MODELS = ("linear", "logistic", "poisson", "schools", "student", "mlp")
TITLES = dict(
    linear="Gaussian linear regression",
    logistic="logistic regression",
    poisson="Poisson regression",
    schools="eight schools, non-centred",
    student="robust Student-t regression (df = 4)",
    mlp="MLP regression (1 hidden tanh layer)",
)
LATENT = dict(
    linear=("b", "w", "s"),
    logistic=("b", "w"),
    poisson=("b", "w"),
    schools=("mu", "tau", "theta_tilde"),
    student=("b", "w", "s"),
    mlp=("W1", "b1", "W2", "b2", "s"),
)
SAMPLERS = ("probmodels", "numpyro", "pymc", "nutpie", "pystan")
# extra probmodels rows per NUTS model: (key, worker job options, row label)
VARIANT_ROWS = (
    ("windowed", dict(options=dict(adaptation="windowed")), "probmodels, `adaptation='windowed'` (Stan's)"),
    ("xla_defaults", dict(xla_defaults=True), "probmodels compiled with XLA's default options"),
)
WARM_CACHE_MODELS = ("linear", "logistic", "poisson", "schools")  # the others: time budget


# =============================================================================================
# data: a fixed seed per (model, replicate); every process builds the same arrays


def make_data(model: str, n: int, d: int, rep: int = 0) -> dict:
    r = np.random.default_rng([SEED, MODELS.index(model) if model in MODELS else 99, rep])
    if model == "schools":
        y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
        sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
        if rep:
            y = y + r.normal(size=8)
        return {"sigma": sigma, "y": y}
    if model == "mlp":
        u = r.uniform(-2.0, 2.0, size=n)
        x = np.sin(2.0 * u) + 0.3 * u + 0.2 * r.normal(size=n)
        return {"u": u, "x": x}
    u = r.normal(size=(n, d))
    if model == "linear":
        w = 0.5 * r.normal(size=d)
        return {"u": u, "x": 1.0 + u @ w + r.normal(size=n)}
    if model == "logistic":
        w = 0.3 * r.normal(size=d)
        p = 1.0 / (1.0 + np.exp(-(0.2 + u @ w)))
        return {"u": u, "x": (r.uniform(size=n) < p).astype(np.float64)}
    if model == "poisson":
        w = 0.2 * r.normal(size=d)
        return {"u": u, "x": r.poisson(np.exp(0.5 + u @ w)).astype(np.float64)}
    if model == "student":
        w = r.normal(size=d)
        return {"u": u, "x": 1.0 + u @ w + 0.5 * r.standard_t(4.0, size=n)}
    raise ValueError(model)


def data_for(model, rep=0):
    n, d = CFG["sizes"][model]
    return make_data(model, n, d, rep)


# =============================================================================================
# the models, once per framework


def probmodels_programs(H=None):
    import jax.numpy as jnp
    import numpyro.distributions as dist

    from probmodels import noise, observe, param

    def linear(u, x=None):
        b = param("b", dist.Normal(0.0, 10.0))
        w = param("w", dist.Normal(0.0, 10.0), shape=(u.shape[1],))
        s = param("s", dist.HalfNormal(5.0))
        return observe("x", b + u @ w + noise.Gaussian(s), obs=x)

    def logistic(u, x=None):
        b = param("b", dist.Normal(0.0, 10.0))
        w = param("w", dist.Normal(0.0, 10.0), shape=(u.shape[1],))
        return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)

    def poisson(u, x=None):
        b = param("b", dist.Normal(0.0, 10.0))
        w = param("w", dist.Normal(0.0, 10.0), shape=(u.shape[1],))
        return observe("x", noise.Poisson(log_rate=b + u @ w), obs=x)

    def schools(sigma, y=None):
        mu = param("mu", dist.Normal(0.0, 5.0))
        tau = param("tau", dist.HalfCauchy(5.0))
        theta_tilde = param("theta_tilde", dist.Normal(0.0, 1.0), shape=(sigma.shape[0],))
        return observe("y", mu + tau * theta_tilde + noise.Gaussian(sigma), obs=y)

    def student(u, x=None):
        b = param("b", dist.Normal(0.0, 10.0))
        w = param("w", dist.Normal(0.0, 10.0), shape=(u.shape[1],))
        s = param("s", dist.HalfNormal(5.0))
        return observe("x", b + u @ w + noise.StudentT(df=4.0, scale=s), obs=x)

    h = H or CFG["sizes"]["mlp"][1]

    def mlp(u, x=None):
        W1 = param("W1", dist.Normal(0.0, 1.0), shape=(h,))
        b1 = param("b1", dist.Normal(0.0, 1.0), shape=(h,))
        W2 = param("W2", dist.Normal(0.0, 1.0), shape=(h,))
        b2 = param("b2", dist.Normal(0.0, 1.0))
        s = param("s", dist.HalfNormal(1.0))
        hidden = jnp.tanh(u[:, None] * W1 + b1)
        return observe("x", hidden @ W2 + b2 + noise.Gaussian(s), obs=x)

    return dict(linear=linear, logistic=logistic, poisson=poisson, schools=schools, student=student, mlp=mlp)


def numpyro_models():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def vec(name, d, loc, scale):
        return numpyro.sample(name, dist.Normal(loc, scale).expand([d]).to_event(1))

    def linear(u, x=None):
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        w = vec("w", u.shape[1], 0.0, 10.0)
        s = numpyro.sample("s", dist.HalfNormal(5.0))
        numpyro.sample("x", dist.Normal(b + u @ w, s), obs=x)

    def logistic(u, x=None):
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        w = vec("w", u.shape[1], 0.0, 10.0)
        numpyro.sample("x", dist.Bernoulli(logits=b + u @ w), obs=x)

    def poisson(u, x=None):
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        w = vec("w", u.shape[1], 0.0, 10.0)
        numpyro.sample("x", dist.Poisson(jnp.exp(b + u @ w)), obs=x)

    def schools(sigma, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        tt = vec("theta_tilde", sigma.shape[0], 0.0, 1.0)
        numpyro.sample("y", dist.Normal(mu + tau * tt, sigma), obs=y)

    def student(u, x=None):
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        w = vec("w", u.shape[1], 0.0, 10.0)
        s = numpyro.sample("s", dist.HalfNormal(5.0))
        numpyro.sample("x", dist.StudentT(4.0, b + u @ w, s), obs=x)

    h = CFG["sizes"]["mlp"][1]

    def mlp(u, x=None):
        W1 = vec("W1", h, 0.0, 1.0)
        b1 = vec("b1", h, 0.0, 1.0)
        W2 = vec("W2", h, 0.0, 1.0)
        b2 = numpyro.sample("b2", dist.Normal(0.0, 1.0))
        s = numpyro.sample("s", dist.HalfNormal(1.0))
        hidden = jnp.tanh(u[:, None] * W1 + b1)
        numpyro.sample("x", dist.Normal(hidden @ W2 + b2, s), obs=x)

    return dict(linear=linear, logistic=logistic, poisson=poisson, schools=schools, student=student, mlp=mlp)


def pymc_model(model: str, data: dict):
    import pymc as pm

    with pm.Model() as m:
        if model in ("linear", "logistic", "poisson", "student"):
            u, x = data["u"], data["x"]
            b = pm.Normal("b", 0.0, 10.0)
            w = pm.Normal("w", 0.0, 10.0, shape=u.shape[1])
            eta = b + pm.math.dot(u, w)
            if model == "linear":
                s = pm.HalfNormal("s", 5.0)
                pm.Normal("x", eta, s, observed=x)
            elif model == "logistic":
                pm.Bernoulli("x", logit_p=eta, observed=x.astype(np.int64))
            elif model == "poisson":
                pm.Poisson("x", mu=pm.math.exp(eta), observed=x.astype(np.int64))
            else:
                s = pm.HalfNormal("s", 5.0)
                pm.StudentT("x", nu=4.0, mu=eta, sigma=s, observed=x)
        elif model == "schools":
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            tt = pm.Normal("theta_tilde", 0.0, 1.0, shape=len(data["y"]))
            pm.Normal("y", mu + tau * tt, data["sigma"], observed=data["y"])
        elif model == "mlp":
            h = CFG["sizes"]["mlp"][1]
            u, x = data["u"], data["x"]
            W1 = pm.Normal("W1", 0.0, 1.0, shape=h)
            b1 = pm.Normal("b1", 0.0, 1.0, shape=h)
            W2 = pm.Normal("W2", 0.0, 1.0, shape=h)
            b2 = pm.Normal("b2", 0.0, 1.0)
            s = pm.HalfNormal("s", 1.0)
            hidden = pm.math.tanh(u[:, None] * W1 + b1)
            pm.Normal("x", pm.math.dot(hidden, W2) + b2, s, observed=x)
    return m


STAN = dict(
    # Stan's own GLM functions where they exist (what a Stan user writes for these models).
    linear="""
data { int<lower=0> N; int<lower=0> D; matrix[N, D] u; vector[N] x; }
parameters { real b; vector[D] w; real<lower=0> s; }
model { b ~ normal(0, 10); w ~ normal(0, 10); s ~ normal(0, 5); x ~ normal_id_glm(u, b, w, s); }
""",
    logistic="""
data { int<lower=0> N; int<lower=0> D; matrix[N, D] u; array[N] int<lower=0, upper=1> x; }
parameters { real b; vector[D] w; }
model { b ~ normal(0, 10); w ~ normal(0, 10); x ~ bernoulli_logit_glm(u, b, w); }
""",
    poisson="""
data { int<lower=0> N; int<lower=0> D; matrix[N, D] u; array[N] int<lower=0> x; }
parameters { real b; vector[D] w; }
model { b ~ normal(0, 10); w ~ normal(0, 10); x ~ poisson_log_glm(u, b, w); }
""",
    schools="""
data { int<lower=0> J; vector[J] y; vector<lower=0>[J] sigma; }
parameters { real mu; real<lower=0> tau; vector[J] theta_tilde; }
model { mu ~ normal(0, 5); tau ~ cauchy(0, 5); theta_tilde ~ normal(0, 1); y ~ normal(mu + tau * theta_tilde, sigma); }
""",
    student="""
data { int<lower=0> N; int<lower=0> D; matrix[N, D] u; vector[N] x; }
parameters { real b; vector[D] w; real<lower=0> s; }
model { b ~ normal(0, 10); w ~ normal(0, 10); s ~ normal(0, 5); x ~ student_t(4, b + u * w, s); }
""",
    mlp="""
data { int<lower=0> N; int<lower=0> H; vector[N] u; vector[N] x; }
parameters { row_vector[H] W1; row_vector[H] b1; vector[H] W2; real b2; real<lower=0> s; }
model {
  matrix[N, H] hidden = tanh(u * W1 + rep_matrix(b1, N));
  W1 ~ normal(0, 1); b1 ~ normal(0, 1); W2 ~ normal(0, 1); b2 ~ normal(0, 1); s ~ normal(0, 1);
  x ~ normal(hidden * W2 + b2, s);
}
""",
)


def stan_data(model, data):
    if model == "schools":
        return {"J": 8, "y": data["y"], "sigma": data["sigma"]}
    if model == "mlp":
        return {"N": len(data["u"]), "H": CFG["sizes"]["mlp"][1], "u": data["u"], "x": data["x"]}
    n, d = data["u"].shape
    x = data["x"]
    if model in ("logistic", "poisson"):
        x = x.astype(int)
    return {"N": n, "D": d, "u": data["u"], "x": x}


# =============================================================================================
# workers (each in a fresh subprocess)


class CompileLog:
    """JAX's compile events while active: seconds of tracing, lowering to MLIR and XLA compiling,
    in total and per jitted function (JAX passes ``fun_name`` to its monitoring listeners), and
    persistent-cache hits (an XLA "compile" that was a cache read)."""

    EVENTS = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "xla",
    }

    def __init__(self, log_functions=False):
        import jax

        self.active = False
        self._hit = False
        self.__enter__()
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._on)
        jax.monitoring.register_event_listener(self._on_event)

    def _on_event(self, event, **_):
        if self.active and event == "/jax/compilation_cache/cache_hits":
            self._hit = True

    def _on(self, event, duration, **kw):
        if not (self.active and event in self.EVENTS):
            return
        k = self.EVENTS[event]
        self.totals[k] += duration
        name = str(kw.get("fun_name", "?"))
        m = re.fullmatch(r"(?:jit|pjit)\((.*)\)", name)
        name = m.group(1) if m else name
        a = self.functions.setdefault(name, {"trace": 0.0, "lower": 0.0, "xla": 0.0, "n": 0, "cache_hit": 0})
        a[k] += duration
        if k == "xla":
            self.totals["n_xla"] += 1
            a["n"] += 1
            if self._hit:
                self.totals["cache_hits"] += 1
                a["cache_hit"] += 1
            self._hit = False

    def __enter__(self):
        self.totals = {"trace": 0.0, "lower": 0.0, "xla": 0.0, "n_xla": 0, "cache_hits": 0}
        self.functions = {}
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        return False

    def summary(self):
        return dict(self.totals, functions={k: dict(v) for k, v in self.functions.items()})


def max_depth(model):
    return CFG["mlp_max_depth"] if model == "mlp" and CFG.get("mlp_max_depth") else 10


def w_probmodels_nuts(job):
    t0 = time.perf_counter()
    import probmodels

    import_s = time.perf_counter() - t0
    if job.get("xla_defaults"):
        probmodels._config._options = {}  # XLA's own compile options instead of probmodels'
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


def _median_time(fn, reps):
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def _first_time(fn):
    """The first call of a reference in this process (its modules imported, nothing run yet):
    what its user waits for on a first fit, as probmodels' first fit is timed."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def point_programs():
    """GLM programs for MLE (priors are ignored by mle) and MAP with scikit-learn's penalties."""
    import numpyro.distributions as dist

    from probmodels import noise, observe, param
    from probmodels.priors import sklearn_prior

    def linear(u, x=None):
        b = param("b")
        w = param("w", shape=(u.shape[1],))
        s = param("s", support="positive")
        return observe("x", b + u @ w + noise.Gaussian(s), obs=x)

    def logistic(u, x=None):
        b = param("b")
        w = param("w", shape=(u.shape[1],))
        return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)

    def poisson(u, x=None):
        b = param("b")
        w = param("w", shape=(u.shape[1],))
        return observe("x", noise.Poisson(log_rate=b + u @ w), obs=x)

    ALPHA, C = 10.0, 0.5

    def ridge(u, x=None):  # Ridge(alpha): RSS + alpha |w|^2 = 2 sigma^2 (nll + |w|^2 / (2 tau^2)), sigma = 1
        b = param("b")
        w = param("w", sklearn_prior("Ridge", alpha=ALPHA, noise_scale=1.0), shape=(u.shape[1],))
        return observe("x", b + u @ w + noise.Gaussian(1.0), obs=x)

    def logistic_l2(u, x=None):  # LogisticRegression(C): C sum(logloss) + |w|^2 / 2
        b = param("b")
        w = param("w", sklearn_prior("LogisticRegression_l2", C=C), shape=(u.shape[1],))
        return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)

    def poisson_l2_for(n, alpha):
        # PoissonRegressor(alpha): mean half-deviance + alpha |w|^2 / 2 = (nll + N alpha |w|^2 / 2) / N + c
        # (sklearn_prior has no PoissonRegressor entry; this is the same translation by hand)
        tau = 1.0 / np.sqrt(n * alpha)

        def poisson_l2(u, x=None):
            b = param("b")
            w = param("w", dist.Normal(0.0, tau), shape=(u.shape[1],))
            return observe("x", noise.Poisson(log_rate=b + u @ w), obs=x)

        return poisson_l2

    return dict(linear=linear, logistic=logistic, poisson=poisson, ridge=ridge, logistic_l2=logistic_l2,
                poisson_l2_for=poisson_l2_for, ALPHA=ALPHA, C=C)


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


def w_gradient(job):
    """One gradient of the logistic NLL at N = 1e6, d = 50 against streaming the matrix once."""
    import probmodels  # noqa: F401
    import jax
    import jax.numpy as jnp

    from probmodels.solvers._objective import Objective

    n, d = job["n"], job["d"]
    reps = 10
    data = make_data("logistic", n, d, 0)
    u = data["u"]
    prog = point_programs()["logistic"]
    obj = Objective(prog, data)
    f = obj.fns["log_joint_raw"]
    z = jnp.asarray(np.random.default_rng(1).normal(size=obj.dim) * 0.01)
    out = dict(bytes=u.nbytes)

    def timeit(fn, *a):
        jax.block_until_ready(fn(*a))  # compile / warm
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(fn(*a))
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))

    g = jax.jit(jax.grad(lambda z, a: -f(z, a, priors=False, jacobian=False)))
    out["probmodels_grad_s"] = timeit(g, z, obj.arrays)
    vg = jax.jit(jax.value_and_grad(lambda z, a: -f(z, a, priors=False, jacobian=False)))
    out["probmodels_value_and_grad_s"] = timeit(vg, z, obj.arrays)
    val = jax.jit(lambda z, a: -f(z, a, priors=False, jacobian=False))
    out["probmodels_value_s"] = timeit(val, z, obj.arrays)
    # the same gradient written by hand in JAX: X^T (sigmoid(eta) - x)
    U, X = obj.arrays["u"], obj.arrays["x"]

    def nll(z, U, X):
        eta = z[0] + U @ z[1:]
        return jnp.sum(jax.nn.softplus(eta) - X * eta)

    out["hand_jax_grad_s"] = timeit(jax.jit(jax.grad(nll)), z, U, X)

    def manual(z, U, X):
        r = jax.nn.sigmoid(z[0] + U @ z[1:]) - X
        return jnp.concatenate([jnp.sum(r)[None], r @ U])

    out["hand_jax_manual_grad_s"] = timeit(jax.jit(manual), z, U, X)
    out["jax_matvec_s"] = timeit(jax.jit(lambda U, v: U @ v), U, z[1:])
    out["jax_sum_s"] = timeit(jax.jit(jnp.sum), U)
    # Hessian (what each Newton iteration adds)
    from probmodels.solvers._optimize import hessian_of

    h = jax.jit(hessian_of(lambda z, a: -f(z, a, priors=False, jacobian=False)))
    out["probmodels_hessian_s"] = timeit(h, z, obj.arrays)
    out["jax_hessian_fwd_over_rev_s"] = timeit(jax.jit(jax.hessian(lambda z, a: -f(z, a, priors=False, jacobian=False))), z, obj.arrays)
    # how many matrix products XLA emits for value_and_grad (2 is the minimum: u @ w and r @ u)
    hlo = vg.lower(z, obj.arrays).compile().as_text()
    out["value_and_grad_dots"] = len(re.findall(r"\bdot\(", hlo))
    out["grad_dots"] = len(re.findall(r"\bdot\(", g.lower(z, obj.arrays).compile().as_text()))
    out["hand_xtwx_s"] = timeit(jax.jit(lambda z, U: (U * (jax.nn.sigmoid(z[0] + U @ z[1:]) * (1 - jax.nn.sigmoid(z[0] + U @ z[1:])))[:, None]).T @ U), z, U)
    # the memory floor: numpy reading the array once (sum) and reading + writing it (copy)
    un = np.asarray(u)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        un.sum()
        ts.append(time.perf_counter() - t)
    out["numpy_sum_s"] = float(np.median(ts))
    dst = np.empty_like(un)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, un)
        ts.append(time.perf_counter() - t)
    out["numpy_copy_s"] = float(np.median(ts))
    wts = np.random.default_rng(2).uniform(size=n)
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        un.T @ (wts[:, None] * un)
        ts.append(time.perf_counter() - t)
    out["numpy_xtwx_s"] = float(np.median(ts))
    v = np.ones(d)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        un @ v
        ts.append(time.perf_counter() - t)
    out["numpy_matvec_s"] = float(np.median(ts))
    return out, None


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


class Clock:
    """``with clock("name")``: wall seconds into ``out[name + "_s"]``, this process's CPU seconds
    (all its threads) into ``out[name + "_cpu_s"]``; CPU time is what other processes on a busy
    machine disturb least."""

    def __init__(self, out):
        self.out = out

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.out[self.name + "_s"] = time.perf_counter() - self.t
        self.out[self.name + "_cpu_s"] = time.process_time() - self.c
        return False


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


WORKERS = dict(
    probmodels=w_probmodels_nuts,
    numpyro=w_numpyro_nuts,
    pymc=w_pymc,
    pymc_prime=w_pymc_prime,
    nutpie=w_nutpie,
    pystan=w_pystan,
    point=w_point,
    point_floor=w_point_floor,
    gradient=w_gradient,
    breakdown=w_prototype_breakdown,
    nuts_variant=w_nuts_variant,
)


def worker_main(spec: str):
    job = json.loads(spec)
    if job.get("quick"):
        CFG.update(QUICK)
    out, draws = WORKERS[job["kind"]](job)
    if draws is not None:
        np.savez(job["out"] + ".npz", **{k: np.asarray(v, dtype=np.float64) for k, v in draws.items()})
    with open(job["out"], "w") as fh:
        json.dump(out, fh)


# =============================================================================================
# the parent: run the workers, compute the diagnostics, write RESULTS.md


def machine_busy(seconds: float = 2.0) -> float:
    """Share of the machine's CPU busy over the next ``seconds`` (no worker runs meanwhile: it is
    what other processes use)."""
    def snap():
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
        return sum(f[:8]), f[3] + f[4]

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


class Runner:
    """Runs workers one at a time. On a shared machine it first waits (up to ``wait_budget``
    seconds over the whole run) until other processes use less than ``quiet`` of the CPU, and
    runs a job again once if other processes took more than ``retry_above`` of the machine while
    it ran: timings are only comparable when the tools had the machine to themselves."""

    def __init__(self, quick: bool, workdir: str, log, wait_budget: float = 0.0, quiet: float = 0.10, retry_above: float = 0.15):
        self.quick, self.workdir, self.log = quick, workdir, log
        self.failures = {}
        self.loads = []
        self.wait_budget, self.quiet, self.retry_above = wait_budget, quiet, retry_above
        self.waited = 0.0
        self.retries = 0

    def wait_quiet(self):
        while self.waited < self.wait_budget:
            busy = machine_busy(2.0)
            self.waited += 2.0
            if busy < self.quiet:
                return
            time.sleep(3.0)
            self.waited += 3.0

    def run(self, job: dict, env_extra: dict | None = None, timeout: float = 1200.0):
        if self.wait_budget > 0:
            self.wait_quiet()
        out, draws, err = self._run(job, env_extra, timeout)
        bg = ((out or {}).get("_process") or {}).get("background", 0.0)
        if out is not None and bg > self.retry_above and self.waited < self.wait_budget:
            self.retries += 1
            self.log(f"    other processes took {100 * bg:.0f}% of the machine: waiting for a quiet machine and running it again")
            self.wait_quiet()
            out2, draws2, err2 = self._run(job, env_extra, timeout)
            if out2 is not None and out2["_process"]["background"] < bg:
                out, draws, err = out2, draws2, err2
        return out, draws, err

    def _run(self, job: dict, env_extra: dict | None = None, timeout: float = 1200.0):
        job = dict(job, quick=self.quick, out=os.path.join(self.workdir, f"job-{uuid.uuid4().hex[:10]}.json"))
        env = dict(os.environ)
        env.setdefault("PROBMODELS_CACHE_DIR", "off")
        env["PYTHONWARNINGS"] = "ignore"
        env.update(env_extra or {})
        label = " ".join(f"{k}={v}" for k, v in job.items() if k not in ("out", "quick"))
        load0 = os.getloadavg()[0]
        busy0 = busy_cpu_seconds()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        try:
            res = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)],
                capture_output=True, text=True, env=env, timeout=timeout, cwd=self.workdir,
            )
            rc, err = res.returncode, res.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = "timeout", f"timed out after {timeout:.0f} s\n" + (e.stderr or b"").decode(errors="replace")[-2000:] if isinstance(e.stderr, bytes) else f"timed out after {timeout:.0f} s"
        took = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        load1 = os.getloadavg()[0]
        # CPU seconds other processes used meanwhile (the other engineer's tests, ...)
        foreign = max(busy_cpu_seconds() - busy0 - cpu, 0.0)
        ncpu = os.cpu_count() or 1
        bg = foreign / max(took * ncpu, 1e-9)
        self.loads.append(bg)
        if rc != 0 or not os.path.exists(job["out"]):
            tail = "\n".join(err.strip().splitlines()[-15:]) if err else ""
            self.log(f"  FAILED ({took:.0f} s): {label}\n{textwrap.indent(tail, '    ')}")
            return None, None, tail
        with open(job["out"]) as fh:
            out = json.load(fh)
        draws = None
        if os.path.exists(job["out"] + ".npz"):
            with np.load(job["out"] + ".npz") as z:
                draws = {k: z[k] for k in z.files}
        self.log(f"  ok ({took:.0f} s, cpu {cpu:.0f} s, other processes {100 * bg:.0f}% of the machine): {label}")
        out["_process"] = dict(elapsed_s=took, cpu_s=cpu, load_before=load0, load_after=load1, background=bg)
        return out, draws, None


def busy_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``), 0 where unavailable."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


MLP_GRID = np.linspace(-2.0, 2.0, 9)  # inputs at which the MLP's predictions are compared


def span(values, spec):
    """``"a to b"`` (or ``"a"`` when they are equal) with the format ``spec``."""
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo} to {hi}"


def identified(model: str, draws: dict) -> dict:
    """The quantities a sampler must get right. For the MLP these are its predictions at
    ``MLP_GRID`` and the noise scale, not the weights: the posterior is invariant to permuting
    the hidden units and to flipping the sign of one unit's weights (tanh is odd), so chains in
    symmetric copies of one mode give r-hat >> 1 and single-digit ESS on every weight while
    agreeing on every prediction. Other models: the latent parameters as they are."""
    if model != "mlp":
        return draws
    W1, b1, W2, b2 = (np.asarray(draws[k]) for k in ("W1", "b1", "W2", "b2"))
    hidden = np.tanh(MLP_GRID[None, None, :, None] * W1[:, :, None, :] + b1[:, :, None, :])
    f = np.einsum("cdgh,cdh->cdg", hidden, W2) + b2[:, :, None]
    return {"f": f, "s": np.asarray(draws["s"])}


def posterior_diagnostics(draws: dict, model: str | None = None) -> dict:
    import arviz as az

    def stats(d):
        ds = az.convert_to_dataset({k: v for k, v in d.items()})
        ess, tail, rhat = az.ess(ds, method="bulk"), az.ess(ds, method="tail"), az.rhat(ds)
        return dict(
            min_ess_bulk=float(min(np.nanmin(ess[k].values) for k in d)),
            min_ess_tail=float(min(np.nanmin(tail[k].values) for k in d)),
            max_rhat=float(max(np.nanmax(rhat[k].values) for k in d)),
        )

    out = stats(identified(model, draws))
    if model == "mlp":
        out.update({f"weights_{k}": v for k, v in stats(draws).items()})
    return out


def versions() -> dict:
    out = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for p in ("probmodels", "jax", "jaxlib", "numpyro", "arviz", "numpy", "scipy", "optax", "pymc", "pytensor", "nutpie", "numba", "pystan", "httpstan", "statsmodels", "scikit-learn"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def library_state() -> dict:
    """The probmodels commit measured, and a hash of its working-tree changes (the library may be
    edited while the benchmark runs: the start and end states are compared)."""
    import hashlib

    def git(*a):
        try:
            return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD")
    tree = git("rev-parse", "--short", "HEAD:probmodels")  # the library's files (a commit elsewhere leaves it)
    dirty = git("status", "--porcelain", "--", "probmodels")
    diff = git("diff", "HEAD", "--", "probmodels")
    return dict(commit=head, tree=tree, dirty=bool(dirty), diff_hash=hashlib.sha1(diff.encode()).hexdigest()[:10] if diff else "")


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return dict(nproc=nproc, memory=mem, cpu=cpu, os=platform.platform())


def fmt(v, nd=2):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and short chains (a smoke test)")
    ap.add_argument("--sections", default="nuts,point,gradient,analysis", help="comma-separated subset of nuts,point,gradient,analysis")
    ap.add_argument("--models", default=",".join(MODELS), help="models for the NUTS section")
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="samplers for the NUTS section")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    ap.add_argument("--wait", type=float, default=900.0,
                    help="seconds in all to wait for other processes to leave the CPU before jobs, and to rerun "
                         "a job they disturbed (0: never wait)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--render", default=None, metavar="RAW_JSON",
                    help="only rewrite --out from the raw numbers of an earlier run (its --json or raw.json)")
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker)
        return
    if args.render:
        with open(args.render) as fh:
            raw = json.load(fh)
        if raw.get("config"):
            CFG.update(raw["config"])
        with open(args.out, "w") as fh:
            fh.write(render(raw, args))
        print(f"wrote {args.out} from {args.render}")
        return
    if args.quick:
        CFG.update(QUICK)
    sections = set(args.sections.split(","))
    models = [m for m in args.models.split(",") if m]
    samplers = [s for s in args.samplers.split(",") if s]
    t_start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="probmodels-bench-")

    def log(msg):
        print(msg, flush=True)

    R = Runner(args.quick, workdir, log, wait_budget=args.wait)
    raw = dict(config={k: v for k, v in CFG.items()}, versions=versions(), machine=machine(), library_start=library_state())
    failures = {}

    def cache():
        return tempfile.mkdtemp(prefix="pmcache-", dir=workdir)

    pytensor_flags = f"compiledir={tempfile.mkdtemp(prefix='pytensor-', dir=workdir)}"

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

    # -- gradient -----------------------------------------------------------------------------
    grad = None
    if "gradient" in sections:
        log("== gradient at N = 1e6")
        nb, db = CFG["big"]
        grad, _, err = R.run(dict(kind="gradient", n=nb, d=db))
        if grad is None:
            failures["gradient"] = err
        raw["gradient"] = grad

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

    total = time.perf_counter() - t_start
    raw["total_s"] = total
    raw["failures"] = failures
    raw["background"] = R.loads
    raw["waited_s"], raw["retries"] = R.waited, R.retries
    raw["library_end"] = library_state()
    raw["generated"] = time.strftime("%Y-%m-%d %H:%M")
    raw["quick"] = bool(args.quick)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1, default=str)
    with open(os.path.join(workdir, "raw.json"), "w") as fh:
        json.dump(raw, fh, indent=1, default=str)
    text = render(raw, args)
    with open(args.out, "w") as fh:
        fh.write(text)
    log(f"wrote {args.out} ({total / 60:.1f} min); raw numbers in {os.path.join(workdir, 'raw.json')}")


# =============================================================================================
# RESULTS.md


def bg(o) -> str:
    p = (o or {}).get("_process") or {}
    return f"{100 * p['background']:.0f}%" if "background" in p else "n/a"


def render(raw: dict, args) -> str:
    cfg, v, mach = raw["config"], raw["versions"], raw["machine"]
    L = []
    add = L.append
    quick = bool(args.quick or raw.get("quick"))  # (--render: as the run was)
    cmd = ".venv/bin/python benchmarks/run.py" + (" --quick" if quick else "")
    add("# probmodels benchmarks (issue 7)\n")
    add(f"Generated by `benchmarks/run.py` on {raw.get('generated') or time.strftime('%Y-%m-%d %H:%M')} in {raw['total_s'] / 60:.1f} min"
        + (" (**--quick: small sizes, short chains; not the reference numbers**)" if quick else "") + ".\n")
    add("Rerun (from the repository root):\n")
    add("```bash\npython3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,bench]'\n" + cmd + "\n```\n")
    add(f"**Machine**: `nproc` = {mach['nproc']}, memory {mach['memory']}, CPU {mach['cpu']}, {mach['os']}.\n")
    add("**Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".\n")
    ls, le = raw.get("library_start") or {}, raw.get("library_end") or {}
    if ls:
        state = f"probmodels at commit `{ls['commit']}`" + (f" with uncommitted changes (diff {ls['diff_hash']})" if ls["dirty"] else "")
        ident = "tree" if ls.get("tree") and le.get("tree") else "commit"
        if le and (le.get(ident), le.get("diff_hash")) != (ls.get(ident), ls.get("diff_hash")):
            state += (f"; **the library changed while the benchmark ran** (at the end: `{le['commit']}`"
                      + (f", diff {le['diff_hash']}" if le.get("dirty") else "") + "), so later sections may measure newer code")
        add(f"**Library measured**: {state}.\n")
    loads = raw.get("background") or []
    if loads:
        mean = 100 * float(np.mean(loads))
        add(f"**Other processes** used on average {mean:.0f}% of the machine's CPU while the benchmark's "
            f"workers ran (from `/proc/stat`, minus the workers' own CPU time; per run in the *other processes* "
            f"columns); the run waited {raw.get('waited_s', 0):.0f} s in all for a quiet machine and "
            f"reran {raw.get('retries', 0)} disturbed job(s)." + (" **The machine was shared: wall times are inflated, most for the tools that "
                            "use both cores (PyMC with `cores=2`, nutpie, pystan), least for single-threaded runs.**"
                            if mean > 10 else "") + "\n")

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

    g = raw.get("gradient")
    if g:
        gb = g["bytes"] / 1e6
        floor = g["numpy_sum_s"]
        add(f"## One gradient of the logistic negative log-likelihood, N = {cfg['big'][0]:,}, d = {cfg['big'][1]} ({gb:.0f} MB design matrix)\n")
        add("Median of 10 calls after a warm-up call. The floor is reading the matrix once (`numpy.sum`, as "
            "issue 7 asks; `jax.jit(jnp.sum)` reads it faster, so the second ratio is the stricter one). "
            f"XLA emits {g.get('grad_dots', '?')} matrix products for the gradient and {g.get('value_and_grad_dots', '?')} "
            "for value_and_grad (2 are needed: `u @ w` and `r @ u`).\n")
        add("| what | seconds | x numpy floor | x jnp.sum | GB/s |")
        add("|---|---|---|---|---|")
        rows = [
            ("numpy `u.sum()` (read once: the floor)", g["numpy_sum_s"]),
            ("numpy `np.copyto` (read + write)", g["numpy_copy_s"]),
            ("numpy `u @ v` (one matvec)", g["numpy_matvec_s"]),
            ("`jax.jit(jnp.sum)`", g["jax_sum_s"]),
            ("`jax.jit(u @ v)`", g["jax_matvec_s"]),
            ("**probmodels `jax.jit(jax.grad(log_joint_raw))`**", g["probmodels_grad_s"]),
            ("probmodels value_and_grad", g["probmodels_value_and_grad_s"]),
            ("probmodels value only", g["probmodels_value_s"]),
            ("hand-written JAX nll, `jax.grad`", g["hand_jax_grad_s"]),
            ("hand-written gradient `u.T @ (sigmoid(eta) - x)`", g["hand_jax_manual_grad_s"]),
            ("probmodels Hessian (`jacrev(grad)`, what each Newton step adds)", g["probmodels_hessian_s"]),
            ("`jax.hessian` (forward-over-reverse)", g.get("jax_hessian_fwd_over_rev_s", float("nan"))),
            ("hand-written `X^T W X` in JAX", g["hand_xtwx_s"]),
            ("numpy `X.T @ (w[:, None] * X)` (BLAS)", g.get("numpy_xtwx_s", float("nan"))),
        ]
        for name, s in rows:
            add(f"| {name} | {s:.4f} | {s / floor:.2f} | {s / g['jax_sum_s']:.2f} | {g['bytes'] / s / 1e9:.1f} |")
        add("")

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

    fails = raw.get("failures") or {}
    add("## Peers that failed\n")
    if not fails:
        add("None: probmodels, raw numpyro, PyMC, nutpie and pystan all installed and ran every model.\n")
    else:
        for k, e in fails.items():
            add(f"- **{k}**:\n\n```\n{e}\n```\n")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
