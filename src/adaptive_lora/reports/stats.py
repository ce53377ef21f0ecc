"""Paired statistics for "does this allocation beat the reference?": pure functions, no I/O.

Runs of two strategies that share a seed share the data order, the initialisation and the eval
split, so their eval losses are compared seed by seed (a paired design): the question is whether
the mean of the per-seed differences is away from zero by more than the seed-to-seed scatter of
those differences allows. Everything here takes and returns plain numbers; ``scipy.stats``
supplies the t and normal quantiles.

Sign convention: a difference is ``value - reference``. For a loss, negative means the
strategy has the lower (better) value.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass
from typing import Sequence

from scipy import stats as _st

LEVEL = 0.95  # confidence level of every interval
ALPHA = 0.05  # two-sided significance level of every verdict
POWER = 0.80  # power the seeds-needed figure is computed for
DEFAULT_DELTA = 0.01  # smallest eval-loss difference worth detecting, in loss units
BOOTSTRAP_SAMPLES = 10_000

NO_VERDICT_ONE_SEED = "one seed: no verdict"
NO_DIFFERENCE_CI = "no detectable difference (95 % CI includes 0)"
NO_DIFFERENCE_HOLM = "no detectable difference (Holm-adjusted p ≥ 0.05)"


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison. Fields are None where ``n`` is too small to define them."""

    n: int  # number of pairs
    mean_diff: float | None  # mean of (value - reference)
    sd_diff: float | None  # sample standard deviation (ddof=1) of the differences
    ci_low: float | None
    ci_high: float | None
    p: float | None  # two-sided p-value of the paired t test
    effect_dz: float | None  # Cohen's d_z = mean_diff / sd_diff
    ci_method: str  # "t" or "bootstrap"

    def as_dict(self) -> dict:
        return asdict(self)


def differences(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Per-pair ``values[i] - reference[i]``; the two lists must be paired (same length)."""
    if len(values) != len(reference):
        raise ValueError(f"paired lists differ in length: {len(values)} vs {len(reference)}")
    return [float(v) - float(r) for v, r in zip(values, reference)]


def t_interval(diffs: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval for the mean difference: mean ± t_{(1+level)/2, n-1} · sd / √n."""
    n = len(diffs)
    if n < 2:
        raise ValueError("a t interval needs at least 2 paired differences")
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = float(_st.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def t_test_p(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t test (H0: mean difference 0), t = mean / (sd / √n).

    Zero scatter makes t infinite: p is 0 for a non-zero mean, 1 when every difference is 0.
    """
    n = len(diffs)
    if n < 2:
        raise ValueError("a t test needs at least 2 paired differences")
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2 * _st.t.sf(abs(t), n - 1))


def bootstrap_interval(
    diffs: Sequence[float], level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference: resample the pairs with
    replacement ``samples`` times (``random.Random(seed)``, so the result is reproducible) and
    take the (1-level)/2 and (1+level)/2 quantiles of the resampled means.

    With a handful of seeds it is narrower than the t interval (it ignores the uncertainty of the
    sd), which is why the report uses the t interval unless asked otherwise.
    """
    n = len(diffs)
    if n < 2:
        raise ValueError("a bootstrap interval needs at least 2 paired differences")
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(diffs, k=n)) for _ in range(samples))
    lo = means[int(math.floor((1 - level) / 2 * (samples - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (samples - 1)))]
    return lo, hi


def _effect_dz(mean: float, sd: float) -> float:
    if sd == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


def paired_test(
    values: Sequence[float],
    reference: Sequence[float],
    *,
    ci: str = "t",
    level: float = LEVEL,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> PairedTest:
    """Paired comparison of ``values`` against ``reference`` (paired by position, i.e. by seed).

    ``ci``: "t" (Student t on the differences) or "bootstrap" (percentile, seeded). The p-value
    is always the paired t test's. One pair gives its difference and nothing else.
    """
    if ci not in ("t", "bootstrap"):
        raise ValueError(f"ci must be 't' or 'bootstrap', got {ci!r}")
    d = differences(values, reference)
    n = len(d)
    if n == 0:
        return PairedTest(0, None, None, None, None, None, None, ci)
    mean = statistics.fmean(d)
    if n == 1:
        return PairedTest(1, mean, None, None, None, None, None, ci)
    sd = statistics.stdev(d)
    lo, hi = t_interval(d, level) if ci == "t" else bootstrap_interval(d, level, samples, seed)
    return PairedTest(n, mean, sd, lo, hi, t_test_p(d), _effect_dz(mean, sd), ci)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values, in the input order.

    Sorted ascending p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m - j + 1) · p_(j)).
    None entries (comparisons without a test) are passed through and do not count in m.
    """
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _z(q: float) -> float:
    return float(_st.norm.ppf(q))


def seeds_needed_normal(sd: float, delta: float = DEFAULT_DELTA, alpha: float = ALPHA, power: float = POWER) -> int:
    """Normal approximation: n = ceil(((z_{1-alpha/2} + z_{power}) · sd / delta)²), at least 2."""
    if delta <= 0:
        raise ValueError("delta must be positive")
    return max(2, math.ceil(((_z(1 - alpha / 2) + _z(power)) * sd / delta) ** 2))


def seeds_needed(
    sd: float | None, delta: float = DEFAULT_DELTA, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Seeds (pairs) a paired t test needs to detect a true mean difference ``delta`` with
    probability ``power`` at two-sided level ``alpha``, if the paired differences scatter with
    standard deviation ``sd``.

    Formula: start from the normal approximation n₀ = ceil(((z_{1-α/2} + z_{1-β}) · sd / δ)²)
    (:func:`seeds_needed_normal`), then repeat n ← ceil(((t_{1-α/2, n-1} + t_{1-β, n-1}) · sd / δ)²)
    with Student t quantiles at n - 1 degrees of freedom until n stops changing (the larger value
    if it alternates). The result is at least 2 (a paired test needs two pairs). ``sd`` None
    (fewer than two pairs) gives None: there is no scatter to plan from.
    """
    if sd is None or not math.isfinite(sd):
        return None
    n = seeds_needed_normal(sd, delta, alpha, power)
    seen = {n}
    for _ in range(100):
        df = n - 1
        q = float(_st.t.ppf(1 - alpha / 2, df)) + float(_st.t.ppf(power, df))
        nxt = max(2, math.ceil((q * sd / delta) ** 2))
        if nxt == n:
            break
        if nxt in seen:
            n = max(n, nxt)
            break
        seen.add(nxt)
        n = nxt
    return n


def verdict(
    test: PairedTest, p_holm: float | None, reference: str = "uniform", lower_is_better: bool = True, alpha: float = ALPHA
) -> str:
    """Plain-words verdict. "better/worse than <reference>" only when the Holm-adjusted p is
    below ``alpha`` AND the confidence interval excludes 0; otherwise no detectable difference,
    saying which condition failed; fewer than two pairs give no verdict."""
    if test.n < 2 or test.ci_low is None or test.ci_high is None:
        return NO_VERDICT_ONE_SEED if test.n == 1 else "no paired seeds: no verdict"
    if test.ci_low <= 0 <= test.ci_high:
        return NO_DIFFERENCE_CI
    if p_holm is None or p_holm >= alpha:
        return NO_DIFFERENCE_HOLM
    lower = test.ci_high < 0
    return f"{'better' if lower == lower_is_better else 'worse'} than {reference}"
