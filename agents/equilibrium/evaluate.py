"""Measure a population policy's exploitability: population episodes, per-advertiser best
responses (in parallel with Ray tasks), the hindsight oracle, and the report.

    from agents.equilibrium import ExploitabilityConfig, GridBestResponse, PPOBestResponse, evaluate_exploitability
    report = evaluate_exploitability(
        PIDPacing(), "auctionnet",
        config=ExploitabilityConfig(estimators=(GridBestResponse(), PPOBestResponse()), market_overrides={"impressions_per_episode": 50_000}),
    )
    print(report.summary_table())

Parallelism: the best responses of different advertisers are independent, so each advertiser is
one task. ``backend="ray"`` runs them as Ray tasks spread over the nodes
(:func:`auctionsim.cluster.map_tasks`): on a local Ray instance started for the call (``num_cpus``
CPUs; temporary files in a private folder removed afterwards), on the cluster named by
``RAY_ADDRESS`` when that is set (the code is shipped to its workers), or on an instance the
caller has already started. ``backend="serial"`` runs them in this process, in order (identical
results). The report's ``metadata["task_nodes"]`` counts the tasks each node ran.
"""

from __future__ import annotations

import collections
import functools
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from agents.equilibrium.deviation import (
    DeviationEvaluator,
    MarketSpec,
    PopulationEpisodes,
    as_market_spec,
    check_seeds,
    play_population,
)
from agents.equilibrium.estimator import LOWER, UPPER, AdvertiserBestResponse, BestResponseEstimator
from agents.equilibrium.grid import GridBestResponse
from agents.equilibrium.report import EstimatorValues, ExploitabilityReport
from auctionsim.stats import check_confidence
from agents.oracle import check_objective
from auctionsim.envs import PopulationPolicy
from auctionsim.errors import ConfigError, describe
from auctionsim.cluster import map_tasks, ray_session
from auctionsim.validation import check_int, check_number

__all__ = ["ExploitabilityConfig", "evaluate_exploitability", "advertiser_best_responses", "choose_advertisers", "ray_session"]

BACKENDS = ("ray", "serial")


