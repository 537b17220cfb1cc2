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
* ``FIT_OPTIONS`` (optional): ``{method: {option: value}}`` passed to ``fit``;
* ``COORDS`` (optional): ``{dim: labels}`` for the dims of ``param(..., dims=...)`` (tables show
  ``w[GPA]``).

``data()`` may return pandas objects (a DataFrame of inputs, a Series of observations), and the
file may import modules beside it (its folder is put on ``sys.path``).

:func:`report` fits every method, builds the tables and figures and, given ``out``, writes
``report.html`` (self-contained), ``report.md``, the tables as CSV, the figures as PNG and every
fit as NetCDF (``az.from_netcdf`` reloads them).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _report_helper
from . import _report_tasks as tasks
from ._data import as_data
from .compare import compare, heldout
from .fit import METHODS, fit
from .solvers import CATEGORIES, REGISTRY, category_of

__all__ = ["report", "Report", "load_spec", "split", "split_rows"]

LABELS = {name: solver.label for name, solver in REGISTRY.items()}  # (from the registry)
#: the methods a report fits when none are named
REPORT_METHODS = tuple(name for name, solver in REGISTRY.items() if solver.report_default)
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
    loo_fit: str | None = None  # the fit whose LOO the noise-model comparison shows
    pngs: dict = field(default_factory=dict, repr=False)  # figure -> PNG bytes, or a helper's Future
    helper: object = field(default=None, repr=False, compare=False)  # the helper process, if used
    pending_files: list = field(default_factory=list, repr=False, compare=False)  # NetCDF files queued early


