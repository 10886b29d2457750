"""Experiment trackers and evaluation during training, on a tiny suite run in-process (tiny random model).

TensorBoard's event files are read back with its EventAccumulator and compared with metrics.jsonl;
W&B runs offline (its run files are read back), MLflow into a file store (read back with its client).
Evaluation every step must leave the training trajectory unchanged.
"""

import importlib.util
import json
import math
import struct

import pytest
from conftest import ROOT
from grpo_bench.config import load_suite
from grpo_bench.errors import UserError
from grpo_bench.execute import run_suite
from grpo_bench.execute.trackers import numeric
from grpo_bench.io import read_jsonl
from grpo_bench.registry import default_registry


def untimed(row: dict) -> dict:
    """A metrics row less its wall-clock fields (``*_s``, ``*_per_s``), which differ between any two runs."""
    return {k: v for k, v in row.items() if not k.endswith("_s")}


def suite_text(name: str, every: int, report_to: list[str]) -> str:
    return f"""
[suite]
name = "{name}"
model = "tiny-random"
engine = "hf"
seeds = [0]
report_to = {json.dumps(report_to)}

[train]
benchmark = "arith"
steps = 3
prompts_per_step = 2
group_size = 4
max_new_tokens = 8
learning_rate = 1e-2
mu = 2
checkpoint_every = 1
rewards = ["math_verify", "format"]
reward_weights = {{ format = 0.1 }}

[eval]
benchmarks = [{{ name = "arith", split = "test", limit = 5 }}]
max_new_tokens = 8
every = {every}
every_limit = 3

[[variants]]
algorithm = "grpo"
"""


def run(tmp_path, name, every, report_to):
    path = tmp_path / f"{name}.toml"
    path.write_text(suite_text(name, every, report_to))
    registry = default_registry()
    return run_suite(load_suite(path, registry), registry, tmp_path / "results")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trackers")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("MLFLOW_TRACKING_URI", (tmp / "mlruns").as_uri())
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 deprecates the file store; fine for a test
    trackers = [t for t in ("tensorboard", "wandb", "mlflow") if importlib.util.find_spec(t)]
    try:
        with_eval = run(tmp, "every", 1, trackers)
        without = run(tmp, "plain", 0, [])
    finally:
        mp.undo()
    return with_eval, without, trackers, tmp


def test_eval_every_leaves_training_unchanged(runs):
    with_eval, without, _, _ = runs
    a = read_jsonl(with_eval / "runs/grpo/seed0/metrics.jsonl")
    b = read_jsonl(without / "runs/grpo/seed0/metrics.jsonl")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        assert untimed(ra) == untimed(rb)
        assert len(untimed(ra)) > 20
    sa = json.loads((with_eval / "runs/grpo/seed0/summary.json").read_text())["eval"]
    sb = json.loads((without / "runs/grpo/seed0/summary.json").read_text())["eval"]
    assert sa["arith-test"]["pass@1"] == sb["arith-test"]["pass@1"]


