"""Trainer options any variant can use: mini-batches, the no-IS gradient reuse choice, dynamic sampling
(DAPO), overlong shaping and filtering; and the TIC-GRPO ablation suite end to end."""

import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import reward_fixtures
import torch
from conftest import ROOT
from grpo_bench.config import TrainConfig
from grpo_bench.models import eos_ids, load_policy
from grpo_bench.plugins.algorithms.grpo import GRPO
from grpo_bench.plugins.algorithms.grpo_no_is import GRPONoIS
from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.plugins.engines.hf import HFEngine
from grpo_bench.scoring import RewardScorer
from grpo_bench.training import Trainer
from grpo_bench.training.trainer import (
    mini_batch_parts,
    overlong_shaping,
    prompt_order,
    reserve_order,
    step_problems,
)


class Recorder(GRPO):
    """GRPO that trains every row (so each mini-batch is seen whole) and records what the trainer passes."""

    name = "recorder"
    zero_advantage_is_inert = False

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def loss(self, batch, stats):
        self.calls.append(SimpleNamespace(n=batch.num_completions, tokens=batch.num_tokens, budget=batch.max_new_tokens,
                                          rows=batch.mask.shape[0], mask_sum=float(batch.mask.sum())))
        return super().loss(batch, stats)


def run(algo, tmp_path, reward=reward_fixtures.digit_share, steps=1, max_new_tokens=10, stop_every=0, **cfg):
    model, tok = load_policy("tiny-random")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bench = Arith("arith", (1,))
    scorer = RewardScorer({"r": reward})
    cfg = TrainConfig(**{**dict(steps=steps, prompts_per_step=2, group_size=4, max_new_tokens=max_new_tokens,
                                learning_rate=1e-2, mu=1, micro_batch_size=3, checkpoint_every=0,
                                bf16_autocast=False, bf16_weights=False), **cfg})
    # tiny-random never samples its EOS; stop_every = k makes every k-th token id a stop token instead
    stops = list(range(0, model.config.vocab_size, stop_every)) if stop_every else eos_ids(model, tok)
    trainer = Trainer(model, tok, HFEngine(model, tok, stops), algo, scorer, bench,
                      bench.problems("train", 50), cfg, seed=0, run_dir=tmp_path)
    try:
        rows = trainer.train()
    finally:
        scorer.close()
    after = model.state_dict()
    return {k: after[k] - before[k] for k in before}, rows, trainer


def test_mini_batch_parts():
    rows = list(range(10))
    assert mini_batch_parts(rows, 1, 5) == [rows]
    parts = mini_batch_parts(rows, 3, 5)
    assert [len(p) for p in parts] == [4, 3, 3] and sorted(sum(parts, [])) == rows
    assert parts == mini_batch_parts(rows, 3, 5) and parts != mini_batch_parts(rows, 3, 6)
    assert len(mini_batch_parts([1, 2], 4, 0)) == 2


def test_overlong_shaping_by_hand():
    # budget 10, buffer 4: no penalty up to 6 tokens, then (6 - L)/4: 7 -> -.25, 10 -> -1; scaled by the penalty
    cfg = TrainConfig(max_new_tokens=10, overlong_buffer=4, overlong_penalty=0.5)
    assert overlong_shaping([5, 6, 7, 10], cfg) == [0.0, 0.0, -0.125, -0.5]
    assert overlong_shaping([10], TrainConfig(max_new_tokens=10)) == [0.0]


def test_mini_batches_normalise_per_mini_batch_and_take_k_steps(tmp_path):
    algo = Recorder()
    _, rows, trainer = run(algo, tmp_path, mini_batches=2, mu=2)
    # 8 completions in 2 mini-batches of 4: every call is normalised by its mini-batch's N and tokens
    assert {c.n for c in algo.calls} == {4} and {c.budget for c in algo.calls} == {10}
    # the micro-batches of one pass cover each mini-batch exactly: rows add up to 4, token masks to num_tokens
    per_pass = len(algo.calls) // 2
    first = algo.calls[:per_pass]
    groups, acc = [], []
    for c in first:
        acc.append(c)
        if sum(x.rows for x in acc) == 4:
            groups.append(acc)
            acc = []
    assert len(groups) == 2 and not acc
    for g in groups:
        assert {x.tokens for x in g} == {sum(x.mask_sum for x in g)}
    # mu * k optimizer steps
    state = trainer.optimizer.state[next(iter(trainer.optimizer.state))]
    assert int(state["step"]) == 4
    assert rows[0]["mini_batches"] == 2
    # the second mini-batch is trained after the first one's step against the log-probs of theta_old, so its
    # ratios differ from 1; with one mini-batch and mu = 1 every ratio is exactly 1
    assert rows[0]["ratio_token_max"] > 1.0
    _, rows1, _ = run(GRPO(), tmp_path / "one")
    assert rows1[0]["ratio_token_max"] == 1.0


