"""AuctionNet compatibility: strategies written against its ``BaseBiddingStrategy`` interface bid
through the adapter in the market, both envs and the exploitability tools exactly as the same rule
written natively; its logged-data format round-trips into the same offline dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.datasets import collect_dataset, dataset_from_auctionnet
from agents.equilibrium import ExploitabilityConfig, GridBestResponse, MarketSpec, evaluate_exploitability
from agents.evaluation import play_focal
from agents.offline import BCConfig, OfflineData, train_bc
from agents.populations import named_population
from auctionsim import ActionError, ConfigError, ExplicitTraffic, Market, MarketConfig, presets
from auctionsim.compat import auctionnet
from auctionsim.compat.auctionnet import AuctionNetPolicy
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, PolicyContext, PopulationPolicy, SingleBidderEnv, TickFeedback, play_episode
from conftest import small_population

pytest.importorskip("pyarrow", reason="AuctionNet's logged-data format needs pyarrow (the [data] extra)")

SMALL = dict(n_ticks=6, impressions_per_episode=12_000)


class ProportionalStrategy:
    """AuctionNet's documented pValue-proportional rule, written as an AuctionNet strategy:
    ``bid = alpha x pValue`` with ``alpha = multiplier x CPA``. (Duck-typed: AuctionNet's
    ``BaseBiddingStrategy`` is an ABC with exactly these members.)"""

    def __init__(self, budget=100, name="ProportionalStrategy", cpa=2, category=1, multiplier=0.8):
        self.budget, self.remaining_budget, self.name, self.cpa, self.category = budget, budget, name, cpa, category
        self.multiplier = multiplier

    def reset(self):
        self.remaining_budget = self.budget

    def bidding(self, timeStepIndex, pValues, pValueSigmas, historyPValueInfo, historyBid, historyAuctionResult, historyImpressionResult, historyLeastWinningCost):
        return self.multiplier * self.cpa * pValues


class PacingStrategy(ProportionalStrategy):
    """A pacing rule that reads every history argument (AuctionNet's PID strategy reads
    ``remaining_budget`` the same way): last tick's spend and wins from the history, checked
    against ``remaining_budget``."""

    def reset(self):
        super().reset()
        self.last_remaining = self.budget
        self.multiplier = 0.8

    def bidding(self, timeStepIndex, pValues, pValueSigmas, historyPValueInfo, historyBid, historyAuctionResult, historyImpressionResult, historyLeastWinningCost):
        assert len(historyBid) == len(historyAuctionResult) == len(historyImpressionResult) == len(historyLeastWinningCost) == timeStepIndex
        if timeStepIndex > 0:
            won, cost, exposed = historyAuctionResult[-1][:, 0], historyAuctionResult[-1][:, 2], historyImpressionResult[-1][:, 0]
            spend = float(np.sum(cost * exposed))
            assert spend == pytest.approx(self.last_remaining - self.remaining_budget, rel=1e-9, abs=1e-9)
            self.last_remaining = self.remaining_budget
            self.multiplier = paced(self.multiplier, spend, self.budget, won.sum())
        return self.multiplier * self.cpa * pValues


def paced(multiplier: float, spend: float, budget: float, wins: float) -> float:
    """Up a quarter when last tick's spend was under a twelfth of the budget, else down a fifth;
    half as much again after a tick without a win; within [0.05, 4]."""
    return float(np.clip(multiplier * (1.25 if spend < budget / 12 else 0.8) * (1.5 if wins == 0 else 1.0), 0.05, 4.0))


class NativePacing(PopulationPolicy):
    """The same pacing rule written natively (multipliers, aggregate feedback)."""

    def __init__(self, multiplier: float = 0.8) -> None:
        self.initial = multiplier

    def reset(self, context: PolicyContext) -> None:
        self.multipliers = np.full(len(context.population), self.initial)
        self.budgets = context.population.budgets

    def act(self, observations):
        return self.multipliers.copy()

    def observe(self, feedback: TickFeedback) -> None:
        self.multipliers = np.array([paced(m, s, b, w) for m, s, b, w in zip(self.multipliers, feedback.spend, self.budgets, feedback.wins)])


def _same_episodes(a, b) -> None:
    for name in ("spend", "conversions", "value_won", "wins", "exposures"):
        np.testing.assert_array_equal(getattr(a.metrics, name), getattr(b.metrics, name), err_msg=name)
    np.testing.assert_array_equal(a.observations, b.observations)


@pytest.mark.parametrize("strategy, native", [(ProportionalStrategy, lambda: FixedMultipliers(0.8)), (PacingStrategy, NativePacing)])
def test_a_strategy_through_the_adapter_plays_exactly_as_the_native_rule(strategy, native):
    env = AuctionParallelEnv("auctionnet", **SMALL)
    for seed in (0, 1):
        _same_episodes(play_episode(env, AuctionNetPolicy(strategy), seed=seed), play_episode(env, native(), seed=seed))


def test_the_history_arguments_are_built_as_auctionnets_runner_builds_them():
    recorded = []

    class Recorder(ProportionalStrategy):
        def bidding(self, timeStepIndex, pValues, pValueSigmas, *history):
            recorded.append((timeStepIndex, self.remaining_budget, pValues, pValueSigmas, history))
            return super().bidding(timeStepIndex, pValues, pValueSigmas, *history)

    env = AuctionParallelEnv("auctionnet", **SMALL)
    policy = AuctionNetPolicy(lambda spec: Recorder(multiplier=1.2) if spec.advertiser_id == 5 else ProportionalStrategy())
    record = play_episode(env, policy, seed=3)
    row = env.market.population.positions_of([5])[0]
    assert [entry[0] for entry in recorded] == list(range(len(recorded)))
    tick, remaining, pvalues, sigmas, history = recorded[-1]
    pvalue_info, bids, auction, impression, lwc = history
    assert all(len(h) == tick for h in history)
    for t in range(tick):
        result = record.ticks[t]
        n = result.opportunities[row]
        assert pvalue_info[t].shape == (n, 2) and bids[t].shape == (n,) and auction[t].shape == (n, 3) and impression[t].shape == (n, 2) and lwc[t].shape == (n,)
        assert pvalue_info[t].dtype == bids[t].dtype == auction[t].dtype == lwc[t].dtype == np.float64 and impression[t].dtype == np.int64
        # Columns: (pValue, sigma), bid, (won, slot, price), (exposed, converted), least winning cost.
        values = env.market.tick_values([5], tick=t)
        np.testing.assert_array_equal(pvalue_info[t][:, 0], values.pvalues[:, 0])
        np.testing.assert_array_equal(pvalue_info[t][:, 1], values.sigmas[:, 0])
        np.testing.assert_allclose(bids[t], 1.2 * env.market.population.cpa_targets[row] * values.pvalues[:, 0])
        assert auction[t][:, 0].sum() == result.wins[row] and set(np.unique(auction[t][:, 1])) <= {0.0, 1.0, 2.0, 3.0}
        assert ((auction[t][:, 0] == 1) == (auction[t][:, 1] > 0)).all()
        assert impression[t][:, 0].sum() == result.exposures[row] and impression[t][:, 1].sum() == result.conversions[row]
        assert float(np.sum(auction[t][:, 2] * impression[t][:, 0])) == pytest.approx(result.spend[row], rel=1e-9)
        np.testing.assert_array_equal(lwc[t], result.log.least_winning_cost)
    # remaining_budget is the budget minus what was paid before this tick.
    assert remaining == pytest.approx(record.ticks[tick - 1].budget_left[row], rel=1e-12)


def test_bad_strategy_output_is_refused_naming_the_strategy_and_negative_bids_are_zeroed():
    class Wrong(ProportionalStrategy):
        def bidding(self, timeStepIndex, pValues, *history):
            return pValues[:-1]

    class NotFinite(ProportionalStrategy):
        def bidding(self, timeStepIndex, pValues, *history):
            return np.full(pValues.shape, np.nan)

    class Negative(ProportionalStrategy):
        def bidding(self, timeStepIndex, pValues, *history):
            return -pValues

    env = AuctionParallelEnv("auctionnet", **SMALL)
    with pytest.raises(ActionError, match="Wrong.bidding \\(advertiser 0, tick 0\\) must return one bid per impression"):
        play_episode(env, AuctionNetPolicy(Wrong))
    with pytest.raises(ActionError, match="NotFinite.bidding .* non-finite bid"):
        play_episode(env, AuctionNetPolicy(NotFinite))
    assert play_episode(env, AuctionNetPolicy(Negative), seed=0).metrics.wins.sum() == 0  # AuctionNet's runner: bids < 0 -> 0
    with pytest.raises(ConfigError, match="bidding"):
        play_episode(env, AuctionNetPolicy(lambda spec: object()))


def test_strategies_below_the_budget_floor_are_not_called():
    calls = []

    class Spender(ProportionalStrategy):
        def bidding(self, timeStepIndex, pValues, *history):
            calls.append((timeStepIndex, self.remaining_budget))
            return 50.0 * self.cpa * pValues

    env = AuctionParallelEnv("auctionnet", **SMALL)
    play_episode(env, AuctionNetPolicy(Spender), seed=0)
    assert calls and all(remaining >= env.market.budget_floor for _, remaining in calls)
    assert len(calls) < 48 * SMALL["n_ticks"]  # at x50 budgets run out, and those strategies rest


def test_strategies_bid_in_both_envs_and_the_focal_engine_as_their_native_twins():
    scenario = presets.get("auctionnet", **SMALL)

    def env(population: PopulationPolicy) -> SingleBidderEnv:
        return SingleBidderEnv(Market(scenario.market, scenario.population), population=population, focal=9)

    # As the population of the single-bidder env.
    adapted, native = env(AuctionNetPolicy(PacingStrategy)), env(NativePacing())
    for single in (adapted, native):
        single.reset(seed=2, options={"market_seed": 2})
    for _ in range(SMALL["n_ticks"]):
        a, b = adapted.step(np.array([1.3], dtype=np.float32)), native.step(np.array([1.3], dtype=np.float32))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    # As the focal bidder against a population, and as the population behind a focal bidder.
    episodes = [play_focal(bidder, [env(named_population("pid"))], [4]) for bidder in (AuctionNetPolicy(PacingStrategy), NativePacing())]
    np.testing.assert_array_equal(episodes[0].spend, episodes[1].spend)
    np.testing.assert_array_equal(episodes[0].conversions, episodes[1].conversions)
    behind = [play_focal(FixedMultipliers(1.1), [env(population)], [4]) for population in (AuctionNetPolicy(PacingStrategy), NativePacing())]
    np.testing.assert_array_equal(behind[0].value_won, behind[1].value_won)


def test_strategies_as_a_population_in_the_exploitability_tools():
    spec = MarketSpec("auctionnet", {"n_ticks": 4, "impressions_per_episode": 6_000})
    config = ExploitabilityConfig(eval_seeds=(1, 2), fit_seeds=(1, 2), backend="serial", progress=False, max_advertisers=3,
                                  estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=1),))
    adapted = evaluate_exploitability(AuctionNetPolicy(PacingStrategy), spec, config=config)
    native = evaluate_exploitability(NativePacing(), spec, config=config)
    np.testing.assert_array_equal(adapted.population_returns, native.population_returns)
    for name in native.names:
        np.testing.assert_array_equal(adapted.gains(name), native.gains(name))


# ------------------------------------------------------------------------------- logged data
def _explicit_market_env() -> AuctionParallelEnv:
    """A market on given pValues: the observations' "pValue mean now" is then the tick's column
    mean for the env and the loader alike, so every array must round-trip."""
    population = small_population(6, 2, budget=30.0)
    generator = np.random.default_rng(0)
    traffic = ExplicitTraffic(pvalues=generator.uniform(0, 0.01, (800, 6)), sigmas=generator.uniform(0, 0.001, (800, 6)), impressions_per_tick=np.full(4, 200))
    return AuctionParallelEnv(Market(MarketConfig(n_ticks=4, impressions_per_episode=800), population, traffic), reward="score")


def _assert_same_dataset(expected, loaded, skip=()) -> None:
    for field in dataclasses.fields(expected):
        name = field.name
        if name in ("metadata", "seeds") or name in skip:
            continue
        a, b = getattr(expected, name), getattr(loaded, name)
        assert a.shape == b.shape, name
        if a.dtype.kind in "biuUS":
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_auctionnet_logs_round_trip_into_the_same_offline_dataset(tmp_path, suffix):
    policy = named_population("pid")
    expected = collect_dataset(_explicit_market_env(), policy, 2, seed=5, action_noise=0.2, progress=False)
    path = auctionnet.log_episodes(_explicit_market_env(), policy, 2, tmp_path / f"log.{suffix}", seed=5, action_noise=0.2)
    columns = auctionnet.read_log(path)
    assert tuple(columns) == auctionnet.COLUMNS and columns["bid"].shape == (2 * 800 * 6,)
    # AuctionNet's row order: period, tick, impression, then advertiser.
    order = np.lexsort((columns["advertiserNumber"], columns["pvIndex"], columns["timeStepIndex"], columns["deliveryPeriodIndex"]))
    np.testing.assert_array_equal(order, np.arange(order.size))
    _assert_same_dataset(expected, dataset_from_auctionnet(path, reward="score"))
    # Write -> read -> write gives the same file contents.
    again = auctionnet.write_log(tmp_path / f"again.{suffix}", [columns])
    assert all(np.array_equal(columns[name], values) for name, values in auctionnet.read_log(again).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"log.{suffix}", f"again.{suffix}"])  # no temporary files left


def test_logs_of_generated_traffic_load_with_only_the_traffic_model_feature_differing(tmp_path):
    env = AuctionParallelEnv("auctionnet", **SMALL)
    expected = collect_dataset(env, named_population("mixed", env.market.population.ids), 1, seed=2, progress=False)
    path = auctionnet.log_episodes(env, named_population("mixed", env.market.population.ids), 1, tmp_path / "log.parquet", seed=2)
    loaded = dataset_from_auctionnet(path)
    _assert_same_dataset(expected, loaded, skip=("observations",))
    differs = np.flatnonzero(np.abs(expected.observations - loaded.observations).max(axis=(0, 1, 2)) > 1e-5)
    assert [expected.feature_names[i] for i in differs] == ["pvalue_mean_now"]  # the model's mean vs the logged mean
    # And an offline learner trains on it.
    bidder = train_bc(OfflineData(loaded, device="cpu"), BCConfig(steps=2, batch_size=8, hidden_dim=16))
    assert bidder.act(loaded.observations[0, 0, :3]).shape == (3,)


def test_auctionnet_csvs_with_float_integers_load_and_bad_files_are_refused(tmp_path):
    columns = {name: np.arange(4, dtype=np.float64) for name in auctionnet.COLUMNS}  # AuctionNet writes every column as float
    path = tmp_path / "auctionnet.csv"
    header = ",".join(auctionnet.COLUMNS)
    rows = "\n".join(",".join(f"{columns[name][i]:.1f}" for name in auctionnet.COLUMNS) for i in range(4))
    path.write_text(header + "\n" + rows + "\n")
    loaded = auctionnet.read_log(path)
    assert loaded["advertiserNumber"].dtype == np.int64 and loaded["pValue"].dtype == np.float64
    path.write_text(header.replace("pValueSigma", "sigma") + "\n" + rows + "\n")
    with pytest.raises(ConfigError, match="lacks the column 'pValueSigma'"):
        auctionnet.read_log(path)
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        auctionnet.read_log(tmp_path / "log.json")
    with pytest.raises(ConfigError, match="periods"):
        dataset_from_auctionnet(loaded, periods=[9])
