"""Running untrusted generated code: see :mod:`.runner` and ``docs/sandbox.md``."""

from .runner import Limits, Result, Sample, SandboxUnavailable, describe, mode, run_batch, run_tests

__all__ = ["Limits", "Result", "Sample", "SandboxUnavailable", "describe", "mode", "run_batch", "run_tests"]
