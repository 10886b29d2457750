"""Intervals with known answers: t quantiles, t intervals, bootstrap, paired bootstrap and its pairing rules."""

import math
import random

import pytest
from grpo_bench.report.stats import (
    align,
    bootstrap_interval,
    paired_difference,
    t_interval,
    t_quantile,
)


@pytest.mark.parametrize("df, q", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423), (120, 1.9799)])
def test_t_quantile_matches_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=2e-4)


def test_t_quantile_symmetry_and_normal_limit():
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.025, 5) == pytest.approx(-t_quantile(0.975, 5))
    assert t_quantile(0.95, 4) == pytest.approx(2.1318, abs=2e-4)
    assert t_quantile(0.975, 5000) == pytest.approx(1.95996, abs=1e-3)


def test_t_interval():
    iv = t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # s = 1
    assert (iv.value, iv.method, iv.n) == (2.0, "t", 3)
    assert (iv.lo, iv.hi) == pytest.approx((2 - half, 2 + half), abs=1e-4)
    single = t_interval([0.4])
    assert (single.value, single.lo, single.hi, single.method) == (0.4, None, None, "single")


def test_t_interval_coverage():
    rng = random.Random(0)
    hits = 0
    for _ in range(400):
        iv = t_interval([rng.gauss(1.0, 2.0) for _ in range(3)])
        hits += iv.lo <= 1.0 <= iv.hi
    assert 0.91 <= hits / 400 <= 0.99


def test_bootstrap_interval():
    const = bootstrap_interval([1.0] * 10)
    assert (const.value, const.lo, const.hi, const.method, const.n) == (1.0, 1.0, 1.0, "bootstrap", 10)
    coin = [float(i % 2) for i in range(400)]
    iv = bootstrap_interval(coin)
    assert iv.value == 0.5
    assert iv.lo == pytest.approx(0.5 - 1.96 * 0.025, abs=0.008)
    assert iv.hi == pytest.approx(0.5 + 1.96 * 0.025, abs=0.008)
    assert bootstrap_interval(coin) == iv  # fixed RNG seed: the same table every time
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_paired_difference_value_and_pairing():
    x = {0: {"a": 1.0, "b": 1.0, "c": 0.0}, 1: {"a": 1.0, "b": 0.0, "c": 0.0}}
    y = {0: {"a": 0.0, "b": 1.0, "c": 0.0}, 1: {"a": 1.0, "b": 0.0, "c": 1.0}}
    d = paired_difference(x, y)
    assert d.method == "paired-bootstrap" and d.n == 3
    assert d.value == pytest.approx((1 + 0 + 0 + 0 + 0 - 1) / 6)
    assert -1 <= d.lo <= d.value <= d.hi <= 1
    assert paired_difference(y, x).value == pytest.approx(-d.value)


def test_identical_sides_give_zero_width():
    x = {s: {str(i): float(i % 3 == 0) for i in range(30)} for s in (0, 1)}
    d = paired_difference(x, x)
    assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0)


def test_pairing_beats_unpaired_when_problems_vary():
    """Problem difficulty dominates: the paired interval is far narrower than two separate intervals."""
    rng = random.Random(3)
    easy = [rng.random() < 0.5 for _ in range(200)]
    y = {0: {str(i): float(e) for i, e in enumerate(easy)}}
    x = {0: {str(i): float(e or i % 10 == 0) for i, e in enumerate(easy)}}
    d = paired_difference(x, y)
    bx, by = bootstrap_interval(list(x[0].values())), bootstrap_interval(list(y[0].values()))
    assert d.lo > 0
    assert d.hi - d.lo < 0.5 * ((bx.hi - bx.lo) + (by.hi - by.lo))


def test_single_seed_side_pairs_with_every_seed():
    base = {0: {"a": 1.0, "b": 0.0}}
    grpo = {0: {"a": 1.0, "b": 1.0}, 1: {"a": 0.0, "b": 1.0}, 2: {"a": 1.0, "b": 1.0}}
    pairs = align(base, grpo)
    assert len(pairs) == 6
    assert paired_difference(base, grpo).value == pytest.approx((0 - 1 + 1 - 1 + 0 - 1) / 6)
    assert paired_difference(grpo, base).value == pytest.approx(-(0 - 1 + 1 - 1 + 0 - 1) / 6)


def test_common_seeds_only_and_disjoint_seeds():
    x = {0: {"a": 1.0}, 1: {"a": 1.0}, 2: {"a": 0.0}}
    y = {0: {"a": 0.0}, 1: {"a": 1.0}}
    assert align(x, y) == [("a", 1.0, 0.0), ("a", 1.0, 1.0)]  # seed 2 has no partner
    disjoint = align({3: {"a": 1.0, "b": 0.0}, 4: {"a": 0.0, "b": 0.0}}, {5: {"a": 1.0}, 6: {"a": 1.0}})
    assert disjoint == [("a", 0.5, 1.0)]  # per-problem means over seeds, paired by problem id


def test_no_shared_problem_gives_none():
    assert paired_difference({0: {"a": 1.0}}, {0: {"b": 1.0}}) is None


def test_large_eval_set_is_fast_and_bounded():
    x = {0: {str(i): float(i % 2) for i in range(5000)}}
    y = {0: {str(i): float(i % 3 == 0) for i in range(5000)}}
    d = paired_difference(x, y)
    assert d.lo < d.value < d.hi and d.n == 5000
