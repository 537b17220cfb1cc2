"""Robust regression: a line through data with 10% gross outliers, under Student-t noise.

    x = intercept + slope * u + eps,   eps ~ StudentT(df=4, scale)

The same program is solved by MLE (priors ignored), MAP, a Laplace approximation, VI and NUTS,
and the estimates are set side by side. Run it: ``python models/robust_regression.py``.
"""

import numpy as np
import numpyro.distributions as dist

import probmodels
from probmodels import noise, observe, param

TRUTH = {"intercept": 1.0, "slope": 2.0}


def program(u, x=None):
    slope = param("slope", prior=dist.Normal(0.0, 10.0))
    intercept = param("intercept")  # no prior: flat (improper)
    scale = param("scale", prior=dist.HalfNormal(5.0))  # support taken from the prior
    x_hat = intercept + slope * u  # f_theta(u)
    return observe("x", x_hat + noise.StudentT(df=4.0, scale=scale), obs=x)


def data(n: int = 100, seed: int = 0) -> dict:
    """``n`` points on the line with Gaussian noise (sd 0.5), 10% of them shifted by +8 to +12."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-2.0, 2.0, size=n)
    x = TRUTH["intercept"] + TRUTH["slope"] * u + rng.normal(scale=0.5, size=n)
    bad = rng.choice(n, size=n // 10, replace=False)
    x[bad] += rng.uniform(8.0, 12.0, size=bad.size)
    return {"u": u, "x": x}


def main() -> None:
    d = data()
    fits = {}
    for label, method in [("MLE", "mle"), ("MAP", "map"), ("Laplace", "laplace"), ("VI", "vi"), ("NUTS", "nuts")]:
        f = probmodels.fit(program, d, method)
        fits[label] = f
        took = f.diagnostics["compile_s"] + f.diagnostics["run_s"]
        print(f"{label:8s} {took:6.2f} s (compile {f.diagnostics['compile_s']:.2f} s)  converged={f.diagnostics['converged']}")
        for w in f.diagnostics["warnings"]:
            print(f"         warning: {w}")
    table = probmodels.compare(fits)
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_columns", 40, "display.precision", 3):
        print()
        print("true values:", TRUTH)
        print(table.T)


if __name__ == "__main__":
    main()
