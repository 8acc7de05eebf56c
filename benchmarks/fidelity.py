"""Calibration report: the ``auctionnet`` preset's market, figure by figure, against AuctionNet's.

Targets are AuctionNet's published traffic curve (``auctionsim.traffic.AUCTIONNET_TICK_SHARES``)
and figures measured on AuctionNet's own generator and engine (the constants below say how);
the exposure target is its rule's value, 1.0 x 0.8 x 0.6 = 0.48 for slot 3. Ours are measured on
this engine, with 95% Student-t intervals over episodes where a figure varies by episode.

Two parts:

* traffic (no auction): per-tick traffic shares, pValue mean and quantiles over every
  (impression, advertiser) pair, and the categories' traffic-weighted pValue levels relative to
  the market's, pooled over the episodes (the part of a category's advantage that lasts);
* the market under value bidding (every advertiser bids CPA target x pValue): slot exposure
  rates, realised / expected conversions (expected = sum of pValue over exposed ads), least
  winning cost (AuctionNet's: the 4th-highest bid floored at the reserve), revenue, CPA and
  budget use.

The gates of issue 19 are marked pass/FAIL: traffic-curve correlation >= 0.95, pValue mean and
median within 5%, category level spread at most 1.5x AuctionNet's (same number of episodes),
slot-3 exposure 0.48 +- 0.02, realised / expected conversions in [0.90, 0.99]. The other rows
are for information. Prints a table and one JSON line (prefixed ``JSON``).

Usage: ``python benchmarks/fidelity.py [--episodes 64] [--market-episodes 16] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from auctionsim.stats import t_interval
from auctionsim import Market, presets, warm_up
from auctionsim.traffic import AUCTIONNET_TICK_SHARES

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)

# AuctionNet's generator (its NeurIPS competition pValue generator, run unchanged), episodes
# 0..63: pValue mean over every (impression, advertiser) pair (mean of the episodes' means,
# with its 95% interval), quantiles pooled over the episodes (every 7th impression), and the
# categories' traffic-weighted pValue levels pooled over the 64 episodes.
AUCTIONNET_GENERATOR = {
    "episodes": 64,
    "pvalue_mean": (5.0699e-04, 4.9594e-04, 5.1804e-04),
    "pvalue_quantiles": {
        "0.1": 1.1503e-04, "0.25": 2.3350e-04, "0.5": 4.2315e-04, "0.75": 6.9475e-04, "0.9": 1.0130e-03, "0.99": 1.7240e-03,
    },
    "pvalue_zero_share": 0.0300,
    "category_levels": (0.9925, 0.9934, 1.0326, 0.9981, 1.0018, 0.9816),
    "tick_share_correlation_per_episode": 0.884,
}

# AuctionNet's engine (its vectorised auction and budget re-run loop, run unchanged) with its
# generator, reserve 0.01, every advertiser bidding CPA target x pValue, episodes 0..3: mean
# over episodes with its 95% interval. (Its realised / expected conversions has expectation
# 1.0007 over its episodes 0..63, computed from its per-advertiser truncation draws; the spread
# over these 4 episodes is the conversions' Poisson noise, about 3% an episode.)
AUCTIONNET_VALUE_BIDDING = {
    "episodes": 4,
    "slot1_exposure_rate": (1, 1, 1),
    "slot2_exposure_rate": (0.799952, 0.799303, 0.800601),
    "slot3_exposure_rate": (0.482835, 0.481761, 0.483909),
    "realised_over_expected": (0.979028, 0.944062, 1.01399),
    "conversions": (1303.25, 1193.43, 1413.07),
    "least_winning_cost_mean": (0.0784241, 0.0753721, 0.0814761),
    "least_winning_cost_at_reserve_share": (0, 0, 0),
    "revenue": (102699, 98901.9, 106496),
    "market_cpa": (78.9077, 74.5103, 83.3051),
    "mean_budget_utilisation": (0.764175, 0.749954, 0.778396),
    "share_within_cpa_target": (0.697917, 0.61449, 0.781344),
}

# The gates of issue 19.
TRAFFIC_CORRELATION_MIN = 0.95
PVALUE_RELATIVE_TOLERANCE = 0.05
CATEGORY_SPREAD_MAX_RATIO = 1.5
SLOT3_EXPOSURE = (0.46, 0.50)
REALISED_OVER_EXPECTED = (0.90, 0.99)


def traffic_statistics(episodes: int, seed: int, max_samples: int = 8_000_000) -> dict:
    """Generator-level figures of the preset over ``episodes`` episodes (no auction)."""
    scenario = presets.get("auctionnet")
    market = Market(scenario.market, scenario.population, record_history=False)
    categories = scenario.population.categories
    n_categories = scenario.population.n_categories
    members = np.bincount(categories, minlength=n_categories)
    stride = max(1, episodes * scenario.market.impressions_per_episode * len(categories) // max_samples)
    shares, means, levels_by_episode, samples = [], [], [], []
    category_sums = np.zeros(n_categories)
    category_counts = np.zeros(n_categories)
    for episode in range(episodes):
        market.reset(seed) if episode == 0 else market.reset()
        counts = market.traffic.impressions_per_tick
        shares.append(counts / counts.sum())
        sums = np.zeros(n_categories)
        for tick in range(market.n_ticks):
            pvalues = market.tick_values(tick=tick).pvalues
            sums += np.bincount(categories, weights=pvalues.sum(axis=0), minlength=n_categories)
            samples.append(pvalues[::stride].ravel())
        impressions = counts.sum()
        means.append(sums.sum() / (impressions * len(categories)))
        levels_by_episode.append((sums / (impressions * members)) / means[-1])
        category_sums += sums
        category_counts += impressions * members
    pooled = np.concatenate(samples)
    levels = (category_sums / category_counts) / (category_sums.sum() / category_counts.sum())
    published = np.asarray(AUCTIONNET_TICK_SHARES) / np.sum(AUCTIONNET_TICK_SHARES)
    mean_shares = np.mean(shares, axis=0)
    return {
        "episodes": episodes,
        "tick_shares_mean": mean_shares.tolist(),
        "tick_share_correlation": float(np.corrcoef(mean_shares, published)[0, 1]),
        "tick_share_correlation_per_episode": float(np.mean([np.corrcoef(s, published)[0, 1] for s in shares])),
        "peak_tick": int(np.argmax(mean_shares)),
        "pvalue_mean": [float(v) for v in t_interval(np.array(means))],
        "pvalue_quantiles": {str(q): float(np.quantile(pooled, q)) for q in QUANTILES},
        "pvalue_zero_share": float((pooled == 0).mean()),
        "category_levels": levels.tolist(),
        "category_level_spread": float(levels.max() - levels.min()),
        "category_level_spread_per_episode": float(np.mean([lv.max() - lv.min() for lv in levels_by_episode])),
    }


def value_bidding_statistics(episodes: int, seed: int) -> dict:
    """Market figures of the preset under value bidding over ``episodes`` episodes."""
    scenario = presets.get("auctionnet")
    market = Market(scenario.market, scenario.population, record_history=False)
    cpa_targets = scenario.population.cpa_targets
    reserve = scenario.market.reserve_price
    n_slots = scenario.market.n_slots
    multipliers = np.ones(len(scenario.population))
    rows = []
    for episode in range(episodes):
        market.reset(seed) if episode == 0 else market.reset()
        allocated, exposed = np.zeros(n_slots), np.zeros(n_slots)
        expected = lwc_sum = lwc_at_reserve = 0.0
        impressions = 0
        while not market.done:
            result = market.step(multipliers, log_impressions=True)
            log = result.log
            allocated += (log.winners >= 0).sum(axis=0)
            exposed += log.exposed.sum(axis=0)
            expected += float((result.value_won / cpa_targets).sum())
            lwc_sum += float(log.least_winning_cost.sum())
            lwc_at_reserve += float((log.least_winning_cost <= reserve).sum())
            impressions += log.impression.shape[0]
        metrics = market.episode_metrics()
        rows.append(
            {
                **{f"slot{k + 1}_exposure_rate": exposed[k] / allocated[k] for k in range(n_slots)},
                "realised_over_expected": metrics.total_conversions / expected,
                "conversions": metrics.total_conversions,
                "least_winning_cost_mean": lwc_sum / impressions,
                "least_winning_cost_at_reserve_share": lwc_at_reserve / impressions,
                "revenue": metrics.revenue,
                "market_cpa": metrics.revenue / metrics.total_conversions,
                "mean_budget_utilisation": float(np.mean(metrics.budget_utilisation)),
                "share_within_cpa_target": float(np.mean(metrics.cpa_ratio <= 1.0)),
            }
        )
    return {name: [float(v) for v in t_interval(np.array([row[name] for row in rows]))] for name in rows[0]}


def _within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def compare(traffic: dict, market: dict) -> list[dict]:
    """One row per figure: ours (estimate, low, high), AuctionNet's, and the gate if any."""
    generator, engine = AUCTIONNET_GENERATOR, AUCTIONNET_VALUE_BIDDING
    rows = []

    def row(name, ours, target, gate=None, note=""):
        ours = list(ours) if isinstance(ours, (list, tuple)) else [ours, ours, ours]
        target = list(target) if isinstance(target, (list, tuple)) else [target, target, target]
        relative = ours[0] / target[0] - 1.0 if target[0] else math.nan
        rows.append({"figure": name, "ours": ours, "auctionnet": target, "relative_difference": relative,
                     "gate": None if gate is None else bool(gate), "note": note})

    row("traffic curve correlation (mean over episodes vs published)", traffic["tick_share_correlation"], 1.0,
        traffic["tick_share_correlation"] >= TRAFFIC_CORRELATION_MIN, ">= 0.95")
    row("traffic curve correlation per episode", traffic["tick_share_correlation_per_episode"],
        generator["tick_share_correlation_per_episode"])
    row("traffic peak tick", traffic["peak_tick"], int(np.argmax(AUCTIONNET_TICK_SHARES)))
    mean_ok = abs(traffic["pvalue_mean"][0] / generator["pvalue_mean"][0] - 1.0) <= PVALUE_RELATIVE_TOLERANCE
    row("pValue mean", traffic["pvalue_mean"], generator["pvalue_mean"], mean_ok, "within 5%")
    for q in QUANTILES:
        ours, theirs = traffic["pvalue_quantiles"][str(q)], generator["pvalue_quantiles"][str(q)]
        gate = abs(ours / theirs - 1.0) <= PVALUE_RELATIVE_TOLERANCE if q == 0.5 else None
        row(f"pValue quantile {q}" + (" (median)" if q == 0.5 else ""), ours, theirs, gate, "within 5%" if gate is not None else "")
    row("pValue share exactly 0 (clipped)", traffic["pvalue_zero_share"], generator["pvalue_zero_share"])
    their_levels = np.asarray(generator["category_levels"])
    their_spread = float(their_levels.max() - their_levels.min())
    row(f"category level spread, pooled over {traffic['episodes']} episodes", traffic["category_level_spread"], their_spread,
        traffic["category_level_spread"] <= CATEGORY_SPREAD_MAX_RATIO * their_spread
        if traffic["episodes"] == generator["episodes"] else None,
        f"<= 1.5x; ours {min(traffic['category_levels']):.3f}-{max(traffic['category_levels']):.3f}, "
        f"AuctionNet {their_levels.min():.3f}-{their_levels.max():.3f}")
    for k in (1, 2, 3):
        name = f"slot{k}_exposure_rate"
        gate = _within(market[name][0], *SLOT3_EXPOSURE) if k == 3 else None
        row(f"slot {k} exposure rate", market[name], engine[name], gate, "0.48 +- 0.02" if k == 3 else "")
    row("realised / expected conversions", market["realised_over_expected"], engine["realised_over_expected"],
        _within(market["realised_over_expected"][0], *REALISED_OVER_EXPECTED),
        "in [0.90, 0.99]; AuctionNet's own expectation is 1.00 (its truncation draws)")
    for name in ("least_winning_cost_mean", "least_winning_cost_at_reserve_share", "conversions", "revenue", "market_cpa",
                 "mean_budget_utilisation", "share_within_cpa_target"):
        row(name.replace("_", " "), market[name], engine[name])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=AUCTIONNET_GENERATOR["episodes"], help="episodes for the traffic figures")
    parser.add_argument("--market-episodes", type=int, default=16, help="episodes under value bidding")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jit_seconds = warm_up()
    start = time.perf_counter()
    traffic = traffic_statistics(args.episodes, args.seed)
    market = value_bidding_statistics(args.market_episodes, args.seed)
    rows = compare(traffic, market)
    seconds = time.perf_counter() - start

    def fmt(values):
        estimate, low, high = values
        scale = max(abs(estimate), 1e-12)
        digits = 4 if scale < 10 else 1
        text = f"{estimate:.{digits}g}" if scale < 1e-2 else f"{estimate:.{digits}f}"
        if high > low:
            text += f" [{low:.{digits}g}, {high:.{digits}g}]" if scale < 1e-2 else f" [{low:.{digits}f}, {high:.{digits}f}]"
        return text

    header = f"{'figure':<58} {'ours (95% CI)':>30} {'AuctionNet':>30} {'diff':>7}  gate"
    print(header)
    print("-" * len(header))
    for item in rows:
        gate = "" if item["gate"] is None else ("pass" if item["gate"] else "FAIL")
        difference = "" if math.isnan(item["relative_difference"]) else f"{100 * item['relative_difference']:+.1f}%"
        print(f"{item['figure']:<58} {fmt(item['ours']):>30} {fmt(item['auctionnet']):>30} {difference:>7}  {gate} {item['note']}")
    gates = [item for item in rows if item["gate"] is not None]
    print(f"{sum(item['gate'] for item in gates)} of {len(gates)} gates pass; {seconds:.1f} s (+ {jit_seconds:.1f} s JIT)")
    print("JSON " + json.dumps({
        "benchmark": "fidelity", "preset": "auctionnet", "seed": args.seed, "episodes": args.episodes,
        "market_episodes": args.market_episodes, "seconds": seconds, "rows": rows,
        "traffic": traffic, "value_bidding": market,
        "auctionnet_generator": AUCTIONNET_GENERATOR, "auctionnet_value_bidding": AUCTIONNET_VALUE_BIDDING,
    }))


if __name__ == "__main__":
    main()
