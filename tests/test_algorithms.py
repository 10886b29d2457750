"""Loss and gradient of each variant against values computed by hand (float64).

The expected numbers below are worked out in the comments from the formulas in
docs/algorithms.md, not by calling the code under test.
"""

import math

import pytest
import torch
from grpo_bench.algorithm import PolicyBatch, Stats, group_normalize
from grpo_bench.plugins.algorithms.grpo import GRPO
from grpo_bench.plugins.algorithms.grpo_no_is import GRPONoIS
from grpo_bench.plugins.algorithms.tic_grpo import TICGRPO

D = torch.float64


def batch(log_ratios, mask, adv, old=None, ref=None):
    old = torch.full_like(torch.tensor(log_ratios, dtype=D), -1.0) if old is None else old
    logp = (old + torch.tensor(log_ratios, dtype=D)).clone().requires_grad_(True)
    m = torch.tensor(mask, dtype=D)
    return PolicyBatch(logp, old, m, torch.tensor(adv, dtype=D), len(adv), ref), logp


L15, L05, L11, L2 = math.log(1.5), math.log(0.5), math.log(1.1), math.log(2.0)


def test_grpo_loss_and_gradient_by_hand():
    # seq0: ratios 1.5, 0.5, 1.1 with A = +1 -> s = min(rho, clip(rho, .8, 1.2)) = 1.2, 0.5, 1.1
    #       ds/dlogp = 0 (clipped branch), 0.5, 1.1
    # seq1: ratios 1.5, 0.5, (pad) with A = -1 -> s = min(-rho, -clip) = -1.5, -0.8; ds/dlogp = -1.5, 0
    # loss = -(1/2) [ (1.2 + 0.5 + 1.1)/3 + (-1.5 - 0.8)/2 ] = -(1/2)(0.9333.. - 1.15) = 0.108333..
    b, logp = batch([[L15, L05, L11], [L15, L05, 7.0]], [[1, 1, 1], [1, 1, 0]], [1.0, -1.0])
    stats = Stats()
    loss = GRPO().loss(b, stats)
    assert loss.item() == pytest.approx(0.1083333333333333, abs=1e-12)
    loss.backward()
    expected = [[0.0, -0.5 / 6, -1.1 / 6], [1.5 / 4, 0.0, 0.0]]
    assert torch.allclose(logp.grad, torch.tensor(expected, dtype=D), atol=1e-12)
    # clipped branch active on seq0 token0 (ratio above 1.2, A > 0) and seq1 token1 (below 0.8, A < 0): 2 of 5
    assert stats.result()["clip_frac"] == pytest.approx(0.4)
    assert stats.result()["ratio_token_max"] == pytest.approx(1.5)


def test_grpo_asymmetric_clip_by_hand():
    # eps_low = 0.1, eps_high = 0.3: ratio 1.25 with A = +2 stays unclipped (1.25 < 1.3): s = 2.5, ds = 2.5
    # ratio 0.85 with A = -2 stays unclipped (0.85 > 0.9? no: 0.85 < 0.9 -> clipped): s = min(-1.7, -1.8) = -1.8, ds = 0
    b, logp = batch([[math.log(1.25)], [math.log(0.85)]], [[1], [1]], [2.0, -2.0])
    loss = GRPO(eps_low=0.1, eps_high=0.3).loss(b, Stats())
    assert loss.item() == pytest.approx(-(2.5 - 1.8) / 2, abs=1e-12)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-2.5 / 2], [0.0]], dtype=D), atol=1e-12)


def test_kl_term_by_hand():
    # ref - logp = ln 2 on every token: k3 = 2 - ln 2 - 1 = 0.306853; its mean over tokens and sequences is
    # the same number; d k3 / d logp = 1 - exp(ref - logp) = -1 per token, scaled by beta / (N |o_i|)
    b, logp = batch([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[1, 1, 1], [1, 1, 0]], [0.0, 0.0])
    b.ref_logp = b.logp.detach() + L2
    stats = Stats()
    loss = GRPO(beta=0.1).loss(b, stats)
    assert loss.item() == pytest.approx(0.1 * (1 - L2), abs=1e-12)
    loss.backward()
    expected = [[-0.1 / 6] * 3, [-0.1 / 4, -0.1 / 4, 0.0]]
    assert torch.allclose(logp.grad, torch.tensor(expected, dtype=D), atol=1e-12)
    assert stats.result()["kl"] == pytest.approx(1 - L2)


def test_no_is_loss_and_gradient_by_hand():
    # loss = -(1/N) sum_i (1/|o_i|) sum_t A_i logp; with logp = old = -1 everywhere:
    # = -(1/2) [ 1 * (-1) + (-0.5) * (-1) ] = 0.25; d/dlogp = -A_i / (N |o_i|) = -1/6 (seq0), +0.125 (seq1)
    b, logp = batch([[0.0, 0.0, 0.0], [0.0, 0.0, 9.0]], [[1, 1, 1], [1, 1, 0]], [1.0, -0.5])
    b.logp = b.old_logp.clone().requires_grad_(True)
    loss = GRPONoIS().loss(b, Stats())
    assert loss.item() == pytest.approx(0.25, abs=1e-12)
    loss.backward()
    expected = [[-1 / 6] * 3, [0.125, 0.125, 0.0]]
    assert torch.allclose(b.logp.grad, torch.tensor(expected, dtype=D), atol=1e-12)


