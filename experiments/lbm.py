"""LBM (hierarchical LLM bidder) against DT and LLM-DT on our market: the paper's Tables 1/2, 4, 5
and Fig. 2, dense and sparse, with a gate before anything is ranked.

Steps, top to bottom in :func:`run` (paper section in brackets):

1. Markets. ``sparse``: the AuctionNet preset (CPA targets 60-130, like AuctionNet-sparse);
   ``dense``: pValues x 10 and CPA targets / 10 (like AuctionNet's dense data, CPA 6-12), so
   values and prices are unchanged and conversions are ten times as many. Budgets scale with
   ``impressions_per_episode / 500,000`` so they bind as in the preset.
2. Logs: every advertiser of the ``mixed`` baseline population (fixed, PID, CPA pacing,
   OnlineLP) with log-normal exploration noise, reward = expected conversions (the paper's
   ``sum o_i v_i``) [A.1], with the policies' intended (pre-noise) multipliers for Eq. 5's
   anchor direction (:class:`agents.lbm.IntentRecorder`). ``train_episodes`` episodes train every
   learner; ``heldout_episodes`` more (other market seeds) are never trained on: the
   forced-direction gate reads them. Evaluation markets (seeds from 10,000) are disjoint from both.
3. Per training seed: LBM-Think "pretrained" on the rule-based teacher's CoTs of both markets
   (the tiny backbone learns the language from them; a pretrained backbone is warmed up) [3.1].
4. Per market: the IQL critic (Eqs. 8-9); DT, LLM-DT (LBM-Act without CoT) and LBM-Act with the
   **same** steps, batch, learning rate and warm-up fraction (:data:`EQUAL_TRAINING`); LBM-Act by
   language-guided decision training (Eq. 5) with the paper's rule: a CoT whose decision
   conflicts with the data's anchor is discarded, LBM-Think sampling up to ``cot_samples`` more
   CoTs for the decision first (:mod:`agents.lbm.guidance`); the ``relabel`` ablation
   (``--ablations relabel``) rewrites the conflicting decision instead [3.2]; GQPO (Eqs. 12-14)
   fine-tunes a copy of LBM-Think [3.3].
5. **The forced-direction gate** (:mod:`agents.lbm.gate`) on the held-out logs: LBM-Think's CoT
   with its decision forced to decrease / keep / increase must move LBM-Act's log multiplier in
   that order with non-overlapping 95% intervals. Where it fails for a backbone, the tables carry
   its numbers but no LBM ordering or verdict (``"ranked": false`` in ``summary.json``).
6. Evaluation in the single-bidder env against the ``mixed`` population (no noise): focal
   advertisers x evaluation seeds x budget ratios 0.5-1.5 (Table 5), the same cases for every
   method and training seed, plus LBM(GQPO) with increase/decrease instructions (Table 4);
   Fig. 2 from the played multipliers and the CPA ratio before each tick.

Statistics (:mod:`auctionsim.stats`): every metric is ``mean [95% interval]`` over training seeds
x evaluation seeds (focal advertisers averaged within a cell); comparisons are paired
differences on the same cells with Holm-adjusted verdicts per table.

Outputs in ``output_dir`` (``results/lbm``; ``--quick``: ``results/lbm-quick``): one JSON per
(market, training seed) under ``units/`` (written atomically, skipped by ``--resume``),
``summary.json``, ``tables.md``, figures, ``manifest.json`` and TensorBoard scalars
(``tensorboard/``). ``--device`` picks the torch device (``auto``: CUDA when present, with bf16
autocast and larger batches).

Run: ``python -m experiments.lbm --quick`` or ``auctionsim lbm --quick`` (``--plot-only`` redraws).

Why the gate failed before, and the fix (dense quick logs, tiny backbone; held-out episodes;
mean log change decrease / keep / increase; measured on a shared, heavily loaded machine):

* 250 steps (the former quick size) are far too few: relabelled CoTs gave +0.11 / +0.13 / +0.13
  and discarded ones -0.07 / -0.03 / -0.04. At 1,000 steps relabelled CoTs gave -0.12 / +0.03 /
  +0.08 (overlapping intervals), while the paper's discard rule on LBM-Think's greedy CoTs still
  gave -0.10 / -0.08 / -0.07: only 24% of decisions kept a CoT (LBM-Think says "decrease" on 64%
  of states, the data moves down on 14%), and those words agree with what the numbers already show.
* Sampling (``cot_samples``): LBM-Think samples up to 4 more CoTs for a conflicting decision and
  the first agreeing one is kept (still Eq. 5: conflicting CoTs are disregarded); 65% of decisions
  keep a CoT, and their words follow the data's moves: -0.07 / -0.03 / -0.02 at 1,000 steps.
* The embedding LayerNorm (``act_embedding_norm``, numeric items at the token embeddings' scale):
  -0.01 / +0.07 / +0.11 (discard with sampling) and -0.21 / -0.09 / -0.00 (relabel), 1,000 steps.
* The train/test shift of the instruction: forcing with an ``Instruction: raise the bid.`` phrase
  no training CoT had was read less than the decision word alone (relabel, 1,000 steps: forced
  increase - keep +0.017 vs +0.052), so instructions and the gate now set the decision word.
* DT's fixed 1,000-step warm-up outlasted its 600 quick steps; every learner now warms up over
  ``warmup_fraction`` of its steps.
* The gate forced the decision word alone, leaving the verdict sentence before it ("Spending
  too fast. Decision: increase."). Under Eq. 5's discard rule the verdict and the word agree in
  every training CoT, so LBM-Act read both, and a forced word contradicted by its own verdict
  moved it little: -0.07 / +0.01 / +0.06 (1,500 steps, Think 16 epochs, one seed; overlapping).
  Forcing the conclusion (verdict and word, :func:`agents.lbm.prompts.with_direction`) on the
  same model: -0.21 / +0.02 / +0.15, passed.
* 3,000 steps each for DT, LLM-DT and LBM-Act (the full run's size), not 1,500: at 1,500 the
  discard gate passed for 2 of 3 training seeds (seed 2: decrease -0.085 [-0.111, -0.059], keep
  -0.055 [-0.074, -0.037]); at 3,000 for 3 of 3 with ``--gate-only`` (keep - decrease +0.07 /
  +0.07 / +0.10) but 1 of 3 in the full run, whose models differ (the baselines train first and
  take other random draws), and 0 of 3 for seeds 3-5 with ``--gate-only``: the outcome depends
  on the seed (6 of 12 discard models passed with this recipe, every paired difference above 0;
  ``experiments/reference/lbm``). The logged moves are large on average (log change of the played
  multiplier -0.38 / 0.00 / +0.18 by anchor direction) but scatter widely (10-90% range -0.54 to
  +0.54 where the anchor is "keep"), so the word explains little of the squared error and
  LBM-Act needs the longer training to pick it up.
* Why half the seeds failed: a Think imitating the deterministic teacher reasons consistently.
  When Eq. 5 samples more CoTs for a conflicting decision, the one that agrees has changed its
  stated *facts* along with its word. So 94-96% of the kept CoTs stated facts that imply their
  own conclusion (true facts in 10-17%), against 38-46% under relabelling. LBM-Act could read the
  direction from the facts, and the gate, which keeps the facts and forces the conclusion, moved
  it little. Training LBM-Act also on each kept CoT's conclusion alone (facts dropped, half or
  80% of the draws) did not fix it (seed 3: keep - decrease +0.045 / +0.036, failed; seed 4
  passed). The fix (``think_conclusion_switch``): LBM-Think pre-trains on a soft teacher that
  switches 20% of its conclusions to another direction, facts kept
  (:func:`agents.lbm.prompts.soft_teacher_cots`). Its samples then vary the conclusion without
  the facts: 89-94% of decisions keep a CoT, 59-73% of them self-consistent. Seeds 3 and 5 (failed
  before, keep - decrease +0.03 / +0.02) passed with keep - decrease +0.13 / +0.14.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import multiprocessing
import pathlib
import shutil
import sys
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import auctionsim  # noqa: E402
from agents.datasets import collect_dataset  # noqa: E402
from agents.lbm import ActConfig, FocalCase, IntentRecorder, LBMAct, LBMPolicy, LBMThink, Trajectories, evaluate_focal, gqpo, load_backbone, train_act  # noqa: E402
from agents.lbm.backbones import resolve_device  # noqa: E402
from agents.lbm.gate import GATE_ORDER, direction_gate, forced_log_changes, trajectory_means  # noqa: E402
from agents.lbm.gqpo import OfflineCritic  # noqa: E402
from agents.lbm.guidance import CONFLICT_RULES, direction_weights, guided_cots  # noqa: E402
from agents.lbm.prompts import parse_cpa_ratio, parse_direction, soft_teacher_cots, teacher_cot, teacher_direction  # noqa: E402
from agents.offline.data import OfflineData  # noqa: E402
from agents.offline.dt import DTConfig, train_dt  # noqa: E402
from agents.offline.iql import IQLConfig, train_iql  # noqa: E402
from agents.populations import named_population  # noqa: E402
from auctionsim import presets, runs, stats  # noqa: E402
from auctionsim.config import MarketConfig, Population  # noqa: E402
from auctionsim.errors import ConfigError  # noqa: E402
from auctionsim.envs import AuctionParallelEnv  # noqa: E402
from auctionsim.market import Market  # noqa: E402
from auctionsim.tracking import ScalarLogger, seed_everything  # noqa: E402
from experiments import args as arguments  # noqa: E402

REWARD = "expected_conversions"
METHODS = ("DT", "LLM-DT", "LBM(P)", "LBM(GQPO)")
"""The paper's ordering (Tables 1-2), lowest first."""
METRICS = ("budget_utilisation", "cpa_ratio", "conversions", "score")
EQUAL_TRAINING = ("learner_steps", "batch_size", "learning_rate", "warmup_fraction")
"""The training budget DT, LLM-DT and LBM-Act share (one value each, for all three)."""
NOT_RANKED = "not ranked: LBM-Act failed the forced-direction gate"

