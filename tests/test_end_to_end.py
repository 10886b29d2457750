"""A full tiny run through the command line, a SIGKILL in the middle, and the resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

SUITE = ROOT / "tests" / "suites" / "tiny.toml"


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "grpo_bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_tiny_suite_end_to_end(tmp_path):
    t0 = time.monotonic()
    out = run_cli("run", str(SUITE), "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert time.monotonic() - t0 < 120
    res = tmp_path / "tiny"
    md = (res / "leaderboard.md").read_text()
    for name in ("base", "grpo", "grpo_no_is", "tic_grpo"):
        assert f"| {name} |" in md
    assert (res / "leaderboard.csv").read_text().count("\n") == 5
    summary = json.loads((res / "runs" / "tic_grpo" / "seed0" / "summary.json").read_text())
    assert summary["algorithm"]["options"]["advantage"] == "length_corrected"
    assert summary["provenance"]["versions"]["torch"]
    assert summary["benchmarks"]["arith"]["prompt_template"].startswith("What is {question}?")
    assert set(summary["eval"]) == {"arith-test", "gsm8k-test"}
    assert "mean@2" in summary["eval"]["arith-test"] and "pass@2 (sampled)" in summary["eval"]["arith-test"]
    records = (res / "runs" / "tic_grpo" / "seed0" / "eval" / "arith-test.records.jsonl").read_text().splitlines()
    assert len(records) == 6 and "completion" in json.loads(records[0])
    assert not (res / "runs" / "grpo" / "seed0" / "checkpoint").exists()  # removed after a finished run
    # a rerun skips finished runs and rebuilds the same table
    again = run_cli("run", str(SUITE), "--results-dir", str(tmp_path))
    assert again.returncode == 0 and "skip grpo seed 0: finished" in again.stderr
    lb = run_cli("leaderboard", str(res))
    assert lb.returncode == 0 and "| tic_grpo |" in lb.stdout


@pytest.mark.slow
def test_killed_run_resumes_from_checkpoint(tmp_path):
    suite = tmp_path / "resume.toml"
    text = SUITE.read_text().replace('name = "tiny"', 'name = "resume"').replace("steps = 2", "steps = 40")
    text = text.replace("checkpoint_every = 1", "checkpoint_every = 5")
    text = text.replace("samples = 2", "samples = 0\nevery = 5\nevery_limit = 3")  # eval curve every 5 steps
    text = text.split("[[variants]]")[0] + '[[variants]]\nalgorithm = "grpo"\n'
    suite.write_text(text)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = killed / "resume" / "runs" / "grpo" / "seed0"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        if (run / "checkpoint" / "state.pt").exists() and len(rows) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists(), "the run finished before it could be killed"
    out = run_cli("run", str(suite), "--results-dir", str(killed))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(40))
    # the resumed run is the run that was never interrupted: same samples, same rewards, same updates
    ref = run_cli("run", str(suite), "--results-dir", str(clean))
    assert ref.returncode == 0
    ref_rows = [json.loads(line) for line in (clean / "resume" / "runs" / "grpo" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows, ref_rows):
        assert (a["reward_mean"], a["generated_tokens"]) == (b["reward_mean"], b["generated_tokens"])
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    # the eval curve too: evaluations up to the checkpoint kept, later ones redone, nothing twice
    curve = [json.loads(line) for line in (run / "eval_curve.jsonl").read_text().splitlines()]
    ref_curve = [json.loads(line) for line in
                 (clean / "resume" / "runs" / "grpo" / "seed0" / "eval_curve.jsonl").read_text().splitlines()]
    assert [(r["step"], r["key"]) for r in curve] == [(s, k) for s in range(0, 41, 5) for k in ("arith-test", "gsm8k-test")]
    assert curve == ref_curve
    s1 = json.loads((run / "summary.json").read_text())["eval"]["arith-test"]["pass@1"]
    s2 = json.loads((clean / "resume" / "runs" / "grpo" / "seed0" / "summary.json").read_text())["eval"]["arith-test"]["pass@1"]
    assert s1 == s2
    # samples.jsonl: the steps after the checkpoint were dropped and written again, nothing twice, nothing lost
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    ref_samples = [json.loads(line) for line in
                   (clean / "resume" / "runs" / "grpo" / "seed0" / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in samples] == [s for s in range(40) for _ in range(8)]
    for a, b in zip(samples, ref_samples, strict=True):
        assert a["advantage"] == pytest.approx(b["advantage"], abs=1e-6)
        assert {k: v for k, v in a.items() if k != "advantage"} == {k: v for k, v in b.items() if k != "advantage"}
