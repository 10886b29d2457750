"""How far each run's policy moved between inner passes, against its numerics' ratio noise floor.

Per run, over its training steps (metrics.jsonl):

    movement = median of kl_old_k3_seq         the sequence k3 between the first and a later inner pass
    floor    = median of noise_floor_k3_seq    the same statistic for a +-eps nudge of the weights
    clears   = movement >= FLOOR_FACTOR * floor

A ratio-based variant whose run does not clear its floor computed its importance ratios from rounding
noise rather than from the policy's movement (training/noise_floor.py). Runs without the floor column
(recorded before it existed) have ``floor`` None: unknown, neither clearing nor failing. Runs without
``kl_old_k3_seq`` (mu = 1, or a variant that reuses one gradient and never runs a second pass) have no
movement to compare.
"""

from __future__ import annotations

import math
from statistics import median

from .runs import Run

#: the movement must be at least this many times the floor (issue "Ratios that measure the policy")
FLOOR_FACTOR = 10.0


def column_values(metrics: list[dict], key: str) -> list[float]:
    """The finite values of a metrics column (rows without it, or with NaN or inf, are skipped)."""
    return [float(r[key]) for r in metrics if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def column_median(metrics: list[dict], key: str) -> float | None:
    values = column_values(metrics, key)
    return median(values) if values else None


def run_movement(run: Run, factor: float = FLOOR_FACTOR) -> dict:
    metrics = run.metrics()
    movement = column_median(metrics, "kl_old_k3_seq")
    floor = column_median(metrics, "noise_floor_k3_seq")
    clears = None if movement is None or floor is None else movement >= factor * floor
    return {"variant": run.variant, "seed": run.seed, "movement": movement, "floor": floor,
            "ratio": movement / floor if movement is not None and floor else None, "clears": clears}


def movement_table(runs: list[Run]) -> list[dict]:
    """One row per trained run (the base model has no metrics)."""
    return [run_movement(r) for r in runs if r.metrics()]


def movement_cells(rows: list[dict]) -> tuple[str, list[str], list[list[str]], str]:
    """(legend, header, body, summary) of the movement table, shared by the Markdown and HTML reports."""
    fmt = lambda x: "-" if x is None else f"{x:.2g}"  # noqa: E731
    legend = (f"Median over steps of `kl_old_k3_seq` (movement) and `noise_floor_k3_seq` (floor); ⚠ marks a run "
              f"whose movement is below {FLOOR_FACTOR:g}x its floor: its importance ratios measured rounding, not "
              "the policy's movement. '-': not measured (no second inner pass, or recorded before the floor existed).")
    body = []
    for r in rows:
        flag = " ⚠" if r["clears"] is False else ""
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}{flag}"
        body.append([f"{r['variant']}/seed{r['seed']}", fmt(r["movement"]), fmt(r["floor"]), ratio])
    below = sum(r["clears"] is False for r in rows)
    unknown = sum(r["clears"] is None for r in rows)
    summary = (f"{below} of {len(rows)} runs below {FLOOR_FACTOR:g}x their floor; {unknown} without a measured "
               "movement or floor.")
    return legend, ["run", "movement", "floor", "movement / floor"], body, summary


MOVEMENT_TITLE = "Inner-step movement and ratio noise floor"


def movement_lines(rows: list[dict]) -> list[str]:
    """The Markdown section: one line per run, flagged where the movement does not clear the floor."""
    if not rows:
        return []
    legend, header, body, summary = movement_cells(rows)
    out = [f"## {MOVEMENT_TITLE}", "", legend, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    return out + ["", summary, ""]
