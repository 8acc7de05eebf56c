"""RL best responses: PPO for one advertiser on the single-bidder env, the others fixed.

The deviating advertiser learns a closed-loop policy ``pi(a | s_i)`` over its own observation
(:mod:`auctionsim.envs.observations`) while the population policy bids for everyone else: the
``i``-th unilateral optimisation problem ``max_pi G_i(pi; theta)`` of the BPG paper (Section
2.2), solved, as the paper does for its Max Exploitability (Eq. 15), by a policy-gradient method.
A learned policy is a strategy the advertiser could play, so its return on held-out evaluation
seeds estimates a *lower bound* on the best response; being closed-loop (it sees its budget left,
the prices, the time) it can beat the open-loop grid schedules.

Algorithm: clipped PPO (Schulman et al., 2017) in the style of CleanRL's ``ppo_continuous_action``:
a Gaussian policy over the log multiplier (``multiplier = exp(u)``, ``u ~ Normal(mu(s), sigma)``),
a separate value network, generalised advantage estimation (``gamma = 1``: the episode is a
finite day), advantages normalised per minibatch, returns scaled by the first batch's mean
absolute return. Training episodes use fresh market seeds (keyed by the estimator's seed and the
advertiser id), never the evaluation seeds; the final policy acts deterministically
(``multiplier = exp(mu(s))``) on the fit and evaluation seeds.

Warm starts: from given network weights (``initial_state``, e.g. the previous evaluation's
artifact, or any network of this architecture), else from the best constant grid multiplier
found before it (``warm_start_from``): the mean's output layer starts near zero with its bias
at ``log(multiplier)``, so training starts from the grid's answer and refines it.
"""

from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from agents.equilibrium.deviation import DeviationEvaluator
from agents.equilibrium.estimator import AdvertiserBestResponse
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int
from auctionsim.tracking import ScalarLogger

__all__ = ["PPOBestResponse", "BidPolicyNetwork"]

_OBSERVATION_CLIP = 20.0  # observation features are O(1) by design; clip outliers for stability
_MIN_MULTIPLIER = 1e-3


def _torch():
    import torch

    return torch


def BidPolicyNetwork(observation_dim: int, hidden_sizes: Sequence[int] = (64, 64)):
    """Actor-critic network: ``forward(obs) -> (mean log multiplier, value)``; ``log_std`` is a
    learned parameter. Built by a function so that importing this module does not need torch."""
    torch = _torch()
    nn = torch.nn

    def mlp(output_gain: float) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = observation_dim
        for hidden in hidden_sizes:
            linear = nn.Linear(width, hidden)
            nn.init.orthogonal_(linear.weight, math.sqrt(2))
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.Tanh()]
            width = hidden
        output = nn.Linear(width, 1)
        nn.init.orthogonal_(output.weight, output_gain)
        nn.init.zeros_(output.bias)
        return nn.Sequential(*layers, output)

    class _Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.actor = mlp(0.01)
            self.critic = mlp(1.0)
            self.log_std = nn.Parameter(torch.zeros(1))

        def forward(self, observations):
            observations = observations.clamp(-_OBSERVATION_CLIP, _OBSERVATION_CLIP)
            return self.actor(observations).squeeze(-1), self.critic(observations).squeeze(-1)

    return _Network()


class _PolicyDeviation:
    """A deviation driven by the network: samples ``u ~ Normal(mu, sigma)`` when ``explore``,
    else plays ``exp(mu)``. Remembers what it sampled for the PPO buffer."""

    def __init__(self, network, device, explore: bool) -> None:
        self.network, self.device, self.explore = network, device, explore
        self.last: tuple[float, float, float] | None = None  # (u, log prob, value)

    def act(self, tick: int, observation: np.ndarray) -> float:
        torch = _torch()
        with torch.no_grad():
            mean, value = self.network(torch.as_tensor(observation, dtype=torch.float32, device=self.device)[None])
            if not self.explore:
                return math.exp(float(mean[0]))
            distribution = torch.distributions.Normal(mean, self.network.log_std.exp())
            u = distribution.sample()
            self.last = (float(u[0]), float(distribution.log_prob(u)[0]), float(value[0]))
        return math.exp(self.last[0])


