"""Metric definitions."""

from __future__ import annotations

import numpy as np

from auctionsim.metrics import EpisodeMetrics, cpa_ratio, realised_cpa, score


def test_realised_cpa_and_ratio():
    spend = np.array([100.0, 50.0, 0.0, 30.0])
    conversions = np.array([2.0, 0.0, 0.0, 3.0])
    np.testing.assert_array_equal(realised_cpa(spend, conversions), [50.0, np.inf, 0.0, 10.0])
    np.testing.assert_array_equal(cpa_ratio(spend, conversions, np.array([25.0, 10.0, 10.0, 20.0])), [2.0, np.inf, 0.0, 0.5])


def test_score_penalises_overspend_with_the_exponent():
    conversions = np.array([10.0, 10.0, 10.0, 0.0])
    ratio = np.array([0.5, 2.0, np.inf, 3.0])
    np.testing.assert_allclose(score(conversions, ratio, 2.0), [10.0, 2.5, 0.0, 0.0])
    np.testing.assert_allclose(score(conversions, ratio, 1.0), [10.0, 5.0, 0.0, 0.0])


def test_totals_do_not_depend_on_order():
    values = np.random.default_rng(0).lognormal(0, 3, 1000)
    ones = np.ones(1000)
    kwargs = dict(conversions=ones, spend=values, wins=ones, exposures=ones, budget=values * 2, cpa_target=ones)
    first = EpisodeMetrics.from_totals(ids=np.arange(1000), value_won=values, **kwargs)
    order = np.random.default_rng(1).permutation(1000)
    second = EpisodeMetrics.from_totals(
        ids=np.arange(1000)[order], value_won=values[order], **{k: v[order] for k, v in kwargs.items()}
    )
    assert first.social_welfare == second.social_welfare and first.revenue == second.revenue
