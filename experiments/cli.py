"""The ``auctionsim`` command line.

    auctionsim simulate --preset auctionnet --population mixed --episodes 2 --output results/simulate.json
    auctionsim dataset  --preset auctionnet --population mixed --episodes 50 --noise 0.2 --output data/auctionnet.npz
    auctionsim dataset  --population mybidders:MyBidder --episodes 2 --output data/log.parquet   # AuctionNet's format
    auctionsim simulate --preset auctionnet --set mechanism=fpa --set impressions_per_episode=100000
    auctionsim bandits --quick                  # any experiment: flags after its name go to it
    auctionsim plot gains results/equilibrium-quick/reports/*.json -o results/figures

``--set FIELD=VALUE`` replaces a field of the preset's market config (see
``auctionsim.MarketConfig``). Populations are those of :mod:`agents.populations`: a built-in
name, or your own bidders as ``module:Name`` / ``path/to/file.py:Name`` (a population policy,
a one-advertiser bidder or an AuctionNet strategy class, or a function returning a policy).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pathlib
import sys
import time

import auctionsim
from agents.datasets import collect_dataset
from agents.populations import POPULATIONS, check_population, named_population
from auctionsim import MarketConfig, presets
from auctionsim.compat import auctionnet
from auctionsim.envs import REWARDS, AuctionParallelEnv, play_episode
from auctionsim.errors import AuctionSimError, ConfigError
from auctionsim.metrics import format_table
from experiments.plots import add_plot_command

#: Experiment modules runnable as ``auctionsim NAME [flags]``; each has ``main(argv)``.
EXPERIMENTS = {
    "bandits": "EXP3 / Batch EXP3 / EXP3-IX: regret, bid heatmaps, snowballing (experiments.bandits)",
    "equilibrium": "exploitability of baseline populations from 10 to 10,000 advertisers (experiments.equilibrium)",
    "bpg": "BPG Nash-constrained population policy with RLlib: Tables 1 and 3, curves, ablation (experiments.bpg)",
    "lbm": "LBM hierarchical LLM bidder vs DT and LLM-DT: Tables 1/2, 4, 5, Fig. 2 (experiments.lbm)",
    "pemorl": "PE-MORL vs MLP models and vs BC/IQL/CQL/DT bidders, pessimism ablation (experiments.pemorl)",
}


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["mechanism=fpa", "n_ticks=24"]`` -> typed MarketConfig overrides."""
    fields = {f.name: f for f in dataclasses.fields(MarketConfig)}
    overrides: dict[str, object] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator or name not in fields or name == "traffic":
            settable = ", ".join(sorted(n for n in fields if n != "traffic"))
            raise ConfigError(f"--set expects FIELD=VALUE with FIELD one of {settable}, got {pair!r}")
        if text.lower() == "none":
            overrides[name] = None
        elif name == "slot_exposure":
            overrides[name] = tuple(float(x) for x in text.split(","))
        elif name == "mechanism":
            overrides[name] = text
        else:
            number = float(text)
            overrides[name] = int(number) if number.is_integer() and name not in ("reserve_price", "min_budget_to_bid", "candidate_own_category_share") else number
    return overrides


def _population(name: str) -> str:
    """``--population`` values: a built-in name or ``module:Name`` (imported to check it)."""
    try:
        return check_population(name)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _environment(args: argparse.Namespace) -> AuctionParallelEnv:
    return AuctionParallelEnv(args.preset, reward=args.reward, **_parse_overrides(args.set))


def simulate(args: argparse.Namespace) -> None:
    """Run a population on a preset; print the per-advertiser table and market metrics; save JSON."""
    env = _environment(args)
    policy = named_population(args.population, env.market.population.ids, args.multiplier)
    episodes = []
    for episode in range(args.episodes):
        start = time.perf_counter()
        metrics = play_episode(env, policy, seed=args.seed + episode).metrics
        summary = {"seed": args.seed + episode, "seconds": time.perf_counter() - start, **metrics.market_summary()}
        episodes.append({"summary": summary, "advertisers": metrics.to_dict()})
        print(f"episode {episode} (seed {summary['seed']}, {summary['seconds']:.2f} s): "
              f"welfare {metrics.social_welfare:,.1f}, revenue {metrics.revenue:,.1f}, "
              f"conversions {metrics.total_conversions:,.0f}, score {metrics.total_score:,.1f}")
    print(format_table(metrics, max_rows=args.rows))
    if args.output:
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"preset": args.preset, "overrides": args.set, "population": args.population, "reward": args.reward, "episodes": episodes}
        path.write_text(json.dumps(payload, indent=1, default=float))
        print(f"saved {path}")


def dataset(args: argparse.Namespace) -> None:
    """Log episodes of a population: an NPZ offline dataset, or AuctionNet's logged-data format
    when the output is a ``.csv`` or ``.parquet`` file."""
    env = _environment(args)
    policy = named_population(args.population, env.market.population.ids, args.multiplier)
    if pathlib.Path(args.output).suffix.lower() in (".csv", ".parquet"):
        path = auctionnet.log_episodes(env, policy, args.episodes, args.output, seed=args.seed, action_noise=args.noise)
        print(f"saved {path}: {args.episodes} episodes in AuctionNet's format (one row per advertiser and impression)")
        return
    logs = collect_dataset(env, policy, args.episodes, seed=args.seed, action_noise=args.noise, description=f"population={args.population}")
    path = logs.save(args.output)
    transitions = int(logs.live[:, :-1].sum())
    print(f"saved {path}: {logs.n_episodes} episodes, {transitions:,} advertiser transitions, {logs.observations.shape[-1]} features")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="auctionnet", choices=presets.names(), help="market preset")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a MarketConfig field (repeatable)")
    parser.add_argument(
        "--population", default="mixed", type=_population, metavar="NAME",
        help=f"bidders: {', '.join(POPULATIONS)}, or your own as module:Name or file.py:Name (see agents.populations)",
    )
    parser.add_argument("--multiplier", type=float, default=1.0, help="multiplier of fixed bidders")
    parser.add_argument("--reward", default="value", choices=REWARDS, help="reward kind (datasets)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auctionsim", description="auctionsim: ad-auction simulation for auto-bidding research")
    parser.add_argument("--version", action="version", version=f"auctionsim {auctionsim.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("simulate", help="run a population on a preset and print metrics")
    _common(run)
    run.add_argument("--rows", type=int, default=48, help="advertisers shown in the table")
    run.add_argument("--output", default="", help="JSON file for the results")
    run.set_defaults(handler=simulate)
    logs = commands.add_parser("dataset", help="write an offline dataset of logged episodes (NPZ, or AuctionNet's CSV/Parquet)")
    _common(logs)
    logs.add_argument("--noise", type=float, default=0.0, help="log-normal exploration noise on multipliers")
    logs.add_argument("--output", required=True, help="file to write: .npz (offline dataset) or .csv/.parquet (AuctionNet's format)")
    logs.set_defaults(handler=dataset)
    add_plot_command(commands)
    for name, summary in EXPERIMENTS.items():
        commands.add_parser(name, help=summary, add_help=False).set_defaults(experiment=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    experiment = getattr(args, "experiment", None)
    if experiment is None and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if experiment is not None:
            importlib.import_module(f"experiments.{experiment}").main(rest)
        else:
            args.handler(args)
    except AuctionSimError as error:
        print(f"auctionsim: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
