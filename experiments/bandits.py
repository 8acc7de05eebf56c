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

What ``--quick`` (45 days, the length of the paper's live test; 2 training x 2 evaluation seeds,
Section 5.2 on 2 x 10; ``mean [95% interval]``, verdicts Holm-adjusted per table) measured:

* Regret in normalised reward, 4 products x 360 rounds: EXP3 82 [59, 106], Batch EXP3 104
  [85, 122], Batch EXP3-IX 109 [68, 150], Batch EXP3 at 10x rate 78 [-8, 164]; Theorem 3
  bounds 652, 1269, 1269, 6410. None of the six pairwise differences is distinguishable at
  this size: the 10x-rate learner's regret moves by tens of points between market seeds (on
  seed 0 alone it was 59 against EXP3's 79, an apparent advantage that is noise). Batching and
  delay cost EXP3 -> Batch EXP3 21 [-10, 52] points of regret and 1,947 [1,325, 2,569] of
  profit; that interval excludes 0 but Holm over the six comparisons leaves it at p = 0.050,
  "not distinguishable". At theory rates 45 days are too short to concentrate on 14 bids.
* Section 5.2 reproduced with clear verdicts: with ``eta = 1`` 12.4% [8.3, 16.6] of days put
  most probability on unprofitable bids and 19.6% [16.5, 22.6] have a degenerate policy (one
  bid > 80%); each remedy (10x lower rate, theory rate, EXP3-IX at ``eta = 1``) is at most
  0.3% and 0%, every "mis-specified > remedy" verdict with Holm p < 0.001. Expected profit per
  day is not distinguishable between the variants on this sparse product.
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

