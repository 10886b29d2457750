"""What the trainer tells rewards and records about them: the ``trainer_state`` a reward receives, the
``log_metric`` values of a step's metrics row, and the per-sample records (``samples.jsonl``).

``samples.jsonl`` (in the run folder): one row per training sample of a recorded step::

    {"step": 3, "prompt_id": "arith-train-17", "completion": "...", "tokens": 12,
     "rewards": {"math_verify": 1.0, "fmt": null}, "total": 1.0, "advantage": 0.87,
     "extra": {"my_column": "..."}}

- the samples are the step's training batch (the groups that train; under dynamic sampling the kept
  groups of every draw), in batch order; ``rewards``: each reward's value (null: ``None``, an error or
  a timeout); ``total``: the training reward (weighted sum, overlong shaping included); ``advantage``:
  the algorithm's advantage of the sample; ``extra``: the ``log_extra`` columns (absent when none).
- a step's rows are appended in one write after the step, so the file holds whole steps; a resumed run
  drops the rows of steps after its checkpoint (like ``metrics.jsonl``), a run started afresh the file.
- ``train.samples_max_steps`` (default 200) caps the file for long runs: every k-th step is recorded,
  k = ceil(steps / samples_max_steps), step 0 first (0: no file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config.schema import TrainConfig
from ..io import append_jsonl_rows, read_jsonl, write_jsonl
from ..rewards import completion_text


def trainer_state(cfg: TrainConfig, step: int, num_problems: int, eval_every: int = 0) -> Any:
    """The ``transformers.TrainerState`` rewards receive before ``step`` (fields as in
    :mod:`grpo_bench.rewards`)."""
    from transformers import TrainerState

    return TrainerState(
        global_step=step, max_steps=cfg.steps, epoch=step * cfg.prompts_per_step / num_problems,
        num_train_epochs=math.ceil(cfg.steps * cfg.prompts_per_step / num_problems),
        train_batch_size=cfg.prompts_per_step * cfg.group_size, logging_steps=1,
        save_steps=cfg.checkpoint_every, eval_steps=eval_every,
    )


def merge_metrics(into: dict[str, list[float]], new: dict[str, list[float]]) -> None:
    """Collect the ``log_metric`` values of another scoring call (a further draw) of the same step."""
    for name, values in new.items():
        into.setdefault(name, []).extend(values)


def logged_metrics(row: dict, values: dict[str, list[float]]) -> dict[str, float]:
    """The step's ``log_metric`` columns: the mean of each name's values, under the name itself, or under
    ``log_metric/<name>`` where the name is already a column of the row (a built-in is never replaced)."""
    return {(name if name not in row else f"log_metric/{name}"): sum(v) / len(v) for name, v in values.items() if v}


def sample_records(scored: Any) -> list[dict]:
    """Per sample of a scored batch: each reward's value and the ``log_extra`` values."""
    n = len(scored.totals)
    out = []
    for i in range(n):
        rec: dict[str, Any] = {"rewards": {name: vals[i] for name, vals in scored.values.items()}}
        if scored.extra:
            rec["extra"] = {col: vals[i] for col, vals in scored.extra.items()}
        out.append(rec)
    return out


class SampleLog:
    """``samples.jsonl`` of one run (see the module docstring)."""

    def __init__(self, run_dir: Path, steps: int, max_steps: int):
        self.path = Path(run_dir) / "samples.jsonl"
        self.every = math.ceil(steps / max_steps) if max_steps > 0 and steps > 0 else 0

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def write(self, step: int, flat: list, records: list[dict], totals: list[float], advantages: list[float]) -> None:
        """Append the step's rows (``flat``: (problem, completion) per sample) in one write, if due."""
        if not self.due(step):
            return
        rows = [{"step": step, "prompt_id": p.id, "completion": completion_text(c.text), "tokens": len(c.token_ids),
                 **rec, "total": total, "advantage": adv}
                for (p, c), rec, total, adv in zip(flat, records, totals, advantages)]
        append_jsonl_rows(self.path, rows)

    def start(self, start_step: int) -> None:
        """A fresh run (``start_step`` 0) drops the file; a resumed one keeps the rows before its checkpoint."""
        if start_step == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            write_jsonl(self.path, [r for r in read_jsonl(self.path) if r["step"] < start_step])