QUICK = dict(
    output_dir="results/lbm-quick", impressions_per_episode=50_000, train_episodes=6, heldout_episodes=4,
    training_seeds=1, eval_seeds=2, context=5, think_samples=2400, think_epochs=16.0, learner_steps=3000,
    gqpo_decisions=300, gqpo_epochs=2.0, iql_steps=2000, eval_advertisers=4, gate_decisions=0, torch_threads=1,
)
"""The sizes ``--quick`` gives the fields not set on the command line."""

SMOLLM2 = dict(
    QUICK, output_dir="results/lbm-smollm2", variants=("dense",), think_backbone="smollm2", think_layers=4,
    act_backbone="smollm2", act_layers=2, think_samples=320, think_epochs=2.0, think_learning_rate=3e-4,
    act_cot_decisions=200, batch_size=32, learner_steps=1500, gqpo_decisions=60, eval_advertisers=2, eval_seeds=1,
    budget_ratios=(0.5, 1.0, 1.5), gate_decisions=300, probe_decisions=60, gqpo_learning_rate=3e-5,
)
"""The sizes ``--smollm2`` gives the fields not set on the command line: Think and Act on the
pretrained SmolLM2-135M truncated to 4 and 2 layers, dense market only."""


@dataclass
class Args(arguments.ProtocolArgs):
    """LBM against DT and LLM-DT (Tables 1/2, 4, 5, Fig. 2), gated on LBM-Act reading its CoT."""

    smollm2: bool = False
    """the SmolLM2 run (:data:`SMOLLM2` sizes; --quick's for the rest)"""
    output_dir: str = "results/lbm"
    """where unit results, tables, plots, the manifest and TensorBoard logs are written"""
    device: str = "auto"
    """torch device: auto (CUDA when present), cpu, cuda or cuda:k"""
    variants: tuple[str, ...] = ("dense", "sparse")
    """markets: dense (10x conversions, CPA 6-13) and sparse (the AuctionNet preset)"""
    think_backbone: str = "tiny"
    """LBM-Think's language model: tiny, smollm2 or hf:<dir>"""
    think_layers: int | None = None
    """keep the first k transformer layers of a pretrained Think backbone"""
    act_backbone: str = "tiny"
    """LBM-Act/LLM-DT's language model (tiny: a copy of the pretrained tiny Think)"""
    act_layers: int | None = None
    """keep the first k transformer layers of a pretrained Act backbone"""
    impressions_per_episode: int = 200_000
    """market size (the preset has 500,000); budgets scale with it"""
    train_episodes: int = 16
    """logged training episodes per market (x 48 advertisers = trajectories)"""
    heldout_episodes: int = 4
    """logged episodes per market that no learner trains on (the forced-direction gate's states)"""
    action_noise: float = 0.3
    """log-normal exploration noise of the logging population"""
    context: int = 10
    """L, ticks of numeric history of LBM-Act, LLM-DT and DT (paper: 10)"""
    think_samples: int = 6000
    """teacher (prompt, CoT) pairs for LBM-Think pre-training / warm-up"""
    think_epochs: float = 3.0
    """epochs over them"""
    think_balance_directions: bool = True
    """LBM-Think's teacher CoTs drawn equally often per decision word. The teacher says "decrease"
    on ~61% of logged dense states and "increase" on ~12%; a Think imitating that said "increase"
    on 3-13% of states, Eq. 5 kept an "increase" CoT for 5% of decisions, LBM-Act read that word
    weakly (the gate failed on it), and the LBM(P) of the training seed whose Think said
    "decrease" on 52% bid down to 0.17 budget utilisation"""
    think_conclusion_switch: float = 0.2
    """share of LBM-Think's teacher CoTs whose conclusion (verdict and word) is switched to another
    direction, facts kept (:func:`agents.lbm.prompts.soft_teacher_cots`). With a deterministic
    teacher, Eq. 5's kept CoTs stated facts implying their conclusion, LBM-Act read the facts, and
    the forced-direction gate failed on half the training seeds"""
    think_learning_rate: float = 2e-3
    """LBM-Think pre-training step size (tiny from scratch; use ~5e-5 for pretrained backbones)"""
    learner_steps: int = 3000
    """gradient steps of DT, LLM-DT and LBM-Act alike (paper: 400,000 for LBM-Act)"""
    batch_size: int = 0
    """batch of DT, LLM-DT and LBM-Act (0: 64 on CPU as the paper, 256 on CUDA)"""
    learning_rate: float = 3e-4
    """AdamW step size of DT, LLM-DT and LBM-Act (paper: 1e-5 for LBM-Act over 400,000 steps)"""
    warmup_fraction: float = 0.1
    """share of the steps DT, LLM-DT and LBM-Act spend in linear warm-up"""
    conflicting_cots: str = "discard"
    """Eq. 5 for a CoT whose decision conflicts with the data's direction: discard (the paper) or relabel"""
    ablations: tuple[str, ...] = ()
    """extra LBM-Act variants trained, gated and evaluated beside the headline: relabel and/or discard (the other rule)"""
    cot_samples: int = 12
    """CoTs LBM-Think samples for a decision whose first CoT conflicts (discard rule; the first
    agreeing one is kept). 12 rather than 4 kept a CoT for 76-79% of decisions instead of 64-65% and
    turned one training seed's gate from failed to passed (dense quick logs, tiny backbone)"""
    cot_temperature: float = 1.0
    """LBM-Think's sampling temperature for them"""
    act_cot_decisions: int = 0
    """logged decisions given LBM-Think CoTs for language-guided training (0: every decision, as the
    paper); the others get the rule-based teacher's CoT that LBM-Think imitates (a pretrained Think
    on one CPU core writes ~10 CoTs/s, too few for every logged decision)"""
    act_embedding_norm: bool = True
    """LayerNorm LBM-Act/LLM-DT's numeric items to the token embeddings' scale (LBM-Act reads the CoT far better with it)"""
    act_token_embeddings: bool = True
    """train the token-embedding table in LBM-Act/LLM-DT (without it LBM-Act did not learn to read the CoT in our short runs)"""
    balance_directions: bool = True
    """LBM-Act draws decisions of each anchor direction (decrease/keep/increase) equally often"""
    direction_tolerance: float = 0.02
    """relative change of the intended multiplier below which its direction is "keep" """
    gate_decisions: int = 3000
    """held-out logged decisions of the forced-direction gate (0: all)"""
    probe_decisions: int = 200
    """logged decisions of the LBM-Think diagnostics (teacher agreement, CPA-ratio error)"""
    gqpo_decisions: int = 2000
    """logged decisions per GQPO round (paper: 2,000)"""
    gqpo_group_size: int = 3
    """N, CoTs sampled per decision (paper: 3)"""
    gqpo_epochs: float = 3.0
    """fine-tuning epochs on the selected CoTs (paper: 5)"""
    gqpo_learning_rate: float = 3e-4
    """GQPO fine-tuning step size (paper: 1e-6 on a 3B model)"""
    iql_steps: int = 20_000
    """IQL critic gradient steps (paper Table 9: 400,000)"""
    eval_advertisers: int = 16
    """focal advertisers evaluated (spread over the 48)"""
    budget_ratios: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    """Table 5: the focal advertiser's budget x ratio"""
    target_quantile: float = 0.9
    """initial return-to-go = this quantile of the logged returns (DT and LBM)"""
    torch_threads: int = 0
    """torch CPU threads (0: torch's default); small models run fastest on 1 on a loaded machine"""
    workers: int = 1
    """training seeds trained at once, each in its own process (results do not depend on it; Ctrl-C
    stops them all, a kill by process id stops only the parent: kill the process group)"""
    plot_only: bool = False
    """redraw tables and plots from saved results"""
    gate_only: bool = False
    """train LBM-Think and LBM-Act and check the forced-direction gate only (no IQL, DT, LLM-DT,
    GQPO or evaluation): the cheap check before a full run, e.g. of a new backbone"""

    def __post_init__(self) -> None:
        unknown = set(self.variants) - {"dense", "sparse"}
        if unknown or not self.variants:
            raise ConfigError(f"variants must be dense and/or sparse, got {sorted(unknown) or '()'}")
        if self.conflicting_cots not in CONFLICT_RULES:
            raise ConfigError(f"conflicting_cots must be one of {', '.join(CONFLICT_RULES)}, got {self.conflicting_cots!r}")
        bad = [rule for rule in self.ablations if rule not in CONFLICT_RULES or rule == self.conflicting_cots]
        if bad:
            raise ConfigError(f"ablations must be conflict rules other than the headline {self.conflicting_cots!r}, got {bad}")
        for name in ("training_seeds", "eval_seeds", "train_episodes", "heldout_episodes", "learner_steps", "probe_decisions", "eval_advertisers", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "act_cot_decisions", "cot_samples", "gate_decisions", "torch_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.think_conclusion_switch <= 1.0:
            raise ConfigError(f"think_conclusion_switch must be in [0, 1], got {self.think_conclusion_switch}")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ConfigError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction}")
        if min(self.budget_ratios) <= 0 or 1.0 not in self.budget_ratios:
            raise ConfigError(f"budget_ratios must be > 0 and include 1.0, got {self.budget_ratios}")