Run ``auctionsim bandits [--quick]`` (or ``python -m experiments.bandits``); raw results go to
``results/bandits/`` (``results/bandits-quick/``): ``results.json`` + ``results.npz``, tidy
CSVs, ``summary.json`` (per table: each learner's ``mean``/``low``/``high`` with the seed
counts, each comparison's difference and verdict), the PNG plots, ``units/`` (one file per
seed's runs, reused by ``--resume``), ``tensorboard/`` and ``manifest.json``;
``--plot-only`` redraws plots and summary from those files. Cost of ``--quick`` on the shared
2-core machine: 142 CPU-seconds for 2 x 2 seeds against 94 for the former single seed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
import shutil
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
from auctionsim import Market, MarketConfig, Population, presets, runs, stats
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
from auctionsim.validation import check_int, check_number
from experiments import args as arguments


@dataclass
class Args(arguments.ProtocolArgs):
    """Batch EXP3 on our market: regret, bid heatmaps and the Section 5.2 snowballing."""

    training_seeds: int = 3
    """learner seeds (the learners' own random draws); every learner is run with each"""
    eval_seeds: int = 5
    """market seeds of the regret experiment: each product's days are drawn anew for each (the best fixed bids are re-evaluated on each)"""
    tensorboard: bool = True
    """write each learner's mean cumulative regret per day as TensorBoard scalars under <output-dir>/tensorboard"""
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
    """market seeds of the Section 5.2 experiment (its evaluation seeds: one low-traffic product per seed, one learner item each)"""
    snowball_impressions_per_day: int = 4_000
    """traffic of the low-traffic product (sparse conversions)"""
    snowball_learning_rate: float = 1.0
    """the mis-specified learning rate (roughly 100x the theory rate)"""
    output_dir: str = "results/bandits"
    """where the raw results (JSON, NPZ, CSV), the per-seed units, the plots and the manifest go"""

    def __post_init__(self) -> None:
        check_int("seed", self.seed, low=0)
        for name in ("training_seeds", "eval_seeds", "days", "ticks_per_day", "impressions_per_day", "batch_size", "warmup_days", "snowball_days", "snowball_seeds", "snowball_impressions_per_day"):
            check_int(name, getattr(self, name), low=1)
        check_int("delay", self.delay, low=0)
        check_number("snowball_learning_rate", self.snowball_learning_rate, low=0.0, low_open=True)
        check_number("fast_rate_factor", self.fast_rate_factor, low=0.0, low_open=True)
        if self.value not in PROFIT_VALUES:
            raise ConfigError(f"value must be one of {', '.join(PROFIT_VALUES)}, got {self.value!r}")


#: ``--quick``: 45 days (the length of the paper's live test, Dec 16 - Jan 29), 2 x 2 seeds.
QUICK = dict(training_seeds=2, eval_seeds=2, days=45, snowball_days=45, snowball_seeds=10, warmup_days=7, output_dir="results/bandits-quick")
#: Fields a ``--resume`` may grow (more seeds); the others must match the saved run.
EXTENDABLE = ("training_seeds", "eval_seeds", "snowball_seeds")


def seeds(args: Args) -> dict[str, list]:
    """Every seed of a run, kept apart by purpose (recorded in the manifest):

    * ``training``: the learners' seeds (training seed ``i``: regret learners ``100 seed + i``,
      Section 5.2 learners ``100 seed + 50 + i``);
    * ``eval``: per evaluation seed ``j``, each product's market seed ``M + 1000 j + product``
      with ``M = 100,000 (seed + 1)``;
    * ``snowball``: the low-traffic product's market seeds ``M + 50,000 + s``, and its fixed-bid
      reference ``M + 99,999``;
    * ``warmup``: the normalisation's warm-up logs, ``10,000 + seed`` (below every ``M``).
    """
    base = 100_000 * (args.seed + 1)
    return {
        "training": [100 * args.seed + i for i in range(args.training_seeds)],
        "snowball_training": [100 * args.seed + 50 + i for i in range(args.training_seeds)],
        "eval": [[base + 1000 * j + c for c in range(len(PRODUCTS))] for j in range(args.eval_seeds)],
        "snowball": [base + 50_000 + s for s in range(args.snowball_seeds)],
        "snowball_reference": base + 99_999,
        "warmup": 10_000 + args.seed,
    }


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
    base = presets.get("auctionnet", impressions_per_episode=impressions_per_day, scale_budgets=True).population
    rows = np.flatnonzero(base.categories == category)
    budgets = base.budgets[rows] * 48 / ticks_per_day
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
    log = collect_dataset(AuctionParallelEnv(env.market), behaviour, episodes=args.warmup_days, seed=seeds(args)["warmup"], progress=False)
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
                _, _, _, _, info = env.step(int(chosen[item]))
                single = env.unwrapped
                profits[item] = focal_profit(single, value)
                expected[item] = focal_profit(single, "expected")
                normalizer = env.get_wrapper_attr("normalizer")
                rewards[item] = normalizer.normalize(profits[item], tick, [single.focal_id])[0]
                revealed.append(info.get("feedback"))
                if info["budget_left"] < single.market.budget_floor:  # (the day's last tick is terminal too)
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
def _unit(folder: pathlib.Path, name: str, compute) -> dict:
    """A unit of work (one seed's runs) saved as ``units/<name>.npz``: loaded when a previous
    (killed or shorter) run with the same config saved it, else computed and saved atomically."""
    path = folder / "units" / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return _nest({key: data[key] for key in data.files})
    tree = compute()
    _, arrays = _split(tree)
    runs.atomic_write(path, lambda temporary: np.savez_compressed(temporary, **arrays))
    return tree


def _nest(flat: dict) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def run(args: Args, output_dir: pathlib.Path | None = None) -> dict:
    """Play everything; returns the raw results (NumPy arrays and scalars, nested dicts).

    Each unit (the best fixed bids on one evaluation seed, all learners of one training seed on
    one evaluation seed, the Section 5.2 variants of one training seed) is saved under
    ``output_dir/units/`` as it finishes, so a killed run resumes where it stopped and a run with
    more seeds reuses the units it has. Arrays carry leading ``(training seed, eval seed)`` axes.
    """
    jit_seconds = auctionsim.warm_up()
    start = time.perf_counter()
    folder = pathlib.Path(output_dir if output_dir is not None else args.output_dir)
    seed_plan = seeds(args)
    horizon = args.days * args.ticks_per_day
    results: dict = {"args": dataclasses.asdict(args), "seeds": seed_plan, "grid": GRID, "products": [p[0] for p in PRODUCTS], "regret": {}}

    # 1. Regret against the best fixed bid: each product has its own market and normaliser; the
    #    comparator (every fixed bid) is replayed on each evaluation seed's days.
    normalizers = [fit_normalizer(p, args, args.impressions_per_day, args.value) for p in PRODUCTS]
    fixed, learners = [], []
    for j, product_seeds in enumerate(tqdm(seed_plan["eval"], desc="evaluation seeds", unit="seed")):
        def fixed_bids() -> dict:
            played = [play_fixed_bids(p, args, n, args.days, s, args.impressions_per_day, args.value) for p, n, s in zip(PRODUCTS, normalizers, product_seeds)]
            return {key: np.stack([f[key] for f in played]) for key in ("profit", "reward")}  # (C, k, days)

        fixed.append(_unit(folder, f"fixed-e{product_seeds[0]}", fixed_bids))
        row = []
        for training_seed in seed_plan["training"]:
            def learn(training_seed: int = training_seed) -> dict:
                played = {}
                for name, (learner, batch_size, delay) in regret_algorithms(args, horizon, len(PRODUCTS), training_seed).items():
                    envs = [wrapped_env(p, args, n, args.impressions_per_day, args.value, batch_size, delay) for p, n in zip(PRODUCTS, normalizers)]
                    played[name] = play(learner, envs, args.days, product_seeds, args.value, name)
                return played

            row.append(_unit(folder, f"regret-t{training_seed}-e{product_seeds[0]}", learn))
        learners.append(row)
    results["fixed_profit"] = np.stack([f["profit"] for f in fixed])  # (E, C, k, days)
    results["fixed_reward"] = np.stack([f["reward"] for f in fixed])
    for name, (learner, batch_size, delay) in regret_algorithms(args, horizon, len(PRODUCTS), 0).items():
        results["regret"][name] = {
            "learning_rate": learner.learning_rate,
            "implicit_exploration": learner.implicit_exploration,
            "batch_size": batch_size,
            "delay": delay,
            "bound": regret_bound(horizon, K, batch_size, delay, learner.learning_rate, len(PRODUCTS)),
            # (training seeds, eval seeds, ...) per array
            **{key: np.stack([np.stack([learners[j][i][name][key] for j in range(args.eval_seeds)]) for i in range(args.training_seeds)]) for key in ("arms", "profit", "expected_profit", "reward", "policy")},
        }

    # 2. Section 5.2: a sparse, low-traffic product (realised conversion value); one learner item
    #    per market seed (its own days); common random numbers across the variants.
    product, impressions = SNOWBALL_PRODUCT, args.snowball_impressions_per_day
    normalizer = fit_normalizer(product, args, impressions, "realised")
    reference = _unit(folder, f"snowball-fixed-{seed_plan['snowball_reference']}", lambda: play_fixed_bids(product, args, normalizer, args.snowball_days, seed_plan["snowball_reference"], impressions, "realised"))
    results["snowball"] = {"product": product[0], "fixed": reference, "variants": {}}
    snowball_horizon = args.snowball_days * args.ticks_per_day
    per_training_seed = []
    for training_seed in tqdm(seed_plan["snowball_training"], desc="Section 5.2 training seeds", unit="seed"):
        def snowball(training_seed: int = training_seed) -> dict:
            played = {}
            for name, learner in snowball_variants(args, snowball_horizon, len(seed_plan["snowball"]), training_seed).items():
                envs = [wrapped_env(product, args, normalizer, impressions, "realised", args.batch_size, args.delay) for _ in seed_plan["snowball"]]
                out = play(learner, envs, args.snowball_days, seed_plan["snowball"], "realised", name[:24])
                played[name] = {key: out[key] for key in ("policy", "profit", "expected_profit", "reward")}
            return played

        per_training_seed.append(_unit(folder, f"snowball-t{training_seed}-s{args.snowball_seeds}", snowball))
    for name, learner in snowball_variants(args, snowball_horizon, len(seed_plan["snowball"]), 0).items():
        results["snowball"]["variants"][name] = {
            "learning_rate": learner.learning_rate,
            "implicit_exploration": learner.implicit_exploration,
            **{key: np.stack([unit[name][key] for unit in per_training_seed]) for key in ("policy", "profit", "expected_profit", "reward")},
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
    runs.atomic_write_json(json_path, scalars)
    runs.atomic_write(npz_path, lambda temporary: np.savez_compressed(temporary, **arrays))
    return [json_path, npz_path, *write_csvs(load_results(output_dir), output_dir)]


def load_results(output_dir: pathlib.Path) -> dict:
    """The nested results of :func:`run` read back from ``results.json`` and ``results.npz``."""
    results = json.loads((output_dir / "results.json").read_text())
    with np.load(output_dir / "results.npz", allow_pickle=False) as arrays:
        for path in arrays.files:
            *parents, leaf = path.split("/")
            node = results
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = arrays[path]
    return results


def write_csvs(results: dict, output_dir: pathlib.Path) -> list[pathlib.Path]:
    """``regret.csv`` (per algorithm and day: cumulative regret and profit, all products, mean
    over training and evaluation seeds),
    ``snowball.csv`` (per variant and day: share of (training seed, market seed) pairs on
    unprofitable / degenerate policies)
    and ``snowball_bids.csv`` (the low-traffic product's fixed bids)."""
    paths = [output_dir / name for name in ("regret.csv", "snowball.csv", "snowball_bids.csv")]
    with paths[0].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["algorithm", "day", "cumulative_regret_normalised", "cumulative_regret_profit", "cumulative_profit", "best_fixed_cumulative_profit", "theorem3_bound_at_horizon"])
        for name, curve in regret_curves(results).items():
            means = [curve[key].mean(axis=(0, 1)) for key in ("regret", "regret_profit", "profit", "best_fixed_profit")]
            for row in zip(curve["days"], *means):
                writer.writerow([name, *(float(x) for x in row), curve["bound"]])
    with paths[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "day", "share_mostly_on_unprofitable_bids", "share_degenerate_top_bid_over_0.8"])
        for name, statistics in snowball_statistics(results).items():
            unprofitable, top = (np.moveaxis(statistics[key], 1, 0) for key in ("unprofitable", "top"))  # (days, Tn, S)
            for day, (day_unprofitable, day_top) in enumerate(zip(unprofitable, top), start=1):
                writer.writerow([name, day, float((day_unprofitable > 0.5).mean()), float((day_top > 0.8).mean())])
    with paths[2].open("w", newline="") as handle:
        writer = csv.writer(handle)
        per_bid = fixed_bid_table(results)
        writer.writerow(list(per_bid))
        writer.writerows(zip(*per_bid.values()))
    return paths


