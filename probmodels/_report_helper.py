"""The report's helper process: the work that needs none of the main process's compiled programs
runs beside it.

A report is single-threaded Python for most of its time (tracing and lowering JAX programs,
drawing figures), so on a machine with two or more cores a second process halves part of what
the user waits for. The helper fits the ``ALTERNATIVES`` for the LOO comparison, draws the prior
predictive check and every other figure from numbers the main process sends (the fits'
figures from the fits' states, :func:`figures`; the predictive checks and bands from their
arrays, :func:`draw`), renders PNGs and writes the NetCDF files, while the main process fits
every method, scores them and predicts.
It holds one task at a time; the rest wait in the main process, which takes queued tasks back
(from the back of the queue) when it would otherwise wait (:func:`take_back`). It computes
exactly what the main process would (the same functions, seeds and JAX settings; a test
compares the two), and each task is redone in the main process when the helper cannot serve it
(it failed to start, died, or raised): a genuine error is then raised there, with its usual
traceback.

The helper is a plain ``python -c`` subprocess that talks over two pipes (pickles both ways),
not ``multiprocessing``: spawn would re-run the user's ``__main__`` script in the child. One
helper serves every report of the session (started on first use, closed at exit); the
``probmodels`` command starts it before its own imports (``probmodels_launch``), so that both
processes import at once. Python warnings raised in it come back and are raised again in the
main process, so that the report gathers them as it gathers its own.
``PROBMODELS_REPORT_HELPER=0`` (or ``report(..., helper=False)``) keeps everything in one process.
"""
from __future__ import annotations

import atexit
import io
import itertools
import pickle
import queue
import subprocess
import threading
import traceback
import warnings
from collections import deque
from concurrent.futures import Future

import probmodels_launch
from probmodels_launch import available

__all__ = ["available", "helper", "close", "resolve", "take_back", "render_png", "alternative_fits", "prior_figure", "figures", "drawings", "draw"]

_HELPER = None
_LOCK = threading.Lock()
_STOP = object()
_CLEAR_EVERY = 40  # tasks served between drops of the helper's compiled programs (a long session)


def helper() -> "Helper | None":
    """The session's helper (started on first use), or None when it cannot start."""
    global _HELPER
    with _LOCK:
        if _HELPER is not None and not _HELPER.alive():
            _HELPER.close(wait=False)
            _HELPER = None
        if _HELPER is None:
            try:
                _HELPER = Helper(probmodels_launch.take_early())
            except (OSError, ValueError):  # pragma: no cover - no subprocess, or no pass_fds (Windows)
                return None
        return _HELPER


def close(wait: bool = False) -> None:
    """Stop the session's helper (at exit; a later report starts a new one). It ends when its
    input ends; ``wait`` waits for that (at exit nothing needs to)."""
    global _HELPER
    with _LOCK:
        if _HELPER is not None:
            _HELPER.close(wait)
            _HELPER = None


atexit.register(close)


class Helper:
    """One helper process; :meth:`submit` returns a ``Future`` (tasks run in order)."""

    def __init__(self, started=None):
        """A new helper process, or ``started``: one :func:`probmodels_launch.spawn` started
        (the command starts it before its own imports)."""
        self.proc, self._out, self._in = started if started is not None else probmodels_launch.spawn()
        # (rank, order, task, future): rank 0 first, then the tasks asked for later (rank 1)
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._pending: deque = deque()
        self._served = 0
        self.answered = 0  # tasks the helper served (a test checks that a report used it)
        self._broken = False
        self._free = threading.Semaphore(1)
        threading.Thread(target=self._send, daemon=True, name="probmodels-helper-send").start()
        threading.Thread(target=self._receive, daemon=True, name="probmodels-helper-receive").start()

    def alive(self) -> bool:
        return not self._broken and self.proc.poll() is None

    def submit(self, task: str, *args, later: bool = False) -> Future:
        """Queue ``task``; ``later=True``: after every task queued without it, whenever it was
        queued (the report's files, which the helper writes when it would otherwise wait)."""
        future: Future = Future()
        rank = 1 if later else 0
        self._served += 1
        if self._served % _CLEAR_EVERY == 0:  # keep the helper under vm.max_map_count
            self._tasks.put((rank, next(self._order), ("clear", ()), Future()))
        self._tasks.put((rank, next(self._order), (task, args), future))
        return future

    def _send(self):
        while True:
            # one task at a time in the helper's hands: the rest stay queued here, where the
            # main process can still take them back (take_back) when it would otherwise wait,
            # and the next one is chosen when the helper is free (a task queued meanwhile
            # goes before those asked for later)
            sent_one = False
            while not self._broken and not sent_one:
                sent_one = self._free.acquire(timeout=0.2)
            _, _, item, future = self._tasks.get()
            if item is _STOP:  # end of input: the helper's loop ends
                try:
                    self._out.close()
                except OSError:
                    pass
                return
            try:  # whole, before writing: a pickling error must not leave half a task in the pipe
                blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as err:  # an object that does not pickle: done in the main process
                if future is not None and future.set_running_or_notify_cancel():
                    future.set_exception(err)
                if sent_one:
                    self._free.release()
                continue
            if future is not None and not future.set_running_or_notify_cancel():
                if sent_one:
                    self._free.release()
                continue  # taken back by the main process
            if self._broken:
                if future is not None:
                    future.set_exception(RuntimeError("the report's helper process stopped"))
                continue
            if future is not None:
                self._pending.append(future)
            try:
                self._out.write(blob)
                self._out.flush()
            except OSError as err:  # the helper died: this and every later task fail at once
                self._fail(err)

    def _receive(self):
        while True:
            try:
                reply = pickle.load(self._in)
            except Exception as err:  # EOF: the helper ended
                self._fail(err)
                return
            future = self._pending.popleft()
            self._free.release()
            ok, value, caught = reply
            if ok:
                self.answered += 1
                future.set_result((value, caught))
            else:
                future.set_exception(RuntimeError(value))

    def _fail(self, err):
        self._broken = True
        self._free.release()  # (wakes the sender, which fails every later task at once)
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(RuntimeError(f"the report's helper process stopped: {err!r}"))

    def close(self, wait: bool = True):
        self._tasks.put((2, next(self._order), _STOP, None))
        if not wait:
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # busy with a task nobody will read
            self.proc.kill()
            self.proc.wait()