def test_no_is_gradient_reuse_is_an_option(tmp_path):
    # one mini-batch and mu = 1: reuse and recompute are both GRPO's step
    d_reuse, _, _ = run(GRPONoIS(), tmp_path / "a")
    d_fresh, _, _ = run(GRPONoIS(reuse_gradient=False), tmp_path / "b")
    assert max(float(d.abs().max()) for d in d_reuse.values()) > 1e-4
    for k in d_reuse:
        assert torch.allclose(d_reuse[k], d_fresh[k], atol=1e-7), k
    # mini-batches with reuse: every g_j at theta_old, each applied mu times: mu * k optimizer steps
    _, rows, trainer = run(GRPONoIS(), tmp_path / "e", mini_batches=2, mu=2)
    state = trainer.optimizer.state[next(iter(trainer.optimizer.state))]
    assert int(state["step"]) == 4 and math.isfinite(rows[0]["loss"])


class Recording:
    """Wraps the rollout engine and the scorer to keep what they gave the trainer (the step's input data)."""

    def __init__(self, inner, kind):
        self.inner, self.kind, self.seen = inner, kind, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, prompts, sampling):
        groups = self.inner.generate(prompts, sampling)
        self.seen.append((prompts, groups))
        return groups

    def score(self, *args):
        scored = self.inner.score(*args)
        self.seen.append(list(scored.totals))
        return scored


def no_is_gradient_by_hand(model, rows, rewards, group_size, delta=1e-4):
    """The no-IS gradient at the model's current parameters, from the formula alone: per sequence, one
    unpadded forward of prompt + completion, log_softmax at temperature 1 of each completion token;
    A_i = (r_i - mean_G r) / (std_G r (unbiased) + delta);
    g = grad of -(1/N) sum_i (1/|o_i|) sum_t A_i logp_{i,t}."""
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, group_size)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + delta)).view(-1)
    params = [p for p in model.parameters() if p.requires_grad]
    total = 0.0
    for (prompt, completion), a in zip(rows, adv):
        if not completion:
            continue
        ids = torch.tensor([list(prompt) + list(completion)])
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prompt) - 1:-1]
        logp = torch.log_softmax(logits.double(), -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
        total = total - float(a) * logp.sum() / len(completion)
    grads = torch.autograd.grad(total / len(rows), params)
    return [g.float() for g in grads]


@pytest.mark.parametrize("reuse", [True, False])
def test_no_is_sgd_steps_apply_the_gradient_at_the_old_policy(tmp_path, reuse):
    """With plain SGD (no clipping: grad_clip huge) and mu = 3, reuse_gradient = true must give
    w_3 = w_0 - 3 lr g(w_0), g worked out independently (no_is_gradient_by_hand) at the OLD parameters;
    reuse_gradient = false must give w_{k+1} = w_k - lr g(w_k) instead, and the two gradients must differ
    by far more than the tolerance (so the first check could not pass with a recomputed gradient)."""
    lr, mu = 0.5, 3
    model, tok = load_policy("tiny-random")
    w0 = [p.detach().clone() for p in model.parameters()]
    bench = Arith("arith", (1,))
    engine = Recording(HFEngine(model, tok, eos_ids(model, tok)), "engine")
    scorer = Recording(RewardScorer({"r": reward_fixtures.digit_share}), "scorer")
    cfg = TrainConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=10, learning_rate=lr, mu=mu,
                      micro_batch_size=3, checkpoint_every=0, grad_clip=1e9, noise_floor_every=0,
                      bf16_autocast=False, bf16_weights=False)
    trainer = Trainer(model, tok, engine, GRPONoIS(reuse_gradient=reuse), scorer, bench,
                      bench.problems("train", 50), cfg, seed=0, run_dir=tmp_path)
    trainer.optimizer = torch.optim.SGD(trainer.params, lr=lr)  # w <- w - lr g: the gradient shows in the weights
    try:
        trainer.train()
    finally:
        scorer.inner.close()
    trained = [p.detach().clone() for p in model.parameters()]
    (prompts, groups), = engine.seen
    rows = [(p, c.token_ids) for p, group in zip(prompts, groups) for c in group]
    rewards, = scorer.seen
    # the hand computation, on a fresh copy of the starting weights
    hand, _ = load_policy("tiny-random")
    with torch.no_grad():
        for p, w in zip(hand.parameters(), w0):
            p.copy_(w)
    g_old = no_is_gradient_by_hand(hand, rows, rewards, cfg.group_size)
    assert max(float(g.abs().max()) for g in g_old) > 1e-3  # a real gradient, not A = 0 everywhere
    expected = [w.clone() for w in w0]
    gaps = []
    for k in range(mu):
        g = g_old if reuse else no_is_gradient_by_hand(hand, rows, rewards, cfg.group_size)
        if k == 1:  # the gradient at the current (moved) parameters, for the contrast
            g_now = no_is_gradient_by_hand(hand, rows, rewards, cfg.group_size)
            gaps = [float((a - b).abs().max()) for a, b in zip(g_now, g_old)]
        with torch.no_grad():
            for e, p, gk in zip(expected, hand.parameters(), g):
                e -= lr * gk
                p.copy_(e)
    # float32 forward/backward in two layouts (padded micro-batches vs one row at a time) and float64
    # log_softmax here: they agree to ~1e-6 per gradient entry; 3 steps of lr 0.5 keep that under 1e-5
    tol = 1e-5
    for name_value, t, e in zip(model.named_parameters(), trained, expected):
        assert torch.allclose(t, e, atol=tol, rtol=0), name_value[0]
    assert max(gaps) > 100 * tol  # after one step the gradient has moved: a recomputed one would not pass