@dataclass(frozen=True)
class ExploitabilityConfig:
    """How to measure exploitability.

    Attributes:
        eval_seeds: market seeds scoring every deviation (and the population's own play).
        fit_seeds: market seeds on which lower-bound estimators choose their deviation (keep
            them disjoint from ``eval_seeds`` for unbiased lower bounds; equal seeds are allowed,
            e.g. for exact checks on deterministic tiny markets).
        objective: ``"value"`` (BPG's ``G_i``) or ``"utility"`` (value minus spend).
        estimators: lower-bound estimators run in order for each advertiser (a later one may
            warm-start from an earlier one, as PPO does from the grid).
        oracle: also compute the hindsight oracle's upper bound.
        max_advertisers: evaluate at most this many advertisers, sampled uniformly without
            replacement when there are more (``None``: all).
        sample_seed: seed of that sample.
        backend: ``"ray"`` or ``"serial"``.
        num_cpus: CPUs of a local Ray instance started for the call.
        gpus_per_task: GPUs each Ray task reserves (e.g. 0.25 lets four PPO best responses
            share a GPU); 0: CPU only (Ray hides the GPUs from a task that reserved none).
        confidence: level of the confidence intervals.
        progress: show a progress bar.
    """

    eval_seeds: tuple[int, ...] = (1000, 1001, 1002)
    fit_seeds: tuple[int, ...] = (0, 1)
    objective: str = "value"
    estimators: tuple[Any, ...] = (GridBestResponse(),)
    oracle: bool = True
    max_advertisers: int | None = 32
    sample_seed: int = 0
    backend: str = "ray"
    num_cpus: int = 2
    gpus_per_task: float = 0.0
    confidence: float = 0.95
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "eval_seeds", check_seeds("eval_seeds", self.eval_seeds))
        object.__setattr__(self, "fit_seeds", check_seeds("fit_seeds", self.fit_seeds))
        check_objective(self.objective)
        estimators = tuple(self.estimators)
        for estimator in estimators:
            if not isinstance(estimator, BestResponseEstimator):
                raise ConfigError(f"estimators must provide names and estimate(...), got {describe(estimator)}")
        names = [name for estimator in estimators for name in estimator.names]
        if len(set(names)) != len(names) or "oracle" in names or LOWER in names or UPPER in names:
            raise ConfigError(f"estimator names must be distinct and not oracle/lower/upper, got {names}")
        if not estimators and not self.oracle:
            raise ConfigError("nothing to estimate: give estimators or set oracle=True")
        object.__setattr__(self, "estimators", estimators)
        if self.max_advertisers is not None:
            check_int("max_advertisers", self.max_advertisers, low=1)
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {describe(self.backend)}")
        check_int("num_cpus", self.num_cpus, low=1)
        check_number("gpus_per_task", self.gpus_per_task, low=0.0, high=1.0)
        check_confidence(self.confidence)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for outputs."""
        return {
            "eval_seeds": list(self.eval_seeds),
            "fit_seeds": list(self.fit_seeds),
            "objective": self.objective,
            "estimators": [_describe_estimator(e) for e in self.estimators],
            "oracle": self.oracle,
            "max_advertisers": self.max_advertisers,
            "sample_seed": self.sample_seed,
            "backend": self.backend,
            "gpus_per_task": self.gpus_per_task,
            "confidence": self.confidence,
        }


def _describe_estimator(estimator: Any) -> dict[str, Any]:
    fields = getattr(estimator, "__dataclass_fields__", {})
    description: dict[str, Any] = {"type": type(estimator).__name__}
    for name in fields:
        value = getattr(estimator, name)
        if name == "initial_state":
            value = None if value is None else "given"
        description[name] = list(value) if isinstance(value, tuple) else value
    return description


def choose_advertisers(all_ids: np.ndarray, advertiser_ids: Sequence[int] | None, max_advertisers: int | None, sample_seed: int) -> tuple[np.ndarray, bool]:
    """The advertisers to evaluate and whether they are a uniform random sample of ``all_ids``
    (sorted by id). Unknown ids raise ``ConfigError``."""
    all_ids = np.asarray(all_ids, dtype=np.int64)
    if advertiser_ids is None:
        candidates = np.sort(all_ids)
    else:
        candidates = np.unique(np.asarray(advertiser_ids, dtype=np.int64).reshape(-1))
        unknown = np.setdiff1d(candidates, all_ids)
        if unknown.size:
            raise ConfigError(f"unknown advertiser id {int(unknown[0])}")
    if max_advertisers is None or candidates.size <= max_advertisers:
        return candidates, False
    chosen = np.random.default_rng(sample_seed).choice(candidates, size=max_advertisers, replace=False)
    return np.sort(chosen), True


def advertiser_best_responses(
    market: MarketSpec,
    population: PopulationPolicy,
    advertiser_id: int,
    estimators: Sequence[BestResponseEstimator],
    fit_seeds: Sequence[int],
    eval_seeds: Sequence[int],
    objective: str = "value",
) -> dict[str, AdvertiserBestResponse]:
    """Run every estimator, in order, for one advertiser (one parallel task)."""
    evaluator = DeviationEvaluator(market, population, advertiser_id, objective)
    results: dict[str, AdvertiserBestResponse] = {}
    for estimator in estimators:
        results.update(estimator.estimate(evaluator, fit_seeds, eval_seeds, dict(results)))
    return results


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=description, unit="advertiser", leave=False)


def _run_tasks(
    config: ExploitabilityConfig, market: MarketSpec, population: PopulationPolicy, ids: np.ndarray
) -> tuple[list[dict[str, AdvertiserBestResponse]], dict[str, int]]:
    """Every advertiser's best responses, and how many tasks ran on each node."""
    task = functools.partial(advertiser_best_responses, estimators=tuple(config.estimators), fit_seeds=config.fit_seeds, eval_seeds=config.eval_seeds, objective=config.objective)
    if not config.estimators:
        return [{} for _ in ids], {}
    with _progress(len(ids), config.progress, "best responses") as bar:
        if config.backend == "serial":
            results = []
            for advertiser_id in ids:
                results.append(task(market, population, int(advertiser_id)))
                bar.update(1)
            return results, {"this process": len(results)}
        with ray_session(config.num_cpus):
            results, nodes = map_tasks(task, [int(i) for i in ids], shared=(market, population), num_gpus=config.gpus_per_task, on_result=lambda index, value: bar.update(1))
        return results, dict(collections.Counter(nodes))


