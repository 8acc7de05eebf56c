"""Cross-check an AuctionNet strategy on our market: the player's score, conversions, spend and CPA
over episodes, for comparison with what it does in AuctionNet's own simulator.

AuctionNet (Su et al., NeurIPS 2024) evaluates a strategy as advertiser 0 (budget 2,900, CPA
target 100, category 0) against 47 opponents, with its evaluation config: reserve price 0.0001
and a budget floor of 0.1 (an advertiser below it stops bidding). This script plays the same
set-up on our ``auctionnet`` preset, every bidder written against AuctionNet's
``BaseBiddingStrategy`` interface and driven through
:class:`~auctionsim.compat.auctionnet.AuctionNetPolicy` (the adapter): give your strategy and the
opponents as ``module:Name`` (or ``path/to/file.py:Name``). Nothing of AuctionNet is imported
here: run your strategy in AuctionNet's simulator yourself and compare with the figures below.

* ``--player``: the strategy class (built afresh each episode; its ``budget``, ``cpa``,
  ``category`` and ``remaining_budget`` are set and ``reset()`` is called), or a function
  returning a population policy (e.g. ``AuctionNetPolicy(...)``); any reference
  :func:`agents.populations.named_population` accepts.
* ``--opponents``: the others, a strategy class (everyone plays it), a function returning a
  population policy (e.g. ``AuctionNetPolicy(lambda spec: lineup[spec.advertiser_id])`` for
  AuctionNet's default line-up), or a built-in population name; default ``value``: every opponent
  bids CPA target x pValue (:class:`ValueStrategy`, through the adapter).
* ``--traffic``: optionally a function ``episode index -> ExplicitTraffic`` (e.g. AuctionNet's
  own generated pValues and sigmas) to play the auction on given traffic instead of ours; its
  ticks and rows set the day's ``n_ticks`` and ``impressions_per_episode`` unless given.

Episode ``e`` is market seed ``seed + e``. Per episode the player's score (AuctionNet's:
``conversions x min(1, (CPA target / CPA)^2)``), conversions, expected conversions (sum of
pValue over its exposed impressions, which realised conversions estimate without the
conversion noise), spend, realised CPA and budget use, and the market's realised / expected
conversions; the table gives the mean over episodes with a 95% Student-t interval
(:func:`auctionsim.stats.grid_mean`). Each episode is written to ``--output-dir`` as soon as it
ends (``--resume`` skips those done), with a ``manifest.json``; the last line printed is
``JSON {...}`` holding the figures, the episodes and the manifest.

A full AuctionNet day (500,000 impressions, 48 strategies in Python) takes minutes per episode:
the strategies' own code dominates.

Usage: ``python benchmarks/auctionnet_crosscheck.py --player my_module:MyStrategy [--opponents
module:Name] [--episodes 4] [--seed 0] [--output-dir results/auctionnet-crosscheck] [--resume]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time

import numpy as np

from agents.base import MixedPopulation
from agents.populations import check_population, imported_object, imported_population, named_population
from auctionsim import ExplicitTraffic, Market, presets, warm_up
from auctionsim.compat.auctionnet import AuctionNetPolicy
from auctionsim.envs import AuctionParallelEnv, PopulationPolicy, play_episode
from auctionsim.errors import ConfigError
from auctionsim.runs import atomic_write_json, read_manifest, run_folder
from auctionsim.stats import grid_mean

#: The player's figures in the table, in order (realised CPA over episodes with a conversion).
PLAYER_FIGURES = ("score", "conversions", "expected_conversions", "spend", "realised_cpa", "budget_use")
#: The market's figures (every advertiser together).
MARKET_FIGURES = ("market_conversions", "market_expected_conversions", "market_realised_over_expected", "market_spend")


class ValueStrategy:
    """The default opponent, written as an AuctionNet strategy: bid CPA target x pValue (the
    expected value of the impression; AuctionNet's own value-bidding baseline)."""

    def __init__(self, budget=100, name="ValueStrategy", cpa=2, category=1):
        self.budget, self.remaining_budget, self.name, self.cpa, self.category = budget, budget, name, cpa, category

    def reset(self):
        self.remaining_budget = self.budget

    def bidding(self, timeStepIndex, pValues, pValueSigmas, historyPValueInfo, historyBid, historyAuctionResult, historyImpressionResult, historyLeastWinningCost):
        return self.cpa * pValues


@dataclasses.dataclass(frozen=True)
class CrosscheckConfig:
    """The run's resolved settings (recorded in the manifest; a resumed run must match).

    Attributes:
        player: the player's reference (``module:Name``).
        opponents: the opponents' reference, or ``value`` (:class:`ValueStrategy`) or a built-in
            population name.
        player_id: the player's advertiser id (AuctionNet's evaluation: 0).
        episodes, seed: episodes ``0..episodes-1`` on market seeds ``seed + e``.
        preset: the market preset.
        reserve_price, min_budget_to_bid: AuctionNet's evaluation config (currency).
        n_ticks, impressions_per_episode: override the preset's day (``None``: keep it).
        traffic: a function ``episode -> ExplicitTraffic`` (``module:Name``), or ``None``.
    """

    player: str
    opponents: str = "value"
    player_id: int = 0
    episodes: int = 4
    seed: int = 0
    preset: str = "auctionnet"
    reserve_price: float = 0.0001
    min_budget_to_bid: float = 0.1
    n_ticks: int | None = None
    impressions_per_episode: int | None = None
    traffic: str | None = None
    output_dir: str = "results/auctionnet-crosscheck"
    resume: bool = False

    def market_overrides(self) -> dict[str, object]:
        overrides: dict[str, object] = {"reserve_price": self.reserve_price, "min_budget_to_bid": self.min_budget_to_bid}
        if self.n_ticks is not None:
            overrides["n_ticks"] = self.n_ticks
        if self.impressions_per_episode is not None:
            overrides["impressions_per_episode"] = self.impressions_per_episode
        return overrides


def build_policy(config: CrosscheckConfig, advertiser_ids: np.ndarray) -> PopulationPolicy:
    """Everyone's policy: the player at ``player_id``, the opponents at the other ids."""
    if config.player_id not in advertiser_ids:
        raise ConfigError(f"player_id must be one of the market's advertiser ids, got {config.player_id}")
    opponents = AuctionNetPolicy(ValueStrategy) if config.opponents == "value" else named_population(config.opponents, advertiser_ids)
    return MixedPopulation([([config.player_id], imported_population(config.player))], default=opponents)


def play(config: CrosscheckConfig, episode: int, policy: PopulationPolicy) -> dict[str, object]:
    """Play episode ``episode`` and return its row of figures."""
    overrides, traffic = config.market_overrides(), None
    if config.traffic is not None:
        traffic = imported_object(config.traffic)(episode)
        if not isinstance(traffic, ExplicitTraffic):
            raise ConfigError(f"{config.traffic}({episode}) must return an ExplicitTraffic, got {type(traffic).__name__}")
        # Given traffic sets the day (AuctionNet's generator makes 499,980 or so impressions, not 500,000);
        # an --n-ticks or --impressions-per-episode that disagrees with it is refused by the market.
        overrides.setdefault("n_ticks", len(traffic.impressions_per_tick))
        overrides.setdefault("impressions_per_episode", int(traffic.pvalues.shape[0]))
    scenario = presets.get(config.preset, **overrides)
    env = AuctionParallelEnv(Market(scenario.market, scenario.population, traffic, record_history=False))
    start, cpu = time.perf_counter(), time.process_time()
    record = play_episode(env, policy, seed=config.seed + episode)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    metrics = record.metrics
    row = int(env.market.population.positions_of([config.player_id])[0])
    expected = metrics.value_won / env.market.population.cpa_targets
    conversions = float(metrics.conversions[row])
    return {
        "episode": episode,
        "market_seed": config.seed + episode,
        "score": float(metrics.score[row]),
        "conversions": conversions,
        "expected_conversions": float(expected[row]),
        "spend": float(metrics.spend[row]),
        "realised_cpa": float(metrics.spend[row] / conversions) if conversions > 0 else math.inf,
        "budget_use": float(metrics.spend[row] / metrics.budget[row]),
        "market_conversions": float(metrics.conversions.sum()),
        "market_expected_conversions": float(expected.sum()),
        "market_realised_over_expected": float(metrics.conversions.sum() / expected.sum()),
        "market_spend": float(metrics.spend.sum()),
        "player_tick_spend": [float(tick.spend[row]) for tick in record.ticks],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }


def figures(rows: list[dict[str, object]]) -> dict[str, dict[str, float | int]]:
    """Each figure's mean over episodes with its 95% t interval (episodes with a finite value)."""
    result = {}
    for name in PLAYER_FIGURES + MARKET_FIGURES:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            result[name] = {**grid_mean(finite[None, :]).to_dict(), "n_episodes": int(finite.size)}
    return result


def format_table(config: CrosscheckConfig, rows: list[dict[str, object]], estimates: dict[str, dict[str, float | int]]) -> str:
    lines = [f"player {config.player} (advertiser {config.player_id}) vs opponents {config.opponents} on {config.preset}"
             f"{'' if config.traffic is None else ' with traffic ' + config.traffic}, {len(rows)} episodes, mean [95% CI]"]
    for name, estimate in estimates.items():
        count = "" if estimate["n_episodes"] == len(rows) else f"  ({estimate['n_episodes']} episodes with a conversion)"
        lines.append(f"  {name:<31} {estimate['mean']:>12,.3f} [{estimate['low']:,.3f}, {estimate['high']:,.3f}]{count}")
    seconds = [row["seconds"] for row in rows]
    lines.append(f"  seconds per episode             {np.mean(seconds):>12,.1f} (min {min(seconds):,.1f}, max {max(seconds):,.1f})")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> CrosscheckConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = CrosscheckConfig(player="")
    parser.add_argument("--player", required=True, help="the player: an AuctionNet strategy class as module:Name or path/to/file.py:Name")
    parser.add_argument("--opponents", default=defaults.opponents, help="the opponents: module:Name, 'value' (CPA target x pValue) or a built-in population")
    parser.add_argument("--player-id", type=int, default=defaults.player_id, help="the player's advertiser id")
    parser.add_argument("--episodes", type=int, default=defaults.episodes, help="number of episodes")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="market seed of episode 0")
    parser.add_argument("--preset", default=defaults.preset, help="market preset")
    parser.add_argument("--reserve-price", type=float, default=defaults.reserve_price, help="reserve price (AuctionNet's evaluation: 0.0001)")
    parser.add_argument("--min-budget-to-bid", type=float, default=defaults.min_budget_to_bid, help="budget floor (AuctionNet's: 0.1)")
    parser.add_argument("--n-ticks", type=int, default=None, help="ticks per episode (default: the preset's)")
    parser.add_argument("--impressions-per-episode", type=int, default=None, help="impressions per episode (default: the preset's)")
    parser.add_argument("--traffic", default=None, help="module:Name of a function episode -> ExplicitTraffic (default: our traffic model)")
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where episodes and the manifest are written")
    parser.add_argument("--resume", action="store_true", help="keep the episodes already in --output-dir")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    check_population(args.player)
    if args.opponents != "value":
        check_population(args.opponents)
    if args.traffic is not None:
        imported_object(args.traffic)
    return CrosscheckConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(CrosscheckConfig)})


