"""The dual domain update (BPG paper, Eq. 13) and the weights of the primal gradient (Eq. 11).

Pure NumPy, no RLlib: everything here can be checked by hand.

Units. The paper leaves the unit of a return open; its ``(1 + lambda_i)`` weights mix a
dimensionless 1 with ``lambda_i``, which has the unit of a return. We measure returns in
*mean-advertiser returns* (social welfare / N, both under the current population policy), so
``lambda_i = 1`` means "advertiser i could gain as much as an average advertiser earns" and the
cooperative weight ``1 + lambda_i`` doubles. ``epsilon`` is normalised by social welfare, as in
the paper's Table 1: the constraint is ``G_i(x*) - G_i(theta) <= epsilon x SW``.

Sampling. Algorithm 1 samples the deviating advertiser of the weighted POMDP from
``kappa_i = lambda_i / lambda_bar``. We sample from ``q = (1 - mix) kappa + mix / N``
(``mix = kappa_uniform_mix``, 0 reproduces the paper) so that the unified solution keeps
training on advertisers whose constraint is currently slack, and correct the gradient terms
with the importance weight ``kappa_i / q_i`` so that they stay unbiased for the paper's
``kappa``-weighted expectations. With ``lambda_bar = 0``, ``kappa`` is uniform (the paper's
initialisation) and the primal gradient is the cooperative gradient alone (Appendix C.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auctionsim.errors import ConfigError, describe

__all__ = ["DualState", "PrimalWeights", "dual_update", "primal_weights", "OBJECTIVES"]

# What the population policy theta maximises:
# * "bpg": the NCB problem by Algorithm 1 (gradient (11) with the unified optimizer nu-bar);
# * "bpg_zero": the Section 6.3 ablation, gradient (7) with grad_{pi_i} G_i = 0, i.e.
#   L1 - sum_i lambda_i grad_theta G_i(x*; theta), no nu-bar;
# * "cooperative": social welfare (L1 with lambda = 0);
# * "selfish": each advertiser its own return (SAB with a shared policy).
OBJECTIVES = ("bpg", "bpg_zero", "cooperative", "selfish")


@dataclass(frozen=True, eq=False)
class DualState:
    """Lagrange multipliers and sampling ratios after a dual update (arrays are ``(N,)``).

    Attributes:
        gains: ``G_i(x*; theta) - G_i(theta)``, currency (the unified solution's unilateral gain).
        welfare: social welfare ``sum_i G_i(theta)``, currency.
        epsilon: the constraint level, normalised by social welfare.
        lambdas: ``[gains - epsilon x SW]_+ / (SW / N)`` (Eq. 13 in mean-advertiser units).
        kappa: ``lambda_i / lambda_bar``, uniform when ``lambda_bar = 0``.
        sampling: the distribution deviators are drawn from, ``(1 - mix) kappa + mix / N``.
    """

    gains: np.ndarray
    welfare: float
    epsilon: float
    lambdas: np.ndarray
    kappa: np.ndarray
    sampling: np.ndarray

    @property
    def lambda_sum(self) -> float:
        """``lambda_bar``, the sum of the multipliers."""
        return float(self.lambdas.sum())

    @property
    def normalised_gains(self) -> np.ndarray:
        """Gains divided by social welfare (the quantity Eq. 15 maximises over advertisers)."""
        return self.gains / self.welfare if self.welfare > 0 else np.zeros_like(self.gains)

    @property
    def violation(self) -> np.ndarray:
        """``gains / SW - epsilon``: positive where the epsilon-NE constraint (1a) is violated."""
        return self.normalised_gains - self.epsilon

    def summary(self) -> dict[str, float]:
        """Scalars for progress reports and the training history."""
        violation = self.violation
        return {
            "welfare": self.welfare,
            "max_gain_normalised": float(self.normalised_gains.max()),
            "max_violation": float(violation.max()),
            "n_violating": int((violation > 0).sum()),
            "lambda_sum": self.lambda_sum,
            "lambda_max": float(self.lambdas.max()),
            "lambda_mean": float(self.lambdas.mean()),
        }


def _check_array(name: str, values: object, length: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or (length is not None and array.shape[0] != length) or array.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D array{'' if length is None else f' of length {length}'}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} must be finite, got {describe(values)}")
    return array


def dual_update(population_returns: object, gains: object, epsilon: float, kappa_uniform_mix: float = 0.0) -> DualState:
    """Eq. 13: ``lambda_i <- [G_i(x*; theta) - G_i(theta) - epsilon]_+`` for every advertiser.

    Args:
        population_returns: ``(N,)`` returns ``G_i(theta)`` with everyone on the population policy.
        gains: ``(N,)`` unilateral gains of the unified solution, ``G_i(x*; theta) - G_i(theta)``.
        epsilon: constraint level normalised by social welfare (>= 0).
        kappa_uniform_mix: share of the uniform distribution in the deviator sampling, in [0, 1].
    """
    returns = _check_array("population_returns", population_returns)
    gains = _check_array("gains", gains, returns.shape[0])
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be a finite number >= 0, got {describe(epsilon)}")
    if not 0.0 <= kappa_uniform_mix <= 1.0:
        raise ConfigError(f"kappa_uniform_mix must be in [0, 1], got {describe(kappa_uniform_mix)}")
    n = returns.shape[0]
    welfare = float(returns.sum())
    unit = welfare / n if welfare > 0 else 1.0
    lambdas = np.maximum(gains - epsilon * max(welfare, 0.0), 0.0) / unit
    total = lambdas.sum()
    kappa = lambdas / total if total > 0 else np.full(n, 1.0 / n)
    sampling = (1.0 - kappa_uniform_mix) * kappa + kappa_uniform_mix / n
    return DualState(gains=gains, welfare=welfare, epsilon=float(epsilon), lambdas=lambdas, kappa=kappa, sampling=sampling)


@dataclass(frozen=True, eq=False)
class PrimalWeights:
    """Per-episode coefficients that turn sampled policy gradients into gradient (11).

    Ascent directions (the paper writes descent, ``theta <- theta - alpha Delta theta``):

    * theta: ``L1 - (1 - xi/lambda_bar) L_s - xi L*_w``
      ``= sum_i (1 + lambda_i) grad G_i(theta)``                 (cooperative episodes)
      ``+ (xi - lambda_bar) E_{i~kappa} grad_theta G_i(nu; theta)`` (deviation episodes)
      ``- xi E_{i~kappa} grad_theta G_i(x*; theta)``              (weighted-POMDP episodes)
    * nu-bar: ``-(1 - xi/lambda_bar) L'_g = (xi - lambda_bar) E_{i~kappa} grad_nu G_i(nu; theta)``,
      scaled here by ``1/xi`` (a step size choice: ``|coefficient| <= 1`` unless lambda_bar > 2 xi).

    Each expectation over ``i ~ kappa`` is estimated from episodes whose deviator is drawn from
    ``q``, hence the importance weights ``kappa_i / q_i`` folded into the per-advertiser arrays.

    Attributes:
        team_weights: ``(N,)`` weights of each advertiser's reward in the cooperative return
            (``1 + lambda_i``; all ones for "cooperative").
        deviation: ``(N,)`` coefficient of a deviation episode whose deviator is ``i``, for theta.
        weighted: ``(N,)`` coefficient of a weighted-POMDP episode with focal ``i``, for theta.
        nu_bar: ``(N,)`` coefficient of a deviation episode for the unified optimizer.
        episode_kinds: the episode kinds the primal step samples (C.2.1: only "cooperative"
            when ``lambda_bar = 0``).
    """

    team_weights: np.ndarray
    deviation: np.ndarray
    weighted: np.ndarray
    nu_bar: np.ndarray
    episode_kinds: tuple[str, ...]


def primal_weights(duals: DualState, objective: str, xi: float) -> PrimalWeights:
    """Coefficients of gradient (11) (or its ablations) for the next primal step."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {describe(objective)}")
    if not np.isfinite(xi) or xi <= 0:
        raise ConfigError(f"xi must be a finite number > 0, got {describe(xi)}")
    n = duals.lambdas.shape[0]
    zeros = np.zeros(n)
    lambda_sum = duals.lambda_sum
    importance = np.divide(duals.kappa, duals.sampling, out=np.zeros(n), where=duals.sampling > 0)
    if objective == "selfish":
        return PrimalWeights(np.ones(n), zeros, zeros, zeros, ("selfish",))
    if objective == "cooperative" or lambda_sum == 0.0:
        # Appendix C.2.1: with lambda_bar = 0, Delta theta = -L1 and Delta nu-bar = 0.
        return PrimalWeights(1.0 + duals.lambdas if objective != "cooperative" else np.ones(n), zeros, zeros, zeros, ("cooperative",))
    team_weights = 1.0 + duals.lambdas
    if objective == "bpg_zero":
        # Gradient (7) with the L_g term dropped and nu_{i,theta} replaced by x*:
        # sum_i lambda_i grad_theta G_i(x*; theta) = lambda_bar E_{i~kappa}[...].
        return PrimalWeights(team_weights, zeros, -lambda_sum * importance, zeros, ("cooperative", "weighted"))
    return PrimalWeights(
        team_weights=team_weights,
        deviation=(xi - lambda_sum) * importance,
        weighted=-xi * importance,
        nu_bar=(1.0 - lambda_sum / xi) * importance,
        episode_kinds=("cooperative", "deviation", "weighted"),
    )
