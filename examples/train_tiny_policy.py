"""Train a tiny bidding policy on the single-bidder env with a plain REINFORCE loop (torch).

The policy is a two-layer network mapping the advertiser's observation to the mean of a
log-normal bid multiplier; REINFORCE with a running-mean baseline maximises the episode's value
won against a population of CPA-pacing bidders, on a reduced market (fewer impressions per
tick) so that a few hundred episodes run in a minute or two. Prints the learning curve.

Run: ``python examples/train_tiny_policy.py [--episodes 200]``
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from agents import CPAPacing
from auctionsim.envs import SingleBidderEnv


class GaussianLogMultiplier(torch.nn.Module):
    def __init__(self, observation_size: int) -> None:
        super().__init__()
        self.mean = torch.nn.Sequential(torch.nn.Linear(observation_size, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        self.log_std = torch.nn.Parameter(torch.tensor(-1.0))

    def distribution(self, observation: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(observation).squeeze(-1), self.log_std.exp())


def train(episodes: int = 200, seed: int = 0, learning_rate: float = 3e-3) -> list[float]:
    torch.manual_seed(seed)
    env = SingleBidderEnv("auctionnet", population=CPAPacing(), focal=20, impressions_per_episode=100_000, reward="expected_conversions")
    policy = GaussianLogMultiplier(env.observation_space.shape[0])
    optimiser = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    baseline, returns = 0.0, []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        log_probs, rewards, done = [], [], False
        while not done:
            distribution = policy.distribution(torch.as_tensor(observation))
            log_multiplier = distribution.sample()
            log_probs.append(distribution.log_prob(log_multiplier))
            multiplier = float(np.clip(np.exp(log_multiplier.item()), 0.0, 5.0))
            observation, reward, terminated, truncated, _ = env.step(np.array([multiplier], dtype=np.float32))
            rewards.append(reward)
            done = terminated or truncated
        episode_return = float(sum(rewards))
        baseline = episode_return if episode == 0 else 0.9 * baseline + 0.1 * episode_return
        loss = -(episode_return - baseline) * torch.stack(log_probs).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        returns.append(episode_return)
        if (episode + 1) % 20 == 0:
            print(f"episode {episode + 1:4d}: mean return of the last 20 = {np.mean(returns[-20:]):.2f} expected conversions")
    return returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train(args.episodes, args.seed)
