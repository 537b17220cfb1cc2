"""probmodels' compiled programs kept on disk under their jaxpr, so that a fresh process skips
lowering them.

JAX's persistent compilation cache (see ``_config``) keys an executable on the lowered program:
a fresh process still traces each program to a jaxpr, lowers the jaxpr to MLIR and hashes it
before the cache can answer (the report's main job, warm: 2.0 s of lowering and 2.9 s of
tracing in its main process, 1.3 s and 1.2 s in its helper). Here the executable is also kept
under a hash of what lowering reads, so that a process that has traced a program loads its
executable without lowering it:

* the jaxpr as JAX prints it (every equation, with its parameters and the types of its inputs
  and outputs) and the bytes of its constants;
* the inputs' shardings, the jit options, probmodels' XLA options, every JAX setting, the
  versions of JAX and jaxlib, and the backend with its devices.

A jaxpr whose text holds an object's address (a parameter that prints as ``<... at 0x...>``) or
a host callback is not kept: its text would not name the program. Anything unexpected (a program
JAX cannot serialise, a file that does not load) falls back to ``jax.jit``'s own path; the
in-memory dispatch is per abstract signature, as ``jax.jit``'s. While one of these programs
compiles, JAX's cache is neither read nor written (an executable that JAX's cache loaded does not
serialise whole); its lowering rules' side effects that a loaded program misses (LAPACK's
kernels) are redone before loading, as ``jax.export`` does.
``PROBMODELS_CACHE_DIR=off`` turns this off with JAX's cache.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import threading
import time
import weakref
import zlib

import jax
import jaxlib
import numpy as np

__all__ = ["directory", "Programs", "clear", "MISSING"]

_LOG = logging.getLogger(__name__)
_FORMAT = 2  # of the files: bump when what they hold changes
_ALL: "weakref.WeakSet[Programs]" = weakref.WeakSet()
MISSING = object()
_LOADED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # (key, trees) -> Compiled


def directory() -> str | None:
    """Where the executables are kept: ``probmodels-programs`` in JAX's cache directory (None:
    off)."""
    from . import _config

    if _config.cache_dir is None:
        return None
    return os.path.join(_config.cache_dir, "probmodels-programs")


def clear() -> int:
    """Drop every program held in memory (the files stay); returns how many."""
    n = 0
    for p in list(_ALL):
        n += len(p.table)
        p.table.clear()
    _LOADED.clear()
    return n


_PYTHON_SCALARS = (bool, int, float, complex)


def _leaf_signature(x):
    if isinstance(x, jax.Array):  # (uncommitted: on the default device, as a NumPy array goes)
        return (x.shape, x.dtype, x.weak_type, x.sharding if x.committed else None)
    if isinstance(x, np.ndarray):
        return (x.shape, x.dtype, False, None)
    if isinstance(x, np.generic):
        return ("scalar", x.dtype)
    if isinstance(x, _PYTHON_SCALARS):
        return ("python", type(x))
    raise TypeError  # an input jit would treat otherwise: its own path


class Programs:
    """The executables of one jitted function, one per abstract signature of its inputs."""

    def __init__(self, jitted, kwargs: dict, fun):
        self.jitted = jitted
        self.table: dict = {}
        self.options = repr(sorted((k, repr(v)) for k, v in kwargs.items()))
        argnums = kwargs.get("static_argnums", ())
        self.static_argnums = frozenset((argnums,) if isinstance(argnums, int) else argnums)
        names = kwargs.get("static_argnames", ())
        self.static_argnames = frozenset((names,) if isinstance(names, str) else names)
        if self.static_argnames or self.static_argnums:
            # jit resolves a static name passed by position, and a static position passed by name
            from jax._src.api_util import fun_signature, infer_argnums_and_argnames

            nums, names = infer_argnums_and_argnames(fun_signature(fun), tuple(self.static_argnums), tuple(self.static_argnames))
            self.static_argnums, self.static_argnames = frozenset(nums), frozenset(names)
        self.usable = not kwargs.get("donate_argnums") and not kwargs.get("donate_argnames")
        _ALL.add(self)

    def call(self, args, kwargs):
        """The function's value, or ``MISSING`` when ``jax.jit``'s own path should give it."""
        if not self.usable:
            return MISSING
        try:
            if self.static_argnums or self.static_argnames:
                dyn_args = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
                dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
                static = (
                    tuple((i, a) for i, a in enumerate(args) if i in self.static_argnums),
                    tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames)),
                )
            else:
                dyn_args, dyn_kwargs, static = args, kwargs, ()
            leaves, tree = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs))
            signature = (tree, tuple(_leaf_signature(x) for x in leaves), static)
            compiled = self.table.get(signature, MISSING)
        except TypeError:  # an unhashable static value or an unusual input: jit's path
            return MISSING
        if compiled is MISSING:
            compiled = self.table[signature] = self._compiled(args, kwargs, leaves)
        if compiled is None:
            return MISSING
        return compiled(*dyn_args, **dyn_kwargs)

    def _compiled(self, args, kwargs, leaves):
        """The executable for these inputs: loaded from disk, or lowered, compiled and kept;
        None for jit's own path."""
        folder = directory()
        if folder is None or not _capture_compile_options():
            return None
        try:
            traced = self.jitted.trace(*args, **kwargs)
        except Exception:  # (jit's path raises it again, with its usual traceback)
            return None
        t1 = time.perf_counter()
        text = str(traced.jaxpr)
        if " at 0x" in text or "callback" in text:
            return None
        key = self._key(text, traced.jaxpr.consts, leaves)
        # The trees of inputs and outputs come from this trace: the jaxpr does not hold them (a
        # function that names its outputs after its inputs' keys has one jaxpr for both), and a
        # pickled tree of named tuples loads, then crashes JAX.
        trees = (jax.tree_util.tree_structure(traced.args_info), traced.out_tree)
        compiled = _LOADED.get((key, trees))
        if compiled is not None:  # (another signature of the same program: NumPy or JAX inputs)
            return compiled
        path = os.path.join(folder, key)
        compiled = _load(path, *trees)
        if compiled is not None:
            _LOADED[key, trees] = compiled
            _record(time.perf_counter() - t1)
            _LOG.debug("probmodels program cache hit for '%s' with key %s", traced.fun_name, key)
            return compiled
        _LOG.debug("probmodels program CACHE MISS for '%s' with key %s", traced.fun_name, key)
        _CAPTURE.options = seen = []
        try:
            compiled = traced.lower().compile()
        except Exception:  # (an XLA option it does not know, ...: jit's path handles it)
            return None
        finally:
            _CAPTURE.options = None
        # none: compiled before in this process; kept in memory only. Every program is kept,
        # the smallest too (unlike JAX's cache, which keeps those over 0.05 s): loading one
        # costs a few milliseconds, lowering it 10-30 ms, and a process that lowers nothing
        # never imports XLA's MLIR modules (0.3-0.5 s)
        if len(seen) == 1:
            _store(path, compiled, seen[0][0])
        _LOADED[key, trees] = compiled
        return compiled

    def _key(self, text, consts, leaves) -> str:
        from . import _config

        h = hashlib.sha256()
        backend = jax.devices()[0].client
        for part in (
            f"probmodels programs {_FORMAT}",
            jax.__version__,
            jaxlib.__version__,
            backend.platform,
            backend.platform_version,
            repr([(d.id, d.device_kind) for d in jax.devices()]),
            repr(sorted(_config.compiler_options().items())),
            os.environ.get("XLA_FLAGS", ""),
            repr(sorted((k, repr(v)) for k, v in jax.config.values.items() if not _unrelated(k))),
            self.options,
            repr([x.sharding if isinstance(x, jax.Array) and x.committed else None for x in leaves]),
            text,
        ):
            h.update(part.encode())
            h.update(b"\0")
        for c in consts:
            a = np.asarray(c)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def _unrelated(setting: str) -> bool:
    """JAX settings that do not change a compiled program (logging, the caches' own settings)."""
    return any(w in setting for w in ("log_compiles", "explain_cache_misses", "compilation_cache", "persistent_cache"))


