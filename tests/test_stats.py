"""auctionsim.stats on known values."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from auctionsim import stats
from auctionsim.errors import ConfigError


def test_one_training_seed_is_the_textbook_t_interval_over_eval_seeds():
    scores = np.array([[1.0, 2.0, 4.0, 7.0, 11.0]])  # (1 training seed, 5 eval seeds)
    estimate = stats.grid_mean(scores)
    expected = scipy_stats.ttest_1samp(scores[0], 0.0).confidence_interval(0.95)
    assert estimate.mean == pytest.approx(5.0)
    assert (estimate.low, estimate.high) == pytest.approx((expected.low, expected.high))
    assert (estimate.n_training_seeds, estimate.n_eval_seeds, estimate.df) == (1, 5, 4)
    # ddof=1: half width = t(0.975, 4) * sd / sqrt(5), sd with ddof=1
    sd = math.sqrt(sum((x - 5.0) ** 2 for x in scores[0]) / 4)
    assert estimate.high - estimate.mean == pytest.approx(2.7764451051977987 * sd / math.sqrt(5))


def test_one_eval_seed_is_the_t_interval_over_training_seeds():
    scores = np.array([[3.0], [5.0], [10.0]])
    expected = scipy_stats.ttest_1samp(scores[:, 0], 0.0).confidence_interval(0.95)
    estimate = stats.grid_mean(scores)
    assert (estimate.low, estimate.high) == pytest.approx((expected.low, expected.high))


def test_crossed_grid_adds_both_factors_with_satterthwaite_df():
    # Additive seeds: rows (training) 0, 2; columns (eval) 0, 1, 2. Row-mean variance 2, column-mean
    # variance 1: se^2 = 2/2 + 1/3 = 4/3, df = (4/3)^2 / (1^2/1 + (1/3)^2/2) = 32/19.
    scores = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    estimate = stats.grid_mean(scores)
    half = scipy_stats.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert estimate.mean == pytest.approx(2.0)
    assert estimate.df == pytest.approx(32 / 19)
    assert (estimate.low, estimate.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert estimate.format(2) == f"2.00 [{2 - half:.2f}, {2 + half:.2f}]"


def test_cases_are_averaged_and_json_form():
    scores = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    estimate = stats.grid_mean(scores)
    assert estimate.to_dict().keys() == {"mean", "low", "high", "n_training_seeds", "n_eval_seeds"}
    assert estimate.to_dict()["n_training_seeds"] == 2 and estimate.to_dict()["n_eval_seeds"] == 3
    assert estimate.mean == pytest.approx(stats.grid_mean(scores.mean(axis=2)).mean)


def test_single_cell_has_no_spread():
    estimate = stats.grid_mean([[4.0]])
    assert estimate.low == estimate.mean == estimate.high == 4.0


def test_paired_difference_removes_shared_seed_effects():
    rng = np.random.default_rng(0)
    market = rng.normal(0, 10, size=(1, 8))  # large evaluation-seed effect shared by both methods
    a = market + 1.0 + rng.normal(0, 0.05, size=(3, 8))
    b = market + rng.normal(0, 0.05, size=(3, 8))
    assert stats.grid_mean(a).low < 0 < stats.grid_mean(a).high  # unpaired: lost in the market noise
    difference = stats.paired_difference(a, b)
    assert 0.9 < difference.low < 1.0 < difference.high < 1.1
    [comparison] = stats.compare({"A": a, "B": b})
    assert comparison.verdict == "A > B" and comparison.p_value < 1e-6
    [reverse] = stats.compare({"A": a, "B": b}, pairs=[("B", "A")])
    assert reverse.verdict == "B < A"


def test_not_distinguishable_and_single_comparison_agrees_with_interval():
    a = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.5]])
    b = np.array([[1.5, 1.0, 3.2], [1.0, 2.5, 3.0]])
    [comparison] = stats.compare({"a": a, "b": b})
    assert comparison.verdict == stats.NOT_DISTINGUISHABLE
    assert comparison.difference.low < 0 < comparison.difference.high
    assert comparison.p_value > 0.05


def test_holm_known_values():
    # Holm (1979) step-down: sorted p (0.01, 0.02, 0.03, 0.04) x (4, 3, 2, 1) = (0.04, 0.06, 0.06, 0.04)
    # made monotone: (0.04, 0.06, 0.06, 0.06); returned in input order.
    assert stats.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 x 0.5 capped at 1; monotone
    assert stats.holm([0.2, 0.01]) == pytest.approx([0.2, 0.02])


def test_holm_turns_a_marginal_comparison_indistinguishable_in_a_table():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3, 5))
    scores = {"A": base + 0.0, "B": base + rng.normal(0, 0.3, size=(3, 5)), "C": base + 2.0}
    comparisons = {(c.a, c.b): c for c in stats.compare(scores)}
    assert comparisons["A", "C"].verdict == "A < C"
    for comparison in comparisons.values():
        assert comparison.p_adjusted >= comparison.p_value


def test_summary_and_table_text():
    scores = {"A": [[1.0, 2.0], [1.5, 2.5]], "B": [[0.0, 1.0], [0.5, 1.5]]}
    block = stats.summary(scores)
    assert block["metrics"]["A"]["mean"] == pytest.approx(1.75)
    assert block["comparisons"][0]["verdict"] == "A > B" and block["multiple_comparisons"] == "holm"
    text = stats.format_table(scores, title="score")
    assert "2 training x 2 evaluation seeds" in text and "A - B" in text and "[" in text


@pytest.mark.parametrize("bad", [[], [1.0, 2.0], [[np.nan, 1.0]], [["a", "b"]]])
def test_bad_grids_are_refused(bad):
    with pytest.raises(ConfigError):
        stats.grid_mean(bad)


def test_paired_shapes_must_match():
    with pytest.raises(ConfigError, match="same shape"):
        stats.paired_difference([[1.0, 2.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(ConfigError, match="not among"):
        stats.compare({"a": [[1.0]]}, pairs=[("a", "b")])


def test_t_interval_is_elementwise():
    samples = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    mean, low, high = stats.t_interval(samples)
    assert mean.tolist() == [3.0, 10.0] and low[1] == high[1] == 10.0
    assert high[0] - mean[0] == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))


def test_bootstrap_interval_brackets_its_estimate():
    values = np.array([[1.0, 2.0], [3.0, 1.0], [2.0, 5.0], [4.0, 0.0]])
    interval = stats.bootstrap_interval(lambda rows, columns: float(values[rows][:, columns].mean(axis=0).max()), 4, 2)
    assert interval.low <= interval.estimate <= interval.high
    assert interval.estimate == pytest.approx(2.5)
