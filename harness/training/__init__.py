"""Training: the GRPO-style loop (rollout engine -> rewards -> algorithm -> optimizer)."""

from .trainer import Trainer

__all__ = ["Trainer"]
