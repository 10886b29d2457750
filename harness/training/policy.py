"""Teacher-forced log-probs of completions under a policy, batched without wasted lm-head work.

A micro-batch is laid out as ``[left-padded prompt | right-padded completion]`` so every
completion starts at the same column; only the completion positions go through the lm head
(``logits_to_keep``). Returned tensors are ``[B, Tc]`` with a mask over real completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, W + Tc]
    attention_mask: torch.Tensor  # [B, W + Tc]
    position_ids: torch.Tensor  # [B, W + Tc]
    completion_mask: torch.Tensor  # [B, Tc] float
    indices: list[int]  # rows of the rollout batch
    width: int  # W, the prompt width

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


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
                       rows: list[int] | None = None) -> list[MicroBatch]:
    """``rows`` (default: all) sorted by total length, then chunked: little padding, deterministic order."""
    rows = range(len(completions)) if rows is None else rows
    order = sorted(rows, key=lambda i: (len(prompts[i]) + len(completions[i]), i))
    return [
        build_micro_batch(prompts, completions, order[k:k + micro_batch_size], pad_id)
        for k in range(0, len(order), micro_batch_size)
    ]


def completion_logprobs(model, mb: MicroBatch, with_entropy: bool = False, temperature: float = 1.0):
    """(logp [B, Tc], entropy [B, Tc] or None) of each completion token under ``model``.

    Log-probs are those of the sampling distribution, softmax(logits / temperature), so that the
    importance ratios compare like with like when the suite samples at a temperature other than 1."""
    device = next(model.parameters()).device
    tc = mb.completion_mask.shape[1]
    out = model(
        input_ids=mb.input_ids.to(device), attention_mask=mb.attention_mask.to(device),
        position_ids=mb.position_ids.to(device), logits_to_keep=tc + 1, use_cache=False,
    )
    logits = out.logits[:, :-1].float()  # position W-1+t predicts completion token t
    if temperature != 1.0:
        logits = logits / temperature
    targets = mb.input_ids[:, mb.width:].to(device)
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    entropy = None
    if with_entropy:
        with torch.no_grad():
            probs = torch.softmax(logits, dim=-1)
            entropy = lse - (probs * logits).sum(-1)
    return logp, entropy
