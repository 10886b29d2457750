"""Evaluation: greedy pass@1 and sampled mean@k / pass@k on a benchmark split."""

from .evaluator import evaluate

__all__ = ["evaluate"]
