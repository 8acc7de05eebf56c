"""LBM (hierarchical LLM bidder) against DT and LLM-DT on our market: the paper's Tables 1, 2, 4, 5
and Fig. 2, dense and sparse.

Steps, top to bottom in :func:`run` (paper section in brackets):

1. Markets. ``sparse``: the AuctionNet preset (CPA targets 60-130, like AuctionNet-sparse);
   ``dense``: pValues x 10 and CPA targets / 10 (like AuctionNet's dense data, CPA 6-12), so
   values and prices are unchanged and conversions are ten times as many. Budgets scale with
   ``impressions_per_episode / 500,000`` so they bind as in the preset.
2. Logs: every advertiser of the ``mixed`` baseline population (fixed, PID, CPA pacing,
   OnlineLP) with log-normal exploration noise, reward = expected conversions (the paper's
   ``sum o_i v_i``) [A.1]; the policies' intended (pre-noise) multipliers are recorded too
   (:class:`agents.lbm.IntentRecorder`) for Eq. 5's anchor direction.
3. Per training seed: LBM-Think "pretrained" on the rule-based teacher's CoTs of both markets
   (the tiny backbone learns the language from them; a pretrained backbone is warmed up) [3.1].
4. Per market: the IQL critic (Eqs. 8-9) and the DT baseline (agents.offline, same data, same
   context length); LLM-DT = LBM-Act without CoT; LBM-Act by language-guided decision training
   (Eq. 5) on a LBM-Think CoT for every logged decision, a CoT whose direction conflicts with
   the data's being relabelled (default) or discarded (paper) [3.2]; GQPO (Eqs. 12-14)
   fine-tunes a copy of LBM-Think [3.3].
5. Evaluation in the single-bidder env against the ``mixed`` population (no noise): focal
   advertisers x evaluation seeds x budget ratios 0.5-1.5 (Table 5) for every method, plus
   LBM(GQPO) with forced increase/decrease instructions (Table 4); Fig. 2 from the played
   multipliers and the CPA ratio before each tick.

Results (raw per-case JSON, summary tables, plots) go to ``results/lbm/``. ``--quick`` runs
the tiny backbone at reduced sizes (one training seed; the +- is then over evaluation seeds).
``--smollm2`` runs the pretrained SmolLM2-135M for Think and Act at sizes that finish in ~22 min
on one core (:data:`SMOLLM2`; backbones in agents.lbm.backbones). GPU when present.

Run: ``python -m experiments.lbm --quick`` or ``auctionsim lbm --quick`` (plots:
``--plot-only``).

Where we depart from Eq. 5, and why (measured on the dense market at the former quick sizes:
Think 150 steps, LBM-Act 250 steps, tiny backbone). The paper
disregards a CoT whose direction conflicts with the data's anchor ``sign(a_t - a_{t-1})``.
Done literally on our logs, LBM bid almost nothing (score 0.2 vs DT 32) because LBM-Act learnt
"a CoT is present => bid ~35% lower" and ignored what the CoT said: forcing the CoT to
decrease / keep / increase gave the same mean log change (-0.22, -0.20, -0.22) against the
logged previous multiplier (no CoT: +0.07), while every test decision carries a CoT. Two
causes: (a) with exploration noise the played direction is mostly the noise's sign, so a kept
CoT marked a noise drop (kept "decrease" decisions: -0.36 mean log change); anchoring on the
logging policy's intended multipliers fixes this part; (b) LBM-Think says "decrease" far more
often than the data moves down, so even with intended anchors and a CoT for every decision the
kept CoTs are mostly drops (1,522 decrease, 942 keep, 17 increase kept of 12,424, Think after
150 steps), and the same presence shift remained (-0.22 / -0.20 / -0.22). Relabelling a conflicting CoT's decision with
the data's direction (``--conflicting-cots relabel``, the default) gives every training
decision a CoT that agrees with its action, as at test time: no presence shift (LBM-Act with
LBM-Think's CoT: |log error| 0.33 against the logged multipliers, as LLM-DT's 0.32) and the
decision word is read (forced increase +0.18 vs keep/decrease +0.10). ``act`` in each run
record repeats this diagnostic.

Measured ``--quick`` (dense and sparse, tiny backbone, 1 torch thread pinned to one core of the
2-core machine, the other core busy): 8 min 47 s wall, 524 s CPU (Think pre-training 49 s; per
market: IQL + DT ~99 s, LLM-DT + CoT generation for every decision + LBM-Act ~72 s, GQPO ~7 s,
evaluation ~54 s; an earlier run on a more loaded machine took 11 min 20 s).
Score at budget ratio 1 (mean +- std over 2 evaluation seeds x 4 focal advertisers):
dense DT 31.8 +- 1.1, LLM-DT 32.6 +- 1.2, LBM(P) 29.7 +- 0.5, LBM(GQPO) 31.7 +- 0.3;
sparse DT 2.56 +- 0.15, LLM-DT 2.81 +- 0.30, LBM(P) 2.75 +- 0.06, LBM(GQPO) 2.78 +- 0.05.
GQPO improves on LBM(P) in both markets, as in the paper, but LBM does not beat LLM-DT at these
sizes, and instructions are followed on logged states (forced increase +0.05 / +0.13 log change,
decrease ~0) but not in closed loop (Table 4: a forced increase lowers budget utilisation).
LBM-Think is the weak part: after 300 steps it agrees with the teacher on 44% of states and
misstates the CPA ratio by 0.21 (median). More pre-training does not fix the decision: a tiny
Think trained on 2,400 dense teacher pairs (lr 2e-3) agrees with the teacher on 47 / 60 / 50 /
50% of 200 logged states after 300 / 600 / 900 / 1,200 steps while its CPA-ratio error falls
0.39 / 0.17 / 0.16 / 0.15, so ``--quick`` keeps 300. The paper's rule as first implemented (played-action
anchor, CoTs on 2,500 decisions, conflicting ones discarded) scored LBM(P) 0.2 and LBM(GQPO)
2.2 on dense (the collapse above); ``--quick --variants dense --conflicting-cots discard`` (the
paper's rule with the intended anchor and a CoT for every decision; 7 min 48 s) still bids too
little: LBM(P) 6.5 +- 3.2, LBM(GQPO) 15.8 +- 4.1 (budget utilisation 0.15 / 0.35), with LBM-Act
ignoring the CoT's word (forced decrease / keep / increase: -0.03 / -0.03 / -0.02).

SmolLM2 as LBM-Act's backbone: why it ignored the CoT, and the fix (dense market, quick logs,
teacher CoTs relabelled to the anchor direction, 2 layers, batch 32, lr 3e-4; forced log change
decrease / keep / increase on 300 logged decisions, where the data moves -0.36 / -0.01 / +0.11).
The decision embedding's fresh MLPs emitted items of norm ~24 while SmolLM2's token embeddings
have norm ~3 (entry RMS 0.136): the hidden state at ``s_t``, which the action head reads, stayed
its own numeric embedding, and after 120 steps every word gave the same +0.048 / +0.047 /
+0.048. Ending each item in a LayerNorm whose gain starts at the token embeddings' RMS
(:class:`agents.lbm.DecisionEmbedding`, as DT's ``embed_ln``) lets the CoT through: +0.037 /
+0.050 / +0.071 after 120 steps. Not the fix: a 10x smaller step for the pretrained layers than
for the new modules (+0.114 / +0.112 / +0.114), or a frozen token table (+0.356 / +0.359 /
+0.355 with balanced directions): the attention and the word embeddings must move for the
action to depend on the word. Balanced directions (``--balance-directions``), 3e-4, training
everything: +0.131 / +0.141 / +0.145 after 100 steps, +0.078 / +0.110 / +0.115 after 200 (the
decrease gap grows with training but stays far below the data's; a SmolLM2 LBM-Act step costs
~1.6 s at batch 32 on one core, and the paper trains 400,000 steps).

On the tiny backbone the same two changes (``--act-embedding-norm --balance-directions``) made
instructions work in closed loop (dense Table 4: forced increase 24.6, base 21.7, forced
decrease 12.8; logged-state diagnostic -0.080 / -0.079 / +0.057) but cost score at quick sizes
(dense LLM-DT 26.6, LBM(P) 18.2, LBM(GQPO) 21.7, DT 31.8; budget utilisation 0.63 / 0.43 /
0.53), so ``--quick`` leaves both off (the LLM-DT drop is the LayerNorm's: balancing does not touch
LLM-DT, and with both off the quick run reproduces its earlier figures exactly).

The SmolLM2 run (``python -m experiments.lbm --smollm2``, i.e. :data:`SMOLLM2`: Think and Act on
SmolLM2-135M truncated to 4 and 2 layers, dense market only, quick logs, 20 Think pre-training
steps, 150 LLM-DT / LBM-Act steps, Think CoTs for 200 logged decisions and the teacher's for the
rest, GQPO on 60 decisions with a 3e-5 step, 2 focal advertisers x 1 seed x budget ratios
0.5/1/1.5; one torch thread pinned to one core): 20 min 57 s wall = 1252 s CPU (Think
pre-training 279 s at ~14 s per step of 32 prompts, IQL + DT 103 s, LLM-DT + 200 CoTs + LBM-Act
419 s at ~2 s per step, GQPO 55 s, evaluation 361 s at ~1.6-2.2 s per tick with generation).
Score at budget ratio 1 (one seed, so no +-): DT 38.5, LLM-DT 22.6, LBM(P) 10.2, LBM(GQPO) 10.1
(budget utilisation 1.00 / 0.43 / 0.16 / 0.16); Table 5 conversions at ratios 0.5 / 1 / 1.5:
DT 21.1 / 39.9 / 52.3, LLM-DT 20.1 / 22.6 / 23.9, LBM(P) 8.5 / 10.2 / 11.9, LBM(GQPO) 8.3 /
10.1 / 11.7. Table 4: forced increase / decrease move conversions 10.1 -> 10.7 / 10.2, barely.
Forced-direction diagnostic: -0.069 / -0.070 / -0.058. So against the paper's ordering DT <
LLM-DT < LBM(P) < LBM(GQPO) ours is the reverse: at 150 steps the SmolLM2 LLM-DT underbids (it
has not caught up with DT's 600 steps on the same data), and LBM underbids more, as its Think
says "decrease" on 63% of states (teacher agreement 55%, CPA-ratio error 0.16, better than the
tiny Think's after 300 steps) and LBM-Act barely reads the word. GQPO does improve the Think
(teacher agreement 55% -> 63%, "decrease" on 58% of states) but, with an Act that barely reads
the CoT, not the score. At the tiny model's GQPO step (3e-4, the first documented run: 21 min
42 s, LBM(GQPO) 11.0) GQPO wrecked the pretrained Think (afterwards "increase" on every state,
garbled CPA ratios), hence the 3e-5 step in :data:`SMOLLM2`. What it would take: many more
LLM-DT/LBM-Act steps (a GPU).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
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
from agents.lbm.gqpo import OfflineCritic  # noqa: E402
from agents.lbm.prompts import force_direction, parse_cpa_ratio, parse_direction, teacher_cot, teacher_direction, with_direction  # noqa: E402
from agents.offline.data import OfflineData  # noqa: E402
from agents.offline.dt import DTConfig, train_dt  # noqa: E402
from agents.offline.iql import IQLConfig, train_iql  # noqa: E402
from agents.populations import named_population  # noqa: E402
from auctionsim import presets  # noqa: E402
from auctionsim.config import MarketConfig, Population  # noqa: E402
from auctionsim.envs import AuctionParallelEnv  # noqa: E402
from auctionsim.market import Market  # noqa: E402
from experiments import args as arguments  # noqa: E402

REWARD = "expected_conversions"
METHODS = ("DT", "LLM-DT", "LBM(P)", "LBM(GQPO)")


QUICK = dict(
    impressions_per_episode=50_000, train_episodes=6, training_seeds=1, context=5, think_samples=2400,
    think_epochs=4.0, act_steps=250, gqpo_decisions=300, gqpo_epochs=2.0,
    iql_steps=2000, dt_steps=600, eval_advertisers=4, eval_seeds=2, torch_threads=1,
    act_embedding_norm=False, balance_directions=False,
)
"""The sizes ``--quick`` gives the fields left at their defaults (the ``*`` fields of :class:`Args`)."""

SMOLLM2 = dict(
    QUICK, output_dir="results/lbm-smollm2", variants=("dense",), think_backbone="smollm2", think_layers=4,
    act_backbone="smollm2", act_layers=2, think_samples=320, think_epochs=2.0, think_learning_rate=3e-4,
    act_steps=150, act_cot_decisions=200, gqpo_decisions=60, eval_advertisers=2, eval_seeds=1,
    budget_ratios=(0.5, 1.0, 1.5), probe_decisions=60, act_embedding_norm=True, balance_directions=True,
    gqpo_learning_rate=3e-5,
)
"""The sizes ``--smollm2`` gives the fields left at their defaults: the documented SmolLM2 run
(Think and Act on the pretrained SmolLM2-135M, truncated to 4 and 2 layers; dense market only;
about 22 minutes on one core, see the module docstring)."""


@dataclass
class Args:
    """Arguments of the LBM experiment (``--quick`` replaces the sizes marked *)."""

    quick: bool = False
    """tiny backbone, reduced sizes, one training seed: under 15 minutes on 2 cores"""
    smollm2: bool = False
    """the documented SmolLM2 run (:data:`SMOLLM2` sizes, implies --quick's for the rest)"""
    output_dir: str = "results/lbm"
    """where raw results, tables and plots are written"""
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
    """* market size (the preset has 500,000); budgets scale with it"""
    train_episodes: int = 16
    """* logged episodes per market (x 48 advertisers = trajectories)"""
    action_noise: float = 0.3
    """log-normal exploration noise of the logging population"""
    training_seeds: int = 3
    """* independent training runs (mean +- std over them)"""
    context: int = 10
    """* L, ticks of numeric history of LBM-Act, LLM-DT and DT (paper: 10)"""
    think_samples: int = 6000
    """* teacher (prompt, CoT) pairs for LBM-Think pre-training / warm-up"""
    think_epochs: float = 3.0
    """* epochs over them"""
    think_learning_rate: float = 2e-3
    """LBM-Think pre-training step size (tiny from scratch; use ~5e-5 for pretrained backbones)"""
    act_steps: int = 1500
    """* gradient steps of LBM-Act and of LLM-DT (batch 64)"""
    act_learning_rate: float = 3e-4
    """LBM-Act / LLM-DT step size (paper: 1e-5 for 400,000 steps)"""
    act_cot_decisions: int = 0
    """logged decisions given a LBM-Think CoT for language-guided training (0: every decision,
    as the paper); the others get the rule-based teacher's CoT that LBM-Think imitates, so every
    training decision carries a CoT, as at test time (a pretrained Think on one CPU core writes
    ~10 CoTs/s, too few for every logged decision)"""
    act_embedding_norm: bool = True
    """* LayerNorm LBM-Act/LLM-DT's numeric items to the token embeddings' scale (a pretrained
    backbone reads the CoT only with it; see the module docstring; off in --quick)"""
    act_token_embeddings: bool = True
    """train the token-embedding table in LBM-Act/LLM-DT (--no-act-token-embeddings keeps a
    pretrained backbone's word embeddings and makes a SmolLM2 step ~1.7x faster, but then
    LBM-Act did not learn to read the CoT in our short runs)"""
    balance_directions: bool = True
    """* LBM-Act draws decisions of each anchor direction (decrease/keep/increase) equally often:
    most logged decisions keep the bid, and only the others show what the decision word means"""
    probe_decisions: int = 200
    """logged decisions of the LBM-Think/LBM-Act diagnostics (teacher agreement, forced
    directions)"""
    conflicting_cots: str = "relabel"
    """CoTs whose direction conflicts with the data's (Eq. 5): "discard" them (the paper; the
    decision is learnt from the numbers alone) or "relabel" their decision with the data's
    direction (ours; see the module docstring for why)"""
    direction_tolerance: float = 0.02
    """relative change of the intended multiplier below which its direction is "keep" """
    gqpo_decisions: int = 2000
    """* logged decisions per GQPO round (paper: 2,000)"""
    gqpo_group_size: int = 3
    """N, CoTs sampled per decision (paper: 3)"""
    gqpo_epochs: float = 3.0
    """* fine-tuning epochs on the selected CoTs (paper: 5)"""
    gqpo_learning_rate: float = 3e-4
    """GQPO fine-tuning step size (paper: 1e-6 on a 3B model)"""
    iql_steps: int = 20_000
    """* IQL critic gradient steps (paper Table 9: 400,000)"""
    dt_steps: int = 5_000
    """* DT gradient steps"""
    eval_advertisers: int = 16
    """* focal advertisers evaluated (spread over the 48)"""
    eval_seeds: int = 3
    """* evaluation episodes per focal advertiser and budget ratio"""
    budget_ratios: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    """Table 5: the focal advertiser's budget x ratio"""
    target_quantile: float = 0.9
    """initial return-to-go = this quantile of the logged returns (DT and LBM)"""
    seed: int = 0
    """base seed (logs, training, evaluation)"""
    torch_threads: int = 0
    """* torch CPU threads (0: torch's default). Small models run fastest on 1, and a loaded
    machine slows multi-threaded torch down many times (measured here: 10x)"""
    plot_only: bool = False
    """redraw tables and plots from saved results"""

    def __post_init__(self) -> None:
        unknown = set(self.variants) - {"dense", "sparse"}
        if unknown:
            raise ValueError(f"variants must be dense and/or sparse, got {sorted(unknown)}")
        if self.conflicting_cots not in ("discard", "relabel"):
            raise ValueError(f"conflicting_cots must be 'discard' or 'relabel', got {self.conflicting_cots!r}")
        if self.probe_decisions < 1:
            raise ValueError(f"probe_decisions must be >= 1, got {self.probe_decisions}")
        if self.act_cot_decisions < 0:
            raise ValueError(f"act_cot_decisions must be >= 0 (0: every decision), got {self.act_cot_decisions}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0, got {self.torch_threads}")
        if min(self.budget_ratios) <= 0 or 1.0 not in self.budget_ratios:
            raise ValueError(f"budget_ratios must be > 0 and include 1.0, got {self.budget_ratios}")


# ------------------------------------------------------------------------------ setup
def build_market(variant: str, impressions: int) -> tuple[MarketConfig, Population]:
    """The sparse (AuctionNet preset) or dense market at ``impressions`` per episode."""
    scenario = presets.get("auctionnet", impressions_per_episode=impressions)
    population = dataclasses.replace(scenario.population, budgets=scenario.population.budgets * impressions / 500_000)
    market = scenario.market
    if variant == "dense":
        market = dataclasses.replace(market, traffic=dataclasses.replace(market.traffic, pvalue_base_mean=market.traffic.pvalue_base_mean * 10))
        population = dataclasses.replace(population, cpa_targets=population.cpa_targets / 10)
    return market, population


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sample(rng: np.random.Generator, rows: np.ndarray, ticks: np.ndarray, size: int, first_tick: int = 0):
    eligible = np.flatnonzero(ticks >= first_tick)
    chosen = rng.choice(eligible, size=min(size, eligible.size), replace=False)
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


def act_diagnostics(lbm_act: LBMAct, llm_dt: LBMAct, think: LBMThink, trajectories: Trajectories, rows, ticks) -> dict:
    """Does LBM-Act read the CoT? On logged decisions: the mean log change of its multiplier
    against the logged previous one when LBM-Think's CoT is forced to decrease / keep /
    increase (instruction following should order them), and its mean absolute log error
    against the logged multiplier with LBM-Think's CoT, without a CoT, and LLM-DT's."""
    window = trajectories.window(rows, ticks, lbm_act.config.context)
    logged = np.maximum(trajectories.actions[rows, ticks], 1e-3)
    previous = np.maximum(trajectories.actions[rows, np.maximum(ticks - 1, 0)], 1e-3)
    texts = think.think(think.prompt_ids([trajectories.status(int(r), int(t)) for r, t in zip(rows, ticks)])).texts
    encode = lambda cots: [lbm_act.backbone.tokenizer.encode(" " + cot) for cot in cots]  # noqa: E731
    log_change = {
        label: float(np.mean(np.log(lbm_act.act(encode([force_direction(t, direction) for t in texts]), window) / previous)))
        for label, direction in (("decrease", -1), ("keep", 0), ("increase", 1))
    }
    error = lambda multipliers: float(np.mean(np.abs(np.log(multipliers / logged))))  # noqa: E731
    return {
        "forced_log_change": log_change,
        "abs_log_error": {
            "lbm_act_with_cot": error(lbm_act.act(encode(texts), window)),
            "lbm_act_without_cot": error(lbm_act.act([[]] * len(rows), window)),
            "llm_dt": error(llm_dt.act([[]] * len(rows), window)),
        },
    }


# ------------------------------------------------------------------------------ the run
def run(args: Args) -> dict:
    output = pathlib.Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    auctionsim.warm_up()
    seed_everything(args.seed)

    # 1-2. Markets and logs.
    markets, datasets, trajectories = {}, {}, {}
    for index, variant in enumerate(args.variants):
        market, population = build_market(variant, args.impressions_per_episode)
        env = AuctionParallelEnv(Market(market, population), reward=REWARD)
        logger = IntentRecorder(named_population("mixed", population.ids))
        datasets[variant] = collect_dataset(
            env, logger, args.train_episodes, seed=args.seed + 1000 * index,
            action_noise=args.action_noise, description=f"lbm {variant}: mixed population",
        )
        markets[variant] = (market, population)
        trajectories[variant] = Trajectories.from_dataset(datasets[variant], logger.intended_actions)
    timings = {"logs": time.perf_counter() - started}

    all_runs = []
    for training_seed in range(args.training_seeds):
        seed = args.seed + training_seed
        seed_everything(seed)
        rng = np.random.default_rng(seed)
        run_started = time.perf_counter()

        # 3. LBM-Think "pretrained": teacher CoTs of both markets.
        think_backbone = load_backbone(args.think_backbone, layers=args.think_layers, seed=seed)
        think_pretrained = LBMThink(think_backbone)
        statuses, cots = [], []
        for variant in args.variants:
            rows, ticks = _sample(rng, *trajectories[variant].decisions(), args.think_samples // len(args.variants))
            batch = [trajectories[variant].status(int(r), int(t)) for r, t in zip(rows, ticks)]
            statuses += batch
            cots += [teacher_cot(s) for s in batch]
        think_losses = think_pretrained.fine_tune(
            think_pretrained.prompt_ids(statuses), cots, epochs=args.think_epochs, learning_rate=args.think_learning_rate,
            seed=seed, description=f"LBM-Think pre-training (seed {seed})",
        )
        timings_seed = {"think_pretraining": time.perf_counter() - run_started}

        for variant in args.variants:
            market, population = markets[variant]
            data = trajectories[variant]
            all_rows, all_ticks = data.decisions()
            variant_started = time.perf_counter()

            # 4a. IQL critic and DT on the same logs (agents.offline).
            offline = OfflineData(datasets[variant], reward=REWARD)
            critic = OfflineCritic(train_iql(offline, IQLConfig(steps=args.iql_steps, seed=seed), progress=True).critic, offline.action_scale)
            dt = train_dt(offline, DTConfig(context_length=args.context, steps=args.dt_steps, seed=seed, target_quantile=args.target_quantile), progress=True)
            timings_seed[f"{variant}_iql_dt"] = time.perf_counter() - variant_started

            # 4b. LLM-DT and LBM-Act share the Act backbone's initial weights.
            if args.act_backbone == "tiny":
                act_backbone = think_pretrained.backbone  # "a smaller LLM": here the same tiny one
            else:
                act_backbone = load_backbone(args.act_backbone, layers=args.act_layers, seed=seed)
            flat_states = data.states[all_rows, all_ticks]
            config = ActConfig(state_dim=flat_states.shape[1], n_ticks=data.n_ticks, context=args.context, embedding_norm=args.act_embedding_norm)
            make_act = lambda: LBMAct(copy.deepcopy(act_backbone), config, flat_states.mean(0), flat_states.std(0))  # noqa: E731
            step_started = time.perf_counter()
            llm_dt = make_act()
            llm_dt_losses = train_act(
                llm_dt, data, all_rows, all_ticks, None, args.act_steps, learning_rate=args.act_learning_rate,
                train_token_embeddings=args.act_token_embeddings, seed=seed, description=f"LLM-DT {variant}",
            )

            # 4c. Language-guided decision training (Eq. 5): a CoT for every logged decision
            # (LBM-Think's, or on a pretrained Think with act_cot_decisions > 0 LBM-Think's on a
            # sample and the teacher's it imitates on the others); one whose direction
            # conflicts with the data's anchor direction is discarded (paper) or relabelled.
            cot_texts = [teacher_cot(data.status(int(r), int(t))) for r, t in zip(all_rows, all_ticks)]
            thought = np.arange(len(all_rows)) if not args.act_cot_decisions else rng.choice(len(all_rows), min(args.act_cot_decisions, len(all_rows)), replace=False)
            thought_statuses = [data.status(int(all_rows[k]), int(all_ticks[k])) for k in thought]
            for k, text in zip(thought, think_pretrained.think(think_pretrained.prompt_ids(thought_statuses)).texts):
                cot_texts[k] = text
            anchors = data.anchor_directions(all_rows, all_ticks, args.direction_tolerance)
            accepted = (np.array([parse_direction(text) for text in cot_texts], dtype=object) == anchors).astype(bool)
            if args.conflicting_cots == "relabel":
                cot_texts = [text if ok else with_direction(text, int(anchor)) for text, ok, anchor in zip(cot_texts, accepted, anchors)]
            tokenizer = act_backbone.tokenizer
            cot_ids = [tokenizer.encode(" " + text) if ok or args.conflicting_cots == "relabel" else [] for text, ok in zip(cot_texts, accepted)]
            # Each anchor direction drawn equally often: "keep" is most decisions, and only
            # the others tell LBM-Act what the decision word means.
            counts = np.bincount(anchors + 1, minlength=3)
            weights = 1.0 / counts[anchors + 1] if args.balance_directions else None
            lbm_act = make_act()
            lbm_act_losses = train_act(
                lbm_act, data, all_rows, all_ticks, cot_ids, args.act_steps, learning_rate=args.act_learning_rate,
                train_token_embeddings=args.act_token_embeddings, sample_weights=weights, seed=seed, description=f"LBM-Act {variant}",
            )
            timings_seed[f"{variant}_act"] = time.perf_counter() - step_started

            # 4d. GQPO on a copy of LBM-Think.
            step_started = time.perf_counter()
            think_gqpo = LBMThink(copy.deepcopy(think_pretrained.backbone), think_pretrained.max_new_tokens)
            gqpo_rows, gqpo_ticks = _sample(rng, all_rows, all_ticks, args.gqpo_decisions, first_tick=1)
            result = gqpo(
                think_gqpo, lbm_act, critic, data, gqpo_rows, gqpo_ticks, group_size=args.gqpo_group_size,
                epochs=args.gqpo_epochs, learning_rate=args.gqpo_learning_rate, seed=seed,
            )
            timings_seed[f"{variant}_gqpo"] = time.perf_counter() - step_started
            probe_rows, probe_ticks = _sample(np.random.default_rng(seed + 99), all_rows, all_ticks, args.probe_decisions, first_tick=1)

            # 5. Evaluation: every method on the same cases (paired market episodes).
            step_started = time.perf_counter()
            focal_ids = population.ids[np.linspace(0, len(population) - 1, args.eval_advertisers).round().astype(int)]
            eval_seeds = [10_000 + 100 * seed + k for k in range(args.eval_seeds)]
            cases = [FocalCase(int(a), s, r) for r in args.budget_ratios for a in focal_ids for s in eval_seeds]
            base_cases = [c for c in cases if c.budget_ratio == 1.0]
            target = float(np.quantile(data.returns_to_go[:, 0], args.target_quantile))
            policies = {
                "DT": dt,
                "LLM-DT": LBMPolicy(llm_dt, None, target, REWARD),
                "LBM(P)": LBMPolicy(lbm_act, think_pretrained, target, REWARD),
                "LBM(GQPO)": LBMPolicy(lbm_act, think_gqpo, target, REWARD),
            }
            others = lambda: named_population("mixed", population.ids)  # noqa: E731
            evaluations = {
                name: evaluate_focal(policy, market, population, others, cases, REWARD, description=f"{name} {variant}").records()
                for name, policy in policies.items()
            }
            for label, direction in (("increase", 1), ("decrease", -1)):
                policy = LBMPolicy(lbm_act, think_gqpo, target, REWARD, instruction=direction)
                evaluations[f"LBM(GQPO)+{label}"] = evaluate_focal(policy, market, population, others, base_cases, REWARD, description=f"{label} {variant}").records()
            timings_seed[f"{variant}_evaluation"] = time.perf_counter() - step_started

            record = {
                "variant": variant,
                "training_seed": seed,
                "evaluations": evaluations,
                "losses": {"think_pretraining": think_losses, "llm_dt": llm_dt_losses, "lbm_act": lbm_act_losses, "gqpo": result.losses},
                "language_guided": {
                    "think_cot_decisions": int(len(thought)), "accepted_share": float(accepted.mean()),
                    "anchor_counts": counts.tolist(), "conflicting_cots": args.conflicting_cots, "balance_directions": args.balance_directions,
                },
                "act": act_diagnostics(lbm_act, llm_dt, think_pretrained, data, probe_rows, probe_ticks),
                "gqpo": {
                    "decisions": int(len(gqpo_rows)),
                    "kept_share": result.kept_share,
                    "relative_q_mean": float(result.relative_q.mean()),
                    "best_relative_q_mean": float(result.relative_q.max(axis=1).mean()),
                },
                "think": {
                    "pretrained": think_diagnostics(think_pretrained, data, probe_rows, probe_ticks),
                    "gqpo": think_diagnostics(think_gqpo, data, probe_rows, probe_ticks),
                },
                "target_return": target,
            }
            all_runs.append(record)
            (output / f"run_{variant}_seed{seed}.json").write_text(json.dumps(record))
        timings[f"seed{seed}"] = {**timings_seed, "total": time.perf_counter() - run_started}

    timings["total"] = time.perf_counter() - started
    meta = {
        "args": dataclasses.asdict(args),
        "timings_s": timings,
        # CPU seconds of this process: with torch on one thread, the wall time less the time
        # spent waiting for a shared machine's cores (or paused)
        "process_cpu_s": time.process_time(),
        "device": str(think_backbone.device),
        "torch_threads": torch.get_num_threads(),
        "auctionsim_version": auctionsim.__version__,
    }
    (output / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


# ------------------------------------------------------------------------------ tables and plots
def _load_runs(output: pathlib.Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(output.glob("run_*.json"))]


def _case_means(records: list[dict], key: str, ratio: float = 1.0) -> float:
    values = [r[key] for r in records if r["budget_ratio"] == ratio]
    return float(np.mean(values))


def _mean_std(runs: list[dict], variant: str, method: str, key: str, ratio: float = 1.0) -> tuple[float, float]:
    """Mean +- std over training seeds, or over evaluation seeds when there is one training seed."""
    chosen = [run for run in runs if run["variant"] == variant and method in run["evaluations"]]
    if len(chosen) > 1:
        values = [_case_means(run["evaluations"][method], key, ratio) for run in chosen]
    else:
        records = [r for r in chosen[0]["evaluations"][method] if r["budget_ratio"] == ratio]
        values = [np.mean([r[key] for r in records if r["seed"] == s]) for s in sorted({r["seed"] for r in records})]
    return float(np.mean(values)), float(np.std(values))


def summarise(output_dir: str) -> dict:
    """Tables 1/2, 4, 5 and Fig. 2's numbers from the saved runs; writes ``summary.json`` and
    ``tables.md``."""
    output = pathlib.Path(output_dir)
    runs = _load_runs(output)
    variants = sorted({run["variant"] for run in runs})
    keys = ("budget_utilisation", "cpa_ratio", "conversions", "score")
    summary: dict = {"table2": {}, "table5": {}, "table4": {}, "fig2": {}, "think": {}, "gqpo": {}}
    lines = ["# LBM on auctionsim", ""]
    for variant in variants:
        variant_runs = [run for run in runs if run["variant"] == variant]
        lines += [f"## {variant}", "", "| method | budget utilisation | CPA ratio | conversions | score |", "|---|---|---|---|---|"]
        for method in METHODS:
            cells = {key: _mean_std(runs, variant, method, key) for key in keys}
            summary["table2"].setdefault(variant, {})[method] = cells
            lines.append(f"| {method} | " + " | ".join(f"{m:.3f} +- {s:.3f}" if key != "conversions" else f"{m:.2f} +- {s:.2f}" for key, (m, s) in cells.items()) + " |")
        ours = sorted(METHODS, key=lambda method: summary["table2"][variant][method]["score"][0])
        summary.setdefault("ordering", {})[variant] = ours
        lines += ["", f"Ordering by score (paper, Tables 1-2: {' < '.join(METHODS)}); ours: {' < '.join(ours)}"]
        ratios = sorted({r["budget_ratio"] for r in variant_runs[0]["evaluations"]["DT"]})
        lines += ["", "Table 5 (conversions by budget ratio)", "", "| method | " + " | ".join(f"{r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
        for method in METHODS:
            row = [_mean_std(runs, variant, method, "conversions", ratio)[0] for ratio in ratios]
            summary["table5"].setdefault(variant, {})[method] = dict(zip(map(str, ratios), row))
            lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
        lines += ["", "Table 4 (LBM(GQPO) with instructions)", "", "| instruction | budget utilisation | CPA ratio | conversions | score |", "|---|---|---|---|---|"]
        for label, method in (("base", "LBM(GQPO)"), ("increase", "LBM(GQPO)+increase"), ("decrease", "LBM(GQPO)+decrease")):
            cells = {key: _mean_std(runs, variant, method, key)[0] for key in keys}
            summary["table4"].setdefault(variant, {})[label] = cells
            lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in cells.values()) + " |")
        lines += ["", "Fig. 2 (share of moves against the CPA ratio: down when > 1, up when < 1)", ""]
        for method in METHODS:
            points = direction_points(variant_runs, method)
            summary["fig2"].setdefault(variant, {})[method] = principled_share(points)
            lines.append(f"- {method}: {principled_share(points):.3f} of {len(points)} moves")
        summary["think"][variant] = [run["think"] for run in variant_runs]
        summary["gqpo"][variant] = [run["gqpo"] | run["language_guided"] for run in variant_runs]
        lines += ["", f"LBM-Think (pretrained -> GQPO): {json.dumps([run['think'] for run in variant_runs])}", "",
                  f"LBM-Act on logged decisions (forced-direction log change vs the previous multiplier; abs log error): {json.dumps([run.get('act') for run in variant_runs])}", "",
                  f"GQPO / language-guided: {json.dumps(summary['gqpo'][variant])}", ""]
    meta_path = output / "meta.json"
    if meta_path.exists():
        lines += ["## run", "", "```", meta_path.read_text(), "```"]
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    (output / "tables.md").write_text("\n".join(lines) + "\n")
    return summary


def direction_points(runs: list[dict], method: str) -> np.ndarray:
    """Fig. 2: ``(K, 2)`` (CPA ratio before the tick, change of the multiplier) over the played
    ticks of the budget-ratio-1 cases (after the first conversion)."""
    points = []
    for run in runs:
        for record in run["evaluations"][method]:
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


def plot(output_dir: str) -> list[pathlib.Path]:
    """Draw the tables and Fig. 2 from the saved runs."""
    output = pathlib.Path(output_dir)
    runs = _load_runs(output)
    summary = summarise(output_dir)
    variants = sorted({run["variant"] for run in runs})
    paths = []
    figure, axes = plt.subplots(len(variants), 4, figsize=(16, 3.6 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        for column, key in enumerate(("budget_utilisation", "cpa_ratio", "conversions", "score")):
            cells = summary["table2"][variant]
            axes[row, column].bar(METHODS, [cells[m][key][0] for m in METHODS], yerr=[cells[m][key][1] for m in METHODS], color="tab:blue")
            axes[row, column].set_title(f"{variant}: {key}")
            axes[row, column].tick_params(axis="x", rotation=20)
    figure.tight_layout()
    paths.append(output / "table2.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4), squeeze=False)
    for column, variant in enumerate(variants):
        for method, values in summary["table5"][variant].items():
            axes[0, column].plot([float(r) for r in values], list(values.values()), marker="o", label=method)
        axes[0, column].set(title=f"Table 5 ({variant})", xlabel="budget ratio", ylabel="conversions")
        axes[0, column].legend()
    figure.tight_layout()
    paths.append(output / "table5.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(len(variants), len(METHODS), figsize=(4 * len(METHODS), 3.4 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        for column, method in enumerate(METHODS):
            points = direction_points([r for r in runs if r["variant"] == variant], method)
            if len(points) > 1000:
                points = points[np.random.default_rng(0).choice(len(points), 1000, replace=False)]
            axis = axes[row, column]
            axis.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5)
            axis.axvline(1.0, color="grey", lw=0.8)
            axis.axhline(0.0, color="grey", lw=0.8)
            axis.set(title=f"{method} ({variant}): {principled_share(points):.2f}", xlabel="CPA ratio", ylabel="change of multiplier", xlim=(0, 2.5))
    figure.tight_layout()
    paths.append(output / "fig2.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4), squeeze=False)
    for column, variant in enumerate(variants):
        for run in (r for r in runs if r["variant"] == variant):
            for name in ("llm_dt", "lbm_act"):
                losses = np.array(run["losses"][name])
                smooth = np.convolve(losses, np.ones(20) / 20, mode="valid") if len(losses) >= 20 else losses
                axes[0, column].plot(smooth, label=f"{name} (seed {run['training_seed']})")
        axes[0, column].set(title=f"Fig. 3: training loss ({variant})", xlabel="step", ylabel="squared error", yscale="log")
        axes[0, column].legend()
    figure.tight_layout()
    paths.append(output / "fig3_losses.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths


def parse_args(argv: list[str] | None = None) -> Args:
    """Flags from :class:`Args`; with ``--quick`` (``--smollm2``), the fields left at their
    defaults take the :data:`QUICK` (:data:`SMOLLM2`) sizes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    description = __doc__.split("\n\n")[0]
    if arguments.parse(Args, argv, description).smollm2:
        return arguments.parse_with_quick(Args, SMOLLM2, [*argv, "--quick"], description)
    return arguments.parse_with_quick(Args, QUICK, argv, description)


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.lbm [--quick] ...`` (``auctionsim lbm ...``)."""
    args = parse_args(argv)
    if not args.plot_only:
        meta = run(args)
        print(f"total wall time {meta['timings_s']['total']:.0f} s")
    for path in plot(args.output_dir):
        print(f"saved {path}")
    print((pathlib.Path(args.output_dir) / "tables.md").read_text())


if __name__ == "__main__":
    main()
