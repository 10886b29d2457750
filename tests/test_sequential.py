"""Claims decided at planned looks: group-sequential boundaries, verdicts, and error rates by simulation."""

import math

import pytest
from grpo_bench.report.sequential import (
    KINDS,
    error_rate,
    evaluate_claim,
    project,
    sd_from_half_width,
    seeds_to_decide,
    t_boundaries,
    z_boundaries,
)
from grpo_bench.report.stats import t_quantile

#: the issue's measured spread: 5 seeds gave 90% half-widths of 3.65 (no-IS vs GRPO) and 4.80 (TIC vs GRPO) points
SDS = (sd_from_half_width(3.65, 5), sd_from_half_width(4.80, 5))
LOOKS = (5, 10, 15, 20)


def test_sd_from_half_width_inverts_the_t_interval():
    # 3.65 = t_{0.95,4} * sd / sqrt(5), t_{0.95,4} = 2.131847
    assert SDS[0] == pytest.approx(3.65 * math.sqrt(5) / 2.131847, rel=1e-5)
    assert SDS[1] == pytest.approx(5.0347, abs=1e-3)


def test_obrien_fleming_spending_boundaries_match_published_values():
    """Lan-DeMets O'Brien-Fleming spending, 4 equally spaced looks, one-sided 0.025: the values tabulated by
    gsDesign (sfLDOF) and Jennison & Turnbull: 4.333, 2.963, 2.359, 2.014."""
    assert z_boundaries(LOOKS, 0.025) == pytest.approx((4.333, 2.963, 2.359, 2.014), abs=2e-3)
    # one look spends everything at once: the fixed-sample one-sided test
    assert z_boundaries((20,), 0.05)[0] == pytest.approx(1.644854, abs=1e-4)
    assert t_boundaries((5,), 0.05)[0] == pytest.approx(t_quantile(0.95, 4), abs=1e-4)


def test_single_look_verdicts_worked_by_hand():
    # mean 0, sd 0.790569, t_{0.95,4} = 2.131847: half = 0.753743 -> [-0.754, +0.754] inside (-3, 3)
    r = evaluate_claim("equivalence", 3.0, 0.05, [0.5, -0.5, 1.0, -1.0, 0.0], (5,))
    assert r.verdict == "equivalent" and r.hi == pytest.approx(0.753743, abs=1e-4) and r.seeds == 5
    # mean 3, sd 1.581139: half = 1.507443 -> [1.49, 4.51]: not inside, not outside (-3, 3)
    r = evaluate_claim("equivalence", 3.0, 0.05, [1.0, 2.0, 3.0, 4.0, 5.0], (5,))
    assert r.verdict == "undecided" and r.lo == pytest.approx(1.492557, abs=1e-4)
    assert evaluate_claim("non_inferiority", 3.0, 0.05, [1.0, 2.0, 3.0, 4.0, 5.0], (5,)).verdict == "non-inferior"
    # difference spends 2.5% a side: t_{0.975,4} = 2.776445, half = 1.963243 -> [1.04, 4.96] -> better
    r = evaluate_claim("difference", 0.0, 0.05, [1.0, 2.0, 3.0, 4.0, 5.0], (5,))
    assert r.verdict == "better" and r.lo == pytest.approx(3 - 1.963243, abs=1e-4)
    assert evaluate_claim("non_inferiority", 3.0, 0.05, [-9.0, -8.0, -7.0, -6.0, -5.0], (5,)).verdict == "inferior"


def test_a_claim_is_decided_at_its_first_crossing_and_waits_for_planned_looks():
    diffs = [2.0, -2.0, 1.0, -1.0, 0.0] * 4
    early = evaluate_claim("equivalence", 3.0, 0.05, diffs, LOOKS)
    assert early.verdict == "equivalent" and early.look == 2 and early.seeds == 10  # look 1's bound (t 13.4) is too wide
    assert evaluate_claim("equivalence", 3.0, 0.05, diffs[:9], LOOKS).verdict == "undecided"  # look 2 not reached


