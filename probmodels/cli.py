"""The command line: ``probmodels report [MODEL] --out DIR [--methods ...]``."""

from __future__ import annotations

import argparse
import atexit
import os
import sys

__all__ = ["main", "console"]


def main(argv=None) -> int:
    from .fit import METHODS
    from .report import REPORT_METHODS

    parser = argparse.ArgumentParser(prog="probmodels", description="probmodels: every loss a likelihood, every regularizer a prior.")
    sub = parser.add_subparsers(dest="command")
    rp = sub.add_parser("report", help="fit a model file by every method and write an HTML/markdown report")
    rp.add_argument("model", nargs="?", default=None, help="a model-specification file (models/<name>.py); the built-in robust-regression example when omitted")
    rp.add_argument("--out", default="probmodels-report", help="output folder (default: probmodels-report)")
    rp.add_argument("--methods", default=",".join(REPORT_METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    rp.add_argument("--quick", action="store_true", help="short NUTS and VI runs (a preview)")
    rp.add_argument("--quiet", action="store_true", help="no progress on the terminal")
    args = parser.parse_args(argv)
    if args.command != "report":
        parser.print_help()
        return 2
    from .report import report

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        rep = report(args.model, out=args.out, methods=methods, quick=args.quick, quiet=args.quiet)
    except (ValueError, FileNotFoundError) as e:
        print(f"probmodels report: {e}", file=sys.stderr)
        return 1
    print(f"{rep.title}: report written to {args.out}/report.html and {args.out}/report.md")
    return 0


def console() -> None:
    """The ``probmodels`` command: :func:`main`, then a quick exit.

    Tearing down an interpreter that holds JAX, ArviZ and matplotlib (clearing every module,
    collecting every object) takes 0.7-1.2 s on two cores, after the report is written. The
    command flushes its output, runs the exit handlers and leaves without that teardown;
    :func:`main` itself (tests, scripts) returns as usual. JAX's own handler (which destroys its
    backends and caches, 0.3 s, before the process ends anyway) is left out unless JAX's
    multi-process runtime is up (then it shuts that down).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # pragma: no cover - not CPython
        sys.exit(code)
    _skip_jax_teardown()
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _skip_jax_teardown() -> None:
    """Unregister ``jax._src.api.clean_up`` (see :func:`console`) when JAX's distributed
    runtime is not running; any change in JAX's internals leaves the handler in place."""
    try:
        from jax._src import api, distributed
    except ImportError:  # pragma: no cover - JAX's layout changed: keep its handler
        return
    clean_up = getattr(api, "clean_up", None)
    state = getattr(distributed, "global_state", None)
    if clean_up is None or state is None or getattr(state, "client", True) is not None:
        return
    atexit.unregister(clean_up)


if __name__ == "__main__":
    console()