# ---------------------------------------------------------------------------------- summaries
def regret_curves(results: dict) -> dict:
    """Per algorithm, per (training seed, evaluation seed) and day, summed over products:
    cumulative regret in normalised reward units and in currency, against each product's best
    fixed bid in hindsight on that evaluation seed's days (chosen separately for each unit), and
    cumulative profit of the learner and of that comparator. Arrays are ``(T_seeds, E_seeds, days)``."""
    ticks = results["args"]["ticks_per_day"]
    fixed_reward = np.asarray(results["fixed_reward"])  # (E, C, k, days)
    fixed_profit = np.asarray(results["fixed_profit"])
    n_eval, n_products = fixed_reward.shape[:2]
    evals, products = np.arange(n_eval)[:, None], np.arange(n_products)[None, :]
    comparator = fixed_reward[evals, products, fixed_reward.sum(axis=3).argmax(axis=2)].transpose(0, 2, 1)  # (E, days, C)
    comparator_profit = fixed_profit[evals, products, fixed_profit.sum(axis=3).argmax(axis=2)].transpose(0, 2, 1)
    curves = {}
    for name, run_ in results["regret"].items():
        reward, profit = np.asarray(run_["reward"]), np.asarray(run_["profit"])  # (Tn, E, rounds, C)
        n_training, _, rounds, _ = reward.shape
        days = rounds // ticks
        daily_reward = reward.reshape(n_training, n_eval, days, ticks, -1).sum(axis=3)  # (Tn, E, days, C)
        daily_profit = profit.reshape(n_training, n_eval, days, ticks, -1).sum(axis=3)
        curves[name] = {
            "days": np.arange(1, days + 1),
            "regret": np.cumsum(comparator[None] - daily_reward, axis=2).sum(axis=3),
            "regret_profit": np.cumsum(comparator_profit[None] - daily_profit, axis=2).sum(axis=3),
            "profit": np.cumsum(daily_profit, axis=2).sum(axis=3),
            "best_fixed_profit": np.broadcast_to(np.cumsum(comparator_profit, axis=1).sum(axis=2), (n_training, n_eval, days)),
            "bound": float(run_["bound"]),
        }
    return curves


