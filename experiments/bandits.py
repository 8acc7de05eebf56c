"""Bandit bidders on our market: the Batch EXP3 paper's setting, regret, and its Section 5.2 failure.

Reproduces *Learning Optimal Bidding Strategy: Case Study in E-Commerce Advertising* (Batch EXP3)
on auctionsim:

* **Setting.** A bidder sells several products; each product is advertised by one advertiser
  in its own keyword market: the 8 AuctionNet advertisers of one category, the others driven by
  baseline bidders (PID pacing, CPA pacing, online LP, fixed multipliers). Products never meet in
  an auction (the paper's Assumption 1: independent items, one learner each). A day has 8 ticks,
  the paper's 3-hour bid placements (rounds); a batch is one day (``B = 8``) and feedback comes
  two days late (``D = 2``), the paper's daily update and 2-day conversion window. The reward is
  profit ``value - cost`` (the product's focal advertiser has no budget cap, as a sponsored-search
  product has none per click), normalised by the paper's traffic weights and 5%/95% min-max
  fitted on a warm-up log of uniformly random bidding. Bids are the 14 multipliers of
  ``DEFAULT_BID_GRID`` (finer at the low end, like the paper's 14 cent bids).
* **Regret.** EXP3 (online, immediate feedback), Batch EXP3 and Batch EXP3-IX (both ``B = 8``,
  ``D = 2``) at their theory learning rates, and Batch EXP3 at 10x its theory rate; regret
  against the best fixed bid per product in hindsight, computed by replaying the same days with
  every fixed bid (policy regret: the pacing rivals react to the learner, so the market is not
  an oblivious adversary), next to the explicit Theorem 3 bound
  (:func:`agents.bandits.regret_bound`). All learners share one seed (common random numbers).
* **Heatmaps.** Each product's bid probabilities day by day (the paper's Figures 4-6).
* **Snowballing (Section 5.2).** A low-traffic product with realised (sparse) conversion value:
  Batch EXP3 with a mis-specified, large learning rate locks onto bids it happened not to place
  early, often unprofitable ones; a lower (or the theory) rate, or EXP3-IX at the same large
  rate, mitigates it (Section 6). Many seeds, one learner item per seed.

What ``--quick`` (45 days, the length of the paper's live test) measured, seed 0:

* Regret in normalised reward, 4 products x 360 rounds: EXP3 79, Batch EXP3 103, Batch EXP3-IX
  110, Batch EXP3 at 10x rate 59; Theorem 3 bounds 652, 1269, 1269, 6410. Batching and delay
  cost regret, as Theorem 3 says; every curve bends (regret after all rounds / after half of
  them: 1.5-1.6). Profit: 5.7k, 3.4k, 2.9k, 7.3k against 14.1k for the best fixed bids: at
  theory rates 45 days are too short to concentrate on 14 bids (the heatmaps move slowly); the
  paper's policies concentrated within weeks because its live rate was set by hand.
* Section 5.2 reproduced: with ``eta = 1`` 15% of seed-days put most probability on
  unprofitable bids and 27% have a degenerate policy (one bid > 80%), jumping from bid to bid;
  10x lower rate: 0.4% and 0%; theory rate: 0% and 0%; EXP3-IX at ``eta = 1``: 1.3% and 0%.
* Also like the paper's low-traffic products (Section 5.1, Figure 6: "switched to lower bid
  values a little bit early"): the clipped min-max normalisation makes the *normalised* reward
  peak at the lowest bids (0.64 per round at 0.1-0.4 vs 0.59 at the most profitable 0.9-1.0),
  because a sparse product's rare conversions land above the 95th percentile and are clipped
  to 1 while its costs are not. The bandit maximises the normalised reward, not profit.

Where our market differs from the paper's: a bid is a multiplier of the advertiser's value per
impression (``multiplier x CPA target x pValue``), not an absolute max-CPC in cents; a product's
"keyword market" is a small auctionsim market (8 advertisers, GSP with several slots, budgets
paced by baseline bidders) rather than Google Ads' black box; a round is one market tick of 8
per day; the value is the expected (or realised) conversion value, known exactly, where the
paper's is a 2-day attributed partial profit; the delay is exact (``D = 2`` batches), not an
attribution window.

Run ``python -m experiments.bandits [--quick]``; raw results go to ``results/bandits/``
(``results.json`` + ``results.npz``, tidy CSVs, ``summary.json``) and the PNG plots next to
them; ``python -m experiments.bandits --plot-only`` redraws plots and summary from those files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

import auctionsim
from agents import (
    CPAPacing,
    FixedMultipliers,
    MixedPopulation,
    OnlineLP,
    PIDPacing,
    PopulationPolicy,
)
from agents.bandits import BatchExp3, Exp3, UniformGridBids, regret_bound
from agents.datasets import collect_dataset
from auctionsim import Market, MarketConfig, Population
from auctionsim.envs import DEFAULT_BID_GRID, AuctionParallelEnv, SingleBidderEnv
from auctionsim.envs.wrappers import (
    PROFIT_VALUES,
    BatchedDelayedFeedback,
    NormalizedProfit,
    ProfitNormalizer,
    ProfitReward,
    tick_profit,
)
from auctionsim.errors import ConfigError
from auctionsim.presets import auctionnet_population
from auctionsim.validation import check_int, check_number
from experiments import args as arguments


@dataclass
class Args:
    seed: int = 0
    """seed of the market days and of the learners' draws"""
    quick: bool = False
    """a short run (about 1.3 CPU-minutes, 4 wall-clock minutes on a loaded 2-core machine): 45 days, 10 snowball seeds"""
    plot_only: bool = False
    """redraw the plots and summary from the saved results (results.json + results.npz)"""
    days: int = 240
    """days each learner plays (8 rounds a day)"""
    ticks_per_day: int = 8
    """rounds per day: the paper's 3-hour bid placements"""
    impressions_per_day: int = 20_000
    """impressions per day in each product's keyword market"""
    batch_size: int = 8
    """B: rounds per batch (one day, the paper's daily update)"""
    delay: int = 2
    """D: batches between a round and its update (the paper's 2-day conversion window)"""
    warmup_days: int = 14
    """days of uniformly random bidding logged to fit the reward normalisation"""
    value: str = "expected"
    """value of the profit reward in the regret experiment: "expected" or "realised" """
    fast_rate_factor: float = 10.0
    """learning rate of the fourth regret learner, as a multiple of Batch EXP3's theory rate"""
    snowball_days: int = 90
    """days of the Section 5.2 experiment"""
    snowball_seeds: int = 24
    """independent runs per variant in the Section 5.2 experiment"""
    snowball_impressions_per_day: int = 4_000
    """traffic of the low-traffic product (sparse conversions)"""
    snowball_learning_rate: float = 1.0
    """the mis-specified learning rate (roughly 100x the theory rate)"""
    output_dir: str = "results/bandits"
    """where the raw results (JSON, NPZ, CSV) and the plots go"""

    def __post_init__(self) -> None:
        if self.quick:
            # 45 days: the length of the paper's live test (Dec 16 - Jan 29).
            self.days, self.snowball_days, self.snowball_seeds, self.warmup_days = 45, 45, 10, 7
        check_int("seed", self.seed, low=0)
        for name in ("days", "ticks_per_day", "impressions_per_day", "batch_size", "warmup_days", "snowball_days", "snowball_seeds", "snowball_impressions_per_day"):
            check_int(name, getattr(self, name), low=1)
        check_int("delay", self.delay, low=0)
        check_number("snowball_learning_rate", self.snowball_learning_rate, low=0.0, low_open=True)
        check_number("fast_rate_factor", self.fast_rate_factor, low=0.0, low_open=True)
        if self.value not in PROFIT_VALUES:
            raise ConfigError(f"value must be one of {', '.join(PROFIT_VALUES)}, got {self.value!r}")


