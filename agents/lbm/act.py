"""LBM-Act: the low-level actor with the dual embedding (paper Section 3.2, Eq. 4-5).

Input of one decision at tick ``t``: a CoT ``c_t`` (token ids) and the numeric sequence of the
last ``L`` ticks ``{R_{t-L+1}, s_{t-L+1}, a_{t-L+1}, ..., R_t, s_t}`` (``3L - 1`` items).

* **Dual embedding** (:meth:`LBMAct.fuse`): the CoT goes through the backbone's pretrained
  token-embedding table; every numeric item goes through a 3-layer MLP "decision embedding"
  (:class:`DecisionEmbedding`, one MLP per item kind, as LLM-DT), giving one token-sized
  embedding per item. The two parts are concatenated into one sequence
  ``[z_cot, z_num]`` (left-padded, padding masked out of attention).
* The backbone's transformer layers fuse the two modalities by attention; the hidden state at
  the last item (``s_t``) goes through a 3-layer MLP head to the action ``a~_t`` (a bid
  multiplier).
* **Language-guided decision training** (:func:`train_act`, Eq. 5): ``L = ||a~_t - a_t||^2``
  on logged decisions, with the CoT kept only where its direction agrees with the anchor
  direction of the data, ``sign(a_t - a_{t-1})``; a conflicting CoT is discarded and the
  decision is learnt from the numeric part alone.

Actions (inputs and outputs) are unit actions on the log scale of
:class:`agents.offline.data.ActionScale`, exactly as the DT baseline sees them, so LBM-Act,
LLM-DT and DT differ only in their inputs and layers (the paper regresses the raw parameter).

Without a CoT the same module is **LLM-DT** (Shi et al. 2024): a decision transformer whose
layers come from a language model, with the same decision embedding. We add DT's learned
timestep embedding to the numeric items (the paper does not say whether LBM keeps it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from agents.lbm.backbones import Backbone, autocast, left_pad, positions_from_mask
from agents.lbm.data import Trajectories, Window
from agents.offline.data import ActionScale
from agents.offline.training import linear_warmup
from auctionsim.errors import ConfigError
from auctionsim.tracking import ScalarLogger

__all__ = ["ActConfig", "DecisionEmbedding", "LBMAct", "train_act"]


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(size_in, size_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DecisionEmbedding(nn.Module):
    """Numeric items -> one token-sized embedding each (3-layer MLPs ``[H, H, H]``, paper 4.1).

    ``forward(returns_to_go (B, L), states (B, L, D), actions (B, L), timesteps (B, L))``
    returns ``(B, 3L - 1, H)``: ``R_1, s_1, a_1, ..., R_L, s_L`` (the last action is the one to
    predict, so it is not an input).

    With a ``scale``, every item ends in a LayerNorm (DT's ``embed_ln``) whose gain starts at
    ``scale``, the RMS of the backbone's token embeddings, so numbers and words enter the layers
    at the same scale (``None``: no LayerNorm). Without it a pretrained backbone's CoT drowned:
    SmolLM2's token embeddings have norm ~3 per token, the fresh MLPs' outputs ~24, and the
    hidden state at ``s_t`` (the one the action head reads) stayed its own numeric embedding
    (see ``experiments.lbm``).
    """

    def __init__(self, state_dim: int, hidden_size: int, n_ticks: int, scale: float | None = 1.0) -> None:
        super().__init__()
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"DecisionEmbedding scale must be None or finite and > 0, got {scale!r}")
        self.returns = _mlp([1, hidden_size, hidden_size, hidden_size])
        self.states = _mlp([state_dim, hidden_size, hidden_size, hidden_size])
        self.actions = _mlp([1, hidden_size, hidden_size, hidden_size])
        self.timesteps = nn.Embedding(n_ticks, hidden_size)
        self.norm: nn.Module = nn.Identity()
        if scale is not None:
            self.norm = nn.LayerNorm(hidden_size)
            nn.init.constant_(self.norm.weight, scale)

    def forward(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        batch, length = returns_to_go.shape
        time = self.timesteps(timesteps)
        items = torch.stack(
            [self.returns(returns_to_go[..., None]) + time, self.states(states) + time, self.actions(actions[..., None]) + time],
            dim=2,
        )
        return self.norm(items.reshape(batch, 3 * length, -1)[:, :-1])


@dataclass(frozen=True)
class ActConfig:
    """LBM-Act sizes.

    Args:
        state_dim: observation features ``D``.
        n_ticks: ticks per episode (size of the timestep embedding).
        context: ``L``, ticks of numeric history (10 in the paper).
        action_scale: multipliers <-> unit actions (log scale, clipped to its bounds).
        embedding_norm: LayerNorm the numeric items to the token embeddings' scale
            (:class:`DecisionEmbedding`); needed for a pretrained backbone to read the CoT.
    """

    state_dim: int
    n_ticks: int
    context: int = 10
    action_scale: ActionScale = ActionScale()
    embedding_norm: bool = True

    def __post_init__(self) -> None:
        for name in ("state_dim", "n_ticks", "context"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"ActConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.action_scale, ActionScale):
            raise ConfigError(f"ActConfig.action_scale must be an ActionScale, got {self.action_scale!r}")


class LBMAct(nn.Module):
    """``f_phi(s_t, c_t)`` of Eq. (4): backbone layers between a dual embedding and an MLP head.

    Args:
        backbone: the language model whose token embeddings and layers it uses (trained too).
        config: :class:`ActConfig`.
        state_mean, state_std: ``(D,)`` observation normalisation (from the training data).
    """

    def __init__(self, backbone: Backbone, config: ActConfig, state_mean: np.ndarray, state_std: np.ndarray) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        hidden = backbone.hidden_size
        scale = backbone.token_embedding_rms() if config.embedding_norm else None
        self.decision_embedding = DecisionEmbedding(config.state_dim, hidden, config.n_ticks, scale)
        self.head = _mlp([hidden, hidden, hidden, 1])
        self.register_buffer("state_mean", torch.as_tensor(state_mean, dtype=torch.float32))
        self.register_buffer("state_std", torch.as_tensor(np.maximum(state_std, 1e-3), dtype=torch.float32))
        self.to(backbone.device)

    @property
    def device(self) -> torch.device:
        return self.state_mean.device

    def fuse(self, cot_ids: Sequence[Sequence[int]], window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """The dual embedding: ``(B, C + 3L - 1, H)`` embeddings and their ``(B, C + 3L - 1)``
        attention mask, CoT tokens (left-padded to the longest, ``C``) then numeric items."""
        device = self.device
        tensor = lambda array: torch.as_tensor(array, device=device)  # noqa: E731
        states = (tensor(window.states) - self.state_mean) / self.state_std
        actions = torch.where(tensor(window.mask), self.config.action_scale.to_unit(tensor(window.actions)), 0.0)
        numeric = self.decision_embedding(tensor(window.returns_to_go), states, actions, tensor(window.timesteps))
        numeric_mask = tensor(window.mask).long().repeat_interleave(3, dim=1)[:, :-1]
        if max((len(c) for c in cot_ids), default=0) == 0:
            return numeric, numeric_mask
        ids, cot_mask = left_pad(cot_ids, self.backbone.tokenizer.pad_id, device)
        return torch.cat([self.backbone.embed(ids), numeric], dim=1), torch.cat([cot_mask, numeric_mask], dim=1)

    def forward(self, cot_ids: Sequence[Sequence[int]], window: Window) -> torch.Tensor:
        """``(B,)`` predicted unit actions (unclipped) for ``B`` decisions."""
        embeds, mask = self.fuse(cot_ids, window)
        hidden, _ = self.backbone.transform(embeds, mask, positions_from_mask(mask))
        return self.head(hidden[:, -1]).squeeze(-1)

    @torch.no_grad()
    def act(self, cot_ids: Sequence[Sequence[int]], window: Window) -> np.ndarray:
        """``(B,)`` bid multipliers (within the action scale's bounds; bf16 autocast on CUDA)."""
        was_training = self.training
        self.eval()
        with autocast(self.device):
            units = self(cot_ids, window)
        multipliers = self.config.action_scale.to_multiplier(units.float()).cpu().numpy().astype(np.float64)
        self.train(was_training)
        return multipliers


def train_act(
    act: LBMAct,
    trajectories: Trajectories,
    rows: np.ndarray,
    ticks: np.ndarray,
    cot_ids: Sequence[Sequence[int]] | None,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
    warmup_fraction: float = 0.1,
    train_token_embeddings: bool = True,
    sample_weights: np.ndarray | None = None,
    seed: int = 0,
    progress: bool = True,
    description: str = "LBM-Act",
    logger: ScalarLogger | None = None,
) -> list[float]:
    """Language-guided decision training (Eq. 5, squared error in unit actions) on the
    decisions ``(rows, ticks)``.

    Args:
        cot_ids: per decision, the accepted CoT's token ids (empty where the CoT conflicted
            with the data's direction and was discarded); ``None`` trains LLM-DT (no CoT).
        steps, batch_size, learning_rate: AdamW on every trained parameter, backbone included
            (a smaller step for the pretrained layers than for the new modules kept SmolLM2's
            LBM-Act from learning to read the CoT at all in our short runs); bf16 autocast on
            CUDA.
        warmup_fraction: share of ``steps`` in linear warm-up (the schedule DT uses,
            :func:`agents.offline.training.linear_warmup`).
        train_token_embeddings: also train the token-embedding table (freezing a pretrained
            backbone's keeps the words' pretrained embeddings and saves the AdamW update of a
            ~49k x 576 table per step, but the words' embeddings are one of the things that
            must move for the action to depend on the CoT).
        sample_weights: ``(len(rows),)`` non-negative sampling weights of the decisions
            (``None``: uniform).
        logger: TensorBoard scalars ``<description>/loss`` and ``<description>/learning_rate``.

    Returns the loss of each step.
    """
    if cot_ids is not None and len(cot_ids) != len(rows):
        raise ConfigError(f"need one CoT per decision, got {len(cot_ids)} for {len(rows)} decisions")
    probabilities = None
    if sample_weights is not None:
        weights = np.asarray(sample_weights, dtype=np.float64)
        if weights.shape != (len(rows),) or not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(f"sample_weights must be {len(rows)} finite non-negative weights with a positive sum, got shape {weights.shape}")
        probabilities = weights / weights.sum()
    generator = np.random.default_rng(seed)
    table = act.backbone.token_embeddings.weight
    table_was_trainable = table.requires_grad
    table.requires_grad_(train_token_embeddings)
    trained = [p for p in act.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=1e-4)
    schedule = linear_warmup(optimizer, steps, warmup_fraction)
    multipliers = torch.as_tensor(trajectories.actions[rows, ticks], dtype=torch.float32, device=act.device)
    targets_all = act.config.action_scale.to_unit(multipliers)
    act.train()
    losses = []
    for step in tqdm(range(steps), desc=description, disable=not progress, unit="step", mininterval=1.0):
        batch = generator.choice(len(rows), batch_size, p=probabilities)
        window = trajectories.window(rows[batch], ticks[batch], act.config.context)
        cots = [cot_ids[i] for i in batch] if cot_ids is not None else [[] for _ in batch]
        with autocast(act.device):
            prediction = act(cots, window)
        loss = (prediction.float() - targets_all[batch]).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if logger is not None:
            logger.log(step, {"loss": losses[-1], "learning_rate": schedule.get_last_lr()[0]}, prefix=f"{description}/")
    table.requires_grad_(table_was_trainable)
    act.eval()
    return losses
