"""How much does PE-MORL's uncertainty penalty vary across the exploratory focal actions of one
state, against across states, and against the model reward's variation across those actions?
Training seed 0 of the reference run's sizes (same logs and PE ensemble as the run).

Run from the repository root: ``python experiments/reference/pemorl/penalty_probe.py``."""

import numpy as np
import torch

from experiments import pemorl
from agents.pemorl import GlobalTransitions, ModelConfig, ModelTrainingConfig, train_ensemble
from agents.pemorl.data import DYNAMIC_FEATURES
from agents.pemorl.model import uncertainty_penalty
from auctionsim.tracking import seed_everything
torch.set_num_threads(1)
args = pemorl.parse_args(["--quick", "--training-seeds", "3", "--eval-seeds", "5", "--impressions-per-episode", "100000", "--focal-advertisers", "3", "27",
                          "--policy-steps", "1000", "--dt-steps", "300", "--no-tensorboard"])
seed = 0
seed_everything(seed)
markets = pemorl.test_markets(args)
logs = pemorl.collect(args, markets[pemorl.TRAINING_MARKET], args.train_episodes, pemorl.LOG_SEEDS + 10_000 * seed, "logs")
transitions = GlobalTransitions(logs, device="cpu")
training = ModelTrainingConfig(steps=args.model_steps, batch_size=args.model_batch, members=args.model_members, seed=seed)
config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=args.model_hidden, layers=2, heads=4, n_advertisers=48)
ensemble = train_ensemble(transitions, config, training)
g = torch.Generator().manual_seed(1)
start = transitions.sample(256, g)
states, live, actions = start.states, start.live, start.actions
B, N, D = states.shape
rows = torch.arange(B)
focal = torch.multinomial(live.float(), 1, generator=g)[:, 0]
K = 16
penalties, rewards = [], []
reward_std = ensemble.target_std[DYNAMIC_FEATURES]
with torch.no_grad():
    for k in range(K):
        a = actions.clone()
        a[rows, focal] = (a[rows, focal] + 0.1 * torch.randn(B, generator=g)).clamp(-1, 1)
        means, _ = ensemble(states, a * live, live)
        penalties.append((reward_std * uncertainty_penalty(means[:, rows, focal])).numpy())
        rewards.append(ensemble.unstandardise(means.mean(0))[rows, focal, DYNAMIC_FEATURES].numpy())
p, r = np.stack(penalties, 1), np.stack(rewards, 1)  # (B, K)
print(f"penalty (lambda=1): mean {p.mean():.4f}; across-state sd of its state means {p.mean(1).std():.4f}; within-state sd {p.std(1).mean():.5f}")
print(f"model reward: mean {r.mean():.4f}; within-state sd over the same actions {r.std(1).mean():.5f}")
print(f"within-state sd ratio penalty/reward {p.std(1).mean() / r.std(1).mean():.3f}; share of penalty variance within states {p.var(1).mean() / p.var():.3f}")
corr = [np.corrcoef(p[i], r[i])[0, 1] for i in range(B) if p[i].std() > 0 and r[i].std() > 0]
print(f"within-state correlation penalty vs model reward: mean {np.mean(corr):.3f}")
