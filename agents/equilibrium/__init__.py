"""Equilibrium tooling: unilateral gains, best responses and exploitability with bounds.

Measures how far a population policy (any :class:`~auctionsim.envs.PopulationPolicy`) is from a
Nash equilibrium, the way the BPG paper (Nash-equilibrium constrained bidding) judges it:

* :func:`evaluate_exploitability` plays the population on evaluation seeds, searches each
  evaluated advertiser's best unilateral deviation with several estimators (in parallel, Ray
  tasks), and returns an :class:`ExploitabilityReport`;
* estimators: :class:`GridBestResponse` (constant and piecewise-constant multipliers; lower
  bound), :class:`PPOBestResponse` (PPO on the single-bidder env; tighter lower bound,
  warm-startable) and the hindsight oracle (:mod:`agents.oracle`; upper bound);
* metrics (definitions and sources in :mod:`agents.equilibrium.report`): social welfare, Max
  Exploitability (BPG Eq. 15), the epsilon-NE check, Compliance Rate, revenue, NashConv and
  exploitability (OpenSpiel), with per-advertiser breakdowns and confidence intervals;
* :class:`TrainingHistory`: the JSON schema of a training run's exploitability curve, read by
  ``experiments.plots``;
* :func:`grid_best_response_dynamics`: iterated best responses over constant multipliers;
  :func:`best_uniform_multiplier`: the welfare-best multiplier for everyone.
"""

from agents.equilibrium.deviation import (
    OBJECTIVES,
    Deviation,
    DeviationEvaluator,
    MarketSpec,
    PopulationEpisodes,
    ScheduleDeviation,
    as_market_spec,
    play_population,
)
from agents.equilibrium.estimator import LOWER, UPPER, AdvertiserBestResponse, BestResponseEstimator
from agents.equilibrium.evaluate import ExploitabilityConfig, advertiser_best_responses, evaluate_exploitability, ray_session
from agents.equilibrium.grid import DEFAULT_GRID, BestResponseDynamics, GridBestResponse, UniformSearch, best_uniform_multiplier, grid_best_response_dynamics
from agents.equilibrium.history import HISTORY_SCHEMA, TrainingHistory
from agents.equilibrium.ppo import PPOBestResponse
from agents.equilibrium.report import EstimatorValues, ExploitabilityReport, compliance_rate
from auctionsim.stats import Interval

__all__ = [
    "AdvertiserBestResponse",
    "BestResponseDynamics",
    "BestResponseEstimator",
    "DEFAULT_GRID",
    "Deviation",
    "DeviationEvaluator",
    "EstimatorValues",
    "ExploitabilityConfig",
    "ExploitabilityReport",
    "GridBestResponse",
    "HISTORY_SCHEMA",
    "Interval",
    "LOWER",
    "MarketSpec",
    "OBJECTIVES",
    "PPOBestResponse",
    "PopulationEpisodes",
    "ScheduleDeviation",
    "TrainingHistory",
    "UPPER",
    "UniformSearch",
    "advertiser_best_responses",
    "as_market_spec",
    "best_uniform_multiplier",
    "compliance_rate",
    "evaluate_exploitability",
    "grid_best_response_dynamics",
    "play_population",
    "ray_session",
]