# Products: (keyword category of AuctionNet, focal advertiser's place in it, rivals' bidders).
PRODUCTS = (
    ("product 0: PID-pacing rivals", 0, 2, "pid"),
    ("product 1: CPA-pacing rivals", 1, 5, "cpa"),
    ("product 2: PID and fixed-bid rivals", 2, 1, "pid+fixed"),
    ("product 3: online-LP and CPA rivals", 3, 6, "olp+cpa"),
)
SNOWBALL_PRODUCT = ("low-traffic product: PID and CPA rivals", 4, 3, "pid+cpa")
GRID = np.asarray(DEFAULT_BID_GRID)
K = GRID.size


# ---------------------------------------------------------------------------------- the setting
def keyword_market(category: int, focal_place: int, impressions_per_day: int, ticks_per_day: int) -> tuple[Market, int]:
    """One product's keyword market: the 8 AuctionNet advertisers of ``category`` (budgets scaled
    to the market's traffic), the ``focal_place``-th of them uncapped (it sells the product)."""
    base = auctionnet_population()
    rows = np.flatnonzero(base.categories == category)
    budgets = base.budgets[rows] * impressions_per_day / 500_000 * 48 / ticks_per_day
    budgets[focal_place] = 1e9
    population = Population(ids=base.ids[rows], budgets=budgets, cpa_targets=base.cpa_targets[rows], categories=np.zeros(rows.size, dtype=np.int64))
    config = MarketConfig(n_ticks=ticks_per_day, impressions_per_episode=impressions_per_day)
    return Market(config, population), int(base.ids[rows[focal_place]])


