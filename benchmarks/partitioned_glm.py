"""Logistic regression on a zarr store larger than a worker's memory, on a Dask LocalCluster
(issue 22): probmodels' MLE and MAP against dask-ml's LogisticRegression and statsmodels.

Run: ``python benchmarks/partitioned_glm.py --rows 100_000_000`` (needs the ``dask`` and ``dev`` extras;
dask-ml is optional). It writes ``rows x cols`` float32 inputs and 0/1 outcomes to a zarr store
once (``--store``, removed at the end unless ``--keep``), starts a LocalCluster of 2
single-threaded workers with a 4 GB memory limit each, and reports per method: wall time, passes
over the data, bytes read, read throughput, and the peak resident memory of each worker
(``ru_maxrss``; the workers are restarted before each method so that the peak is that method's).
The disk's own throughput is a plain dask sum over the same store. statsmodels' Logit runs in
memory on the first ``--sm-rows`` rows (all of them when they fit); where that is all rows its
optimum and standard errors are compared with probmodels' MLE.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# this checkout's probmodels (for the workers too) first
sys.path.insert(0, os.path.dirname(HERE))

__all__ = ["main"]


def logistic(u, x=None):
    from probmodels import noise, observe, param

    b = param("b")
    w = param("w", shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


def logistic_map(u, x=None):
    import numpyro.distributions as dist

    from probmodels import noise, observe, param

    b = param("b", dist.Normal(0.0, 5.0))
    w = param("w", dist.Normal(0.0, 1.0), shape=(u.shape[1],))
    return observe("x", noise.Bernoulli(logits=b + u @ w), obs=x)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_store(path, rows, cols, chunk, seed=0):
    """``u`` (rows x cols, float32) and ``x`` (0/1, float32) from a known logistic model."""
    import dask.array as da

    rs = da.random.RandomState(seed)
    u = rs.normal(size=(rows, cols), chunks=(chunk, cols)).astype(np.float32)
    w = np.linspace(-1.0, 1.0, cols) * 0.5
    eta = 0.3 + u.astype(np.float64) @ w
    x = (rs.uniform(size=rows, chunks=chunk) < 1.0 / (1.0 + da.exp(-eta))).astype(np.float32)
    da.to_zarr(u, os.path.join(path, "u"), overwrite=True)
    da.to_zarr(x, os.path.join(path, "x"), overwrite=True)


def _restart(client, module="probmodels"):
    """Fresh worker processes (a clean peak-memory count) that have imported ``module`` (a
    one-time cost of a worker's life, timed apart from the fits)."""
    client.restart()
    client.wait_for_workers(2)
    t = time.perf_counter()
    client.run(__import__, module)
    return time.perf_counter() - t


def _worker_peaks(client):
    return sorted(round(v, 1) for v in client.run(_peak_rss_mb).values())


def _probmodels_file():
    import probmodels

    return probmodels.__file__


def _save(out, args):
    """The figures so far (a long run keeps what it measured if it is stopped)."""
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(json.dumps(out, indent=1, default=float))


def run(args):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import probmodels

    out = dict(rows=args.rows, cols=args.cols, chunk=args.chunk)
    store = args.store or tempfile.mkdtemp(prefix="probmodels-dask-glm-")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="4GB", dashboard_address=":0")
    client = Client(cluster)
    try:
        t = time.perf_counter()
        if not os.path.exists(os.path.join(store, "x")):
            write_store(store, args.rows, args.cols, args.chunk)
        out["write_s"] = time.perf_counter() - t
        u = da.from_zarr(os.path.join(store, "u"))
        x = da.from_zarr(os.path.join(store, "x"))
        nbytes = u.nbytes + x.nbytes
        out["store_bytes"] = int(nbytes)
        du = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)
        out["store_bytes_on_disk"] = int(du)

        # the disk's own throughput: a plain dask sum (decompression included), twice (the
        # second from the page cache when the store fits in it)
        _restart(client)
        out["worker_probmodels"] = sorted(set(client.run(_probmodels_file).values()))
        for i in range(2):
            t = time.perf_counter()
            dask.compute(u.sum(), x.sum())
            out[f"sum_s_{i}"] = time.perf_counter() - t
        out["sum_GBps"] = nbytes / min(out["sum_s_0"], out["sum_s_1"]) / 1e9
        _save(out, args)

        data = {"u": u, "x": x}
        for label, model, method in (("mle", logistic, "mle"), ("map", logistic_map, "map")):
            imported = _restart(client)
            t = time.perf_counter()
            f = probmodels.fit(model, data, method)
            wall = time.perf_counter() - t
            d = f.diagnostics
            out[label] = dict(
                wall_s=wall, worker_import_s=imported, pass_s=d["pass_s"], start_s=d["start_s"], passes=d["passes"], decrements=d["decrements"], bytes_read=d["bytes_read"],
                read_GBps_per_pass=nbytes * d["passes"] / wall / 1e9, start=d["start"],
                # the passes alone (the start's fit and the compiles apart)
                read_GBps_in_passes=nbytes * d["passes"] / sum(d["pass_s"]) / 1e9,
                converged=d["converged"], worker_peak_rss_mb=_worker_peaks(client),
                estimate=np.r_[f.estimate["b"], f.estimate["w"]].tolist(),
                stderr=np.r_[f.stderr["b"], f.stderr["w"]].tolist(),
            )
            print(label, json.dumps({k: v for k, v in out[label].items() if k not in ("estimate", "stderr")}), flush=True)
            _save(out, args)

        if args.skip_peers:
            return out
        out["dask_ml"] = _dask_ml(client, u, x, out["mle"]["estimate"])
        print("dask-ml", json.dumps({k: v for k, v in out["dask_ml"].items() if k != "estimate"}), flush=True)
        _save(out, args)
        client.close()
        cluster.close()  # (the cluster's memory back before statsmodels loads its rows)
        out["statsmodels"] = _statsmodels(u, x, args, out)
        print("statsmodels", json.dumps(out["statsmodels"]), flush=True)
    finally:
        client.close()
        cluster.close()
        if not args.keep and args.store is None:
            shutil.rmtree(store, ignore_errors=True)
    return out