def parse_args(argv: list[str] | None = None) -> Args:
    """Flags from :class:`Args`; with ``--quick`` (``--smollm2``) the fields not given take the
    :data:`QUICK` (:data:`SMOLLM2`) values. A flag given always wins."""
    description = __doc__.split("\n\n")[0]
    argv = list(sys.argv[1:] if argv is None else argv)
    if arguments.parse(Args, argv, description).smollm2:
        return arguments.parse(Args, [*argv, "--quick"], description, quick=SMOLLM2)
    return arguments.parse(Args, argv, description, quick=QUICK)


# ------------------------------------------------------------------------------ setup
def build_market(variant: str, impressions: int) -> tuple[MarketConfig, Population]:
    """The sparse (AuctionNet preset) or dense market at ``impressions`` per episode."""
    scenario = presets.get("auctionnet", impressions_per_episode=impressions, scale_budgets=True)
    market, population = scenario.market, scenario.population
    if variant == "dense":
        market = dataclasses.replace(market, traffic=dataclasses.replace(market.traffic, pvalue_base_mean=market.traffic.pvalue_base_mean * 10))
        population = dataclasses.replace(population, cpa_targets=population.cpa_targets / 10)
    return market, population


@dataclass
class MarketLogs:
    """One market's logs: training (``data``, ``dataset``) and held-out (``heldout``) trajectories."""

    market: MarketConfig
    population: Population
    dataset: object
    data: Trajectories
    heldout: Trajectories


