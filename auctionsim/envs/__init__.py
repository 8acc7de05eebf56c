"""Environments over the market: a PettingZoo parallel env and single-bidder Gymnasium envs.

Registered Gymnasium ids (``gymnasium.make(id, **kwargs)``; kwargs as
:class:`~auctionsim.envs.single.SingleBidderEnv`, market config fields included):

* ``auctionsim/SingleBidder-v0``: continuous multiplier, AuctionNet preset.
* ``auctionsim/SingleBidderDiscrete-v0``: the same over a 14-level bid grid (for bandits).

With ``action_scale="unit"`` the continuous envs take actions in ``[-1, 1]`` (0 bids the expected
value), the space SB3's and CleanRL's Gaussian policies start from.
"""

from __future__ import annotations

import gymnasium

from auctionsim.envs.observations import FEATURE_NAMES, REWARDS, ObservationBuilder, RewardTracker, feature_names
from auctionsim.envs.parallel import ACTION_SCALES, ArrayStep, AuctionParallelEnv, agent_name, multiplier_to_unit, unit_to_multiplier
from auctionsim.envs.policy import (
    AdvertiserFeedback,
    AdvertiserImpressions,
    AdvertiserSpec,
    FixedMultipliers,
    PolicyContext,
    PopulationPolicy,
    TickFeedback,
)
from auctionsim.envs.rollout import EpisodeRecord, play_episode, policy_step
from auctionsim.envs.single import DEFAULT_BID_GRID, SingleBidderEnv

__all__ = [
    "ACTION_SCALES",
    "AdvertiserFeedback",
    "AdvertiserImpressions",
    "AdvertiserSpec",
    "ArrayStep",
    "AuctionParallelEnv",
    "DEFAULT_BID_GRID",
    "EpisodeRecord",
    "FEATURE_NAMES",
    "FixedMultipliers",
    "ObservationBuilder",
    "PolicyContext",
    "PopulationPolicy",
    "REWARDS",
    "RewardTracker",
    "SingleBidderEnv",
    "TickFeedback",
    "agent_name",
    "feature_names",
    "multiplier_to_unit",
    "play_episode",
    "policy_step",
    "unit_to_multiplier",
    "ENV_IDS",
]

ENV_IDS = ("auctionsim/SingleBidder-v0", "auctionsim/SingleBidderDiscrete-v0")

if ENV_IDS[0] not in gymnasium.registry:
    gymnasium.register(id=ENV_IDS[0], entry_point="auctionsim.envs.single:SingleBidderEnv")
    gymnasium.register(
        id=ENV_IDS[1], entry_point="auctionsim.envs.single:SingleBidderEnv", kwargs={"bid_grid": DEFAULT_BID_GRID}
    )
