"""PE-MORL (Mou et al., arXiv 2506.17919): permutation-equivariant model-based offline RL for
bidding. A Gaussian ensemble environment model over the set of advertisers
(:mod:`agents.pemorl.model`, with a fixed-size MLP model for comparison; all members in one
batched module), short branched model rollouts with the focal advertiser on the current policy
plus exploration noise (:mod:`agents.pemorl.rollouts`), and an IQL (advantage-weighted) or
TD3+BC actor-critic on real plus uncertainty-penalised imaginary transitions
(:mod:`agents.pemorl.learner`).

Typical use::

    from agents.datasets import OfflineDataset
    from agents.offline import OfflineData
    from agents.pemorl import GlobalTransitions, ModelConfig, PEMORLConfig, train_ensemble, train_pemorl

    logs = [OfflineDataset.load("logs.npz")]
    ensemble = train_ensemble(GlobalTransitions(logs), ModelConfig(kind="pe", observation_dim=24))
    result = train_pemorl(OfflineData(logs), GlobalTransitions(logs), ensemble, PEMORLConfig(penalty_coefficient=1.0))
    result.bidder.save("pemorl.pt")   # weights only; agents.offline.load_bidder reads it back
"""

from agents.pemorl.data import DYNAMIC_FEATURES, GlobalBatch, GlobalTransitions
from agents.pemorl.learner import POLICY_IMPROVEMENTS, PEMORLConfig, PEMORLLearner, PEMORLResult, train_pemorl
from agents.pemorl.model import (
    EnsembleLinear,
    MLPModel,
    ModelConfig,
    ModelEnsemble,
    ModelTrainingConfig,
    PEModel,
    gaussian_nll,
    prediction_error,
    train_ensemble,
    uncertainty_penalty,
)
from agents.pemorl.rollouts import ImaginaryBatch, branched_rollouts

__all__ = [
    "POLICY_IMPROVEMENTS",
    "DYNAMIC_FEATURES",
    "GlobalBatch",
    "GlobalTransitions",
    "ImaginaryBatch",
    "MLPModel",
    "EnsembleLinear",
    "ModelConfig",
    "ModelEnsemble",
    "ModelTrainingConfig",
    "PEMORLConfig",
    "PEMORLLearner",
    "PEMORLResult",
    "PEModel",
    "branched_rollouts",
    "gaussian_nll",
    "prediction_error",
    "train_ensemble",
    "train_pemorl",
    "uncertainty_penalty",
]
