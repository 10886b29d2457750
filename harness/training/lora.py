"""LoRA through peft: ``[train] lora = { r = 8, alpha = 16, dropout = 0.0, target_modules = [...] }``
(off when empty). Only the adapter's A and B matrices train; the base weights stay frozen.

The rollout engine follows the adapted weights as *merged* weights: :class:`MergedSync` hands the
engine, at every ``sync_weights``, a view whose ``state_dict()`` holds W + (alpha / r) B A under the
base model's own parameter names, so a separate engine (vLLM) receives ordinary full weights through
its usual path (no engine-specific adapter code). The ``hf`` engine shares the trainer's module,
which carries the adapter layers in its forward: it samples from the adapted model directly. After
the run :func:`unwrap` removes the adapter layers, leaving the base model as it was loaded.
"""

from __future__ import annotations

from typing import Any

from ..config.lora import check_lora
from ..errors import UserError


def wrap(model, options: dict):
    """The model with LoRA adapters injected (in place; peft's PeftModel around it)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("[train] lora needs peft: pip install 'grpo-bench[lora]'") from None
    o = check_lora(options)
    cfg = LoraConfig(r=o["r"], lora_alpha=o["alpha"], lora_dropout=o["dropout"], target_modules=list(o["target_modules"]),
                     bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, cfg)
    except ValueError as exc:
        raise UserError(f"train.lora.target_modules: {exc}".splitlines()[0]) from None


def merged_state_dict(peft_model) -> dict[str, Any]:
    """The base model's state dict with every adapted weight replaced by W + delta (base names)."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    deltas = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                deltas[f"{name}.weight"] = deltas.get(f"{name}.weight", 0) + module.get_delta_weight(adapter)
    out = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        out[key] = (value + deltas[key].to(value.dtype)).detach() if key in deltas else value
    return out


class _MergedView:
    def __init__(self, peft_model):
        self._peft = peft_model

    def state_dict(self):
        return merged_state_dict(self._peft)

    def __getattr__(self, name):
        return getattr(self._peft.get_base_model(), name)


class MergedSync:
    """An engine whose ``sync_weights`` pushes the merged weights; everything else is the engine's own."""

    def __init__(self, engine, peft_model):
        self._engine, self._view = engine, _MergedView(peft_model)

    def sync_weights(self, model) -> None:
        self._engine.sync_weights(self._view)

    def close(self) -> None:  # the session closes the engine, not the run
        pass

    def __getattr__(self, name):
        return getattr(self._engine, name)


def unwrap(peft_model):
    """Remove the adapter layers; returns the base model with its original modules and weights."""
    return peft_model.unload()
