"""``probmodels report``: point estimates set against posteriors, for one model-specification file.

A model-specification file (``models/<name>.py``) defines

* ``program(...)`` (required): the probmodels program;
* ``data()`` (required): its keyword arguments, observations included, simulated from stated true
  parameters or loaded from a small data set shipped with the project or a dependency;
* ``TRUTH`` (optional): ``{parameter: true value}``, shown beside the estimates;
* ``ALTERNATIVES`` (optional): ``{label: program}``, other noise models for the same data,
  compared by LOO (``az.compare``);
* ``OBSERVED`` (optional, default ``"x"``): the observation's key in ``data()``; arrays whose first
  axis has its length are split with it for the held-out comparison;
* ``FIT_OPTIONS`` (optional): ``{method: {option: value}}`` passed to ``fit``.

:func:`report` fits every method, builds the tables and figures and, given ``out``, writes
``report.html`` (self-contained), ``report.md``, the tables as CSV, the figures as PNG and every
fit as NetCDF (``az.from_netcdf`` reloads them).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .compare import compare, heldout
from .fit import METHODS, fit

__all__ = ["report", "Report", "load_spec", "split"]

LABELS = {"mle": "MLE", "map": "MAP", "laplace": "Laplace", "vi": "VI", "nuts": "NUTS"}
MIN_HELDOUT = 10
DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), "examples", "robust_line.py")


@dataclass
class Report:
    """What :func:`report` returns: the fits, the tables (pandas) and the figures (matplotlib)."""

    name: str
    title: str
    description: str
    fits: dict
    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    loo_notes: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    alternative_fits: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    files: list = field(default_factory=list)


def load_spec(path):
    """Import a model-specification file and check that it follows the convention."""
    if not isinstance(path, str) or not path.endswith(".py"):
        raise ValueError(f"report: give the path of a model-specification file (models/<name>.py), got {path!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"report: no such model file: {path}")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"probmodels_spec_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for required in ("program", "data"):
        if not callable(getattr(module, required, None)):
            raise ValueError(
                f"report: {path} defines no {required}(); a model file defines program(...) and "
                "data() (see probmodels.report's docstring)"
            )
    return name, module


def split(data: dict, observed: str, test_fraction: float = 0.2, seed: int = 0):
    """Split ``data`` once along the observation axis: (train, test)."""
    if observed not in data:
        raise ValueError(f"report: data() has no observation {observed!r}; set OBSERVED in the model file")
    n = len(np.asarray(data[observed]))
    if n < MIN_HELDOUT:
        raise ValueError(f"report: {n} observations are too few to hold any out (at least {MIN_HELDOUT})")
    idx = np.random.default_rng(seed).permutation(n)
    n_test = max(int(round(test_fraction * n)), 2)
    test_idx, train_idx = np.sort(idx[:n_test]), np.sort(idx[n_test:])

    def take(rows):
        out = {}
        for k, v in data.items():
            a = np.asarray(v) if isinstance(v, (np.ndarray, list)) else None
            out[k] = a[rows] if a is not None and a.ndim >= 1 and a.shape[0] == n else v
        return out

    return take(train_idx), take(test_idx)


def _progress(msg: str, quiet: bool):
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def report(model: str | None = None, out: str | None = None, methods=METHODS, *, quick: bool = False, quiet: bool = False) -> Report:
    """Fit a model-specification file by every method and set the answers side by side.

    Parameters
    ----------
    model : str, optional
        Path of a model file (``models/<name>.py``); the built-in robust-regression example
        when omitted.
    out : str, optional
        A folder to write ``report.html``, ``report.md``, CSV tables, PNG figures and NetCDF fits.
    methods : sequence of str
        Any of ``mle, map, laplace, vi, nuts``.
    quick : bool
        Short NUTS and VI runs (for tests and previews), noted in the report.
    quiet : bool
        No progress on the terminal (stderr).

    Returns
    -------
    Report
    """
    from . import _report_figures as figs
    from ._report_render import write

    path = model or DEFAULT_MODEL
    name, spec = load_spec(path)
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"report: unknown method(s) {unknown}; use some of {', '.join(METHODS)}")
    doc = (spec.__doc__ or name).strip().splitlines()
    title, description = doc[0].rstrip("."), "\n".join(doc[1:]).strip()
    observed = getattr(spec, "OBSERVED", "x")
    truth = getattr(spec, "TRUTH", None)
    alternatives = dict(getattr(spec, "ALTERNATIVES", {}) or {})
    options = dict(getattr(spec, "FIT_OPTIONS", {}) or {})
    if quick:
        options.setdefault("nuts", {})
        options["nuts"] = {"warmup": 300, "draws": 300, "chains": 2, **options["nuts"]}
        options["vi"] = {"steps": 6000, **options.get("vi", {})}
    data = spec.data()
    program = spec.program
    rep = Report(name=name, title=title, description=description, fits={})
    t_all = time.perf_counter()

    # 1. every method on all the data
    for i, m in enumerate(methods, 1):
        _progress(f"[{i}/{len(methods)}] {LABELS[m]}: fitting {name} ...", quiet)
        t0 = time.perf_counter()
        f = fit(program, data, m, **options.get(m, {}))
        rep.fits[LABELS[m]] = f
        rep.timings[LABELS[m]] = time.perf_counter() - t0
        d = f.diagnostics
        _progress(
            f"      done in {rep.timings[LABELS[m]]:.1f} s (compile {d['compile_s']:.1f} s), "
            f"converged={d['converged']}, {len(d['warnings'])} warning(s)",
            quiet,
        )

    # 2. tables
    table = compare(rep.fits)
    if truth:
        table[("truth", "value")] = [_truth(truth, label) for label in table.index]
    latent = table.attrs.get("latent", [])
    rep.tables["comparison"] = table.drop(index=latent) if latent else table
    if latent:  # listed apart: for mle/map the conditional modes and sds at the estimate
        rep.tables["latent"] = table.loc[latent]

    n_obs = len(np.asarray(data[observed])) if observed in data else 0
    if n_obs >= MIN_HELDOUT:
        _progress("held-out comparison: refitting on 80% of the data ...", quiet)
        train, test = split(data, observed)
        held = {LABELS[m]: fit(program, train, m, **options.get(m, {})) for m in methods}
        rep.tables["heldout"] = heldout(held, program, test)
    else:
        rep.notes.append(
            f"no held-out comparison: {n_obs} observations of {observed!r} are too few to hold 20% "
            f"out (it needs {MIN_HELDOUT})" + ("; the LOO comparison uses all of them" if alternatives else "")
        )

    if alternatives:
        rep.tables["loo"], rep.loo_notes, rep.alternative_fits = _loo(program, alternatives, data, rep, options, quiet)
    rep.findings = findings(rep.fits)

    # 3. figures
    _progress("figures ...", quiet)
    rep.figures = figs.all_figures(rep, program, data, observed, truth, alternatives)
    rep.timings["total"] = time.perf_counter() - t_all
    if out is not None:
        rep.files = write(rep, out, quick=quick, model_path=path)
        _progress(f"wrote {os.path.join(out, 'report.html')} ({rep.timings['total']:.0f} s)", quiet)
    return rep


def _truth(truth: dict, label: str):
    base, _, idx = label.partition("[")
    if base not in truth:
        return np.nan
    v = np.asarray(truth[base], dtype=float)
    if not idx:
        return float(v) if v.ndim == 0 else np.nan
    index = tuple(int(i) for i in idx.rstrip("]").split(","))
    return float(v[index])


def _loo(program, alternatives, data, rep, options, quiet):
    """Noise-model selection: az.compare on LOO of every alternative (and the program itself)."""
    import arviz as az

    posterior_method = "nuts" if "NUTS" in rep.fits else ("laplace" if "Laplace" in rep.fits else "nuts")
    label_self = "program"
    idatas, notes, alt_fits = {}, [], {}
    main = rep.fits.get(LABELS[posterior_method])
    candidates = {label_self: (program, main)} | {k: (p, None) for k, p in alternatives.items()}
    for label, (prog, f) in candidates.items():
        if f is None:
            _progress(f"LOO: fitting alternative {label!r} by {posterior_method} ...", quiet)
            f = fit(prog, data, posterior_method, **options.get(posterior_method, {}))
            alt_fits[label] = f
            for w in f.diagnostics["warnings"]:
                notes.append(f"{label}: {w}")
        idatas[label] = f.to_arviz()
    table = az.compare(idatas, ic="loo")
    ks = {}
    for label, idata in idatas.items():
        loo = az.loo(idata, pointwise=True)
        k = np.asarray(loo.pareto_k).ravel()
        ks[label] = (int(np.sum(k > 0.7)), k.size)
    table["pareto_k_over_0.7"] = [f"{ks[i][0]} of {ks[i][1]}" for i in table.index]
    for label, (bad, total) in ks.items():
        if bad:
            notes.append(
                f"{label}: {bad} of {total} observations have Pareto k > 0.7: their LOO estimate is "
                "unreliable (influential points; the model may be misspecified for them)"
            )
    return table, notes, alt_fits


_CATEGORIES = [
    ("perfect separation", ("separation",)),
    ("MLE or MAP does not exist", ("does not exist",)),
    ("estimate on the boundary", ("boundary",)),
    ("unidentified parameters", ("singular", "not identified")),
    ("non-convergence", ("without converging", "not converging", "still improving", "stopped after")),
    ("NUTS divergences", ("diverged",)),
    ("r-hat", ("r-hat",)),
    ("effective sample size", ("effective sample size",)),
    ("approximation quality (Pareto k)", ("Pareto k",)),
]


def findings(fits: dict) -> list:
    """Pathologies found in the fits, in plain words: ``(category, fit label or None, text)``,
    each warning under the first category it matches, "none found" for the others."""
    found = {c: [] for c, _ in _CATEGORIES}
    other = []
    for label, f in fits.items():
        for w in f.diagnostics["warnings"]:
            category = next((c for c, keys in _CATEGORIES if any(k in w for k in keys)), None)
            (found[category] if category else other).append((label, w))
    out = []
    for category, _ in _CATEGORIES:
        if found[category]:
            out += [(category, label, w) for label, w in found[category]]
        else:
            out.append((category, None, "none found"))
    out += [("other", label, w) for label, w in other]
    return out