def rivals(kind: str, ids: np.ndarray) -> PopulationPolicy:
    """The baseline bidders of the other advertisers of a keyword market."""
    if kind == "pid":
        return PIDPacing()
    if kind == "cpa":
        return CPAPacing()
    if kind == "pid+fixed":
        return MixedPopulation([(ids[::2], PIDPacing())], default=FixedMultipliers(0.8))
    if kind == "pid+cpa":
        return MixedPopulation([(ids[::2], PIDPacing())], default=CPAPacing())
    return MixedPopulation([(ids[::2], OnlineLP())], default=CPAPacing())


def product_env(product: tuple, args: Args, impressions_per_day: int) -> SingleBidderEnv:
    _, category, place, kind = product
    market, focal = keyword_market(category, place, impressions_per_day, args.ticks_per_day)
    return SingleBidderEnv(market, population=rivals(kind, market.population.ids), focal=focal, bid_grid=GRID)


def fit_normalizer(product: tuple, args: Args, impressions_per_day: int, value: str) -> ProfitNormalizer:
    """Warm-up log (the product's "historical profit"): the focal advertiser bids uniformly at
    random from the grid for ``warmup_days`` days; fit the traffic weights and percentiles."""
    env = product_env(product, args, impressions_per_day)
    behaviour = MixedPopulation([([env.focal_id], UniformGridBids(GRID))], default=rivals(product[3], env.market.population.ids))
    log = collect_dataset(AuctionParallelEnv(env.market), behaviour, episodes=args.warmup_days, seed=10_000 + args.seed, progress=False)
    return ProfitNormalizer.from_log(log, value=value)


def focal_profit(env: SingleBidderEnv, value: str) -> float:
    """Ground-truth profit of the tick just played (for evaluation only; the learner gets it late)."""
    result, row = env.market.history[-1], env.focal_row
    cpa = env.market.population.cpa_targets[row]
    return float(tick_profit(value, result.spend[row], result.value_won[row], result.conversions[row], cpa))


# ---------------------------------------------------------------------------------- playing
def play(learner: Exp3, envs: list, days: int, seeds: list[int], value: str, desc: str) -> dict:
    """Run one learner (one item per env) for ``days`` days on ``envs`` wrapped in
    :class:`BatchedDelayedFeedback`; the learner updates only from revealed feedback.

    Returns per-round ``arms``, ground-truth ``profit`` (of kind ``value``), ``expected_profit``
    and normalised ``reward`` (``(T, C)``), and the ``policy`` after each day (``(days, C, k)``)."""
    ticks = envs[0].unwrapped.market.n_ticks
    arms, profit, expected_profit, reward, policy = [], [], [], [], []
    for env, seed in zip(envs, seeds):
        env.reset(seed=seed)
    for day in tqdm(range(days), desc=desc, leave=False, unit="day"):
        if day:
            for env in envs:
                env.reset()
        for tick in range(ticks):
            chosen = learner.act()
            revealed = []
            profits, expected, rewards = np.zeros(len(envs)), np.zeros(len(envs)), np.zeros(len(envs))
            for item, env in enumerate(envs):
                _, _, terminated, _, info = env.step(int(chosen[item]))
                single = env.unwrapped
                profits[item] = focal_profit(single, value)
                expected[item] = focal_profit(single, "expected")
                normalizer = env.get_wrapper_attr("normalizer")
                rewards[item] = normalizer.normalize(profits[item], tick, [single.focal_id])[0]
                revealed.append(info.get("feedback"))
                if terminated:
                    raise RuntimeError("a product's focal advertiser ran out of budget; products are uncapped")
            if revealed[0] is not None:  # every product's envs run in lockstep
                for position, round_index in enumerate(revealed[0]["rounds"]):
                    learner.learn([feedback["rewards"][position] for feedback in revealed], round_index=int(round_index))
            arms.append(chosen)
            profit.append(profits)
            expected_profit.append(expected)
            reward.append(rewards)
        policy.append(learner.probabilities())
    return {
        "arms": np.array(arms),
        "profit": np.array(profit),
        "expected_profit": np.array(expected_profit),
        "reward": np.array(reward),
        "policy": np.array(policy),
    }


