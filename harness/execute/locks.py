"""Per-run ownership: a process trains or evaluates a run only while it holds ``runs/<v>/seed<s>/.lock``
(an exclusive ``fcntl.flock``, released by the kernel when the process exits, even on a crash).

A run whose lock is held elsewhere is skipped and reported, not waited for: two ``grpo-bench run`` on
one results folder (shards of a job array, a Ray task and a local run, a double start) split the work
and never train one run twice or interleave its metrics. A rerun picks up what was skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[bool]:
    """Yields True while this process owns ``run_dir``, False when another process does."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
