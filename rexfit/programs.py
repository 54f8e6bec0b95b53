"""Traced programs kept on disk, so that running a job again skips JAX's tracing and lowering.

JAX's persistent compilation cache keeps compiled XLA programs but not the tracing that makes
them: every run traces and lowers each program again (for a SNAP fit of 12,000 atoms about
2.4 of its 9 CPU-s).  :func:`jit` is ``jax.jit`` for positional arguments, with the traced and
lowered program kept on disk (``jax.export``, StableHLO) under a key made of everything that
determines it:

- the source of every rexfit module and the versions of JAX and jaxlib, the JAX settings that
  change tracing (64-bit, promotion, matmul precision) and the platform;
- the function (module and qualified name) and a *fingerprint* of each static argument: its
  value, walked through tuples, dicts, dataclasses, plain objects' attributes, functions'
  closures and NumPy arrays (hashed), but never an object's address.  An object that cannot be
  fingerprinted this way (or whose class says, with ``__fingerprint__``, what identifies it)
  makes the program uncached: it is traced as ``jax.jit`` traces it;
- the tree structure, shapes, dtypes and weak types of the other arguments.

A later run with the same key reads the program instead of tracing it; both runs compile the
same module, so XLA's persistent cache serves the compiled program too.  A program that
cannot be exported (a host callback, say) is traced as usual.  Inside another trace (a
program called from a jitted function) the plain ``jax.jit`` is used.

The cache lives in ``programs/`` of the compilation cache directory, and is on whenever that
cache is (:func:`enable`); ``REXFIT_PROGRAM_CACHE=0`` turns it off alone.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import os
import pickle
import threading
import types
from pathlib import Path

import jax
import numpy as np

from rexfit import timing

#: Directory of the kept programs (None: off); set by :func:`enable`.
_directory: list[Path | None] = [None]
_lock = threading.Lock()
#: Fingerprints of live static arguments, by id (the object kept so its id is not reused).
_fingerprints: dict[int, tuple[object, str | None]] = {}
#: Statistics of this process: programs read from disk, traced and written, uncached.
STATS = {"read": 0, "written": 0, "uncached": 0}


def enable(directory: str | os.PathLike | None) -> None:
    """Keep programs under ``directory`` (None: do not)."""
    if directory is not None and os.environ.get("REXFIT_PROGRAM_CACHE", "1") == "0":
        directory = None
    _directory[0] = None if directory is None else Path(directory)


def directory() -> Path | None:
    return _directory[0]


# ============================================================================ fingerprints


class Unfingerprintable(Exception):
    """A static argument holds something whose value cannot be described stably."""


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A digest of every rexfit module's source and of the JAX and jaxlib versions."""
    import jaxlib

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    h.update(f"jax {jax.__version__} jaxlib {jaxlib.__version__}".encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _settings() -> str:
    """The JAX settings that change what a trace gives, and the platform."""
    cfg = jax.config
    names = ("jax_enable_x64", "jax_numpy_dtype_promotion", "jax_numpy_rank_promotion",
             "jax_default_matmul_precision", "jax_default_device", "jax_platforms")
    values = [f"{n}={getattr(cfg, n, None)!r}" for n in names]
    return ";".join(values) + f";platform={_platform()}"


def _platform() -> str:
    """The platform programs run on: the default device's (``--device``), else JAX's."""
    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend()
    return device if isinstance(device, str) else device.platform


def fingerprint(obj) -> str:
    """A text that identifies the value of ``obj`` from one process to the next; raises
    :class:`Unfingerprintable` for what it cannot describe."""
    out: list[str] = []
    _walk(obj, out, {})
    return "".join(out)


_ATOMS = (type(None), bool, int, float, complex, str, bytes)


def _walk(obj, out: list, seen: dict) -> None:  # noqa: C901 - one case per kind of value
    t = type(obj)
    if t in _ATOMS:
        out.append(f"{t.__name__}:{obj!r};")
        return
    if isinstance(obj, (np.ndarray, np.generic)):
        a = np.asarray(obj)
        if a.dtype == object:
            raise Unfingerprintable("an object array")
        out.append(f"nd:{a.dtype.str}{a.shape}:{hashlib.sha256(a.tobytes()).hexdigest()};")
        return
    if isinstance(obj, jax.Array):
        if isinstance(obj, jax.core.Tracer):
            raise Unfingerprintable("a traced value")
        _walk(np.asarray(obj), out, seen)
        return
    if isinstance(obj, enum.Enum):
        out.append(f"enum:{t.__module__}.{t.__qualname__}.{obj.name};")
        return
    if isinstance(obj, type):
        out.append(f"type:{obj.__module__}.{obj.__qualname__};")
        return
    key = id(obj)
    if key in seen:  # a cycle or a shared object: refer back to it
        out.append(f"ref:{seen[key]};")
        return
    seen[key] = len(seen)
    custom = getattr(obj, "__fingerprint__", None)
    if custom is not None and not isinstance(obj, type):
        out.append(f"fp:{t.__module__}.{t.__qualname__}(")
        _walk(custom(), out, seen)
        out.append(");")
        return
    if t in (tuple, list) or (isinstance(obj, tuple) and hasattr(obj, "_fields")):
        out.append(f"{t.__qualname__}[")
        for item in obj:
            _walk(item, out, seen)
        out.append("];")
        return
    if t is dict:
        items = []
        for k, v in obj.items():
            sub: list[str] = []
            _walk(k, sub, seen)
            _walk(v, sub, seen)
            items.append("".join(sub))
        out.append("dict{" + "".join(sorted(items)) + "};")
        return
    if t in (set, frozenset):
        items = []
        for v in obj:
            sub = []
            _walk(v, sub, seen)
            items.append("".join(sub))
        out.append(f"{t.__name__}{{" + "".join(sorted(items)) + "};")
        return
    if isinstance(obj, functools.partial):
        out.append("partial(")
        _walk(obj.func, out, seen)
        _walk(obj.args, out, seen)
        _walk(dict(obj.keywords), out, seen)
        out.append(");")
        return
    if isinstance(obj, types.FunctionType):
        out.append(f"fn:{obj.__module__}.{obj.__qualname__}:{_code_digest(obj.__code__)}(")
        _walk(obj.__defaults__, out, seen)
        _walk(obj.__kwdefaults__, out, seen)
        for cell in obj.__closure__ or ():
            try:
                _walk(cell.cell_contents, out, seen)
            except ValueError:  # an empty cell
                out.append("empty;")
        out.append(");")
        return
    if isinstance(obj, types.MethodType):
        out.append("method(")
        _walk(obj.__func__, out, seen)
        _walk(obj.__self__, out, seen)
        out.append(");")
        return
    if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
        out.append(f"builtin:{getattr(obj, '__module__', '')}.{obj.__name__};")
        return
    if isinstance(obj, types.ModuleType):
        out.append(f"module:{obj.__name__};")
        return
    if isinstance(obj, jax.tree_util.PyTreeDef):
        out.append(f"treedef:{obj};")
        return
    module = getattr(t, "__module__", "") or ""
    if dataclasses.is_dataclass(obj) or module.split(".")[0] == "rexfit":
        out.append(f"obj:{module}.{t.__qualname__}(")
        if dataclasses.is_dataclass(obj):
            names = [f.name for f in dataclasses.fields(obj)]
        else:
            names = []
        state = {}
        for name in names:
            state[name] = getattr(obj, name)
        for name, value in getattr(obj, "__dict__", {}).items():
            # a cached_property's value is derived from the rest, whether computed yet or not
            if name not in state and not isinstance(getattr(t, name, None),
                                                    functools.cached_property):
                state[name] = value
        for cls in t.__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name not in state and hasattr(obj, name):
                    state[name] = getattr(obj, name)
        for name in sorted(state):
            out.append(f"{name}=")
            try:
                _walk(state[name], out, seen)
            except Unfingerprintable as e:
                raise Unfingerprintable(f"{t.__qualname__}.{name}: {e}") from None
        out.append(");")
        return
    raise Unfingerprintable(f"a {module}.{t.__qualname__}")


def _code_digest(code: types.CodeType) -> str:
    """The bytecode and constants of a function (its source file's digest covers rexfit's own;
    this covers code made elsewhere)."""
    h = hashlib.sha256(code.co_code)
    for c in code.co_consts:
        h.update((_code_digest(c) if isinstance(c, types.CodeType) else repr(c)).encode())
    h.update(repr(code.co_names).encode())
    return h.hexdigest()[:16]


def _static_fingerprint(values) -> str | None:
    """The fingerprint of the static arguments, or None if one cannot be fingerprinted."""
    parts = []
    for v in values:
        entry = _fingerprints.get(id(v))
        if entry is None or entry[0] is not v:
            try:
                fp = fingerprint(v)
            except (Unfingerprintable, RecursionError):
                fp = None
            with _lock:
                if len(_fingerprints) > 1024:  # bounded: the objects are kept alive here
                    _fingerprints.clear()
                _fingerprints[id(v)] = (v, fp)
            entry = (v, fp)
        if entry[1] is None:
            return None
        parts.append(entry[1])
    return "|".join(parts)


# ============================================================================ the disk store


def _read(path: Path):
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        head, body = pickle.loads(data)
        out_tree, uncacheable = head
        if uncacheable:
            return "uncacheable", None
        return jax.export.deserialize(bytearray(body)), out_tree
    except Exception:  # noqa: BLE001 - a damaged or foreign entry: trace again
        return None


#: The cache keeps at most this many programs (each run of a changed rexfit makes new keys);
#: beyond it the least recently written half is deleted, once per process.
MAX_PROGRAMS = 4000
_pruned = [False]


def _prune(folder: Path) -> None:
    if _pruned[0]:
        return
    _pruned[0] = True
    try:
        entries = sorted(folder.glob("*.program"), key=lambda p: p.stat().st_mtime)
        if len(entries) > MAX_PROGRAMS:
            for old in entries[:len(entries) - MAX_PROGRAMS // 2]:
                old.unlink(missing_ok=True)
    except OSError:
        pass


def _write(path: Path, exported, out_tree) -> None:
    from rexfit.files import atomic_write

    _prune(path.parent)
    if exported is None:
        payload = pickle.dumps(((None, True), b""))
    else:
        try:
            payload = pickle.dumps(((out_tree, False), bytes(exported.serialize())))
        except Exception:  # noqa: BLE001 - e.g. no flatbuffers: keep nothing
            return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(str(path), lambda tmp: Path(tmp).write_bytes(payload))
    except OSError:
        pass  # a read-only cache: run without keeping the program


# ============================================================================ jit


def _typeof(x):
    """The abstract value (shape, dtype, weak type) of ``x`` (``jax.typeof``; older JAX:
    ``jax.core.get_aval``)."""
    typeof = getattr(jax, "typeof", None)
    return typeof(x) if typeof is not None else jax.core.get_aval(x)


def _top_level() -> bool:
    """Whether no JAX trace is active (a program called from inside a jitted or
    differentiated function is traced into it, as ``jax.jit`` does)."""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # a JAX without it: keep nothing rather than guess
        return False
    return trace_state_clean()


#: XLA compile options of every program, where this XLA knows them
#: (:func:`accepted_options`): the CPU backend generates each program's code as one LLVM
#: module instead of splitting it into up to 32 compiled on parallel threads. Measured on
#: the 2-core machine (docs/performance.md): 10–20 % less CPU time compiling (jobs/al-eam's
#: term program, the SNAP workload's programs), run times unchanged. GPUs ignore it.
CODEGEN_OPTIONS = (("xla_cpu_parallel_codegen_split_count", 1),)


@functools.lru_cache(maxsize=None)
def accepted_options(options: tuple) -> tuple:
    """The (name, value) pairs of ``options`` this XLA accepts as compile options (an XLA
    without one refuses to compile; such an entry is left out). Probed by compiling a
    trivial program, once per process and set of options."""
    def accepts(opts: dict) -> bool:
        try:
            jax.jit(lambda v: v + 1, compiler_options=opts).lower(0.0).compile()
        except Exception:  # noqa: BLE001 - an XLA that does not know an option
            return False
        return True

    options = tuple(sorted(options))
    if not options or accepts(dict(options)):  # the usual case: one probe
        return options
    return tuple((name, value) for name, value in options if accepts({name: value}))


class CachedJit:
    """``jax.jit(fun, static_argnums=..., compiler_options=...)`` for positional arguments,
    with its traced program kept on disk (module docstring). :data:`CODEGEN_OPTIONS` are
    added to ``compiler_options`` (the jitted functions are made on first use, when the
    backend can be asked which options it knows)."""

    def __init__(self, fun, static_argnums=(), compiler_options=None):
        if isinstance(static_argnums, int):
            static_argnums = (static_argnums,)
        self._fun = fun
        self._static = tuple(sorted(static_argnums))
        self._options = {} if compiler_options is None else dict(compiler_options)
        self._jits = None
        self._name = (f"{getattr(fun, '__module__', '?')}."
                      f"{getattr(fun, '__qualname__', getattr(fun, '__name__', 'program'))}")
        functools.update_wrapper(self, fun, updated=())

    def _made(self):
        """(plain jit, outer jit whose body reads or keeps the traced program, jit without
        compile options for calls inside another trace, which JAX refuses them)."""
        if self._jits is None:
            options = {**dict(accepted_options(CODEGEN_OPTIONS)), **self._options}
            kwargs = {"static_argnums": self._static, "compiler_options": options}

            def traced(*args):
                return self._trace(args)

            traced.__name__ = getattr(self._fun, "__name__", "program")
            traced.__qualname__ = getattr(self._fun, "__qualname__", traced.__name__)
            self._jits = (jax.jit(self._fun, **kwargs), jax.jit(traced, **kwargs),
                          jax.jit(self._fun, static_argnums=self._static))
        return self._jits

    def __call__(self, *args):
        plain, outer, nested = self._made()
        if not _top_level():
            return nested(*args)
        if _directory[0] is None:
            return plain(*args)
        return outer(*args)

    def _cache_size(self) -> int:
        if self._jits is None:
            return 0
        return sum(j._cache_size() for j in self._jits)

    def lower(self, *args):
        return self._made()[0].lower(*args)

    def _trace(self, args):
        """The body of the outer jit: read the program of these arguments or trace, keep and
        call it (runs once per distinct static arguments and shapes, like any trace)."""
        static = [args[i] for i in self._static if i < len(args)]
        dynamic = [a for i, a in enumerate(args) if i not in self._static]
        leaves, treedef = jax.tree_util.tree_flatten(dynamic)
        skey = _static_fingerprint([self._fun, *static])
        folder = _directory[0]
        if skey is None or folder is None:
            STATS["uncached"] += 1
            return self._fun(*args)
        avals = [_typeof(x) for x in leaves]
        h = hashlib.sha256()
        for part in (_source_digest(), _settings(), self._name, skey, str(treedef),
                     repr([(a.shape, str(a.dtype), getattr(a, "weak_type", False))
                           for a in avals])):
            h.update(part.encode())
            h.update(b"\0")
        path = folder / f"{traced_name(self._name)}-{h.hexdigest()}.program"
        entry = _read(path)
        if entry is not None and entry[0] == "uncacheable":
            STATS["uncached"] += 1
            return self._fun(*args)
        if entry is None:
            before = timing.COUNTERS.trace_seconds + timing.COUNTERS.lower_seconds
            entry = self._export(args, treedef, avals)
            # counted by the export's own events, and again in this trace's duration
            timing.discount(timing.COUNTERS.trace_seconds + timing.COUNTERS.lower_seconds
                            - before, getattr(self._fun, "__name__", "program"))
            _write(path, *entry)
            if entry[0] is None:
                STATS["uncached"] += 1
                return self._fun(*args)
            STATS["written"] += 1
        else:
            STATS["read"] += 1
            timing.COUNTERS.loaded += 1
        exported, out_tree = entry
        return jax.tree_util.tree_unflatten(out_tree, exported.call(*leaves))

    def _export(self, args, treedef, avals):
        """(exported program, output tree) of ``fun`` at these arguments' shapes, or
        (None, None) if JAX cannot export it."""
        shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, "weak_type",
                                                                             False))
                  for a in avals]
        out_tree = []

        def flat(*leaves):
            dynamic = iter(jax.tree_util.tree_unflatten(treedef, list(leaves)))
            full = [args[i] if i in self._static else next(dynamic)
                    for i in range(len(args))]
            out_leaves, tree = jax.tree_util.tree_flatten(self._fun(*full))
            out_tree.append(tree)
            return out_leaves

        flat.__name__ = getattr(self._fun, "__name__", "program")
        try:
            exported = jax.export.export(jax.jit(flat), platforms=[_platform()])(*shapes)
        except Exception:  # noqa: BLE001 - not exportable: trace it every run
            return None, None
        return exported, out_tree[-1]


def traced_name(name: str) -> str:
    """A file-name-safe form of a program's name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name.rsplit(".", 1)[-1])


def jit(fun=None, *, static_argnums=(), compiler_options=None):
    """:class:`CachedJit` of ``fun`` (usable as a decorator, with or without arguments)."""
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 compiler_options=compiler_options)
    return CachedJit(fun, static_argnums=static_argnums, compiler_options=compiler_options)
