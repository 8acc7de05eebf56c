"""Decision transformer (Chen et al. 2021) for bidding, as the LBM paper's DT baseline.

Each tick ``j`` of a trajectory contributes three tokens, return-to-go ``R_j``, observation
``s_j`` and action ``a_j``, each embedded by its own linear layer plus a learned tick
embedding; a causal transformer (:class:`~agents.offline.networks.CausalTransformer`) reads the
``3L`` tokens of the last ``L`` ticks and the action ``a_t`` is predicted from the output at the
``s_t`` token (so it sees ``R_{<=t}, s_{<=t}, a_{<t}``). Training minimises the squared error
of the predicted unit actions on logged windows (:meth:`OfflineData.sample_windows`).

Returns are in :class:`~agents.offline.data.OfflineData`'s scaled units (conversions-like reward
divided by ``budget / CPA target``), so one target return, e.g. ``1.0`` = "the conversions my
budget buys at target CPA", means the same for every advertiser. :class:`DTBidder` keeps each
advertiser's own context while it acts: its last ``L`` observations, actions and returns-to-go,
decreasing the return-to-go by the reward it observes after each tick (computed from the tick
feedback exactly as the training rewards were).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agents.offline.data import ActionScale, OfflineData, WindowBatch
from agents.offline.networks import CausalTransformer, Normalizer
from agents.offline.policy import CheckpointBidder
from agents.offline.training import autocast, check_positive, device_generator, log_scalars, progress_steps, resolve_device
from auctionsim.envs.observations import REWARDS, RewardTracker
from auctionsim.envs.policy import PolicyContext, TickFeedback
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.errors import ConfigError
from auctionsim.validation import check_int

__all__ = ["DTConfig", "DecisionTransformer", "DTBidder", "train_dt"]


@dataclass(frozen=True)
class DTConfig:
    """Decision-transformer hyper-parameters.

    Args:
        context_length: ticks ``L`` in the context (the LBM paper uses 10).
        hidden_dim, layers, heads, dropout: the transformer (original DT: 128, 3, 1, 0.1).
        steps, batch_size, learning_rate, weight_decay, warmup_steps: AdamW with linear warm-up.
        target_return: return-to-go the bidder asks for at the first tick, in scaled units;
            ``None``: the ``target_quantile`` of the training returns.
        target_quantile: quantile of the logged episode returns used when ``target_return`` is None.
        seed: seeds initialisation and sampling.
    """

    context_length: int = 10
    hidden_dim: int = 128
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1
    steps: int = 10_000
    batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 1_000
    target_return: float | None = None
    target_quantile: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("context_length", "hidden_dim", "layers", "heads", "steps", "batch_size"):
            check_int(f"DTConfig.{name}", getattr(self, name), low=1)
        check_positive("DTConfig", learning_rate=self.learning_rate)
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.target_quantile <= 1.0:
            raise ConfigError(f"DTConfig.dropout must be in [0, 1) and target_quantile in [0, 1], got {self.dropout}, {self.target_quantile}")
        if self.target_return is not None and not math.isfinite(self.target_return):
            raise ConfigError(f"DTConfig.target_return must be finite or None, got {self.target_return}")


class DecisionTransformer(nn.Module):
    """``(R, s, a)`` windows -> predicted unit actions ``(B, L)`` (one per tick, from its ``s`` token)."""

    def __init__(self, observation_dim: int, max_ticks: int, config: DTConfig) -> None:
        super().__init__()
        hidden = config.hidden_dim
        self.normalizer = Normalizer(observation_dim)
        self.embed_return = nn.Linear(1, hidden)
        self.embed_state = nn.Linear(observation_dim, hidden)
        self.embed_action = nn.Linear(1, hidden)
        self.embed_tick = nn.Embedding(max_ticks + 1, hidden)
        self.embed_norm = nn.LayerNorm(hidden)
        self.transformer = CausalTransformer(hidden, config.layers, config.heads, config.dropout)
        self.predict_action = nn.Sequential(nn.Linear(hidden, 1), nn.Tanh())

    def forward(self, window: WindowBatch) -> torch.Tensor:
        batch, length = window.mask.shape
        ticks = self.embed_tick(window.timesteps.clamp(max=self.embed_tick.num_embeddings - 1))
        tokens = torch.stack(
            [
                self.embed_return(window.returns_to_go.unsqueeze(-1)) + ticks,
                self.embed_state(self.normalizer(window.observations)) + ticks,
                self.embed_action(window.actions.unsqueeze(-1)) + ticks,
            ],
            dim=2,
        ).reshape(batch, 3 * length, -1)  # R_1, s_1, a_1, R_2, s_2, a_2, ...
        padding = (~window.mask).repeat_interleave(3, dim=1)
        hidden = self.transformer(self.embed_norm(tokens), padding_mask=padding)
        return self.predict_action(hidden[:, 1::3])[..., 0]


def train_dt(data: OfflineData, config: DTConfig = DTConfig(), progress: bool = False, writer: ScalarLogger | None = None, log_every: int = 100) -> "DTBidder":
    """Train a decision transformer on ``data`` (on ``data.device``; bf16 autocast on CUDA);
    returns it as a bidder conditioned on the target return (``config.target_return`` or the
    ``target_quantile`` of the logged returns). ``writer`` receives ``dt/loss`` and
    ``dt/learning_rate`` every ``log_every`` steps."""
    seed_everything(config.seed)
    generator = device_generator(config.seed, data.device)
    model = DecisionTransformer(data.observation_dim, data.n_ticks, config).to(data.device)
    model.normalizer.fit(data.flat_observations())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, foreach=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps)))
    model.train()
    for step in progress_steps(config.steps, "DT", progress):
        window = data.sample_windows(config.batch_size, config.context_length, generator)
        valid = window.mask & (window.timesteps < data.n_ticks)
        with autocast(data.device):
            loss = ((model(window).float() - window.actions).pow(2) * valid).sum() / valid.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        if writer is not None and (step % log_every == 0 or step == config.steps - 1):
            log_scalars(writer, "dt", {"loss": loss.detach(), "learning_rate": schedule.get_last_lr()[0]}, step)
        schedule.step()
    target = config.target_return
    if target is None:
        target = float(torch.quantile(data.episode_returns().float().cpu(), config.target_quantile))
    return DTBidder(model.eval(), config, target_return=target, reward=data.reward, action_scale_bounds=(data.action_scale.low, data.action_scale.high), device=data.device)


class DTBidder(CheckpointBidder):
    """Acts with a trained :class:`DecisionTransformer`, keeping each managed advertiser's context.

    ``reset`` starts every advertiser at ``target_return``; ``act`` appends the observation and
    predicts from the last ``L`` ticks; ``observe`` records the action and subtracts the tick's
    scaled reward (of kind ``reward``) from the return-to-go. Use it through an env's
    population hook or :func:`agents.evaluation.play_focal_episode`, which call all three.
    """

    kind = "decision-transformer"

    def __init__(
        self,
        model: DecisionTransformer,
        config: DTConfig,
        target_return: float,
        reward: str = "score",
        action_scale_bounds: tuple[float, float] = (0.05, 5.0),
        device: str | None = None,
    ) -> None:
        if reward not in REWARDS:
            raise ConfigError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.target_return = float(target_return)
        self.reward = reward
        self.action_scale = ActionScale(*action_scale_bounds)
        self._observations: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._returns: list[np.ndarray] = []
        self._tracker: RewardTracker | None = None
        self._reward_scale = np.ones(0)

    def reset(self, context: PolicyContext) -> None:
        population = context.population
        self._tracker = RewardTracker(self.reward, population.cpa_targets)
        self._reward_scale = population.budgets / population.cpa_targets
        self._observations, self._actions = [], []
        self._returns = [np.full(len(population), self.target_return)]

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        if self._tracker is None:
            raise ConfigError("DTBidder.act called before reset")
        observations = np.asarray(observations, dtype=np.float32)
        if observations.shape != (self._reward_scale.shape[0], self.model.normalizer.mean.shape[0]):
            raise ConfigError(f"observations must be ({self._reward_scale.shape[0]}, {self.model.normalizer.mean.shape[0]}), got shape {observations.shape}")
        if len(self._observations) > len(self._actions):
            raise ConfigError("DTBidder.act called twice without observe in between")
        self._observations.append(observations)
        window = self._window()
        unit = self.model(window)[:, -1].float()
        self._actions.append(unit.cpu().numpy())
        return self.action_scale.to_multiplier(unit).double().cpu().numpy()

    def observe(self, feedback: TickFeedback) -> None:
        if self._tracker is None:
            raise ConfigError("DTBidder.observe called before reset")
        reward = self._tracker.rewards(feedback) / self._reward_scale
        self._returns.append(self._returns[-1] - reward)

    def _window(self) -> WindowBatch:
        length = min(self.config.context_length, len(self._observations))
        start = len(self._observations) - length
        pad = self.config.context_length - length
        count, width = self._observations[-1].shape

        def padded(items: list[np.ndarray], tail_shape: tuple[int, ...]) -> torch.Tensor:
            stacked = np.stack(items, axis=1) if items else np.zeros((count, 0, *tail_shape), dtype=np.float32)
            stacked = np.concatenate([np.zeros((count, pad, *tail_shape), dtype=np.float32), stacked.astype(np.float32)], axis=1)
            return torch.as_tensor(stacked, device=self.device)

        actions = self._actions[start:] + [np.zeros(count, dtype=np.float32)]  # the current action is unknown
        ticks = torch.arange(start - pad, start + length, device=self.device).clamp(min=0).expand(count, -1)
        mask = torch.arange(self.config.context_length, device=self.device).expand(count, -1) >= pad
        return WindowBatch(
            observations=padded(self._observations[start:], (width,)),
            actions=padded(actions, ()),
            previous_actions=torch.zeros(count, self.config.context_length, device=self.device),
            returns_to_go=padded(self._returns[start : start + length], ()),
            timesteps=torch.where(mask, ticks, torch.zeros_like(ticks)),
            mask=mask,
        )

    def checkpoint_config(self) -> dict:
        return {
            "dt": dataclasses.asdict(self.config),
            "observation_dim": int(self.model.normalizer.mean.shape[0]),
            "max_ticks": int(self.model.embed_tick.num_embeddings - 1),
            "target_return": self.target_return,
            "reward": self.reward,
            "action_scale_bounds": [self.action_scale.low, self.action_scale.high],
        }

    def modules_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    @classmethod
    def from_checkpoint(cls, config: dict, state_dict: dict[str, torch.Tensor], device: str) -> "DTBidder":
        dt_config = DTConfig(**config["dt"])
        model = DecisionTransformer(config["observation_dim"], config["max_ticks"], dt_config)
        model.load_state_dict(state_dict)
        return cls(model, dt_config, config["target_return"], config["reward"], tuple(config["action_scale_bounds"]), device)

    def __repr__(self) -> str:
        return f"DTBidder(target_return={self.target_return:.3f}, context_length={self.config.context_length}, reward={self.reward!r})"