def load_spec(path):
    """Import a model-specification file and check that it follows the convention."""
    if not isinstance(path, str) or not path.endswith(".py"):
        raise ValueError(f"report: give the path of a model-specification file (models/<name>.py), got {path!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"report: no such model file: {path}")
    name = os.path.splitext(os.path.basename(path))[0]
    # a model file may import modules beside it (its own helpers), as a script run from its folder
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
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
    data = as_data(data, "report: data()")
    if observed not in data:
        raise ValueError(f"report: data() has no observation {observed!r}; set OBSERVED in the model file")
    n = len(np.asarray(data[observed]))
    train_idx, test_idx = split_rows(n, test_fraction, seed)

    def take(rows):
        out = {}
        for k, v in data.items():
            a = np.asarray(v) if isinstance(v, (np.ndarray, list)) else None
            out[k] = a[rows] if a is not None and a.ndim >= 1 and a.shape[0] == n else v
        return out

    return take(train_idx), take(test_idx)


def split_rows(n: int, test_fraction: float = 0.2, seed: int = 0):
    """The rows :func:`split` puts in each part: ``(train, test)`` indices, sorted."""
    if n < MIN_HELDOUT:
        raise ValueError(f"report: {n} observations are too few to hold any out (at least {MIN_HELDOUT})")
    idx = np.random.default_rng(seed).permutation(n)
    n_test = max(int(round(test_fraction * n)), 2)
    return np.sort(idx[n_test:]), np.sort(idx[:n_test])


def _progress(msg: str, quiet: bool):
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def report(
    model: str | None = None,
    out: str | None = None,
    methods=REPORT_METHODS,
    *,
    quick: bool = False,
    quiet: bool = False,
    helper: bool | None = None,
) -> Report:
    """Fit a model-specification file by every method and set the answers side by side.

    Parameters
    ----------
    model : str, optional
        Path of a model file (``models/<name>.py``); the built-in robust-regression example
        when omitted.
    out : str, optional
        A folder to write ``report.html``, ``report.md``, CSV tables, PNG figures and NetCDF fits.
    methods : sequence of str
        Any of :data:`probmodels.METHODS`; by default those the registry marks
        ``report_default`` (all but ``pathfinder``).
    quick : bool
        Short runs of the methods that have a preview setting (NUTS, VI; the registry's
        ``quick``), for tests and previews, noted in the report.
    quiet : bool
        No progress on the terminal (stderr).
    helper : bool, optional
        Run the work that needs none of this process's compiled programs (the ALTERNATIVES'
        fits, the prior predictive check, drawing every figure, PNG rendering, NetCDF files) in a
        helper process beside this one. By default on with two or more cores unless
        ``PROBMODELS_REPORT_HELPER=0``; the answers are the same either way.

    Returns
    -------
    Report
    """
    from ._report_render import write

    t_all = time.perf_counter()
    path = model or DEFAULT_MODEL
    name, spec = load_spec(path)
    methods = list(methods)
    if helper not in (None, True, False):
        raise ValueError(f"report: helper is True, False or None (decide by the cores), got {helper!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"report: unknown method(s) {unknown}; use some of {', '.join(METHODS)}")
    doc = (spec.__doc__ or name).strip().splitlines()
    title, description = doc[0].rstrip("."), "\n".join(doc[1:]).strip()
    observed = getattr(spec, "OBSERVED", "x")
    truth = getattr(spec, "TRUTH", None)
    alternatives = dict(getattr(spec, "ALTERNATIVES", {}) or {})
    options = dict(getattr(spec, "FIT_OPTIONS", {}) or {})
    coords = getattr(spec, "COORDS", None)
    if coords:  # labels for the dims of param(..., dims=...), in every fit
        options = {m: {"coords": coords, **options.get(m, {})} for m in set(METHODS) | set(options)}
    if quiet:  # no progress bars either
        options = {m: {"progress": False, **options.get(m, {})} for m in set(METHODS) | set(options)}
    if quick:
        for m, solver in REGISTRY.items():
            if solver.quick:
                options[m] = {**solver.quick, **options.get(m, {})}
    # pandas objects become numpy arrays once, here: the split, the fits and the figures'
    # Predictive calls all take the same dict
    data = as_data(spec.data(), "report: data()")
    program = spec.program
    rep = Report(name=name, title=title, description=description, fits={})
    rep.timings["model file and data()"] = time.perf_counter() - t_all
    pending = tasks.start(helper, path, data, methods, options, observed, alternatives, _loo_method(methods))
    rep.helper = pending.get("helper") if out is not None else None  # renders PNGs, writes NetCDF
    # ArviZ's own warnings become findings, not raw console output
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        _run(rep, program, data, methods, options, observed, truth, alternatives, quiet, pending, out)
    rep.findings += _gathered(raw)
    rep.timings["total"] = time.perf_counter() - t_all
    if out is not None:
        rep.files = write(rep, out, quick=quick, model_path=path)  # adds its own time to the table
        _progress(f"wrote {os.path.join(out, 'report.html')} ({rep.timings['total']:.0f} s)", quiet)
    return rep


def _gathered(records) -> list:
    """Python warnings raised while the report ran (ArviZ's, mostly), once each, as findings."""
    seen, out = set(), []
    for w in records:
        text = str(w.message).strip().replace("\n", " ")
        if text in seen:
            continue
        seen.add(text)
        source = "ArviZ" if f"{os.sep}arviz{os.sep}" in str(w.filename) else os.path.basename(str(w.filename))
        out.append(("library warnings", source, f"{w.category.__name__}: {text}"))
    return out


def _run(rep, program, data, methods, options, observed, truth, alternatives, quiet, pending, out=None):
    """The report's fits, tables and figures, each step timed into ``rep.timings`` (and, with
    a helper, the fits' files to ``out`` begun)."""
    from . import _report_workflow as workflow
    from ._report_render import fit_files, write_back

    name = rep.name
    n_obs = len(np.asarray(data[observed])) if observed in data else 0
    # The held-out refits weight the held-out rows 0 (frequency weights, a traced input): the
    # full-data fits carry weights 1 (the same numbers as no weights: x * 1.0 == x), so that a
    # refit runs the executables its full-data fit compiled instead of tracing new shapes.
    ones = np.ones(n_obs) if n_obs >= MIN_HELDOUT else None
    weighted = {}

    # 1. every method on all the data, the MCMC run first: its trace, rank and predictive check
    # figures are drawn (by the helper) while the other methods fit
    order = sorted(methods, key=lambda m: REGISTRY[m].kind != "sampler")
    noise = None  # the noise models' figure: drawn by the helper once the point fits are done
    later, sampler_done, ppc_of, figures_s = [], False, None, 0.0
    for i, m in enumerate(order, 1):
        _progress(f"[{i}/{len(order)}] {LABELS[m]}: fitting {name} ...", quiet)
        t0 = time.perf_counter()
        f = _weighted_fit(program, data, m, options.get(m, {}), ones)
        weighted[m] = f is not None
        f = f if f is not None else fit(program, data, m, **options.get(m, {}))
        rep.fits[LABELS[m]] = f
        rep.timings[LABELS[m]] = time.perf_counter() - t0
        d = f.diagnostics
        _progress(
            f"      done in {rep.timings[LABELS[m]]:.1f} s (compile {d['compile_s']:.1f} s), "
            f"converged={d['converged']}, {len(d['warnings'])} warning(s)",
            quiet,
        )
        if f.kind == "sampler" and not sampler_done:
            t1, sampler_done = time.perf_counter(), True
            inputs = _figure_inputs(rep, program, data, observed, truth, {})
            later.append(tasks.figures(rep, pending, inputs, ("sampler",)))
            ppc_of = _ppc(rep, pending, later, program, data, observed, inputs.posterior)
            figures_s += time.perf_counter() - t1
        early = _alternatives_done(pending, alternatives)
        if noise is None and early is not None and not any(REGISTRY[k].kind == "point" for k in order[i:]):
            noise = tasks.figures(rep, pending, _figure_inputs(rep, program, data, observed, truth, alternatives, early), ("noise",))
    for key in (LABELS[m] for m in methods):  # (tables and timings in the order asked for)
        rep.fits[key] = rep.fits.pop(key)
        rep.timings[key] = rep.timings.pop(key)

    # 2. tables
    t0 = time.perf_counter()
    table = compare(rep.fits)
    if truth:
        table[("truth", "value")] = [_truth(truth, label, list(table.index)) for label in table.index]
    latent = table.attrs.get("latent", [])
    rep.tables["comparison"] = table.drop(index=latent) if latent else table
    if latent:  # listed apart: for mle/map the conditional modes and sds at the estimate
        rep.tables["latent"] = table.loc[latent]
    rep.timings["tables"] = time.perf_counter() - t0

    # 3. the fits' figures, and the posterior predictive check from its replicates (the fit's
    # own, which its file keeps): drawn and rendered by the helper while the rest is computed
    _progress("figures ...", quiet)
    t0 = time.perf_counter()
    inputs = _figure_inputs(rep, program, data, observed, truth, {})
    later.append(tasks.figures(rep, pending, inputs, ("fits",) if sampler_done else ("fits", "sampler")))
    if inputs.posterior[0] != ppc_of:  # (the MCMC run's is on its way)
        _ppc(rep, pending, later, program, data, observed, inputs.posterior)
    rep.figures = {}
    rep.timings["figures"] = figures_s + time.perf_counter() - t0

    t0 = time.perf_counter()
    if n_obs >= MIN_HELDOUT:
        _progress("held-out comparison: refitting on 80% of the data ...", quiet)
        train_idx, test_idx = split_rows(n_obs)
        mask = np.zeros(n_obs)
        mask[train_idx] = 1.0
        # (a method that takes no weights is refitted on the training rows, scored on the test rows)
        train, test = split(data, observed) if not all(weighted.values()) else (None, None)
        held = {
            LABELS[m]: fit(program, data, m, weights=mask, **options.get(m, {}))
            if weighted[m]
            else fit(program, train, m, **options.get(m, {}))
            for m in methods
        }
        rep.tables["heldout"] = heldout(held, program, test, rows=test_idx)
        rep.timings["held-out refits (80%)"] = time.perf_counter() - t0
    else:
        rep.notes.append(
            f"no held-out comparison: {n_obs} observations of {observed!r} are too few to hold 20% "
            f"out (it needs {MIN_HELDOUT})" + ("; the LOO comparison uses all of them" if alternatives else "")
        )

    rep.findings = findings(rep.fits)
    _progress("criteria and prior sensitivity ...", quiet)
    t0 = time.perf_counter()
    notes_before = len(rep.notes)
    workflow.workflow_tables(rep)
    rep.timings["criteria and sensitivity"] = time.perf_counter() - t0

    # (after the criteria, so that the helper has had longest to fit the alternatives; shown before)
    if alternatives and not any(REGISTRY[f.method].kind != "point" for f in rep.fits.values()):
        # the noise-model comparison needs a posterior; fitting one the user did not ask for
        # (NUTS on every alternative) would cost more than everything asked for
        rep.notes.insert(
            notes_before,
            f"no noise-model comparison of the {len(alternatives)} ALTERNATIVES: it needs a "
            "posterior method (LOO), and none was asked for; add nuts or laplace to --methods "
            "(e.g. --methods " + ",".join(methods + ["laplace"]) + ")",
        )
    elif alternatives:
        t0 = time.perf_counter()
        rep.tables["loo"], rep.loo_notes, rep.alternative_fits = _loo(program, alternatives, data, rep, options, quiet, pending.get("alternatives"))
        rep.timings["noise-model comparison (LOO)"] = time.perf_counter() - t0
        _put_before(rep.tables, "loo", ("criteria", "sensitivity"))

    # the fits' files, queued for the helper behind the figures: it writes them while this
    # process predicts, and this one takes back those it has not begun when it would wait
    t0 = time.perf_counter()
    if out is not None and rep.helper is not None:
        rep.pending_files = fit_files(rep, out)
    files_s = time.perf_counter() - t0

    # the noise models' figure (with the alternatives' estimates) and the predictive figures
    _progress("predictive figures ...", quiet)
    t0 = time.perf_counter()
    if noise is None:
        noise = tasks.figures(rep, pending, _figure_inputs(rep, program, data, observed, truth, alternatives), ("noise",))
    later.append(noise)
    rep.timings["figures"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    prior = tasks.prior_figure(rep, program, data, observed, pending)
    draw = lambda name, arrays: tasks.drawing(rep, pending, name, "predictive", arrays)  # noqa: E731
    for key, got in workflow.workflow_figures(rep, program, data, observed, prior, draw).items():
        if isinstance(got, tasks.Later):
            later.append(got)
        else:
            rep.figures[key] = got
    tasks.render(rep)
    rep.timings["predictive figures"] = time.perf_counter() - t0
    t0, waited_s = time.perf_counter(), 0.0
    # the helper's figures, collected here at the end; while it works from the front of its
    # queue, this process takes tasks from the back (files, then figures it has not begun), so
    # that neither waits while the other has work queued
    while later:
        for got in [g for g in later if g.ready()]:
            rep.figures.update(got.get())
            later.remove(got)
        if not later:
            break
        t1 = time.perf_counter()
        wrote = write_back(rep.pending_files, one=True)
        waited_s += time.perf_counter() - t1
        if wrote:
            continue
        stolen = next((g for g in reversed(later) if g.take_back()), None)
        got = stolen if stolen is not None else later[0]  # (else wait for the helper's first)
        rep.figures.update(got.get())
        later.remove(got)
    rep.figures = tasks.in_order(rep.figures)
    rep.timings["figures"] += time.perf_counter() - t0 - waited_s
    if rep.pending_files:  # (begun here; write() adds its own time)
        rep.timings["writing files"] = files_s + waited_s
    import matplotlib.pyplot as plt

    for fig in rep.figures.values():  # the Report holds them, pyplot need not: no pile of open
        plt.close(fig)  # figures over a session, nor a notebook cell that shows them all
    # (timings in the order of the report's sections, not of the work)
    order = ["tables", "held-out refits (80%)", "noise-model comparison (LOO)", "criteria and sensitivity", "figures", "predictive figures"]
    for key in order:
        if key in rep.timings:
            rep.timings[key] = rep.timings.pop(key)


def _ppc(rep, pending, later, program, data, observed, posterior):
    """The posterior predictive check of ``posterior`` (``(label, fit)``) on its way to the
    figures (``later``): its label, or None when there is none to draw."""
    from . import _report_figures as figs

    label, post = posterior
    if post is None or observed not in data:
        return None
    later.append(tasks.drawing(rep, pending, "ppc", "ppc", figs.ppc_arrays(program, data, observed, post, label)))
    return label


def _put_before(d: dict, key, later: tuple) -> None:
    """Move ``key`` of ``d`` (in place) before the first of the keys ``later`` that it holds."""
    keys = list(d)
    at = next((i for i, k in enumerate(keys) if k in later), None)
    if key not in d or at is None or keys.index(key) < at:
        return
    keys.remove(key)
    keys.insert(at, key)
    items = {k: d[k] for k in keys}
    d.clear()
    d.update(items)


def _weighted_fit(program, data, method, options, weights):
    """``fit`` with frequency ``weights``, or None where there are none or the fit takes none
    (minibatch VI, another observation site whose first axis is not the rows): that method's
    refit is then made on the training rows."""
    if weights is None or options.get("batch_size") is not None:
        return None
    try:
        return fit(program, data, method, weights=weights, **options)
    except ValueError as err:
        if "weights" not in str(err):
            raise
        return None


def _truth(truth: dict, label: str, labels: list | None = None):
    base, _, idx = label.partition("[")
    if base not in truth:
        return np.nan
    v = np.asarray(truth[base], dtype=float)
    if not idx:
        return float(v) if v.ndim == 0 else np.nan
    if labels is None:
        index = tuple(int(i) for i in idx.rstrip("]").split(","))
        return float(v[index])
    # the label's position among its site's labels (row-major, as the table's): works for
    # w[0, 1] and for coordinate labels such as w[GPA]
    entries = [lab for lab in labels if lab.partition("[")[0] == base and lab != base]
    return float(v.ravel()[entries.index(label)]) if v.size == len(entries) else np.nan


def _loo(program, alternatives, data, rep, options, quiet, pending=None):
    """Noise-model selection: az.compare on LOO of every alternative (and the program itself);
    the alternatives' fits come from the helper when it made them."""
    import arviz as az

    from . import _io

    posterior_method = _loo_method([f.method for f in rep.fits.values()])
    rep.loo_fit = REGISTRY[posterior_method].label
    main = next((f for f in rep.fits.values() if f.method == posterior_method), None)
    if main is None:  # (the report runs _loo only with a posterior among its fits)
        main = fit(program, data, posterior_method, **options.get(posterior_method, {}))
    # the report's own fit: its full InferenceData serves the figures and its file too
    idatas, notes = {"program": main.to_arviz()}, []

    def local():
        _progress(f"LOO: fitting the alternatives {list(alternatives)} by {posterior_method} ...", quiet)
        return _report_helper.alternative_fits(alternatives, data, posterior_method, options.get(posterior_method, {}))

    got = _report_helper.resolve(pending, lambda: None)
    if got is None:
        fitted = local()
    else:  # restored Fits: the numbers and the InferenceData, no program
        _progress(f"LOO: the alternatives {list(alternatives)} were fitted by {posterior_method} in the helper process", quiet)
        fitted = {k: (f, f.to_arviz(posterior_predictive=False)) for k, f in ((k, _io.restore(st)) for k, st in got.items())}
    alt_fits = {}
    for label, (f, idata) in fitted.items():
        alt_fits[label] = f
        notes += [f"{label}: {w}" for w in f.diagnostics["warnings"]]
        idatas[label] = idata  # LOO needs the log-likelihood alone: no replicated observations
    loos = {label: az.loo(idata, pointwise=True) for label, idata in idatas.items()}
    table = az.compare(loos, ic="loo")  # (from the LOOs above: each computed once)
    ks = {}
    for label, loo in loos.items():
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


def _loo_method(fitted: list) -> str:
    """The posterior the LOO comparison fits the alternatives by: the report's sampler if it ran
    one, else its first approximation, else the registry's first sampler."""
    for kind in ("sampler", "approximation"):
        hit = [m for m in fitted if REGISTRY[m].kind == kind]
        if hit:
            return hit[0]
    return next(m for m, s in REGISTRY.items() if s.kind == "sampler")


def _posterior(fits: dict):
    """``(label, fit)`` of the posterior the figures show: a sampler's draws first, then the
    approximations (the later in the registry first), or ``(None, None)``."""
    order = list(REGISTRY)
    ranked = sorted(
        ((label, f) for label, f in fits.items() if not f.is_point and f.draws is not None),
        key=lambda item: (item[1].kind != "sampler", -order.index(item[1].method)),
    )
    return ranked[0] if ranked else (None, None)


def _point_values(fits: dict):
    """The estimate the noise models are drawn at: the point fit that uses the priors (the later
    in the registry: MAP before MLE), else None."""
    order = list(REGISTRY)
    points = sorted((f for f in fits.values() if f.is_point), key=lambda f: -order.index(f.method))
    return {k: np.asarray(v) for k, v in points[0].estimate.items()} if points else None


def _alternatives_done(pending, alternatives):
    """``{label: estimate}`` of the alternatives when the helper has fitted them already (``{}``
    without alternatives), else None: the noise models' figure can then be drawn before LOO."""
    if not alternatives:
        return {} if pending.get("helper") is not None else None
    future = pending.get("alternatives")
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    states, _ = future.result()
    return {label: st["estimate"] for label, st in states.items()}


def _figure_inputs(rep, program, data, observed, truth, alternatives, estimates=None):
    """Everything the figures draw, computed here so that the figures module knows nothing of
    the report (the alternatives' ``estimates``: those of ``rep.alternative_fits`` by default)."""
    from ._report_figures import FigureInputs

    first = next(iter(rep.fits.values()))
    label, post = _posterior(rep.fits)
    sampler = next(((k, f) for k, f in rep.fits.items() if f.kind == "sampler"), (None, None))
    if estimates is None:
        estimates = {k: f.estimate for k, f in rep.alternative_fits.items()}
    alt = {}
    for alt_label, prog in alternatives.items():
        est = estimates.get(alt_label)
        alt[alt_label] = (prog, None if est is None else {k: np.asarray(v) for k, v in est.items()})
    return FigureInputs(
        fits=rep.fits,
        posterior=(label, post),
        sampler=sampler,
        points={k: f for k, f in rep.fits.items() if f.is_point},
        truth=None if truth is None else {lab: _truth(truth, lab, first.labels()) for lab in first.labels()},
        program=program,
        data=data,
        observed=observed,
        point_values=_point_values(rep.fits),
        alternatives=alt,
    )


def findings(fits: dict) -> list:
    """Pathologies found in the fits, in plain words: ``(category, fit label or None, text)``,
    grouped by each warning's category (:class:`probmodels.solvers.Finding`; a plain string is
    "other"), "none found" for a category without any."""
    found = {c: [] for c in CATEGORIES}
    for label, f in fits.items():
        for w in f.diagnostics["warnings"]:
            found[category_of(w)].append((label, str(w)))
    out = []
    for category in CATEGORIES[:-1]:
        if found[category]:
            out += [(category, label, w) for label, w in found[category]]
        else:
            out.append((category, None, "none found"))
    out += [(CATEGORIES[-1], label, w) for label, w in found[CATEGORIES[-1]]]
    return out
