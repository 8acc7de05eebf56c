"""Statistics for every table we print: means with 95% intervals over seeds, paired differences
between methods, and a verdict per comparison.

The unit of a reported metric is a *grid* of scores ``(n_training_seeds, n_eval_seeds, *cases)``:
one learner trained with each training seed, each evaluated on the same evaluation seeds
(markets), on the same cases (products, advertisers, ...). Two methods are compared on the same
grid cells (same seed indices, same markets, same cases), so their difference is paired.

* :func:`grid_mean`: the mean over the grid with a Student-t interval whose variance counts both
  sources of randomness of a crossed design (Cornfield and Tukey 1956): ``se^2 = s_T^2 / n_T +
  s_E^2 / n_E``, where ``s_T^2`` is the variance (ddof=1) of the training seeds' means (each
  averaged over evaluation seeds and cases) and ``s_E^2`` that of the evaluation seeds' means;
  degrees of freedom by Welch-Satterthwaite (Satterthwaite 1946). Cases are averaged first and
  not resampled: every method is scored on the same cases, which define the metric. With one
  training seed (or one evaluation seed) the term of that factor is dropped and the interval is
  the textbook one-sample t interval over the other factor (``scipy.stats.ttest_1samp``); it
  then covers only that factor's noise, which :class:`Estimate` records in its counts. The
  two-term variance counts the seed-by-seed interaction twice, so the interval errs on the wide
  side; it assumes the crossed design above (every training seed scored on the same
  evaluation seeds).
* :func:`paired_difference`: :func:`grid_mean` of ``a - b`` cell by cell.
* :func:`compare`: paired differences for the comparisons of one table, each with a two-sided
  p-value from the same t statistic, **Holm-adjusted over the table** (Holm 1979: controls the
  family-wise error rate at 5% for all comparisons in the table together), and a verdict
  ``"A > B"``, ``"A < B"`` or ``"not distinguishable"`` from the adjusted p-value. The printed
  interval of each difference is its own (unadjusted) 95% interval; with a single comparison the
  verdict and the interval agree exactly.
* :func:`t_interval`: the one-sample t interval, elementwise over trailing axes.
* :func:`bootstrap_interval`: percentile bootstrap over seeds (and optionally over sampled
  advertisers) for statistics that are not means (a maximum over advertisers, BPG Eq. 15).

Why not rliable (Agarwal et al. 2021): its stratified bootstrap and interquartile mean treat the
runs of a task as independent draws, one score per run. Our grids are crossed (every training
seed is scored on the same evaluation markets) and our comparisons paired cell by cell; the
two-factor t interval above uses that design, and scipy.stats supplies its distributions.

Every standard deviation uses ``ddof=1``. The JSON form of an estimate is
``{"mean", "low", "high", "n_training_seeds", "n_eval_seeds"}`` (:meth:`Estimate.to_dict`);
tables print ``mean [low, high]`` (:meth:`Estimate.format`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_number

__all__ = [
    "Interval",
    "Estimate",
    "Comparison",
    "NOT_DISTINGUISHABLE",
    "check_confidence",
    "t_interval",
    "grid_mean",
    "paired_difference",
    "holm",
    "compare",
    "summary",
    "format_table",
    "bootstrap_interval",
]

NOT_DISTINGUISHABLE = "not distinguishable"


@dataclass(frozen=True)
class Interval:
    """A point estimate (any statistic) with a two-sided confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Estimate:
    """A mean over a (training seed x evaluation seed x case) grid and its confidence interval.

    ``df`` is the t interval's degrees of freedom (``nan`` when no spread can be estimated: one
    cell, where ``low == high == mean``).
    """

    mean: float
    low: float
    high: float
    n_training_seeds: int
    n_eval_seeds: int
    df: float = math.nan

    def to_dict(self) -> dict[str, float | int]:
        """The JSON form used in every summary file."""
        return {"mean": self.mean, "low": self.low, "high": self.high, "n_training_seeds": self.n_training_seeds, "n_eval_seeds": self.n_eval_seeds}

    def format(self, digits: int = 3) -> str:
        """``"mean [low, high]"`` with ``digits`` decimals (thousands separated)."""
        return f"{self.mean:,.{digits}f} [{self.low:,.{digits}f}, {self.high:,.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class Comparison:
    """The paired difference ``a - b`` of two methods on the same grid cells, with its verdict."""

    a: str
    b: str
    difference: Estimate
    p_value: float
    p_adjusted: float
    verdict: str

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference.to_dict(),
            "p_value": self.p_value,
            "p_holm": self.p_adjusted,
            "verdict": self.verdict,
        }


