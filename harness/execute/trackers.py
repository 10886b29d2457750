"""Experiment trackers (``[suite] report_to``): TensorBoard, Weights & Biases, MLflow.

Each run (variant x seed) is one tracker run: the resolved config (the run's ``config.json``
record) once, every training step's numeric metrics at that step, the intermediate evaluations
(``eval_every/<target>/pass@1``) and the final ones (``eval/<target>/<metric>``) at the last step.
The packages are imported here, lazily; ``load_suite`` already checked that they are installed.

- ``tensorboard``: event files in ``<run>/tensorboard/`` (``torch.utils.tensorboard``).
- ``wandb``: project ``grpo-bench``, run name ``<suite>/<variant>/seed<k>``, files under
  ``<run>/wandb/``. With no network set ``WANDB_MODE=offline`` (then ``wandb sync`` later).
- ``mlflow``: experiment = the suite name, run name ``<variant>/seed<k>``; the tracking URI is
  MLflow's own (``MLFLOW_TRACKING_URI``; by default ``./mlruns``).

A resumed run opens its tracker runs again and logs the steps after its checkpoint; steps between
the checkpoint and the interruption are then logged twice (the trackers keep both points).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def numeric(row: dict) -> dict[str, float]:
    """The finite numbers of a metrics row (lists, strings, None and NaN left out)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "step"}


class Tracker:
    """One tracker run. Subclasses implement the four methods."""

    def log_config(self, config: dict) -> None:
        raise NotImplementedError

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    def __init__(self, run_dir: Path, name: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log_config(self, config: dict) -> None:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        self.writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # Markdown code block

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, run_dir: Path, name: str):
        import wandb

        self.run = wandb.init(project="grpo-bench", name=name, dir=str(run_dir), id=name.replace("/", "-"),
                              resume="allow", reinit="create_new")

    def log_config(self, config: dict) -> None:
        self.run.config.update(json.loads(json.dumps(config, default=str)), allow_val_change=True)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    def __init__(self, run_dir: Path, name: str):
        import mlflow

        self.client = mlflow.MlflowClient()
        experiment, _, run_name = name.partition("/")
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id

    def log_config(self, config: dict) -> None:
        self.client.log_dict(self.run_id, json.loads(json.dumps(config, default=str)), "config.json")

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.client.log_metric(self.run_id, k.replace("@", "_at_"), v, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


BACKENDS: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker,
                                      "mlflow": MlflowTracker}


class Trackers:
    """All trackers of one run, fanned out; empty ``names`` makes every call a no-op."""

    def __init__(self, names: list[str], run_dir: Path, name: str):
        self.items = [BACKENDS[n](run_dir, name) for n in names]

    def log_config(self, config: dict) -> None:
        for t in self.items:
            t.log_config(config)

    def log(self, values: dict[str, Any], step: int) -> None:
        values = numeric(values)
        if values:
            for t in self.items:
                t.log(values, step)

    def close(self) -> None:
        for t in self.items:
            t.close()
