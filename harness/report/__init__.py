"""Reporting: finished runs -> the leaderboard (Markdown, CSV, JSON, HTML, plots) and comparisons."""

from .leaderboard import write_leaderboard

__all__ = ["write_leaderboard"]
