"""Claims decided on per-seed paired differences, with error rates that hold when seeds are added in stages.

A claim compares ``variant`` with ``reference`` on d_s = metric_variant(s) - metric_reference(s) in points
(same seed: same prompt stream and test problems). Seeds come in planned looks n_1 < n_2 < ... < n_K. At look
k the claim's *repeated confidence interval* (RCI) is mean(d) +- c_k * sd(d) / sqrt(n_k); the claim is decided
at the first look whose RCI settles it, and stays decided:

- ``equivalence`` at margin m: RCI inside (-m, +m) -> "equivalent"; RCI outside it -> "not equivalent";
- ``non_inferiority`` at margin m: RCI lower end > -m -> "non-inferior"; upper end <= -m -> "inferior";
- ``difference``: RCI excludes 0 -> "better" or "worse".

The critical values c_k are group-sequential boundaries with the Lan-DeMets alpha-spending function of
O'Brien-Fleming type, alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)) at information fraction t = n_k / n_K
(Lan & DeMets 1983, Biometrika 70:659-663), computed by the recursive numerical integration of Armitage,
McPherson & Rowe (1969) on the z scale, one side at a time (each side spends alpha; ``difference`` spends
alpha/2 a side), then carried to the t scale of each look by equal nominal p-value, c_k = F^-1_{t, n_k-1}(Phi(z_k))
(Jennison & Turnbull 2000, "Group Sequential Methods with Applications to Clinical Trials", sections 7.2 and
9.2 for the RCIs). With one look this is the fixed-sample t-test (TOST for equivalence). Boundaries are
non-binding: stopping a claim early, or stopping on a cap, only lowers its error rate.

:func:`simulate` checks the error rates by Monte Carlo and shows what peeking at every look with the
fixed-sample test does (``benchmarks/perf/sequential_power.py`` prints the numbers of docs/leaderboard.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist, fmean, stdev

import numpy as np

from .stats import t_quantile

_NORMAL = NormalDist()
KINDS = ("equivalence", "non_inferiority", "difference")
#: the words a decided claim gets, per kind: (the claim holds, its opposite holds)
DECIDED = {"equivalence": ("equivalent", "not equivalent"), "non_inferiority": ("non-inferior", "inferior"),
           "difference": ("better", "worse")}
GRID = 1601  # points of the numerical integration grid (+-8 sd of the score at the last look)


def obf_spent(fraction: float, alpha: float) -> float:
    """Alpha spent by information fraction ``fraction`` (Lan-DeMets O'Brien-Fleming type, one side)."""
    if fraction <= 0:
        return 0.0
    return 2.0 - 2.0 * _NORMAL.cdf(_NORMAL.inv_cdf(1 - alpha / 2) / math.sqrt(fraction))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@lru_cache(maxsize=256)
def z_boundaries(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """One-sided z critical values at ``looks`` (seed counts; information proportional to seeds) spending
    ``alpha`` by :func:`obf_spent`; numerical integration of the score's sub-density over the continuation
    region (Armitage, McPherson & Rowe 1969)."""
    fractions = [n / looks[-1] for n in looks]
    first = 1 - obf_spent(fractions[0], alpha)
    z = [_NORMAL.inv_cdf(first) if first < 1 else math.inf]  # an early look can spend less than 1e-16
    half = 8.0 * math.sqrt(fractions[-1])
    grid = np.linspace(-half, half, GRID)
    step = grid[1] - grid[0]
    sd0 = math.sqrt(fractions[0])
    density = np.exp(-0.5 * (grid / sd0) ** 2) / (sd0 * math.sqrt(2 * math.pi))
    density[grid >= z[0] * sd0] = 0.0
    for k in range(1, len(looks)):
        inc = math.sqrt(fractions[k] - fractions[k - 1])
        target = obf_spent(fractions[k], alpha) - obf_spent(fractions[k - 1], alpha)
        weights = density * step

        def crossing(bound: float) -> float:
            return float(np.sum(weights * (1.0 - _normal_cdf((bound - grid) / inc))))

        lo, hi = -half, half
        for _ in range(60):  # crossing() falls as the bound rises
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if crossing(mid) > target else (lo, mid)
        bound = (lo + hi) / 2
        z.append(bound / math.sqrt(fractions[k]))
        kernel = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / inc) ** 2) / (inc * math.sqrt(2 * math.pi))
        density = kernel @ weights
        density[grid >= bound] = 0.0
    return tuple(z)