def log_markets(args: Args) -> dict[str, MarketLogs]:
    """Training and held-out logs of every market (market seeds disjoint from each other and
    from the evaluation seeds)."""
    logs = {}
    for index, variant in enumerate(args.variants):
        market, population = build_market(variant, args.impressions_per_episode)
        env = AuctionParallelEnv(Market(market, population), reward=REWARD)
        parts = []
        for offset, episodes in ((0, args.train_episodes), (500, args.heldout_episodes)):
            recorder = IntentRecorder(named_population("mixed", population.ids))
            dataset = collect_dataset(env, recorder, episodes, seed=args.seed + 1000 * index + offset, action_noise=args.action_noise, description=f"lbm {variant}: mixed population")
            parts.append((dataset, Trajectories.from_dataset(dataset, recorder.intended_actions)))
        logs[variant] = MarketLogs(market, population, parts[0][0], parts[0][1], parts[1][1])
    return logs


def evaluation_seeds(args: Args) -> list[int]:
    """The evaluation markets: the same for every method and training seed."""
    return [10_000 + 1000 * args.seed + k for k in range(args.eval_seeds)]


def _sample(rng: np.random.Generator, rows: np.ndarray, ticks: np.ndarray, size: int, first_tick: int = 0):
    eligible = np.flatnonzero(ticks >= first_tick)
    chosen = eligible if size == 0 or size >= eligible.size else np.sort(rng.choice(eligible, size=size, replace=False))
    return rows[chosen], ticks[chosen]


def think_diagnostics(think: LBMThink, trajectories: Trajectories, rows, ticks) -> dict:
    """How LBM-Think's CoTs relate to the teacher: direction agreement, stated-CPA-ratio error
    (hallucination check of Fig. 4), and parse failures."""
    statuses = [trajectories.status(int(r), int(t)) for r, t in zip(rows, ticks)]
    texts = think.think(think.prompt_ids(statuses)).texts
    directions = [parse_direction(text) for text in texts]
    errors = [abs(parse_cpa_ratio(text) - s.cpa_ratio) for text, s in zip(texts, statuses) if s.cpa_ratio is not None and parse_cpa_ratio(text) is not None]
    return {
        "teacher_agreement": float(np.mean([d == teacher_direction(s) for d, s in zip(directions, statuses)])),
        "no_direction": float(np.mean([d is None for d in directions])),
        "direction_shares": {str(k): float(np.mean([d == k for d in directions])) for k in (-1, 0, 1)},
        "cpa_ratio_abs_error_median": float(np.median(errors)) if errors else None,
        "example": texts[0],
    }


