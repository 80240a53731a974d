"""The statistics of the report: confidence intervals over seeds, paired tests between methods
with Holm's correction, the Friedman test with the Nemenyi critical difference (Demšar 2006) and
seed stability.

scipy.stats provides the tests and distributions; Holm's step-down correction and the Nemenyi
critical difference are a few lines each and scipy has neither, so they are written here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from laicbench.cluster.metrics import adjusted_rand_index

ALPHA = 0.05
CONFIDENCE = 0.95
# From this many paired seeds on, the Wilcoxon signed-rank test replaces the paired t-test:
# below it, Wilcoxon's smallest attainable two-sided p-value is too coarse to be useful.
WILCOXON_MIN_PAIRS = 10
PAIRED_T = "paired t-test"
WILCOXON = "Wilcoxon signed-rank test"


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t confidence interval of the mean of `values` (sample std, n - 1 degrees of
    freedom); (nan, nan) for fewer than two values, (mean, mean) when they are all equal."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return (math.nan, math.nan)
    mean = float(x.mean())
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return (mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of two methods over the same seeds."""

    test: str
    n: int
    p: float


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test of `a` against `b` (values of the same seeds, in the same order), or the
    Wilcoxon signed-rank test from WILCOXON_MIN_PAIRS pairs on. Identical samples give p = 1;
    fewer than two pairs give p = nan (no test)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"paired samples of different lengths ({len(x)}, {len(y)})")
    test = WILCOXON if len(x) >= WILCOXON_MIN_PAIRS else PAIRED_T
    if len(x) < 2:
        return PairedTest(test, len(x), math.nan)
    diff = x - y
    if np.all(diff == 0):
        return PairedTest(test, len(x), 1.0)
    if test == WILCOXON:
        p = stats.wilcoxon(x, y).pvalue
    elif np.ptp(diff) <= 1e-9 * np.abs(diff).max():  # a constant nonzero difference: t = inf
        p = 0.0
    else:
        p = stats.ttest_rel(x, y).pvalue
    return PairedTest(test, len(x), float(p))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order;
    nan entries stay nan and do not count as comparisons."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    m = len(valid)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def format_p(p: float) -> str:
    """'p = 0.0213', or 'p < 0.001' below it."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """The Nemenyi test's critical value q_alpha for `k` methods: the studentized range
    quantile over sqrt(2) (Demšar 2006, Table 5a: 2.569 for k = 4 at 0.05)."""
    from scipy.stats import studentized_range

    return float(studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


@dataclass(frozen=True)
class Friedman:
    """The Friedman test over N datasets and k methods, with the Nemenyi critical difference.

    `ranks` are the average ranks (1 = best), `chi2` the Friedman statistic, `f` Iman and
    Davenport's F (the less conservative form Demšar recommends), `p` its p-value (chi2's when
    F is infinite, all datasets ranking the methods alike) and `cd` the
    critical difference of average ranks at `alpha`."""

    methods: list[str]
    ranks: list[float]
    n_datasets: int
    chi2: float
    f: float
    p: float
    cd: float
    alpha: float = ALPHA


def friedman_from_ranks(
    methods: Sequence[str], ranks: Sequence[float], n_datasets: int, alpha: float = ALPHA
) -> Friedman:
    """The Friedman statistics from average ranks of `methods` over `n_datasets` datasets."""
    from scipy import stats

    k, n = len(ranks), n_datasets
    r = np.asarray(ranks, dtype=np.float64)
    chi2 = 12 * n / (k * (k + 1)) * float((r**2).sum() - k * (k + 1) ** 2 / 4)
    denominator = n * (k - 1) - chi2
    if denominator > 0:
        f = (n - 1) * chi2 / denominator
        p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # every dataset ranks the methods alike: F is infinite, use chi2's own p-value
        f = math.inf
        p = float(stats.chi2.sf(chi2, k - 1))
    cd = nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))
    return Friedman(list(methods), r.tolist(), n, chi2, f, p, cd, alpha)


def friedman(scores: np.ndarray, methods: Sequence[str], higher_is_better: bool = True) -> Friedman:
    """The Friedman test of a (datasets x methods) score matrix: methods ranked within each
    dataset (ties get their average rank), then ``friedman_from_ranks``."""
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(methods) or np.isnan(x).any():
        raise ValueError("friedman needs a complete (datasets x methods) matrix")
    ranks = rankdata(-x if higher_is_better else x, axis=1).mean(axis=0)
    return friedman_from_ranks(methods, ranks, x.shape[0])


def seed_stability(predictions: Sequence[np.ndarray]) -> float:
    """Mean adjusted Rand index (x100) over all pairs of the given labellings of the same
    samples (one per seed); nan for fewer than two."""
    pairs = list(itertools.combinations(predictions, 2))
    if not pairs:
        return math.nan
    return 100.0 * float(np.mean([adjusted_rand_index(a, b) for a, b in pairs]))
