"""The algorithm zoo (gspo, dr_grpo, dapo, bnpo, cispo) and the shared options, against values worked by hand.

Every expected number is derived in the comments from the formulas in docs/algorithms.md (float64),
never by calling the code under test; the identities at the end compare two different formulas.
"""

import math

import pytest
import torch
from grpo_bench.algorithm import PolicyBatch, Stats
from grpo_bench.errors import UserError
from grpo_bench.plugins.algorithms.bnpo import BNPO
from grpo_bench.plugins.algorithms.cispo import CISPO
from grpo_bench.plugins.algorithms.dapo import DAPO
from grpo_bench.plugins.algorithms.dr_grpo import DrGRPO
from grpo_bench.plugins.algorithms.grpo import GRPO
from grpo_bench.plugins.algorithms.grpo_no_is import GRPONoIS
from grpo_bench.plugins.algorithms.gspo import GSPO
from grpo_bench.plugins.algorithms.tic_grpo import TICGRPO
from grpo_bench.registry import default_registry

D = torch.float64
L = math.log


def batch(log_ratios, mask, adv, num_tokens=0, max_new_tokens=0, old=-1.0):
    lr = torch.tensor(log_ratios, dtype=D)
    old_t = torch.full_like(lr, old)
    logp = (old_t + lr).clone().requires_grad_(True)
    return PolicyBatch(logp, old_t, torch.tensor(mask, dtype=D), torch.tensor(adv, dtype=D), len(adv),
                       num_tokens=num_tokens, max_new_tokens=max_new_tokens), logp


def close(t, expected):
    return torch.allclose(t, torch.tensor(expected, dtype=D), atol=1e-12)


def loss_and_grad(algo, b, logp):
    stats = Stats()
    loss = algo.loss(b, stats)
    loss.backward()
    return loss.item(), logp.grad, stats.result()


def test_gspo_sequence_ratio_by_hand():
    # eps_low 0.1, eps_high 0.2 (readable numbers; the paper's defaults are checked below). s = exp(mean_t log-ratio)
    # seq0: log-ratios ln 2, 0        -> s = sqrt 2 = 1.414 > 1.2, A = +1: S = 1.2 (clipped), no gradient
    # seq1: ln 1.1, ln 1.1            -> s = 1.1, A = -1: S = -1.1; dS/dlogp_t = A s / |o| = -0.55
    # seq2: ln 0.25, 0                -> s = 0.5 < 0.9, A = -2: min(-1.0, -1.8) = -1.8 (clipped), no gradient
    # seq3: ln 0.64, 0                -> s = 0.8, A = +0.5: min(0.4, 0.45) = 0.4; dS/dlogp_t = 0.5 * 0.8 / 2 = 0.2
    # loss = -(1.2 - 1.1 - 1.8 + 0.4) / 4 = 0.325; d loss / d logp = -(dS/dlogp) / 4
    lr = [[L(2), 0.0, 0.0], [L(1.1), L(1.1), 9.0], [L(0.25), 0.0, 0.0], [L(0.64), 0.0, 0.0]]
    mask = [[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0]]
    b, logp = batch(lr, mask, [1.0, -1.0, -2.0, 0.5])
    loss, grad, stats = loss_and_grad(GSPO(eps_low=0.1, eps_high=0.2), b, logp)
    assert loss == pytest.approx(0.325, abs=1e-12)
    expected = [[0, 0, 0], [0.1375, 0.1375, 0], [0, 0, 0], [-0.05, -0.05, 0]]
    assert torch.allclose(grad, torch.tensor(expected, dtype=D), atol=1e-12)
    assert stats["clip_frac"] == pytest.approx(0.5)  # seq0 and seq2, counted per sequence


