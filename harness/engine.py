"""The rollout-engine interface: token ids in, sampled completions out, weights kept in sync.

The trainer owns the policy; an engine generates from it. ``hf`` (``model.generate``) shares the
trainer's model object; a separate engine (vLLM) copies weights in :meth:`sync_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class Completion:
    token_ids: list[int]  # generated tokens, including the EOS token when one was produced
    text: str  # decoded without special tokens
    finished: bool  # True when generation stopped at EOS (not at the length limit)
    logprobs: list[float] | None = None  # the engine's log-prob of each token, when it reports them


@dataclass
class SamplingConfig:
    max_new_tokens: int
    temperature: float = 1.0  # 0 means greedy
    n: int = 1  # completions per prompt
    seed: int = 0
    batch_size: int = 64  # sequences per generate call


class RolloutEngine:
    name: ClassVar[str]

    def __init__(self, model, tokenizer, eos_token_ids: list[int], **options):
        if options:
            from .errors import UserError

            raise UserError(f"engine {self.name!r} takes no options, got {', '.join(options)}")
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig, progress: str | None = None) -> list[list[Completion]]:
        """For each prompt (token ids), ``sampling.n`` completions."""
        raise NotImplementedError

    def sync_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights."""

    def close(self) -> None:
        """Release resources."""
