"""Paired statistics of the report, against values worked out by hand or read from tables.

Hand values used below:

* Differences (1, 2, 3): mean 2, sd 1, se 1/√3, t = 2√3 on 2 df. The t distribution with 2 df
  has CDF 1/2 + t / (2√(2 + t²)), so the two-sided p = 1 - t/√(2 + t²) = 1 - √(12/14)
  = 1 - √(6/7). t(0.975, 2) = 4.302653 (tables): CI 2 ± 4.302653/√3.
* Differences (1, 3): mean 2, sd √2, se 1, t = 2 on 1 df (Cauchy): p = 1 - (2/π)·atan(2);
  t(0.975, 1) = 12.706205: CI 2 ± 12.706205.
* Seeds needed, sd 0.006, delta 0.002 (the equal-budget study): z(0.975) + z(0.80) = 1.959964 +
  0.841621 = 2.801585; (2.801585 · 3)² = 70.64 -> 71 by the normal formula. With t quantiles:
  df 70: t(0.975) 1.994437 + t(0.80) 0.846786 = 2.841223, (·3)² = 72.65 -> 73; df 72: 1.993464 +
  0.846642 = 2.840106, (·3)² = 72.60 -> 73, stable.
* sd 0.01, delta 0.01: 2.801585² = 7.85 -> 8; df 7: 2.364624 + 0.896030 = 3.260654, ² = 10.63
  -> 11; df 10: 2.228139 + 0.879058 = 3.107197, ² = 9.65 -> 10; df 9: 2.262157 + 0.883404 =
  3.145561, ² = 9.89 -> 10, stable.
* sd 0.02, delta 0.01: (2.801585 · 2)² = 31.40 -> 32; df 31: 2.039513 + 0.853370 = 2.892883,
  (·2)² = 33.47 -> 34; df 33: 2.034515 + 0.852649 = 2.887164, (·2)² = 33.34 -> 34, stable.
"""

from __future__ import annotations

import math

import pytest

from adaptive_lora.reports.stats import (
    NO_DIFFERENCE_CI,
    NO_DIFFERENCE_HOLM,
    NO_VERDICT_ONE_SEED,
    PairedTest,
    bootstrap_interval,
    holm,
    paired_test,
    seeds_needed,
    seeds_needed_normal,
    verdict,
)

T975_2 = 4.302653
T975_1 = 12.706205


@pytest.mark.parametrize(
    "values, reference, mean, sd, ci, p, dz",
    [
        ([11, 12, 13], [10, 10, 10], 2.0, 1.0, (2 - T975_2 / math.sqrt(3), 2 + T975_2 / math.sqrt(3)),
         1 - math.sqrt(6 / 7), 2.0),
        ([1, 3], [0, 0], 2.0, math.sqrt(2), (2 - T975_1, 2 + T975_1), 1 - 2 / math.pi * math.atan(2), math.sqrt(2)),
        # The same differences, negative and shifted onto eval-loss-like values: signs flip only.
        ([2.0, 1.9, 1.8], [2.1, 2.1, 2.1], -0.2, 0.1, (-0.2 - 0.1 * T975_2 / math.sqrt(3), -0.2 + 0.1 * T975_2 / math.sqrt(3)),
         1 - math.sqrt(6 / 7), -2.0),
    ],
)
def test_paired_t(values, reference, mean, sd, ci, p, dz):
    t = paired_test(values, reference)
    assert t.n == len(values) and t.ci_method == "t"
    assert t.mean_diff == pytest.approx(mean, abs=1e-12)
    assert t.sd_diff == pytest.approx(sd, abs=1e-12)
    assert (t.ci_low, t.ci_high) == pytest.approx(ci, abs=1e-5)
    assert t.p == pytest.approx(p, abs=1e-9)
    assert t.effect_dz == pytest.approx(dz, abs=1e-9)


@pytest.mark.parametrize(
    "values, reference, expected",
    [
        ([], [], PairedTest(0, None, None, None, None, None, None, "t")),
        ([2.5], [2.0], PairedTest(1, 0.5, None, None, None, None, None, "t")),
        # No scatter: the difference is exact. p 0 (or 1 when it is 0), a zero-width interval.
        ([3.0, 4.0], [2.0, 3.0], PairedTest(2, 1.0, 0.0, 1.0, 1.0, 0.0, math.inf, "t")),
        ([2.0, 3.0], [2.0, 3.0], PairedTest(2, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, "t")),
    ],
)
def test_paired_edge_cases(values, reference, expected):
    assert paired_test(values, reference) == expected