def test_tic_grpo_loss_and_gradient_by_hand():
    # w_i = prod of token ratios over unmasked tokens; dS/dlogp_t = w A when the unclipped branch is the min
    # seq0: w = 1.5 * 0.5 * 1.1 = 0.825, A = +1:  S = min(0.825, 0.825) = 0.825, grad 0.825 per token
    # seq1: w = 1.5 * 0.5 = 0.75 (third token masked), A = -1: S = -0.75, grad -0.75 per token
    # seq2: w = 2, A = +0.5: S = min(1.0, 1.2 * 0.5) = 0.6 (clipped), grad 0
    # seq3: w = 2, A = -0.5: S = min(-1.0, -0.6) = -1.0 (unclipped), grad -1.0 per token
    # loss = -(0.825 - 0.75 + 0.6 - 1.0) / 4 = 0.08125; d loss / d logp = -grad / 4
    lr = [[L15, L05, L11], [L15, L05, 5.0], [L2, 0.0, 0.0], [L2, 0.0, 0.0]]
    mask = [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]]
    b, logp = batch(lr, mask, [1.0, -1.0, 0.5, -0.5])
    stats = Stats()
    loss = TICGRPO().loss(b, stats)
    assert loss.item() == pytest.approx(0.08125, abs=1e-12)
    loss.backward()
    expected = [[-0.825 / 4] * 3, [0.75 / 4, 0.75 / 4, 0.0], [0.0] * 3, [0.25, 0.0, 0.0]]
    assert torch.allclose(logp.grad, torch.tensor(expected, dtype=D), atol=1e-12)
    assert stats.result()["clip_frac"] == pytest.approx(0.25)


def test_tic_grpo_overflow_guard():
    # log w = 1000 would overflow exp; it is capped at max_log_ratio = 20, and gives no gradient
    b, logp = batch([[500.0, 500.0], [0.0, 0.0]], [[1, 1], [1, 1]], [-1.0, 1.0])
    stats = Stats()
    loss = TICGRPO().loss(b, stats)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-(-math.exp(20.0) + 1.0) / 2, rel=1e-12)
    loss.backward()
    assert torch.all(logp.grad[0] == 0)
    assert torch.allclose(logp.grad[1], torch.tensor([-0.5, -0.5], dtype=D))
    assert stats.result()["ratio_capped_frac"] == pytest.approx(0.5)


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=D)
    # mean 0.5; unbiased std sqrt(4 * 0.25 / 3) = 0.577350..; population std 0.5
    a = group_normalize(r, 1e-4, "unbiased")
    assert a[0, 0].item() == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-4))
    assert a[0, 1].item() == pytest.approx(-0.5 / (math.sqrt(1 / 3) + 1e-4))
    p = group_normalize(r, 1e-4, "population")
    assert p[0, 0].item() == pytest.approx(0.5 / 0.5001)
    # identical rewards: zero advantage, no division by zero
    assert torch.all(group_normalize(torch.ones(1, 4, dtype=D), 1e-4) == 0)


def test_tic_length_corrected_advantages_by_hand():
    # r / |o| = 1/2, 1/4, 0, 0: mean 0.1875; deviations .3125 .0625 -.1875 -.1875;
    # unbiased variance (0.09765625 + 0.00390625 + 2 * 0.03515625) / 3 = 0.0572916..
    r = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=D)
    lengths = torch.tensor([[2.0, 4.0, 1.0, 1.0]], dtype=D)
    sd = math.sqrt(0.171875 / 3)
    a = TICGRPO().advantages(r, lengths)
    assert a[0].tolist() == pytest.approx([d / (sd + 1e-4) for d in (0.3125, 0.0625, -0.1875, -0.1875)])
    plain = TICGRPO(advantage="group").advantages(r, lengths)
    assert plain[0].tolist() == pytest.approx(GRPO().advantages(r, lengths)[0].tolist())


def test_tic_one_token_equals_token_grpo_with_upper_only_clip():
    # with one token per completion and no length correction, TIC-GRPO is token-level GRPO whose lower
    # clip never binds (eps_low = 1 puts it at 0 < rho)
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(3, 4, generator=g, dtype=D)
    lengths = torch.ones(3, 4, dtype=D)
    tic, grpo = TICGRPO(advantage="group", eps_high=0.25), GRPO(eps_low=1.0, eps_high=0.25)
    adv = tic.advantages(rewards, lengths).reshape(-1)
    assert torch.allclose(adv, grpo.advantages(rewards, lengths).reshape(-1))
    lr = (torch.rand(12, 1, generator=g, dtype=D) - 0.5) * 1.5
    grads = []
    for algo in (tic, grpo):
        b, logp = batch(lr.tolist(), [[1]] * 12, adv.tolist())
        loss = algo.loss(b, Stats())
        loss.backward()
        grads.append((loss.item(), logp.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-12)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-12)


def test_unknown_and_mistyped_options_are_rejected():
    from grpo_bench.errors import UserError

    with pytest.raises(UserError, match="unknown option 'eps'"):
        GRPO(eps=0.1)
    with pytest.raises(UserError, match="must be str"):
        TICGRPO(clip=True)
    with pytest.raises(UserError, match="'std'"):
        GRPO(std="sample")
