"""The rollout-engine contract: token ids in, sampled completions out, weights kept in sync.

The trainer owns the policy; an engine generates from it. ``hf`` (``model.generate``) shares the
trainer's model object; a separate engine (vLLM) copies weights in :meth:`sync_weights`.

Rules an engine must keep:

- ``__init__(model, tokenizer, eos_token_ids, **options)``: options are keyword arguments with
  defaults; they come from a suite's ``[suite] engine_options`` and are checked against the
  signature by :meth:`RolloutEngine.check_options` before anything is written.
- :meth:`generate` returns, for every prompt in order, exactly ``sampling.n`` completions; the same
  prompts, weights and ``sampling.seed`` give the same completions (seeded per prompt);
  ``temperature = 0`` is greedy. ``token_ids`` include the EOS token when one was produced.
- :meth:`sync_weights` is called after every optimizer step and on resume: afterwards the engine
  samples from exactly the model's current weights.
- ``logprobs``, when given, are the sampled tokens' log-probs under softmax(logits / T); the trainer
  uses them only for a diagnostic (importance ratios use the trainer's own log-probs).
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
    logprobs: bool = False  # report each sampled token's log-prob (an engine may always report them)


class RolloutEngine:
    name: ClassVar[str]

    def __init__(self, model, tokenizer, eos_token_ids: list[int], **options):
        if options:
            from .errors import UserError

            raise UserError(f"engine {self.name!r} takes no options, got {', '.join(options)}")
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Refuse option names the engine does not take, and values of the wrong type (a :class:`UserError`)."""
        import inspect

        from .errors import UserError

        params = dict(list(inspect.signature(cls.__init__).parameters.items())[4:])
        params = {k: v for k, v in params.items() if v.kind is v.KEYWORD_ONLY or v.kind is v.POSITIONAL_OR_KEYWORD}
        for key, value in options.items():
            if key not in params:
                raise UserError(f"engine {cls.name!r}: unknown option {key!r} (options: {', '.join(params) or 'none'})")
            default = params[key].default
            if default is not None and default is not inspect.Parameter.empty:
                tp = type(default)
                ok = isinstance(value, tp) or (tp is float and isinstance(value, int))
                if not ok or (isinstance(value, bool) and tp is not bool):
                    raise UserError(f"engine {cls.name!r}: option {key!r} must be {tp.__name__}, "
                                    f"got {type(value).__name__} {value!r}")

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig, progress: str | None = None) -> list[list[Completion]]:
        """For each prompt (token ids), ``sampling.n`` completions."""
        raise NotImplementedError

    def sync_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights."""

    def close(self) -> None:
        """Release resources."""
