"""Equilibrium tooling: best responses, exploitability brackets and their known values.

Cross-checks against brute force on tiny markets, best-response dynamics to a fixed point,
permutation invariance, and results from auction theory (truthfulness of the second-price
auction, the symmetric first-price equilibrium, revenue equivalence) on explicit traffic.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest

from agents.baselines import PIDPacing
from agents.equilibrium import (
    DeviationEvaluator,
    ExploitabilityConfig,
    ExploitabilityReport,
    GridBestResponse,
    MarketSpec,
    PPOBestResponse,
    ScheduleDeviation,
    TrainingHistory,
    best_uniform_multiplier,
    compliance_rate,
    evaluate_exploitability,
    grid_best_response_dynamics,
    play_population,
)
from agents.equilibrium.deviation import period_of_tick
from agents.oracle import hindsight_oracle
from auctionsim import ConfigError, Market, MarketConfig, Population
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, play_episode
from auctionsim.traffic import ExplicitTraffic

SEEDS = (0, 1)


# ---------------------------------------------------------------------------------------- markets
def tiny_market(budgets=(40.0, 60.0, 80.0), mechanism="gsp", order=None) -> Market:
    """Three advertisers (ids 3, 11, 17), 4 ticks, 1,500 impressions, two slots."""
    population = Population(
        ids=[3, 11, 17], budgets=list(budgets), cpa_targets=[80.0, 100.0, 120.0], categories=[0, 0, 1], n_categories=2
    )
    if order is not None:
        population = population.permuted(order)
    config = MarketConfig(n_ticks=4, impressions_per_episode=1500, slot_exposure=(1.0, 0.7), mechanism=mechanism)
    return Market(config, population, record_history=False)


def tiny_spec(**kwargs) -> MarketSpec:
    return MarketSpec(preset=None, factory=lambda: tiny_market(**kwargs))


def uniform_values_market(n_bidders: int, mechanism: str, n_impressions: int = 6000, seed: int = 7) -> Market:
    """One slot always seen, reserve 0, huge budgets, values i.i.d. U(0, 1): the textbook
    independent-private-values auction (CPA target 1, so value = pValue)."""
    pvalues = np.random.default_rng(seed).uniform(0.0, 1.0, (n_impressions, n_bidders))
    traffic = ExplicitTraffic(pvalues=pvalues, impressions_per_tick=np.array([n_impressions // 2, n_impressions - n_impressions // 2]))
    config = MarketConfig(
        n_ticks=2, impressions_per_episode=n_impressions, slot_exposure=(1.0,), mechanism=mechanism, reserve_price=0.0, min_budget_to_bid=0.0
    )
    population = Population(ids=np.arange(n_bidders), budgets=np.full(n_bidders, 1e12), cpa_targets=np.ones(n_bidders), categories=np.zeros(n_bidders, dtype=int))
    return Market(config, population, traffic, record_history=False)


def serial_config(**kwargs) -> ExploitabilityConfig:
    fields = dict(eval_seeds=SEEDS, fit_seeds=SEEDS, backend="serial", progress=False, max_advertisers=None)
    fields.update(kwargs)
    return ExploitabilityConfig(**fields)


def reference_schedule_return(market: Market, others: dict[int, float], focal: int, schedule, seed: int, objective: str) -> float:
    """Slow, obvious reference: step the market by hand with the focal advertiser's schedule."""
    market.reset(seed)
    ids = market.population.ids
    row = int(np.flatnonzero(ids == focal)[0])
    total = 0.0
    while not market.done:
        multipliers = np.array([others.get(int(i), 1.0) for i in ids])
        multipliers[row] = schedule[period_of_tick(market.tick, market.n_ticks, len(schedule))]
        result = market.step(multipliers)
        total += result.value_won[row] - (result.spend[row] if objective == "utility" else 0.0)
    return total


