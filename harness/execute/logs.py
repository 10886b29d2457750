"""Console for people, library chatter to a file.

:func:`setup_console` (called by the CLI and the Python API): the console shows this package's
warnings and errors only (``verbose``: every INFO line of every library). :func:`log_to` adds a
log file in the results folder that receives everything at INFO and above, vLLM's and
transformers' lines and Python warnings included (vLLM is told not to install its own console
handler, transformers' handler is replaced by propagation to ours).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONSOLE = "_grpo_bench_console"


class _OursOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("grpo_bench")


def setup_console(verbose: bool = False) -> None:
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _CONSOLE, False)]:
        root.removeHandler(h)
    handler = logging.StreamHandler()
    setattr(handler, _CONSOLE, True)
    handler.setFormatter(logging.Formatter("[grpo-bench] %(levelname)s %(name)s: %(message)s"))
    if verbose:
        handler.setLevel(logging.INFO)
    else:
        handler.setLevel(logging.WARNING)
        handler.addFilter(_OursOnly())
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")  # vLLM's lines propagate to the file instead
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
        if not verbose:  # "Loading weights" / "Writing model shards" bars at every run and checkpoint
            hf_logging.disable_progress_bar()
    except Exception:
        pass


@contextlib.contextmanager
def log_to(path: Path, verbose: bool = False):
    """Send every log line (INFO and above) to ``path`` while the block runs."""
    if not any(getattr(h, _CONSOLE, False) for h in logging.getLogger().handlers):
        setup_console(verbose)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
