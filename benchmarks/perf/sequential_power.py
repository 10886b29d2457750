"""Error rate, power and expected seeds of the claims' sequential procedure at the spread measured in v2.

The per-seed sd of the paired difference comes from the 90% half-widths the five v2 seeds gave (issue 21):
3.65 points for no-IS vs GRPO and 4.80 for TIC-GRPO vs GRPO, sd = half * sqrt(5) / t_{0.95, 4}. For each
claim and each cap (looks every ``--stage`` seeds up to ``--max-seeds``), ``--experiments`` simulated
experiments with normal per-seed differences (grpo_bench.report.sequential.simulate):

- error: the share declaring the claim at the null on the margin (equivalent at d = +m, non-inferior at
  d = -m, a difference at d = 0), with the boundaries and with the naive fixed-sample test at every look;
- power: the share declaring the claim when it is true at d (default 0: the variants equal), its share of
  undecided at the cap, and the mean number of seeds used (each stopped experiment counts its last look).

Run: .venv/bin/python benchmarks/perf/sequential_power.py [--experiments 20000] [--max-seeds 20 40 60]
"""

from __future__ import annotations

import argparse

from grpo_bench.report.sequential import DECIDED, error_rate, sd_from_half_width, simulate

CLAIMS = [  # (label, kind, margin, sd)
    ("no-IS equivalent to GRPO at +-3", "equivalence", 3.0, sd_from_half_width(3.65, 5)),
    ("TIC-GRPO non-inferior to GRPO at 3", "non_inferiority", 3.0, sd_from_half_width(4.80, 5)),
    ("no-IS differs from GRPO (sd of no-IS)", "difference", 0.0, sd_from_half_width(3.65, 5)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=20_000)
    ap.add_argument("--max-seeds", type=int, nargs="+", default=[20, 40, 60])
    ap.add_argument("--stage", type=int, default=5)
    ap.add_argument("--true-diff", type=float, default=0.0, help="true mean difference (points) for power")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{args.experiments} simulated experiments per cell; looks every {args.stage} seeds; alpha {args.alpha}; "
          f"power at a true difference of {args.true_diff:g} points (a difference claim: at 3 points)")
    print("| claim | sd (pts) | max seeds | error, boundaries | error, naive peeking | power | undecided at cap "
          "| mean seeds used |")
    print("|---|---|---|---|---|---|---|---|")
    for label, kind, margin, sd in CLAIMS:
        for cap in args.max_seeds:
            looks = tuple(range(args.stage, cap + 1, args.stage))
            seq = error_rate(kind, margin, args.alpha, sd, looks, args.experiments, args.seed)
            naive = error_rate(kind, margin, args.alpha, sd, looks, args.experiments, args.seed, naive=True)
            true = args.true_diff if kind != "difference" else 3.0
            sim = simulate(kind, margin, args.alpha, sd, true, looks, args.experiments, args.seed + 1)
            power = sim["shares"][DECIDED[kind][0]] + (sim["shares"]["worse"] if kind == "difference" else 0)
            print(f"| {label} | {sd:.2f} | {cap} | {100 * seq:.2f}% | {100 * naive:.2f}% | {100 * power:.1f}% | "
                  f"{100 * sim['shares']['undecided']:.1f}% | {sim['mean_seeds']:.1f} |")


if __name__ == "__main__":
    main()