@dataclass(frozen=True)
class PPOBestResponse:
    """PPO best-response estimator (reports ``ppo``).

    Attributes:
        iterations: PPO iterations (each collects ``episodes_per_iteration`` episodes).
        episodes_per_iteration: episodes per batch.
        epochs: passes over each batch.
        minibatch_size: transitions per gradient step.
        learning_rate: Adam step size.
        clip_coef: PPO ratio clipping.
        gae_lambda: GAE lambda (gamma is 1).
        value_coef, entropy_coef: loss weights.
        max_grad_norm: gradient clipping.
        hidden_sizes: widths of the actor's and the critic's hidden layers.
        initial_std: initial standard deviation of the log multiplier.
        warm_start_from: name of an earlier estimator whose constant multiplier starts the
            policy (``None``: start at multiplier 1).
        initial_state: network weights to start from (a state dict for everyone, or advertiser
            id -> state dict); takes precedence over ``warm_start_from``.
        seed: seeds network initialisation, sampling and the training episodes' market seeds.
        device: torch device (default: CUDA when available, else CPU).
        log_dir: when given, TensorBoard scalars of each advertiser's training (mean return,
            policy and value loss, exploration std per iteration) go to
            ``<log_dir>/seed<seed>-advertiser<id>`` (:class:`auctionsim.tracking.ScalarLogger`).
    """

    iterations: int = 20
    episodes_per_iteration: int = 8
    epochs: int = 4
    minibatch_size: int = 64
    learning_rate: float = 1e-3
    clip_coef: float = 0.2
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    initial_std: float = 0.3
    warm_start_from: str | None = "grid-constant"
    initial_state: Mapping[Any, Any] | None = None
    seed: int = 0
    device: str | None = None
    log_dir: str | None = None
    names: tuple[str, ...] = field(default=("ppo",), init=False)

    def __post_init__(self) -> None:
        for name in ("iterations", "episodes_per_iteration", "epochs", "minibatch_size"):
            check_int(name, getattr(self, name), low=1)
        for name in ("learning_rate", "clip_coef", "initial_std", "max_grad_norm"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a finite number > 0, got {describe(value)}")
        for name in ("gae_lambda",):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {describe(value)}")
        for name in ("value_coef", "entropy_coef"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {describe(value)}")
        if not self.hidden_sizes:
            raise ConfigError(f"hidden_sizes must be positive integers, got {describe(self.hidden_sizes)}")
        for index, size in enumerate(self.hidden_sizes):
            check_int(f"hidden_sizes[{index}]", size, low=1)
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))

    # ------------------------------------------------------------------ set-up
    def _initial_weights(self, advertiser_id: int) -> Mapping[str, Any] | None:
        state = self.initial_state
        if state is None:
            return None
        if advertiser_id in state and isinstance(state[advertiser_id], Mapping):
            return state[advertiser_id]
        if all(isinstance(key, str) for key in state):
            return state
        return None

    def build_network(self, evaluator: DeviationEvaluator, previous: Mapping[str, AdvertiserBestResponse]):
        """The starting network for ``evaluator``'s advertiser and a note on how it started."""
        torch = _torch()
        network = BidPolicyNetwork(evaluator.env.observation_space.shape[0], self.hidden_sizes)
        weights = self._initial_weights(evaluator.advertiser_id)
        with torch.no_grad():
            network.log_std.fill_(math.log(self.initial_std))
            if weights is not None:
                network.load_state_dict(weights)
                return network, "initial_state"
            multiplier, note = 1.0, "multiplier 1"
            if self.warm_start_from is not None and self.warm_start_from in previous:
                schedule = previous[self.warm_start_from].details.get("schedule", [1.0])
                multiplier = float(np.mean(schedule))
                note = f"{self.warm_start_from} (multiplier {multiplier:g})"
            network.actor[-1].bias.fill_(math.log(max(multiplier, _MIN_MULTIPLIER)))
        return network, note

    # ------------------------------------------------------------------ training
    def estimate(
        self,
        evaluator: DeviationEvaluator,
        fit_seeds: Sequence[int],
        eval_seeds: Sequence[int],
        previous: Mapping[str, AdvertiserBestResponse] | None = None,
    ) -> dict[str, AdvertiserBestResponse]:
        torch = _torch()
        start, episodes_before = time.perf_counter(), evaluator.episodes_played
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny networks: one thread is fastest, and parallel tasks share cores
        try:
            torch.manual_seed(self.seed * 1_000_003 + evaluator.advertiser_id)
            device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            network, warm_start = self.build_network(evaluator, previous or {})
            network = network.to(device)
            curve = self.train(network, evaluator, device)
            greedy = _PolicyDeviation(network.eval(), device, explore=False)
            fit_returns = evaluator.returns(greedy, fit_seeds)
            eval_returns = fit_returns.copy() if tuple(fit_seeds) == tuple(eval_seeds) else evaluator.returns(greedy, eval_seeds)
        finally:
            torch.set_num_threads(threads)
        state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
        return {
            "ppo": AdvertiserBestResponse(
                fit_return=float(fit_returns.mean()),
                eval_returns=eval_returns,
                details={"warm_start": warm_start, "training_returns": curve, "iterations": self.iterations},
                seconds=time.perf_counter() - start,
                episodes=evaluator.episodes_played - episodes_before,
                artifact=state,
            )
        }

    def training_seeds(self, advertiser_id: int) -> np.ndarray:
        """Market seeds of the training episodes (distinct per advertiser and estimator seed)."""
        count = self.iterations * self.episodes_per_iteration
        state = np.random.SeedSequence([self.seed, advertiser_id, 0x5EED]).generate_state(count, dtype=np.uint64)
        return (state >> np.uint64(2)).astype(np.int64)

    def train(self, network, evaluator: DeviationEvaluator, device) -> list[float]:
        """Run PPO in place on ``network``; returns the mean training return per iteration."""
        torch = _torch()
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate, eps=1e-5)
        explorer = _PolicyDeviation(network, device, explore=True)
        seeds = iter(self.training_seeds(evaluator.advertiser_id).tolist())
        scale: float | None = None
        curve = []
        log_dir = None if self.log_dir is None else pathlib.Path(self.log_dir) / f"seed{self.seed}-advertiser{evaluator.advertiser_id}"
        with ScalarLogger(log_dir) as logger:
            for iteration in range(self.iterations):
                batch, episode_returns = self._collect(explorer, evaluator, seeds)
                if scale is None:
                    scale = max(float(np.mean(np.abs(episode_returns))), 1e-12)
                curve.append(float(np.mean(episode_returns)))
                losses = self._update(network, optimiser, batch, scale, device)
                logger.log(iteration, {"mean_return": curve[-1], **losses, "exploration_std": float(network.log_std.exp().mean())}, prefix="ppo/")
        return curve

    def _collect(self, explorer: _PolicyDeviation, evaluator: DeviationEvaluator, seeds) -> tuple[dict[str, list], list[float]]:
        """Play ``episodes_per_iteration`` exploring episodes; returns per-episode arrays."""
        batch: dict[str, list] = {"observations": [], "actions": [], "log_probs": [], "values": [], "rewards": []}
        episode_returns = []
        for _ in range(self.episodes_per_iteration):
            episode: dict[str, list] = {key: [] for key in batch}

            def record(tick, observation, multiplier, reward, done) -> None:
                u, log_prob, value = explorer.last
                for key, item in zip(batch, (observation, u, log_prob, value, reward)):
                    episode[key].append(item)

            episode_returns.append(evaluator.rollout(explorer, next(seeds), on_step=record))
            for key in batch:
                batch[key].append(np.asarray(episode[key], dtype=np.float32))
        return batch, episode_returns

    def _advantages(self, rewards: np.ndarray, values: np.ndarray) -> np.ndarray:
        """GAE with gamma = 1 over one finished episode (the value after the end is 0)."""
        advantages = np.zeros_like(rewards)
        following = 0.0
        next_value = 0.0
        for t in reversed(range(rewards.shape[0])):
            delta = rewards[t] + next_value - values[t]
            following = delta + self.gae_lambda * following
            advantages[t] = following
            next_value = values[t]
        return advantages

    def _update(self, network, optimiser, batch: dict[str, list], scale: float, device) -> dict[str, float]:
        """PPO epochs over the batch; returns the mean policy and value loss of the last epoch."""
        torch = _torch()
        advantages, returns = [], []
        for rewards, values in zip(batch["rewards"], batch["values"]):
            advantage = self._advantages(rewards / scale, values)
            advantages.append(advantage)
            returns.append(advantage + values)
        tensors = {
            "observations": np.concatenate(batch["observations"]),
            "actions": np.concatenate(batch["actions"]),
            "log_probs": np.concatenate(batch["log_probs"]),
            "advantages": np.concatenate(advantages),
            "returns": np.concatenate(returns),
        }
        data = {key: torch.as_tensor(value, dtype=torch.float32, device=device) for key, value in tensors.items()}
        size = data["actions"].shape[0]
        generator = torch.Generator().manual_seed(int(size))
        network.train()
        for _ in range(self.epochs):
            policy_losses, value_losses = [], []
            order = torch.randperm(size, generator=generator)
            for first in range(0, size, self.minibatch_size):
                rows = order[first : first + self.minibatch_size].to(device)
                mean, value = network(data["observations"][rows])
                distribution = torch.distributions.Normal(mean, network.log_std.exp())
                log_prob = distribution.log_prob(data["actions"][rows])
                ratio = (log_prob - data["log_probs"][rows]).exp()
                advantage = data["advantages"][rows]
                if advantage.numel() > 1:
                    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
                policy_loss = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - self.clip_coef, 1 + self.clip_coef)).mean()
                value_loss = 0.5 * (value - data["returns"][rows]).pow(2).mean()
                loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * distribution.entropy().mean()
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), self.max_grad_norm)
                optimiser.step()
                policy_losses.append(float(policy_loss))
                value_losses.append(float(value_loss))
        network.eval()
        return {"policy_loss": float(np.mean(policy_losses)), "value_loss": float(np.mean(value_losses))}
