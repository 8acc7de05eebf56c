"""BPG: Nash-equilibrium-constrained population policies (Mou et al., the BPG paper), on RLlib.

* :mod:`agents.bpg.duals`: the dual update (Eq. 13) and the coefficients of gradient (11);
* :mod:`agents.bpg.env`: the RLlib multi-agent view of the PettingZoo market (roles
  ``population``, ``nu_bar``, ``x_star``) and :class:`MarketSpec`;
* :mod:`agents.bpg.module`: the shared per-advertiser torch RLModule (theta, nu-bar, x*);
* :mod:`agents.bpg.learner`: per-row advantages (a learner connector) and the weighted PPO loss;
* :mod:`agents.bpg.algorithm`: Algorithm 1 as an RLlib ``Algorithm`` (:class:`BPG`,
  :class:`BPGConfig`);
* :mod:`agents.bpg.checkpoints`: signed, atomic checkpoints and weights-only policy exports;
* starting Ray locally or on a cluster: :func:`auctionsim.cluster.init_ray` (re-exported here).
"""

from agents.bpg.algorithm import BPG, BPGConfig, BPGState
from agents.bpg.duals import CONSTRAINED_OBJECTIVES, EPSILON_MODES, POPULATION_OBJECTIVES, DualState, PrimalWeights, dual_update, is_constrained, primal_weights, resolve_epsilon
from agents.bpg.checkpoints import CheckpointError, CheckpointStore, export_policy, load_policy
from agents.bpg.env import BPGMarketEnv, market_spec, sized_market
from agents.bpg.module import RowActor, RowPolicyModule, population_policy
from auctionsim.cluster import init_ray

__all__ = [
    "BPG",
    "BPGConfig",
    "BPGMarketEnv",
    "BPGState",
    "CheckpointError",
    "CheckpointStore",
    "export_policy",
    "load_policy",
    "DualState",
    "market_spec",
    "sized_market",
    "CONSTRAINED_OBJECTIVES",
    "EPSILON_MODES",
    "POPULATION_OBJECTIVES",
    "is_constrained",
    "resolve_epsilon",
    "PrimalWeights",
    "RowActor",
    "RowPolicyModule",
    "dual_update",
    "init_ray",
    "population_policy",
    "primal_weights",
]
