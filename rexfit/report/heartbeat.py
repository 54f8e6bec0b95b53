"""Say what a run is doing when it has printed nothing for a while.

Setting up a job (reading data, computing descriptors) and compiling its programs can take
seconds before the first line of a fit appears.  A :class:`Heartbeat` watches the log: after
``quiet_after`` seconds without output it prints one status line — the phase, what JAX is
compiling, how many programs so far — and repeats it every ``every`` seconds while the silence
lasts.  Once a fit prints its own progress the heartbeat waits ``fit_quiet_after`` seconds
instead (an iteration, or the measurement at an output iteration, that takes long) and its
line then says where the fit is (what the driver told :func:`rexfit.timing.progress`, e.g.
"iteration 40 of 3000 done").  On a terminal the line is rewritten in place; otherwise plain
lines are printed.  The lines are not part of log.txt.
"""

from __future__ import annotations

import sys
import threading
import time

from rexfit import timing


class Heartbeat:
    """A daemon thread printing status lines while the run is silent; a context manager."""

    def __init__(self, log, clock, *, quiet_after: float = 2.0, every: float = 5.0,
                 fit_quiet_after: float = 30.0, stream=None, tty: bool | None = None):
        self.log = log
        self.clock = clock
        self.quiet_after = quiet_after
        self.fit_quiet_after = fit_quiet_after
        self.every = every
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rexfit-heartbeat", daemon=True)
        self._shown = False
        self._last_beat = 0.0

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.clear()

    def status(self) -> str:
        """The status line: phase, seconds so far, compilation counts, current program."""
        c = self.clock.counters()
        phase = {"setup": "preparing", "fit": "fitting", "output": "computing properties"}.get(
            self.clock.current, self.clock.current or "working")
        elapsed = time.perf_counter() - self.clock.start
        parts = [f"{phase}"]
        note = timing.activity()  # what the run said it is doing (timing.progress)
        if note:
            parts.append(note)
        busy = timing.current_program()
        if busy:
            parts.append(f"compiling {busy}")
        parts.append(f"{c.traces} programs traced, {c.compiled} compiled, "
                     f"{c.cache_hits} cached")
        return f"  ... {elapsed:6.1f} s  " + "; ".join(parts)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            silent = now - self.log.last_output
            if self.clock.current == "fit" and self.log.fit_started and \
                    silent < self.fit_quiet_after:
                continue  # the fit prints its own progress
            if silent < self.quiet_after or now - self._last_beat < self.every:
                continue
            self._last_beat = now
            line = self.status()
            if self.tty:
                self.stream.write("\r" + line[:160].ljust(160) + "\r")
                self._shown = True
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r" + " " * 160 + "\r")
            self.stream.flush()
            self._shown = False