# ---------------------------------------------------------------------------------------- brute force
def test_grid_best_response_equals_brute_force_and_the_bracket_contains_it():
    # The focal advertiser's budget binds; the others' budgets never do, so their bids do not
    # react to it and the hindsight oracle is an exact upper bound.
    budgets = (20.0, 1e6, 1e6)
    others = {11: 2.0, 17: 1.5}
    grid = (0.5, 1.0, 2.0, 3.0)
    estimator = GridBestResponse(grid, periods=2, exhaustive_limit=100)
    evaluator = DeviationEvaluator(tiny_spec(budgets=budgets), FixedMultipliers(others), 3)
    found = estimator.estimate(evaluator, SEEDS, SEEDS)

    market = tiny_market(budgets=budgets)
    brute = {
        schedule: np.mean([reference_schedule_return(market, others, 3, schedule, seed, "value") for seed in SEEDS])
        for schedule in itertools.product(grid, repeat=2)
    }
    best_schedule = max(brute, key=brute.get)
    best_constant = max(grid, key=lambda m: brute[(m, m)])
    piecewise = found["grid-piecewise"]
    assert piecewise.fit_return == pytest.approx(brute[best_schedule], rel=1e-12)
    schedule = tuple(piecewise.details["schedule"])
    assert brute[schedule * (2 // len(schedule))] == brute[best_schedule]
    assert found["grid-constant"].fit_return == pytest.approx(brute[(best_constant, best_constant)], rel=1e-12)
    # Non-trivial: the best schedule changes multiplier during the day and beats every constant.
    assert best_schedule[0] != best_schedule[1] and brute[best_schedule] > brute[(best_constant, best_constant)]

    report = evaluate_exploitability(
        FixedMultipliers(others), tiny_spec(budgets=budgets), advertiser_ids=[3], config=serial_config(estimators=(estimator,))
    )
    lower = report.deviation_returns("lower")[:, 0]
    upper = report.deviation_returns("upper")[:, 0]
    optimum = np.array([reference_schedule_return(market, others, 3, best_schedule, seed, "value") for seed in SEEDS])
    np.testing.assert_allclose(lower, optimum, rtol=1e-12)
    assert (upper >= optimum - 1e-9).all()
    assert report.max_exploitability("lower").estimate <= report.max_exploitability("upper").estimate


def test_a_deviation_that_copies_the_population_gains_exactly_nothing():
    population = FixedMultipliers({3: 0.7, 11: 1.3, 17: 2.0})
    episodes = play_population(tiny_spec(), population, SEEDS)
    evaluator = DeviationEvaluator(tiny_spec(), population, 11)
    copied = evaluator.returns(ScheduleDeviation((1.3,), 4), SEEDS)
    np.testing.assert_array_equal(copied, episodes.returns[:, episodes.columns([11])[0]])


# ---------------------------------------------------------------------------------------- fixed point
def test_iterated_grid_best_responses_reach_a_fixed_point_with_zero_grid_exploitability():
    grid = (0.5, 1.0, 1.5, 2.0, 3.0)
    dynamics = grid_best_response_dynamics(tiny_spec(), 1.0, grid, SEEDS, max_rounds=10)
    assert dynamics.converged, dynamics
    assert dynamics.changes, "the start was already a fixed point: the test would be vacuous"
    fixed_point = dynamics.multipliers

    config = serial_config(estimators=(GridBestResponse(grid, periods=1),), oracle=False)
    report = evaluate_exploitability(FixedMultipliers(fixed_point), tiny_spec(), config=config)
    assert report.max_exploitability("grid-constant").estimate <= 1e-12
    assert report.nash_conv("grid-constant").estimate <= 1e-9
    mean_gains, _, _ = report.advertiser_gains("grid-constant")
    assert (mean_gains <= 1e-9).all()

    # Move one advertiser off its best response: its own gain becomes positive.
    moved = 17
    off = next(m for m in grid if m != fixed_point[moved])
    displaced = evaluate_exploitability(FixedMultipliers({**fixed_point, moved: off}), tiny_spec(), advertiser_ids=[moved], config=config)
    gain = displaced.advertiser_gains("grid-constant")[0][0]
    assert gain > 0
    assert displaced.max_exploitability("grid-constant").estimate > 0


def test_best_uniform_multiplier_equals_brute_force_and_ties_go_to_value_bidding():
    grid = (0.25, 0.5, 0.7, 1.0, 1.3)
    search = best_uniform_multiplier(tiny_spec(budgets=(4.0, 6.0, 8.0)), SEEDS, grid)
    market = tiny_market(budgets=(4.0, 6.0, 8.0))
    ids = [int(i) for i in market.population.ids]
    for m in grid:
        reference = np.mean([sum(reference_schedule_return(market, {i: m for i in ids}, focal, (m,), seed, "value") for focal in ids) for seed in SEEDS])
        assert math.isclose(search.welfare[m], reference, rel_tol=1e-12), (m, search.welfare[m], reference)
    assert search.welfare[search.multiplier] == max(search.welfare.values())
    assert search.multiplier < 1.0, "tight budgets: shading together should win more value (else the test is vacuous)"
    # Unlimited budgets in a second-price auction: every uniform multiplier keeps the ranking and
    # wins the same value, so the tie goes to value bidding.
    flat = best_uniform_multiplier(MarketSpec(preset=None, factory=lambda: uniform_values_market(3, "gsp", n_impressions=600)), SEEDS, grid)
    assert len(set(flat.welfare.values())) == 1 and flat.multiplier == 1.0
    with pytest.raises(ConfigError, match="grid"):
        best_uniform_multiplier(tiny_spec(), SEEDS, (0.5, -1.0))


# ---------------------------------------------------------------------------------------- permutations
def test_exploitability_is_invariant_to_permuting_the_advertisers():
    config = serial_config(estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=2, rounds=1),))
    reports = [
        evaluate_exploitability(PIDPacing(), MarketSpec(preset=None, factory=lambda order=order: tiny_market(order=order)), config=config)
        for order in (None, [2, 0, 1])
    ]
    first, second = reports
    np.testing.assert_array_equal(first.advertiser_ids, second.advertiser_ids)  # evaluated in id order
    for name in first.names:
        np.testing.assert_allclose(first.gains(name), second.gains(name), rtol=1e-12, atol=1e-12)
        assert first.max_exploitability(name).estimate == pytest.approx(second.max_exploitability(name).estimate, rel=1e-12)
        assert first.nash_conv(name).estimate == pytest.approx(second.nash_conv(name).estimate, rel=1e-12)
    np.testing.assert_allclose(first.social_welfare, second.social_welfare, rtol=1e-12)