def informative(problem):  # what odd_prompts_only makes informative (given completions of both parities)
    return len(problem.prompt) % 2 == 1


def test_dynamic_sampling_drop_and_refill(tmp_path):
    problems = Arith("arith", (1,)).problems("train", 50)
    _, rows, trainer = run(GRPO(), tmp_path / "drop", reward=reward_fixtures.odd_prompts_only, steps=3,
                           dynamic_sampling="drop")
    order = prompt_order(len(trainer.problems), 0)
    by_id = {p.id: p for p in problems}
    for t, row in enumerate(rows):
        stream = [p.id for p in step_problems(trainer.problems, order, t, 2)]
        assert row["problem_ids"] == stream  # draw 0 is the shared stream, whatever is dropped
        assert row["ds_draws"] == 1 and row["ds_groups_drawn"] == 2
        assert row["groups_trained"] == 2 - row["ds_groups_dropped"] == len(row["trained_problem_ids"])
        assert row["samples"] == 4 * row["groups_trained"]
        assert all(informative(by_id[i]) for i in row["trained_problem_ids"])
    assert sum(r["ds_groups_dropped"] for r in rows) > 0  # the fixture did make uniform groups
    assert sum(r["groups_trained"] for r in rows) > 0  # and informative ones

    _, rows, trainer = run(GRPO(), tmp_path / "refill", reward=reward_fixtures.odd_prompts_only, steps=3,
                           dynamic_sampling="refill", max_draws=4)
    reserve = reserve_order(len(trainer.problems), 0)
    assert reserve != order
    for t, row in enumerate(rows):
        offered = [p.id for p in step_problems(trainer.problems, order, t, 2)]
        for r in range(1, row["ds_draws"]):  # extra draws come from the reserve stream at fixed places
            offered += [p.id for p in step_problems(trainer.problems, reserve, t * 3 + r - 1, 2)]
        assert set(row["trained_problem_ids"]) <= set(offered)
        assert row["ds_groups_drawn"] == 2 * row["ds_draws"]
        assert row["ds_groups_drawn"] == row["groups_trained"] + row["ds_groups_dropped"] + row["ds_groups_surplus"]
        assert row["groups_trained"] == 2 or row["ds_draws"] == 4  # full, or the cap was reached
        assert all(informative(by_id[i]) for i in row["trained_problem_ids"])
    assert any(r["ds_draws"] > 1 for r in rows)

    # nothing informative at all: the cap stops the draws, nothing trains, nothing moves, nothing breaks
    delta, rows, _ = run(GRPO(), tmp_path / "none", reward=reward_fixtures.always_zero, dynamic_sampling="refill",
                         max_draws=2)
    assert rows[0]["ds_draws"] == 2 and rows[0]["groups_trained"] == 0 and rows[0]["samples"] == 0
    assert all(float(d.abs().max()) == 0 for d in delta.values())


