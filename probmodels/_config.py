"""JAX settings probmodels needs, applied once at import, before any array exists.

* float64 everywhere (``jax_enable_x64``): every tolerance in the library and its tests
  assumes it, and Laplace approximations in float32 collapse (numpyro issue 1001).
* JAX's persistent compilation cache, with its thresholds lowered so that the small, fast
  compiles of a GLM objective are cached too (jax issues 21908, 25768). The directory is
  ``$PROBMODELS_CACHE_DIR`` or ``~/.cache/probmodels/jax``; ``PROBMODELS_CACHE_DIR=off``
  disables it.
* One JAX device per CPU core (``jax_num_cpu_devices``, as ``numpyro.set_host_device_count``
  does), so that NUTS chains run in parallel (``chain_method="parallel"``); arrays still live on
  the first device and single-device work keeps XLA's intra-op threads. Not when the user set
  the count (``jax_num_cpu_devices`` or ``XLA_FLAGS=--xla_force_host_platform_device_count``)
  or JAX had started; ``PROBMODELS_CPU_DEVICES=n`` chooses ``n`` (1: off).
* XLA options for every program probmodels compiles (``jit``), not for the user's own: on a
  CPU, the classic elemental emitters instead of XLA's newer fusion emitters
  (``xla_cpu_use_fusion_emitters=false``) and LLVM optimisation level 1: a GLM's NUTS program
  compiles in 1.1-1.4 s instead of 1.7-2.6 s, with the same sampling speed (benchmarks/RESULTS.md).
  An option the user set in ``XLA_FLAGS`` is left to them.
* probmodels' programs (:func:`jit`) kept on disk under their jaxpr as well, so that a new
  process loads them without lowering them (``_programs.py``).
* A listener on JAX's compile events so that every ``Fit`` can report the seconds spent
  tracing, lowering and compiling (``diagnostics["compile_s"]``).
"""

from __future__ import annotations

import os
import threading
import warnings

import jax

from . import _programs

__all__ = ["cache_dir", "clear_compiled", "compile_seconds", "cpu_devices", "jit"]


def _backends_initialised() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # pragma: no cover - private API moved
        return False


_ALREADY_STARTED = _backends_initialised()

jax.config.update("jax_enable_x64", True)

cache_dir: str | None = os.environ.get(
    "PROBMODELS_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "probmodels", "jax")
)
if cache_dir.lower() in ("", "0", "off", "none", "false"):
    cache_dir = None
if cache_dir is not None and jax.config.jax_compilation_cache_dir is None:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    # JAX's defaults (1 s, and a filesystem-dependent size floor) skip exactly the compiles a
    # GLM objective makes; 0.05 s keeps the cache free of one-op kernels.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
elif cache_dir is not None:
    cache_dir = jax.config.jax_compilation_cache_dir



def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_env_devices = os.environ.get("PROBMODELS_CPU_DEVICES", "").strip()
if not _env_devices.isdigit() and _env_devices:
    raise ValueError(f"PROBMODELS_CPU_DEVICES must be a whole number of devices, got {_env_devices!r}")
cpu_devices = int(_env_devices) if _env_devices else min(_cores(), 16)
if (
    not _ALREADY_STARTED
    and cpu_devices > 1
    and jax.config.jax_num_cpu_devices == -1
    and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")
):
    jax.config.update("jax_num_cpu_devices", cpu_devices)

if _ALREADY_STARTED:
    warnings.warn(
        "probmodels was imported after JAX created arrays: 64-bit mode and the persistent "
        "compilation cache apply only to arrays and compiles made from now on; import "
        "probmodels before anything else that uses JAX.",
        RuntimeWarning,
        stacklevel=3,
    )

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_local = threading.local()