# ---------------------------------------------------------------------------------------- theory
def test_truthful_bidding_in_a_second_price_auction_is_not_exploitable():
    spec = MarketSpec(preset=None, factory=lambda: uniform_values_market(3, "gsp"))
    grid = GridBestResponse((0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 2.0), periods=2, rounds=1)
    report = evaluate_exploitability(FixedMultipliers(1.0), spec, config=serial_config(objective="utility", estimators=(grid,)))
    # Truthful bidding is dominant: no deviation does better on any episode...
    assert (report.gains("lower") <= 1e-9).all()
    assert report.max_exploitability("lower").estimate <= 1e-12
    # ...and in hindsight it already buys exactly the impressions worth more than their price.
    np.testing.assert_allclose(report.gains("upper"), 0.0, atol=1e-6)
    assert report.epsilon_ne(1e-6) == "satisfied"


@pytest.mark.parametrize("n_bidders", [2, 3])
def test_symmetric_first_price_equilibrium_bids_n_minus_1_over_n_of_value(n_bidders):
    spec = MarketSpec(preset=None, factory=lambda: uniform_values_market(n_bidders, "fpa"))
    equilibrium = (n_bidders - 1) / n_bidders
    grid = GridBestResponse(tuple(sorted({0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, round(equilibrium, 6)})), periods=1)
    config = serial_config(objective="utility", estimators=(grid,), oracle=False)
    at_equilibrium = evaluate_exploitability(FixedMultipliers(equilibrium), spec, config=config)
    truthful = evaluate_exploitability(FixedMultipliers(1.0), spec, config=config)
    # Near zero at the equilibrium (sampling noise of 6,000 impressions); bidding value earns
    # no utility at all (welfare 0: Eq. 15 is infinite) and shading gains a lot.
    welfare = at_equilibrium.social_welfare.mean()
    assert at_equilibrium.max_exploitability("grid-constant").estimate < 0.02
    assert truthful.social_welfare.max() == 0.0 and truthful.max_exploitability("grid-constant").estimate == math.inf
    assert truthful.nash_conv("grid-constant").estimate > 0.3 * welfare > 30 * at_equilibrium.nash_conv("grid-constant").estimate
    # Each advertiser's expected utility is 1 / (n (n + 1)) per impression.
    per_impression = at_equilibrium.population_returns.mean() / 6000
    assert per_impression == pytest.approx(1 / (n_bidders * (n_bidders + 1)), rel=0.05)


