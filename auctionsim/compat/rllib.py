"""RLlib in one call: the parallel env behind RLlib's stock PettingZoo wrapper, and a multi-agent
PPO config whose one shared policy bids for every advertiser.

The env needs no special wrapper: RLlib's own ``ParallelPettingZooEnv`` works on
:class:`~auctionsim.envs.parallel.AuctionParallelEnv` as it is (its Episode End section says why
every episode ends correctly). :func:`register_env` does the registration RLlib asks for, and
:func:`ppo_config` adds the multi-agent settings that are easy to get wrong (one shared module,
steps counted per agent)::

    from auctionsim.compat.rllib import ppo_config
    config = ppo_config({"market": "auctionnet", "impressions_per_episode": 50_000})
    algo = config.training(train_batch_size_per_learner=4096).build_algo()
    algo.train()

Needs the ``rl`` extra (``ray[rllib]``, torch); uses RLlib's new API stack (Ray 2.60 tested).
"""

from __future__ import annotations

from typing import Any, Mapping

from auctionsim.envs.parallel import AuctionParallelEnv

__all__ = ["ENV_NAME", "SHARED_POLICY", "register_env", "ppo_config"]

#: Name the env is registered under by default.
ENV_NAME = "auctionsim_parallel"
#: The module id of the policy every advertiser shares.
SHARED_POLICY = "shared"


def register_env(env: Mapping[str, Any] | None = None, name: str = ENV_NAME) -> str:
    """Register ``AuctionParallelEnv(**env, **env_config)`` wrapped in RLlib's
    ``ParallelPettingZooEnv`` under ``name`` (an algorithm's ``env_config`` entries override
    ``env``); returns ``name``. Call it in every process that builds an algorithm (RLlib's
    workers in the same process tree inherit it)."""
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env as register

    defaults = dict(env or {})

    def create(env_config: Mapping[str, Any]) -> ParallelPettingZooEnv:
        return ParallelPettingZooEnv(AuctionParallelEnv(**{**defaults, **dict(env_config)}))

    register(name, create)
    return name


def _shared(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    return SHARED_POLICY


def ppo_config(env: Mapping[str, Any] | None = None, name: str = ENV_NAME):
    """A ``PPOConfig`` on the registered env with one policy, :data:`SHARED_POLICY`, for every
    advertiser, and batch sizes counted in agent steps (``count_steps_by="agent_steps"``).

    Args:
        env: :class:`~auctionsim.envs.parallel.AuctionParallelEnv` keyword arguments (a preset
            name as ``market`` and its overrides, ``reward``, ...); ``action_scale`` defaults to
            ``"unit"`` so that the untrained Gaussian policy (mean 0) bids multiplier 1.
        name: the registered env name.

    Chain the usual ``.training(...)``, ``.env_runners(...)`` calls on the result.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    register_env({"action_scale": "unit", **dict(env or {})}, name)
    return (
        PPOConfig()
        .environment(name)
        .multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=_shared, count_steps_by="agent_steps")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={SHARED_POLICY: RLModuleSpec()}))
    )
