"""Hierarchical model: Rubin's eight schools, where the MLE pools completely and the posterior partially.

Eight schools ran the same coaching programme for the SAT-V; each reports an estimated effect
``x_j`` with a known standard error ``sigma_j`` (Rubin 1981; Gelman et al., *Bayesian Data
Analysis*, 3rd ed., section 5.5, table 5.2). Each school has its own true effect ``theta_j``, and
the effects are drawn from a population ``N(mu, tau)``:

.. math::

    \\theta_j = \\mu + \\tau\\,\\eta_j,\\quad \\eta_j \\sim N(0, 1),
    \\qquad x_j = \\theta_j + \\varepsilon_j,\\quad \\varepsilon_j \\sim N(0, \\sigma_j).

``program`` is this *non-centred* form (``eta`` is a ``latent`` site, ``theta`` a
``numpyro.deterministic``); ``centred`` draws ``theta ~ N(mu, tau)`` directly. They are the same
model with the same posterior, but NUTS has to follow the funnel of the centred form (``theta``
squeezed to ``mu`` as ``tau -> 0``) and reports divergences there; the non-centred form has no
funnel.

**Four answers side by side.** ``eta`` is a ``latent``, not a parameter, so:

* ``fit(program, data, "mle")`` is the *marginal* MLE: ``eta`` integrated out (by the Laplace
  approximation, exact here because everything is Gaussian), which is the likelihood of
  ``marginal``:

  .. math::

      x_j \\sim N\\big(\\mu, \\sqrt{\\tau^2 + \\sigma_j^2}\\big).

* ``fit(program, data, "map")`` is the marginal MAP (the same with the priors of ``mu`` and
  ``tau``);
* ``fit(program, data, "map", joint=True)`` is the *joint* mode over ``mu``, ``tau`` and
  ``eta`` together, the answer a toolkit without latents gives;
* ``fit(program, data, "nuts")`` is the posterior (latents sampled with the params).

**The marginal MLE of tau is 0, on the boundary.** The derivative of the marginal
log-likelihood in ``tau^2`` at 0 is ``sum_j ((x_j - mu)^2 / sigma_j^4 - 1 / sigma_j^2) / 2 < 0``
at the precision-weighted mean: the spread of the eight estimates is *smaller* than their
standard errors alone explain. The likelihood maximised over ``mu`` falls as ``tau`` grows from 0
(-22.32 at 0, -22.53 at 4, -23.13 at 8), so the MLE sits on the boundary ``tau = 0``: the fit
says so (``tau`` lies on the boundary of its support; no Wald interval is valid there, and a
likelihood-ratio test of ``tau = 0`` is one-sided). There ``mu`` is the precision-weighted mean
``sum(x_j / sigma_j^2) / sum(1 / sigma_j^2) = 7.69`` and every school gets the same effect:
complete pooling. The marginal MAP collapses to ``tau = 0`` as well (the HalfCauchy(5) prior's
density is largest at 0), and so does the joint mode (at ``tau = 0`` the likelihood no longer
sees ``eta``, whose prior then pulls it to 0). The centred joint mode does not exist (the density
``N(theta | mu, tau)`` grows without bound as ``theta -> mu``, ``tau -> 0``).

The posterior keeps the whole range of ``tau`` consistent with the data (posterior mean about 3.5
under the HalfCauchy(5) prior): each school's ``theta_j`` is pulled from its raw ``x_j`` toward
``mu``, by more for the schools with larger ``sigma_j``: partial pooling.

Priors as in the Stan case study: ``mu ~ N(0, 5)``, ``tau ~ HalfCauchy(5)``.

No ``ALTERNATIVES``: they are other noise models for the same observations, compared by LOO,
and here the noise is known (the schools' standard errors). ``centred`` is the same model, not an
alternative; fit it with ``probmodels.fit(centred, data(), "nuts")`` to see the divergences.

In ``probmodels report`` the MLE and MAP rows are the marginal ones (``tau`` on the boundary,
said in the warnings) and ``eta``'s rows, listed after the params, its conditional modes. With 8
observations the report has no held-out comparison (it needs 10).

Run: ``python models/hierarchical.py`` or ``probmodels report models/hierarchical.py``.
"""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from probmodels import latent, noise, observe, param

