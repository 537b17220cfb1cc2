"""The benchmark's models, once per framework (probmodels, numpyro, PyMC, Stan), their data from a
fixed seed, and the diagnostics computed the same way for every sampler's draws."""

from __future__ import annotations


import numpy as np

from harness import CFG, SEED

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


