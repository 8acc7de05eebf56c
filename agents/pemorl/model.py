"""Environment models of the ad market: the permutation-equivariant (PE) model of PE-MORL and a
plain MLP over a fixed number of advertisers, as Gaussian ensembles.

Both map a global state ``(B, N, D)`` and a joint unit action ``(B, N)`` (with a ``live`` mask
``(B, N)``) to, per advertiser, a diagonal Gaussian over ``y = (s'_dyn - s_dyn, r)`` (the change
of the 16 dynamic observation features and the scaled reward): a mean and a log-variance, each
``(B, N, F)`` with ``F = 17``, in standardised target units (statistics stored with the
weights). The Gaussian captures aleatoric noise (the traffic); an :class:`ModelEnsemble` of
independently initialised members captures epistemic uncertainty (PE-MORL notes, design 1).

:class:`PEModel` (the paper's design; the full text is not available here, so the layer sizes are
ours): per-advertiser embedding, then blocks of multi-head self-attention across the advertisers
*without positional encoding* fused with DeepSets pooling (the masked mean of the set, fed back to
every member), then per-advertiser Gaussian heads. Every operation is per-member or a symmetric
function of the set, so permuting the advertisers permutes the outputs identically, and the model
accepts any set size. Dead advertisers (budget spent) are masked out of attention and pooling.

:class:`MLPModel`: one MLP on the concatenation of all ``N_train`` advertisers' inputs; it depends on
the order and the number of advertisers. On a market with more advertisers it is applied to
consecutive chunks of ``N_train`` advertisers (the last chunk padded with dead slots), its only option.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from agents.offline.networks import Normalizer, mlp
from agents.offline.training import check_positive, progress_steps, seed_everything
from agents.pemorl.data import DYNAMIC_FEATURES, GlobalBatch, GlobalTransitions
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int

__all__ = ["ModelConfig", "ModelTrainingConfig", "PEModel", "MLPModel", "ModelEnsemble", "gaussian_nll", "prediction_error", "train_ensemble", "uncertainty_penalty", "TARGET_DIM"]

TARGET_DIM = DYNAMIC_FEATURES + 1
LOG_VARIANCE_RANGE = (-10.0, 4.0)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an environment model.

    Args:
        kind: ``"pe"`` (permutation equivariant) or ``"mlp"`` (fixed set size).
        observation_dim: observation features ``D``.
        hidden_dim: width of the per-advertiser embedding (PE) or of the MLP.
        layers: attention + pooling blocks (PE) or hidden layers (MLP).
        heads: attention heads (PE; must divide ``hidden_dim``).
        n_advertisers: the fixed set size of the MLP (ignored by PE).
    """

    kind: str = "pe"
    observation_dim: int = 24
    hidden_dim: int = 64
    layers: int = 2
    heads: int = 4
    n_advertisers: int = 48

    def __post_init__(self) -> None:
        if self.kind not in ("pe", "mlp"):
            raise ConfigError(f"ModelConfig.kind must be 'pe' or 'mlp', got {describe(self.kind)}")
        for name in ("observation_dim", "hidden_dim", "layers", "heads", "n_advertisers"):
            check_int(f"ModelConfig.{name}", getattr(self, name), low=1)
        if self.kind == "pe" and self.hidden_dim % self.heads:
            raise ConfigError(f"ModelConfig.heads={self.heads} must divide hidden_dim={self.hidden_dim}")


class _Standardised(nn.Module):
    """Input normaliser and target statistics shared by both model kinds."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.normalizer = Normalizer(config.observation_dim)
        self.register_buffer("target_mean", torch.zeros(TARGET_DIM))
        self.register_buffer("target_std", torch.ones(TARGET_DIM))

    @torch.no_grad()
    def fit_statistics(self, batch: GlobalBatch) -> None:
        """Set input and target statistics from the live advertisers of ``batch``."""
        self.normalizer.fit(batch.states[batch.live])
        targets = batch.targets[batch.live]
        self.target_mean.copy_(targets.mean(0))
        std = targets.std(0)
        self.target_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def inputs(self, states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """``(B, N, D + 2)``: normalised state, unit action, live flag; zero for dead advertisers."""
        features = torch.cat([self.normalizer(states), actions.unsqueeze(-1), torch.ones_like(actions).unsqueeze(-1)], dim=-1)
        return features * live.unsqueeze(-1)

    def standardise(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def unstandardise(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.target_std + self.target_mean


def _gaussian_heads(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(..., 2F)`` into a mean and a log-variance softly bounded to LOG_VARIANCE_RANGE."""
    mean, raw = hidden.split(TARGET_DIM, dim=-1)
    low, high = LOG_VARIANCE_RANGE
    log_variance = high - nn.functional.softplus(high - raw)
    return mean, low + nn.functional.softplus(log_variance - low)