def test_gspo_paper_defaults_clip_at_3e4_and_4e4():
    algo = GSPO()
    assert (algo.options.eps_low, algo.options.eps_high, algo.options.ratio_level) == (3e-4, 4e-4, "sequence")
    # one sequence of two tokens: mean log-ratio 5e-4 -> s = e^{5e-4} = 1.0005 > 1.0004 with A > 0: clipped, no gradient
    b, logp = batch([[1e-3, 0.0]], [[1, 1]], [1.0])
    _, grad, _ = loss_and_grad(algo, b, logp)
    assert torch.all(grad == 0)
    # mean log-ratio 3.5e-4 -> 1.00035 inside: gradient A s / |o| = e^{3.5e-4} / 2 per token, negated (N = 1)
    b, logp = batch([[7e-4, 0.0]], [[1, 1]], [1.0])
    _, grad, _ = loss_and_grad(algo, b, logp)
    assert close(grad, [[-math.exp(3.5e-4) / 2] * 2])
    # below: mean -3.5e-4 with A < 0 is inside (0.99965 > 0.9997? no: 1 - 3e-4 = 0.9997 > 0.99965 -> clipped)
    b, logp = batch([[-7e-4, 0.0]], [[1, 1]], [-1.0])
    _, grad, _ = loss_and_grad(algo, b, logp)
    assert torch.all(grad == 0)


def test_dr_grpo_constant_normaliser_and_mean_only_advantage_by_hand():
    # advantages: r - group mean, no std: [1, 0, 0, 1] -> [.5, -.5, -.5, .5]; [2, 2] -> [0, 0]
    algo = DrGRPO().bind(group_size=2, max_new_tokens=4)
    a = algo.advantages(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=D), torch.ones(3, 2, dtype=D))
    assert a.tolist() == [[0.5, -0.5], [-0.5, 0.5], [0.0, 0.0]]
    # loss: token terms as grpo's hand test (ratios 1.5, .5, 1.1 with A = +1 -> 1.2, .5, 1.1, grads 0, .5, 1.1;
    # ratios 1.5, .5 with A = -1 -> -1.5, -.8, grads -1.5, 0), summed (0.5) and divided by N L = 2 * 4
    b, logp = batch([[L(1.5), L(0.5), L(1.1)], [L(1.5), L(0.5), 7.0]], [[1, 1, 1], [1, 1, 0]], [1.0, -1.0])
    loss, grad, _ = loss_and_grad(algo, b, logp)
    assert loss == pytest.approx(-0.5 / 8, abs=1e-12)
    assert torch.allclose(grad, torch.tensor([[0, -0.5 / 8, -1.1 / 8], [1.5 / 8, 0, 0]], dtype=D), atol=1e-12)
    # the batch's own budget wins over the bound one; no budget at all is a clear error
    b, logp = batch([[L(1.1)]], [[1]], [1.0], max_new_tokens=10)
    loss, _, _ = loss_and_grad(algo, b, logp)
    assert loss == pytest.approx(-1.1 / 10, abs=1e-12)
    b, logp = batch([[0.0]], [[1]], [1.0])
    with pytest.raises(UserError, match="generation budget"):
        DrGRPO().loss(b, Stats())


def test_dapo_clip_higher_and_token_mean_by_hand():
    # eps 0.2 / 0.28. seq0 A = +1: ratios 1.25 (< 1.28, unclipped), .5, 1.1 -> s = 1.25, .5, 1.1, grads the same
    # seq1 A = -1: ratio 1.3 -> min(-1.3, -1.28) = -1.3, grad -1.3; ratio .7 < .8 -> min(-.7, -.8) = -.8, grad 0
    # sum = 0.75 over 5 tokens: loss = -0.15; d loss / d logp = -grad / 5
    lr = [[L(1.25), L(0.5), L(1.1)], [L(1.3), L(0.7), 3.0]]
    mask = [[1, 1, 1], [1, 1, 0]]
    b, logp = batch(lr, mask, [1.0, -1.0], num_tokens=5)
    loss, grad, stats = loss_and_grad(DAPO(), b, logp)
    assert loss == pytest.approx(-0.15, abs=1e-12)
    assert torch.allclose(grad, torch.tensor([[-0.25, -0.1, -0.22], [0.26, 0, 0]], dtype=D), atol=1e-12)
    assert stats["clip_frac"] == pytest.approx(0.2)
    # the same rows as two micro-batches of a 5-token batch add up to the whole
    parts = []
    for r in (0, 1):
        b, logp = batch([lr[r]], [mask[r]], [[1.0, -1.0][r]], num_tokens=5)
        parts.append(DAPO().loss(b, Stats()).item())
    assert sum(parts) == pytest.approx(-0.15, abs=1e-12)
    # bnpo: the same token mean with grpo's symmetric clip: 1.25 is now clipped at 1.2 (grad 0), the rest as above
    b, logp = batch(lr, mask, [1.0, -1.0], num_tokens=5)
    loss, grad, _ = loss_and_grad(BNPO(), b, logp)
    assert loss == pytest.approx(-(1.2 + 0.5 + 1.1 - 1.3 - 0.8) / 5, abs=1e-12)
    assert torch.allclose(grad, torch.tensor([[0, -0.1, -0.22], [0.26, 0, 0]], dtype=D), atol=1e-12)


