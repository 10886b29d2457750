"""Module-level reward functions for tests (picklable, so they run in the harness's worker processes)."""

import asyncio
import os
import time


def digit_share(prompts, completions, **kwargs):
    """A dense toy reward: the share of digits in the completion (gives non-zero advantages)."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def raises_on_x(prompts, completions, **kwargs):
    if any("x" in c for c in completions):
        raise RuntimeError("boom on x")
    return [1.0 for _ in completions]


def sleeps_on_slow(prompts, completions, **kwargs):
    if any("slow" in c for c in completions):
        time.sleep(60)
    return [0.5 for _ in completions]


def none_on_skip(prompts, completions, **kwargs):
    return [None if "skip" in c else 1.0 for c in completions]


def returns_text(prompts, completions, **kwargs):
    return ["high" for _ in completions]


def exits_process(prompts, completions, **kwargs):
    os._exit(3)


def echo_answer_column(prompts, completions, answer, **kwargs):
    return [float(a) for a in answer]


def odd_prompts_only(prompts, completions, **kwargs):
    """Informative only for prompts of odd length (there: the completion's length parity); else always 0,
    so those groups have identical rewards (what dynamic sampling drops)."""
    return [float(len(c) % 2) if len(p) % 2 else 0.0 for p, c in zip(prompts, completions)]


def always_zero(prompts, completions, **kwargs):
    return [0.0 for _ in completions]


def always_raises(prompts, completions, **kwargs):
    raise ValueError("always broken")


def returns_nan(prompts, completions, **kwargs):
    return [float("nan") for _ in completions]


def returns_inf(prompts, completions, **kwargs):
    return [float("-inf") for _ in completions]


def returns_huge(prompts, completions, **kwargs):
    return [1e308 for _ in completions]


def returns_str_number(prompts, completions, **kwargs):
    return ["1.0" for _ in completions]


def returns_bool(prompts, completions, **kwargs):
    return [True for _ in completions]


def returns_numpy(prompts, completions, **kwargs):
    import numpy as np

    return [np.float32(0.5) for _ in completions]


def exits_on_x(prompts, completions, **kwargs):
    if any("x" in c for c in completions):
        os._exit(3)
    return [1.0 for _ in completions]


# ---- async rewards (TRL awaits `async def` rewards; several on one batch run concurrently) ----
async def async_length(prompts, completions, **kwargs):
    await asyncio.sleep(0.01)
    return [float(len(c)) for c in completions]


async def async_sleep_a(prompts, completions, **kwargs):
    await asyncio.sleep(1.5)
    return [1.0 for _ in completions]


async def async_sleep_b(prompts, completions, **kwargs):
    await asyncio.sleep(1.5)
    return [2.0 for _ in completions]


async def async_hangs_on_slow(prompts, completions, **kwargs):
    if any("slow" in c for c in completions):
        await asyncio.sleep(60)
    return [0.25 for _ in completions]


async def async_raises_on_x(prompts, completions, **kwargs):
    await asyncio.sleep(0)
    if any("x" in c for c in completions):
        raise RuntimeError("async boom on x")
    return [1.0 for _ in completions]


async def async_blocks_on_slow(prompts, completions, **kwargs):
    if any("slow" in c for c in completions):
        time.sleep(60)  # blocks the event loop: only the worker's own limit can end it
    return [0.5 for _ in completions]


# ---- log_metric / log_extra / trainer_state (TRL passes them as keyword arguments) ----
def logs_and_state(prompts, completions, trainer_state, log_metric, log_extra, **kwargs):
    """Logs the batch's mean completion length, a built-in name (loss) and the state's fields per sample."""
    from transformers import TrainerState

    assert isinstance(trainer_state, TrainerState), type(trainer_state)
    n = len(completions)
    log_metric("completion_chars_mean", sum(len(c) for c in completions) / n)
    log_metric("loss", 5.0)
    log_extra("first_char", [c[:1] for c in completions])
    log_extra("state", [[trainer_state.global_step, trainer_state.max_steps, trainer_state.epoch,
                         trainer_state.train_batch_size, trainer_state.num_train_epochs, trainer_state.save_steps,
                         trainer_state.logging_steps]] * n)
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def logs_through_kwargs(prompts, completions, **kwargs):
    kwargs["log_metric"]("from_kwargs", 2.0)
    kwargs["log_extra"]("kw_column", ["k"] * len(completions))
    return [0.0 for _ in completions]


def log_extra_wrong_length(prompts, completions, log_extra, **kwargs):
    log_extra("short", [1, 2])
    return [1.0 for _ in completions]
