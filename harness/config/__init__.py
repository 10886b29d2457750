"""Configuration: the suite schema and the loader that checks every key before anything runs."""

from .schema import EvalConfig, Suite, TrainConfig
from .suite import SuiteError, config_hash, load_suite

__all__ = ["EvalConfig", "Suite", "SuiteError", "TrainConfig", "config_hash", "load_suite"]
