"""The ``probmodels`` command's first step, before any heavy import: start the report's helper.

``import probmodels`` takes 2-2.5 s (JAX, numpyro, ArviZ, matplotlib), and so does the helper
process's own import (see ``probmodels._report_helper``). Started from here, with the standard
library only, the helper imports on the second core while this process imports on the first,
and is ready when the report starts instead of 2.5 s later. The helper is handed over to
``probmodels._report_helper`` on the report's first use (:func:`take_early`); a command that
does not report (``--help``, a wrong argument) leaves it unused, and it ends when this process
does (its input pipe closes).

This module is outside the ``probmodels`` package on purpose: importing any module of the
package first imports the package itself, with everything it imports.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import subprocess
import sys

__all__ = ["available", "spawn", "take_early", "console", "imported", "settle"]

_BOOT = (
    "import gc, os, pickle, sys\n"
    "gc.disable()\n"  # (until serve() has imported everything: it calls settle())
    "r = os.fdopen(int(sys.argv[1]), 'rb'); w = os.fdopen(int(sys.argv[2]), 'wb')\n"
    "sys.path[:] = pickle.load(r)\n"
    "from probmodels._report_helper import serve\n"
    "serve(r, w)\n"
    # its tasks answered, it leaves without the interpreter's teardown (~1 s with JAX, ArviZ
    # and matplotlib loaded), which would only hold up whoever reads the stderr it shares
    # (`probmodels report ... 2>&1 | tee log` waits for every writer to close it)
    "sys.stderr.flush()\n"
    "os._exit(0)\n"
)
_EARLY = None  # (process, task pipe, result pipe) started by console(), until taken


def available() -> bool:
    """Whether a report may use a helper: two or more cores and not switched off
    (``PROBMODELS_REPORT_HELPER=0``)."""
    if os.environ.get("PROBMODELS_REPORT_HELPER", "1").strip().lower() in ("0", "off", "false", "no"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return cores >= 2


def spawn():
    """Start a helper process: ``(process, task pipe, result pipe)``. It is sent this process's
    ``sys.path`` at once (it imports what this process imports) and then serves the tasks
    written to the task pipe (``probmodels._report_helper.serve``)."""
    r_task, w_task = os.pipe()
    r_res, w_res = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(r_task), str(w_res)],
            pass_fds=(r_task, w_res),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except BaseException:
        for fd in (w_task, r_res):
            os.close(fd)
        raise
    finally:
        os.close(r_task)
        os.close(w_res)
    out = os.fdopen(w_task, "wb")
    out.write(pickle.dumps(list(sys.path), protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()
    return proc, out, os.fdopen(r_res, "rb")


def take_early():
    """The helper :func:`console` started, once (None when it started none or it has died)."""
    global _EARLY
    early, _EARLY = _EARLY, None
    if early is not None and early[0].poll() is not None:
        return None
    return early


def _reports(argv) -> bool:
    return bool(argv) and argv[0] == "report" and not any(a in ("-h", "--help") for a in argv[1:])


def console() -> None:
    """The ``probmodels`` command: the helper first (for ``probmodels report``), then
    ``probmodels.cli.console``."""
    global _EARLY
    if _reports(sys.argv[1:]) and available():
        try:
            _EARLY = spawn()
        except (OSError, ValueError):  # pragma: no cover - no subprocess here: the report does without
            _EARLY = None
    with imported():
        from probmodels.cli import console as run
    run()


@contextlib.contextmanager
def imported():
    """Python's cyclic garbage collector off while the heavy modules import, what they made
    frozen after it (``gc.freeze``: out of every later collection), and full collections ten
    times rarer: measured on the main job, 0.3 s of collections during the import and 0.4-0.9
    s of full collections during the report (four of them, each walking every object JAX,
    ArviZ and matplotlib keep), at the same peak memory. For the command and the helper
    process only: a library call leaves the collector as the user set it."""
    gc.disable()
    try:
        yield
    finally:
        settle()


def settle() -> None:
    """After the imports: freeze what exists, make full collections rarer, collector on (see
    :func:`imported`; the helper's boot turns the collector off, its loop calls this)."""
    gc.freeze()
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, max(full, 100))
    gc.enable()


if __name__ == "__main__":
    console()
