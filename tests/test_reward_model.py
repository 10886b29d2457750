"""A reward given as a model folder or hub id: a sequence-classification reward model with TRL's semantics,
checked against single unpadded forward passes of the same tiny model on hand-written texts."""

import pytest
import reward_fixtures as rf
import torch
from grpo_bench.cli import main
from grpo_bench.models import build_tiny_tokenizer
from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.registry import default_registry
from grpo_bench.scoring import RewardScorer
from grpo_bench.scoring.reward_model import RewardModel, resolve_rewards

SUITE = '''
[suite]
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 1
rewards = ["math_verify", "REWARD"]
[eval]
benchmarks = [{ name = "arith", limit = 2 }]
[[variants]]
algorithm = "grpo"
'''


@pytest.fixture(scope="module")
def rm_path(tmp_path_factory):
    """A tiny random LlamaForSequenceClassification (1 label) and the tiny ChatML tokenizer, saved."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-rm")
    tok = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, num_labels=1,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reference(path, text):
    """The model's score of one text, alone (no padding): the logit at its last token."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    vocab = build_tiny_tokenizer().get_vocab()
    ids, i = [], 0
    while i < len(text):  # the character-level vocabulary, read by hand (specials first)
        special = next((s for s in ("<|im_start|>", "<|im_end|>") if text.startswith(s, i)), None)
        ids.append(vocab[special] if special else vocab[text[i]])
        i += len(special) if special else 1
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


def test_standard_prompts_score_prompt_plus_completion_in_a_padded_batch(rm_path):
    rm = RewardModel(str(rm_path))
    prompts, completions = ["What is 1+1?", "Hi"], ["2", "a much longer completion, to pad the other"]
    got = rm(prompts=prompts, completions=completions)
    want = [reference(rm_path, p + c) for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, abs=1e-5)
    assert got[0] != pytest.approx(got[1])


def test_conversational_prompts_use_the_reward_tokenizers_chat_template(rm_path):
    rm = RewardModel(str(rm_path))
    prompts = [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "a longer question"}]]
    completions = [[{"role": "assistant", "content": "A"}], [{"role": "assistant", "content": "B!"}]]
    got = rm(prompts=prompts, completions=completions)
    texts = ["<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
             "<|im_start|>user\na longer question<|im_end|>\n<|im_start|>assistant\nB!<|im_end|>\n"]
    assert got == pytest.approx([reference(rm_path, t) for t in texts], abs=1e-5)


def test_reward_model_mixes_with_reward_functions_in_the_scorer(rm_path):
    registry = default_registry()
    rewards = resolve_rewards(registry, ["math_verify", str(rm_path)])
    assert isinstance(rewards[str(rm_path)], RewardModel)
    scorer = RewardScorer({"rm": rewards[str(rm_path)], "digits": rf.digit_share}, weights={"rm": 2.0})
    try:
        res = scorer.score(["p", "q"], ["12", "ab"], {})
    finally:
        scorer.close()
    rm_values = [reference(rm_path, "p12"), reference(rm_path, "qab")]
    assert res.values["rm"] == pytest.approx(rm_values, abs=1e-5)
    assert res.totals == pytest.approx([2 * rm_values[0] + 1.0, 2 * rm_values[1]], abs=1e-5)


def test_suite_accepts_a_model_folder_and_refuses_an_offline_hub_id_in_one_line(rm_path, tmp_path, capsys, monkeypatch):
    from grpo_bench.config import load_suite

    good = tmp_path / "good.toml"
    good.write_text(SUITE.replace("REWARD", str(rm_path)))
    assert load_suite(good, default_registry()).train.rewards[1] == str(rm_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.replace("REWARD", "nobody-here/no-such-reward-model"))
    assert main(["run", str(bad), "--results-dir", str(tmp_path / "r"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nobody-here/no-such-reward-model'" in err[0] and "not cached" in err[0], err
    assert not (tmp_path / "r").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad.write_text(SUITE.replace("REWARD", str(empty)))
    assert main(["run", str(bad), "--results-dir", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "has no config.json" in capsys.readouterr().err


def test_training_with_a_reward_model_records_its_scores(rm_path, tmp_path):
    from test_reward_contract import _train

    rows, _, samples = _train(tmp_path, {"rm": RewardModel(str(rm_path))}, steps=1)
    assert len(samples) == 8
    prompts = {p.id: p.prompt for p in Arith("arith", (1,)).problems("train", 50)}
    for r in samples[:3]:
        assert r["rewards"]["rm"] == pytest.approx(reference(rm_path, prompts[r["prompt_id"]] + r["completion"]), abs=1e-4)


def test_a_suite_trains_with_a_reward_model_folder(rm_path, tmp_path):
    """The whole pipeline (plan, session on the run's device, trainer, records, report) with a model reward."""
    from grpo_bench.io import read_jsonl

    suite = tmp_path / "rm.toml"
    suite.write_text(SUITE.replace('"REWARD"]', f'"{rm_path}"]\nreward_weights = {{ "{rm_path}" = 0.5 }}\n'
                                   "prompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 6")
                     .replace("limit = 2 }]", "limit = 2 }]\nmax_new_tokens = 6"))
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r")]) == 0
    run = tmp_path / "r" / "rm" / "runs" / "grpo" / "seed0"
    samples = read_jsonl(run / "samples.jsonl")
    prompts = {p.id: p.prompt for p in default_registry().get("benchmarks", "arith").problems("train")}
    assert len(samples) == 4
    for r in samples:
        rm_value = reference(rm_path, prompts[r["prompt_id"]] + r["completion"])
        assert r["rewards"][str(rm_path)] == pytest.approx(rm_value, abs=1e-4)
        assert r["total"] == pytest.approx(0.5 * rm_value + (r["rewards"]["math_verify"] or 0.0), abs=1e-4)
    assert read_jsonl(run / "metrics.jsonl")[0][f"reward_error/{rm_path}"] == 0
    assert 'href="runs/grpo/seed0/samples.jsonl"' in (tmp_path / "r" / "rm" / "leaderboard.html").read_text()
