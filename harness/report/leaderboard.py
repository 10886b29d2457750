"""Writes a suite's leaderboard: Markdown, CSV, JSON, PNG plots and a static HTML page.

Pipeline: :mod:`.runs` (read and check) -> :mod:`.board` (numbers) -> :mod:`.render`,
:mod:`.plots`, :mod:`.html` (presentations). Nothing here imports the training side.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from .board import build_board
from .html import to_html
from .plots import write_plots
from .render import to_csv, to_markdown
from .runs import DEFAULT_TARGET, check_comparable, group_runs, load_runs


def write_leaderboard(results_dir: Path, reference: str | None = None, target: float = DEFAULT_TARGET) -> str:
    """Write leaderboard.md/.csv/.json/.html and plots/*.png in ``results_dir``; return the Markdown."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    if not runs:
        raise UserError(f"{results_dir}: no finished runs (runs/*/seed*/summary.json)")
    check_comparable(runs, results_dir)
    board = build_board(runs, results_dir, reference, target)
    md = to_markdown(board)
    atomic_write_text(results_dir / "leaderboard.md", md)
    atomic_write_text(results_dir / "leaderboard.csv", to_csv(board))
    atomic_write_json(results_dir / "leaderboard.json", board)
    plots = write_plots(board, group_runs(runs), results_dir / "plots")
    page = to_html(board, [p.relative_to(results_dir) for p in plots], results_dir)
    atomic_write_text(results_dir / "leaderboard.html", page)
    return md