def snowball_statistics(results: dict) -> dict:
    """Per Section 5.2 variant, ``(T_seeds, days, S_seeds)`` arrays: the probability on
    unprofitable bids (negative expected profit per day in the fixed-bid reference run) and on
    the likeliest bid."""
    unprofitable = np.asarray(results["snowball"]["fixed"]["expected_profit"]).mean(axis=1) < 0
    statistics = {}
    for name, variant in results["snowball"]["variants"].items():
        policy = np.asarray(variant["policy"])  # (Tn, days, S, k)
        statistics[name] = {"unprofitable": policy[..., unprofitable].sum(axis=-1), "top": policy.max(axis=-1)}
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


def metric_grids(results: dict) -> dict[str, dict[str, np.ndarray]]:
    """The reported metrics as ``(training seeds, evaluation seeds)`` grids per method: the
    regret experiment's totals over products after the last day, and the Section 5.2 shares of
    days per market seed (its evaluation seeds) and profit per day."""
    curves = regret_curves(results)
    grids: dict[str, dict[str, np.ndarray]] = {
        "regret_normalised": {name: curve["regret"][..., -1] for name, curve in curves.items()},
        "regret_profit": {name: curve["regret_profit"][..., -1] for name, curve in curves.items()},
        "profit": {name: curve["profit"][..., -1] for name, curve in curves.items()},
    }
    statistics = snowball_statistics(results)
    days = np.asarray(results["snowball"]["fixed"]["reward"]).shape[1]
    grids["snowball_days_mostly_on_unprofitable_bids"] = {name: (stats_["unprofitable"] > 0.5).mean(axis=1) for name, stats_ in statistics.items()}
    grids["snowball_days_degenerate_top_bid_over_0.8"] = {name: (stats_["top"] > 0.8).mean(axis=1) for name, stats_ in statistics.items()}
    grids["snowball_expected_profit_per_day"] = {
        name: np.asarray(variant["expected_profit"]).sum(axis=1) / days for name, variant in results["snowball"]["variants"].items()
    }  # (Tn, rounds, S) summed over rounds
    return grids