def play_fixed_bids(product: tuple, args: Args, normalizer: ProfitNormalizer, days: int, seed: int, impressions: int, value: str) -> dict:
    """Every fixed bid of the grid on the same days as the learners: ``(k, days)`` daily profit
    (of kind ``value``), daily expected profit and daily normalised reward."""
    env = NormalizedProfit(ProfitReward(product_env(product, args, impressions), value), normalizer)
    profit, expected, reward = np.zeros((K, days)), np.zeros((K, days)), np.zeros((K, days))
    for arm in tqdm(range(K), desc=f"fixed bids, {product[0][:9]}", leave=False):
        env.reset(seed=seed)
        for day in range(days):
            if day:
                env.reset()
            truncated = False
            while not truncated:
                _, normalised, _, truncated, info = env.step(arm)
                profit[arm, day] += info["profit"]
                expected[arm, day] += info["value_won"] - info["spend"]
                reward[arm, day] += normalised
    return {"profit": profit, "expected_profit": expected, "reward": reward}


def wrapped_env(product: tuple, args: Args, normalizer: ProfitNormalizer, impressions: int, value: str, batch_size: int, delay: int):
    """The learner's view of a product: profit -> paper normalisation -> batched, delayed feedback."""
    env = product_env(product, args, impressions)
    return BatchedDelayedFeedback(NormalizedProfit(ProfitReward(env, value), normalizer), batch_size, delay)


def regret_algorithms(args: Args, horizon: int, n_items: int, seed: int) -> dict:
    """The learners compared for regret, with their feedback schedule ``(B, D)``: EXP3 gets
    immediate feedback, the others the paper's batches and delay. Theory rates, plus Batch EXP3
    at ``fast_rate_factor`` x its theory rate (the paper set its live rates by hand)."""
    batch = dict(batch_size=args.batch_size, delay=args.delay, seed=seed)
    theory = BatchExp3(K, n_items, horizon=horizon, **batch)
    fast = BatchExp3(K, n_items, learning_rate=theory.learning_rate * args.fast_rate_factor, **batch)
    ix = BatchExp3(K, n_items, horizon=horizon, implicit_exploration=theory.learning_rate / 2, **batch)
    return {
        "EXP3": (Exp3(K, n_items, horizon=horizon, seed=seed), 1, 0),
        "Batch EXP3": (theory, args.batch_size, args.delay),
        "Batch EXP3-IX": (ix, args.batch_size, args.delay),
        f"Batch EXP3, {args.fast_rate_factor:g}x rate": (fast, args.batch_size, args.delay),
    }


def snowball_variants(args: Args, horizon: int, n_items: int, seed: int) -> dict:
    """Section 5.2's mis-specified rate and Section 6's remedies, all with ``B``, ``D``: a 10x
    lower rate (the paper's test reset), the theory rate, and EXP3-IX at the large rate."""
    batch = dict(batch_size=args.batch_size, delay=args.delay, seed=seed)
    large = args.snowball_learning_rate
    theory = BatchExp3(K, n_items, horizon=horizon, **batch)
    return {
        f"eta={large:g} (mis-specified)": BatchExp3(K, n_items, learning_rate=large, **batch),
        f"eta={large / 10:g} (10x lower)": BatchExp3(K, n_items, learning_rate=large / 10, **batch),
        f"eta={theory.learning_rate:.3f} (theory)": theory,
        f"EXP3-IX eta={large:g}, gamma={large / 2:g}": BatchExp3(K, n_items, learning_rate=large, implicit_exploration=large / 2, **batch),
    }