def _estimator_values(name: str, results: list[dict[str, AdvertiserBestResponse]]) -> EstimatorValues:
    entries = [result[name] for result in results]
    return EstimatorValues(
        name=name,
        bound=LOWER,
        returns=np.stack([entry.eval_returns for entry in entries], axis=1),
        fit_returns=np.array([entry.fit_return for entry in entries]),
        details=tuple(entry.details for entry in entries),
        seconds=np.array([entry.seconds for entry in entries]),
        episodes=np.array([entry.episodes for entry in entries], dtype=np.int64),
        artifacts=tuple(entry.artifact for entry in entries),
    )


def _oracle_values(episodes: PopulationEpisodes, seconds: float) -> EstimatorValues:
    k = episodes.oracle_ids.shape[0]
    return EstimatorValues(
        name="oracle",
        bound=UPPER,
        returns=episodes.oracle_upper,
        fit_returns=np.full(k, np.nan),
        details=tuple({"achievable_mean": float(x)} for x in episodes.oracle_achievable.mean(axis=0)),
        seconds=np.full(k, seconds / max(k, 1)),
        episodes=np.zeros(k, dtype=np.int64),
    )


def evaluate_exploitability(
    population: PopulationPolicy,
    market: MarketSpec | str,
    advertiser_ids: Sequence[int] | None = None,
    config: ExploitabilityConfig | None = None,
    label: str | None = None,
    market_overrides: Mapping[str, Any] | None = None,
) -> ExploitabilityReport:
    """Estimate the unilateral gains of advertisers against ``population`` and bracket its
    exploitability (definitions in :mod:`agents.equilibrium.report`).

    Args:
        population: the population policy ``theta`` bidding for every advertiser.
        market: a :class:`MarketSpec`, a preset name (with ``market_overrides``) or a factory.
        advertiser_ids: whom to evaluate (default: everyone, sampled down to
            ``config.max_advertisers``).
        config: seeds, estimators, sampling, parallelism.
        label: a name for outputs (e.g. ``"pid N=48"``).
        market_overrides: MarketConfig fields to replace when ``market`` is a preset name.
    """
    config = ExploitabilityConfig() if config is None else config
    if not isinstance(config, ExploitabilityConfig):
        raise ConfigError(f"config must be an ExploitabilityConfig, got {describe(config)}")
    if not isinstance(population, PopulationPolicy):
        raise ConfigError(f"population must be a PopulationPolicy, got {describe(population)}")
    spec = as_market_spec(market, **dict(market_overrides or {}))
    started = time.perf_counter()
    all_ids = spec.build().population.ids
    ids, sampled = choose_advertisers(all_ids, advertiser_ids, config.max_advertisers, config.sample_seed)

    oracle_start = time.perf_counter()
    episodes = play_population(spec, population, config.eval_seeds, config.objective, ids if config.oracle else None)
    population_seconds = time.perf_counter() - oracle_start
    results, task_nodes = _run_tasks(config, spec, population, ids)

    estimators = {name: _estimator_values(name, results) for estimator in config.estimators for name in estimator.names}
    if config.oracle:
        estimators["oracle"] = _oracle_values(episodes, population_seconds)
    columns = episodes.columns(ids)
    return ExploitabilityReport(
        advertiser_ids=ids,
        n_advertisers=int(all_ids.shape[0]),
        sampled=sampled,
        objective=config.objective,
        eval_seeds=np.array(config.eval_seeds),
        fit_seeds=np.array(config.fit_seeds),
        population_returns=episodes.returns[:, columns],
        social_welfare=episodes.social_welfare,
        revenue=episodes.revenue,
        value_welfare=np.array([float(np.sum(row)) for row in episodes.value_won]),
        estimators=estimators,
        metadata={
            "label": label,
            "market": spec.describe(),
            "population": type(population).__name__,
            "config": config.describe(),
            "wall_seconds": time.perf_counter() - started,
            "population_and_oracle_seconds": population_seconds,
            "task_nodes": task_nodes,
        },
        confidence=config.confidence,
    )
