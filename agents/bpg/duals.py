"""The dual domain update (BPG paper, Eq. 13) and the weights of the primal gradient (Eq. 11).

Pure NumPy, no RLlib: everything here can be checked by hand.

Units. The paper leaves the unit of a return open; its ``(1 + lambda_i)`` weights mix a
dimensionless 1 with ``lambda_i``, which has the unit of a return. We measure returns in
*mean-advertiser returns* (social welfare / N, both under the current population policy), so
``lambda_i = 1`` means "advertiser i could gain as much as an average advertiser earns" and the
cooperative weight ``1 + lambda_i`` doubles. ``epsilon`` is normalised by social welfare, as in
the paper's Table 1: the constraint is ``G_i(x*) - G_i(theta) <= epsilon x SW``.

Epsilon scales (:func:`resolve_epsilon`). ``"welfare"`` is the paper's: epsilon is a share of
social welfare. ``"relative"`` gives epsilon as a fraction of the fully cooperative population's
measured Max Exploitability at the same N (itself a share of welfare). Why: one advertiser's best
unilateral gain is a share of *total* welfare that shrinks as N grows (at N = 100 it is a small
fraction of the welfare of 100 advertisers), so the paper's 0.08-0.16 are slack on our market and
every such run is the cooperative run; a fraction of the cooperative population's own
exploitability binds at every N (fraction < 1) and reads the same way at N = 10 and N = 100.

Sampling. Algorithm 1 samples the deviating advertiser of the weighted POMDP from
``kappa_i = lambda_i / lambda_bar``. We sample from ``q = (1 - mix) kappa + mix / N``
(``mix = kappa_uniform_mix``, 0 reproduces the paper) so that the unified solution keeps
training on advertisers whose constraint is currently slack. The primal gradient terms of
theta and nu-bar are corrected with the importance weight ``kappa_i / q_i``, so they stay
unbiased for the paper's ``kappa``-weighted expectations. The unified solution x* is *not*
reweighted: it maximises the return of the ``q``-weighted POMDP, i.e. it is trained, on purpose,
for the slack advertisers too (with ``mix = 0`` this is the paper's ``G_w``). With
``lambda_bar = 0``, ``kappa`` is uniform (the paper's initialisation) and the primal gradient
is the cooperative gradient alone (Appendix C.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_number

__all__ = [
    "DualState",
    "PrimalWeights",
    "dual_update",
    "primal_weights",
    "POPULATION_OBJECTIVES",
    "CONSTRAINED_OBJECTIVES",
    "EPSILON_MODES",
    "is_constrained",
    "check_objective",
    "resolve_epsilon",
]

# What the population policy theta maximises (not to be confused with
# agents.equilibrium.OBJECTIVES, the return a deviation is scored by):
# * "bpg": the NCB problem by Algorithm 1 (gradient (11) with the unified optimizer nu-bar);
# * "bpg_zero": the Section 6.3 ablation, gradient (7) with grad_{pi_i} G_i = 0, i.e.
#   L1 - sum_i lambda_i grad_theta G_i(x*; theta), no nu-bar;
# * "cooperative": social welfare (L1 with lambda = 0);
# * "selfish": each advertiser its own return (SAB with a shared policy).
POPULATION_OBJECTIVES = ("bpg", "bpg_zero", "cooperative", "selfish")
# The objectives trained under the epsilon-NE constraint (with multipliers lambda).
CONSTRAINED_OBJECTIVES = ("bpg", "bpg_zero")
EPSILON_MODES = ("welfare", "relative")


def check_objective(objective: object) -> str:
    """``objective`` if it is one of :data:`POPULATION_OBJECTIVES`, else a ``ConfigError``."""
    if objective not in POPULATION_OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(POPULATION_OBJECTIVES)}, got {describe(objective)}")
    return str(objective)


def is_constrained(objective: str) -> bool:
    """Whether ``objective`` trains under the epsilon-NE constraint (has an epsilon and lambdas)."""
    return check_objective(objective) in CONSTRAINED_OBJECTIVES


def resolve_epsilon(value: float, mode: str = "welfare", cooperative_max_exploitability: float | None = None) -> float:
    """The constraint level as a share of social welfare (what :func:`dual_update` takes).

    Args:
        value: epsilon in the units of ``mode`` (finite, >= 0).
        mode: ``"welfare"``: ``value`` is already a share of welfare (the paper's scale);
            ``"relative"``: ``value`` is a fraction of ``cooperative_max_exploitability``.
        cooperative_max_exploitability: the fully cooperative population's Max Exploitability
            at the same N (a share of welfare, > 0); needed by ``"relative"`` only.
    """
    if mode not in EPSILON_MODES:
        raise ConfigError(f"epsilon mode must be one of {', '.join(EPSILON_MODES)}, got {describe(mode)}")
    value = check_number("epsilon", value, low=0.0)
    if mode == "welfare":
        return value
    scale = cooperative_max_exploitability
    if scale is None:
        raise ConfigError("relative epsilon needs the cooperative population's Max Exploitability (a finite number > 0), got None")
    return value * check_number("cooperative_max_exploitability (relative epsilon's scale)", scale, low=0.0, low_open=True)


@dataclass(frozen=True, eq=False)
class DualState:
    """Lagrange multipliers and sampling ratios after a dual update (arrays are ``(N,)``).

    Attributes:
        gains: ``G_i(x*; theta) - G_i(theta)``, currency (the unified solution's unilateral gain).
        welfare: social welfare ``sum_i G_i(theta)``, currency.
        epsilon: the constraint level, normalised by social welfare.
        lambdas: ``[gains - epsilon x SW]_+ / (SW / N)`` (Eq. 13 in mean-advertiser units), or
            the ascent rule's multipliers (:func:`dual_update`).
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


def dual_update(
    population_returns: object,
    gains: object,
    epsilon: float,
    kappa_uniform_mix: float = 0.0,
    *,
    previous_lambdas: object | None = None,
    dual_step: float | None = None,
    lambda_max: float | None = None,
) -> DualState:
    """The dual update: Eq. 13 by default, ``lambda_i <- [G_i(x*; theta) - G_i(theta) - epsilon]_+``
    for every advertiser (mean-advertiser units).

    Eq. 13 sets lambda to the current violation: it has no memory, so lambda falls to 0 as soon
    as the measured gain dips under epsilon and the primal step stops pushing (on our market it
    oscillated with the lag of the primal response in the Eq. 13 reference run, which was made
    before the action-normalisation fix and is in the git history at b656a24). With
    ``dual_step`` it is projected gradient ascent on the Lagrangian instead (our option, not the
    paper's): ``lambda_i <- [lambda_i^prev + dual_step x violation_i]_+``, which keeps pushing
    while the constraint is violated and relaxes only as fast as the violation is negative.

    Args:
        population_returns: ``(N,)`` returns ``G_i(theta)`` with everyone on the population policy.
        gains: ``(N,)`` unilateral gains of the unified solution, ``G_i(x*; theta) - G_i(theta)``.
        epsilon: constraint level normalised by social welfare (>= 0).
        kappa_uniform_mix: share of the uniform distribution in the deviator sampling, in [0, 1].
        previous_lambdas: ``(N,)`` the last multipliers (needed with ``dual_step``).
        dual_step: ascent step size (``None``: Eq. 13's closed form).
        lambda_max: cap on each ``lambda_i`` (``None``: no cap). The cap, not epsilon, sets how
            hard the penalty pushes once an advertiser's lambda reaches it. At ``epsilon = 0`` the
            constraint asks for an exact equilibrium, which a trained population does not reach,
            so ascent always ends there at the cap (see ``experiments/reference/bpg/``).
    """
    returns = _check_array("population_returns", population_returns)
    gains = _check_array("gains", gains, returns.shape[0])
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be a finite number >= 0, got {describe(epsilon)}")
    if not 0.0 <= kappa_uniform_mix <= 1.0:
        raise ConfigError(f"kappa_uniform_mix must be in [0, 1], got {describe(kappa_uniform_mix)}")
    if dual_step is not None:
        check_number("dual_step", dual_step, low=0.0, low_open=True)
        if previous_lambdas is None:
            raise ConfigError("dual_step (gradient ascent on lambda) needs previous_lambdas, got None")
        previous = _check_array("previous_lambdas", previous_lambdas, returns.shape[0])
        if (previous < 0).any():
            raise ConfigError(f"previous_lambdas must be >= 0, got {describe(previous_lambdas)}")
    if lambda_max is not None:
        check_number("lambda_max", lambda_max, low=0.0, low_open=True)
    n = returns.shape[0]
    welfare = float(returns.sum())
    unit = welfare / n if welfare > 0 else 1.0
    violation = (gains - epsilon * max(welfare, 0.0)) / unit
    lambdas = np.maximum(violation if dual_step is None else previous + dual_step * violation, 0.0)
    if lambda_max is not None:
        lambdas = np.minimum(lambdas, lambda_max)
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
    check_objective(objective)
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