class _EquivariantBlock(nn.Module):
    """``h <- h + SelfAttention(LN h)`` over the live set (no positional encoding), then
    ``h <- h + MLP([LN h, mean_live(rho(h))])``: every member sees a DeepSets summary of the set."""

    def __init__(self, hidden_dim: int, heads: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_dim)
        self.attention = nn.MultiheadAttention(hidden_dim, heads, batch_first=True)
        self.pool_input = mlp(hidden_dim, hidden_dim, hidden_dim, 1)
        self.update_norm = nn.LayerNorm(hidden_dim)
        self.update = mlp(2 * hidden_dim, 2 * hidden_dim, hidden_dim, 1)

    def forward(self, hidden: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(hidden)
        # A dead advertiser attends only to itself (an all-masked row would be NaN).
        size = live.shape[1]
        blocked = ~live[:, None, :] & ~torch.eye(size, dtype=torch.bool, device=live.device)
        mask = blocked.repeat_interleave(self.attention.num_heads, dim=0)
        attended, _ = self.attention(normed, normed, normed, attn_mask=mask, need_weights=False)
        hidden = hidden + attended
        weights = live.unsqueeze(-1).float()
        pooled = (self.pool_input(hidden) * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return hidden + self.update(torch.cat([self.update_norm(hidden), pooled.expand_as(hidden)], dim=-1))


class PEModel(_Standardised):
    """The permutation-equivariant Gaussian model (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embed = mlp(config.observation_dim + 2, config.hidden_dim, config.hidden_dim, 1)
        self.blocks = nn.ModuleList([_EquivariantBlock(config.hidden_dim, config.heads) for _ in range(config.layers)])
        self.head = nn.Sequential(nn.LayerNorm(config.hidden_dim), mlp(config.hidden_dim, config.hidden_dim, 2 * TARGET_DIM, 1))

    def forward(self, states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, D), (B, N), (B, N) bool -> mean, log-variance (B, N, F)`` (standardised)."""
        _check_inputs(states, actions, live, self.config.observation_dim)
        hidden = self.embed(self.inputs(states, actions, live))
        for block in self.blocks:
            hidden = block(hidden, live)
        return _gaussian_heads(self.head(hidden))


class MLPModel(_Standardised):
    """The fixed-size MLP comparison model (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        size = config.n_advertisers
        self.net = mlp(size * (config.observation_dim + 2), config.hidden_dim, size * 2 * TARGET_DIM, config.layers)

    def forward(self, states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`PEModel.forward`; sets larger than ``n_advertisers`` go in padded chunks."""
        _check_inputs(states, actions, live, self.config.observation_dim)
        batch, count = live.shape
        size = self.config.n_advertisers
        chunks = math.ceil(count / size)
        inputs = self.inputs(states, actions, live)
        padded = torch.zeros(batch, chunks * size, inputs.shape[-1], device=inputs.device)
        padded[:, :count] = inputs
        output = self.net(padded.reshape(batch * chunks, -1)).reshape(batch, chunks * size, 2 * TARGET_DIM)
        return _gaussian_heads(output[:, :count])


def _check_inputs(states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor, observation_dim: int) -> None:
    if states.ndim != 3 or states.shape[-1] != observation_dim:
        raise ConfigError(f"states must be (B, N, {observation_dim}), got shape {tuple(states.shape)}")
    if actions.shape != states.shape[:2] or live.shape != states.shape[:2]:
        raise ConfigError(f"actions and live must be (B, N) = {tuple(states.shape[:2])}, got {tuple(actions.shape)}, {tuple(live.shape)}")


def gaussian_nll(mean: torch.Tensor, log_variance: torch.Tensor, targets: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (up to a constant) over live advertisers and features:
    ``0.5 [(y - mu)^2 exp(-log var) + log var]``."""
    per_feature = 0.5 * ((targets - mean).pow(2) * torch.exp(-log_variance) + log_variance)
    weights = live.unsqueeze(-1).float()
    return (per_feature * weights).sum() / (weights.sum() * per_feature.shape[-1]).clamp(min=1.0)


def uncertainty_penalty(means: torch.Tensor) -> torch.Tensor:
    """Epistemic uncertainty of an ensemble: ``u = sqrt(sum_f Var_k[mu_k,f])``, the norm of the
    members' standard deviation over the ``F`` predicted quantities. ``means``: ``(K, ..., F)``
    predictions of ``K`` members (standardised units) -> ``(...)``. Zero when the members agree;
    scaling their spread by ``c`` scales ``u`` by ``c``."""
    if means.ndim < 2 or means.shape[0] < 2:
        raise ConfigError(f"uncertainty needs predictions of >= 2 members, (K, ..., F); got shape {tuple(means.shape)}")
    return means.var(dim=0, unbiased=False).sum(-1).sqrt()


class ModelEnsemble(nn.Module):
    """``members`` independently initialised models of one :class:`ModelConfig`."""

    def __init__(self, config: ModelConfig, members: int = 5) -> None:
        super().__init__()
        check_positive("ModelEnsemble", members=members)
        self.config = config
        build = PEModel if config.kind == "pe" else MLPModel
        self.members = nn.ModuleList([build(config) for _ in range(members)])

    def fit_statistics(self, batch: GlobalBatch) -> None:
        for member in self.members:
            member.fit_statistics(batch)

    def forward(self, states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked means and log-variances ``(K, B, N, F)`` (standardised)."""
        outputs = [member(states, actions, live) for member in self.members]
        return torch.stack([mean for mean, _ in outputs]), torch.stack([log_variance for _, log_variance in outputs])

    def unstandardise(self, values: torch.Tensor) -> torch.Tensor:
        return self.members[0].unstandardise(values)

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        return self.members[0].standardise(values)

    def checkpoint(self) -> dict:
        """Weights and configuration as a plain dict (``torch.load(weights_only=True)``-safe)."""
        state = {name: tensor.detach().cpu() for name, tensor in self.state_dict().items()}
        return {"config": dataclasses.asdict(self.config), "members": len(self.members), "state_dict": state}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "ModelEnsemble":
        ensemble = cls(ModelConfig(**checkpoint["config"]), checkpoint["members"])
        ensemble.load_state_dict(checkpoint["state_dict"])
        return ensemble.eval()


@dataclass(frozen=True)
class ModelTrainingConfig:
    """How an ensemble is fitted (maximum likelihood, Adam).

    Args:
        steps: gradient steps (every member sees its own batches).
        batch_size: logged ticks (whole advertiser sets) per step.
        learning_rate: Adam step size.
        members: ensemble size.
        seed: seeds initialisation and batch sampling.
    """

    steps: int = 2_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    members: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("ModelTrainingConfig", steps=self.steps, batch_size=self.batch_size, learning_rate=self.learning_rate, members=self.members)
        for name in ("steps", "batch_size", "members"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"ModelTrainingConfig.{name} must be an integer, got {describe(getattr(self, name))}")


def train_ensemble(data: GlobalTransitions, config: ModelConfig, training: ModelTrainingConfig = ModelTrainingConfig(), progress: bool = False) -> ModelEnsemble:
    """Fit an ensemble of ``config`` models to ``data`` by Gaussian maximum likelihood."""
    generator = seed_everything(training.seed)
    if config.kind == "mlp" and data.set_sizes != [config.n_advertisers]:
        raise ConfigError(f"the MLP model needs data of {config.n_advertisers} advertisers only, got set sizes {data.set_sizes}")
    ensemble = ModelEnsemble(config, training.members).to(data.device)
    everything = data.all_ticks()
    ensemble.fit_statistics(everything[0] if len(everything) == 1 else _concatenate_live(everything))
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=training.learning_rate)
    for _ in progress_steps(training.steps, f"{config.kind.upper()} model", progress):
        loss = torch.zeros((), device=data.device)
        for member in ensemble.members:
            batch = data.sample(training.batch_size, generator)
            mean, log_variance = member(batch.states, batch.actions, batch.live)
            loss = loss + gaussian_nll(mean, log_variance, member.standardise(batch.targets), batch.live)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return ensemble.eval()


def _concatenate_live(groups: list[GlobalBatch]) -> GlobalBatch:
    """One flat batch (sets of size 1) of the live advertisers of every group, for statistics."""
    rows = [GlobalBatch(g.states[g.live][:, None], g.actions[g.live][:, None], g.rewards[g.live][:, None], g.next_states[g.live][:, None], g.live[g.live][:, None]) for g in groups]
    return GlobalBatch(*(torch.cat([getattr(r, f.name) for r in rows]) for f in dataclasses.fields(GlobalBatch)))


@torch.no_grad()
def prediction_error(ensemble: ModelEnsemble, batches: list[GlobalBatch], chunk: int = 256) -> dict[str, float]:
    """Mean squared error of the ensemble-mean prediction over the live advertisers of
    ``batches``, in standardised target units (1.0 = predicting the training mean): of the
    next dynamic state (``state_mse``), of the reward (``reward_mse``), and their per-feature
    average (``mse``); also the mean Gaussian NLL of the first member (``nll``)."""
    squared, nll, count = torch.zeros(TARGET_DIM), 0.0, 0
    for batch in batches:
        for start in range(0, batch.live.shape[0], chunk):
            part = batch.take(torch.arange(start, min(start + chunk, batch.live.shape[0]), device=batch.live.device))
            means, log_variances = ensemble(part.states, part.actions, part.live)
            targets = ensemble.standardise(part.targets)
            squared += ((means.mean(0) - targets).pow(2)[part.live]).sum(0).cpu()
            live = int(part.live.sum())
            nll += gaussian_nll(means[0], log_variances[0], targets, part.live).item() * live
            count += live
    per_feature = squared / max(count, 1)
    return {
        "mse": per_feature.mean().item(),
        "state_mse": per_feature[:DYNAMIC_FEATURES].mean().item(),
        "reward_mse": per_feature[DYNAMIC_FEATURES].item(),
        "nll": nll / max(count, 1),
    }