def pretrain_think(args: Args, logs: dict[str, MarketLogs], seed: int, device: torch.device, logger: ScalarLogger) -> tuple[LBMThink, list[float]]:
    """LBM-Think "pretrained" on the teacher's CoTs of every market's training logs (each decision word
    equally often with ``think_balance_directions``; a ``think_conclusion_switch`` share of the
    conclusions switched)."""
    rng = np.random.default_rng(seed)
    think = LBMThink(load_backbone(args.think_backbone, layers=args.think_layers, seed=seed, device=device))
    statuses = []
    for variant in args.variants:
        data = logs[variant].data
        rows, ticks = _sample(rng, *data.decisions(), args.think_samples // len(args.variants))
        statuses += [data.status(int(r), int(t)) for r, t in zip(rows, ticks)]
    if args.think_balance_directions:
        weights = direction_weights(np.array([teacher_direction(s) for s in statuses]))
        statuses = [statuses[k] for k in rng.choice(len(statuses), len(statuses), p=weights / weights.sum())]
    losses = think.fine_tune(
        think.prompt_ids(statuses), soft_teacher_cots(statuses, args.think_conclusion_switch, rng), epochs=args.think_epochs, learning_rate=args.think_learning_rate,
        seed=seed, description="LBM-Think pre-training", logger=logger,
    )
    return think, losses


# ------------------------------------------------------------------------------ one unit
def train_unit(args: Args, logs: MarketLogs, variant: str, seed: int, think: LBMThink, device: torch.device, logger: ScalarLogger) -> dict:
    """Train, gate and evaluate every method on one market for one training seed."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name], clock = now - clock, now

    data, population = logs.data, logs.population
    rng = np.random.default_rng(seed)
    all_rows, all_ticks = data.decisions()
    batch_size = args.batch_size or (256 if device.type == "cuda" else 64)
    equal = dict(steps=args.learner_steps, batch_size=batch_size, learning_rate=args.learning_rate)

    # 4a. IQL critic and DT on the same logs (agents.offline).
    if not args.gate_only:
        offline = OfflineData(logs.dataset, reward=REWARD, device=str(device))
        critic = OfflineCritic(train_iql(offline, IQLConfig(steps=args.iql_steps, seed=seed), progress=True).critic, offline.action_scale)
        dt = train_dt(offline, DTConfig(context_length=args.context, warmup_fraction=args.warmup_fraction, seed=seed, target_quantile=args.target_quantile, **equal), progress=True)
        lap("iql_dt")

    # 4b. LLM-DT and LBM-Act start from the same Act backbone.
    act_backbone = think.backbone if args.act_backbone == "tiny" else load_backbone(args.act_backbone, layers=args.act_layers, seed=seed, device=device)
    flat_states = data.states[all_rows, all_ticks]
    config = ActConfig(state_dim=flat_states.shape[1], n_ticks=data.n_ticks, context=args.context, embedding_norm=args.act_embedding_norm)

    def trained_act(cot_ids, weights, description):
        act = LBMAct(copy.deepcopy(act_backbone), config, flat_states.mean(0), flat_states.std(0))
        losses = train_act(
            act, data, all_rows, all_ticks, cot_ids, warmup_fraction=args.warmup_fraction, train_token_embeddings=args.act_token_embeddings,
            sample_weights=weights, seed=seed, description=f"{description} {variant}", logger=logger, **equal,
        )
        return act, losses

    if not args.gate_only:
        llm_dt, llm_dt_losses = trained_act(None, None, "LLM-DT")
        lap("llm_dt")

    # 4c. Language-guided decision training (Eq. 5): LBM-Think's CoT for every logged decision
    # (or for act_cot_decisions of them, the teacher's for the rest), conflicting ones discarded
    # (the paper, after sampling more CoTs) or relabelled (ablation).
    statuses = [data.status(int(r), int(t)) for r, t in zip(all_rows, all_ticks)]
    first = [teacher_cot(status) for status in statuses]
    thought = np.arange(len(all_rows)) if not args.act_cot_decisions else np.sort(rng.choice(len(all_rows), min(args.act_cot_decisions, len(all_rows)), replace=False))
    prompts = think.prompt_ids([statuses[k] for k in thought])
    generation_batch = 1024 if device.type == "cuda" else 256
    for k, text in zip(thought, think.think(prompts, batch_size=generation_batch).texts):
        first[k] = text
    anchors = data.anchor_directions(all_rows, all_ticks, args.direction_tolerance)
    weights = direction_weights(anchors) if args.balance_directions else None
    generator = torch.Generator(device=think.backbone.device).manual_seed(seed)
    acts, language = {}, {}
    for rule in (args.conflicting_cots, *args.ablations):
        guided = guided_cots(
            [first[k] for k in thought], anchors[thought], rule, think, prompts, args.cot_samples, args.cot_temperature, generator, generation_batch,
        )
        texts: list[str | None] = list(first)
        if args.act_cot_decisions:  # the teacher's CoTs outside the Think sample follow the same rule
            texts = guided_cots(first, anchors, rule).texts
        for k, text in zip(thought, guided.texts):
            texts[k] = text
        kept = np.array([text is not None for text in texts])
        language[rule] = {"kept_share": float(kept.mean()), "think_kept_share": guided.kept_share, "samples_drawn": guided.samples_drawn, "words": guided.word_shares()}
        ids = [act_backbone.tokenizer.encode(" " + text) if text is not None else [] for text in texts]
        acts[rule] = trained_act(ids, weights, f"LBM-Act {rule}")
        lap(f"lbm_act_{rule}")
    lbm_act, lbm_act_losses = acts[args.conflicting_cots]

    # 5. The forced-direction gate on held-out logged decisions.
    gate_rows, gate_ticks = _sample(np.random.default_rng(args.seed + 31), *logs.heldout.decisions(), args.gate_decisions, first_tick=1)
    gate_texts = think.think(think.prompt_ids([logs.heldout.status(int(r), int(t)) for r, t in zip(gate_rows, gate_ticks)]), batch_size=generation_batch).texts
    units = np.unique(gate_rows)
    gate = {"units": units.tolist(), "changes": {}}
    for rule, (act, _) in acts.items():
        changes = forced_log_changes(act, gate_texts, logs.heldout, gate_rows, gate_ticks)
        gate["changes"][rule] = {label: trajectory_means(changes[label], gate_rows, units).tolist() for label in GATE_ORDER}
        print(f"forced-direction gate ({variant}, seed {seed}, {rule}): {direction_gate({k: [v] for k, v in gate['changes'][rule].items()}).format()}")
    lap("gate")
    probe_rows, probe_ticks = _sample(np.random.default_rng(seed + 99), all_rows, all_ticks, args.probe_decisions, first_tick=1)
    record = {
        "variant": variant,
        "training_seed": seed,
        "backbone": act_backbone_name(args),
        "gate": gate,
        "losses": {"lbm_act": lbm_act_losses},
        "language_guided": {"rule": args.conflicting_cots, "anchor_counts": np.bincount(anchors + 1, minlength=3).tolist(), "rules": language},
        "think": {"pretrained": think_diagnostics(think, data, probe_rows, probe_ticks)},
        "timings_s": timings,
    }
    if args.gate_only:
        return record

    # 4d. GQPO on a copy of LBM-Think.
    think_gqpo = LBMThink(copy.deepcopy(think.backbone), think.max_new_tokens)
    gqpo_rows, gqpo_ticks = _sample(rng, all_rows, all_ticks, args.gqpo_decisions, first_tick=1)
    result = gqpo(
        think_gqpo, lbm_act, critic, data, gqpo_rows, gqpo_ticks, group_size=args.gqpo_group_size,
        epochs=args.gqpo_epochs, learning_rate=args.gqpo_learning_rate, seed=seed, logger=logger,
    )
    lap("gqpo")

    # 6. Evaluation: every method on the same cases (paired market episodes).
    focal_ids = population.ids[np.linspace(0, len(population) - 1, args.eval_advertisers).round().astype(int)]
    cases = [FocalCase(int(a), s, r) for r in args.budget_ratios for a in focal_ids for s in evaluation_seeds(args)]
    base_cases = [c for c in cases if c.budget_ratio == 1.0]
    target = float(np.quantile(data.returns_to_go[:, 0], args.target_quantile))
    policies = {
        "DT": dt,
        "LLM-DT": LBMPolicy(llm_dt, None, target, REWARD),
        "LBM(P)": LBMPolicy(lbm_act, think, target, REWARD),
        "LBM(GQPO)": LBMPolicy(lbm_act, think_gqpo, target, REWARD),
        **{f"LBM(P) {rule}": LBMPolicy(acts[rule][0], think, target, REWARD) for rule in args.ablations},
    }
    others = lambda: named_population("mixed", population.ids)  # noqa: E731
    evaluations = {
        name: evaluate_focal(policy, logs.market, population, others, cases, REWARD, description=f"{name} {variant}").records()
        for name, policy in policies.items()
    }
    for label, direction in (("increase", 1), ("decrease", -1)):
        policy = LBMPolicy(lbm_act, think_gqpo, target, REWARD, instruction=direction)
        evaluations[f"LBM(GQPO)+{label}"] = evaluate_focal(policy, logs.market, population, others, base_cases, REWARD, description=f"{label} {variant}").records()
    lap("evaluation")

    record["losses"].update(llm_dt=llm_dt_losses, gqpo=result.losses)
    record["think"]["gqpo"] = think_diagnostics(think_gqpo, data, probe_rows, probe_ticks)
    return record | {
        "evaluations": evaluations,
        "gqpo": {
            "decisions": int(len(gqpo_rows)),
            "kept_share": result.kept_share,
            "relative_q_mean": float(result.relative_q.mean()),
            "best_relative_q_mean": float(result.relative_q.max(axis=1).mean()),
        },
        "target_return": target,
    }


def act_backbone_name(args: Args) -> str:
    """The gate's key: the Act backbone, with its depth when truncated."""
    return args.act_backbone if args.act_layers is None else f"{args.act_backbone} ({args.act_layers} layers)"


# ------------------------------------------------------------------------------ the run
def unit_path(output: pathlib.Path, variant: str, seed: int) -> pathlib.Path:
    return output / "units" / f"{variant}_seed{seed}.json"


def train_seed(args: Args, output: pathlib.Path, seed: int, device: torch.device, logs: dict[str, MarketLogs] | None = None) -> None:
    """Every market's unit of one training seed not yet in ``output``: LBM-Think pre-training,
    then :func:`train_unit` per market, each unit written atomically when done. ``logs`` are
    made (deterministically from ``args.seed``) when not given."""
    todo = [variant for variant in args.variants if not unit_path(output, variant, seed).exists()]
    if not todo:
        return
    logs = logs or log_markets(args)
    seed_everything(seed)
    with ScalarLogger(output / "tensorboard" / f"seed{seed}" if args.tensorboard else None) as logger:
        started = time.perf_counter()
        think, think_losses = pretrain_think(args, logs, seed, device, logger)
        think_seconds = time.perf_counter() - started
        for variant in todo:
            record = train_unit(args, logs[variant], variant, seed, think, device, logger)
            record["losses"]["think_pretraining"] = think_losses
            record["timings_s"]["think_pretraining"] = think_seconds
            runs.atomic_write_json(unit_path(output, variant, seed), record)


def _train_seed_process(args: Args, output: str, seed: int, device: str) -> None:
    """:func:`train_seed` in a worker process (``--workers``): its own threads, kernels and logs."""
    seed_everything(args.seed, torch_threads=args.torch_threads or None)
    auctionsim.warm_up()
    train_seed(args, pathlib.Path(output), seed, torch.device(device))


def run(args: Args) -> dict:
    """Every (training seed, market) unit not already in ``output_dir`` (``--workers`` seeds at
    once, each in its own process), then the summary."""
    device = resolve_device(args.device)
    ignored = (*runs.DEFAULT_IGNORED, "workers")
    with runs.run_folder(args.output_dir, args, resume=args.resume, extendable={"training_seeds"}, ignored=ignored) as folder:
        output = folder.path
        if not args.resume and (output / "units").exists():
            shutil.rmtree(output / "units")  # a fresh run replaces the folder's results, never mixes with them
        training = [args.seed + i for i in range(args.training_seeds)]
        folder.seeds = {"training": training, "eval": evaluation_seeds(args), "logs": [args.seed + 1000 * i for i in range(len(args.variants))]}
        seed_everything(args.seed, torch_threads=args.torch_threads or None)
        auctionsim.warm_up()
        todo = [seed for seed in training if not all(unit_path(output, variant, seed).exists() for variant in args.variants)]
        if args.workers > 1 and len(todo) > 1:
            context = multiprocessing.get_context("spawn")  # no forked torch/numba state
            with concurrent.futures.ProcessPoolExecutor(min(args.workers, len(todo)), mp_context=context) as pool:
                for future in [pool.submit(_train_seed_process, args, str(output), seed, str(device)) for seed in todo]:
                    future.result()
        else:
            logs = log_markets(args) if todo else None
            for seed in todo:
                train_seed(args, output, seed, device, logs)
        folder.extra["device"] = str(device)
        folder.extra["torch_threads"] = torch.get_num_threads()
        summary = summarise(args.output_dir)
        plot(args.output_dir)
        return summary


# ------------------------------------------------------------------------------ tables
def load_units(output: pathlib.Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((output / "units").glob("*.json"))]


def case_grid(units: list[dict], method: str, key: str, ratio: float = 1.0) -> np.ndarray:
    """``(n_training_seeds, n_eval_seeds, n_advertisers)`` of ``key`` for ``method`` at a budget ratio."""
    grids = []
    for unit in sorted(units, key=lambda u: u["training_seed"]):
        records = [r for r in unit["evaluations"][method] if r["budget_ratio"] == ratio]
        seeds, advertisers = sorted({r["seed"] for r in records}), sorted({r["advertiser"] for r in records})
        cell = {(r["seed"], r["advertiser"]): r[key] for r in records}
        grids.append([[cell[(s, a)] for a in advertisers] for s in seeds])
    return np.array(grids, dtype=np.float64)


def gate_summary(units: list[dict], rule: str) -> dict:
    """The forced-direction gate of one rule's LBM-Act over every trained model (market x training
    seed).

    ``passed``: every model's log changes are ordered increase > keep > decrease with
    non-overlapping 95% intervals over its held-out trajectories (:func:`agents.lbm.gate.direction_gate`);
    ``models`` holds each model's gate. ``decrease``/``keep``/``increase``: the mean over models
    and held-out trajectories, with the interval of :func:`auctionsim.stats.grid_mean` over
    (training seeds x held-out trajectories of every market), which also counts how LBM-Act's
    overall level moves from one training seed to another; ``differences``: the paired
    increase - keep and keep - decrease on the same grid.
    """
    models, grids = {}, {label: [] for label in GATE_ORDER}
    for variant in sorted({u["variant"] for u in units}):
        chosen = sorted((u for u in units if u["variant"] == variant), key=lambda u: u["training_seed"])
        for unit in chosen:
            changes = unit["gate"]["changes"][rule]
            models[f"{variant}/seed{unit['training_seed']}"] = direction_gate({label: [changes[label]] for label in GATE_ORDER}).to_dict()
        for label in GATE_ORDER:
            grids[label].append(np.array([u["gate"]["changes"][rule][label] for u in chosen]))
    pooled = {label: np.concatenate(grids[label], axis=1) for label in GATE_ORDER}
    differences = {f"{high} - {low}": stats.paired_difference(pooled[high], pooled[low]).to_dict() for low, high in zip(GATE_ORDER, GATE_ORDER[1:])}
    return {
        **direction_gate(pooled).to_dict(),
        "passed": all(model["passed"] for model in models.values()),
        "differences": differences,
        "models": models,
    }


def _cells(estimate: dict, digits: int) -> str:
    return f"{estimate['mean']:.{digits}f} [{estimate['low']:.{digits}f}, {estimate['high']:.{digits}f}]"


def _gated(comparisons: list[dict], ranked: bool, names: set[str]) -> list[dict]:
    """Comparisons with the verdicts that involve an LBM method withheld when the gate failed."""
    if ranked:
        return comparisons
    return [c if not ({c["a"], c["b"]} & names) else {**c, "verdict": NOT_RANKED} for c in comparisons]


def summarise(output_dir: str) -> dict:
    """Tables 1/2, 4, 5, Fig. 2 and the gate from the saved units; writes ``summary.json`` (with a
    manifest beside it) and ``tables.md``."""
    output = pathlib.Path(output_dir)
    units = load_units(output)
    if not units:
        raise runs.RunError(f"{output} holds no LBM results (units/*.json); run without --plot-only first")
    backbone = units[0]["backbone"]
    rules = list(units[0]["gate"]["changes"])
    headline = units[0]["language_guided"]["rule"]
    gates = {rule: gate_summary(units, rule) for rule in rules}
    ranked = gates[headline]["passed"]
    evaluated = units[0].get("evaluations", {})  # none in a --gate-only run
    methods = [m for m in evaluated if "+" not in m]
    lbm_methods = {m for m in methods if m.startswith("LBM")} | {m for m in evaluated if "+" in m}
    pairs = [("LLM-DT", "DT"), ("LBM(P)", "LLM-DT"), ("LBM(GQPO)", "LBM(P)"), ("LBM(P)", "DT"), ("LBM(GQPO)", "DT")]
    pairs += [(m, "LBM(P)") for m in methods if m.startswith("LBM(P) ")]
    summary: dict = {
        "forced_direction_gate": {backbone: gates[headline]},
        "forced_direction_gate_rules": {rule: gate for rule, gate in gates.items()},
        "ranked": ranked,
        "conflicting_cots": headline,
        "table2": {}, "table4": {}, "table5": {}, "fig2": {}, "think": {}, "gqpo": {},
    }
    lines = ["# LBM on auctionsim", "", f"Forced-direction gate ({backbone}, held-out logged states, mean log change [95% interval]):", ""]
    for rule, gate in gates.items():
        words = ", ".join(f"{label} {_cells(gate[label], 3)}" for label in GATE_ORDER)
        lines.append(f"- LBM-Act, conflicting CoTs {rule}{' (headline)' if rule == headline else ''}: {'passed' if gate['passed'] else 'FAILED'}: {words}")
        for model, result in gate["models"].items():
            lines.append(f"  - {model}: {'passed' if result['passed'] else 'failed'}: " + ", ".join(f"{label} {_cells(result[label], 3)}" for label in GATE_ORDER))
    if "evaluations" not in units[0]:  # --gate-only
        summary = {key: summary[key] for key in ("forced_direction_gate", "forced_direction_gate_rules", "conflicting_cots")}
        summary["think"] = {variant: [u["think"] for u in units if u["variant"] == variant] for variant in sorted({u["variant"] for u in units})}
        summary["language_guided"] = {f"{u['variant']}_seed{u['training_seed']}": u["language_guided"] for u in units}
    elif not ranked:
        lines += ["", f"**{NOT_RANKED}: the LBM rows below are reported, not ranked.**"]
    for variant in sorted({u["variant"] for u in units if "evaluations" in u}):
        chosen = [u for u in units if u["variant"] == variant]
        first = chosen[0]["evaluations"]
        n_training, n_eval = len(chosen), len({r["seed"] for r in first["DT"]})
        lines += ["", f"## {variant} ({n_training} training x {n_eval} evaluation seeds)", "", "Tables 1/2 (budget ratio 1)", "",
                  "| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        table = {key: stats.summary({m: case_grid(chosen, m, key) for m in methods}, pairs if key in ("score", "conversions") else []) for key in METRICS}
        for key in ("score", "conversions"):
            table[key]["comparisons"] = _gated(table[key]["comparisons"], ranked, lbm_methods)
        summary["table2"][variant] = table
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_cells(table[key]["metrics"][m], 2 if key == "conversions" else 3) for key in METRICS) + " |")
        for key in ("score", "conversions"):
            lines += ["", f"Paired differences, {key} (Holm over the table):"]
            lines += [f"- {c['a']} - {c['b']}: {_cells(c['difference'], 3)}: {c['verdict']}" for c in table[key]["comparisons"]]

        ratios = sorted({r["budget_ratio"] for r in first["DT"]})
        grids = {(m, ratio): case_grid(chosen, m, "conversions", ratio) for m in methods for ratio in ratios}
        versus_dt = stats.compare({f"{m}@{ratio:g}": grids[(m, ratio)] for m in ("LBM(P)", "DT") for ratio in ratios}, [(f"LBM(P)@{r:g}", f"DT@{r:g}") for r in ratios])
        table5 = {
            "metrics": {m: {str(ratio): stats.grid_mean(grids[(m, ratio)]).to_dict() for ratio in ratios} for m in methods},
            "comparisons": _gated([c.to_dict() for c in versus_dt], ranked, {f"LBM(P)@{r:g}" for r in ratios}),
        }
        summary["table5"][variant] = table5
        lines += ["", "Table 5 (conversions by budget ratio; LBM(P) - DT per ratio, Holm over the ratios)", "", "| method | " + " | ".join(f"{r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
        lines += [f"| {m} | " + " | ".join(_cells(table5["metrics"][m][str(ratio)], 2) for ratio in ratios) + " |" for m in methods]
        lines.append("| LBM(P) - DT | " + " | ".join(f"{_cells(c['difference'], 2)}: {c['verdict']}" for c in table5["comparisons"]) + " |")

        labels = {"base": "LBM(GQPO)", "increase": "LBM(GQPO)+increase", "decrease": "LBM(GQPO)+decrease"}
        table4 = {key: stats.summary({label: case_grid(chosen, m, key) for label, m in labels.items()}, [("increase", "base"), ("decrease", "base")]) for key in METRICS}
        for key in METRICS:
            table4[key]["comparisons"] = _gated(table4[key]["comparisons"], ranked, set(labels))
        summary["table4"][variant] = table4
        lines += ["", "Table 4 (LBM(GQPO) with instructions)", "", "| instruction | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        lines += [f"| {label} | " + " | ".join(_cells(table4[key]["metrics"][label], 3) for key in METRICS) + " |" for label in labels]
        lines += ["", "Instruction - base, budget utilisation: " + "; ".join(f"{c['a']} {_cells(c['difference'], 3)} {c['verdict']}" for c in table4["budget_utilisation"]["comparisons"])]

        shares = {m: principled_shares(chosen, m) for m in methods}
        summary["fig2"][variant] = {m: stats.grid_mean(grid).to_dict() for m, grid in shares.items()}
        lines += ["", "Fig. 2 (share of moves against the CPA ratio: down when > 1, up when < 1)", ""]
        lines += [f"- {m}: {_cells(summary['fig2'][variant][m], 3)}" for m in methods]
        summary["think"][variant] = [u["think"] for u in chosen]
        summary["gqpo"][variant] = [u["gqpo"] | {"language_guided": u["language_guided"]} for u in chosen]
        lines += ["", f"LBM-Think (pretrained -> GQPO), per training seed: {[(u['think']['pretrained']['teacher_agreement'], u['think']['gqpo']['teacher_agreement']) for u in chosen]} teacher agreement",
                  f"Language-guided training, per rule: {chosen[0]['language_guided']['rules']}"]
    summary["timings_s"] = {f"{u['variant']}_seed{u['training_seed']}": u["timings_s"] for u in units}
    manifest = runs.read_manifest(output)
    runs.atomic_write_json(output / "summary.json", summary)
    if manifest is not None:
        runs.write_manifest(output / "summary.json", manifest["config"], manifest.get("seeds"))
    runs.atomic_write_text(output / "tables.md", "\n".join(lines) + "\n")
    return summary


def direction_points(records: list[dict]) -> np.ndarray:
    """Fig. 2: ``(K, 2)`` (CPA ratio before the tick, change of the multiplier) over the played
    ticks of the budget-ratio-1 ``records`` (after the first conversion)."""
    points = []
    for record in records:
        if record["budget_ratio"] != 1.0:
            continue
        multipliers = np.array(record["multipliers"])
        spend = np.cumsum(record["tick_spend"])
        conversions = np.cumsum(record["tick_conversions"])
        for tick in range(1, len(multipliers)):
            if multipliers[tick] > 0 and conversions[tick - 1] > 0:
                ratio = spend[tick - 1] / conversions[tick - 1] / record["cpa_target"]
                points.append((ratio, multipliers[tick] - multipliers[tick - 1]))
    return np.array(points).reshape(-1, 2)


def principled_share(points: np.ndarray) -> float:
    """Share of moves in the direction the CPA constraint suggests (Fig. 2's principle)."""
    if len(points) == 0:
        return float("nan")
    right = np.where(points[:, 0] > 1, points[:, 1] < 0, points[:, 1] > 0)
    return float(right.mean())


def principled_shares(units: list[dict], method: str) -> np.ndarray:
    """``(n_training_seeds, n_eval_seeds)`` Fig. 2 shares, each over the cell's focal advertisers
    (0.5, no preference, for a cell without a move)."""
    grid = []
    for unit in sorted(units, key=lambda u: u["training_seed"]):
        records = unit["evaluations"][method]
        share = [principled_share(direction_points([r for r in records if r["seed"] == s])) for s in sorted({r["seed"] for r in records})]
        grid.append([0.5 if np.isnan(value) else value for value in share])
    return np.array(grid)


# ------------------------------------------------------------------------------ plots
def _save(figure, path: pathlib.Path) -> pathlib.Path:
    figure.tight_layout()
    runs.atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=110))
    plt.close(figure)
    return path


def plot(output_dir: str) -> list[pathlib.Path]:
    """Draw Tables 2 and 5, Fig. 2 and the training losses from the saved units (a ``--gate-only``
    run: the gate and the losses)."""
    output = pathlib.Path(output_dir)
    units, summary = load_units(output), json.loads((output / "summary.json").read_text())
    if "evaluations" not in units[0]:
        return [plot_gate(units, summary, output)]
    variants = sorted({u["variant"] for u in units})
    methods = [m for m in units[0]["evaluations"] if "+" not in m]
    paths = []
    figure, axes = plt.subplots(len(variants), len(METRICS), figsize=(4 * len(METRICS), 3.6 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        for column, key in enumerate(METRICS):
            cells = summary["table2"][variant][key]["metrics"]
            means = np.array([cells[m]["mean"] for m in methods])
            errors = np.array([[means[i] - cells[m]["low"], cells[m]["high"] - means[i]] for i, m in enumerate(methods)]).T
            axes[row, column].bar(methods, means, yerr=errors, color="tab:blue", capsize=3)
            axes[row, column].set_title(f"{variant}: {key} (95% CI)")
            axes[row, column].tick_params(axis="x", rotation=25)
    paths.append(_save(figure, output / "table2.png"))

    figure, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4), squeeze=False)
    for column, variant in enumerate(variants):
        for method, values in summary["table5"][variant]["metrics"].items():
            ratios = [float(r) for r in values]
            axes[0, column].errorbar(ratios, [v["mean"] for v in values.values()], yerr=[[v["mean"] - v["low"] for v in values.values()], [v["high"] - v["mean"] for v in values.values()]], marker="o", capsize=3, label=method)
        axes[0, column].set(title=f"Table 5 ({variant})", xlabel="budget ratio", ylabel="conversions")
        axes[0, column].legend()
    paths.append(_save(figure, output / "table5.png"))

    figure, axes = plt.subplots(len(variants), len(methods), figsize=(4 * len(methods), 3.4 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        for column, method in enumerate(methods):
            points = direction_points([r for u in units if u["variant"] == variant for r in u["evaluations"][method]])
            if len(points) > 1000:
                points = points[np.random.default_rng(0).choice(len(points), 1000, replace=False)]
            axis = axes[row, column]
            axis.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5)
            axis.axvline(1.0, color="grey", lw=0.8)
            axis.axhline(0.0, color="grey", lw=0.8)
            axis.set(title=f"{method} ({variant}): {principled_share(points):.2f}", xlabel="CPA ratio", ylabel="change of multiplier", xlim=(0, 2.5))
    paths.append(_save(figure, output / "fig2.png"))
    paths.append(plot_gate(units, summary, output))
    return paths


def plot_gate(units: list[dict], summary: dict, output: pathlib.Path) -> pathlib.Path:
    """The gate's mean log changes per rule and the LBM-Act (and LLM-DT) training losses."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
    gate = summary["forced_direction_gate_rules"]
    for index, (rule, values) in enumerate(gate.items()):
        means = [values[label]["mean"] for label in GATE_ORDER]
        errors = [[values[label]["mean"] - values[label]["low"] for label in GATE_ORDER], [values[label]["high"] - values[label]["mean"] for label in GATE_ORDER]]
        axes[0, 0].errorbar(np.arange(3) + 0.1 * index, means, yerr=errors, marker="o", capsize=4, label=f"{rule}: {'passed' if values['passed'] else 'failed'}")
    axes[0, 0].set(title="forced-direction gate (held-out logged states)", xticks=range(3), xticklabels=GATE_ORDER, ylabel="mean log change of the multiplier")
    axes[0, 0].legend()
    for unit in units:
        for name in ("llm_dt", "lbm_act"):
            if name not in unit["losses"]:
                continue
            losses = np.array(unit["losses"][name])
            smooth = np.convolve(losses, np.ones(20) / 20, mode="valid") if len(losses) >= 20 else losses
            axes[0, 1].plot(smooth, label=f"{name} ({unit['variant']}, seed {unit['training_seed']})")
    axes[0, 1].set(title="Fig. 3: training loss", xlabel="step", ylabel="squared error", yscale="log")
    axes[0, 1].legend(fontsize=7)
    return _save(figure, output / "gate_and_losses.png")


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.lbm [--quick | --smollm2] ...`` (``auctionsim lbm ...``)."""
    args = parse_args(argv)
    if args.plot_only:
        summarise(args.output_dir)
        paths = plot(args.output_dir)
    else:
        run(args)
        paths = sorted(pathlib.Path(args.output_dir).glob("*.png"))
    for path in paths:
        print(f"saved {path}")
    print((pathlib.Path(args.output_dir) / "tables.md").read_text())


if __name__ == "__main__":
    main()
