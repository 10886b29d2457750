"""A cgroup v2 per sample, where the harness may create one (standard library only).

The harness creates a fresh cgroup per sample and the judge joins it as its first act (before its
tests, its sandbox or any program), so every process of the sample (judge, bubblewrap, the
sandbox's init, the program and anything it starts) is in it; at the end
``cgroup.kill`` kills them all at once, whatever they did to their parents, sessions or pid
namespaces. Where the cgroup's parent offers the ``memory`` and ``pids`` controllers, the sample
also gets ``memory.max`` (all its processes together, tmpfs pages included), ``memory.swap.max`` 0
and ``pids.max``. Where cgroup v2 is not mounted or not writable (an unprivileged harness, most
containers), :func:`create` returns None and the per-process limits of ``docs/sandbox.md`` apply.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from pathlib import Path

PARENT_NAME = "grpo-bench-sandbox"
_counter = itertools.count()


@functools.lru_cache(maxsize=1)
def v2_root() -> Path | None:
    """Where cgroup v2 is mounted (``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on hybrid systems)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 3 and fields[2] == "cgroup2" and "rw" in fields[3].split(","):
            return Path(fields[1])
    return None


@functools.lru_cache(maxsize=1)
def parent() -> tuple[Path, frozenset[str]] | None:
    """The parent cgroup of all samples and the controllers enabled in it, or None where cgroups cannot
    be used (not mounted, not writable, or no ``cgroup.kill``: kernels before 5.14)."""
    root = v2_root()
    if root is None or not os.access(root, os.W_OK):
        return None
    path = root / PARENT_NAME
    try:
        path.mkdir(exist_ok=True)
        if not (path / "cgroup.kill").exists():
            return None
        sweep(path)
        _enable_controllers(root, path)
        enabled = set((path / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    return path, frozenset(enabled)


def _enable_controllers(root: Path, path: Path) -> None:
    """memory and pids for the samples, where offered; best effort (e.g. a container's root cgroup that
    holds processes cannot enable controllers: then samples get cgroup.kill only)."""
    wanted = {"memory", "pids"} & set((root / "cgroup.controllers").read_text().split())
    for cgroup in (root, path):
        for controller in sorted(wanted):
            try:
                (cgroup / "cgroup.subtree_control").write_text("+" + controller)
            except OSError:
                pass


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def sweep(path: Path) -> list[str]:
    """Kill and remove the sample cgroups (``<harness pid>-<n>``) of harnesses that are dead (a SIGKILLed
    harness cannot remove its own); returns their names."""
    swept = []
    for child in path.iterdir():
        owner = child.name.split("-", 1)[0]
        if child.is_dir() and owner.isdigit() and not process_alive(int(owner)):
            cgroup = SampleCgroup(child, frozenset())
            cgroup.kill()
            cgroup.remove(1.0)
            swept.append(child.name)
    return swept


def describe() -> str:
    found = parent()
    if found is None:
        root = v2_root()
        return "none (cgroup v2 %s): per-process limits only" % ("not writable" if root else "not mounted")
    path, controllers = found
    return "%s/<sample> (cgroup.kill%s)" % (path, "".join(", %s.max" % c for c in sorted(controllers)))


class SampleCgroup:
    """One sample's cgroup (the judge joins it through ``path / "cgroup.procs"``): :meth:`kill` everything
    in it, :meth:`remove` it."""

    def __init__(self, path: Path, controllers: frozenset[str]):
        self.path, self.controllers = path, controllers

    def kill(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass

    def remove(self, wait_s: float = 2.0) -> bool:
        """Remove it once empty, waiting up to ``wait_s``; whether it is gone."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:  # still populated for a moment after the kill
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.002)


def create(memory_bytes: int, pids: int) -> SampleCgroup | None:
    """A fresh cgroup for one sample with its limits, or None where cgroups cannot be used here."""
    found = parent()
    if found is None:
        return None
    base, controllers = found
    path = base / f"{os.getpid()}-{next(_counter)}"
    try:
        path.mkdir()
        if "memory" in controllers:
            (path / "memory.max").write_text(str(memory_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
        if "pids" in controllers:
            (path / "pids.max").write_text(str(pids))
    except OSError:
        SampleCgroup(path, controllers).remove(0)
        return None
    return SampleCgroup(path, controllers)