def main(argv: list[str] | None = None) -> dict:
    config = parse(argv)
    jit_seconds = warm_up()
    rows = []
    with run_folder(config.output_dir, config, resume=config.resume, extendable=("episodes",), ignored=("output_dir", "resume")) as run:
        episodes = run.path / "episodes"
        run.seeds = {"market": [config.seed + e for e in range(config.episodes)]}
        run.extra["jit_seconds"] = jit_seconds
        policy = None
        for episode in range(config.episodes):
            path = episodes / f"episode-{episode:04d}.json"
            if config.resume and path.is_file():
                rows.append(json.loads(path.read_text()))
                continue
            if policy is None:
                scenario = presets.get(config.preset, **config.market_overrides())
                policy = build_policy(config, scenario.population.ids)
            episodes.mkdir(exist_ok=True)
            rows.append(play(config, episode, policy))
            atomic_write_json(path, rows[-1])
            print(f"episode {episode}: score {rows[-1]['score']:.2f}, conversions {rows[-1]['conversions']:.0f}, spend {rows[-1]['spend']:.1f}, "
                  f"{rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    estimates = figures(rows)
    print(format_table(config, rows, estimates))
    payload = {"benchmark": "auctionnet_crosscheck", "figures": estimates, "episodes": rows, "manifest": read_manifest(pathlib.Path(config.output_dir))}
    print("JSON " + json.dumps(payload))
    return payload


if __name__ == "__main__":
    main()
