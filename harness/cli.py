"""The ``grpo-bench`` command: run, eval, leaderboard, compare, plugins, probe."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from .errors import UserError


def _cmd_run(args) -> int:
    from .config import load_suite
    from .execute import run_suite
    from .execute.executors import RunsFailed, make_executor
    from .execute.plan import parse_shard
    from .registry import default_registry

    registry = default_registry()
    suite = load_suite(args.suite, registry, args.set or [])
    shard = parse_shard(args.shard) if args.shard else None
    if args.dry_run:
        from .execute.plan import describe, make_plan, refusal

        plan = make_plan(suite, registry, Path(args.results_dir), args.variant, shard)
        refused = refusal(plan)
        print(describe(plan, registry, refused))
        if args.until_decided and not refused:
            from .execute.stages import plan_looks

            staged = plan_looks(suite, args.max_seeds, args.stage)
            print(f"until decided: looks at {staged['looks']} seeds (seeds {staged['seeds']}); {staged['procedure']}")
        return 2 if refused else 0
    executor = make_executor(registry, args.executor, {"--address": args.address, "--cpus-per-run": args.cpus_per_run,
                                                      "--gpus-per-run": args.gpus_per_run})
    outcomes = []
    if args.until_decided:
        return _run_until_decided(args, suite, registry, executor)
    try:
        out = run_suite(suite, registry, Path(args.results_dir), args.variant, executor, shard, outcomes,
                        verbose=args.verbose)
    except RunsFailed as exc:
        print(f"grpo-bench: {exc}", file=sys.stderr)
        return 1
    folder = Path(args.results_dir) / suite.suite.name
    for o in outcomes:
        if o.status == "locked":
            print(f"skipped {o.line()} (another process owns it)")
    if out is None:
        print(f"leaderboard not built here ({'shard ' + args.shard if shard else 'runs owned elsewhere'}); "
              f"once every run has finished: grpo-bench leaderboard {folder}")
        return 0
    print_results(out)
    return 0


def print_results(out: Path) -> None:
    """The run's end on the console: the decision columns of the leaderboard, then where the rest is
    (the resolved configuration is in suite.json and every run's config.json, never on the console)."""
    import json

    from .report.render import console_lines

    print("\n".join(console_lines(json.loads((out / "leaderboard.json").read_text()))))
    print(f"full table: {out / 'leaderboard.md'}")
    print(f"report: {out / 'leaderboard.html'}")


def _cmd_eval(args) -> int:
    import json

    from .api import EvalRequest, run_evaluation
    from .io import atomic_write_json, write_jsonl

    req = EvalRequest(args.model, args.benchmark, args.split, args.limit, args.max_new_tokens, args.samples,
                      args.temperature, args.batch_size, args.seed, args.engine,
                      parse_engine_options(args.engine_option or []), args.dtype, args.device, args.data,
                      args.benchmark_version)
    summary, records = run_evaluation(req, flag=lambda key: "--" + key.replace("_", "-"))
    if args.out:
        atomic_write_json(Path(args.out), summary)
        write_jsonl(Path(args.out).with_suffix(".records.jsonl"), records)
    print(json.dumps({k: v for k, v in summary.items() if k != "benchmark_spec"}, indent=2))
    return 0


def _run_until_decided(args, suite, registry, executor) -> int:
    """``--until-decided``: stages of seeds until every claim is decided (execute/stages.py)."""
    from .execute import run_suite
    from .execute.executors import RunsFailed
    from .execute.stages import parse_budget, run_until_decided

    if args.shard or args.variant:
        raise UserError("--until-decided runs every variant of the suite: leave out --shard and --variant")
    budget = parse_budget(args.budget) if args.budget else None

    def run_stage(staged, variants: list[str]) -> None:
        if run_suite(staged, registry, Path(args.results_dir), variants, executor, None, verbose=args.verbose) is None:
            raise UserError("a stage's runs are held by another process; rerun when it has finished")

    try:
        reports, why = run_until_decided(suite, registry, Path(args.results_dir), run_stage, args.max_seeds,
                                         args.stage, budget, on_stage=lambda r: print(r.line(), flush=True))
    except RunsFailed as exc:
        print(f"grpo-bench: {exc}", file=sys.stderr)
        return 1
    out = Path(args.results_dir) / suite.suite.name
    print((out / "leaderboard.md").read_text())
    print(f"stopped: {why}\nresults: {out}")
    return 0


def _cmd_leaderboard(args) -> int:
    from .report import write_leaderboard

    print(write_leaderboard(Path(args.dir), args.reference, args.target))
    return 0


def _cmd_site(args) -> int:
    from .report.site import write_site

    index, left_out = write_site(Path(args.results_dir), Path(args.out))
    for folder in left_out:
        print(f"left out {folder} (no leaderboard.json)")
    print(f"site: {index}")
    return 0


def _cmd_compare(args) -> int:
    import json

    from .report.compare import compare, to_markdown

    result = compare(Path(args.a), Path(args.b))
    print(json.dumps(result, indent=2) if args.json else to_markdown(result, Path(args.a), Path(args.b)))
    return 0


def _cmd_plugins(args) -> int:
    from .registry import KINDS, default_registry

    registry = default_registry()
    for kind in KINDS:
        print(f"{kind}:")
        for name in registry.names(kind):
            print(f"  {name:<16} {registry.tables[kind][name].source}")
    if registry.errors:
        print("plugin errors:")
        for err in registry.errors:
            print(f"  {err}")
    return 0


def _floats(text: str, what: str, cast=float) -> tuple:
    try:
        return tuple(cast(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{what}: expected a comma-separated list of numbers, got {text!r}") from None


def _cmd_probe_gradient_bias(args) -> int:
    from .probe.gradient_bias import BiasConfig, band_sentence, real_run_band, run, write
    from .probe.policy import ProbeConfig
    from .provenance import provenance
    from .registry import default_registry

    registry = default_registry()
    probe = ProbeConfig(digits=args.digits, max_len=args.max_len, targets=_floats(args.targets, "--targets", int),
                        hidden=args.hidden, seed=args.seed, warm_start_value=args.warm_start_value)
    cfg = BiasConfig(
        probe=probe, algorithms=[v for v in args.variants.split(",") if v] if args.variants else None,
        advantages=tuple(a for a in args.advantages.split(",") if a), ablations=not args.no_ablations,
        kls=_floats(args.kls, "--kls"), group_size=args.group_size, group_sizes=_floats(args.group_sizes, "--group-sizes", int),
        max_lens=_floats(args.max_lens, "--max-lens", int), sweep_kl=args.sweep_kl,
        lr=args.lr, max_steps=args.max_steps, batches=args.batches, bootstrap=args.bootstrap, seed=args.seed,
        seeds=_floats(args.seeds, "--seeds", int), random_directions=args.random_directions,
        ablate=None if args.ablate == "all" else tuple(a for a in args.ablate.split(",") if a))
    if len(probe.targets) < 1:
        raise UserError("--targets: give at least one target digit sum")
    cfg.check()
    real = real_run_band(Path(args.runs_root))
    print(band_sentence(real))
    if real["band"]:
        cfg.band_kl = real["band"]["median"]
    result = run(cfg, registry, log=print)
    files = write(result, cfg, Path(args.out), provenance(), real)
    print(f"{result['seconds']:.0f} s; wrote {', '.join(str(f) for f in files)}")
    return 0


def parse_engine_options(items: list[str]) -> dict:
    """``["dtype=\"float32\"", "enforce_eager=true"]`` -> ``{"dtype": "float32", "enforce_eager": True}``."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--engine-option {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare string
    return out


def _add_site_parser(sub) -> None:
    site = sub.add_parser("site", help="a static site of every suite in RESULTS_DIR: index.html, index.json "
                          "(docs/site.md) and each suite's leaderboard page")
    site.add_argument("results_dir", metavar="RESULTS_DIR", help="folder of suite results folders (e.g. results)")
    site.add_argument("-o", "--out", required=True, metavar="SITE_DIR", help="where to write the site")
    site.set_defaults(fn=_cmd_site)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grpo-bench", description=__doc__)
    p.add_argument("--verbose", action="store_true",
                   help="show every library's INFO/WARNING lines on the console (they always go to the run's log file)")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_run_parser, _add_eval_parser, _add_leaderboard_parser, _add_site_parser, _add_compare_parser,
                _add_probe_parser):
        add(sub)
    pl = sub.add_parser("plugins", help="list rewards, algorithms, benchmarks and engines with their origin")
    pl.set_defaults(fn=_cmd_plugins)
    _add_benchmarks_parser(sub)
    _add_config_parser(sub)
    return p


def _add_run_parser(sub) -> None:
    run = sub.add_parser("run", help="train and evaluate every variant x seed of a suite, then print the leaderboard")
    run.add_argument("suite", help="suite file (TOML)")
    run.add_argument("--results-dir", default="results", help="results root (default: results)")
    run.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    run.add_argument("--executor", default="local", metavar="NAME",
                     help="a registered executor (grpo-bench plugins): local, every run in this process (default); "
                          "ray, one Ray task per run")
    run.add_argument("--address", help="Ray cluster to join (auto, ray://host:port); default: start a local one")
    run.add_argument("--cpus-per-run", type=float, help="Ray: CPUs per run (default: [suite] resources.cpus)")
    run.add_argument("--gpus-per-run", type=float, help="Ray: GPUs per run (default: [suite] resources.gpus)")
    run.add_argument("--shard", metavar="I/N", help="run only the runs at positions I, I+N, ... of the plan "
                     "(shard 0 owns the base evaluation); finalise with `grpo-bench leaderboard DIR`")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a suite key before it is checked, e.g. train.steps=50 or "
                          "variants.grpo.eps_high=0.28 (values are TOML; repeatable; recorded in the provenance)")
    run.add_argument("--until-decided", action="store_true",
                     help="add seeds in planned stages until every [[claims]] entry is decided or a cap is hit "
                          "(docs/leaderboard.md, \"Seeds until decided\"); resumes like any run")
    run.add_argument("--max-seeds", type=int, help="--until-decided: the last planned look (default: 4x the suite's seeds)")
    run.add_argument("--stage", type=int, help="--until-decided: seeds added per stage (default: the suite's seed count)")
    run.add_argument("--budget", help="--until-decided: start no stage that would end past this wall time (6h, 90m)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the runs, the settings that differ from the defaults and the cost; write nothing")
    run.set_defaults(fn=_cmd_run)


def _add_eval_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate one model on one benchmark")
    ev.add_argument("--model", required=True, help="model path, hub id, 'smollm2-135m-instruct' or 'tiny-random'")
    ev.add_argument("--benchmark", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--benchmark-version", type=int, default=0, help="the benchmark's version (0: its default)")
    ev.add_argument("--limit", type=int, default=0, help="first N problems (0: all)")
    ev.add_argument("--max-new-tokens", type=int, default=256)
    ev.add_argument("--samples", type=int, default=0, help="k for mean@k (0: greedy only)")
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--engine", default="auto", help="rollout engine (default auto: vllm where it imports, else hf)")
    ev.add_argument("--engine-option", action="append", metavar="KEY=VALUE",
                    help="engine option, as in a suite's engine_options (repeatable; values are TOML)")
    ev.add_argument("--dtype", default="float32")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--out", help="write the summary JSON here (records beside it)")
    ev.add_argument("--data", default="bundled", choices=["bundled", "hub"], help="benchmark data source")
    ev.set_defaults(fn=_cmd_eval)


def _add_leaderboard_parser(sub) -> None:
    from .report.runs import DEFAULT_TARGET

    lb = sub.add_parser("leaderboard", help="rebuild leaderboard.md/.csv/.json/.html and plots/ of a suite's results")
    lb.add_argument("dir")
    lb.add_argument("--reference", help="variant the differences are taken against (default: grpo, when present)")
    lb.add_argument("--target", type=float, default=DEFAULT_TARGET,
                    help=f"train accuracy for the 'steps to target' column (default: {DEFAULT_TARGET})")
    lb.set_defaults(fn=_cmd_leaderboard)


def _add_compare_parser(sub) -> None:
    cmp = sub.add_parser("compare", help="per-benchmark differences B - A between two suite or run folders")
    cmp.add_argument("a", help="results folder A (a suite's folder or one run's folder)")
    cmp.add_argument("b", help="results folder B")
    cmp.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    cmp.set_defaults(fn=_cmd_compare)


def _add_probe_parser(sub) -> None:
    pr = sub.add_parser("probe", help="exact probes of the algorithms on a policy small enough to enumerate")
    prs = pr.add_subparsers(dest="probe", required=True)
    gb = prs.add_parser("gradient-bias", help="expected update vs exact policy gradient at theta_k and theta_old, "
                        "as staleness, G and length grow (docs/gradient-bias.md)")
    gb.add_argument("--out", default="results/gradient-bias", help="output folder (default: results/gradient-bias)")
    gb.add_argument("--variants", help="comma-separated algorithms (default: every registered one)")
    gb.add_argument("--advantages", default="group,raw,sum", help="advantage modes: group (the plugin's), raw "
                    "(A = r - E_old[r|x], exact expectation possible), sum (raw, divided by the loss's per-token "
                    "weight: no length normalisation) (default: group,raw,sum)")
    gb.add_argument("--no-ablations", action="store_true", help="leave out the ablations (noclip, raw, sum)")
    gb.add_argument("--ablate", default="grpo,grpo_no_is,tic_grpo",
                    help="algorithms whose ablations are probed, or 'all' (default: grpo,grpo_no_is,tic_grpo)")
    gb.add_argument("--kls", default="0,0.01,0.05,0.3,1", help="exact KL targets (the published runs' median "
                    "inner-step KL is added when runs above their noise floor exist)")
    gb.add_argument("--seeds", default="0,1,2", help="theta_old seeds (each its own init and warm start)")
    gb.add_argument("--random-directions", type=int, default=2, help="random directions per theta_old")
    gb.add_argument("--max-steps", type=int, default=40, help="Adam steps of the adam path before a KL counts "
                    "as not reached")
    gb.add_argument("--group-size", type=int, default=8)
    gb.add_argument("--group-sizes", default="2,4,8,16", help="G values of the group-size sweep")
    gb.add_argument("--max-len", type=int, default=5, help="most tokens per completion, EOS included")
    gb.add_argument("--max-lens", default="3,4,5,6", help="max lengths of the length sweep")
    gb.add_argument("--sweep-kl", type=float, default=0.3, help="KL of the group-size and length sweeps")
    gb.add_argument("--lr", type=float, default=0.01, help="Adam learning rate of the adam path")
    gb.add_argument("--batches", type=int, default=200, help="Monte Carlo batches per cell")
    gb.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    gb.add_argument("--digits", type=int, default=3, help="non-EOS tokens (digit values 1..N)")
    gb.add_argument("--targets", default="3,4,5,6", help="one prompt per target digit sum")
    gb.add_argument("--hidden", type=int, default=32, help="MLP hidden units")
    gb.add_argument("--warm-start-value", type=float, default=0.3, help="theta_old: exact ascent until mean J >= this")
    gb.add_argument("--seed", type=int, default=0, help="Monte Carlo sampling seed")
    gb.add_argument("--runs-root", default="results", help="where to read the published runs' KL and noise floor from")
    gb.set_defaults(fn=_cmd_probe_gradient_bias)


def _add_config_parser(sub) -> None:
    cfg = sub.add_parser("config", help="the suite file's keys")
    cfgs = cfg.add_subparsers(dest="config_command", required=True)
    ks = cfgs.add_parser("keys", help="every suite key by section: type, default, allowed values and meaning")
    ks.add_argument("--markdown", action="store_true", help="print docs/config.md (Markdown tables) instead")
    ks.set_defaults(fn=_cmd_config_keys)


def _cmd_config_keys(args) -> int:
    from .config import reference

    print(reference.markdown() if args.markdown else reference.text(), end="")
    return 0


def _add_benchmarks_parser(sub) -> None:
    bm = sub.add_parser("benchmarks", help="benchmark data checks")
    bms = bm.add_subparsers(dest="benchmarks_command", required=True)
    chk = bms.add_parser("check", help="duplicates within each split and test items found in other splits, after "
                                       "normalising whitespace and numbers (every version of each benchmark)")
    chk.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to check (default: every registered one)")
    chk.add_argument("--json", action="store_true", help="print JSON rows instead of the Markdown table")
    chk.set_defaults(fn=_cmd_benchmarks_check)


def _cmd_benchmarks_check(args) -> int:
    import json

    from .contamination import check_all, cross_overlap, to_table
    from .registry import default_registry

    registry = default_registry()
    rows, cross = check_all(registry, args.names), cross_overlap(registry, args.names)
    print(json.dumps({"splits": rows, "cross": cross}, indent=2) if args.json else to_table(rows, cross))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .execute.logs import setup_console

    args = build_parser().parse_args(argv)
    setup_console(args.verbose)
    try:
        return args.fn(args)
    except UserError as exc:
        print(f"grpo-bench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder made read-only or unwritable while we ran: one line, not a traceback
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        print(f"grpo-bench: error: cannot write {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