def test_eval_curve_rows(runs):
    with_eval, without, _, _ = runs
    curve = read_jsonl(with_eval / "runs/grpo/seed0/eval_curve.jsonl")
    assert [(r["step"], r["key"], r["n"]) for r in curve] == [(s, "arith-test", 3) for s in range(4)]
    assert not (without / "runs/grpo/seed0/eval_curve.jsonl").exists()
    board = json.loads((with_eval / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["variant"] == "grpo")
    # eval AUC: trapezoid over steps 0..3 divided by 3 (docs/leaderboard.md)
    p = [r["pass@1"] for r in curve]
    expected = (p[0] / 2 + p[1] + p[2] + p[3] / 2) / 3
    assert row["eval_auc"]["arith-test"]["value"] == pytest.approx(expected)
    assert (with_eval / "plots" / "eval_curves.png").stat().st_size > 1000


def test_tensorboard_events_equal_metrics(runs):
    with_eval, _, trackers, _ = runs
    if "tensorboard" not in trackers:
        pytest.skip("tensorboard is not installed (pip install 'grpo-bench[trackers]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = with_eval / "runs/grpo/seed0"
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    keys = sorted(numeric(rows[0]))
    assert {"reward_mean", "loss", "grad_norm", "accuracy", "reward/format"} <= set(keys)
    for key in keys:  # every number of every step
        events = acc.Scalars(key)
        assert [e.step for e in events] == [r["step"] for r in rows], key
        assert [e.value for e in events] == pytest.approx([r[key] for r in rows], rel=1e-6), key  # float32 in events
    curve = read_jsonl(run_dir / "eval_curve.jsonl")
    ev = acc.Scalars("eval_every/arith-test/pass@1")
    assert [(e.step, e.value) for e in ev] == [(r["step"], pytest.approx(r["pass@1"])) for r in curve]
    final = json.loads((run_dir / "summary.json").read_text())["eval"]["arith-test"]["pass@1"]
    assert acc.Scalars("eval/arith-test/pass@1")[-1].value == pytest.approx(final)
    (text,) = acc.Tensors("config/text_summary")  # the resolved config, as a text summary
    config = json.loads((run_dir / "config.json").read_text())
    assert json.loads(text.tensor_proto.string_val[0].decode().replace("\n    ", "\n")) == config


def wandb_records(path):
    """The protobuf records of an offline W&B run file (LevelDB log format behind a 7-byte W&B header:
    32 KiB blocks of chunks, each with crc32 (4), length (2, little-endian) and type (1: full,
    2: first, 3: middle, 4: last)). wandb 0.31 has no Python reader of its own any more."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, out, buf = 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_wandb_offline_run(runs):
    with_eval, _, trackers, _ = runs
    if "wandb" not in trackers:
        pytest.skip("wandb is not installed (pip install 'grpo-bench[trackers]')")
    run_dir = with_eval / "runs/grpo/seed0"
    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(path)
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            history[row["_step"]] = row
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert sorted(history) == [0, 1, 2, 3]
    for r in rows:
        for key, value in numeric(r).items():
            assert history[r["step"]][key] == pytest.approx(value), key
    for r in read_jsonl(run_dir / "eval_curve.jsonl"):
        assert history[r["step"]]["eval_every/arith-test/pass@1"] == pytest.approx(r["pass@1"])
    final = json.loads((run_dir / "summary.json").read_text())["eval"]["arith-test"]["pass@1"]
    assert history[3]["eval/arith-test/pass@1"] == pytest.approx(final)
    (config,) = [r.config for r in records if r.WhichOneof("record_type") == "config"]
    logged = {u.key: json.loads(u.value_json) for u in config.update}
    assert logged["config"] == json.loads((run_dir / "config.json").read_text())["config"]


def test_mlflow_file_store(runs):
    with_eval, _, trackers, tmp = runs
    if "mlflow" not in trackers:
        pytest.skip("mlflow is not installed (pip install 'grpo-bench[trackers]')")
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        client = mlflow.MlflowClient(tracking_uri=(tmp / "mlruns").as_uri())
    exp = client.get_experiment_by_name("every")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.`mlflow.runName` = 'grpo/seed0'")
    rows = read_jsonl(with_eval / "runs/grpo/seed0/metrics.jsonl")
    history = client.get_metric_history(run.info.run_id, "reward_mean")
    assert sorted((m.step, m.value) for m in history) == [(r["step"], pytest.approx(r["reward_mean"])) for r in rows]
    assert "eval/arith-test/pass_at_1" in run.data.metrics
    assert run.info.status == "FINISHED"


def test_numeric_drops_what_trackers_cannot_take():
    assert numeric({"step": 3, "a": 1, "b": 0.5, "c": None, "d": [1], "e": "x", "f": math.nan, "g": True}) == \
        {"a": 1.0, "b": 0.5}


def test_unknown_or_missing_tracker_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "s.toml"
    path.write_text(suite_text("s", 0, ["comet"]))
    with pytest.raises(UserError, match=r"suite.report_to\[0\]: unknown tracker 'comet'"):
        load_suite(path, default_registry())
    path.write_text(suite_text("s", 0, ["wandb"]))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"needs the wandb package: pip install 'grpo-bench\[trackers\]'"):
        load_suite(path, default_registry())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path.write_text(suite_text("s", 0, ["mlflow"]))
    with pytest.raises(UserError, match=r"suite.report_to\[0\]: mlflow: set MLFLOW_TRACKING_URI"):
        load_suite(path, default_registry())
    path.write_text(suite_text("s", -1, []))
    with pytest.raises(UserError, match="eval.every: must be >= 0"):
        load_suite(path, default_registry())


def test_tiny_suite_still_parses():
    load_suite(ROOT / "tests" / "suites" / "tiny.toml", default_registry())
