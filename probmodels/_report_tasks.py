"""What a report hands its helper process, and how it takes the answers back (see
``probmodels._report_helper``): each function does the work here when there is no helper, or
when the helper cannot serve it."""

from __future__ import annotations

import os
import pickle

from . import _report_helper
from .solvers import REGISTRY

__all__ = ["start", "figures", "drawing", "render", "prior_figure", "in_order", "Later", "FIGURE_ORDER"]

FIGURE_ORDER = ["forest", "densities", "trace", "rank", "ppc", "penalty_geometry", "prior_predictive", "predictive"]


def in_order(figs: dict) -> dict:
    """The report's figures in the order of its sections."""
    rank = {k: i for i, k in enumerate(FIGURE_ORDER)}
    return {k: figs[k] for k in sorted(figs, key=lambda k: rank.get(k, len(rank)))}


def start(use, path, data, methods, options, observed, alternatives, loo_method) -> dict:
    """Hand the work that needs none of the fits to the helper process: ``{"helper": Helper,
    task: Future}`` (empty without a helper; each task is then done here, as it is when the
    helper fails)."""
    if not (_report_helper.available() if use is None else use):
        return {}
    h = _report_helper.helper()
    if h is None:
        return {}
    pending = {"helper": h, "path": os.path.abspath(path)}
    posterior = [m for m in methods if REGISTRY[m].kind != "point"]
    if alternatives and posterior:  # (first: the LOO step needs them before the figures need the prior's)
        method = loo_method
        quiet_options = {**options.get(method, {}), "progress": False}  # no bars from the helper
        pending["alternatives"] = h.submit("alternative_fits", os.path.abspath(path), list(alternatives), data, method, quiet_options)
    pending["prior"] = h.submit("prior_figure", os.path.abspath(path), data, observed)
    return pending


class Later:
    """Figures on their way: :meth:`get` returns ``{name: figure}`` (it waits for the helper,
    takes the task back if the helper has not started it, or draws them here)."""

    def __init__(self, rep, future, local):
        self._rep, self._future, self._local = rep, future, local

    def ready(self) -> bool:
        """True when :meth:`get` would not wait."""
        return self._future is None or self._future.done()

    def take_back(self) -> bool:
        """Take the task back from the helper if it has not begun it (:meth:`get` then draws
        here): True when taken."""
        if self._future is not None and _report_helper.take_back(self._future):
            self._future = None
            return True
        return False

    def get(self) -> dict:
        if self._future is None or self.take_back():
            return self._local()
        here = lambda: {k: (f, None) for k, f in self._local().items()}  # noqa: E731
        out = {}
        for name, (fig, png) in _report_helper.resolve(self._future, here).items():
            out[name] = pickle.loads(fig) if isinstance(fig, bytes) else fig
            if png is not None:  # (rendered there; else write() renders it)
                self._rep.pngs[name] = png
        return out


def figures(rep, pending, inputs, parts) -> Later:
    """The figures ``parts`` of ``inputs``, drawn (and, with files to write, rendered) by the
    helper process when there is one."""
    from . import _report_figures as figs

    def local():
        return figs.all_figures(inputs, parts)

    if pending.get("helper") is None:
        got = local()
        return Later(rep, None, lambda: got)
    recipe = _recipe(inputs, parts)
    return Later(rep, pending["helper"].submit("figures", pending["path"], inputs.data, recipe, parts, rep.helper is not None), local)


def drawing(rep, pending, name: str, key: str, arrays: dict) -> Later:
    """The figure ``key`` drawn by ``_report_helper.draw(name, arrays)`` from plain numbers, in
    the helper process when there is one."""

    def local():
        return {key: _report_helper.drawings()[name](**arrays)}

    if pending.get("helper") is None:
        got = local()
        return Later(rep, None, lambda: got)
    return Later(rep, pending["helper"].submit("draw", name, key, arrays, rep.helper is not None), local)


def _recipe(inputs, parts) -> dict:
    """What the helper needs to draw the figures ``parts`` of ``inputs``
    (:func:`_report_helper.figures`): the fits they show as ``_io.state`` (numbers and
    InferenceData; the MCMC run's alone for the ``"sampler"`` part) and the report's choices."""
    from . import _io

    if "fits" in parts:
        shown = dict(inputs.fits)
    elif "sampler" in parts and inputs.sampler[1] is not None:
        shown = dict([inputs.sampler])
    else:
        shown = {}
    states = {label: _io.state(f, log_likelihood=False, posterior_predictive=False) for label, f in shown.items()}
    return dict(
        states=states,
        posterior=inputs.posterior[0] if inputs.posterior[0] in states else None,
        sampler=inputs.sampler[0] if inputs.sampler[0] in states else None,
        truth=inputs.truth,
        observed=inputs.observed,
        point_values=inputs.point_values,
        alternatives={k: v for k, (_, v) in inputs.alternatives.items()},
    )


def render(rep):
    """Send the figures not yet rendered to the helper (when there is one and files are written)."""
    if rep.helper is None:
        return
    for key, fig in rep.figures.items():
        if key not in rep.pngs:
            try:
                blob = pickle.dumps(fig, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a figure that does not pickle is rendered here
                continue
            rep.pngs[key] = rep.helper.submit("render", blob)


def prior_figure(rep, program, data, observed, pending):
    """The prior predictive check (from the helper when it drew it): the figure or None."""
    got = _report_helper.resolve(pending.get("prior"), lambda: None)
    if got is None:
        (fig, note), png = _report_helper.prior_figure(program, data, observed), None
    else:
        blob, png, note = got
        fig = None if blob is None else pickle.loads(blob)
    if note:
        rep.notes.append(note)
    if fig is not None and png is not None:
        rep.pngs["prior_predictive"] = png
    return fig