# ---------------------------------------------------------------------------------- experiment
def run(args: Args) -> dict:
    """Play everything; returns the raw results (NumPy arrays and scalars, nested dicts)."""
    jit_seconds = auctionsim.warm_up()
    start = time.perf_counter()
    horizon = args.days * args.ticks_per_day
    results: dict = {"args": dataclasses.asdict(args), "grid": GRID, "products": [p[0] for p in PRODUCTS], "regret": {}}

    # 1. Regret against the best fixed bid: each product has its own market, normaliser and seed.
    normalizers = [fit_normalizer(p, args, args.impressions_per_day, args.value) for p in PRODUCTS]
    seeds = [args.seed * 1000 + index for index in range(len(PRODUCTS))]
    fixed = [play_fixed_bids(p, args, n, args.days, s, args.impressions_per_day, args.value) for p, n, s in zip(PRODUCTS, normalizers, seeds)]
    results["fixed_profit"] = np.stack([f["profit"] for f in fixed])  # (C, k, days)
    results["fixed_reward"] = np.stack([f["reward"] for f in fixed])
    for name, (learner, batch_size, delay) in regret_algorithms(args, horizon, len(PRODUCTS), args.seed).items():
        envs = [wrapped_env(p, args, n, args.impressions_per_day, args.value, batch_size, delay) for p, n in zip(PRODUCTS, normalizers)]
        results["regret"][name] = {
            "learning_rate": learner.learning_rate,
            "implicit_exploration": learner.implicit_exploration,
            "batch_size": batch_size,
            "delay": delay,
            "bound": regret_bound(horizon, K, batch_size, delay, learner.learning_rate, len(PRODUCTS)),
            **play(learner, envs, args.days, seeds, args.value, name),
        }

    # 2. Section 5.2: a sparse, low-traffic product (realised conversion value); one learner item
    #    per seed (its own market days); common random numbers across the variants.
    product, impressions = SNOWBALL_PRODUCT, args.snowball_impressions_per_day
    normalizer = fit_normalizer(product, args, impressions, "realised")
    snowball_seeds = [args.seed * 1000 + 500 + index for index in range(args.snowball_seeds)]
    reference = play_fixed_bids(product, args, normalizer, args.snowball_days, args.seed * 1000 + 499, impressions, "realised")
    results["snowball"] = {"product": product[0], "fixed": reference, "variants": {}}
    snowball_horizon = args.snowball_days * args.ticks_per_day
    for name, learner in snowball_variants(args, snowball_horizon, len(snowball_seeds), args.seed + 1).items():
        envs = [wrapped_env(product, args, normalizer, impressions, "realised", args.batch_size, args.delay) for _ in snowball_seeds]
        played = play(learner, envs, args.snowball_days, snowball_seeds, "realised", name[:24])
        results["snowball"]["variants"][name] = {
            "learning_rate": learner.learning_rate,
            "implicit_exploration": learner.implicit_exploration,
            **{key: played[key] for key in ("policy", "profit", "expected_profit", "reward")},
        }
    results["seconds"] = time.perf_counter() - start
    results["jit_seconds"] = jit_seconds
    return results


# ---------------------------------------------------------------------------------- raw results on disk
def _split(tree: dict, prefix: str = "") -> tuple[dict, dict]:
    """Nested results -> (JSON-able tree without arrays, ``{"a/b/c": array}``)."""
    scalars, arrays = {}, {}
    for key, value in tree.items():
        if isinstance(value, dict):
            scalars[key], nested = _split(value, f"{prefix}{key}/")
            arrays.update(nested)
        elif isinstance(value, np.ndarray):
            arrays[f"{prefix}{key}"] = value
        else:
            scalars[key] = value
    return scalars, arrays


def save_results(results: dict, output_dir: pathlib.Path) -> list[pathlib.Path]:
    """Write the raw results: ``results.json`` (arguments, names, learning rates, bounds,
    timings), ``results.npz`` (every array, keyed by its path in the results, e.g.
    ``regret/Batch EXP3/arms``) and tidy CSVs of the curves (:func:`write_csvs`)."""
    scalars, arrays = _split(results)
    json_path, npz_path = output_dir / "results.json", output_dir / "results.npz"
    json_path.write_text(json.dumps(scalars, indent=1))
    np.savez_compressed(npz_path, **arrays)
    return [json_path, npz_path, *write_csvs(load_results(output_dir), output_dir)]


