"""benchmarks/auctionnet_crosscheck.py: an AuctionNet-interface player against AuctionNet-interface
opponents through the adapter, figures as the market measures them, resumable, on given traffic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auctionsim import ExplicitTraffic, Market, presets
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, play_episode
from auctionsim.errors import ConfigError
from auctionsim.runs import RunError
from benchmarks import auctionnet_crosscheck

SMALL = ["--n-ticks", "4", "--impressions-per-episode", "6000"]
VALUE = "benchmarks.auctionnet_crosscheck:ValueStrategy"


def zero_for_the_player(episode: int) -> ExplicitTraffic:
    """Given traffic on which advertiser 0 (the player) has pValue 0 everywhere."""
    generator = np.random.default_rng(episode)
    pvalues = generator.uniform(0, 0.01, (2000, 48))
    pvalues[:, 0] = 0.0
    return ExplicitTraffic(pvalues=pvalues, sigmas=np.zeros_like(pvalues), impressions_per_tick=np.full(4, 500))


def test_value_strategies_through_the_adapter_score_as_native_value_bidding(tmp_path, capsys):
    payload = auctionnet_crosscheck.main(["--player", VALUE, "--episodes", "2", "--seed", "3", "--output-dir", str(tmp_path), *SMALL])
    assert capsys.readouterr().out.splitlines()[-1] == "JSON " + json.dumps(payload)
    # Every advertiser bidding CPA target x pValue is the native multiplier 1.0, on AuctionNet's evaluation config.
    scenario = presets.get("auctionnet", reserve_price=0.0001, min_budget_to_bid=0.1, n_ticks=4, impressions_per_episode=6000)
    env = AuctionParallelEnv(Market(scenario.market, scenario.population))
    for row in payload["episodes"]:
        metrics = play_episode(env, FixedMultipliers(1.0), seed=row["market_seed"]).metrics
        assert row["conversions"] == metrics.conversions[0] and row["spend"] == metrics.spend[0] and row["score"] == metrics.score[0]
        assert row["expected_conversions"] == pytest.approx(metrics.value_won[0] / scenario.population.cpa_targets[0], rel=1e-12)
        assert row["market_conversions"] == metrics.conversions.sum() and sum(row["player_tick_spend"]) == pytest.approx(row["spend"])
    assert [row["market_seed"] for row in payload["episodes"]] == [3, 4]
    figure = payload["figures"]["spend"]
    assert figure["n_episodes"] == 2 and figure["low"] <= figure["mean"] <= figure["high"]
    assert payload["manifest"]["status"] == "complete" and payload["manifest"]["config"]["player"] == VALUE


def test_a_resumed_run_keeps_its_episodes_and_refuses_another_config(tmp_path):
    arguments = ["--player", VALUE, "--output-dir", str(tmp_path), *SMALL]
    first = auctionnet_crosscheck.main([*arguments, "--episodes", "1"])
    written = (tmp_path / "episodes" / "episode-0000.json").read_text()
    resumed = auctionnet_crosscheck.main([*arguments, "--episodes", "2", "--resume"])
    assert resumed["episodes"][0] == first["episodes"][0] and len(resumed["episodes"]) == 2
    assert (tmp_path / "episodes" / "episode-0000.json").read_text() == written
    with pytest.raises(RunError, match="seed"):
        auctionnet_crosscheck.main([*arguments, "--episodes", "2", "--seed", "5", "--resume"])


def test_given_traffic_replaces_ours_and_sets_the_day(tmp_path):
    traffic = ["--traffic", "test_auctionnet_crosscheck:zero_for_the_player"]
    payload = auctionnet_crosscheck.main(["--player", VALUE, "--episodes", "1", "--output-dir", str(tmp_path / "given"), *traffic])
    row = payload["episodes"][0]
    assert row["expected_conversions"] == 0.0 and row["spend"] == 0.0 and row["market_expected_conversions"] > 0
    assert len(row["player_tick_spend"]) == 4  # its 4 ticks and 2,000 rows, not the preset's day
    with pytest.raises(ConfigError, match="impressions_per_episode is 6000"):
        auctionnet_crosscheck.main(["--player", VALUE, "--episodes", "1", "--output-dir", str(tmp_path / "clash"), *traffic, *SMALL])
