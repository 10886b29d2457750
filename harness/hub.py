"""The Hugging Face hub: used when it can be reached, never waited for when it cannot.

:func:`online` decides once per process: ``HF_HUB_OFFLINE=1`` (or true/yes) means offline;
otherwise a TCP connection to the hub's host (``HF_ENDPOINT``, default huggingface.co, port 443)
with a 3 s limit. When the hub is unreachable ``HF_HUB_OFFLINE=1`` is set for this process, so
transformers and datasets read their caches instead of retrying. Planning calls
:func:`check_model` and :func:`check_dataset` before anything is written, so an offline hub id
ends in one line (exit 2) with nothing written.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import UserError

CONNECT_TIMEOUT_S = 3.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


_REASON: list[str] = []


@functools.lru_cache(maxsize=1)
def online() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        _REASON.append("HF_HUB_OFFLINE is set")
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 CONNECT_TIMEOUT_S).close()
        return True
    except OSError as exc:
        _REASON.append(f"{url.hostname} cannot be reached ({exc.__class__.__name__})")
        os.environ["HF_HUB_OFFLINE"] = "1"  # transformers/datasets: read caches, no retries
        return False


def _why_offline() -> str:
    return _REASON[-1] if _REASON else "the hub cannot be reached"


def _model_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def check_model(name: str) -> None:
    """A model name is a built-in, a local folder, a cached hub model, or a hub id with the hub online."""
    from .models import DEFAULT_MODEL, TINY_MODEL

    if name in (DEFAULT_MODEL, TINY_MODEL) or Path(name).expanduser().is_dir():
        return
    if not _HUB_ID.match(name):
        raise UserError(f"model {name!r}: not a local folder, a built-in ({DEFAULT_MODEL}, {TINY_MODEL}) or a hub id")
    if _model_cached(name) or online():
        return
    raise UserError(f"model {name!r}: tried the hub cache and the hub, but it is not cached and {_why_offline()}; "
                    f"use a local folder or the embedded model (model = \"{DEFAULT_MODEL}\")")


def check_dataset(benchmark: str, repo_id: str) -> None:
    """A hub dataset (data = "hub") needs the hub online or the datasets cache to hold it."""
    if online():
        return
    cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path.home() / ".cache" / "huggingface" / "datasets")
    if any(cache.glob(repo_id.replace("/", "___") + "*")):
        return
    raise UserError(f"benchmark {benchmark!r}: data = \"hub\" tried {repo_id} on the hub, but {_why_offline()} "
                    f"and it is not cached; use the bundled copy (data = \"bundled\", the default)")
