"""Running untrusted generated code: see :mod:`.namespaces`."""

from .namespaces import Limits, Result, isolation, run_tests

__all__ = ["Limits", "Result", "isolation", "run_tests"]