def check_confidence(confidence: object) -> float:
    return check_number("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)


def t_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 and its Student-t confidence interval (ddof=1), elementwise.

    Args:
        samples: ``(S, ...)`` one row per independent replicate (seed).

    Returns:
        ``(mean, low, high)`` with the shape of ``samples[0]``; with one replicate the interval
        is the point itself (no spread can be estimated).
    """
    from scipy import stats

    confidence = check_confidence(confidence)
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    n = samples.shape[0]
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half_width = stats.t.ppf(0.5 + confidence / 2, n - 1) * samples.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half_width, mean + half_width


def _grid(scores: object, name: str) -> np.ndarray:
    """``scores`` as a float ``(n_training_seeds, n_eval_seeds)`` matrix (cases averaged)."""
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an array of numbers, got {describe(scores)}") from None
    if array.ndim < 2 or array.shape[0] < 1 or array.shape[1] < 1 or array.size == 0:
        raise ConfigError(f"{name} must have shape (n_training_seeds, n_eval_seeds, *cases) with at least one of each, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} must be finite, got {describe(array)}")
    return array.reshape(array.shape[0], array.shape[1], -1).mean(axis=2)


def _standard_error(grid: np.ndarray) -> tuple[float, float]:
    """``(se, df)`` of the grid's mean (module docstring); ``(0, nan)`` for a single cell."""
    n_training, n_eval = grid.shape
    terms = []  # (variance of the mean contributed by a factor, its degrees of freedom)
    if n_training > 1:
        terms.append((grid.mean(axis=1).var(ddof=1) / n_training, n_training - 1))
    if n_eval > 1:
        terms.append((grid.mean(axis=0).var(ddof=1) / n_eval, n_eval - 1))
    if not terms:
        return 0.0, math.nan
    variance = sum(v for v, _ in terms)
    denominator = sum(v * v / d for v, d in terms)
    df = variance * variance / denominator if denominator > 0 else float(sum(d for _, d in terms))
    return math.sqrt(variance), df


def grid_mean(scores: object, confidence: float = 0.95, name: str = "scores") -> Estimate:
    """Mean of a ``(n_training_seeds, n_eval_seeds, *cases)`` grid with its t interval.

    Example (2 training seeds x 3 evaluation seeds, additive seed effects)::

        >>> grid_mean([[0, 1, 2], [2, 3, 4]]).format(2)
        '2.00 [-3.98, 7.98]'
    """
    from scipy import stats

    confidence = check_confidence(confidence)
    grid = _grid(scores, name)
    mean = float(grid.mean())
    se, df = _standard_error(grid)
    half = 0.0 if se == 0.0 or math.isnan(df) else float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Estimate(mean, mean - half, mean + half, grid.shape[0], grid.shape[1], df)


def paired_difference(a: object, b: object, confidence: float = 0.95) -> Estimate:
    """:func:`grid_mean` of ``a - b``: two methods scored on the same grid cells."""
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.shape != second.shape:
        raise ConfigError(f"paired scores must have the same shape (same seeds and cases), got {first.shape} and {second.shape}")
    return grid_mean(first - second, confidence, name="a - b")


def _p_value(scores: np.ndarray) -> float:
    """Two-sided p-value of "mean = 0" from the t statistic of :func:`grid_mean`'s interval."""
    from scipy import stats

    grid = _grid(scores, "difference")
    mean = float(grid.mean())
    se, df = _standard_error(grid)
    if math.isnan(df):
        return 1.0  # one cell: nothing can be told
    if se == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    return float(2 * stats.t.sf(abs(mean) / se, df))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    ``p_(i)`` sorted ascending becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting
    where the adjusted value is below ``alpha`` controls the family-wise error rate at ``alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    result = np.empty(m)
    result[order] = adjusted
    return result.tolist()


def compare(
    scores: Mapping[str, object],
    pairs: Sequence[tuple[str, str]] | None = None,
    confidence: float = 0.95,
) -> list[Comparison]:
    """Paired comparisons of the methods of one table, Holm-adjusted over the table.

    Args:
        scores: per method, its ``(n_training_seeds, n_eval_seeds, *cases)`` grid (same shape).
        pairs: ``(a, b)`` comparisons to make; default every pair in the order given.
        confidence: of the intervals; the verdicts use ``alpha = 1 - confidence``.

    Returns:
        One :class:`Comparison` per pair: ``"a > b"`` when the Holm-adjusted p-value of the
        mean difference is below ``alpha`` and the difference is positive, ``"a < b"`` when it is
        negative, else ``"not distinguishable"``.
    """
    confidence = check_confidence(confidence)
    pairs = list(itertools.combinations(scores, 2)) if pairs is None else [tuple(pair) for pair in pairs]
    for pair in pairs:
        for name in pair:
            if name not in scores:
                raise ConfigError(f"comparison names {name!r}, which is not among the methods {list(scores)}")
    differences = [paired_difference(scores[a], scores[b], confidence) for a, b in pairs]
    p_values = [_p_value(np.asarray(scores[a], dtype=np.float64) - np.asarray(scores[b], dtype=np.float64)) for a, b in pairs]
    adjusted = holm(p_values) if pairs else []
    comparisons = []
    for (a, b), difference, p, p_adjusted in zip(pairs, differences, p_values, adjusted):
        if p_adjusted < 1.0 - confidence:
            verdict = f"{a} > {b}" if difference.mean > 0 else f"{a} < {b}"
        else:
            verdict = NOT_DISTINGUISHABLE
        comparisons.append(Comparison(a, b, difference, p, p_adjusted, verdict))
    return comparisons


def summary(scores: Mapping[str, object], pairs: Sequence[tuple[str, str]] | None = None, confidence: float = 0.95) -> dict[str, object]:
    """The JSON block of one table: ``{"metrics": {method: Estimate.to_dict()}, "comparisons":
    [Comparison.to_dict(), ...], "multiple_comparisons": "holm"}``."""
    return {
        "metrics": {name: grid_mean(grid, confidence, name=name).to_dict() for name, grid in scores.items()},
        "comparisons": [comparison.to_dict() for comparison in compare(scores, pairs, confidence)],
        "confidence": confidence,
        "multiple_comparisons": "holm",
    }


def format_table(scores: Mapping[str, object], pairs: Sequence[tuple[str, str]] | None = None, digits: int = 3, title: str = "", confidence: float = 0.95) -> str:
    """A printable table: each method's ``mean [low, high]``, then each comparison's difference
    ``mean [low, high]`` and verdict (Holm over the table)."""
    estimates = {name: grid_mean(grid, confidence, name=name) for name, grid in scores.items()}
    first = next(iter(estimates.values()), None)
    counts = f" ({first.n_training_seeds} training x {first.n_eval_seeds} evaluation seeds, {confidence:.0%} intervals)" if first else ""
    comparisons = compare(scores, pairs, confidence)
    width = max([len(name) for name in scores] + [len(f"{c.a} - {c.b}") for c in comparisons] + [10])
    lines = [f"{title}{counts}"] if title or counts else []
    lines += [f"  {name:<{width}}  {estimate.format(digits)}" for name, estimate in estimates.items()]
    for comparison in comparisons:
        label = f"{comparison.a} - {comparison.b}"
        lines.append(f"  {label:<{width}}  {comparison.difference.format(digits)}  {comparison.verdict} (Holm p = {comparison.p_adjusted:.3g})")
    return "\n".join(lines)


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    n_seeds: int,
    n_advertisers: int,
    resample_advertisers: bool = False,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic(seed_rows, advertiser_columns)``.

    Args:
        statistic: computes the estimate from row indices into the seeds and column indices
            into the advertisers (the identity indices give the point estimate).
        n_seeds: number of seeds (resampled with replacement).
        n_advertisers: number of advertisers (columns).
        resample_advertisers: resample the advertisers too (when they are a random sample of
            the population).

    With few seeds (2-5) these intervals are rough; they say how much the estimate moves with
    the episodes drawn, not more.
    """
    confidence = check_confidence(confidence)
    all_seeds, all_advertisers = np.arange(n_seeds), np.arange(n_advertisers)
    estimate = float(statistic(all_seeds, all_advertisers))
    if n_seeds < 2 and not resample_advertisers:
        return Interval(estimate, estimate, estimate)
    generator = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for resample in range(n_resamples):
        seeds = generator.integers(0, n_seeds, n_seeds)
        advertisers = generator.integers(0, n_advertisers, n_advertisers) if resample_advertisers else all_advertisers
        draws[resample] = statistic(seeds, advertisers)
    tail = (1.0 - confidence) / 2
    # Quantiles taken among the draws themselves (no interpolation), so infinite draws are fine.
    low, high = np.quantile(draws, [tail, 1.0 - tail], method="inverted_cdf")
    return Interval(estimate, float(min(low, estimate)), float(max(high, estimate)))
