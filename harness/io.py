"""Atomic file writes and append-only JSONL logs: results are never half-written.

JSON is written strictly (``allow_nan=False``): a non-finite float (NaN, +-Infinity), which JSON
cannot hold, is written as ``null``, the same as a missing value, so every file stays readable by
any JSON parser. A full disk (ENOSPC, EDQUOT) is a :class:`UserError` ``disk full: PATH``; the
partly written temporary file is removed and the previous version of the file is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _disk_full(exc: OSError, path: Path) -> BaseException:
    return UserError(f"disk full: {path}") if exc.errno in _DISK_FULL else exc


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON: non-finite floats become null (see the module docstring)."""
    return json.dumps(finite_json(obj), allow_nan=False, default=str, **kwargs)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place. The file gets
    the mode a plain ``open(path, "w")`` would give (0666 less the umask: 0644 by default), not
    mkstemp's 0600, so colleagues on a shared server can read results."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _disk_full(exc, path) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _disk_full(exc, path) from exc
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one line; on a full disk the partial line is cut off again (the file keeps whole rows)."""
    append_jsonl_rows(path, [row])


def append_jsonl_rows(path: str | Path, rows: list[dict]) -> None:
    """Append rows in one write; on a failure (a full disk) the file is cut back to its previous size,
    so it holds all of them or none."""
    path = Path(path)
    text = "".join(dumps(row) + "\n" for row in rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            size = fh.tell()
            try:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    os.truncate(path, size)
                raise
    except OSError as exc:
        raise _disk_full(exc, path) from exc


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file, ignoring a torn last line left by a crash."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Swap a fully written directory into place (old copy removed only after the new one exists)."""
    old = final_dir.with_name(final_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final_dir.exists():
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old.exists():
        shutil.rmtree(old)