def test_overlong_filter_leaves_truncated_completions_out(tmp_path):
    algo = Recorder()
    _, rows, _ = run(algo, tmp_path, max_new_tokens=6, stop_every=7, overlong_filter=True, overlong_buffer=2)
    row = rows[0]
    assert 0 < row["truncated_frac"] < 1  # some are cut at 6 tokens, some stop earlier
    assert row["overlong_filtered_frac"] == row["truncated_frac"]
    kept = round(8 * (1 - row["truncated_frac"]))
    assert sum(c.rows for c in algo.calls) == kept and {c.n for c in algo.calls} <= {kept}
    assert row["overlong_shaping_mean"] <= -0.5 * row["truncated_frac"]  # a truncated one gets -1


def test_tic_ablation_suite_runs_end_to_end(tmp_path):
    text = (ROOT / "benchmarks" / "tic-ablation.toml").read_text()
    for old, new in (('model = "smollm2-135m-instruct"', 'model = "tiny-random"'), ('engine = "auto"', 'engine = "hf"'),
                     ("seeds = [0, 1, 2]", "seeds = [0]"), ("steps = 12", "steps = 2"), ("group_size = 8", "group_size = 2"),
                     ("prompts_per_step = 4", "prompts_per_step = 2"), ("max_new_tokens = 48", "max_new_tokens = 6"),
                     ("limit = 100", "limit = 2"), ("limit = 20", "limit = 1"), ("max_new_tokens = 192", "max_new_tokens = 6")):
        assert old in text, old
        text = text.replace(old, new)
    suite = tmp_path / "tic-ablation.toml"
    suite.write_text(text)
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    runs = tmp_path / "res" / "tic-ablation" / "runs"
    expected = {
        "grpo": ("token", "two_sided", "group"),
        "grpo_lencorr": ("token", "two_sided", "length_corrected"),
        "grpo_upper_clip": ("token", "upper_only", "group"),
        "traj_ratio": ("trajectory", "two_sided", "group"),
        "tic_grpo": ("trajectory", "upper_only", "length_corrected"),
    }
    for name, (level, clip, adv) in expected.items():
        summary = json.loads((runs / name / "seed0" / "summary.json").read_text())
        o = summary["algorithm"]["options"]
        assert (o["ratio_level"], o["clip"], o["advantage"]) == (level, clip, adv), name
        assert summary["status"] == "finished"
    md = (tmp_path / "res" / "tic-ablation" / "leaderboard.md").read_text()
    assert all(f"| {name} |" in md for name in expected)


@pytest.mark.parametrize("line, match", [
    ("mini_batches = 9", "train.mini_batches: must be between 1 and prompts_per_step * group_size = 8"),
    ('dynamic_sampling = "yes"', "train.dynamic_sampling"),
    ("max_draws = 0", "train.max_draws"),
    ("overlong_buffer = 99", "train.overlong_buffer"),
    ("overlong_penalty = -1.0", "train.overlong_penalty"),
])
def test_bad_trainer_options_are_one_line_errors(tmp_path, capsys, line, match):
    from grpo_bench.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text(f'[suite]\nmodel = "tiny-random"\nengine = "hf"\n[train]\nprompts_per_step = 2\ngroup_size = 4\n'
                     f'{line}\n[eval]\nbenchmarks = [{{ name = "arith", limit = 2 }}]\n[[variants]]\nalgorithm = "grpo"\n')
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r")]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_first_step_matches_the_formula(tmp_path, fused):
    """Both AdamW kernels the trainer can build take the textbook first step: with m = (1 - b1) g and
    v = (1 - b2) g^2 bias-corrected to g and g^2, p <- p (1 - lr wd) - lr g / (|g| + eps)."""
    if fused and not torch.utils._foreach_utils._get_fused_kernels_supported_devices().count("cpu"):
        pytest.skip("this torch has no fused AdamW on CPU")
    model, tok = load_policy("tiny-random")
    bench = Arith("arith", (1,))
    scorer = RewardScorer({"r": reward_fixtures.digit_share})
    lr, wd = 1e-2, 0.1
    cfg = TrainConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=4, learning_rate=lr, mu=1,
                      weight_decay=wd, checkpoint_every=0, bf16_autocast=False, bf16_weights=False,
                      adamw_fused=fused)
    trainer = Trainer(model, tok, HFEngine(model, tok, eos_ids(model, tok)), GRPO(), scorer, bench,
                      bench.problems("train", 50), cfg, seed=0, run_dir=tmp_path)
    scorer.close()
    assert bool(trainer.optimizer.param_groups[0]["fused"]) is fused
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in params]
    grads = [torch.randn(p.shape, generator=gen) * 1e-3 for p in params]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    trainer.optimizer.step()
    eps = trainer.optimizer.param_groups[0]["eps"]
    for p, p0, g in zip(params, before, grads):
        expected = p0 * (1 - lr * wd) - lr * g / (g.abs() + eps)
        assert torch.allclose(p.detach(), expected, atol=1e-6, rtol=1e-5)


