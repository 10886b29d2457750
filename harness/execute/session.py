"""One process's working set and one run's work: load the model, engine and scorers once
(:class:`Session`), then train and evaluate one (variant, seed) at a time (:func:`run_one`).

Finished runs (``summary.json`` present) are skipped; an unfinished one resumes from its last
checkpoint. Every file is written atomically, so a kill at any moment loses at most the steps
since the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from ..benchmark import benchmark_at
from ..config.schema import EvalConfig, Suite, TrainConfig
from ..evaluation import evaluate
from ..io import atomic_write_json, write_jsonl
from ..models import eos_ids, load_policy, pick_device
from ..registry import Registry
from ..rewards import TrainerState
from ..scoring import RewardScorer
from ..scoring.reward_model import resolve_rewards
from ..training import Trainer
from .locks import LOCK_NAME, run_lock
from .trackers import Trackers

log = logging.getLogger(__name__)


class Session:
    """A loaded model, its base weights, a rollout engine and reward scorers, shared by all runs."""

    def __init__(self, suite: Suite, registry: Registry):
        self.suite, self.registry = suite, registry
        meta = suite.suite
        self.device = pick_device(meta.device)
        self.model, self.tokenizer = load_policy(meta.model, meta.dtype, self.device)
        self.base_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        engine_cls = registry.get("engines", meta.engine)
        self.engine = engine_cls(self.model, self.tokenizer, eos_ids(self.model, self.tokenizer), **meta.engine_options)
        self._scorers: dict[str, RewardScorer] = {}

    def scorer(self, names: list[str], weights: dict | None = None) -> RewardScorer:
        key = repr((names, sorted((weights or {}).items())))
        if key not in self._scorers:
            tr = self.suite.train
            rewards = resolve_rewards(self.registry, names, self.device, self.suite.suite.dtype)
            self._scorers[key] = RewardScorer(rewards, weights,
                                              timeout_s=tr.reward_timeout_s, workers=tr.reward_workers)
        return self._scorers[key]

    def reset_weights(self) -> None:
        self.model.load_state_dict(self.base_state)
        self.engine.sync_weights(self.model)

    def close(self) -> None:
        for s in self._scorers.values():
            s.close()
        self.engine.close()


def eval_config(suite: Suite, seed: int) -> EvalConfig:
    """The suite's ``[eval]`` settings with the run's own seed."""
    ev = suite.eval
    return EvalConfig(ev.max_new_tokens, ev.samples, ev.temperature, ev.batch_size, seed)


def run_evals(session: Session, run_dir: Path, seed: int, steps: int = 0) -> dict:
    out = {}
    for target in session.suite.eval.benchmarks:
        key = f"{target.name}-{target.split}"
        summary_path = run_dir / "eval" / f"{key}.json"
        if summary_path.exists():

            out[key] = json.loads(summary_path.read_text())
            continue
        bench = benchmark_at(session.registry, target.name, target.version)
        scorer = session.scorer([bench.eval_reward])
        summary, records = evaluate(session.engine, session.tokenizer, bench, target.split, target.limit or None,
                                    scorer, eval_config(session.suite, seed), TrainerState(global_step=steps, max_steps=steps))
        write_jsonl(run_dir / "eval" / f"{key}.records.jsonl", records)
        atomic_write_json(summary_path, summary)
        log.info("%s %s: pass@1 = %.3f (n = %d)", run_dir.name, key, summary["pass@1"], summary["n"])
        out[key] = summary
    return out


def curve_evals(session: Session, seed: int):
    """``on_eval(step)`` for the trainer: pass@1 (greedy) on the first ``eval.every_limit`` problems of
    each target (within its ``limit``), with the run's eval seed; one row per target."""
    ev = session.suite.eval

    def on_eval(step: int) -> list[dict]:
        rows = []
        for target in ev.benchmarks:
            bench = benchmark_at(session.registry, target.name, target.version)
            limit = min(target.limit, ev.every_limit) if target.limit else ev.every_limit
            cfg = eval_config(session.suite, seed)
            cfg.samples = 0  # greedy only during training
            summary, _ = evaluate(session.engine, session.tokenizer, bench, target.split, limit,
                                  session.scorer([bench.eval_reward]), cfg)
            rows.append({"key": f"{target.name}-{target.split}", "pass@1": summary["pass@1"], "n": summary["n"],
                         "response_length_mean": summary["response_length_mean"]})
        return rows

    return on_eval


