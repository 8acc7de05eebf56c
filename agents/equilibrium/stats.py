"""Confidence intervals for estimates averaged over episodes (seeds).

* :func:`t_interval`: Student-t interval of a mean over seeds (per advertiser gains are paired
  differences on common seeds, so their noise is small).
* :func:`bootstrap_interval`: percentile bootstrap over seeds (and optionally over sampled
  advertisers) for statistics that are not means: a maximum over advertisers (BPG Eq. 15), a
  ratio to the social welfare. With few seeds (2-5) these intervals are rough; they say how
  much the estimate moves with the episodes drawn, not more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from auctionsim.validation import check_number

__all__ = ["Interval", "t_interval", "bootstrap_interval", "check_confidence"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def check_confidence(confidence: object) -> float:
    return check_number("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)


def t_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 and its Student-t confidence interval.

    Args:
        samples: ``(S, ...)`` one row per seed.

    Returns:
        ``(mean, low, high)`` with the shape of ``samples[0]``; with one seed the interval is
        the point itself (no spread can be estimated).
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