def comparisons(results: dict) -> dict[str, list[tuple[str, str]] | None]:
    """Which pairs each table compares: every pair of regret learners; in Section 5.2 the
    mis-specified rate against each remedy."""
    variants = list(results["snowball"]["variants"])
    snowball_pairs = [(variants[0], other) for other in variants[1:]]
    return {"regret_normalised": None, "regret_profit": None, "profit": None} | {
        name: snowball_pairs for name in ("snowball_days_mostly_on_unprofitable_bids", "snowball_days_degenerate_top_bid_over_0.8", "snowball_expected_profit_per_day")
    }


def summary(results: dict) -> dict:
    """The headline numbers (also printed and saved as summary.json): per table (metric), each
    method's ``{"mean", "low", "high", "n_training_seeds", "n_eval_seeds"}`` and each paired
    comparison's difference and verdict (Holm over the table; :mod:`auctionsim.stats`)."""
    out: dict = {"seconds": results["seconds"], "horizon_rounds_per_product": results["args"]["days"] * results["args"]["ticks_per_day"]}
    out["theorem3_bound"] = {name: float(run_["bound"]) for name, run_ in results["regret"].items()}
    pairs = comparisons(results)
    out["tables"] = {metric: stats.summary(grids, pairs[metric]) for metric, grids in metric_grids(results).items()}
    out["snowball_per_bid"] = fixed_bid_table(results)
    return out


