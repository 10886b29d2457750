"""Reward scoring: isolated, time-limited calls of the reward plugins."""

from .scorer import RewardScorer, ScoreResult

__all__ = ["RewardScorer", "ScoreResult"]
