"""The reward worker's fixed entry point: ``python -m grpo_bench.scoring.worker FD``.

Workers start from this module, never from the user's ``__main__``: a script or notebook without an
``if __name__ == "__main__":`` guard is not re-executed in them (``multiprocessing``'s spawn would run
it again in every worker). The parent sends ``sys.path`` and the modules to import before any call
first (the worker answers ``"ready"`` once they are imported, so a slow import such as transformers'
is never counted against a call's time limit), then pickled calls (cloudpickle: a reward defined in
a script or notebook travels by value); ``None`` ends the worker.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import traceback
from multiprocessing.connection import Connection


def _start(conn: Connection) -> bool:
    """Take ``sys.path`` and import the preloads; answer "ready" (False: the parent has gone)."""
    try:
        path, preload = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return False
    sys.path[:] = path
    for module in preload:
        try:
            importlib.import_module(module)
        except Exception:  # the call that needs it reports the error
            pass
    try:
        conn.send("ready")
    except OSError:
        return False
    return True


def serve(conn: Connection) -> None:
    if not _start(conn):
        return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            task = pickle.loads(data)
        except BaseException as exc:
            conn.send(("error", None, "cannot load the reward in the worker: "
                       + traceback.format_exception_only(type(exc), exc)[-1].strip()))
            continue
        if task is None:
            return
        fn, args, kwargs = task
        try:
            reply = ("ok", fn(*args, **kwargs), "")
        except BaseException as exc:  # report everything, including SystemExit from user code
            reply = ("error", None, traceback.format_exception_only(type(exc), exc)[-1].strip())
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable return value
            try:
                conn.send(("error", None, f"cannot send the reward's result back: {exc}"))
            except Exception:
                return


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