def _record(load_s: float) -> None:
    """The compile event JAX would have reported (the executable's load as its compile, as on a
    hit of JAX's own cache; tracing reported its own), for ``Fit.diagnostics["compile_s"]``."""
    jax.monitoring.record_event_duration_secs("/jax/core/compile/backend_compile_duration", load_s)


def _load(path: str, in_tree, out_tree):
    try:
        with open(path, "rb") as fh:
            fmt, options, blob, device_ids = pickle.loads(zlib.decompress(fh.read()))
        if fmt != _FORMAT:
            return None
        from jax._src.lax import linalg
        from jax._src.lib import xla_client as xc
        from jax.experimental import serialize_executable as se

        # LAPACK's kernels (Cholesky, eigh, ...) are registered by their lowering rules, which a
        # loaded program skipped (jax.export's deserialisation does the same)
        linalg.initialize_lapack()
        devices = {d.id: d for d in jax.devices()}
        used = [devices[i] for i in device_ids]
        backend = used[0].client

        class Unpickler(se._JaxPjrtUnpickler):
            def persistent_load(self, pid):
                if pid[0] == "exec":  # (with the options it was compiled with, as JAX's cache)
                    return backend.deserialize_executable(pid[1], self.execution_devices, xc.CompileOptions.ParseFromString(options))
                return super().persistent_load(pid)

        unloaded, args_info_flat, no_kwargs = Unpickler(io.BytesIO(blob), backend, used).load()
        return jax.stages.Compiled(unloaded.load(), [], in_tree.unflatten(args_info_flat), out_tree, no_kwargs=no_kwargs)
    except Exception:  # absent, partly written by a process that died, or from another JAX
        return None