def _on_duration(event: str, duration: float, **_: object) -> None:
    if event in _COMPILE_EVENTS:
        _local.seconds = getattr(_local, "seconds", 0.0) + duration
        _local.compiles = getattr(_local, "compiles", 0) + (event == _COMPILE_EVENTS[2])


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def compile_seconds() -> tuple[float, int]:
    """Seconds spent tracing + lowering + compiling on this thread so far, and the number of
    backend compiles (a persistent-cache hit still counts as tracing and lowering)."""
    return getattr(_local, "seconds", 0.0), getattr(_local, "compiles", 0)


def clear_compiled() -> int:
    """Drop every program probmodels has compiled in this process (the solvers' and the
    predictive functions, and JAX's in-memory caches); returns how many programs were dropped.

    Each compiled program stays in memory so that a second fit of the same program and shapes
    compiles nothing (the 128 most recent programs, 64 for predictions). An XLA CPU executable
    maps 100-300 memory regions, and a process past the kernel's ``vm.max_map_count`` (65,530 by
    default) crashes at its next compile: a long session that fits hundreds of new programs
    (closures built in a loop) calls this now and then. The persistent cache on disk is kept,
    so a dropped program comes back at the cost of tracing it again.
    """
    import gc

    from . import predict
    from .solvers import _objective

    n = len(_objective._CACHE) + len(predict._CACHE) + len(predict._PRIOR_CACHE)
    _programs.clear()
    _objective._CACHE.clear()
    predict._CACHE.clear()
    predict._PRIOR_CACHE.clear()
    jax.clear_caches()
    gc.collect()
    return n


# XLA CPU options (debug options, passed per program as compiler_options). Measured on the
# benchmark's NUTS programs (2-core EPYC, jaxlib 0.10.2, cold cache): compile 1.7-2.7 s -> 1.1-1.7
# s, sampling time unchanged (the MLP's 10% faster); the dot products run in Eigen either way.
_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}
_options: dict | None = None


def compiler_options() -> dict:
    """The XLA options of probmodels' programs on this backend: ``_FAST_COMPILE`` on a CPU less
    any the user set in ``XLA_FLAGS`` (dropped for good if this XLA does not know one); none
    (XLA's own defaults) with ``PROBMODELS_XLA_OPTIONS=default`` in the environment."""
    global _options
    if _options is None:
        flags = os.environ.get("XLA_FLAGS", "")
        cpu = jax.default_backend() == "cpu"
        own = os.environ.get("PROBMODELS_XLA_OPTIONS", "").strip().lower() != "default"
        _options = {k: v for k, v in _FAST_COMPILE.items() if k not in flags} if (cpu and own) else {}
    return _options


def _unknown_option(err: Exception) -> bool:
    return "compile option" in str(err) and any(k in str(err) for k in _FAST_COMPILE)


def _tracing() -> bool:
    try:
        from jax._src import core

        return not core.trace_state_clean()
    except Exception:  # pragma: no cover - private API moved: assume nested, drop the options
        return True


class _Jit:
    """``jax.jit(fun)`` with probmodels' XLA options when called from Python, without them when
    traced into another program (JAX accepts compiler options only on a top-level jit)."""

    def __init__(self, fun, kwargs):
        self._top = jax.jit(fun, compiler_options=compiler_options(), **kwargs)
        self._nested = jax.jit(fun, **kwargs)
        self._kept = _programs.Programs(self._top, kwargs, fun)  # (kept on disk by jaxpr)
        self.__wrapped__ = fun

    def __call__(self, *args, **kwargs):
        if _tracing():
            return self._nested(*args, **kwargs)
        out = self._kept.call(args, kwargs)
        if out is not _programs.MISSING:
            return out
        try:
            return self._top(*args, **kwargs)
        except Exception as err:  # an option this XLA no longer has: its defaults from now on
            if not _unknown_option(err):
                raise
            global _options
            _options = {}
            self._top = self._nested
            self._kept.usable = False
            return self._top(*args, **kwargs)

    def __getattr__(self, name):  # lower, trace, eval_shape, ...
        return getattr(self._top, name)


def jit(fun, **kwargs):
    """``jax.jit`` with probmodels' XLA options (``compiler_options()``) for its top-level calls."""
    return _Jit(fun, kwargs)
