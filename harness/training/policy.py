"""Teacher-forced log-probs of completions under a policy, batched without wasted lm-head work.

Two layouts, the same numbers (up to floating-point rounding):

- full rows: a micro-batch is ``[left-padded prompt | right-padded completion]`` so every
  completion starts at the same column; every row runs its own copy of the prompt;
- shared prompt (``share_prompt``): the G completions of a group share one prompt. The distinct
  prompts of a micro-batch run once (``[K, W]``, keeping their keys and values), the cache is
  expanded to the B rows by index (a differentiable gather, so the gradient through the prompt's
  keys and values is summed over the rows that use them, exactly as with B copies), and the
  completions run on top of it. With G = 8 and 50-token prompts ahead of 30-token completions a
  pass touches P + G*C = 290 tokens per group instead of G*(P + C) = 640.

Only completion positions go through the lm head (``logits_to_keep``). Returned tensors are
``[B, Tc]`` with a mask over real completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SharedPrompts:
    """The distinct prompts of a shared-prompt micro-batch, and which one each row continues."""

    input_ids: torch.Tensor  # [K, W] left-padded
    attention_mask: torch.Tensor  # [K, W]
    position_ids: torch.Tensor  # [K, W]
    rows: torch.Tensor  # [B] index into the K prompts


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, W + Tc] (full rows) or [B, Tc] (shared prompt: completions only)
    attention_mask: torch.Tensor  # [B, W + Tc] in both layouts
    position_ids: torch.Tensor  # [B, W + Tc] or [B, Tc]
    completion_mask: torch.Tensor  # [B, Tc] float
    indices: list[int]  # rows of the rollout batch
    width: int  # W, the prompt width
    shared: SharedPrompts | None = None

    @property
    def num_tokens(self) -> int:
        """Tokens the model actually runs (each shared prompt once)."""
        if self.shared is None:
            return int(self.attention_mask.sum())
        return int(self.shared.attention_mask.sum()) + int(self.completion_mask.sum())

    @property
    def targets(self) -> torch.Tensor:
        """The completion tokens ``[B, Tc]``."""
        return self.input_ids if self.shared is not None else self.input_ids[:, self.width:]


def _left_pad(seqs: list[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, p in enumerate(seqs):
        if p:
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attn[r, width - len(p):] = 1
    return ids, attn


def _right_pad(seqs: list[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, c in enumerate(seqs):
        if c:
            ids[r, :len(c)] = torch.tensor(c, dtype=torch.long)
            attn[r, :len(c)] = 1
    return ids, attn


def build_shared_micro_batch(prompts: list[list[int]], completions: list[list[int]], indices: list[int],
                             pad_id: int) -> MicroBatch:
    """The shared-prompt layout: each distinct prompt once, completions on top of its cache."""
    distinct: dict[tuple[int, ...], int] = {}
    rows = [distinct.setdefault(tuple(prompts[i]), len(distinct)) for i in indices]
    keys = [list(k) for k in distinct]
    width = max(len(k) for k in keys)
    tc = max(1, max(len(completions[i]) for i in indices))
    p_ids, p_attn = _left_pad(keys, width, pad_id)
    p_pos = (p_attn.cumsum(dim=1) - 1).clamp(min=0)
    c_ids, c_attn = _right_pad([completions[i] for i in indices], tc, pad_id)
    row_index = torch.tensor(rows, dtype=torch.long)
    attn = torch.cat([p_attn[row_index], c_attn], dim=1)
    c_pos = p_pos[row_index, -1:] + 1 + torch.arange(tc)
    shared = SharedPrompts(p_ids, p_attn, p_pos, row_index)
    return MicroBatch(c_ids, attn, c_pos, c_attn.float(), list(indices), width, shared)


def build_micro_batch(prompts: list[list[int]], completions: list[list[int]], indices: list[int], pad_id: int) -> MicroBatch:
    width = max(len(prompts[i]) for i in indices)
    tc = max(1, max(len(completions[i]) for i in indices))
    b = len(indices)
    ids = torch.full((b, width + tc), pad_id, dtype=torch.long)
    attn = torch.zeros((b, width + tc), dtype=torch.long)
    cmask = torch.zeros((b, tc))
    for r, i in enumerate(indices):
        p, c = prompts[i], completions[i]
        ids[r, width - len(p):width] = torch.tensor(p, dtype=torch.long)
        attn[r, width - len(p):width] = 1
        if c:
            ids[r, width:width + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[r, width:width + len(c)] = 1
            cmask[r, :len(c)] = 1
    pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
    return MicroBatch(ids, attn, pos, cmask, list(indices), width)


def make_micro_batches(prompts, completions, micro_batch_size: int, pad_id: int,
                       rows: list[int] | None = None, share_prompt: bool = False,
                       max_tokens: int = 0) -> list[MicroBatch]:
    """``rows`` (default: all) in a deterministic order, cut into micro-batches of at most
    ``micro_batch_size`` rows and, when ``max_tokens`` > 0, at most that many padded tokens (a row
    longer than the budget alone still gets a micro-batch of its own).

    Full rows: sorted by total length (little padding). Shared prompt: grouped by prompt (in order
    of first appearance), then by completion length, so a group's rows share micro-batches."""
    rows = range(len(completions)) if rows is None else rows
    if share_prompt:
        first: dict[tuple[int, ...], int] = {}
        for i in sorted(rows):
            first.setdefault(tuple(prompts[i]), i)
        order = sorted(rows, key=lambda i: (first[tuple(prompts[i])], len(completions[i]), i))
        build = build_shared_micro_batch
    else:
        order = sorted(rows, key=lambda i: (len(prompts[i]) + len(completions[i]), i))
        build = build_micro_batch
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < micro_batch_size and (
                max_tokens <= 0 or padded_tokens(prompts, completions, chunks[-1] + [i], share_prompt) <= max_tokens):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return [build(prompts, completions, chunk, pad_id) for chunk in chunks]