def train_summary(metrics: list[dict], steps: int) -> dict:
    if not metrics:
        return {}
    tail = metrics[-max(1, len(metrics) // 4):]
    return {
        "steps": steps,
        "reward_first": metrics[0]["reward_mean"],
        "reward_last_quarter": sum(r["reward_mean"] for r in tail) / len(tail),
        "reward_curve": [r["reward_mean"] for r in metrics],
        "samples": sum(r["samples"] for r in metrics),
        "generated_tokens": sum(r["generated_tokens"] for r in metrics),
        "response_length_mean": sum(r["response_length_mean"] for r in metrics) / len(metrics),
        "wall_s": metrics[-1]["elapsed_s"],
        "reward_failures": reward_failures(metrics),
    }


def console(line: str) -> None:
    """One line for people on stderr (beside the progress bars, without breaking them), and in the log."""
    import sys

    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
    log.info(line)


def reward_failures(metrics: list[dict]) -> dict[str, int]:
    """Samples on which each reward raised or timed out, over the whole run (0s left out)."""
    out: dict[str, int] = {}
    for row in metrics:
        for key, value in row.items():
            if key.startswith(("reward_error/", "reward_timeout/")) and value:
                name = key.split("/", 1)[1]
                out[name] = out.get(name, 0) + int(value)
    return out


def finished_line(name: str, seed: int, train: dict, evals: dict) -> str:
    """The one console line for a finished run (reward failures are never silent)."""
    parts = [f"{k} pass@1 {v['pass@1']:.3f}" for k, v in evals.items()]
    if train:
        parts.insert(0, f"train reward {train['reward_first']:.3f} -> {train['reward_last_quarter']:.3f}")
        fails = train.get("reward_failures") or {}
        if fails:
            parts.append("REWARD FAILURES: " + ", ".join(f"{k} failed on {v} of {train['samples']} samples"
                                                         for k, v in fails.items()))
    for k, v in evals.items():
        bad = v.get("reward_counts", {}).get("error", 0) + v.get("reward_counts", {}).get("timeout", 0)
        if bad:
            parts.append(f"REWARD FAILURES in {k}: {bad}")
    return f"finished {name} seed {seed}: " + "; ".join(parts)


def finished_line_of(run_dir: Path) -> str:
    """:func:`finished_line` of a finished run, from its summary.json (for executors whose runs ran elsewhere)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return finished_line(summary["variant"], summary["seed"], summary.get("train") or {}, summary.get("eval") or {})


#: What :func:`run_one` reports: it ran the run to its end, found it finished, or found it owned by another process.
RAN, FINISHED, LOCKED = "ran", "finished", "locked"


def run_one(session: Session, out: Path, variant_name: str | None, seed: int, base: dict) -> str:
    """Train (unless base) and evaluate one run while holding its lock; returns RAN, FINISHED or LOCKED."""
    name = variant_name or "base"
    run_dir = out / "runs" / name / f"seed{seed}"
    if (run_dir / "summary.json").exists():
        log.info("skip %s seed %d: finished", name, seed)
        return FINISHED
    with run_lock(run_dir) as owned:
        if not owned:
            log.warning("skip %s seed %d: another process holds %s", name, seed, run_dir / LOCK_NAME)
            return LOCKED
        if (run_dir / "summary.json").exists():  # finished by another process since the check above
            return FINISHED
        _run_owned(session, run_dir, variant_name, seed, base)
        return RAN


def _run_owned(session: Session, run_dir: Path, variant_name: str | None, seed: int, base: dict) -> None:
    suite = session.suite
    name = variant_name or "base"
    torch.manual_seed(seed)
    session.reset_weights()
    record = dict(base, chat_template=getattr(session.tokenizer, "chat_template", None), variant=name, seed=seed)
    t0 = time.perf_counter()
    trackers = Trackers(suite.suite.report_to, run_dir, f"{suite.suite.name}/{name}/seed{seed}")
    adapted: list = []  # a LoRA-wrapped model, unwrapped again below whatever happens
    try:
        train = _train_and_eval(session, run_dir, variant_name, seed, record, trackers, adapted)
        step = suite.train.steps if variant_name else 0
        evals = run_evals(session, run_dir, seed, step)  # with the adapters still in place
        trackers.log({f"eval/{key}/{m}": v for key, ev in evals.items() for m, v in ev.items()}, step)
    finally:
        if adapted:
            from ..training import lora

            lora.unwrap(adapted[0])
            session.model.requires_grad_(True)
        trackers.close()
    summary = dict(record, status="finished", train=train, eval=evals, run_wall_s=time.perf_counter() - t0)
    atomic_write_json(run_dir / "summary.json", summary)
    console(finished_line(name, seed, train, evals))
    if not suite.suite.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)


def _train_and_eval(session: Session, run_dir: Path, variant_name: str | None, seed: int, record: dict,
                    trackers: Trackers, adapted: list) -> dict:
    """Write config.json and train (variants only); the per-step rows and intermediate evals go to the trackers."""
    suite = session.suite
    if variant_name is None:
        atomic_write_json(run_dir / "config.json", record)
        trackers.log_config(record)
        return {}
    variant = suite.variant(variant_name)
    algo = session.registry.get("algorithms", variant.algorithm)(**dict(variant.options))
    record["algorithm"] = algo.config()
    atomic_write_json(run_dir / "config.json", record)
    trackers.log_config(record)
    tr = suite.train
    bench = benchmark_at(session.registry, tr.benchmark, tr.benchmark_version)
    rewards = list(tr.rewards)
    weights = dict(tr.reward_weights)
    if bench.eval_reward not in rewards:  # logged as accuracy, weight 0 in the training reward
        rewards.append(bench.eval_reward)
        weights[bench.eval_reward] = 0.0
    ref_model = None
    if algo.options.beta > 0 or "ref_logp" in algo.needs:  # the algorithm's declared inputs (algorithm.INPUTS)
        ref_model, _ = load_policy(suite.suite.model, suite.suite.dtype, session.device)
        ref_model.requires_grad_(False)
    cfg = TrainConfig(**{k: getattr(tr, k) for k in TrainConfig.__dataclass_fields__} | variant.train)
    on_eval = curve_evals(session, seed)

    def logged_eval(step: int) -> list[dict]:
        rows = on_eval(step)
        trackers.log({f"eval_every/{r['key']}/pass@1": r["pass@1"] for r in rows}, step)
        return rows

    model, engine = session.model, session.engine
    if tr.lora:  # adapters injected into the session's model; the caller removes them after evaluation
        from ..training import lora

        model = lora.wrap(session.model, tr.lora)
        engine = lora.MergedSync(session.engine, model)
        adapted.append(model)
    trainer = Trainer(model, session.tokenizer, engine, algo, session.scorer(rewards, weights),
                      bench, bench.problems(tr.split), cfg, seed, run_dir, ref_model, bench.eval_reward,
                      on_step=lambda row: trackers.log(row, row["step"]), eval_every=suite.eval.every,
                      on_eval=logged_eval)
    return train_summary(trainer.train(), tr.steps)