def load_results(output_dir: pathlib.Path) -> dict:
    """The nested results of :func:`run` read back from ``results.json`` and ``results.npz``."""
    results = json.loads((output_dir / "results.json").read_text())
    with np.load(output_dir / "results.npz") as arrays:
        for path in arrays.files:
            *parents, leaf = path.split("/")
            node = results
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = arrays[path]
    return results


def write_csvs(results: dict, output_dir: pathlib.Path) -> list[pathlib.Path]:
    """``regret.csv`` (per algorithm and day: cumulative regret and profit, all products),
    ``snowball.csv`` (per variant and day: share of seeds on unprofitable / degenerate policies)
    and ``snowball_bids.csv`` (the low-traffic product's fixed bids)."""
    paths = [output_dir / name for name in ("regret.csv", "snowball.csv", "snowball_bids.csv")]
    with paths[0].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["algorithm", "day", "cumulative_regret_normalised", "cumulative_regret_profit", "cumulative_profit", "best_fixed_cumulative_profit", "theorem3_bound_at_horizon"])
        for name, curve in regret_curves(results).items():
            for row in zip(curve["days"], curve["regret"], curve["regret_profit"], curve["profit"], curve["best_fixed_profit"]):
                writer.writerow([name, *(float(x) for x in row), curve["bound"]])
    with paths[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "day", "share_mostly_on_unprofitable_bids", "share_degenerate_top_bid_over_0.8"])
        for name, stats in snowball_statistics(results).items():
            for day, (unprofitable, top) in enumerate(zip(stats["unprofitable"], stats["top"]), start=1):
                writer.writerow([name, day, float((unprofitable > 0.5).mean()), float((top > 0.8).mean())])
    with paths[2].open("w", newline="") as handle:
        writer = csv.writer(handle)
        per_bid = fixed_bid_table(results)
        writer.writerow(list(per_bid))
        writer.writerows(zip(*per_bid.values()))
    return paths


# ---------------------------------------------------------------------------------- summaries
def regret_curves(results: dict) -> dict:
    """Per algorithm, per day (summed over products): cumulative regret in normalised reward
    units and in currency, against each product's best fixed bid in hindsight (chosen
    separately for each unit), and cumulative profit of the learner and of that comparator."""
    ticks = results["args"]["ticks_per_day"]
    fixed_reward = np.asarray(results["fixed_reward"])  # (C, k, days)
    fixed_profit = np.asarray(results["fixed_profit"])
    products = np.arange(fixed_reward.shape[0])
    comparator = fixed_reward[products, fixed_reward.sum(axis=2).argmax(axis=1)].T  # (days, C)
    comparator_profit = fixed_profit[products, fixed_profit.sum(axis=2).argmax(axis=1)].T
    curves = {}
    for name, run_ in results["regret"].items():
        reward, profit = np.asarray(run_["reward"]), np.asarray(run_["profit"])  # (T, C)
        days = reward.shape[0] // ticks
        daily_reward = reward.reshape(days, ticks, -1).sum(axis=1)  # (days, C)
        daily_profit = profit.reshape(days, ticks, -1).sum(axis=1)
        curves[name] = {
            "days": np.arange(1, days + 1),
            "regret": np.cumsum(comparator - daily_reward, axis=0).sum(axis=1),
            "regret_profit": np.cumsum(comparator_profit - daily_profit, axis=0).sum(axis=1),
            "profit": np.cumsum(daily_profit, axis=0).sum(axis=1),
            "best_fixed_profit": np.cumsum(comparator_profit, axis=0).sum(axis=1),
            "bound": float(run_["bound"]),
        }
    return curves


def snowball_statistics(results: dict) -> dict:
    """Per Section 5.2 variant, ``(days, seeds)`` arrays: the probability on unprofitable bids
    (negative expected profit per day in the fixed-bid reference run) and on the likeliest bid."""
    unprofitable = np.asarray(results["snowball"]["fixed"]["expected_profit"]).mean(axis=1) < 0
    statistics = {}
    for name, variant in results["snowball"]["variants"].items():
        policy = np.asarray(variant["policy"])  # (days, seeds, k)
        statistics[name] = {"unprofitable": policy[:, :, unprofitable].sum(axis=2), "top": policy.max(axis=2)}
    return statistics


