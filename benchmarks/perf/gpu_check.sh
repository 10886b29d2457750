#!/usr/bin/env bash
# A short check for a GPU machine (no network needed): the CUDA path and the Ray executor with the
# tiny random-weight model. Not run yet (no GPU in the session that wrote it). Run from the repository root:
#   bash benchmarks/perf/gpu_check.sh [OUT_DIR]
# On CUDA, sampling and reductions may be non-deterministic: the comparison reports differences, it
# does not fail on them. Prints the GPU, runs the trainer tests on CUDA, then a 2 variants x 2 seeds suite with the local and
# the Ray executor (one GPU per run, Ray started in-process) and compares every number of every run.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
$PY -c "import ray; print('ray', ray.__version__)" || $PY -m pip install -q 'ray>=2.9'

echo "== trainer tests on CUDA"
GRPO_BENCH_TEST_DEVICE=cuda timeout 300 $PY -m pytest -q -x tests/test_trainer.py 2>&1 | tail -3

echo "== local vs Ray executor on CUDA (tiny-random, hf engine)"
cat > "$OUT/grid.toml" <<'TOML'
[suite]
name = "gpu-grid"
model = "tiny-random"
engine = "hf"
device = "cuda"
seeds = [0, 1]
resources = { cpus = 1, gpus = "auto" }
[train]
benchmark = "arith"
steps = 3
prompts_per_step = 4
group_size = 8
max_new_tokens = 16
learning_rate = 1e-3
mu = 2
rewards = ["integer_answer"]
[eval]
benchmarks = [{ name = "arith", split = "test", limit = 32 }]
max_new_tokens = 16
[[variants]]
algorithm = "grpo"
[[variants]]
algorithm = "tic_grpo"
TOML
t0=$SECONDS; $PY -m grpo_bench.cli run "$OUT/grid.toml" --results-dir "$OUT/local" > "$OUT/local.log" 2>&1
echo "local executor wall: $((SECONDS - t0)) s"
t0=$SECONDS; $PY -m grpo_bench.cli run "$OUT/grid.toml" --results-dir "$OUT/ray" --executor ray > "$OUT/ray.log" 2>&1
echo "ray executor wall: $((SECONDS - t0)) s (includes Ray start-up; 5 runs, one GPU each, in sequence on one GPU)"
tail -1 "$OUT/local.log"; tail -1 "$OUT/ray.log"
$PY - "$OUT" <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from test_executors import run_numbers
out = Path(sys.argv[1])
for run in sorted((out / "local/gpu-grid/runs").glob("*/seed*")):
    rel = run.relative_to(out / "local")
    a, b = run_numbers(out / "local" / rel), run_numbers(out / "ray" / rel)
    diff = [k for k in a if a.get(k) != b.get(k)]
    print(f"{rel}: {len(a)} numbers, {len(diff)} differ" + (f" (first: {diff[0]}: {a[diff[0]]} vs {b.get(diff[0])})" if diff else ""))
PYEOF
