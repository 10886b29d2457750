"""``hf`` rollout engine: batched ``model.generate`` on the trainer's own model (no copy, no sync).

Prompts are left-padded; rows are grouped into generate calls of ``batch_size`` sequences,
sorted by prompt length to limit padding. Sampling is pure temperature sampling (top_k = 0,
top_p = 1); temperature 0 is greedy. Reproducible for a seed on CPU. With ``sampling.logprobs`` each
completion carries its tokens' log-probs under softmax(logits / T), read from the scores ``generate``
samples from (after the temperature warper); asking for them changes no sampled token.
"""

from __future__ import annotations

import torch
from grpo_bench import register_engine
from grpo_bench.engine import Completion, RolloutEngine, SamplingConfig
from tqdm.auto import tqdm


@register_engine("hf")
class HFEngine(RolloutEngine):
    @torch.no_grad()
    def generate(self, prompts, sampling: SamplingConfig, progress=None):
        pad = self.tokenizer.pad_token_id
        rows = [(p, j) for p in range(len(prompts)) for j in range(sampling.n)]
        rows.sort(key=lambda r: len(prompts[r[0]]))
        out: list[list[Completion | None]] = [[None] * sampling.n for _ in prompts]
        greedy = sampling.temperature == 0
        gen = torch.Generator().manual_seed(sampling.seed)
        device = next(self.model.parameters()).device
        batches = [rows[i:i + sampling.batch_size] for i in range(0, len(rows), sampling.batch_size)]
        for batch in tqdm(batches, desc=progress or "generate", disable=progress is None, leave=False):
            width = max(len(prompts[p]) for p, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (p, _) in enumerate(batch):
                ids[r, width - len(prompts[p]):] = torch.tensor(prompts[p])
                attn[r, width - len(prompts[p]):] = 1
            # a per-batch seed drawn from the run's generator: same seed, same samples
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=sampling.temperature, top_k=0, top_p=1.0)
            result = self.model.generate(
                input_ids=ids.to(device), attention_mask=attn.to(device), max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.eos_token_ids, pad_token_id=pad, output_scores=sampling.logprobs,
                return_dict_in_generate=True, **kwargs,
            )
            seqs = result.sequences
            token_logprobs = sampled_logprobs(result.scores, seqs[:, width:]) if sampling.logprobs else None
            for r, (p, j) in enumerate(batch):
                new = seqs[r, width:].tolist()
                finished = False
                for k, tok in enumerate(new):
                    if tok in self.eos_token_ids:
                        new, finished = new[: k + 1], True
                        break
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                lps = None if token_logprobs is None else token_logprobs[r, :len(new)].tolist()
                out[p][j] = Completion(new, text, finished, lps)
        return out  # type: ignore[return-value]


def sampled_logprobs(scores: tuple[torch.Tensor, ...], tokens: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` log-probs of ``tokens`` under the per-step scores ``generate`` sampled from (float32)."""
    steps = min(len(scores), tokens.shape[1])
    out = torch.zeros(tokens.shape, dtype=torch.float32)
    for t in range(steps):
        logp = torch.log_softmax(scores[t].float(), dim=-1)
        out[:, t] = logp.gather(-1, tokens[:, t:t + 1].to(logp.device)).squeeze(-1).cpu()
    return out
