"""Network pieces shared by the offline-RL algorithms: MLPs, an observation normaliser kept
inside each model's weights, and a causal transformer over token sequences."""

from __future__ import annotations

import torch
from torch import nn

from agents.offline.data import WindowBatch
from auctionsim.errors import ConfigError

__all__ = ["mlp", "Normalizer", "CausalTransformer", "StateEncoder", "TwinQ", "ValueNet", "State"]

State = torch.Tensor | WindowBatch


def mlp(input_dim: int, hidden_dim: int, output_dim: int, hidden_layers: int = 2, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``hidden_layers`` hidden layers of ``hidden_dim`` units with ``activation``, then a linear
    output layer."""
    if hidden_layers < 1 or hidden_dim < 1:
        raise ConfigError(f"an MLP needs hidden_layers >= 1 and hidden_dim >= 1, got {hidden_layers}, {hidden_dim}")
    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_dim), activation()]
        width = hidden_dim
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Standardises observations, ``(x - mean) / std``, with statistics stored as buffers so they
    travel with the weights. Features with (near) zero spread (e.g. a one-hot column that is
    constant in the data) are only centred."""

    def __init__(self, dimension: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dimension))
        self.register_buffer("std", torch.ones(dimension))

    @torch.no_grad()
    def fit(self, observations: torch.Tensor) -> "Normalizer":
        """Set the statistics from ``(M, D)`` observations."""
        flat = observations.reshape(-1, observations.shape[-1]).float()
        self.mean.copy_(flat.mean(0))
        std = flat.std(0)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.mean) / self.std


class CausalTransformer(nn.Module):
    """A GPT-style stack of pre-norm transformer blocks with a causal mask, over already-embedded
    ``(B, S, H)`` tokens; returns ``(B, S, H)``. Positional information is added by the caller
    (e.g. a tick embedding), so the same stack serves the decision transformer and the IQL
    sequence critic.

    Args:
        hidden_dim: token width ``H``.
        layers: transformer blocks.
        heads: attention heads (must divide ``hidden_dim``).
        dropout: dropout inside the blocks.
    """

    def __init__(self, hidden_dim: int, layers: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_dim % heads:
            raise ConfigError(f"heads={heads} must divide hidden_dim={hidden_dim}")
        block = nn.TransformerEncoderLayer(
            hidden_dim, heads, dim_feedforward=4 * hidden_dim, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.heads = heads

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``padding_mask``: ``(B, S)`` True where a token is padding. Real tokens never attend to
        padding; a padding token attends only to itself, which keeps every row finite (a row with
        every key masked would be NaN, and NaN times a zero attention weight spreads)."""
        batch, length, _ = tokens.shape
        future = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(diagonal=1)
        blocked = future.expand(batch, length, length)
        if padding_mask is not None:
            diagonal = torch.eye(length, dtype=torch.bool, device=tokens.device)
            blocked = blocked | (padding_mask[:, None, :] & ~diagonal)
        mask = torch.zeros(blocked.shape, device=tokens.device).masked_fill(blocked, float("-inf"))
        mask = mask.repeat_interleave(self.heads, dim=0)  # (B x heads, S, S) as PyTorch expects
        return self.norm(self.blocks(tokens, mask=mask))


class StateEncoder(nn.Module):
    """A critic's view of a state. ``context_length == 1``: the normalised observation,
    ``(B, D) -> (B, D)``. ``context_length = L > 1``: a :class:`WindowBatch` of the last ``L``
    ticks, each tick one token ``Linear([normalise(s_j), a_{j-1}]) + tick embedding``, through a
    :class:`CausalTransformer`; the output at the last (current) tick, ``(B, attention_dim)``."""

    def __init__(
        self,
        observation_dim: int,
        context_length: int = 1,
        max_ticks: int = 48,
        attention_dim: int = 128,
        attention_layers: int = 6,
        attention_heads: int = 8,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.normalizer = Normalizer(observation_dim)
        self.output_dim = observation_dim
        if context_length > 1:
            self.embed = nn.Linear(observation_dim + 1, attention_dim)
            self.tick_embedding = nn.Embedding(max_ticks + 1, attention_dim)
            self.transformer = CausalTransformer(attention_dim, attention_layers, attention_heads, dropout=0.0)
            self.output_dim = attention_dim

    def forward(self, state: State) -> torch.Tensor:
        if self.context_length == 1:
            if not isinstance(state, torch.Tensor):
                raise ConfigError("this critic (context_length=1) takes (B, D) observations, not windows")
            return self.normalizer(state)
        if not isinstance(state, WindowBatch):
            raise ConfigError(f"this critic (context_length={self.context_length}) takes WindowBatch histories")
        tokens = torch.cat([self.normalizer(state.observations), state.previous_actions.unsqueeze(-1)], dim=-1)
        ticks = state.timesteps.clamp(max=self.tick_embedding.num_embeddings - 1)
        hidden = self.transformer(self.embed(tokens) + self.tick_embedding(ticks), padding_mask=~state.mask)
        return hidden[:, -1]


class TwinQ(nn.Module):
    """Two Q networks ``Q_k(s, a) = head_k([encode(s), a])`` sharing one state encoder;
    unit actions ``(B, 1)``, values ``(B,)`` each."""

    def __init__(self, encoder: StateEncoder, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleList([mlp(encoder.output_dim + 1, hidden_dim, 1, hidden_layers) for _ in range(2)])

    def forward(self, state: State, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([self.encoder(state), actions], dim=1)
        return self.heads[0](features)[:, 0], self.heads[1](features)[:, 0]


class ValueNet(nn.Module):
    """``V(s) = head(encode(s))``, ``(B,)``."""

    def __init__(self, encoder: StateEncoder, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = mlp(encoder.output_dim, hidden_dim, 1, hidden_layers)

    def forward(self, state: State) -> torch.Tensor:
        return self.head(self.encoder(state))[:, 0]