def fixed_bid_table(results: dict) -> dict:
    """The low-traffic product's fixed bids: mean expected and realised profit per day
    (currency) and mean normalised reward per round (what the bandit maximises)."""
    fixed = {key: np.asarray(value) for key, value in results["snowball"]["fixed"].items()}  # (k, days)
    return {
        "bid": np.asarray(results["grid"]).tolist(),
        "expected_profit_per_day": fixed["expected_profit"].mean(axis=1).round(2).tolist(),
        "realised_profit_per_day": fixed["profit"].mean(axis=1).round(2).tolist(),
        "normalised_reward_per_round": (fixed["reward"].mean(axis=1) / results["args"]["ticks_per_day"]).round(4).tolist(),
    }


def summary(results: dict) -> dict:
    """The headline numbers (also printed and saved as summary.json)."""
    out: dict = {"seconds": results["seconds"], "regret": {}, "snowball": {"per_bid": fixed_bid_table(results)}}
    horizon = results["args"]["days"] * results["args"]["ticks_per_day"]
    for name, curve in regret_curves(results).items():
        half = len(curve["regret"]) // 2
        out["regret"][name] = {
            "rounds_per_product": horizon,
            "regret_normalised": float(curve["regret"][-1]),
            "regret_normalised_first_half": float(curve["regret"][half - 1]) if half else 0.0,
            "theorem3_bound": curve["bound"],
            "profit": float(curve["profit"][-1]),
            "best_fixed_profit": float(curve["best_fixed_profit"][-1]),
            "regret_profit": float(curve["regret_profit"][-1]),
        }
    days = np.asarray(results["snowball"]["fixed"]["reward"]).shape[1]
    for name, stats in snowball_statistics(results).items():
        variant = results["snowball"]["variants"][name]
        seeds = stats["top"].shape[1]
        out["snowball"][name] = {
            "learning_rate": variant["learning_rate"],
            "implicit_exploration": variant["implicit_exploration"],
            "seed_days_mostly_on_unprofitable_bids": float((stats["unprofitable"] > 0.5).mean()),
            "seed_days_degenerate_policy_top_bid_over_0.8": float((stats["top"] > 0.8).mean()),
            "expected_profit_per_day": float(np.sum(variant["expected_profit"]) / seeds / days),
            "realised_profit_per_day": float(np.sum(variant["profit"]) / seeds / days),
            "normalised_reward_per_round": float(np.mean(variant["reward"])),
        }
    return out


