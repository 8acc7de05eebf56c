"""Offline reinforcement learning for bidders: shared data handling and compact torch
implementations of behaviour cloning, IQL, CQL and the decision transformer (the ORLB baselines
of the PE-MORL paper, and the critic / DT the LBM bidder builds on).

Typical use::

    from agents.datasets import OfflineDataset
    from agents.offline import OfflineData, IQLConfig, train_iql, load_bidder

    data = OfflineData(OfflineDataset.load("logs.npz"), reward="score")
    result = train_iql(data, IQLConfig(steps=5_000))
    result.bidder.save("iql.pt")            # weights only
    bidder = load_bidder("iql.pt")          # a PopulationPolicy, acts exactly as before

Every trainer returns an ``agents`` bidder (a :class:`~auctionsim.envs.policy.PopulationPolicy`
vectorised over the advertisers it manages); :func:`agents.evaluation.play_focal_episode` hosts
one in the single-bidder env. Training uses CUDA when available.
"""

from agents.offline.bc import BCConfig, train_bc
from agents.offline.cql import CQLConfig, CQLLearner, train_cql
from agents.offline.data import ActionScale, OfflineData, TransitionBatch, WindowBatch, scaled_rewards
from agents.offline.dt import DecisionTransformer, DTBidder, DTConfig, train_dt
from agents.offline.iql import IQLConfig, IQLCritic, IQLLearner, IQLResult, expectile_loss, load_critic, save_critic, train_iql
from agents.offline.networks import CausalTransformer, Normalizer, StateEncoder, TwinQ, ValueNet, mlp
from agents.offline.policy import Actor, ActorBidder, ActorConfig, CheckpointBidder, load_bidder

__all__ = [
    "ActionScale",
    "Actor",
    "ActorBidder",
    "ActorConfig",
    "BCConfig",
    "CQLConfig",
    "CQLLearner",
    "CausalTransformer",
    "CheckpointBidder",
    "DTBidder",
    "DTConfig",
    "DecisionTransformer",
    "IQLConfig",
    "IQLCritic",
    "IQLLearner",
    "IQLResult",
    "Normalizer",
    "OfflineData",
    "StateEncoder",
    "TransitionBatch",
    "TwinQ",
    "ValueNet",
    "WindowBatch",
    "expectile_loss",
    "load_bidder",
    "load_critic",
    "mlp",
    "save_critic",
    "scaled_rewards",
    "train_bc",
    "train_cql",
    "train_dt",
    "train_iql",
]
