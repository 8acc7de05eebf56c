"""Run the PettingZoo parallel env with random agents (the dict API), then the same market
through the array API that large populations should use.

Run: ``python examples/parallel_random.py``
"""

from __future__ import annotations

import numpy as np

from auctionsim.envs import AuctionParallelEnv


def dict_api(seed: int = 0) -> None:
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=100_000)
    observations, infos = env.reset(seed=seed)
    for agent in env.possible_agents:
        env.action_space(agent).seed(seed)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        for agent, reward in rewards.items():
            returns[agent] += reward
    best = max(returns, key=returns.get)
    print(f"dict API: {len(returns)} random agents, best {best} won value {returns[best]:,.1f}")


def array_api(seed: int = 0) -> None:
    env = AuctionParallelEnv("large-1k", impressions_per_episode=200_000)
    env.reset_arrays(seed)
    generator = np.random.default_rng(seed)
    total = np.zeros(env.max_num_agents)
    while not env.market.done:
        step = env.step_arrays(generator.uniform(0.0, 2.0, env.max_num_agents))
        total += step.rewards
    print(f"array API: {env.max_num_agents} random agents, mean value won {total.mean():,.2f}, welfare {env.market.episode_metrics().social_welfare:,.0f}")


if __name__ == "__main__":
    dict_api()
    array_api()
