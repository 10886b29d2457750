"""Users' mistakes with the results folder: an unwritable folder is one line and exit 2, and
``--dry-run`` agrees with the real run about what it refuses and estimates time under ``--shard``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from grpo_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests/suites/tiny.toml")
SMALL = ["--set", "train.steps=1", "--set", 'eval.benchmarks=[{name = "arith", split = "test", limit = 2}]',
         "--set", "eval.samples=0"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["run", TINY, *SMALL, *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A results folder holding the base run and grpo seed 0 of the small tiny suite."""
    root = tmp_path_factory.mktemp("mistakes")
    assert main(["run", TINY, *SMALL, "--variant", "grpo", "--results-dir", str(root)]) == 0
    return root


def unwritable(cmd: list[str], folder: Path) -> subprocess.CompletedProcess:
    """Runs ``cmd`` with ``folder`` read-only: a read-only bind mount as root (root ignores modes), else mode 0555."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if not shutil.which("bwrap"):
        pytest.skip("as root a read-only folder needs bubblewrap (make bubblewrap)")
    wrap = ["bwrap", "--bind", "/", "/", "--ro-bind", str(folder), str(folder), "--dev", "/dev", "--proc", "/proc"]
    return subprocess.run(wrap + cmd, capture_output=True, text=True, timeout=300)


def test_read_only_results_folder_is_one_line(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    done = unwritable([sys.executable, "-m", "grpo_bench.cli", "run", TINY, *SMALL, "--results-dir", str(folder)], folder)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"grpo-bench: error: cannot write results to {folder}/tiny"), lines
    assert "Traceback" not in done.stderr and not any(folder.iterdir())


def test_results_dir_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    rc, out, err = cli(capsys, "--results-dir", str(tmp_path / "file"))
    assert rc == 2 and err.startswith(f"grpo-bench: error: cannot write results to {tmp_path}/file/tiny: ")
    rc, out, err = cli(capsys, "--results-dir", str(tmp_path / "file"), "--dry-run")
    assert rc == 2 and "REFUSED: cannot write results to" in out


def test_dry_run_refuses_what_the_run_refuses(finished, capsys):
    rc, out, _ = cli(capsys, "--results-dir", str(finished), "--dry-run")
    assert rc == 0 and "REFUSED" not in out and "  grpo seed 0: finished (skipped)" in out
    for change in ("train.learning_rate=0.5", "variants.grpo.eps_high=0.28"):  # the folder's hash; one variant
        rc, out, _ = cli(capsys, "--results-dir", str(finished), "--dry-run", "--set", change)
        assert rc == 2, change
        said = [line for line in out.splitlines() if line.startswith("REFUSED: ")]
        assert len(said) == 2 and "finished (skipped)" not in out, out
        rc, _, err = cli(capsys, "--results-dir", str(finished), "--set", change)
        assert rc == 2 and err.strip() == f"grpo-bench: error: {said[-1].removeprefix('REFUSED: ')}", (change, err)
    assert not (finished / "tiny" / "runs" / "grpo_no_is").exists()  # the refused runs wrote nothing


def test_dry_run_estimates_time_under_a_shard(finished, capsys):
    wall = __import__("json").loads((finished / "tiny/runs/grpo/seed0/summary.json").read_text())["run_wall_s"]
    rc, out, _ = cli(capsys, "--results-dir", str(finished), "--dry-run", "--shard", "0/2")
    assert rc == 0 and "  base seed 0: finished (skipped)" in out and "  grpo_no_is seed 0: pending" in out
    estimate = [line for line in out.splitlines() if line.startswith("time: ")]
    assert estimate == [f"time: about {wall / 60:.1f} min per trained run (median of 1 finished here, on "
                        + estimate[0].split(" finished here, on ")[1]], out
    assert "for the 1 pending trained runs" in estimate[0]