def test_paired_lists_must_match():
    with pytest.raises(ValueError, match="differ in length"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="ci must be"):
        paired_test([1.0, 2.0], [1.0, 1.0], ci="z")


def test_bootstrap_interval_is_seeded_percentile():
    # Resampled means of (1, 2, 3) lie in [1, 3]; P(all three draws are 1) = 1/27 > 2.5 %, so the
    # 2.5 % and 97.5 % percentiles are the extremes 1 and 3.
    t = paired_test([11, 12, 13], [10, 10, 10], ci="bootstrap")
    assert (t.ci_low, t.ci_high) == (1.0, 3.0) and t.ci_method == "bootstrap"
    assert t.p == pytest.approx(1 - math.sqrt(6 / 7))  # the p-value is the t test's either way
    d = [0.3, -0.1, 0.2, 0.05, 0.15, -0.02]
    assert bootstrap_interval(d, seed=7) == bootstrap_interval(d, seed=7)
    lo, hi = bootstrap_interval(d, samples=2000, seed=1)
    assert min(d) <= lo < sum(d) / len(d) < hi <= max(d)


@pytest.mark.parametrize(
    "pvalues, adjusted",
    [
        # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5, None, 0.01], [0.5, None, 0.02]),  # None is not a test: m = 2
        ([0.3, 0.4], [0.6, 0.6]),  # 0.3 x 2 = 0.6; 0.4 x 1 = 0.4 -> 0.6 (monotone)
        ([0.7, 0.9], [1.0, 1.0]),  # capped at 1
        ([0.04], [0.04]),
        ([], []),
    ],
)
def test_holm(pvalues, adjusted):
    assert holm(pvalues) == pytest.approx(adjusted, abs=1e-12)


@pytest.mark.parametrize(
    "sd, delta, normal, with_t",
    [
        (0.006, 0.002, 71, 73),  # the equal-budget study: about 73 seeds to see 0.002
        (0.01, 0.01, 8, 10),
        (0.02, 0.01, 32, 34),
        (0.0, 0.01, 2, 2),  # no scatter: the minimum of two pairs
    ],
)
def test_seeds_needed(sd, delta, normal, with_t):
    assert seeds_needed_normal(sd, delta) == normal
    assert seeds_needed(sd, delta) == with_t


def test_seeds_needed_without_scatter_or_delta():
    assert seeds_needed(None) is None and seeds_needed(math.nan) is None
    assert seeds_needed(0.01) == 10  # delta defaults to 0.01
    with pytest.raises(ValueError, match="delta"):
        seeds_needed(0.01, delta=0)


def _t(n, lo, hi):
    return PairedTest(n, (lo + hi) / 2 if lo is not None else 0.1, 0.01, lo, hi, 0.001, 1.0, "t")


@pytest.mark.parametrize(
    "test, p_holm, reference, expected",
    [
        (_t(3, -0.03, -0.01), 0.01, "uniform", "better than uniform"),
        (_t(3, 0.01, 0.03), 0.01, "uniform", "worse than uniform"),
        (_t(3, -0.03, -0.01), 0.01, "uniform-r16", "better than uniform-r16"),
        (_t(3, -0.03, 0.01), 0.01, "uniform", NO_DIFFERENCE_CI),
        (_t(3, -0.03, 0.0), 0.01, "uniform", NO_DIFFERENCE_CI),  # 0 on the edge is included
        (_t(3, -0.03, -0.01), 0.06, "uniform", NO_DIFFERENCE_HOLM),  # raw p fine, Holm p not
        (_t(3, -0.03, -0.01), None, "uniform", NO_DIFFERENCE_HOLM),
        (PairedTest(1, -0.5, None, None, None, None, None, "t"), None, "uniform", NO_VERDICT_ONE_SEED),
        (PairedTest(0, None, None, None, None, None, None, "t"), None, "uniform", "no paired seeds: no verdict"),
    ],
)
def test_verdict(test, p_holm, reference, expected):
    assert verdict(test, p_holm, reference) == expected
    assert NO_DIFFERENCE_CI == "no detectable difference (95 % CI includes 0)"
    assert NO_VERDICT_ONE_SEED == "one seed: no verdict"
