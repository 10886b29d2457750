"""Run calls in worker processes with a hard per-call wall-clock limit.

Threads cannot be interrupted in Python and math-verify's own timeout relies on SIGALRM (main
thread only), so a reward call runs in a separate process. A call that overruns its limit gets
its worker killed (and replaced); a worker that dies during a call is reported as an error for that
call and replaced. A worker that died between calls (killed from outside, or a call that ended it
after replying) is replaced before its next call. None of these stops the batch: every call gets
an :class:`Outcome`.

Workers are plain subprocesses started from a fixed entry point (:mod:`grpo_bench.scoring.worker`),
so a user's script is never re-imported in them (no ``__main__`` guard is needed). Calls travel with
cloudpickle: module-level functions by reference, functions of a script or notebook (and lambdas)
by value. A call that cannot be pickled at all falls back to ``inline`` mode: a daemon thread whose
result is abandoned on timeout, which bounds the *wait* but cannot stop the computation.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, Callable

import cloudpickle


@dataclass
class Outcome:
    status: str  # "ok" | "error" | "timeout"
    value: Any = None
    message: str = ""
    seconds: float = 0.0


Call = tuple[Callable, tuple, dict]

#: How long a new worker may take to start and import its preloads before calls are sent to it anyway.
STARTUP_LIMIT_S = 120.0


class _Worker:
    """One worker subprocess and its end of a duplex pipe."""

    def __init__(self, preload: tuple[str, ...] = ()):
        parent, child = Pipe(duplex=True)
        fd = child.fileno()
        self.proc = subprocess.Popen([sys.executable, "-m", "grpo_bench.scoring.worker", str(fd)],
                                     pass_fds=(fd,), stdin=subprocess.DEVNULL)
        child.close()
        self.conn = parent
        self.conn.send_bytes(pickle.dumps((list(sys.path), list(preload))))
        self.ready = False

    def wait_ready(self, timeout_s: float = STARTUP_LIMIT_S) -> None:
        """Wait for the worker's "ready" (its preloads imported); a worker that dies or hangs while
        starting is left as it is: its first call then fails and it is replaced."""
        try:
            if self.conn.poll(timeout_s):
                self.ready = self.conn.recv() == "ready"
        except (EOFError, OSError):
            pass

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        try:
            self.proc.kill()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.conn.close()


class WorkerPool:
    """A fixed number of worker processes; ``run`` maps calls onto them with a per-call limit."""

    def __init__(self, workers: int = 1, timeout_s: float = 10.0):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.size = workers
        self.timeout_s = timeout_s
        self._workers: list[_Worker] = []
        #: modules every new worker imports before its first call (outside any call's time limit), e.g.
        #: ``transformers.trainer_callback`` when calls carry a ``TrainerState``
        self.preload: tuple[str, ...] = ()

    def _ensure(self) -> None:
        """Top the pool up, replacing workers that died since the last call (killed, ``os._exit``)."""
        for worker in [w for w in self._workers if w.proc.poll() is not None]:
            worker.kill()
            self._workers.remove(worker)
        new = [_Worker(self.preload) for _ in range(self.size - len(self._workers))]
        for worker in new:  # started together, awaited one by one
            worker.wait_ready()
        self._workers += new

    def run(self, calls: list[Call], limits: list[float] | None = None) -> list[Outcome]:
        """One :class:`Outcome` per call; ``limits`` (seconds per call) default to ``timeout_s``."""
        limits = limits or [self.timeout_s] * len(calls)
        outcomes: list[Outcome | None] = [None] * len(calls)
        pending = deque(range(len(calls)))
        if not pending:
            return []
        self._ensure()
        idle = list(self._workers)
        busy: dict[Connection, tuple[_Worker, int, float]] = {}
        resent: dict[int, int] = {}
        while pending or busy:
            while pending and idle:
                worker = idle.pop()
                i = pending.popleft()
                try:
                    payload = cloudpickle.dumps(calls[i])
                except Exception:  # cannot be pickled even by value (e.g. holds a lock)
                    outcomes[i] = run_inline(calls[i], limits[i])
                    idle.append(worker)
                    continue
                try:
                    worker.conn.send_bytes(payload)
                except OSError as exc:  # the worker died while idle (broken pipe): replace it, call again
                    worker.kill()
                    self._replace(worker)
                    idle.append(self._workers[-1])
                    resent[i] = resent.get(i, 0) + 1
                    if resent[i] > 2:
                        outcomes[i] = Outcome("error", message=f"cannot reach a worker process: {exc}")
                    else:
                        pending.appendleft(i)
                    continue
                busy[worker.conn] = (worker, i, time.monotonic())
            if not busy:
                continue
            now = time.monotonic()
            next_deadline = min(start + limits[i] for _, i, start in busy.values())
            ready = wait(list(busy), timeout=max(0.0, next_deadline - now))
            now = time.monotonic()
            for conn in ready:
                worker, i, start = busy.pop(conn)
                try:
                    status, value, message = conn.recv()
                    outcomes[i] = Outcome(status, value, message, now - start)
                    idle.append(worker)
                except (EOFError, OSError):
                    code = worker.exitcode
                    worker.kill()
                    self._replace(worker)
                    idle.append(self._workers[-1])
                    outcomes[i] = Outcome("error", message=f"worker process died (exit code {code})", seconds=now - start)
            for conn, (worker, i, start) in list(busy.items()):
                if now - start >= limits[i]:
                    busy.pop(conn)
                    worker.kill()
                    self._replace(worker)
                    idle.append(self._workers[-1])
                    outcomes[i] = Outcome("timeout", message=f"exceeded {limits[i]:g} s", seconds=now - start)
        return outcomes  # type: ignore[return-value]

    def _replace(self, dead: _Worker) -> None:
        self._workers.remove(dead)
        worker = _Worker(self.preload)
        worker.wait_ready()
        self._workers.append(worker)

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except Exception:
                pass
            try:
                worker.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            worker.kill()
        self._workers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_inline(call: Call, timeout_s: float) -> Outcome:
    """Fallback for unpicklable callables: a daemon thread, abandoned if it overruns."""
    fn, args, kwargs = call
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            box["error"] = traceback.format_exception_only(type(exc), exc)[-1].strip()

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    seconds = time.monotonic() - start
    if thread.is_alive():
        return Outcome("timeout", message=f"exceeded {timeout_s:g} s (inline thread abandoned)", seconds=seconds)
    if "error" in box:
        return Outcome("error", message=box["error"], seconds=seconds)
    return Outcome("ok", box.get("value"), seconds=seconds)
