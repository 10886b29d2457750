"""The vLLM engine (skipped where vLLM is not installed): weight sync after a training step, and seeds."""

import pytest
import torch

pytest.importorskip("vllm")

import reward_fixtures  # noqa: E402
from grpo_bench.config import TrainConfig
from grpo_bench.engine import SamplingConfig  # noqa: E402
from grpo_bench.models import eos_ids, load_policy  # noqa: E402
from grpo_bench.plugins.algorithms.grpo import GRPO  # noqa: E402
from grpo_bench.plugins.benchmarks.arith import Arith  # noqa: E402
from grpo_bench.plugins.engines.hf import HFEngine  # noqa: E402
from grpo_bench.plugins.engines.vllm_engine import VLLMEngine  # noqa: E402
from grpo_bench.scoring import RewardScorer  # noqa: E402
from grpo_bench.training import Trainer  # noqa: E402
from grpo_bench.training.policy import completion_logprobs, make_micro_batches  # noqa: E402

#: fp32 engine vs fp32 trainer: the same weights must give the same log-probs up to kernel rounding
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def setup():
    model, tok = load_policy("tiny-random")
    engine = VLLMEngine(model, tok, eos_ids(model, tok), dtype="float32")
    yield model, tok, engine
    engine.close()


def trainer_logprobs(model, tok, prompts, completions):
    mbs = make_micro_batches(prompts, completions, 16, tok.pad_token_id)
    out = [None] * len(completions)
    with torch.no_grad():
        for mb in mbs:
            lp, _ = completion_logprobs(model, mb)
            for r, i in enumerate(mb.indices):
                out[i] = lp[r, :len(completions[i])]
    return out


def test_engine_follows_the_trainer_after_a_training_step(setup, tmp_path):
    model, tok, engine = setup
    bench = Arith("arith", (1,))
    scorer = RewardScorer({"digits": reward_fixtures.digit_share})
    cfg = TrainConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=10, learning_rate=3e-2, mu=2,
                      checkpoint_every=0, bf16_autocast=False, bf16_weights=False)  # fp32: exact comparison
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        rows = Trainer(model, tok, engine, GRPO(), scorer, bench, bench.problems("train", 20), cfg, 0, tmp_path).train()
    finally:
        scorer.close()
    assert rows[0]["engine_logprob_gap_max"] < TOLERANCE  # sampled at theta_old: the engine matched the trainer
    assert max(float((model.state_dict()[k] - before[k]).abs().max()) for k in before) > 1e-3
    # after the step (trainer pushed its new weights): log-probs of a fixed completion agree again
    prompt = tok("What is 1 + 2?", add_special_tokens=False)["input_ids"]
    fixed = engine.generate([prompt], SamplingConfig(12, 1.0, 3, 5))[0]
    ours = trainer_logprobs(model, tok, [prompt] * 3, [c.token_ids for c in fixed])
    for c, lp in zip(fixed, ours):
        assert torch.allclose(torch.tensor(c.logprobs), lp, atol=TOLERANCE)
    # and greedy decoding is the same as the trainer's own model.generate
    hf = HFEngine(model, tok, eos_ids(model, tok)).generate([prompt], SamplingConfig(12, 0.0, 1, 0))
    assert engine.generate([prompt], SamplingConfig(12, 0.0, 1, 0))[0][0].token_ids == hf[0][0].token_ids


