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
    """A two-sided paired test of two methods over the same seeds. `constant`: the two differ
    by the same nonzero amount on every seed (two methods that ignore the seed do): no test is
    made (p = nan), the seeds being repeats of one comparison, not samples of it."""

    test: str
    n: int
    p: float
    constant: bool = False


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give with `n`
    nonzero differences: 2 / 2^n (every difference of one sign)."""
    return 2.0 / 2.0**n


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test of `a` against `b` (values of the same seeds, in the same order), or the
    Wilcoxon signed-rank test from WILCOXON_MIN_PAIRS pairs on, its p-value never below the
    exact minimum (``wilcoxon_min_p`` of the nonzero differences). Identical samples give p = 1;
    a constant nonzero difference gives ``constant`` and p = nan (no test); fewer than two pairs
    give p = nan (no test)."""
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
    if np.ptp(diff) <= 1e-9 * np.abs(diff).max():
        return PairedTest(test, len(x), math.nan, constant=True)
    if test == WILCOXON:
        p = max(float(stats.wilcoxon(x, y).pvalue), wilcoxon_min_p(int(np.sum(diff != 0))))
    else:
        p = float(stats.ttest_rel(x, y).pvalue)
    return PairedTest(test, len(x), p)


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


FRIEDMAN = "Friedman"
IMAN_DAVENPORT = "Iman-Davenport"


@dataclass(frozen=True)
class Friedman:
    """The Friedman test over N datasets and k methods, with the Nemenyi critical difference.

    `ranks` are the average ranks (1 = best), `chi2` the Friedman statistic corrected for ties
    (as ``scipy.stats.friedmanchisquare``), `p_friedman` its chi-square p-value, `f` Iman and
    Davenport's F from it (the less conservative form Demšar recommends) and `p_iman_davenport`
    its p-value (nan when F is infinite: every dataset ranks the methods alike), `cd` the
    critical difference of average ranks at `alpha`, `backbone` the backbone whose datasets
    were ranked (None: not given)."""

    methods: list[str]
    ranks: list[float]
    n_datasets: int
    chi2: float
    p_friedman: float
    f: float
    p_iman_davenport: float
    cd: float
    alpha: float = ALPHA
    backbone: str | None = None

    @property
    def omnibus(self) -> tuple[str, float]:
        """(name, p) of the test that decides whether post-hoc groups may be drawn: Iman and
        Davenport's, or Friedman's chi-square when F is infinite."""
        if math.isnan(self.p_iman_davenport):
            return FRIEDMAN, self.p_friedman
        return IMAN_DAVENPORT, self.p_iman_davenport

    @property
    def significant(self) -> bool:
        """Whether the omnibus test rejects "all methods rank alike" at `alpha`: only then are
        Nemenyi's post-hoc groups meaningful."""
        return self.omnibus[1] < self.alpha

    def describe(self) -> str:
        """'Friedman chi2 = 10.92 (tie-corrected), p = 0.0122; Iman-Davenport F = 4.81, p =
        0.0183': both statistics, each p-value named."""
        f_text = (
            f"{IMAN_DAVENPORT} F = inf (every dataset ranks the methods alike)"
            if math.isinf(self.f)
            else f"{IMAN_DAVENPORT} F = {self.f:.2f}, {format_p(self.p_iman_davenport)}"
        )
        chi2 = f"{FRIEDMAN} chi2 = {self.chi2:.2f} (tie-corrected)"
        return f"{chi2}, {format_p(self.p_friedman)}; {f_text}"


def friedman_from_ranks(
    methods: Sequence[str],
    ranks: Sequence[float],
    n_datasets: int,
    alpha: float = ALPHA,
    tie_correction: float = 1.0,
) -> Friedman:
    """The Friedman statistics from average ranks of `methods` over `n_datasets` datasets;
    `tie_correction` is 1 - sum(t^3 - t) / (N k (k^2 - 1)) over the groups of t tied methods
    within the datasets (1: no ties), the statistic being divided by it."""
    from scipy import stats

    k, n = len(ranks), n_datasets
    r = np.asarray(ranks, dtype=np.float64)
    chi2 = 12 * n / (k * (k + 1)) * float((r**2).sum() - k * (k + 1) ** 2 / 4)
    chi2 = chi2 / tie_correction if tie_correction > 0 else 0.0  # all tied everywhere: 0
    p_friedman = float(stats.chi2.sf(chi2, k - 1))
    denominator = n * (k - 1) - chi2
    if denominator > 1e-9 * n * (k - 1):
        f = (n - 1) * chi2 / denominator
        p_f = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # every dataset ranks the methods alike: F is infinite, the F test undefined
        f, p_f = math.inf, math.nan
    cd = nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))
    return Friedman(list(methods), r.tolist(), n, chi2, p_friedman, f, p_f, cd, alpha)


def friedman(scores: np.ndarray, methods: Sequence[str], higher_is_better: bool = True) -> Friedman:
    """The Friedman test of a (datasets x methods) score matrix: methods ranked within each
    dataset (ties get their average rank and correct the statistic), then
    ``friedman_from_ranks``."""
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(methods) or np.isnan(x).any():
        raise ValueError("friedman needs a complete (datasets x methods) matrix")
    n, k = x.shape
    ranked = rankdata(-x if higher_is_better else x, axis=1)
    ties = 0.0
    for row in ranked:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    correction = 1.0 - ties / (n * k * (k**2 - 1))
    return friedman_from_ranks(methods, ranked.mean(axis=0), n, tie_correction=correction)


def seed_stability(predictions: Sequence[np.ndarray]) -> float:
    """Mean adjusted Rand index (x100) over all pairs of the given labellings of the same
    samples (one per seed); nan for fewer than two."""
    pairs = list(itertools.combinations(predictions, 2))
    if not pairs:
        return math.nan
    return 100.0 * float(np.mean([adjusted_rand_index(a, b) for a, b in pairs]))
