"""Where a run's time goes: phase wall times and JAX's trace / compile / cache counts.

JAX reports every trace, lowering and backend compilation through ``jax.monitoring``; the
listeners installed here (once per process) count them, so a run can say how many programs it
traced and compiled and how many it loaded from the persistent compilation cache (SPEC §2,
``timing`` in results.json).  A :class:`Clock` measures the phases of one run against those
counters.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"  # compiles and cache reads alike
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


@dataclass
class Counters:
    """Process-wide totals since the listeners were installed."""

    traces: int = 0
    trace_seconds: float = 0.0
    lowerings: int = 0
    lower_seconds: float = 0.0
    compile_requests: int = 0  # backend compilations, persistent-cache reads included
    compile_seconds: float = 0.0
    cache_hits: int = 0
    loaded: int = 0  # traced programs read from the program cache (rexfit.programs)
    #: {program name: [traces, compile requests, seconds tracing + lowering + compiling]}
    programs: dict = field(default_factory=dict)

    def copy(self) -> "Counters":
        out = Counters(**{k: v for k, v in vars(self).items() if k != "programs"})
        out.programs = {k: list(v) for k, v in self.programs.items()}
        return out

    @property
    def compiled(self) -> int:
        """Programs XLA compiled (compile requests not served by the persistent cache)."""
        return self.compile_requests - self.cache_hits

    @property
    def seconds(self) -> float:
        """Seconds spent tracing, lowering and compiling (cache reads included)."""
        return self.trace_seconds + self.lower_seconds + self.compile_seconds


COUNTERS = Counters()
_lock = threading.Lock()
_installed = False
_busy: list[str] = []  # programs being traced / compiled right now, innermost last


_activity = [""]


def progress(text: str) -> None:
    """Say what the run is doing now (e.g. "descriptors 4,200/10,000 atoms"); the status line
    shows it while the run is silent.  An empty text clears it."""
    _activity[0] = text


def activity() -> str:
    """What the run said it is doing (:func:`progress`), or ""."""
    return _activity[0]


def current_program() -> str | None:
    """The program JAX is compiling or tracing now (innermost), or None."""
    busy = list(_busy)
    return busy[-1] if busy else None


def _on_scalar(event: str, value: float, fun_name: str = "?", **_kw) -> None:
    if event in (_TRACE, _LOWER, _COMPILE):
        _busy.append(fun_name)


def _on_duration(event: str, seconds: float, fun_name: str = "?", **_kw) -> None:
    if event not in (_TRACE, _LOWER, _COMPILE):
        return
    if fun_name in _busy:
        _busy.remove(fun_name)
    with _lock:
        entry = COUNTERS.programs.setdefault(fun_name, [0, 0, 0.0])
        entry[2] += seconds
        if event == _TRACE:
            entry[0] += 1
            COUNTERS.traces += 1
            COUNTERS.trace_seconds += seconds
        elif event == _LOWER:
            COUNTERS.lowerings += 1
            COUNTERS.lower_seconds += seconds
        elif event == _COMPILE:
            entry[1] += 1
            COUNTERS.compile_requests += 1
            COUNTERS.compile_seconds += seconds


def discount(seconds: float, fun_name: str) -> None:
    """Take ``seconds`` out of the trace time: a trace that ran inside the trace of
    ``fun_name`` (rexfit.programs traces a program inside the trace of its caller), whose
    own events were counted already."""
    with _lock:
        COUNTERS.trace_seconds -= seconds
        entry = COUNTERS.programs.setdefault(fun_name, [0, 0, 0.0])
        entry[2] -= seconds


def _on_event(event: str, **_kw) -> None:
    if event == _CACHE_HIT:
        with _lock:
            COUNTERS.cache_hits += 1


def install() -> Counters:
    """Start counting (idempotent); returns the live process-wide counters."""
    global _installed
    if not _installed:
        import jax.monitoring as monitoring

        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)
        monitoring.register_scalar_listener(_on_scalar)
        _installed = True
    return COUNTERS


def snapshot() -> Counters:
    with _lock:
        return COUNTERS.copy()


@dataclass
class Clock:
    """Phase wall times of one run, and the JAX counters since it started.

    ``phase(name)`` closes the running phase and starts ``name``; the seconds JAX spent
    tracing and compiling are reported under ``compile`` and taken out of the phase they fell
    in, so ``setup`` + ``compile`` + ``fit`` + ``output`` ≈ ``total`` − ``import``.
    """

    import_seconds: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    phases: dict = field(default_factory=dict)
    _name: str | None = None
    _since: float = 0.0
    _jax_since: float = 0.0
    _base: Counters = field(default_factory=snapshot)

    def __post_init__(self) -> None:
        install()
        self._base = snapshot()

    @property
    def current(self) -> str | None:
        """The running phase."""
        return self._name

    def phase(self, name: str | None) -> None:
        now = time.perf_counter()
        jax_now = snapshot().seconds
        if self._name is not None:
            spent = (now - self._since) - (jax_now - self._jax_since)
            self.phases[self._name] = self.phases.get(self._name, 0.0) + max(spent, 0.0)
        self._name, self._since, self._jax_since = name, now, jax_now

    def counters(self) -> Counters:
        now = snapshot()
        base = self._base
        out = Counters(**{k: getattr(now, k) - getattr(base, k) for k in vars(now)
                          if k != "programs"})
        for name, (tr, co, sec) in now.programs.items():
            b = base.programs.get(name, [0, 0, 0.0])
            if (tr, co) != (b[0], b[1]):
                out.programs[name] = [tr - b[0], co - b[1], sec - b[2]]
        return out

    def report(self) -> dict:
        """The ``timing`` dictionary of results.json (SPEC §2)."""
        self.phase(self._name)  # bring the running phase up to date
        c = self.counters()
        out = {"import": round(self.import_seconds, 3)}
        for name in ("setup", "compile", "fit", "output"):
            out[name] = round(c.seconds if name == "compile" else self.phases.get(name, 0.0), 3)
        out["total"] = round(self.import_seconds + time.perf_counter() - self.start, 3)
        out.update(programs_traced=c.traces, programs_compiled=c.compiled,
                   compile_cache_hits=c.cache_hits, programs_loaded=c.loaded)
        return out

    def summary(self) -> str:
        t = self.report()
        return (f"Time: {t['total']:.1f} s (setup {t['setup']:.1f}, compile {t['compile']:.1f}, "
                f"fit {t['fit']:.1f}, output {t['output']:.1f}, import {t['import']:.1f}); "
                f"{t['programs_traced']} programs traced, {t['programs_compiled']} compiled, "
                f"{t['compile_cache_hits']} from the compilation cache, "
                f"{t['programs_loaded']} read from the program cache")