@lru_cache(maxsize=1024)
def _t_from_z(z: float, df: int) -> float:
    p = _NORMAL.cdf(z)
    return t_quantile(p, df) if p < 1 - 1e-12 else math.inf


def t_boundaries(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """The t-scale critical values of :func:`z_boundaries` (look k has n_k - 1 degrees of freedom)."""
    return tuple(_t_from_z(z, n - 1) for z, n in zip(z_boundaries(looks, alpha), looks))


def side_alpha(kind: str, alpha: float) -> float:
    """What each side of the RCI spends: alpha for the one-sided kinds (TOST), alpha/2 for a difference."""
    return alpha / 2 if kind == "difference" else alpha


def decide(kind: str, margin: float, lo: float, hi: float) -> str | None:
    """The decided word for an interval [lo, hi] (points), or None while it settles nothing."""
    holds, opposite = DECIDED[kind]
    if kind == "equivalence":
        return holds if -margin < lo and hi < margin else opposite if lo >= margin or hi <= -margin else None
    if kind == "non_inferiority":
        return holds if lo > -margin else opposite if hi <= -margin else None
    return holds if lo > 0 else opposite if hi < 0 else None


@dataclass
class ClaimResult:
    verdict: str  # a DECIDED word or "undecided"
    estimate: float | None  # mean(d) in points at the deciding (else the last) look; None without seeds
    lo: float | None
    hi: float | None
    seeds: int  # seeds used at that look
    look: int  # 1-based index into looks (0: fewer than two seeds)
    level: float  # the RCI's nominal level, 1 - 2 * side alpha
    sd: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate_claim(kind: str, margin: float, alpha: float, diffs: list[float], looks: tuple[int, ...]) -> ClaimResult:
    """Walk the planned looks that ``diffs`` (in seed order, points) reach; stop at the first decision."""
    a = side_alpha(kind, alpha)
    reached = [n for n in looks if n <= len(diffs) and n >= 2]
    if not reached:
        est = fmean(diffs) if diffs else None
        return ClaimResult("undecided", est, None, None, len(diffs), 0, 1 - 2 * a, None)
    crit = t_boundaries(looks, a)
    result = None
    for k, n in enumerate(looks):
        if n not in reached:
            break
        d = diffs[:n]
        mean, sd = fmean(d), stdev(d)
        half = crit[k] * sd / math.sqrt(n)
        word = decide(kind, margin, mean - half, mean + half)
        result = ClaimResult(word or "undecided", mean, mean - half, mean + half, n, k + 1, 1 - 2 * a, sd)
        if word:
            break
    return result


def seeds_to_decide(kind: str, margin: float, alpha: float, mean: float, sd: float, power: float = 0.8) -> int | None:
    """Seeds a fixed-sample test needs to settle the claim with ``power`` if the true difference were the
    observed ``mean`` with spread ``sd`` (normal approximation: ((z_{1-a} + z_power) * sd / gap)^2, gap = the
    distance from the mean to the bound it must clear); None when the mean sits on that bound."""
    gap = {"equivalence": margin - abs(mean) if abs(mean) < margin else abs(mean) - margin,
           "non_inferiority": abs(mean + margin), "difference": abs(mean)}[kind]
    if gap <= 0 or not sd or not math.isfinite(sd):
        return None
    z = _NORMAL.inv_cdf(1 - side_alpha(kind, alpha)) + _NORMAL.inv_cdf(power)
    return max(2, math.ceil((z * sd / gap) ** 2))


# ---- simulation -------------------------------------------------------------------------------------------
def simulate(kind: str, margin: float, alpha: float, sd: float, true_diff: float, looks: tuple[int, ...],
             experiments: int = 10_000, seed: int = 0, naive: bool = False) -> dict:
    """Monte Carlo of ``experiments`` sequential experiments with normal per-seed differences (mean
    ``true_diff``, spread ``sd``, points): the share ending in each verdict and the mean seeds used. ``naive``
    uses the fixed-sample t-interval at every look instead of the boundaries."""
    rng = np.random.default_rng(seed)
    draws = rng.normal(true_diff, sd, size=(experiments, looks[-1]))
    a = side_alpha(kind, alpha)
    crit = [t_quantile(1 - a, n - 1) for n in looks] if naive else list(t_boundaries(looks, a))
    verdict = np.full(experiments, "", dtype=object)
    used = np.full(experiments, looks[-1])
    holds, opposite = DECIDED[kind]
    for k, n in enumerate(looks):
        d = draws[:, :n]
        mean, half = d.mean(axis=1), crit[k] * d.std(axis=1, ddof=1) / math.sqrt(n)
        yes, no = _settles(kind, margin, mean - half, mean + half)
        open_ = verdict == ""
        used[open_ & (yes | no)] = n
        verdict[open_ & yes] = holds
        verdict[open_ & no & ~yes] = opposite
    verdict[verdict == ""] = "undecided"
    shares = {w: float(np.mean(verdict == w)) for w in (holds, opposite, "undecided")}
    return {"shares": shares, "mean_seeds": float(used.mean()), "experiments": experiments}


def project(kind: str, margin: float, alpha: float, diffs: list[float], looks: tuple[int, ...],
            experiments: int = 4_000, seed: int = 0) -> dict | None:
    """Where the plan is likely to take an undecided claim: the observed seeds kept, the missing seeds of every
    later look drawn normal with the observed mean and sd taken as the truth (the "current trend" of conditional
    power, Jennison & Turnbull 2000, section 10.2), each later look's RCI evaluated as :func:`evaluate_claim`
    does. Returns {"by_look": [(seeds, P(decided by that look))...], "shares": verdict -> share at the end,
    "mean_seeds": ..., "experiments": ..., "mean" and "sd" of ``diffs``}; None without two seeds or a later look."""
    later = [n for n in looks if n > len(diffs)]
    if len(diffs) < 2 or not later:
        return None
    mean, sd = fmean(diffs), stdev(diffs)
    rng = np.random.default_rng(seed)
    observed = np.broadcast_to(np.asarray(diffs, dtype=float), (experiments, len(diffs)))
    draws = np.hstack([observed, rng.normal(mean, sd, size=(experiments, looks[-1] - len(diffs)))])
    crit = dict(zip(looks, t_boundaries(looks, side_alpha(kind, alpha))))
    verdict = np.full(experiments, "", dtype=object)
    used = np.full(experiments, looks[-1])
    holds, opposite = DECIDED[kind]
    by_look = []
    for n in later:
        d = draws[:, :n]
        centre, half = d.mean(axis=1), crit[n] * d.std(axis=1, ddof=1) / math.sqrt(n)
        yes, no = _settles(kind, margin, centre - half, centre + half)
        open_ = verdict == ""
        used[open_ & (yes | no)] = n
        verdict[open_ & yes] = holds
        verdict[open_ & no & ~yes] = opposite
        by_look.append((n, float(np.mean(verdict != ""))))
    verdict[verdict == ""] = "undecided"
    shares = {w: float(np.mean(verdict == w)) for w in (holds, opposite, "undecided")}
    return {"by_look": by_look, "shares": shares, "mean_seeds": float(used.mean()), "experiments": experiments,
            "mean": mean, "sd": sd}


def _settles(kind: str, margin: float, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decide` on arrays of intervals: (settles it "holds", settles the opposite)."""
    if kind == "equivalence":
        return (lo > -margin) & (hi < margin), (lo >= margin) | (hi <= -margin)
    if kind == "non_inferiority":
        return lo > -margin, hi <= -margin
    return lo > 0, hi < 0


def null_difference(kind: str, margin: float) -> float:
    """The true difference at which a claim's error rate is largest: on the margin (0 for a difference)."""
    return {"equivalence": margin, "non_inferiority": -margin, "difference": 0.0}[kind]


def error_rate(kind: str, margin: float, alpha: float, sd: float, looks: tuple[int, ...],
               experiments: int = 10_000, seed: int = 0, naive: bool = False) -> float:
    """Share of experiments at the null that declare the claim: "equivalent" at d = +m, "non-inferior" at
    d = -m, "better" or "worse" at d = 0."""
    sim = simulate(kind, margin, alpha, sd, null_difference(kind, margin), looks, experiments, seed, naive)
    wrong = ("better", "worse") if kind == "difference" else (DECIDED[kind][0],)
    return sum(sim["shares"][w] for w in wrong)


def sd_from_half_width(half_width: float, seeds: int, level: float = 0.90) -> float:
    """The per-seed sd behind a reported t-interval half-width: half * sqrt(n) / t_{(1+level)/2, n-1}."""
    return half_width * math.sqrt(seeds) / t_quantile((1 + level) / 2, seeds - 1)
