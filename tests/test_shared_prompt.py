"""The shared-prompt layout computes what the full-rows layout computes (an independent computation:
every row runs its own copy of the prompt), log-probs and gradients, on the tiny model in float64.

``completion_logprobs`` takes the softmax in float32 (``.float()`` on the logits), so the gradients
agree to float32 rounding of the summation order (relative 1e-5 of each tensor's scale), not 1e-12."""

import pytest
import torch
from grpo_bench.models import load_policy
from grpo_bench.training.policy import completion_logprobs, make_micro_batches


@pytest.fixture(scope="module")
def model_and_batch():
    model, tok = load_policy("tiny-random", "float32", "cpu")
    model = model.double()
    g = torch.Generator().manual_seed(0)
    prompts, completions = [], []
    for n in (9, 5, 12):  # three groups with prompts of different lengths, G = 4, ragged completions
        p = torch.randint(5, 60, (n,), generator=g).tolist()
        for _ in range(4):
            prompts.append(p)
            completions.append(torch.randint(5, 60, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g).tolist())
    completions[5] = []  # an empty completion (EOS-less, length 0) must not break either layout
    return model, tok.pad_token_id, prompts, completions


def per_row(model, prompts, completions, pad, share, mbs_size):
    """{row: log-probs} and the gradient of sum_i sum_t w_t logp_{i,t} (a weighting that uses every token)."""
    model.zero_grad()
    out = {}
    for mb in make_micro_batches(prompts, completions, mbs_size, pad, None, share):
        logp, _ = completion_logprobs(model, mb, False, 0.7)
        w = torch.arange(1, logp.shape[1] + 1, dtype=logp.dtype)
        (logp * mb.completion_mask.to(logp.dtype) * w).sum().backward()
        for r, i in enumerate(mb.indices):
            out[i] = logp[r, :len(completions[i])].detach()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mbs_size", [3, 4, 12])  # groups split across micro-batches, one group each, all at once
def test_shared_prompt_equals_full_rows(model_and_batch, mbs_size):
    model, pad, prompts, completions = model_and_batch
    ref, g_ref = per_row(model, prompts, completions, pad, False, 5)
    new, g_new = per_row(model, prompts, completions, pad, True, mbs_size)
    assert set(new) == set(ref) == set(range(len(completions)))
    for i in ref:
        assert torch.allclose(new[i], ref[i], atol=1e-10), i
    for name in g_ref:
        scale = float(g_ref[name].abs().max())
        assert torch.allclose(g_new[name], g_ref[name], rtol=0, atol=1e-5 * scale + 1e-12), name
    assert any(g.abs().sum() > 0 for g in g_ref.values())


def test_shared_prompt_runs_each_prompt_once(model_and_batch):
    model, pad, prompts, completions = model_and_batch
    full = sum(mb.num_tokens for mb in make_micro_batches(prompts, completions, 4, pad))
    shared = make_micro_batches(prompts, completions, 4, pad, None, True)
    assert [len(mb.shared.input_ids) for mb in shared] == [1, 1, 1]  # one group per micro-batch of 4
    assert sum(mb.num_tokens for mb in shared) == (9 + 5 + 12) + sum(map(len, completions))
    assert full == 4 * (9 + 5 + 12) + sum(map(len, completions))


def test_token_budget_cuts_micro_batches():
    """Worked by hand. Full rows (prompt width 3, completions 1..4 tokens, sorted by length), budget 12:
    [r0, r1] is 2 x (3 + 2) = 10; adding r2 makes 3 x 6 = 18, so r2 starts anew (6); r2 + r3 = 2 x 7 = 14 > 12."""
    prompts = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]]
    completions = [[5], [5, 5], [5, 5, 5], [5, 5, 5, 5]]
    cut = lambda **kw: [mb.indices for mb in make_micro_batches(prompts, completions, pad_id=0, **kw)]
    assert cut(micro_batch_size=8, max_tokens=12) == [[0, 1], [2], [3]]
    assert cut(micro_batch_size=8) == [[0, 1, 2, 3]]
    assert cut(micro_batch_size=8, max_tokens=2) == [[0], [1], [2], [3]]  # a row over budget still runs alone
    assert cut(micro_batch_size=1, max_tokens=100) == [[0], [1], [2], [3]]
    # shared prompt: rows 0-3 continue prompt A (5 tokens), rows 4-5 prompt B (2 tokens); order A by
    # completion length (r3, r0, r1, r2), then B (r5, r4). Budget 14: A + 3 rows of <= 2 tokens = 5 + 6 = 11;
    # adding r2 (3 tokens): 5 + 4 x 3 = 17. [r2] = 8; adding r5 brings prompt B: 2 x 5 + 2 x 3 = 16.
    # [r5, r4] = 2 + 2 x 4 = 10.
    a, b = [9, 9, 9, 9, 9], [8, 8]
    prompts = [a, a, a, a, b, b]
    completions = [[1, 1], [1, 1], [1, 1, 1], [1], [1, 1, 1, 1], [1]]
    mbs = make_micro_batches(prompts, completions, 8, 0, None, True, 14)
    assert [mb.indices for mb in mbs] == [[3, 0, 1], [2], [5, 4]]
    assert [mb.num_tokens for mb in mbs] == [5 + 5, 5 + 3, 2 + 5]  # real tokens: each prompt once
