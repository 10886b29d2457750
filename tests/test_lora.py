"""LoRA through peft on the tiny random model: only the adapters train, the base weights stay as loaded,
the engine receives W + (alpha / r) B A, and a suite with `[train] lora` runs end to end."""

import json

import pytest
import reward_fixtures
import torch

peft = pytest.importorskip("peft")

from grpo_bench.config import TrainConfig  # noqa: E402
from grpo_bench.errors import UserError  # noqa: E402
from grpo_bench.models import eos_ids, load_policy  # noqa: E402
from grpo_bench.plugins.algorithms.grpo import GRPO  # noqa: E402
from grpo_bench.plugins.benchmarks.arith import Arith  # noqa: E402
from grpo_bench.plugins.engines.hf import HFEngine  # noqa: E402
from grpo_bench.scoring import RewardScorer  # noqa: E402
from grpo_bench.training import Trainer  # noqa: E402
from grpo_bench.training.lora import MergedSync, merged_state_dict, unwrap, wrap  # noqa: E402

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def test_only_adapters_train_and_engine_gets_merged_weights(tmp_path):
    torch.manual_seed(0)
    model, tok = load_policy("tiny-random")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    policy = wrap(model, LORA)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    engine = HFEngine(model, tok, eos_ids(model, tok))
    bench = Arith("arith", (1,))
    scorer = RewardScorer({"digits": reward_fixtures.digit_share})
    cfg = TrainConfig(steps=2, prompts_per_step=2, group_size=4, max_new_tokens=10, learning_rate=5e-2, mu=2,
                      micro_batch_size=4, checkpoint_every=0)
    try:
        rows = Trainer(policy, tok, MergedSync(engine, policy), GRPO(), scorer, bench, bench.problems("train", 50),
                       cfg, seed=0, run_dir=tmp_path).train()
    finally:
        scorer.close()
    assert len(rows) == 2
    # the hf engine samples from the adapted module itself (the adapter layers sit in its forward)
    from peft.tuners.lora import LoraLayer

    assert isinstance(engine.model.model.layers[0].self_attn.q_proj, LoraLayer)
    # base weights untouched, adapters moved (B starts at zero)
    for key, value in policy.get_base_model().state_dict().items():
        if ".lora_" not in key:
            assert torch.equal(value, base[key.replace(".base_layer.", ".")]), key
    layer = policy.get_base_model().model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert b.abs().max() > 0
    # merged weights: W + (alpha / r) B A, worked out here by hand, under the base model's names
    merged = merged_state_dict(policy)
    assert set(merged) == set(base)
    expect = base["model.layers.0.self_attn.q_proj.weight"] + (8 / 4) * b.detach() @ a.detach()
    torch.testing.assert_close(merged["model.layers.0.self_attn.q_proj.weight"], expect)
    assert torch.equal(merged["model.layers.0.self_attn.k_proj.weight"], base["model.layers.0.self_attn.k_proj.weight"])
    # a plain model loaded with the merged weights computes what the adapted model computes
    plain, _ = load_policy("tiny-random")
    plain.load_state_dict(merged)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, policy(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    restored = unwrap(policy)
    assert all(torch.equal(v, base[k]) for k, v in restored.state_dict().items())


def test_bad_lora_options_get_one_line(tmp_path):
    from grpo_bench.config.suite import check_lora

    assert check_lora({}) == {}
    assert check_lora({"r": 2})["alpha"] == 16
    for bad, key in (({"rank": 2}, "train.lora.rank"), ({"r": 0}, "train.lora.r"), ({"dropout": 1.5}, "train.lora.dropout"),
                     ({"target_modules": []}, "train.lora.target_modules")):
        with pytest.raises(UserError, match=key):
            check_lora(bad)


def test_lora_suite_end_to_end(tmp_path):
    from grpo_bench.cli import main

    suite = tmp_path / "lora.toml"
    suite.write_text("""
[suite]
name = "lora"
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 2
prompts_per_step = 2
group_size = 4
max_new_tokens = 8
learning_rate = 1e-2
mu = 1
rewards = ["integer_answer"]
lora = { r = 4, alpha = 8, target_modules = ["q_proj", "v_proj"] }
[eval]
benchmarks = [{ name = "arith", split = "test", limit = 2 }]
max_new_tokens = 8
[[variants]]
algorithm = "grpo"
[[variants]]
algorithm = "tic_grpo"
""")
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r")]) == 0
    for v in ("grpo", "tic_grpo"):
        summary = json.loads((tmp_path / "r" / "lora" / "runs" / v / "seed0" / "summary.json").read_text())
        assert summary["config"]["train"]["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0,
                                                      "target_modules": ["q_proj", "v_proj"]}
        assert summary["train"]["steps"] == 2
