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
import contextlib
import dataclasses
import importlib
import pathlib
import shutil
import sys
import time

import auctionsim
from agents.datasets import OfflineDataset, collect_dataset, save_shard
from agents.populations import POPULATIONS, check_population, named_population
from auctionsim import MarketConfig, presets, runs
from auctionsim.compat import auctionnet
from auctionsim.validation import check_int, check_number
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


_FLOAT_FIELDS = ("reserve_price", "min_budget_to_bid", "candidate_own_category_share")


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["mechanism=fpa", "n_ticks=24"]`` -> typed MarketConfig overrides (MarketConfig
    validates the values; unreadable numbers are refused here, naming the field)."""
    fields = {f.name: f for f in dataclasses.fields(MarketConfig)}
    overrides: dict[str, object] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator or name not in fields or name == "traffic":
            settable = ", ".join(sorted(n for n in fields if n != "traffic"))
            raise ConfigError(f"--set expects FIELD=VALUE with FIELD one of {settable}, got {pair!r}")
        try:
            if text.lower() == "none":
                overrides[name] = None
            elif name == "slot_exposure":
                overrides[name] = tuple(float(x) for x in text.split(","))
            elif name == "mechanism":
                overrides[name] = text
            elif name in _FLOAT_FIELDS:
                overrides[name] = float(text)
            else:
                number = float(text)
                if not number.is_integer() or abs(number) >= 2**62:
                    raise ValueError
                overrides[name] = int(number)
        except ValueError:
            kind = "an integer below 2**62" if name not in _FLOAT_FIELDS and name not in ("slot_exposure", "mechanism") else "a number"
            raise ConfigError(f"--set {name} must be {kind}, got {text!r}") from None
    return overrides


def _population(name: str) -> str:
    """``--population`` values: a built-in name or ``module:Name`` (imported to check it)."""
    try:
        return check_population(name)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _environment(args: argparse.Namespace) -> AuctionParallelEnv:
    return AuctionParallelEnv(args.preset, reward=args.reward, **_parse_overrides(args.set))


def _check_common(args: argparse.Namespace) -> None:
    """Flags every command shares, checked before any work."""
    check_int("--episodes", args.episodes, low=1)
    check_int("--seed", args.seed, low=0)
    check_number("--multiplier", args.multiplier, low=0.0)


#: ``dataset`` flags that change where episodes are played, not the data: a resume may change them.
PLACEMENT = ("output", "backend", "shard_episodes", "num_cpus")


def _run_config(args: argparse.Namespace) -> dict[str, object]:
    """The resolved arguments of ``simulate``/``dataset`` as recorded in manifests."""
    return {key: value for key, value in vars(args).items() if key not in ("handler", "command", "resume")}


def simulate(args: argparse.Namespace) -> None:
    """Run a population on a preset; print the per-advertiser table and market metrics; save
    JSON (atomically, with a manifest beside it)."""
    _check_common(args)
    check_int("--rows", args.rows, low=0)
    output = runs.check_output_file(args.output, suffix=".json") if args.output else None
    env = _environment(args)
    policy = named_population(args.population, env.market.population.ids, args.multiplier)
    with runs.OutputLock(output) if output else contextlib.nullcontext():
        clock = runs.RunClock()
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
        if output:
            payload = {"preset": args.preset, "overrides": args.set, "population": args.population, "reward": args.reward, "episodes": episodes}
            runs.atomic_write_json(output, payload)
            runs.write_manifest(output, _run_config(args), seeds={"episodes": [args.seed + e for e in range(args.episodes)]}, clock=clock)
            print(f"saved {output}")


def dataset(args: argparse.Namespace) -> None:
    """Log episodes of a population to an NPZ offline dataset, or, when the output ends in
    ``.csv`` or ``.parquet``, in AuctionNet's logged-data format (written atomically with a
    manifest beside it; no ``--resume``: rerun instead).

    Parallel: ``--backend ray`` plays shards of ``--shard-episodes`` episodes as Ray tasks (a
    local instance with ``--num-cpus`` CPUs, or the cluster at ``RAY_ADDRESS``); same dataset.

    Crash safety: every finished shard of episodes is checkpointed (atomically, with a
    manifest) in ``.<name>.episodes/`` beside the output; the dataset is written atomically (the previous
    good file stays until the new one is complete), then its manifest, then the checkpoint is
    removed. ``--resume`` continues a killed run from its checkpoint (or extends a finished
    dataset with more episodes); a changed config is refused. Without ``--resume`` a leftover
    checkpoint is discarded.
    """
    _check_common(args)
    check_number("--noise", args.noise, low=0.0)
    check_int("--shard-episodes", args.shard_episodes, low=1)
    check_int("--num-cpus", args.num_cpus, low=1)
    suffix = pathlib.Path(args.output).suffix.lower()
    if suffix in (".csv", ".parquet"):
        if args.backend != "serial":
            raise ConfigError(f"--backend {args.backend} applies to NPZ datasets; an AuctionNet log ({suffix}) is written serially")
        return _auctionnet_log(args)
    output = runs.check_output_file(args.output, suffix=".npz")
    env = _environment(args)
    policy = named_population(args.population, env.market.population.ids, args.multiplier)
    config = _run_config(args)
    checkpoint = output.with_name(f".{output.name}.episodes")
    with runs.OutputLock(output):
        clock = runs.RunClock()
        if not args.resume:
            shutil.rmtree(checkpoint, ignore_errors=True)
        elif (runs.manifest_path(checkpoint).is_file() if checkpoint.is_dir() else False):
            runs.check_resume(runs.read_manifest(checkpoint)["config"], config, extendable={"episodes"}, ignored=PLACEMENT)
        elif output.is_file() and runs.read_manifest(output) is not None:
            extended = runs.check_resume(runs.read_manifest(output)["config"], config, extendable={"episodes"}, ignored=PLACEMENT)
            if not extended:
                print(f"{output} is complete with this config; nothing to resume")
                return
            runs.verify_manifest(output)
            previous = OfflineDataset.load(output)
            shutil.rmtree(checkpoint, ignore_errors=True)
            save_shard(checkpoint, 0, [previous.episode(index) for index in range(previous.n_episodes)])
        else:
            raise runs.RunError(f"--resume: neither {output} (with its manifest) nor a checkpoint {checkpoint} exists; run without --resume")
        checkpoint.mkdir(parents=True, exist_ok=True)
        runs.write_manifest(checkpoint, config)
        logs = collect_dataset(env, policy, args.episodes, seed=args.seed, action_noise=args.noise, description=f"population={args.population}", checkpoint_dir=checkpoint,
                               backend=args.backend, shard_episodes=args.shard_episodes, num_cpus=args.num_cpus)  # fmt: skip
        path = logs.save(output)
        runs.write_manifest(output, config, seeds={"episodes": logs.seeds.tolist()}, clock=clock)
        shutil.rmtree(checkpoint, ignore_errors=True)
    transitions = int(logs.live[:, :-1].sum())
    print(f"saved {path}: {logs.n_episodes} episodes, {transitions:,} advertiser transitions, {logs.observations.shape[-1]} features")


def _auctionnet_log(args: argparse.Namespace) -> None:
    """``auctionsim dataset --output X.csv|X.parquet``: the episodes in AuctionNet's format."""
    if args.resume:
        raise runs.RunError("--resume applies to NPZ datasets; an AuctionNet log is written in one go (rerun to replace it)")
    output = runs.check_output_file(args.output, suffix=pathlib.Path(args.output).suffix)
    env = _environment(args)
    policy = named_population(args.population, env.market.population.ids, args.multiplier)
    with runs.OutputLock(output):
        clock = runs.RunClock()
        path = auctionnet.log_episodes(env, policy, args.episodes, output, seed=args.seed, action_noise=args.noise)
        runs.write_manifest(path, _run_config(args), seeds={"episodes": list(range(args.seed, args.seed + args.episodes))}, clock=clock)
    print(f"saved {path}: {args.episodes} episodes in AuctionNet's format (one row per advertiser and impression it contested)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="auctionnet", choices=presets.names(), help="market preset")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a MarketConfig field (repeatable)")
    parser.add_argument(
        "--population", default="mixed", type=_population, metavar="NAME",
        help=f"bidders: {', '.join(POPULATIONS)}, or your own as module:Name or file.py:Name (see agents.populations)",
    )
    parser.add_argument("--multiplier", type=float, default=1.0, help="multiplier of fixed bidders")
    parser.add_argument("--reward", default="value", choices=REWARDS, help="reward kind (datasets)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auctionsim", description="auctionsim: ad-auction simulation for auto-bidding research")
    parser.add_argument("--version", action="version", version=f"auctionsim {auctionsim.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter
    run = commands.add_parser("simulate", help="run a population on a preset and print metrics", formatter_class=defaults,
                              description="Run a population on a preset; print metrics; save JSON with a manifest beside it.")
    _common(run)
    run.add_argument("--rows", type=int, default=48, help="advertisers shown in the table (>= 0)")
    run.add_argument("--output", default="", help="JSON file for the results (a manifest is written beside it)")
    run.set_defaults(handler=simulate)
    logs = commands.add_parser("dataset", help="write an offline dataset of logged episodes (NPZ, or AuctionNet's CSV/Parquet)", formatter_class=defaults,
                               description="Write an offline dataset of logged episodes (NPZ, or AuctionNet's format for .csv/.parquet; atomically, with a manifest beside it).")
    _common(logs)
    logs.add_argument("--noise", type=float, default=0.0, help="log-normal exploration noise on multipliers (>= 0)")
    logs.add_argument("--output", required=True, help="file to write: .npz (offline dataset) or .csv/.parquet (AuctionNet's logged-data format)")
    logs.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint, or add episodes to a finished dataset; refused if any other flag changed")
    logs.add_argument("--backend", choices=("serial", "ray"), default="serial", help="play shards in this process, or as parallel Ray tasks (RAY_ADDRESS: on that cluster)")
    logs.add_argument("--shard-episodes", type=int, default=1, help="episodes per shard: the unit of parallel work and of checkpoints")
    logs.add_argument("--num-cpus", type=int, default=2, help="CPUs of a local Ray instance (--backend ray without RAY_ADDRESS)")
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
    except (AuctionSimError, OSError) as error:
        print(f"auctionsim: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