def test_same_seed_same_samples(setup):
    _, tok, engine = setup
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("abc", "What is 7 * 8?")]
    a = engine.generate(prompts, SamplingConfig(16, 1.0, 4, 123))
    b = engine.generate(prompts, SamplingConfig(16, 1.0, 4, 123))
    c = engine.generate(prompts, SamplingConfig(16, 1.0, 4, 124))
    ids = lambda out: [[x.token_ids for x in g] for g in out]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_weights_are_pushed_in_the_engines_dtype(setup, monkeypatch):
    """fp32 trainer weights go to a bf16 engine already as bf16 (vLLM would otherwise warn per tensor:
    "Attempted to load weight ... float32 into bfloat16")."""
    model, tok, engine = setup
    assert engine.dtype == torch.float32  # read back from the running engine
    seen = []

    def record(method, kwargs):
        seen.extend((name, t.dtype) for name, t in kwargs["weights_iterator"])

    monkeypatch.setattr(engine, "dtype", torch.bfloat16)
    monkeypatch.setattr(engine.llm, "collective_rpc", record)
    monkeypatch.setattr(engine.llm, "reset_prefix_cache", lambda: None)
    engine.sync_weights(model)
    assert seen and {d for _, d in seen} == {torch.bfloat16}
    assert "lm_head.weight" in dict(seen)


def test_a_weight_the_state_dict_lacks_is_caught(setup):
    """The engine starts on placeholder weights and then takes the trainer's state dict; a weight that
    the state dict does not cover would keep its placeholder. vLLM's in-place reload says so in a
    warning, which start-up turns into a one-line error: here a push without the final norm."""
    from grpo_bench.plugins.engines.vllm_engine import _unloaded_weights

    model, _, engine = setup
    state = {k: v.detach() for k, v in model.state_dict().items() if k != "model.norm.weight"}
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    try:
        with _unloaded_weights() as missing:
            engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items()),
                                                                "is_checkpoint_format": True})
        assert len(missing) == 1 and "model.norm.weight" in missing[0]
        with _unloaded_weights() as missing:
            engine.sync_weights(model)  # the whole state dict: nothing left out
        assert missing == []
    finally:
        engine.sync_weights(model)


def test_console_shows_people_lines_not_library_bars(tmp_path):
    """A CLI run with the vLLM engine (training, a checkpoint, evaluation): the console holds our own
    lines and bars, not vLLM's request bars or transformers' weight-loading / shard-writing bars;
    those libraries' lines are in the run's log file instead."""
    import subprocess
    import sys
    from pathlib import Path

    suite = Path(__file__).resolve().parent / "suites" / "tiny.toml"
    out = subprocess.run(
        [sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(tmp_path),
         "--variant", "grpo", "--set", 'suite.engine="vllm"', "--set", "train.steps=1",
         "--set", 'eval.benchmarks=[{name = "arith", split = "test", limit = 3}]', "--set", "eval.samples=1"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    console = out.stdout + out.stderr
    assert "finished grpo seed 0" in console
    for chatter in ("Processed prompts", "Rendering prompts", "Writing model shards", "Loading weights"):
        assert chatter not in console, chatter
    assert "vllm" in (tmp_path / "tiny" / "grpo-bench.log").read_text().lower()


@pytest.mark.slow
def test_compiled_engine_follows_a_weight_push():
    """With ``enforce_eager = false`` vLLM runs torch.compile'd graphs; a weight push must still reach
    them (graphs that had captured the weights as constants would keep sampling from the old policy)."""
    model, tok = load_policy("tiny-random")
    engine = VLLMEngine(model, tok, eos_ids(model, tok), dtype="float32", enforce_eager=False)
    try:
        prompt = tok("What is 1 + 2?", add_special_tokens=False)["input_ids"]
        greedy = SamplingConfig(12, 0.0, 1, 0)
        first = engine.generate([prompt], greedy)[0][0].token_ids
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.5)
        engine.sync_weights(model)
        fixed = engine.generate([prompt], SamplingConfig(12, 1.0, 3, 5))[0]
        ours = trainer_logprobs(model, tok, [prompt] * 3, [c.token_ids for c in fixed])
        for c, lp in zip(fixed, ours):
            assert torch.allclose(torch.tensor(c.logprobs), lp, atol=TOLERANCE)
        hf = HFEngine(model, tok, eos_ids(model, tok)).generate([prompt], greedy)[0][0].token_ids
        after = engine.generate([prompt], greedy)[0][0].token_ids
        assert after == hf and after != first
    finally:
        engine.close()
