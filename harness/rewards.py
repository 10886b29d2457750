"""The reward contract and the scoring layer that never hangs and never lies.

Contract (the same as TRL's GRPOTrainer reward functions, so theirs plug in unchanged). A reward
is called with keyword arguments only, on a batch of samples::

    def my_reward(completions, **kwargs) -> list[float | None]:
        ...

    my_reward(prompts=[...], completions=[...], completion_ids=[[...], ...], trainer_state=state,
              answer=[...], solution=[...], ground_truth=[...], <every other dataset column>=[...])

- ``prompts``, ``completions``: one entry per sample. Strings for a standard benchmark; for a
  conversational one (``Benchmark.conversational``), the prompt is the chat (a list of
  ``{"role", "content"}`` messages) and each completion is ``[{"role": "assistant", "content": text}]``
  (TRL's rule: conversational prompts give conversational completions).
- ``completion_ids``: the sampled token ids of each completion (EOS included when generated).
- ``trainer_state``: a ``transformers.TrainerState``, shared by the batch, with the fields TRL's
  trainer fills: ``global_step`` (steps done before this batch), ``max_steps`` (``train.steps``),
  ``epoch`` (prompts drawn so far / training prompts, fractional), ``num_train_epochs`` (epochs the
  run covers, rounded up), ``train_batch_size`` (samples per step: prompts x G), ``logging_steps``
  (1: every step is logged), ``save_steps`` (``train.checkpoint_every``), ``eval_steps``
  (``eval.every``; 0: none during training), ``is_world_process_zero`` = True. ``log_history`` is
  empty (the logged rows are in the run's ``metrics.jsonl``). In evaluation ``global_step`` =
  ``max_steps`` = the steps the model was trained for (0 for the base model).
- ``log_metric(name, value)``: a finite number for the step's metrics row (the mean over the step's
  calls, under ``name``; under ``log_metric/<name>`` where ``name`` is a built-in column), hence
  every tracker of ``report_to``.
- ``log_extra(column, values)``: one value per sample of the call, a column of the run's
  per-sample records (``samples.jsonl``). A wrong type or length makes the call an error. What a
  call that fails logged is dropped (its samples are called again and log again).
- every dataset column by name, one value per sample; the reference answer is in ``answer``,
  ``solution`` and ``ground_truth`` (the names TRL and verl recipes use).

Return one float per sample, or ``None`` where the reward does not apply. Accept ``**kwargs`` so
new columns do not break you.

``async def`` rewards are awaited; the ``async def`` rewards of a suite are awaited concurrently on
each batch (``asyncio.gather`` in the worker, as TRL does), each with the same per-sample limit and
error handling as a plain reward, and plain and ``async def`` rewards mix freely. An async reward
that blocks its event loop (``time.sleep`` instead of ``await asyncio.sleep``) holds up the others
awaited with it until the worker's limit stops the call; they are then called again one sample at a
time.

Worked example::

    def ends_politely(prompts, completions, **kwargs):
        return [1.0 if c.rstrip().endswith("Thanks!") else 0.0 for c in completions]

    ends_politely(["Hi"], ["Sure. Thanks!"])   # -> [1.0]

:class:`grpo_bench.scoring.RewardScorer` calls each reward on the batch (one chunk per worker process)
with a wall-clock limit of ``reward_timeout_s`` per sample; a chunk that fails is retried one sample
at a time, so a failure is pinned to its sample. A call that raises, times out, or returns something that is not a number or ``None`` is
an *error*: counted per reward, logged with its sample, and scored as ``None`` for that
function. A number is an ``int`` or ``float`` (numpy/torch-free scalars such as ``numpy.float32``
count: anything registered as :class:`numbers.Real`) that is finite with ``|value| <= 1e12``;
``bool`` (``True``/``numpy.bool_``), strings such as ``"1.0"``, NaN, +-inf and larger values are
errors (see :func:`grpo_bench.scoring.scorer.as_score`). A sample's total is the weighted sum of the values that are not ``None``; a sample
with no value at all scores 0.0 (documented option ``missing_total``).
"""

from __future__ import annotations

from typing import Any

STATUSES = ("ok", "none", "error", "timeout")


def __getattr__(name: str) -> Any:
    """``grpo_bench.rewards.TrainerState`` is transformers' own class, imported on first use (so the
    reward workers, which import this module, start without importing transformers)."""
    if name == "TrainerState":
        from transformers import TrainerState

        return TrainerState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def completion_text(completion: Any) -> str:
    """A completion as plain text (chat-style completions are joined message contents)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)
