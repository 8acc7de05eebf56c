"""Market and advertiser metrics computed from episode totals.

Definitions (all per episode; money in currency units):

* value won ``v_i``: sum of ``pValue x CPA target`` over advertiser ``i``'s exposed impressions
  (the expected value of what it won; BPG's return ``G_i``).
* social welfare: ``sum_i v_i``. Platform revenue: ``sum_i spend_i``.
* realised CPA: ``spend / conversions`` (``inf`` with spend but no conversion, ``0`` with neither).
* CPA ratio: ``realised CPA / CPA target`` (> 1 means the CPA constraint is violated).
* budget utilisation: ``spend / budget``.
* score (AuctionNet): ``conversions x min(1, (1 / CPA ratio) ** exponent)`` with exponent 2 in
  AuctionNet's competition and 1 in the LBM paper.

Totals over advertisers, here and in the market's tick statistics, use :func:`exact_total`
(``math.fsum``, exactly rounded), so they do not depend on the order of the advertisers in the
arrays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["exact_total", "realised_cpa", "cpa_ratio", "score", "EpisodeMetrics", "format_table"]


def exact_total(values: np.ndarray) -> float:
    """The exactly rounded sum of ``values`` (``math.fsum``): the same for any order of the
    advertisers, unlike ``np.sum``, whose pairwise rounding depends on the order."""
    return math.fsum(np.asarray(values, dtype=np.float64).ravel().tolist())


def realised_cpa(spend: np.ndarray, conversions: np.ndarray) -> np.ndarray:
    """Spend per conversion; ``inf`` where money was spent without a conversion, ``0`` where none was."""
    spend = np.asarray(spend, dtype=np.float64)
    conversions = np.asarray(conversions, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cpa = spend / conversions
    return np.where(conversions > 0, cpa, np.where(spend > 0, np.inf, 0.0))


def cpa_ratio(spend: np.ndarray, conversions: np.ndarray, cpa_target: np.ndarray) -> np.ndarray:
    """Realised CPA over CPA target."""
    return realised_cpa(spend, conversions) / np.asarray(cpa_target, dtype=np.float64)


def score(conversions: np.ndarray, ratio: np.ndarray, exponent: float = 2.0) -> np.ndarray:
    """``conversions x min(1, (1 / CPA ratio) ** exponent)``: conversions, penalised for overspend."""
    ratio = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore"):
        penalty = np.where(ratio > 1.0, (1.0 / ratio) ** exponent, 1.0)
    return np.asarray(conversions, dtype=np.float64) * penalty


@dataclass(frozen=True, eq=False)
class EpisodeMetrics:
    """Per-advertiser results of an episode (arrays in population order) and market totals."""

    ids: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    wins: np.ndarray
    exposures: np.ndarray
    budget: np.ndarray
    cpa_target: np.ndarray
    realised_cpa: np.ndarray
    cpa_ratio: np.ndarray
    budget_utilisation: np.ndarray
    score: np.ndarray
    social_welfare: float
    revenue: float
    total_conversions: float
    total_score: float

    @classmethod
    def from_totals(
        cls,
        ids: np.ndarray,
        conversions: np.ndarray,
        spend: np.ndarray,
        value_won: np.ndarray,
        wins: np.ndarray,
        exposures: np.ndarray,
        budget: np.ndarray,
        cpa_target: np.ndarray,
        score_exponent: float = 2.0,
    ) -> "EpisodeMetrics":
        """Derive every metric from the per-advertiser totals."""
        ratio = cpa_ratio(spend, conversions, cpa_target)
        scores = score(conversions, ratio, score_exponent)
        return cls(
            ids=np.asarray(ids),
            conversions=np.asarray(conversions, dtype=np.float64),
            spend=np.asarray(spend, dtype=np.float64),
            value_won=np.asarray(value_won, dtype=np.float64),
            wins=np.asarray(wins, dtype=np.float64),
            exposures=np.asarray(exposures, dtype=np.float64),
            budget=np.asarray(budget, dtype=np.float64),
            cpa_target=np.asarray(cpa_target, dtype=np.float64),
            realised_cpa=realised_cpa(spend, conversions),
            cpa_ratio=ratio,
            budget_utilisation=np.asarray(spend, dtype=np.float64) / np.asarray(budget, dtype=np.float64),
            score=scores,
            social_welfare=exact_total(value_won),
            revenue=exact_total(spend),
            total_conversions=exact_total(conversions),
            total_score=exact_total(scores),
        )

    def market_summary(self) -> dict[str, float]:
        """Market totals as a plain dict (JSON-ready)."""
        return {
            "n_advertisers": int(self.ids.shape[0]),
            "social_welfare": self.social_welfare,
            "revenue": self.revenue,
            "total_conversions": self.total_conversions,
            "total_score": self.total_score,
            "mean_budget_utilisation": float(np.mean(self.budget_utilisation)),
            "share_within_cpa_target": float(np.mean(self.cpa_ratio <= 1.0)),
        }

    def to_dict(self) -> dict[str, object]:
        """All fields as JSON-ready Python values (arrays become lists; ``inf`` stays ``inf``)."""
        return {
            key: (value.tolist() if isinstance(value, np.ndarray) else value)
            for key, value in asdict(self).items()
        }


def format_table(metrics: EpisodeMetrics, max_rows: int = 60) -> str:
    """A per-advertiser text table (first ``max_rows`` advertisers) with a totals line."""
    header = f"{'id':>7} {'budget':>9} {'cpa_tgt':>8} {'spend':>9} {'util':>6} {'conv':>6} {'cpa':>8} {'ratio':>6} {'score':>7} {'value':>9}"
    lines = [header, "-" * len(header)]
    for row in range(min(max_rows, metrics.ids.shape[0])):
        lines.append(
            f"{int(metrics.ids[row]):>7} {metrics.budget[row]:>9.1f} {metrics.cpa_target[row]:>8.1f} "
            f"{metrics.spend[row]:>9.1f} {metrics.budget_utilisation[row]:>6.2f} {metrics.conversions[row]:>6.0f} "
            f"{metrics.realised_cpa[row]:>8.1f} {metrics.cpa_ratio[row]:>6.2f} {metrics.score[row]:>7.1f} "
            f"{metrics.value_won[row]:>9.1f}"
        )
    if metrics.ids.shape[0] > max_rows:
        lines.append(f"... {metrics.ids.shape[0] - max_rows} more advertisers")
    lines.append("-" * len(header))
    lines.append(
        f"{'total':>7} {metrics.budget.sum():>9.0f} {'':>8} {metrics.revenue:>9.1f} "
        f"{metrics.revenue / metrics.budget.sum():>6.2f} {metrics.total_conversions:>6.0f} {'':>8} {'':>6} "
        f"{metrics.total_score:>7.1f} {metrics.social_welfare:>9.1f}"
    )
    return "\n".join(lines)
