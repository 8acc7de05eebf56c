"""The BPG Learner: PPO-style clipped policy gradients per advertiser row, weighted into gradient (11).

Every term of the paper's gradient (Table 4) is a classical policy gradient
``E[sum_rows grad log pi(a_row | s_row) Q]`` on the right episodes with the right return; the
terms differ in which episodes, which rows, which return and which coefficient:

================  ===================  =================  ==============================
term              episodes (kind)      rows               return signal, coefficient
================  ===================  =================  ==============================
L1                cooperative          theta rows         sum_j (1 + lambda_j) r_j, 1
L_s               deviation (i ~ q)    theta rows (j!=i)  r_i, (xi - lambda_bar) k_i/q_i
L*_w              weighted (i ~ q)     theta rows (j!=i)  r_i, -xi k_i/q_i
L'_g              deviation            the nu-bar row     r_i, (1 - lambda_bar/xi) k_i/q_i
x* (Alg. 1 l.2)   weighted             the x* row         r_i, 1
SAB               selfish              theta rows         r_j (own), 1
================  ===================  =================  ==============================

The env writes each row's signal into its observation (:mod:`agents.bpg.env`);
:class:`RowAdvantages` (a learner ``ConnectorV2`` that replaces PPO's GAE piece) rebuilds the
per-row rewards from it and computes per-row advantages. Two estimators (``advantages``):

* ``"group"`` (default): the algorithm samples episodes in groups that replay the same market
  seed and deviator with their own exploration noise (``group_size``); a row's advantage at tick
  t is its return-to-go minus the mean return-to-go of the *other* members of its group at the
  same tick (a leave-one-out baseline, as in RLOO). The other members' play is independent of
  this episode's actions, so the estimate stays unbiased, and the day-to-day noise of the market
  (traffic, conversions), which dominates the return and which no critic can predict from an
  advertiser's observation, cancels. Measured on the 10- and 100-advertiser markets: with the
  critic alone the cooperative policy did not beat value bidding in 16 iterations (a probe made
  before the action-normalisation fix of :class:`~agents.bpg.BPGConfig`, not repeated since).
  Steps whose group has no other member at that tick fall back to GAE.
* ``"gae"``: per-row GAE with the module's per-row critic (PPO's usual estimator, per row).

The critic is trained on GAE value targets in both cases.

Rows per tick (``learner_rows``): above that many advertisers, the population's loss is estimated
per tick from a uniform sample of ``learner_rows`` of its rows (the deviator's row, which theta
does not play, is kept first to mark the episode's kind), each weighted ``(N - d) / (n N)`` (``n``
rows sampled, ``d`` deviators): an unbiased estimate of the mean over all rows, at a cost that
does not grow with N. The advantages are computed on all rows first.
The loss then clips the probability ratio *per row* (each advertiser's own action), multiplies
the advantages by the coefficient of the episode's kind and deviator, and averages each kind
over its own timesteps: gradient (11) is a sum of expectations, one per kind.

Advantages are standardised over all of a module's rows of the batch together (one mean, one
scale), so the relative size of the terms is kept: the mean is a constant baseline and the
scale a step size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner.general_advantage_estimation import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.numpy import convert_to_numpy

from agents.bpg.env import GROUP, NU_BAR, POPULATION, ROLE, ROLE_NU_BAR, ROLE_THETA, ROLE_X_STAR, ROW, SIGNAL, TICK, X_STAR
from agents.bpg.module import RowPolicyModule, row_log_probs

__all__ = ["BPGTorchLearner", "RowAdvantages", "row_gae", "returns_to_go", "group_baselines", "sample_rows", "ADVANTAGE_ESTIMATORS", "ROW_WEIGHTS", "CONTROLLED_ROLE"]

ADVANTAGE_ESTIMATORS = ("group", "gae")
ROW_WEIGHTS = "row_weights"  # batch column: (B, k) weight of each row's term in the loss

# The rows each module acts for.
CONTROLLED_ROLE = {POPULATION: ROLE_THETA, NU_BAR: ROLE_NU_BAR, X_STAR: ROLE_X_STAR}
# Episode kinds as seen by the loss: 0 all on theta, 1 deviation to nu-bar, 2 weighted POMDP.
_KIND_ALL_THETA, _KIND_DEVIATION, _KIND_WEIGHTED = 0, 1, 2


def row_gae(values: np.ndarray, rewards: np.ndarray, terminateds: np.ndarray, truncateds: np.ndarray, gamma: float, lambda_: float) -> np.ndarray:
    """GAE advantages for ``k`` rows at once, the recursion of RLlib's ``compute_value_targets``.

    Args:
        values, rewards: ``(B, k)``; episodes are concatenated, each followed by the one
            artificial bootstrap step RLlib appends (reward 0, masked out of the loss).
        terminateds, truncateds: ``(B,)`` flags of the RLlib agent (whole episode chunk).
    Returns:
        ``(B, k)`` advantages (value targets are ``advantages + values``).
    """
    non_terminal = 1.0 - terminateds.astype(np.float64)
    propagate = non_terminal * (1.0 - truncateds.astype(np.float64))
    next_values = np.zeros_like(values)
    next_values[:-1] = values[1:]
    deltas = rewards + gamma * non_terminal[:, None] * next_values - values
    advantages = np.zeros_like(values)
    running = np.zeros(values.shape[1])
    for step in range(values.shape[0] - 1, -1, -1):
        running = deltas[step] + gamma * lambda_ * propagate[step] * running
        advantages[step] = running
    return advantages


def returns_to_go(rewards: np.ndarray, loss_mask: np.ndarray, gamma: float) -> np.ndarray:
    """``(B, k)`` discounted returns-to-go of concatenated episode chunks, each ending with RLlib's
    artificial bootstrap step (``loss_mask`` False, reward 0), where the sum restarts."""
    returns = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for step in range(rewards.shape[0] - 1, -1, -1):
        if not loss_mask[step]:
            running = np.zeros(rewards.shape[1])
        running = rewards[step] + gamma * running
        returns[step] = running
    return returns


def group_baselines(returns: np.ndarray, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Leave-one-out baselines: ``(B, k)`` mean of ``returns`` over the *other* valid steps with
    the same key (same episode group, kind and tick); ``nan`` where there is no other."""
    baselines = np.full_like(returns, np.nan)
    steps = np.flatnonzero(valid)
    if steps.size == 0:
        return baselines
    _, inverse, counts = np.unique(keys[steps], return_inverse=True, return_counts=True)
    sums = np.zeros((counts.size, returns.shape[1]))
    np.add.at(sums, inverse, returns[steps])
    members = counts[inverse]
    shared = members >= 2
    rows = steps[shared]
    baselines[rows] = (sums[inverse[shared]] - returns[rows]) / (members[shared] - 1)[:, None]
    return baselines


