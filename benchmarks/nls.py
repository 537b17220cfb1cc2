"""Nonlinear least squares: probmodels' MLE against scipy's ``least_squares`` on the NIST battery.

For each problem and published start: the median warm wall time of ``probmodels.fit(..., "mle")``
(the program compiled by a first fit) and of scipy's ``least_squares`` with ``lm`` and ``trf``
(``x_scale="jac"``, exact JAX Jacobians compiled beforehand, scipy's default tolerances), and the
RSS each reaches relative to the optimum. Run from the repository root::

    python benchmarks/nls.py [--repeat 15] [--problems Misra1a MGH10 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import probmodels  # noqa: E402
from probmodels import noise, observe, param  # noqa: E402
from tests.nls_problems import PROBLEMS  # noqa: E402

__all__ = ["main"]


def _program(prob, p):
    def program(u, x=None):
        b = [param(f"b{i + 1}") for i in range(p)]
        scale = param("scale", support="positive")
        return observe("x", prob.f(b, u, jnp) + noise.Gaussian(scale), obs=x)

    return program


def _rss(prob, b):
    r = prob.x - prob.f(np.asarray(b), prob.u, np)
    return float(r @ r)


def _median_time(fn, repeat):
    fn()  # warm: compile
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--problems", nargs="*", default=None)
    args = ap.parse_args(argv)
    rows = []
    for prob in PROBLEMS:
        if args.problems and prob.name not in args.problems:
            continue
        p = len(prob.starts[0])
        program = _program(prob, p)
        resid = jax.jit(lambda b, prob=prob: prob.x - prob.f(b, prob.u, jnp))
        jac = jax.jit(jax.jacfwd(resid))
        for k, start in enumerate(prob.starts):
            init = {f"b{i + 1}": v for i, v in enumerate(start)}

            def ours():
                fit = probmodels.fit(program, {"u": prob.u, "x": prob.x}, "mle", init=init, draws=0)
                return [float(fit.estimate[f"b{i + 1}"]) for i in range(p)], fit.diagnostics["converged"]

            t_ours, (b_ours, conv) = _median_time(ours, args.repeat)
            out = {}
            for method in ("lm", "trf"):

                def theirs(method=method):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        return least_squares(
                            lambda b: np.asarray(resid(b)),
                            np.array(start, float),
                            jac=lambda b: np.asarray(jac(b)),
                            method=method,
                            x_scale="jac",
                        ).x

                out[method] = _median_time(theirs, args.repeat)
            best = min([_rss(prob, b_ours)] + [_rss(prob, v[1]) for v in out.values()] + ([prob.rss] if prob.rss else []))

            def rel(b):
                return _rss(prob, b) / best - 1.0

            rows.append((prob.name, k + 1, t_ours, rel(b_ours), conv, out["lm"][0], rel(out["lm"][1]), out["trf"][0], rel(out["trf"][1])))
            r = rows[-1]
            print(
                f"{r[0]:9s} start {r[1]}: probmodels {1e3 * r[2]:7.2f} ms (RSS/opt-1 {r[3]:8.1e}, converged={r[4]})  "
                f"lm {1e3 * r[5]:7.2f} ms ({r[6]:8.1e})  trf {1e3 * r[7]:7.2f} ms ({r[8]:8.1e})",
                flush=True,
            )
    t = np.array([[r[2], r[5], r[7]] for r in rows])
    print(f"median over {len(rows)} fits: probmodels {1e3 * np.median(t[:, 0]):.2f} ms, lm {1e3 * np.median(t[:, 1]):.2f} ms, trf {1e3 * np.median(t[:, 2]):.2f} ms")
    return rows


if __name__ == "__main__":
    main()
