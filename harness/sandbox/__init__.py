"""Running untrusted generated code: see :mod:`.runner` and ``docs/sandbox.md``."""

from .runner import Limits, Result, SandboxUnavailable, describe, mode, run_tests

__all__ = ["Limits", "Result", "SandboxUnavailable", "describe", "mode", "run_tests"]