def test_cispo_detached_clipped_weight_by_hand():
    # old = -1, so logp = -1 + log-ratio. w = sg(min(rho, 1.28)): 1.5 -> 1.28, .5 -> .5 (no lower bound), 1.1 -> 1.1
    # loss = -(1/3) [1.28 * 1 * (-1 + ln 1.5) + .5 * 1 * (-1 + ln .5) + 1.1 * (-2) * (-1 + ln 1.1)]
    # d loss / d logp = -w A / 3 (the weight is detached, so no d w / d logp term)
    b, logp = batch([[L(1.5), L(0.5)], [L(1.1), 4.0]], [[1, 1], [1, 0]], [1.0, -2.0], num_tokens=3)
    loss, grad, stats = loss_and_grad(CISPO(), b, logp)
    by_hand = -(1.28 * (-1 + L(1.5)) + 0.5 * (-1 + L(0.5)) - 2.2 * (-1 + L(1.1))) / 3
    assert loss == pytest.approx(by_hand, abs=1e-12)
    assert torch.allclose(grad, torch.tensor([[-1.28 / 3, -0.5 / 3], [2.2 / 3, 0]], dtype=D), atol=1e-12)
    assert stats["clip_frac"] == pytest.approx(1 / 3)
    # two-sided: the weight .5 is raised to 1 - 0.2 = .8
    b, logp = batch([[L(1.5), L(0.5)], [L(1.1), 4.0]], [[1, 1], [1, 0]], [1.0, -2.0], num_tokens=3)
    _, grad, _ = loss_and_grad(CISPO(clip="two_sided"), b, logp)
    assert torch.allclose(grad, torch.tensor([[-1.28 / 3, -0.8 / 3], [2.2 / 3, 0]], dtype=D), atol=1e-12)
    with pytest.raises(UserError, match="dual_clip"):
        CISPO(dual_clip=3.0)


def test_clip_forms_by_hand():
    # one token each, N = 2: (ratio .5, A = -1) and (ratio 1.5, A = +1)
    lr, mask, adv = [[L(0.5)], [L(1.5)]], [[1], [1]], [-1.0, 1.0]
    # two_sided: min(-.5, -.8) = -.8 (grad 0); min(1.5, 1.2) = 1.2 (grad 0)
    b, logp = batch(lr, mask, adv)
    loss, grad, _ = loss_and_grad(GRPO(), b, logp)
    assert loss == pytest.approx(-(-0.8 + 1.2) / 2) and torch.all(grad == 0)
    # upper_only: no lower clip: -.5 (grad -.5); 1.2 (grad 0). loss = -(0.7)/2
    b, logp = batch(lr, mask, adv)
    loss, grad, _ = loss_and_grad(GRPO(clip="upper_only"), b, logp)
    assert loss == pytest.approx(-0.35, abs=1e-12)
    assert close(grad, [[0.25], [0.0]])
    # none: -.5 and 1.5, grads -.5 and 1.5 -> d loss = .25, -.75
    b, logp = batch(lr, mask, adv)
    loss, grad, _ = loss_and_grad(GRPO(clip="none"), b, logp)
    assert loss == pytest.approx(-0.5, abs=1e-12)
    assert close(grad, [[0.25], [-0.75]])