def test_seeds_to_decide_is_the_fixed_sample_count_for_80_percent_power():
    # non-inferiority, mean 0, sd 5, margin 3: ((1.644854 + 0.841621) * 5 / 3)^2 = 17.17 -> 18
    assert seeds_to_decide("non_inferiority", 3.0, 0.05, 0.0, 5.0) == 18
    # equivalence, mean -0.6, sd 3.83, margin 3: gap 2.4 -> ((2.486475) * 3.83 / 2.4)^2 = 15.74 -> 16
    assert seeds_to_decide("equivalence", 3.0, 0.05, -0.6, 3.83) == 16
    assert seeds_to_decide("difference", 0.0, 0.05, 0.0, 5.0) is None


def test_projection_with_little_spread_decides_at_the_next_look():
    """sd 0.1 around +1: any later interval is about +-0.1 wide, so the next look settles each kind for sure."""
    diffs = [0.9, 1.1, 0.9, 1.1, 1.0]
    eq = project("equivalence", 3.0, 0.05, diffs, (5, 10, 15))
    assert eq["by_look"] == [(10, 1.0), (15, 1.0)] and eq["shares"]["equivalent"] == 1.0 and eq["mean_seeds"] == 10
    assert project("difference", 0.0, 0.05, diffs, (5, 10))["shares"]["better"] == 1.0
    far = project("equivalence", 3.0, 0.05, [d + 4.0 for d in diffs], (5, 10))  # around +5, margin 3
    assert far["shares"]["not equivalent"] == 1.0 and far["mean"] == pytest.approx(5.0)
    assert project("equivalence", 3.0, 0.05, diffs, (5,)) is None  # no later look
    assert project("equivalence", 3.0, 0.05, [1.0], (5, 10)) is None  # no spread to project with


def test_projection_matches_the_normal_formula_for_one_far_look():
    """Two observed seeds (-0.85, +1.15: mean 0.15, sd sqrt(2)), 398 drawn from N(0.15, 2), one look at 400:
    "better" iff mean_400 > c * s / 20. mean_400 ~ N(0.15, 398 * 2 / 400^2); s ~ N(sqrt 2, 2 / (2 * 399))
    nearly; so P = Phi((0.15 - c * sqrt 2 / 20) / sqrt(398 * 2 / 400^2 + (c / 20)^2 * 2 / 798))."""
    c = t_boundaries((2, 400), 0.025)[1]
    spread = math.sqrt(398 * 2 / 400**2 + (c / 20) ** 2 * 2 / 798)
    expected = 0.5 * (1 + math.erf((0.15 - c * math.sqrt(2) / 20) / spread / math.sqrt(2)))
    got = project("difference", 0.0, 0.05, [-0.85, 1.15], (2, 400), experiments=20_000, seed=3)
    assert 0.3 < expected < 0.8  # a case that tests something
    assert got["shares"]["better"] == pytest.approx(expected, abs=0.02)
    assert got["by_look"][0][1] == pytest.approx(got["shares"]["better"] + got["shares"]["worse"])


@pytest.mark.parametrize("kind", KINDS)
def test_error_rate_at_the_margin_holds_under_the_planned_looks(kind):
    """10,000 simulated sequential experiments per spread, at the null on the margin: the boundaries keep each
    claim kind's error rate in [4%, 6%] (nominal 5%); peeking with the fixed-sample test at every look does not."""
    for sd in SDS:
        rate = error_rate(kind, 3.0, 0.05, sd, LOOKS, experiments=10_000, seed=1)
        assert 0.04 <= rate <= 0.06, (kind, sd, rate)
    naive = error_rate(kind, 3.0, 0.05, SDS[0], LOOKS, experiments=10_000, seed=1, naive=True)
    assert naive > 0.09, naive