def test_first_and_second_price_revenues_agree_in_expectation():
    n = 3
    revenues = {}
    for mechanism, multiplier in (("fpa", (n - 1) / n), ("gsp", 1.0)):
        spec = MarketSpec(preset=None, factory=lambda mechanism=mechanism: uniform_values_market(n, mechanism, n_impressions=20_000))
        revenues[mechanism] = play_population(spec, FixedMultipliers(multiplier), (0,), "utility").revenue[0] / 20_000
    expected = (n - 1) / (n + 1)  # the second-highest of n uniforms
    assert revenues["fpa"] == pytest.approx(revenues["gsp"], rel=0.02)
    assert revenues["fpa"] == pytest.approx(expected, rel=0.02)
    assert revenues["gsp"] == pytest.approx(expected, rel=0.02)


# ---------------------------------------------------------------------------------------- PPO
def test_ppo_learns_to_shade_first_price_bids_and_warm_starts_from_its_weights():
    spec = MarketSpec(preset=None, factory=lambda: uniform_values_market(2, "fpa", n_impressions=400))
    ppo = PPOBestResponse(iterations=12, episodes_per_iteration=4, warm_start_from=None, learning_rate=3e-3, initial_std=0.4, seed=3)
    evaluator = DeviationEvaluator(spec, FixedMultipliers(1.0), 0, objective="utility")
    result = ppo.estimate(evaluator, (0,), (1,), {})["ppo"]
    # Bidding value (multiplier 1) earns exactly 0 utility in a first-price auction; shading earns more.
    assert evaluator.returns(ScheduleDeviation((1.0,), 2), (1,))[0] == pytest.approx(0.0, abs=1e-9)
    assert result.eval_returns[0] > 5.0
    assert result.details["training_returns"][-1] > result.details["training_returns"][0]
    # Same seed, same result; and the artifact restarts training from the learned weights.
    again = ppo.estimate(DeviationEvaluator(spec, FixedMultipliers(1.0), 0, objective="utility"), (0,), (1,), {})["ppo"]
    np.testing.assert_array_equal(again.eval_returns, result.eval_returns)
    restarted = PPOBestResponse(iterations=1, initial_state={0: result.artifact})
    network, note = restarted.build_network(evaluator, {})
    assert note == "initial_state"
    for key, value in network.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), result.artifact[key].numpy())


# ---------------------------------------------------------------------------------------- Ray
def test_ray_tasks_give_the_serial_results(monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    running = ray.is_initialized()  # the session's shared instance, if an RLlib test started it
    # A preset, not a factory from this test module: Ray workers must be able to import it.
    spec = MarketSpec("auctionnet", {"n_ticks": 4, "impressions_per_episode": 3000})
    config = serial_config(estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=2, rounds=1),), max_advertisers=3)
    serial = evaluate_exploitability(PIDPacing(), spec, config=config)
    parallel = evaluate_exploitability(PIDPacing(), spec, config=dataclasses.replace(config, backend="ray", num_cpus=2))
    np.testing.assert_array_equal(serial.advertiser_ids, parallel.advertiser_ids)
    for name in serial.names:
        np.testing.assert_array_equal(serial.gains(name), parallel.gains(name))
    assert ray.is_initialized() == running  # a session it started itself is shut down


# ---------------------------------------------------------------------------------------- sampling
def test_large_populations_are_sampled_and_the_report_says_so():
    config = serial_config(estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=1),), max_advertisers=5, eval_seeds=(5,), fit_seeds=(6,))
    report = evaluate_exploitability(PIDPacing(), "large-1k", config=config, market_overrides={"impressions_per_episode": 20_000, "n_ticks": 6})
    assert report.sampled and report.n_advertisers == 1000 and report.advertiser_ids.shape == (5,)
    summary = report.summary(epsilons=(0.01,))
    assert "sampled" in summary["note"]
    # NashConv is N x the sample mean of the clipped gains.
    gains = np.maximum(report.gains("lower").mean(axis=0), 0.0)
    assert report.nash_conv("lower").estimate == pytest.approx(1000 * gains.mean())
    assert report.exploitability("lower").estimate == pytest.approx(gains.mean())


# ---------------------------------------------------------------------------------------- oracle
def test_vectorised_oracle_matches_one_advertiser_at_a_time():
    env = AuctionParallelEnv(tiny_market(mechanism="vcg"))
    record = play_episode(env, PIDPacing(), seed=4, log_impressions=True)
    for objective in ("value", "utility"):
        together = hindsight_oracle(env.market, record.ticks, objective=objective)
        alone = [hindsight_oracle(env.market, record.ticks, [i], objective=objective, chunk_size=1)[0] for i in (17, 3, 11)]
        by_id = {r.advertiser_id: r for r in together}
        for result in alone:
            assert result == by_id[result.advertiser_id]
            assert result.upper_bound >= result.achievable


