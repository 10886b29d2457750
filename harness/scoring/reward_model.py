"""A reward given as a model: a local folder or a hub id in ``train.rewards`` that is not a registered
reward name is a sequence-classification reward model, scored with TRL's semantics.

- loaded with ``AutoModelForSequenceClassification.from_pretrained(name, num_labels=1)`` and its own
  tokenizer (``AutoTokenizer.from_pretrained(name)``); a tokenizer without a pad token pads with its
  EOS token, and the model's ``pad_token_id`` is set to the tokenizer's (the model reads the logit at
  the last token that is not padding);
- the text scored is ``prompt + completion`` for a standard benchmark and, for a conversational one,
  the reward tokenizer's chat template over the prompt's messages followed by the completion's;
- tokenized without special tokens (the text or the template has them), right-padded, scored in
  batches of :data:`BATCH` under ``torch.inference_mode``; the reward is ``logits[:, 0]``;
- it runs in the training process on the run's device (``suite.device``) in the suite's ``dtype``, not in
  a reward worker, so ``reward_timeout_s`` does not apply; an exception is an error on every sample of
  the batch.

Planning checks the name first (:func:`check_reward_model`): a folder must hold a ``config.json``; a hub
id must be cached or the hub reachable, else one line and exit status 2 before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..rewards import completion_text

#: samples per forward pass of a reward model
BATCH = 32


def is_model_name(name: str) -> bool:
    """A local folder, or a name shaped like a hub id (``owner/name``)."""
    from ..hub import _HUB_ID

    return Path(name).expanduser().is_dir() or bool(_HUB_ID.match(name))


def check_reward_model(name: str) -> None:
    """One line (UserError) unless ``name`` is a folder with a model config, or a hub id that is cached
    or can be fetched."""
    from ..hub import _model_cached, _why_offline, online

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"reward {name!r}: the folder has no config.json, so it is not a reward model")
        return
    if _model_cached(name) or online():
        return
    raise UserError(f"reward {name!r}: not a registered reward; as a reward model (hub id) it is not cached "
                    f"and {_why_offline()}; use a local folder or a registered reward")


class RewardModel:
    """A sequence-classification reward model called like a reward function (see the module docstring)."""

    in_process = True  # the scorer calls it here, on the model's device, not in a worker

    def __init__(self, name: str, device: str = "cpu", dtype: str = "float32"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..models import resolve_dtype

        self.name = name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                name, num_labels=1, dtype=resolve_dtype(dtype)).to(device)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"reward {name!r}: cannot load it as a sequence-classification reward model: {first}") from None
        self.model.eval()
        self.model.requires_grad_(False)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def texts(self, prompts: list, completions: list) -> list[str]:
        """What the model reads: prompt + completion, or the chat template over both conversations."""
        if prompts and isinstance(prompts[0], list):
            return [self.tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions)]
        return [str(p) + completion_text(c) for p, c in zip(prompts, completions)]

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float]:
        import torch

        texts = self.texts(prompts, completions)
        device = next(self.model.parameters()).device
        out: list[float] = []
        for start in range(0, len(texts), BATCH):
            enc = self.tokenizer(texts[start:start + BATCH], return_tensors="pt", padding=True,
                                 padding_side="right", add_special_tokens=False).to(device)
            with torch.inference_mode():
                out += self.model(**enc).logits[:, 0].float().tolist()
        return out


def resolve_rewards(registry: Any, names: list[str], device: str = "cpu", dtype: str = "float32") -> dict[str, Any]:
    """Name -> reward: a registered reward by its name, else a folder or hub id as a :class:`RewardModel`
    (an unknown name that is neither gives the registry's one-line error)."""
    known = set(registry.names("rewards"))
    return {n: registry.get("rewards", n) if n in known or not is_model_name(n) else RewardModel(n, device, dtype)
            for n in names}
