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

Both networks hold all ``K`` ensemble members in batched weights (:class:`EnsembleLinear`,
``(K, in, out)``): one forward pass evaluates every member, ``(K, B, N, ...)``, with no Python loop
over members, so an ensemble costs one kernel launch per layer on a GPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from agents.offline.networks import Normalizer
from agents.offline.training import autocast, check_positive, device_generator, log_scalars, progress_steps
from agents.pemorl.data import DYNAMIC_FEATURES, GlobalBatch, GlobalTransitions
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int

__all__ = ["ModelConfig", "ModelTrainingConfig", "PEModel", "MLPModel", "ModelEnsemble", "EnsembleLinear", "gaussian_nll", "prediction_error", "train_ensemble", "uncertainty_penalty", "TARGET_DIM"]

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


class EnsembleLinear(nn.Module):
    """``K`` independent affine maps applied in one batched matrix product:
    ``(K, ..., in) -> (K, ..., out)``. Each member is initialised as ``nn.Linear`` would be."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        flat = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
        return torch.baddbmm(self.bias, flat, self.weight).reshape(*inputs.shape[:-1], -1)


class EnsembleLayerNorm(nn.Module):
    """Layer normalisation over the last dimension with each member's own gain and shift."""

    def __init__(self, members: int, dimension: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, dimension))
        self.bias = nn.Parameter(torch.zeros(members, dimension))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        shape = (inputs.shape[0],) + (1,) * (inputs.ndim - 2) + (inputs.shape[-1],)
        normed = nn.functional.layer_norm(inputs, inputs.shape[-1:])
        return normed * self.weight.view(shape) + self.bias.view(shape)


