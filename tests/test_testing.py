"""auctionsim.testing: the public checkers pass our mechanisms, markets and bidders, and catch a
position-dependent mechanism and a row-dependent bidder with a minimal counterexample."""

from __future__ import annotations

import numpy as np
import pytest

from agents.baselines import CPAPacing, PIDPacing
from auctionsim import ConfigError, MarketConfig, mechanisms
from auctionsim.envs import FixedMultipliers, PopulationPolicy
from auctionsim.testing import MECHANISM_PROPERTIES, check_market, check_mechanism, check_policy, strategies


def first_listed_wins_ties(auction, ranked_index, ranked_bids, prices):
    """GSP whose equal bids go to the bidder listed first (a stable sort): depends on the order."""
    bids = auction.bids
    taking_part = np.flatnonzero((bids > 0) & (bids >= auction.reserve))
    order = taking_part[np.argsort(-bids[taking_part], kind="stable")][: ranked_index.shape[0]]
    n_ranked, n_winners = order.shape[0], min(order.shape[0], prices.shape[0])
    ranked_index[:n_ranked] = order
    ranked_bids[:n_ranked] = bids[order]
    prices[:n_winners] = np.maximum(auction.reserve, np.append(bids[order][1:], auction.reserve))[:n_winners]
    return n_ranked, n_winners


class FirstRowsBidHigher(PopulationPolicy):
    """Bids 1.5x for the first row down to 0.5x for the last: depends on the row."""

    def act(self, observations):
        return np.linspace(1.5, 0.5, observations.shape[0])


# ---------------------------------------------------------------------------------------- ours pass
# (the mechanisms: tests/test_mechanisms.py; whole episodes per mechanism: tests/test_market.py)
def test_built_in_market_configurations_pass():
    assert check_market(max_examples=6)


@pytest.mark.parametrize("policy", [FixedMultipliers(1.0), PIDPacing(), CPAPacing()], ids=lambda p: type(p).__name__)
def test_our_bidders_do_not_depend_on_their_row(policy):
    assert check_policy(policy, max_examples=6)


# ---------------------------------------------------------------------------------------- caught
def test_a_position_dependent_mechanism_is_caught_with_a_minimal_counterexample():
    report = check_mechanism(first_listed_wins_ties, max_examples=60)
    assert not report and [failure.name for failure in report.failures] == ["permutation_equivariant"]
    failure = report["permutation_equivariant"]
    # Shrunk to its essence: two equal bids, listed the other way round.
    example = failure.counterexample
    assert len(example["bids"]) == 2 and example["bids"][0] == example["bids"][1]
    assert example["contest_order"] == [1, 0]
    assert "became" in failure.reason
    with pytest.raises(AssertionError, match="permutation_equivariant"):
        report.raise_for_failure()
    assert "smallest counterexample" in str(report)


def test_a_row_dependent_bidder_is_caught_with_a_minimal_counterexample():
    report = check_policy(FirstRowsBidHigher(), max_examples=20)
    assert not report and report["deterministic"].held
    failure = report["permutation_equivariant"]
    assert not failure.held and len(failure.counterexample["ids"]) == 2 and failure.counterexample["order"] == [1, 0]
    assert "tick 0" in failure.reason


def test_a_price_above_the_bid_is_caught():
    def overcharging(auction, ranked_index, ranked_bids, prices):
        n_ranked, n_winners = mechanisms.gsp(auction, ranked_index, ranked_bids, prices)
        prices[:n_winners] = ranked_bids[:n_winners] * 1.01
        return n_ranked, n_winners

    report = check_mechanism(overcharging, properties=["prices_at_most_bids", "deterministic"], max_examples=20)
    assert not report["prices_at_most_bids"].held and report["deterministic"].held
    assert report["prices_at_most_bids"].counterexample["bids"] and "above its bid" in report["prices_at_most_bids"].reason


# ---------------------------------------------------------------------------------------- API
def test_unknown_properties_are_named():
    with pytest.raises(ConfigError, match="properties of a mechanism must be some of contract"):
        check_mechanism("gsp", properties=["fast"])
    assert MECHANISM_PROPERTIES[0] == "contract"
    with pytest.raises(ConfigError, match="config must be a MarketConfig"):
        check_market("gsp")
    with pytest.raises(ConfigError, match="max_examples must be >= 1, got 0"):
        check_policy(FixedMultipliers(), max_examples=0)
    with pytest.raises(ConfigError, match="rtol must be >= 0.0"):
        check_mechanism("gsp", rtol=-1.0)


def test_check_market_takes_a_config_and_caps_its_candidates():
    report = check_market(MarketConfig(mechanism="vcg", candidates_per_impression=4), properties=["budget_cap"], max_examples=4)
    assert report and report.subject == "market with mechanism 'vcg'"


def test_strategies_draw_valid_small_inputs():
    from hypothesis import given, settings

    @settings(max_examples=15)
    @given(strategies.populations(), strategies.market_configs(), strategies.permutations(5))
    def check(population, config, order):
        assert 2 <= len(population) <= 8 and len(set(population.ids.tolist())) == len(population)
        assert config.n_slots <= 3
        assert sorted(order.tolist()) == list(range(5))

    check()