def sample_rows(module_batch: dict, roles: np.ndarray, count: int) -> np.ndarray:
    """Keep, per tick, the deviator's row (if any) and ``count`` rows drawn uniformly (NumPy's
    global generator, seeded per update) from the others; slice every per-row column of
    ``module_batch`` in place. Returns the ``(B, count + 1)`` loss weights (see module doc)."""
    steps, k = roles.shape
    deviating = roles >= ROLE_NU_BAR
    keys = np.random.random((steps, k))
    keys[deviating] = -1.0  # the deviator sorts first
    index = np.argsort(keys, axis=1, kind="stable")[:, : count + 1]
    has_deviator = deviating.any(axis=1)
    weights = np.where(has_deviator[:, None], (k - 1) / (count * k), 1.0 / (count + 1)) * np.ones((steps, count + 1))
    weights[has_deviator, 0] = 0.0
    rows = torch.as_tensor(index)

    def take(tensor):
        gather = rows.to(tensor.device)
        if tensor.dim() == 3:
            gather = gather[..., None].expand(-1, -1, tensor.shape[-1])
        return tensor.gather(1, gather)

    for column in (Columns.OBS, Columns.ACTIONS, Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS):
        module_batch[column] = take(torch.as_tensor(module_batch[column]))
    mean, log_std = torch.as_tensor(module_batch[Columns.ACTION_DIST_INPUTS]).chunk(2, dim=-1)
    module_batch[Columns.ACTION_DIST_INPUTS] = torch.cat([take(mean), take(log_std)], dim=-1)
    return weights