def print_tables(results: dict) -> None:
    """Every table as ``mean [low, high]`` with its comparisons' verdicts."""
    pairs = comparisons(results)
    for metric, grids in metric_grids(results).items():
        digits = 3 if "days" in metric else 1
        print(stats.format_table(grids, pairs[metric], digits=digits, title=f"\n{metric}"))


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
    for index, (name, curve) in enumerate(curves.items()):
        # Mean over (training seed, evaluation seed) runs with the 95% interval of each day's mean.
        for axis, key, x in ((left, "profit", curve["days"]), (right, "regret", curve["days"] * ticks)):
            estimates = [stats.grid_mean(curve[key][:, :, day]) for day in range(curve["days"].size)]
            axis.plot(x, [e.mean for e in estimates], color=f"C{index}", label=name if key == "profit" else f"{name} (Theorem 3 bound {curve['bound']:.0f})")
            axis.fill_between(x, [e.low for e in estimates], [e.high for e in estimates], color=f"C{index}", alpha=0.15, linewidth=0)
    any_curve = next(iter(curves.values()))
    n_training, n_eval = any_curve["regret"].shape[:2]
    left.plot(any_curve["days"], any_curve["best_fixed_profit"].mean(axis=(0, 1)), "k--", label="best fixed bid per product (hindsight)")
    figure.suptitle(f"mean over {n_training} training x {n_eval} evaluation seeds, 95% intervals", fontsize=9)
    right.axhline(0.0, color="grey", linewidth=0.5)
    left.set(xlabel="day", ylabel="cumulative profit, all products (currency)", title="Profit over time")
    right.set(xlabel="round (per product)", ylabel="cumulative regret (normalised reward)", title="Regret vs best fixed bid in hindsight")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.tight_layout()
    path = runs.atomic_write(output_dir / "profit_regret.png", lambda temporary: figure.savefig(temporary, dpi=120))
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
        best = int(fixed_profit[0, row].sum(axis=1).argmax())  # on the first evaluation seed
        for column, name in enumerate(names):
            policy = np.asarray(results["regret"][name]["policy"])[0, 0, :, row, :]  # first training and evaluation seed: (days, k)
            axis = axes[row, column]
            image = axis.imshow(policy.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=max(0.3, policy.max()))
            axis.axhline(best, color="red", linestyle=":", linewidth=1)
            axis.set_yticks(range(grid.size), [f"{g:g}" for g in grid], fontsize=6)
            axis.set_title(f"{name}\n{product}", fontsize=8)
            axis.set_xlabel("day", fontsize=8)
        figure.colorbar(image, ax=axes[row, -1], label="P(bid)")
    figure.suptitle("Bid probabilities per product, first training and evaluation seed (red: best fixed bid in hindsight)", fontsize=10)
    figure.tight_layout()
    path = runs.atomic_write(output_dir / "heatmaps.png", lambda temporary: figure.savefig(temporary, dpi=110))
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
    first = next(iter(statistics.values()))["unprofitable"][0]  # first training seed: (days, S)
    shown_seed = int(np.argmax((first > 0.5).sum(axis=0)))  # the mis-specified rate's worst market seed
    for name, statistic in statistics.items():
        days = np.arange(1, statistic["top"].shape[1] + 1)
        axes["unprofitable"].plot(days, (statistic["unprofitable"] > 0.5).mean(axis=(0, 2)), label=name)
        axes["degenerate"].plot(days, (statistic["top"] > 0.8).mean(axis=(0, 2)), label=name)
    axes["unprofitable"].set(xlabel="day", ylabel="share of (training, market) seeds", title="policy mostly (>50%) on unprofitable bids")
    axes["degenerate"].set(xlabel="day", ylabel="share of (training, market) seeds", title="degenerate policy (one bid > 80%)")
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
        policy = np.asarray(variant["policy"])[0, :, shown_seed, :]
        axis.imshow(policy.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
        axis.set_yticks(range(grid.size), [f"{g:g}" for g in grid], fontsize=6)
        axis.set_xlabel("day")
        axis.set_title(f"{name}, market seed {shown_seed}", fontsize=8)
    figure.suptitle("Section 5.2: snowballing under sparse rewards with a mis-specified learning rate, and its mitigation", fontsize=11)
    figure.tight_layout()
    path = runs.atomic_write(output_dir / "snowball.png", lambda temporary: figure.savefig(temporary, dpi=110))
    plt.close(figure)
    return path


def execute(args: Args) -> dict:
    """Run (unless ``plot_only``), save, summarise and plot; returns the summary.

    The output folder is checked and locked before any work; ``--resume`` continues a killed run
    (or one with fewer seeds) from its saved units and refuses a changed config; every file is
    written atomically and ``manifest.json`` lists them."""
    output_dir = pathlib.Path(args.output_dir)
    if args.plot_only:
        if not (output_dir / "results.json").is_file() or not (output_dir / "results.npz").is_file():
            raise ConfigError(f"--plot-only: no saved results in {output_dir} (results.json + results.npz); run the experiment first, or give its --output-dir")
        with runs.OutputLock(output_dir):
            return _report(output_dir)
    with runs.run_folder(output_dir, args, resume=args.resume, extendable=EXTENDABLE) as run_:
        run_.seeds = seeds(args)
        if not args.resume:
            shutil.rmtree(output_dir / "units", ignore_errors=True)
        results = run(args, output_dir)
        for path in save_results(results, output_dir):
            print(f"saved {path}")
        run_.extra["timing"] = {"seconds": results["seconds"], "jit_seconds": results["jit_seconds"]}
        report = _report(output_dir)
        if args.tensorboard:
            log_curves(results, output_dir / "tensorboard")
    print(f"saved {runs.manifest_path(output_dir)}")
    return report


def _report(output_dir: pathlib.Path) -> dict:
    results = load_results(output_dir)
    report = summary(results)
    runs.atomic_write_json(output_dir / "summary.json", report)
    print_tables(results)
    for path in plot(output_dir):
        print(f"saved {path}")
    return report


def log_curves(results: dict, log_dir: pathlib.Path) -> None:
    """Each learner's mean cumulative regret and profit per day as TensorBoard scalars."""
    from auctionsim.tracking import ScalarLogger

    for name, curve in regret_curves(results).items():
        with ScalarLogger(log_dir / name.replace(" ", "_").replace(",", "")) as logger:
            for day, (regret, profit) in enumerate(zip(curve["regret"].mean(axis=(0, 1)), curve["profit"].mean(axis=(0, 1))), start=1):
                logger.log(day, {"cumulative_regret_normalised": regret, "cumulative_profit": profit}, prefix="regret/")


def main(argv: list[str] | None = None) -> dict:
    """``auctionsim bandits [--quick] ...`` (flags from :class:`Args`)."""
    return execute(arguments.parse(Args, argv, description=__doc__.split("\n\n")[0], quick=QUICK, prog="auctionsim bandits"))


if __name__ == "__main__":
    main()