def padded_tokens(prompts, completions, indices: list[int], share_prompt: bool) -> int:
    """Positions a micro-batch of ``indices`` runs: rows x (prompt width + completion width), or in
    the shared layout the distinct prompts x their width plus rows x completion width."""
    width = max(len(prompts[i]) for i in indices)
    tc = max(1, max(len(completions[i]) for i in indices))
    if share_prompt:
        return len({tuple(prompts[i]) for i in indices}) * width + len(indices) * tc
    return len(indices) * (width + tc)


def completion_logprobs(model, mb: MicroBatch, with_entropy: bool = False, temperature: float = 1.0):
    """(logp [B, Tc], entropy [B, Tc] or None) of each completion token under ``model``.

    Log-probs are those of the sampling distribution, softmax(logits / temperature), so that the
    importance ratios compare like with like when the suite samples at a temperature other than 1."""
    device = next(model.parameters()).device
    tc = mb.completion_mask.shape[1]
    if mb.shared is None:
        out = model(
            input_ids=mb.input_ids.to(device), attention_mask=mb.attention_mask.to(device),
            position_ids=mb.position_ids.to(device), logits_to_keep=tc + 1, use_cache=False,
        )
        logits = out.logits[:, :-1]  # position W-1+t predicts completion token t
    else:
        sp, rows = mb.shared, mb.shared.rows.to(device)
        head = model(input_ids=sp.input_ids.to(device), attention_mask=sp.attention_mask.to(device),
                     position_ids=sp.position_ids.to(device), use_cache=True, logits_to_keep=1)
        cache = head.past_key_values
        cache.batch_select_indices(rows)  # [K] -> [B] by index: gradients of shared rows add up
        tail = model(input_ids=mb.input_ids.to(device), attention_mask=mb.attention_mask.to(device),
                     position_ids=mb.position_ids.to(device), past_key_values=cache, use_cache=True,
                     logits_to_keep=tc)
        # the prompt's last position predicts completion token 0; completion position t predicts t+1
        logits = torch.cat([head.logits[rows], tail.logits[:, :-1]], dim=1)
    logp, entropy = TokenLogProbs.apply(logits, mb.targets.to(device), float(temperature), with_entropy)
    return logp, (entropy if with_entropy else None)


#: bytes of float32 work per chunk of TokenLogProbs (a few rows of the vocabulary, kept in cache)
CHUNK_BYTES = 4 << 20


class TokenLogProbs(torch.autograd.Function):
    """log softmax(z / T)[y] over the vocabulary, in float32 whatever the logits' dtype, with its
    gradient written in one pass (and the entropy of softmax(z / T) when asked, not differentiated).

    With x = z / T, lse = log sum_v exp(x_v) and p = softmax(x):

        logp_t    = x_t[y_t] - lse_t
        dlogp/dz  = (onehot(y_t) - p_t) / T          so  grad_z = g_t (onehot(y_t) - p_t) / T
        H_t       = lse_t - sum_v p_tv x_tv

    Autograd through ``logsumexp`` and ``gather`` makes about twice the full-vocabulary passes (and an
    fp32 copy of the logits kept for the backward); here the backward recomputes p from the saved logits.
    Both directions work through the token positions a few at a time (``CHUNK_BYTES`` of float32), so
    each position's float32 row is made, used and dropped while it is still in cache: the logits are
    read once per direction and the gradient written once, instead of several passes over a float32
    copy of all of them (for 32 x 48 positions and a 49,152-token vocabulary that copy is 300 MB)."""

    @staticmethod
    def forward(ctx, logits, targets, temperature: float, with_entropy: bool):
        flat, tgt = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1, 1)
        n, rows = flat.shape[0], max(1, CHUNK_BYTES // (4 * logits.shape[-1]))
        lse, logp = torch.empty(n, device=logits.device), torch.empty(n, device=logits.device)
        entropy = torch.zeros(n, device=logits.device)
        for s in range(0, n, rows):
            x = flat[s:s + rows].to(torch.float32, copy=True)
            if temperature != 1.0:
                x.div_(temperature)
            lse_c = torch.logsumexp(x, dim=-1)
            lse[s:s + rows] = lse_c
            logp[s:s + rows] = x.gather(-1, tgt[s:s + rows]).squeeze(-1) - lse_c
            if with_entropy:
                p = torch.exp(x - lse_c.unsqueeze(-1))
                entropy[s:s + rows] = lse_c - (p * x).sum(-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature, ctx.rows = temperature, rows
        logp, entropy = logp.view(targets.shape), entropy.view(targets.shape)
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        logits, targets, lse = ctx.saved_tensors
        t = ctx.temperature
        flat, tgt = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1, 1)
        g = grad_logp.reshape(-1, 1).to(torch.float32)
        grad, rows = torch.empty_like(flat), ctx.rows
        for s in range(0, flat.shape[0], rows):
            x = flat[s:s + rows].to(torch.float32, copy=True)  # the saved logits stay as they are
            if t != 1.0:
                x.div_(t)
            # x becomes -g p, then + g at the target: g (onehot(y) - p), then / T
            x.sub_(lse[s:s + rows].unsqueeze(-1)).exp_().mul_(-g[s:s + rows])
            x.scatter_add_(-1, tgt[s:s + rows], g[s:s + rows])
            if t != 1.0:
                x.div_(t)
            grad[s:s + rows] = x
        return grad.view_as(logits), None, None, None