def ensemble_mlp(members: int, input_dim: int, hidden_dim: int, output_dim: int, hidden_layers: int) -> nn.Sequential:
    """:func:`~agents.offline.networks.mlp` for ``K`` members at once (ReLU hidden layers)."""
    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(hidden_layers):
        layers += [EnsembleLinear(members, width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(EnsembleLinear(members, width, output_dim))
    return nn.Sequential(*layers)


def _gaussian_heads(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(..., 2F)`` into a mean and a log-variance softly bounded to LOG_VARIANCE_RANGE."""
    mean, raw = hidden.float().split(TARGET_DIM, dim=-1)
    low, high = LOG_VARIANCE_RANGE
    log_variance = high - nn.functional.softplus(high - raw)
    return mean, low + nn.functional.softplus(log_variance - low)


class _EquivariantBlock(nn.Module):
    """``h <- h + SelfAttention(LN h)`` over the live set (no positional encoding), then
    ``h <- h + MLP([LN h, mean_live(rho(h))])``: every member sees a DeepSets summary of the set.
    All ``K`` ensemble members at once: ``(K, B, N, H)``."""

    def __init__(self, members: int, hidden_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = EnsembleLayerNorm(members, hidden_dim)
        self.query_key_value = EnsembleLinear(members, hidden_dim, 3 * hidden_dim)
        self.attention_output = EnsembleLinear(members, hidden_dim, hidden_dim)
        self.pool_input = ensemble_mlp(members, hidden_dim, hidden_dim, hidden_dim, 1)
        self.update_norm = EnsembleLayerNorm(members, hidden_dim)
        self.update = ensemble_mlp(members, 2 * hidden_dim, 2 * hidden_dim, hidden_dim, 1)

    def forward(self, hidden: torch.Tensor, live: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``hidden (K, B, N, H)``, ``live (K, B, N)``, ``allowed (K x B, 1, N, N)`` attention mask."""
        members, batch, size, width = hidden.shape
        head_dim = width // self.heads
        projected = self.query_key_value(self.attention_norm(hidden)).view(members * batch, size, 3, self.heads, head_dim)
        query, key, value = projected.permute(2, 0, 3, 1, 4)  # each (K x B, heads, N, head_dim)
        attended = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
        hidden = hidden + self.attention_output(attended.transpose(1, 2).reshape(members, batch, size, width))
        weights = live.unsqueeze(-1).to(hidden.dtype)
        pooled = (self.pool_input(hidden) * weights).sum(2, keepdim=True) / weights.sum(2, keepdim=True).clamp(min=1.0)
        return hidden + self.update(torch.cat([self.update_norm(hidden), pooled.expand_as(hidden)], dim=-1))


class PEModel(nn.Module):
    """The permutation-equivariant network of ``K`` members (see the module docstring):
    ``(K, B, N, D + 2)`` inputs and ``(K, B, N)`` live mask -> ``(K, B, N, 2F)``."""

    def __init__(self, config: ModelConfig, members: int) -> None:
        super().__init__()
        self.embed = ensemble_mlp(members, config.observation_dim + 2, config.hidden_dim, config.hidden_dim, 1)
        self.blocks = nn.ModuleList([_EquivariantBlock(members, config.hidden_dim, config.heads) for _ in range(config.layers)])
        self.head_norm = EnsembleLayerNorm(members, config.hidden_dim)
        self.head = ensemble_mlp(members, config.hidden_dim, config.hidden_dim, 2 * TARGET_DIM, 1)

    def forward(self, inputs: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        members, batch, size = live.shape
        # A live advertiser attends to the live set; a dead one only to itself (an all-masked row
        # would be NaN).
        allowed = (live[..., None, :] | torch.eye(size, dtype=torch.bool, device=live.device)).reshape(members * batch, 1, size, size)
        hidden = self.embed(inputs)
        for block in self.blocks:
            hidden = block(hidden, live, allowed)
        return self.head(self.head_norm(hidden))


class MLPModel(nn.Module):
    """The fixed-size MLP network of ``K`` members (see the module docstring); sets larger than
    ``n_advertisers`` go in padded chunks of ``n_advertisers``."""

    def __init__(self, config: ModelConfig, members: int) -> None:
        super().__init__()
        self.size = config.n_advertisers
        self.net = ensemble_mlp(members, self.size * (config.observation_dim + 2), config.hidden_dim, self.size * 2 * TARGET_DIM, config.layers)

    def forward(self, inputs: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        members, batch, count, width = inputs.shape
        chunks = math.ceil(count / self.size)
        padded = inputs.new_zeros(members, batch, chunks * self.size, width)
        padded[:, :, :count] = inputs
        output = self.net(padded.reshape(members, batch * chunks, self.size * width))
        return output.reshape(members, batch, chunks * self.size, 2 * TARGET_DIM)[:, :, :count]


def _check_inputs(states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor, observation_dim: int, members: int) -> None:
    if states.ndim != 4 or states.shape[0] != members or states.shape[-1] != observation_dim:
        raise ConfigError(f"states must be (B, N, {observation_dim}) or ({members}, B, N, {observation_dim}), got shape {tuple(states.shape)}")
    if actions.shape != states.shape[:3] or live.shape != states.shape[:3]:
        raise ConfigError(f"actions and live must be (B, N) = {tuple(states.shape[1:3])}, got {tuple(actions.shape)}, {tuple(live.shape)}")


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
    """``members`` independently initialised models of one :class:`ModelConfig`, evaluated as one
    batched module (:class:`PEModel` or :class:`MLPModel` over all members at once; no Python
    loop over members), with the input normaliser and target statistics they share."""

    def __init__(self, config: ModelConfig, members: int = 5) -> None:
        super().__init__()
        check_positive("ModelEnsemble", members=members)
        self.config = config
        self.members = members
        self.normalizer = Normalizer(config.observation_dim)
        self.register_buffer("target_mean", torch.zeros(TARGET_DIM))
        self.register_buffer("target_std", torch.ones(TARGET_DIM))
        self.network = PEModel(config, members) if config.kind == "pe" else MLPModel(config, members)

    @torch.no_grad()
    def fit_statistics(self, batch: GlobalBatch) -> None:
        """Set input and target statistics from the live advertisers of ``batch``."""
        self.normalizer.fit(batch.states[batch.live])
        targets = batch.targets[batch.live]
        self.target_mean.copy_(targets.mean(0))
        std = targets.std(0)
        self.target_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, states: torch.Tensor, actions: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances ``(K, B, N, F)`` (standardised) of every member. Inputs are
        ``(B, N, D), (B, N), (B, N)`` (every member sees the same sets) or with a leading ``K``
        (each member its own sets, as in training)."""
        if states.ndim == 3:
            states, actions, live = (tensor.expand(self.members, *tensor.shape) for tensor in (states, actions, live))
        _check_inputs(states, actions, live, self.config.observation_dim, self.members)
        features = torch.cat([self.normalizer(states), actions.unsqueeze(-1), torch.ones_like(actions).unsqueeze(-1)], dim=-1)
        # Dead advertisers enter as zeros (normalised state, action and live flag).
        return _gaussian_heads(self.network(features * live.unsqueeze(-1), live))

    def standardise(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def unstandardise(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.target_std + self.target_mean

    def checkpoint(self) -> dict:
        """Weights and configuration as a plain dict (``torch.load(weights_only=True)``-safe)."""
        state = {name: tensor.detach().cpu() for name, tensor in self.state_dict().items()}
        return {"config": dataclasses.asdict(self.config), "members": self.members, "state_dict": state}

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


def train_ensemble(
    data: GlobalTransitions,
    config: ModelConfig,
    training: ModelTrainingConfig = ModelTrainingConfig(),
    progress: bool = False,
    writer: ScalarLogger | None = None,
    log_every: int = 100,
) -> ModelEnsemble:
    """Fit an ensemble of ``config`` models to ``data`` by Gaussian maximum likelihood, every
    member on its own batches, all members in one batched forward pass (bf16 autocast on CUDA).
    ``writer`` receives ``model_<kind>/nll`` every ``log_every`` steps."""
    seed_everything(training.seed)
    generator = device_generator(training.seed, data.device)
    if config.kind == "mlp" and data.set_sizes != [config.n_advertisers]:
        raise ConfigError(f"the MLP model needs data of {config.n_advertisers} advertisers only, got set sizes {data.set_sizes}")
    ensemble = ModelEnsemble(config, training.members).to(data.device)
    everything = data.all_ticks()
    ensemble.fit_statistics(everything[0] if len(everything) == 1 else _concatenate_live(everything))
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=training.learning_rate)
    members = training.members
    for step in progress_steps(training.steps, f"{config.kind.upper()} model", progress):
        batch = data.sample(members * training.batch_size, generator)
        per_member = [tensor.reshape(members, training.batch_size, *tensor.shape[1:]) for tensor in (batch.states, batch.actions, batch.live)]
        with autocast(data.device):
            mean, log_variance = ensemble(*per_member)
        targets = ensemble.standardise(batch.targets).reshape(members, training.batch_size, *batch.targets.shape[1:])
        # The mean over all members' live advertisers, times K: each member's gradient is that
        # of its own mean NLL (up to the members' live counts).
        loss = members * gaussian_nll(mean, log_variance, targets, per_member[2])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == training.steps - 1:
            log_scalars(writer, f"model_{config.kind}", {"nll": loss.detach() / members}, step)
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
    average (``mse``); also the members' mean Gaussian NLL (``nll``, up to a constant)."""
    squared, nll, count = torch.zeros(TARGET_DIM), 0.0, 0
    for batch in batches:
        for start in range(0, batch.live.shape[0], chunk):
            part = batch.take(torch.arange(start, min(start + chunk, batch.live.shape[0]), device=batch.live.device))
            means, log_variances = ensemble(part.states, part.actions, part.live)
            targets = ensemble.standardise(part.targets)
            squared += ((means.mean(0) - targets).pow(2)[part.live]).sum(0).cpu()
            live = int(part.live.sum())
            nll += gaussian_nll(means, log_variances, targets, part.live.expand(ensemble.members, *part.live.shape)).item() * live
            count += live
    per_feature = squared / max(count, 1)
    return {
        "mse": per_feature.mean().item(),
        "state_mse": per_feature[:DYNAMIC_FEATURES].mean().item(),
        "reward_mse": per_feature[DYNAMIC_FEATURES].item(),
        "nll": nll / max(count, 1),
    }