def _dask_ml(client, u, x, mle):
    try:
        from dask_ml.linear_model import LogisticRegression
    except Exception as e:  # not installed, or broken with this dask
        return dict(skipped=f"dask-ml not importable: {type(e).__name__}: {e}")
    res = {"worker_import_s": _restart(client, "dask_ml.linear_model")}
    try:
        t = time.perf_counter()
        # Newton without a penalty: the MLE, as probmodels' (dask-ml's default is ADMM with an
        # L2 penalty, C = 1, a different optimum)
        lr = LogisticRegression(solver="newton", penalty="none", fit_intercept=True, max_iter=50, tol=1e-10)
        lr.fit(u.astype(np.float64), x.astype(np.float64))
        res["wall_s"] = time.perf_counter() - t
        est = np.r_[np.ravel(lr.intercept_), np.ravel(lr.coef_)]
        res["estimate"] = est.tolist()
        res["max_abs_diff_vs_probmodels_mle"] = float(np.max(np.abs(est - np.asarray(mle))))
        res["n_iter"] = int(getattr(lr, "n_iter_", -1)) if np.ndim(getattr(lr, "n_iter_", -1)) == 0 else -1
        res["worker_peak_rss_mb"] = _worker_peaks(client)
    except Exception as e:
        res["failed"] = f"{type(e).__name__}: {e}"
    return res


def _statsmodels(u, x, args, out):
    """statsmodels' Logit in memory on the first ``--sm-rows`` rows, compared with probmodels'
    MLE when they are all the rows."""
    import dask
    import statsmodels.api as sm

    n = min(args.rows, args.sm_rows)
    with dask.config.set(scheduler="threads"):
        u = u[:n].compute().astype(np.float64)
        x = x[:n].compute().astype(np.float64)
    t = time.perf_counter()
    r = sm.Logit(x, sm.add_constant(u, prepend=True)).fit(disp=0, method="newton", tol=1e-12, maxiter=50)
    res = dict(rows=n, wall_s=time.perf_counter() - t, peak_rss_mb_this_process=round(_peak_rss_mb(), 1))
    if n == args.rows:
        res["max_abs_diff_estimate_vs_probmodels_mle"] = float(np.max(np.abs(r.params - np.asarray(out["mle"]["estimate"]))))
        res["max_rel_diff_se_vs_probmodels_mle"] = float(np.max(np.abs(r.bse / np.asarray(out["mle"]["stderr"]) - 1)))
    else:
        res["note"] = "a subset: its optimum is not the full data's"
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000_000)
    p.add_argument("--cols", type=int, default=10)
    p.add_argument("--chunk", type=int, default=1_000_000, help="rows per chunk")
    p.add_argument("--sm-rows", type=int, default=10_000_000, help="rows statsmodels fits in memory")
    p.add_argument("--store", default=None, help="zarr directory (kept); default: a temporary one, removed")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--skip-peers", action="store_true", help="probmodels only (no dask-ml, no statsmodels)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    out = run(args)
    _save(out, args)
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
