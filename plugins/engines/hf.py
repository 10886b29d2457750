"""``hf`` rollout engine: batched ``model.generate`` on the trainer's own model (no copy, no sync).

Prompts are left-padded; rows are grouped into generate calls of ``batch_size`` sequences,
sorted by prompt length to limit padding. Sampling is pure temperature sampling (top_k = 0,
top_p = 1); temperature 0 is greedy. Reproducible for a seed on CPU.
"""

from __future__ import annotations

import torch
from grpo_bench import hookimpl
from grpo_bench.engine import Completion, RolloutEngine, SamplingConfig
from tqdm.auto import tqdm


class HFEngine(RolloutEngine):
    name = "hf"

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
            seqs = self.model.generate(
                input_ids=ids.to(device), attention_mask=attn.to(device), max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.eos_token_ids, pad_token_id=pad, **kwargs,
            )
            for r, (p, j) in enumerate(batch):
                new = seqs[r, width:].tolist()
                finished = False
                for k, tok in enumerate(new):
                    if tok in self.eos_token_ids:
                        new, finished = new[: k + 1], True
                        break
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                out[p][j] = Completion(new, text, finished)
        return out  # type: ignore[return-value]


@hookimpl
def grpo_bench_engines():
    return {"hf": HFEngine}