# BDA3 table 5.2: estimated coaching effects and their standard errors
X = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

# the non-centred posterior has a little curvature left near tau = 0: at the default 0.8 a
# divergence or two can appear
FIT_OPTIONS = {"nuts": {"target_accept": 0.9}}


def program(sigma, x=None):
    """Non-centred: ``theta = mu + tau * eta``, ``eta ~ N(0, 1)`` a latent (integrated out by
    mle and map)."""
    mu = param("mu", prior=dist.Normal(0.0, 5.0))
    tau = param("tau", prior=dist.HalfCauchy(5.0))
    eta = latent("eta", dist.Normal(0.0, 1.0), shape=(len(sigma),))
    theta = numpyro.deterministic("theta", mu + tau * eta)
    return observe("x", theta + noise.Gaussian(sigma), obs=x)


def centred(sigma, x=None):
    """Centred: ``theta ~ N(mu, tau)`` directly (the same model; a funnel for NUTS)."""
    mu = param("mu", prior=dist.Normal(0.0, 5.0))
    tau = param("tau", prior=dist.HalfCauchy(5.0))
    theta = latent("theta", dist.Normal(mu, tau), shape=(len(sigma),))
    return observe("x", theta + noise.Gaussian(sigma), obs=x)


def marginal(sigma, x=None):
    """``theta`` integrated out: ``x_j ~ N(mu, sqrt(tau^2 + sigma_j^2))`` (its MLE has ``tau = 0``)."""
    mu = param("mu", prior=dist.Normal(0.0, 5.0))
    tau = param("tau", prior=dist.HalfCauchy(5.0))
    return observe("x", mu + noise.Gaussian(jnp.sqrt(tau**2 + sigma**2)), obs=x)


def data() -> dict:
    """The eight schools (BDA3 table 5.2)."""
    return {"sigma": SIGMA.copy(), "x": X.copy()}


def pooled_mean(x=X, sigma=SIGMA) -> float:
    """The precision-weighted mean ``sum(x / sigma^2) / sum(1 / sigma^2)``: the MLE of ``mu``
    at ``tau = 0``."""
    w = 1.0 / np.asarray(sigma) ** 2
    return float(np.sum(w * np.asarray(x)) / np.sum(w))


if __name__ == "__main__":
    import probmodels
    from probmodels.report import report

    report(__file__, out="report-hierarchical")

    # joint mode, marginal MLE, marginal MAP and posterior side by side; the shrinkage of each
    # school; the centred form's divergences
    d = data()
    fits = {
        "joint mode": probmodels.fit(program, d, "map", joint=True),
        "marginal MLE": probmodels.fit(program, d, "mle"),
        "marginal MAP": probmodels.fit(program, d, "map"),
        "posterior": probmodels.fit(program, d, "nuts", **FIT_OPTIONS["nuts"]),
    }
    print(probmodels.compare(fits).loc[["mu", "tau"]])
    for label, f in fits.items():
        for w in f.diagnostics["warnings"]:
            print(f"{label}: {w}")
    post = fits["posterior"]
    theta = np.asarray(post.draws["theta"]).reshape(-1, len(X)).mean(axis=0)
    print(f"\nschool   x_j  sigma_j  posterior mean theta_j   (pooled mean {pooled_mean():.2f})")
    for j, (xj, sj, tj) in enumerate(zip(X, SIGMA, theta)):
        print(f"{'ABCDEFGH'[j]:>6} {xj:5.0f} {sj:8.0f} {tj:12.2f}")
    divergences = probmodels.fit(centred, d, "nuts").diagnostics["divergences"]
    print(f"\nNUTS divergences: centred {divergences}, non-centred {post.diagnostics['divergences']}")