def _store(path: str, compiled, options) -> None:
    try:
        from jax.experimental import serialize_executable as se
        from jax._src.lib import xla_client as xc

        class Pickler(se._JaxPjrtPickler):
            def persistent_id(self, obj):  # (as JAX's own cache serialises an executable)
                if isinstance(obj, xc.LoadedExecutable) and hasattr(obj, "serialize"):
                    return ("exec", obj.serialize())
                return super().persistent_id(obj)

        unloaded = compiled._executable._unloaded_executable
        if unloaded is None or compiled._params.const_args:
            return
        with io.BytesIO() as fh:
            Pickler(fh).dump((unloaded, jax.tree_util.tree_leaves(compiled.args_info), compiled._no_kwargs))
            payload = fh.getvalue()
        device_ids = [d.id for d in compiled._executable.xla_executable.local_devices()]
        blob = pickle.dumps((_FORMAT, options.SerializeAsString(), payload, device_ids), protocol=pickle.HIGHEST_PROTOCOL)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(zlib.compress(blob, 1))
        os.replace(tmp, path)  # (whole or not at all, for a process reading it meanwhile)
    except Exception:  # constants passed as arguments, a read-only disk, ...: kept in memory only
        pass


_CAPTURE = threading.local()


def _capture_compile_options() -> bool:
    """Hook JAX's compiler (once) so that :meth:`Programs._compiled` compiles afresh and sees
    the compile options: an executable that JAX's own cache loaded does not serialise again
    whole (XLA's CPU runtime then misses its kernels: "Function ... not found"), and loading one
    needs the options it was compiled with. While it compiles, JAX's cache is neither read nor
    written (the program is kept here instead); False where JAX's internals moved."""
    from jax._src import compiler

    if getattr(compiler.backend_compile_and_load, "_probmodels", False):
        return True
    names = ("backend_compile_and_load", "_cache_read", "_cache_write")
    if not all(callable(getattr(compiler, n, None)) for n in names):
        return False
    compile_and_load, read, write = (getattr(compiler, n) for n in names)

    def backend_compile_and_load(backend, module, executable_devices, options, *args, **kwargs):
        seen = getattr(_CAPTURE, "options", None)
        t0 = time.perf_counter()
        out = compile_and_load(backend, module, executable_devices, options, *args, **kwargs)
        if seen is not None:
            seen.append((options, time.perf_counter() - t0))
        return out

    def cache_read(*args, **kwargs):
        if getattr(_CAPTURE, "options", None) is not None:
            return None, None
        return read(*args, **kwargs)

    def cache_write(*args, **kwargs):
        if getattr(_CAPTURE, "options", None) is None:
            return write(*args, **kwargs)

    backend_compile_and_load._probmodels = True
    compiler.backend_compile_and_load, compiler._cache_read, compiler._cache_write = backend_compile_and_load, cache_read, cache_write
    return True