def test_dual_clip_bounds_negative_advantage_by_hand():
    # A = -1: ratio 5 -> min(-5, -1.2) = -5, below the floor c A = -3 -> S = -3, no gradient
    #         ratio 2 -> min(-2, -1.2) = -2 above the floor -> S = -2, grad -2
    # loss = -(-3 - 2)/2 = 2.5; d loss / d logp = [0, 1]
    b, logp = batch([[L(5)], [L(2)]], [[1], [1]], [-1.0, -1.0])
    loss, grad, stats = loss_and_grad(GRPO(dual_clip=3.0), b, logp)
    assert loss == pytest.approx(2.5, abs=1e-12)
    assert close(grad, [[0.0], [1.0]])
    assert stats["dual_clip_frac"] == pytest.approx(0.5)
    # unbounded (the default): S = -5 and -2, grads -5 and -2
    b, logp = batch([[L(5)], [L(2)]], [[1], [1]], [-1.0, -1.0])
    loss, grad, _ = loss_and_grad(GRPO(), b, logp)
    assert loss == pytest.approx(3.5, abs=1e-12)
    assert close(grad, [[2.5], [1.0]])
    # TIC with a dual clip: trajectory w = 2 * 2.5 = 5, A = -1 -> floor -3 binds, no gradient
    b, logp = batch([[L(2), L(2.5)]], [[1, 1]], [-1.0])
    loss, grad, _ = loss_and_grad(TICGRPO(dual_clip=3.0), b, logp)
    assert loss == pytest.approx(3.0, abs=1e-12) and torch.all(grad == 0)
    with pytest.raises(UserError, match="dual_clip"):
        GRPO(dual_clip=0.5)


def test_advantage_forms_by_hand():
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=D)
    n = torch.tensor([[2.0, 4.0], [1.0, 1.0]], dtype=D)
    # group_mean: group means .5 and 1 -> [.5, -.5], [0, 0]
    assert GRPO(advantage="group_mean").advantages(r, n).tolist() == [[0.5, -0.5], [0.0, 0.0]]
    # batch_std: the same centred values over the std of all rewards [1, 0, 1, 1]: mean .75, unbiased
    # variance (.0625 + .5625 + .0625 + .0625) / 3 = .25 -> std .5; population: .75 / 4 = .1875
    a = GRPO(advantage="batch_std").advantages(r, n)
    assert close(a, [[0.5 / 0.5001, -0.5 / 0.5001], [0.0, 0.0]])
    p = GRPO(advantage="batch_std", std="population").advantages(r, n)
    assert p[0, 0].item() == pytest.approx(0.5 / (math.sqrt(0.1875) + 1e-4))
    # length_corrected: r/|o| = [.5, 0]: mean .25, unbiased std sqrt(2 * .0625) = .353553
    lc = GRPO(advantage="length_corrected").advantages(r, n)
    assert lc[0].tolist() == pytest.approx([0.25 / (math.sqrt(0.125) + 1e-4), -0.25 / (math.sqrt(0.125) + 1e-4)])
    assert lc[1].tolist() == [0.0, 0.0]


def test_trajectory_level_grpo_is_tic_with_plain_advantages():
    # grpo with ratio_level = trajectory and clip = upper_only is the TIC surrogate (an independent hand case is in
    # test_algorithms.py); two_sided adds the lower clip: w = .75 < .8 with A = -1 -> -.8 (no gradient)
    b, logp = batch([[L(1.5), L(0.5)]], [[1, 1]], [-1.0])
    loss, grad, _ = loss_and_grad(GRPO(ratio_level="trajectory"), b, logp)
    assert loss == pytest.approx(0.8, abs=1e-12) and torch.all(grad == 0)
    b, logp = batch([[L(1.5), L(0.5)]], [[1, 1]], [-1.0])
    loss, grad, _ = loss_and_grad(TICGRPO(), b, logp)
    assert loss == pytest.approx(0.75, abs=1e-12)
    assert close(grad, [[0.75, 0.75]])


def test_gspo_with_one_token_completions_equals_grpo():
    g = torch.Generator().manual_seed(3)
    lr = ((torch.rand(10, 1, generator=g, dtype=D) - 0.5) * 1e-3).tolist()  # around the 3e-4 / 4e-4 clip
    adv = (torch.rand(10, generator=g, dtype=D) - 0.5).tolist()
    out = []
    for algo in (GSPO(), GRPO(eps_low=3e-4, eps_high=4e-4)):
        b, logp = batch(lr, [[1]] * 10, adv)
        loss, grad, stats = loss_and_grad(algo, b, logp)
        out.append((loss, grad.clone(), stats["clip_frac"]))
    assert 0 < out[0][2] < 1  # some clipped, some not: the identity covers both branches
    assert out[0][0] == pytest.approx(out[1][0], abs=1e-15)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-15)