# ---------------------------------------------------------------------------------------- outputs
def test_report_and_history_round_trip_through_json(tmp_path):
    report = evaluate_exploitability(
        PIDPacing(), tiny_spec(), config=serial_config(estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=1),)), label="pid tiny"
    )
    loaded = ExploitabilityReport.load(report.save(tmp_path / "report.json"))
    for name in report.names:
        np.testing.assert_array_equal(loaded.gains(name), report.gains(name))
        assert loaded.max_exploitability(name) == report.max_exploitability(name)
    assert json.loads(json.dumps(report.summary(epsilons=(0.05,))))["label"] == "pid tiny"
    assert compliance_rate([report, loaded], epsilon=1.0, name="upper") == 1.0
    assert "G_i(theta)" in report.advertiser_table() and "oracle" in report.summary_table()

    history = TrainingHistory(run={"algorithm": "test", "epsilon": 0.1})
    history.add_report(0, report, env_steps=0)
    history.add(5, max_exploitability={"lower": 0.01}, scalars={"loss": 1.5})
    loaded_history = TrainingHistory.load(history.save(tmp_path / "history.json"))
    iterations, estimate, low, high = loaded_history.series("max_exploitability", "lower")
    np.testing.assert_array_equal(iterations, [0, 5])
    assert estimate[1] == low[1] == high[1] == 0.01
    assert set(loaded_history.estimator_names()) == {"grid-constant", "grid-piecewise", "oracle", "lower", "upper"}


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make",
    [
        lambda: ExploitabilityConfig(eval_seeds=()),
        lambda: ExploitabilityConfig(eval_seeds=(1, 1)),
        lambda: ExploitabilityConfig(fit_seeds=(-1,)),
        lambda: ExploitabilityConfig(objective="profit"),
        lambda: ExploitabilityConfig(backend="dask"),
        lambda: ExploitabilityConfig(max_advertisers=0),
        lambda: ExploitabilityConfig(estimators=(object(),)),
        lambda: ExploitabilityConfig(estimators=(), oracle=False),
        lambda: ExploitabilityConfig(confidence=1.5),
        lambda: MarketSpec(preset="nope"),
        lambda: MarketSpec(preset="auctionnet", overrides={"n_tick": 3}),
        lambda: MarketSpec(preset=None),
        lambda: GridBestResponse(()),
        lambda: GridBestResponse((1.0, float("nan"))),
        lambda: GridBestResponse((1.0, 1.0)),
        lambda: GridBestResponse(periods=0),
        lambda: PPOBestResponse(iterations=0),
        lambda: PPOBestResponse(learning_rate=float("inf")),
        lambda: PPOBestResponse(gae_lambda=2.0),
        lambda: ScheduleDeviation((1.0, -0.5), 4),
        lambda: ScheduleDeviation((1.0,) * 5, 4),
    ],
)
def test_bad_configuration_is_rejected(make):
    with pytest.raises(ConfigError):
        make()


def test_bad_calls_are_rejected():
    with pytest.raises(ConfigError, match="unknown advertiser id 99"):
        evaluate_exploitability(PIDPacing(), tiny_spec(), advertiser_ids=[99], config=serial_config())
    with pytest.raises(ConfigError, match="population"):
        evaluate_exploitability("pid", tiny_spec(), config=serial_config())
    with pytest.raises(ConfigError, match="objective"):
        hindsight_oracle(tiny_market(), [], objective="score")
    history = TrainingHistory()
    history.add(3, max_exploitability={"lower": 0.2})
    for bad in (dict(iteration=3), dict(iteration=4, social_welfare=float("nan")), dict(iteration=4, max_exploitability=0.1), dict(iteration=-1)):
        with pytest.raises(ConfigError):
            history.add(**bad)
    assert len(history.records) == 1
    with pytest.raises(ConfigError, match="schema"):
        TrainingHistory.from_dict({"records": []})
    with pytest.raises(ConfigError, match="options"):
        DeviationEvaluator(tiny_spec(), PIDPacing(), 3).env.reset(options={"market_seed": -2})