def take_back(future) -> bool:
    """Take a task back from the helper's queue if it has not been sent yet (the caller does it
    itself): True when taken. The main process takes from the back of the queue while the
    helper works from the front, so that neither waits while the other has work queued."""
    return isinstance(future, Future) and future.cancel()


def resolve(future: Future | None, local):
    """A helper task's value (its Python warnings raised again here), else ``local()``."""
    if future is not None:
        try:
            value, caught = future.result()
        except Exception:
            pass
        else:
            for category, message, filename, lineno in caught:
                warnings.warn_explicit(message, category, filename, lineno)
            return value
    return local()


# ------------------------------------------------------------------ the tasks (both processes)


DPI = 90  # the report's PNGs


def render_png(fig, dpi: int = DPI, pad: float = 0.1) -> bytes:
    """A figure as PNG bytes, cut to what it draws plus ``pad`` inches, as
    ``savefig(bbox_inches="tight", pad_inches=pad)`` makes it, but drawn once where everything
    lies on the canvas (cropped and framed in the figure's colour): savefig's "tight" draws the
    figure twice, the first time only to measure it, and that was half of a report's rendering
    time. A figure that reaches past its canvas is saved by savefig with the box measured here."""
    import matplotlib.image as mimage
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba

    canvas_before, dpi_before = fig.canvas, fig.dpi
    buf = io.BytesIO()
    try:
        canvas = FigureCanvasAgg(fig)
        fig.dpi = dpi
        canvas.draw()
        box = fig.get_tightbbox(canvas.get_renderer())
        w, h = fig.get_size_inches()
        slack = 0.5 / dpi  # (half a pixel past the edge is not drawn anyway)
        if not (box.x0 >= -slack and box.y0 >= -slack and box.x1 <= w + slack and box.y1 <= h + slack):
            fig.dpi = dpi_before
            fig.set_canvas(canvas_before)
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches=box.padded(pad))
            return buf.getvalue()
        # savefig's output: the padded box, int(size x dpi) pixels, the canvas placed in it
        rgba = np.asarray(canvas.buffer_rgba())
        out_h, out_w = int((box.height + 2 * pad) * dpi), int((box.width + 2 * pad) * dpi)
        top, left = int(round((h - box.y1 - pad) * dpi)), int(round((box.x0 - pad) * dpi))
        colour = np.round(np.asarray(to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
        framed = np.empty((out_h, out_w, 4), np.uint8)
        framed[...] = colour
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + out_h, rgba.shape[0]), min(left + out_w, rgba.shape[1])
        framed[r0 - top : r1 - top, c0 - left : c1 - left] = rgba[r0:r1, c0:c1]
        mimage.imsave(buf, framed, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        fig.dpi = dpi_before
        fig.set_canvas(canvas_before)


def alternative_fits(alternatives: dict, data: dict, method: str, options: dict) -> dict:
    """``{label: (Fit, InferenceData)}``: each alternative program fitted by ``method``, with the
    InferenceData its LOO needs (no replicated observations)."""
    from .fit import fit

    out = {}
    for label, program in alternatives.items():
        f = fit(program, data, method, **options)
        out[label] = (f, f.to_arviz(posterior_predictive=False))
    return out


def prior_figure(program, data: dict, observed: str):
    """``(figure or None, note or None)``: the prior predictive check, or why there is none."""
    import arviz as az
    import numpy as np

    from ._report_figures import room_below
    from .predict import prior_predictive

    try:
        prior = prior_predictive(program, data, draws=200, seed=0)
    except ValueError as err:  # a flat parameter: named in the error
        return None, f"no prior predictive check: {err}"
    if observed not in prior.prior_predictive or "observed_data" not in prior.groups():
        return None, None
    # (random_seed: which 100 of the 200 simulations are drawn, not numpy's global state)
    ax = np.ravel(az.plot_ppc(prior, group="prior", num_pp_samples=100, figsize=(8, 4), random_seed=0))[0]
    ax.set_title("prior predictive check (100 simulations from the priors)")
    room_below(ax.figure, 0.6)
    return ax.figure, None


# ------------------------------------------------------------------ the helper's side


def _task_alternative_fits(path, labels, data, method, options):
    from . import _io
    from .report import load_spec

    _, spec = load_spec(path)
    found = dict(getattr(spec, "ALTERNATIVES", {}) or {})
    fits = alternative_fits({k: found[k] for k in labels}, data, method, options)
    # a Fit pickles as its numbers and InferenceData (its compiled functions do not); LOO needs
    # no replicated observations
    return {k: _io.state(f, posterior_predictive=False) for k, (f, _) in fits.items()}


def _task_prior_figure(path, data, observed):
    from .report import load_spec

    _, spec = load_spec(path)
    fig, note = prior_figure(spec.program, data, observed)
    if fig is None:
        return None, None, note
    return _shipped(fig) + (note,)


def _shipped(fig, render: bool = True) -> tuple:
    """``(pickled figure, PNG or None)``, the figure closed: what the helper sends back."""
    import matplotlib.pyplot as plt

    try:
        return pickle.dumps(fig, protocol=pickle.HIGHEST_PROTOCOL), render_png(fig) if render else None
    finally:
        plt.close(fig)


def figures(path: str, data: dict, recipe: dict, parts, render: bool = True) -> dict:
    """``{name: (pickled figure, PNG or None)}``: the report's figures ``parts`` (see
    ``_report_figures.all_figures``) drawn from ``recipe`` (``probmodels._report_tasks._recipe``:
    the fits as ``_io.state`` and what the report chose to show), and rendered."""
    from . import _io
    from ._report_figures import FigureInputs, all_figures
    from .report import load_spec

    _, spec = load_spec(path)
    fits = {label: _io.restore(st) for label, st in recipe["states"].items()}
    found = dict(getattr(spec, "ALTERNATIVES", {}) or {})
    pick = lambda label: (label, fits[label]) if label is not None else (None, None)  # noqa: E731
    inputs = FigureInputs(
        fits=fits,
        posterior=pick(recipe["posterior"]),
        sampler=pick(recipe["sampler"]),
        points={k: f for k, f in fits.items() if f.is_point},
        truth=recipe["truth"],
        program=spec.program,
        data=data,
        observed=recipe["observed"],
        point_values=recipe["point_values"],
        alternatives={k: (found[k], v) for k, v in recipe["alternatives"].items()},
    )
    return {name: _shipped(fig, render) for name, fig in all_figures(inputs, parts).items()}


def drawings() -> dict:
    """The figures drawn from plain numbers (``name -> function(**arrays) -> figure``)."""
    from ._report_figures import draw_ppc
    from ._report_workflow import draw_bands

    return {"ppc": draw_ppc, "bands": draw_bands}


def draw(name: str, key: str, arrays: dict, render: bool = True) -> dict:
    """``{key: (pickled figure, PNG or None)}``: the drawing ``name`` (:func:`drawings`) of
    ``arrays``, the report's figure ``key``."""
    return {key: _shipped(drawings()[name](**arrays), render)}


def _task_render(blob):
    import matplotlib.pyplot as plt

    fig = pickle.loads(blob)
    try:
        return render_png(fig)
    finally:
        plt.close(fig)


def _task_netcdf(idata, path):
    idata.to_netcdf(path)


def _task_clear():
    from ._config import clear_compiled

    clear_compiled()


_TASKS = {
    "alternative_fits": _task_alternative_fits,
    "prior_figure": _task_prior_figure,
    "figures": figures,
    "draw": draw,
    "render": _task_render,
    "netcdf": _task_netcdf,
    "clear": _task_clear,
}


def serve(reader, writer):
    """The helper's loop: read ``(task, args)``, answer ``(ok, value, warnings)``, in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imported before the first task, not during it)

    import probmodels  # noqa: F401  (JAX settings, as in the main process)

    probmodels_launch.settle()  # (the boot turned the collector off for the imports)

    try:
        _loop(reader, writer)
    finally:  # (closed here: the interpreter's exit would warn about open files)
        for f in (reader, writer):
            try:
                f.close()
            except OSError:
                pass


def _loop(reader, writer):
    while True:
        try:
            task, args = pickle.load(reader)
        except (EOFError, OSError):
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = _TASKS[task](*args)
            reply = (True, value, [(w.category, str(w.message), w.filename, w.lineno) for w in caught])
            blob = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # sent back as text: the main process redoes the task
            blob = pickle.dumps((False, traceback.format_exc(), []), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            writer.write(blob)
            writer.flush()
        except OSError:
            return
