"""Confidence intervals for the leaderboard: Student-t over seeds, bootstrap over problems, paired bootstrap.

All intervals are two-sided at ``level`` (default 95%). Bootstraps are percentile bootstraps with
a fixed RNG seed, so a table rebuilt from the same files is the same table.

- :func:`t_interval`: mean of per-seed values +- t_{(1+level)/2, n-1} * s / sqrt(n).
- :func:`bootstrap_interval`: mean of per-problem values; resample problems with replacement.
- :func:`paired_difference`: mean of x - y over (seed, problem id) pairs; resample *problems* with
  replacement (all seeds of a resampled problem go together), so seed-to-seed and problem-to-problem
  correlation are both respected.

Decision statistics (the verdict columns), from the per-seed paired differences d_s = x_s - y_s
(the same seed means the same prompt stream and test problems for both variants):

- :func:`seed_difference`: mean of d_s with a Student-t interval over seeds (training noise and
  test-set noise of each seed both sit in d_s);
- :func:`min_detectable_difference`: the smallest true difference a paired two-sided t-test at
  level alpha detects with the given power: (t_{1-alpha/2, n-1} + t_{power, n-1}) * sd(d) / sqrt(n);
- :func:`verdict`: two one-sided tests (TOST) at margin m: "equivalent" when the (1 - 2 alpha)
  t-interval of the mean difference lies inside (-m, +m); otherwise "different" when the
  (1 - alpha) interval excludes 0; otherwise "undecided".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import fmean, stdev

import numpy as np

N_RESAMPLES = 2000
RNG_SEED = 0


@dataclass
class Interval:
    """An estimate with its interval; ``lo``/``hi`` are None when no interval can be given."""

    value: float
    lo: float | None
    hi: float | None
    method: str  # "t", "bootstrap", "paired-bootstrap", "difference" (no interval) or "single"
    n: int  # seeds for "t", problems for the bootstraps

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF; Simpson's rule)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(t: float, n: int = 2000) -> float:  # 0.5 + integral_0^t density (n even)
        h = t / n
        s = density(0.0) + density(t) + sum((4 if k % 2 else 2) * density(k * h) for k in range(1, n))
        return 0.5 + s * h / 3

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: list[float], level: float = 0.95) -> Interval:
    """Mean over seeds with a Student-t interval; no interval for a single value."""
    n = len(values)
    mean = fmean(values)
    if n < 2:
        return Interval(mean, None, None, "single", n)
    half = t_quantile((1 + level) / 2, n - 1) * stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, "t", n)


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _resampled_ratio(sums: np.ndarray, counts: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """sum(sums[idx]) / sum(counts[idx]) for ``n_resamples`` draws of idx (problems with replacement)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    m = len(sums)
    chunk = max(1, 2_000_000 // max(m, 1))  # bound memory on large eval sets
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        out[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return out


def bootstrap_interval(values: list[float], level: float = 0.95, n_resamples: int = N_RESAMPLES,
                       seed: int = RNG_SEED) -> Interval:
    """Mean of per-problem values with a percentile bootstrap over problems."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("no values")
    boot = _resampled_ratio(x, np.ones_like(x), n_resamples, seed)
    lo, hi = _percentiles(boot, level)
    return Interval(float(x.mean()), lo, hi, "bootstrap", len(x))


def align(x: dict[int, dict[str, float]], y: dict[int, dict[str, float]]) -> list[tuple[str, float, float]]:
    """Pair per-problem scores of two sides given as {seed: {problem id: score}}: (problem id, x, y) triples.

    A side with a single seed while the other has several (the base model) is paired with every seed
    of the other side; otherwise pairs are (seed, problem id) present on both sides. When the seeds do
    not overlap at all, each side's per-problem mean over its seeds is paired by problem id.
    """
    if len(x) == 1 and len(y) > 1:
        (only,) = x.values()
        x = {s: only for s in y}
    elif len(y) == 1 and len(x) > 1:
        (only,) = y.values()
        y = {s: only for s in x}
    seeds = sorted(set(x) & set(y))
    if not seeds:
        x, y = {0: _seed_mean(x)}, {0: _seed_mean(y)}
        seeds = [0]
    return [(pid, x[s][pid], y[s][pid]) for s in seeds for pid in x[s] if pid in y[s]]


def _seed_mean(side: dict[int, dict[str, float]]) -> dict[str, float]:
    pids = set.intersection(*(set(v) for v in side.values()))
    return {pid: fmean(v[pid] for v in side.values()) for pid in pids}


def paired_difference(x: dict[int, dict[str, float]], y: dict[int, dict[str, float]], level: float = 0.95,
                      n_resamples: int = N_RESAMPLES, seed: int = RNG_SEED) -> Interval | None:
    """Mean of x - y over aligned (seed, problem) pairs with a paired bootstrap over problems.

    Returns None when no problem is shared (the caller falls back to a plain difference of means).
    """
    pairs = align(x, y)
    if not pairs:
        return None
    pids = sorted({p for p, _, _ in pairs})
    index = {p: i for i, p in enumerate(pids)}
    sums, counts = np.zeros(len(pids)), np.zeros(len(pids))
    for pid, a, b in pairs:
        sums[index[pid]] += a - b
        counts[index[pid]] += 1
    boot = _resampled_ratio(sums, counts, n_resamples, seed)
    lo, hi = _percentiles(boot, level)
    return Interval(float(sums.sum() / counts.sum()), lo, hi, "paired-bootstrap", len(pids))



def _paired_by_seed(x: dict[int, float], y: dict[int, float]) -> list[float]:
    """d_s = x_s - y_s over the seeds both sides have (a one-seed side is paired with every seed)."""
    if len(y) == 1 and len(x) > 1:
        (only,) = y.values()
        y = {s: only for s in x}
    elif len(x) == 1 and len(y) > 1:
        (only,) = x.values()
        x = {s: only for s in y}
    return [x[s] - y[s] for s in sorted(set(x) & set(y))]


def seed_difference(x: dict[int, float], y: dict[int, float], level: float = 0.95) -> Interval | None:
    """Mean over seeds of x_s - y_s with a Student-t interval; None with fewer than two paired seeds."""
    diffs = _paired_by_seed(x, y)
    if len(diffs) < 2:
        return None
    iv = t_interval(diffs, level)
    iv.method = "seed-t"
    return iv


def min_detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest |true difference| a two-sided paired t-test (level alpha, n seeds) detects with ``power``."""
    if n < 2 or not math.isfinite(sd):
        return None
    return (t_quantile(1 - alpha / 2, n - 1) + t_quantile(power, n - 1)) * sd / math.sqrt(n)


def verdict(x: dict[int, float], y: dict[int, float], margin: float, alpha: float = 0.05,
            power: float = 0.8) -> dict | None:
    """TOST equivalence at ``margin`` and a two-sided difference test on the per-seed differences.

    Returns ``{"verdict", "margin", "mde", "tost_interval", "n"}`` or None with fewer than two seeds.
    """
    diffs = _paired_by_seed(x, y)
    n = len(diffs)
    if n < 2:
        return None
    sd = stdev(diffs)
    mean = fmean(diffs)
    tost = t_interval(diffs, 1 - 2 * alpha)
    two_sided = t_interval(diffs, 1 - alpha)
    if -margin < tost.lo and tost.hi < margin:
        word = "equivalent"
    elif two_sided.lo > 0 or two_sided.hi < 0:
        word = "different"
    else:
        word = "undecided"
    return {"verdict": word, "margin": margin, "mean": mean, "mde": min_detectable_difference(sd, n, alpha, power),
            "tost_interval": [tost.lo, tost.hi], "n": n}