class RowAdvantages(ConnectorV2):
    """Learner connector: per-row rewards from the ``signal`` column, per-row GAE, standardised.

    Writes ``advantages`` and ``value_targets`` of shape ``(B, k)`` for every
    :class:`~agents.bpg.module.RowPolicyModule` in the batch.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, gamma: float, lambda_: float, estimator: str = "group", max_rows: int | None = None) -> None:
        super().__init__(input_observation_space, input_action_space)
        if estimator not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ADVANTAGE_ESTIMATORS)}, got {estimator!r}")
        self.gamma = gamma
        self.lambda_ = lambda_
        self.estimator = estimator
        self.max_rows = max_rows

    def __call__(self, *, rl_module, episodes, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        for module_id, module_batch in batch.items():
            module = rl_module[module_id].unwrapped()
            if not isinstance(module, RowPolicyModule):
                continue
            with torch.no_grad():
                values_tensor = module.compute_values(module_batch)
            values = convert_to_numpy(values_tensor).astype(np.float64)
            observations = convert_to_numpy(module_batch[Columns.OBS])
            loss_mask = convert_to_numpy(module_batch[Columns.LOSS_MASK]).astype(bool)
            aux = observations[..., module.n_features :]
            signal = aux[..., SIGNAL].astype(np.float64)
            # The signal of tick t arrives with the observation after it; the artificial
            # bootstrap step of each episode earns nothing.
            rewards = np.zeros_like(signal)
            rewards[:-1] = signal[1:]
            rewards[~loss_mask] = 0.0
            advantages = row_gae(
                values,
                rewards,
                convert_to_numpy(module_batch[Columns.TERMINATEDS]),
                convert_to_numpy(module_batch[Columns.TRUNCATEDS]),
                self.gamma,
                self.lambda_,
            )
            targets = advantages + values
            roles = np.round(aux[..., ROLE]).astype(np.int64)
            if self.estimator == "group":
                # Key: (group, kind, tick); the kind is the largest role of the step (1: all on
                # theta, 2: a nu-bar deviation, 3: an x* deviation).
                group, tick = np.round(aux[:, 0, GROUP]).astype(np.int64), np.round(aux[:, 0, TICK]).astype(np.int64)
                keys = (group * 4 + roles.max(axis=-1)) * 100_000 + tick
                returns = returns_to_go(rewards, loss_mask, self.gamma)
                baselines = group_baselines(returns, keys, loss_mask)
                advantages = np.where(np.isnan(baselines), advantages, returns - baselines)
            acting = loss_mask[:, None] & (roles == CONTROLLED_ROLE.get(module_id, ROLE_THETA))
            if acting.any():
                mean, scale = advantages[acting].mean(), max(1e-4, advantages[acting].std())
                advantages = (advantages - mean) / scale
            device = values_tensor.device
            module_batch[Postprocessing.ADVANTAGES] = torch.as_tensor(advantages, dtype=torch.float32, device=device)
            module_batch[Postprocessing.VALUE_TARGETS] = torch.as_tensor(targets, dtype=torch.float32, device=device)
            k = roles.shape[1]
            weights = np.full(roles.shape, 1.0 / k)
            if self.max_rows is not None and module_id == POPULATION and k > self.max_rows + 1:
                weights = sample_rows(module_batch, roles, self.max_rows)
            module_batch[ROW_WEIGHTS] = torch.as_tensor(weights, dtype=torch.float32, device=device)
        return batch


class BPGTorchLearner(PPOTorchLearner):
    """PPO learner with the row-wise, kind-weighted loss of gradient (11) (see module doc).

    The algorithm sets, before every update (through ``LearnerGroup.foreach_learner``):
    :meth:`set_primal_weights` (the per-advertiser coefficients of the deviation and weighted
    terms) and :meth:`set_modules_to_update` (which policies this update trains).
    """

    def build(self) -> None:
        super().build()
        if self._learner_connector is not None:
            # Per-row advantages replace PPO's per-agent GAE.
            self._learner_connector.remove(GeneralAdvantageEstimation.__name__)
            self._learner_connector.append(
                RowAdvantages(gamma=self.config.gamma, lambda_=self.config.lambda_, estimator=self.config.advantages, max_rows=self.config.learner_rows)
            )
        self._modules_to_update: set[str] | None = None
        self._coefficients: dict[str, torch.Tensor] = {}
        self._population_scale = 1.0

    def set_primal_weights(self, weights: dict[str, np.ndarray]) -> None:
        """``{"deviation", "weighted", "nu_bar"}`` -> ``(N,)`` coefficients per deviator row.

        Each module's coefficients are divided by its largest one (at least 1), a step size
        per update that leaves the direction of gradient (11) unchanged. Why: Adam divides every
        step by a running RMS of past gradients (beta2 = 0.999, a memory of ~1,000 minibatch
        steps). When lambda turns positive, the ``xi`` terms (``xi = N`` by default) make the loss
        ~N times larger; when lambda returned to 0, theta then moved ~N times too slowly for the
        rest of the run. Measured at N = 100 (relative epsilon 0.75, seed 1, before this rule):
        lambda was positive (lambda_sum at most 0.055) in iterations 11-14 only; the policy loss
        was 8-32 there and at most 0.25 in every other iteration; then log-std stayed at
        -0.852/-0.853 and welfare within 27,349-27,452 for the last 24 iterations, while the
        cooperative run on the same seed rose from 28,702 to 31,965. With this rule the same
        trial ends at 30,194 (seed 4: 28,882 instead of 25,219). With every lambda 0 the divisor
        is exactly 1, so the cooperative and selfish updates are unchanged bit for bit."""
        arrays = {name: np.asarray(array, dtype=np.float64) for name, array in weights.items()}
        scales = {
            POPULATION: max(1.0, *(float(np.abs(arrays[name]).max(initial=0.0)) for name in ("deviation", "weighted"))),
            NU_BAR: max(1.0, float(np.abs(arrays["nu_bar"]).max(initial=0.0))),
        }
        self._coefficients = {
            name: torch.as_tensor(array / scales[NU_BAR if name == "nu_bar" else POPULATION], dtype=torch.float32, device=self._device) for name, array in arrays.items()
        }
        self._population_scale = scales[POPULATION]

    def set_modules_to_update(self, module_ids: list[str] | None) -> None:
        self._modules_to_update = None if module_ids is None else set(module_ids)

    def should_module_be_updated(self, module_id, multi_agent_batch=None) -> bool:
        if self._modules_to_update is not None:
            return module_id in self._modules_to_update
        return super().should_module_be_updated(module_id, multi_agent_batch)

    def episode_coefficients(self, module_id: str, roles: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, k)`` roles and row indices -> ``(B,)`` episode kind and ``(B,)`` coefficient."""
        steps = roles.shape[0]
        kind = torch.full((steps,), _KIND_ALL_THETA, dtype=torch.long, device=roles.device)
        coefficient = torch.ones(steps, device=roles.device)
        if module_id == X_STAR or not self._coefficients:
            return kind, coefficient
        if module_id == NU_BAR:
            # The nu-bar agent's only row is the deviator.
            return torch.full_like(kind, _KIND_DEVIATION), self._coefficients["nu_bar"][rows[:, 0]]
        deviating = roles >= ROLE_NU_BAR
        deviator_row = rows.gather(1, deviating.float().argmax(dim=-1, keepdim=True)).squeeze(1)
        is_deviation = (roles == ROLE_NU_BAR).any(dim=-1)
        is_weighted = (roles == ROLE_X_STAR).any(dim=-1)
        kind = torch.where(is_deviation, _KIND_DEVIATION, torch.where(is_weighted, _KIND_WEIGHTED, kind))
        coefficient = coefficient / self._population_scale  # the all-theta term's 1, scaled likewise
        coefficient = torch.where(
            is_deviation,
            self._coefficients["deviation"][deviator_row],
            torch.where(is_weighted, self._coefficients["weighted"][deviator_row], coefficient),
        )
        return kind, coefficient

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module: RowPolicyModule = self.module[module_id].unwrapped()
        observations = batch[Columns.OBS]
        roles = module.roles(observations)
        loss_mask = batch[Columns.LOSS_MASK].bool()
        acting = (roles == CONTROLLED_ROLE[module_id]) & loss_mask[:, None]

        new_log_probs = row_log_probs(fwd_out[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS])
        old_log_probs = row_log_probs(batch[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS])
        ratio = torch.exp(new_log_probs - old_log_probs)

        rows = observations[..., module.n_features + ROW].round().long()
        kind, coefficient = self.episode_coefficients(module_id, roles, rows)
        advantages = batch[Postprocessing.ADVANTAGES] * coefficient[:, None]
        surrogate = torch.min(ratio * advantages, torch.clamp(ratio, 1 - config.clip_param, 1 + config.clip_param) * advantages)
        # Sum over the rows (the paper's sum over agents), scaled by 1/N (or the sampled rows'
        # weights, see the module doc), per timestep ...
        per_step = (surrogate * acting * batch[ROW_WEIGHTS]).sum(dim=-1)
        # ... then one mean per episode kind: gradient (11) adds the kinds' expectations.
        policy_loss = torch.zeros((), device=per_step.device)
        for kind_id in range(3):
            selected = (kind == kind_id) & loss_mask
            if selected.any():
                policy_loss = policy_loss - per_step[selected].mean()

        values = module.compute_values(batch)
        vf_loss = torch.clamp((values - batch[Postprocessing.VALUE_TARGETS]) ** 2, 0, config.vf_clip_param)
        mean_vf_loss = vf_loss[loss_mask].mean()
        # Gaussian entropy per row, state independent (one log-std per module).
        entropy = module.log_std + 0.5 * np.log(2 * np.pi * np.e)
        entropy_coefficient = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total = policy_loss + config.vf_loss_coeff * mean_vf_loss - entropy_coefficient * entropy

        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: policy_loss,
                VF_LOSS_KEY: mean_vf_loss,
                ENTROPY_KEY: entropy,
                "log_std": module.log_std,
                "rows_acting_per_step": acting.sum(dim=-1).float()[loss_mask].mean(),
            },
            key=module_id,
            window=1,
        )
        return total