#: every registered algorithm that takes importance ratios (its class says ``ratio_based = True``): a new
#: variant is covered by the identity below without editing this file
RATIO_BASED = [n for n in default_registry().names("algorithms") if default_registry().get("algorithms", n).ratio_based]


def test_the_built_in_variants_are_registered():
    assert set(default_registry().names("algorithms")) >= {"grpo_no_is", *RATIO_BASED}
    # the built-ins that compare ratios, as the papers define them (grpo_no_is never takes a ratio)
    assert set(RATIO_BASED) >= {"bnpo", "cispo", "dapo", "dr_grpo", "grpo", "gspo", "tic_grpo"}
    assert "grpo_no_is" not in RATIO_BASED


@pytest.mark.parametrize("name", RATIO_BASED)
def test_every_ratio_variant_is_the_no_is_gradient_at_the_old_policy(name):
    # at theta = theta_old every ratio is 1, nothing is clipped, and d ratio / d logp is 1 per token (token),
    # 1/|o_i| (sequence: the mean) or 1 for every token of the sequence (trajectory: the sum). So the gradient
    # is the no-IS gradient of -aggregate(A logp) with the same aggregation, each sequence's tokens scaled by
    # |o_i| at trajectory level (TIC weighs the summed log-probability, sum_t logp, not its mean).
    algo = default_registry().get("algorithms", name)().bind(group_size=2, max_new_tokens=6)
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(4, 5, generator=g, dtype=D) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=D)
    adv = torch.tensor([0.7, -0.7, 1.3, -0.4], dtype=D)
    logp = old.clone().requires_grad_(True)
    pb = PolicyBatch(logp, old, mask, adv, 4, num_tokens=11)
    algo.loss(pb, Stats()).backward()
    # the no-IS gradient worked out directly: d/dlogp of -aggregate(A logp)
    o = algo.options
    if o.aggregation == "seq_mean":
        per_token = adv[:, None] / mask.sum(1, keepdim=True) / 4
    elif o.aggregation == "token_mean":
        per_token = adv[:, None].expand(4, 5) / 11
    else:
        per_token = adv[:, None].expand(4, 5) / (4 * 6)
    if getattr(o, "ratio_level", "token") == "trajectory":
        per_token = per_token * mask.sum(1, keepdim=True)
    assert torch.allclose(logp.grad, -per_token * mask, atol=1e-14), name
    # and grpo_no_is with the same aggregation gives the token/sequence-level gradient
    if getattr(o, "ratio_level", "token") != "trajectory":
        nois = GRPONoIS(aggregation=o.aggregation).bind(group_size=2, max_new_tokens=6)
        lp2 = old.clone().requires_grad_(True)
        nois.loss(PolicyBatch(lp2, old, mask, adv, 4, num_tokens=11), Stats()).backward()
        assert torch.allclose(logp.grad, lp2.grad, atol=1e-14), name


def test_every_variant_records_the_shared_options_and_rejects_bad_choices():
    reg = default_registry()
    for name in RATIO_BASED + ["grpo_no_is"]:
        opts = reg.get("algorithms", name)().config()["options"]
        for key in ("advantage", "aggregation", "std", "delta", "beta"):
            assert key in opts, (name, key)
        if name != "grpo_no_is":
            for key in ("ratio_level", "clip", "eps_low", "eps_high", "dual_clip", "max_log_ratio"):
                assert key in opts, (name, key)
    assert GRPONoIS().config()["options"]["reuse_gradient"] is True
    for bad, match in ((dict(ratio_level="tok"), "ratio_level"), (dict(clip="lower"), "'clip'"),
                       (dict(advantage="z"), "'advantage'"), (dict(aggregation="sum"), "'aggregation'")):
        with pytest.raises(UserError, match=match):
            GRPO(**bad)