def test_token_budget_trains_as_row_micro_batches(tmp_path):
    """Cutting the batch by a token budget (many small micro-batches here) changes only float rounding:
    the same loss and gradient norm as one micro-batch per mini-batch, and more micro-batches ran."""
    algo_a, algo_b = Recorder(), Recorder()
    _, rows_a, _ = run(algo_a, tmp_path / "rows", mu=1, micro_batch_size=64)
    _, rows_b, _ = run(algo_b, tmp_path / "tokens", mu=1, micro_batch_size=64, micro_batch_tokens=40)
    assert len(algo_a.calls) == 1 and len(algo_b.calls) > 2
    assert rows_a[0]["grad_norm"] > 0
    assert abs(rows_a[0]["grad_norm"] - rows_b[0]["grad_norm"]) < 1e-5 * rows_a[0]["grad_norm"]
    assert abs(rows_a[0]["loss"] - rows_b[0]["loss"]) < 1e-6


def test_inert_row_stats_off_skips_only_the_statistics_forward(tmp_path, monkeypatch):
    """Rows whose groups have equal rewards (A = 0 under GRPO) never train; with inert_row_stats = false
    they also skip the no-grad forward that only fed the entropy statistic. The update is bit-identical,
    and fewer forward passes ran."""
    from grpo_bench.training import trainer as trainer_module

    calls = []
    real = trainer_module.completion_logprobs

    def counting(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "completion_logprobs", counting)
    out = {}
    for on in (True, False):
        calls.clear()
        delta, rows, _ = run(GRPO(), tmp_path / str(on), reward=reward_fixtures.odd_prompts_only, mu=2,
                             prompts_per_step=4, inert_row_stats=on)
        out[on] = (delta, rows[0], calls.count(False), calls.count(True))
    (d_on, row_on, nograd_on, grad_on), (d_off, row_off, nograd_off, grad_off) = out[True], out[False]
    assert 0 < row_on["trained_frac"] < 1  # some groups train, some do not
    assert nograd_on > 0 and nograd_off == 0 and grad_on == grad_off
    for k in d_on:
        assert torch.equal(d_on[k], d_off[k]), k
    assert row_on["loss"] == row_off["loss"] and "entropy" in row_off


class EngineReader(GRPO):
    """GRPO that declares it reads the engine's log-probs, and keeps what each batch carried."""

    name = "engine_reader"
    needs = frozenset({"old_logp", "engine_logp"})

    def __init__(self, **options):
        super().__init__(**options)
        self.seen = []

    def loss(self, batch, stats):
        self.seen.append((batch.engine_logp, batch.logp.detach(), batch.mask))
        return super().loss(batch, stats)


def test_declared_engine_logp_reaches_the_loss(tmp_path):
    """Declaring ``engine_logp`` makes the engine report its log-probs and the batch carry them: at theta_old
    (mu = 1, the first pass) the HF engine samples from the same weights the trainer differentiates, so the
    two log-probs agree to float32 rounding on every completion token; without the declaration it is None."""
    algo = EngineReader()
    run(algo, tmp_path / "a")
    assert algo.seen
    for engine_logp, logp, mask in algo.seen:
        assert engine_logp is not None and engine_logp.shape == logp.shape
        assert bool((engine_logp[mask == 0] == 0).all())
        torch.testing.assert_close(engine_logp * mask, logp * mask, atol=1e-4, rtol=0)
    plain = Recorder()
    seen = []
    plain.loss = lambda batch, stats: seen.append(batch.engine_logp) or GRPO.loss(plain, batch, stats)
    run(plain, tmp_path / "b")
    assert seen and all(e is None for e in seen)


@pytest.mark.parametrize("needs,word", [(frozenset({"old_logps"}), "'old_logps'"),
                                        (frozenset({"ref_logp"}), "ref_model")])
def test_a_need_the_trainer_cannot_meet_is_one_error_naming_the_algorithm(tmp_path, needs, word):
    from grpo_bench.errors import UserError

    algo = GRPO()
    algo.needs = needs
    with pytest.raises(UserError) as err:
        run(algo, tmp_path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "'grpo'" in message and word in message, message