# ---------------------------------------------------------------------------------- plots (from saved results)
def plot(output_dir: pathlib.Path) -> list[pathlib.Path]:
    """Draw every figure from the raw results saved in ``output_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    results = load_results(output_dir)
    return [plot_profit_regret(results, output_dir), plot_heatmaps(results, output_dir), plot_snowball(results, output_dir)]


def plot_profit_regret(results: dict, output_dir: pathlib.Path) -> pathlib.Path:
    """Cumulative profit (all products) and cumulative regret against the best fixed bid."""
    import matplotlib.pyplot as plt

    curves = regret_curves(results)
    ticks = results["args"]["ticks_per_day"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, curve in curves.items():
        left.plot(curve["days"], curve["profit"], label=name)
        right.plot(curve["days"] * ticks, curve["regret"], label=f"{name} (Theorem 3 bound {curve['bound']:.0f})")
    any_curve = next(iter(curves.values()))
    left.plot(any_curve["days"], any_curve["best_fixed_profit"], "k--", label="best fixed bid per product (hindsight)")
    right.axhline(0.0, color="grey", linewidth=0.5)
    left.set(xlabel="day", ylabel="cumulative profit, all products (currency)", title="Profit over time")
    right.set(xlabel="round (per product)", ylabel="cumulative regret (normalised reward)", title="Regret vs best fixed bid in hindsight")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.tight_layout()
    path = output_dir / "profit_regret.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_heatmaps(results: dict, output_dir: pathlib.Path) -> pathlib.Path:
    """Each product's bid probabilities day by day, per algorithm (the paper's Figures 4-6)."""
    import matplotlib.pyplot as plt

    grid = np.asarray(results["grid"])
    names = list(results["regret"])
    products = results["products"]
    fixed_profit = np.asarray(results["fixed_profit"])
    figure, axes = plt.subplots(len(products), len(names), figsize=(4 * len(names), 2.6 * len(products)), squeeze=False)
    for row, product in enumerate(products):
        best = int(fixed_profit[row].sum(axis=1).argmax())
        for column, name in enumerate(names):
            policy = np.asarray(results["regret"][name]["policy"])[:, row, :]  # (days, k)
            axis = axes[row, column]
            image = axis.imshow(policy.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=max(0.3, policy.max()))
            axis.axhline(best, color="red", linestyle=":", linewidth=1)
            axis.set_yticks(range(grid.size), [f"{g:g}" for g in grid], fontsize=6)
            axis.set_title(f"{name}\n{product}", fontsize=8)
            axis.set_xlabel("day", fontsize=8)
        figure.colorbar(image, ax=axes[row, -1], label="P(bid)")
    figure.suptitle("Bid probabilities per product (red: best fixed bid in hindsight)", fontsize=10)
    figure.tight_layout()
    path = output_dir / "heatmaps.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_snowball(results: dict, output_dir: pathlib.Path) -> pathlib.Path:
    """Section 5.2: shares of seeds with unprofitable or degenerate policies per variant, the
    low-traffic product's fixed bids, and one seed's bid heatmap per variant."""
    import matplotlib.pyplot as plt

    grid = np.asarray(results["grid"])
    statistics = snowball_statistics(results)
    variants = results["snowball"]["variants"]
    figure, axes = plt.subplot_mosaic([["unprofitable", "degenerate", "pitfall", "pitfall"], [f"h{i}" for i in range(len(variants))]], figsize=(17, 8))
    first = next(iter(statistics.values()))["unprofitable"]
    shown_seed = int(np.argmax((first > 0.5).sum(axis=0)))  # the mis-specified rate's worst seed
    for name, stats in statistics.items():
        days = np.arange(1, stats["top"].shape[0] + 1)
        axes["unprofitable"].plot(days, (stats["unprofitable"] > 0.5).mean(axis=1), label=name)
        axes["degenerate"].plot(days, (stats["top"] > 0.8).mean(axis=1), label=name)
    axes["unprofitable"].set(xlabel="day", ylabel="share of seeds", title="policy mostly (>50%) on unprofitable bids")
    axes["degenerate"].set(xlabel="day", ylabel="share of seeds", title="degenerate policy (one bid > 80%)")
    axes["unprofitable"].legend(fontsize=7)
    table = fixed_bid_table(results)
    positions = np.arange(grid.size)
    axes["pitfall"].bar(positions - 0.2, table["expected_profit_per_day"], width=0.4, label="expected profit per day (currency)")
    axes["pitfall"].bar(positions + 0.2, table["realised_profit_per_day"], width=0.4, label="realised profit per day (currency)")
    axes["pitfall"].set_xticks(positions, [f"{g:g}" for g in grid])
    axes["pitfall"].set(xlabel="fixed bid multiplier", ylabel="currency per day", title=f"{results['snowball']['product']}: each fixed bid")
    twin = axes["pitfall"].twinx()
    twin.plot(positions, table["normalised_reward_per_round"], "k.-", label="normalised reward per round (right)")
    twin.set_ylabel("mean normalised reward (what the bandit maximises)")
    axes["pitfall"].legend(loc="lower left", fontsize=7)
    twin.legend(loc="upper right", fontsize=7)
    for index, (name, variant) in enumerate(variants.items()):
        axis = axes[f"h{index}"]
        policy = np.asarray(variant["policy"])[:, shown_seed, :]
        axis.imshow(policy.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
        axis.set_yticks(range(grid.size), [f"{g:g}" for g in grid], fontsize=6)
        axis.set_xlabel("day")
        axis.set_title(f"{name}, seed {shown_seed}", fontsize=8)
    figure.suptitle("Section 5.2: snowballing under sparse rewards with a mis-specified learning rate, and its mitigation", fontsize=11)
    figure.tight_layout()
    path = output_dir / "snowball.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def execute(args: Args) -> dict:
    """Run (unless ``plot_only``), save, summarise and plot; returns the summary."""
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        for path in save_results(run(args), output_dir):
            print(f"saved {path}")
    results = load_results(output_dir)
    report = summary(results)
    (output_dir / "summary.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    for path in plot(output_dir):
        print(f"saved {path}")
    return report


def main(argv: list[str] | None = None) -> dict:
    """``python -m experiments.bandits [--quick] ...`` (flags from :class:`Args`)."""
    return execute(arguments.parse(Args, argv, description=__doc__.split("\n\n")[0]))


if __name__ == "__main__":
    main()
