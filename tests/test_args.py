"""experiments.args: explicit flags beat --quick; help shows defaults and the subcommand."""

from dataclasses import dataclass

import pytest

from auctionsim.errors import ConfigError
from experiments import args as arguments


@dataclass
class Args(arguments.ProtocolArgs):
    """A toy experiment."""

    iterations: int = 100
    """training iterations"""
    sizes: tuple[int, ...] = (10, 48)
    """market sizes"""
    rate: float = 0.5
    """a rate (in %)"""

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")


QUICK = dict(training_seeds=1, eval_seeds=2, iterations=5, sizes=(10,))


def test_explicit_flags_win_over_quick_even_at_the_full_default():
    args = arguments.parse(Args, ["--quick", "--training-seeds", "3", "--eval-seeds", "5", "--iterations", "100"], quick=QUICK)
    assert (args.training_seeds, args.eval_seeds, args.iterations) == (3, 5, 100)
    assert args.sizes == (10,)  # not given: the quick value


def test_quick_fills_only_what_is_not_given_and_full_defaults_otherwise():
    assert arguments.parse(Args, ["--quick"], quick=QUICK).iterations == 5
    full = arguments.parse(Args, ["--iterations", "5"], quick=QUICK)
    assert (full.iterations, full.training_seeds, full.eval_seeds, full.sizes, full.tensorboard) == (5, 3, 5, (10, 48), True)
    assert arguments.parse(Args, ["--sizes", "48", "100", "--no-tensorboard", "--resume"]).sizes == (48, 100)
    assert arguments.resolve(Args, QUICK, quick=True, eval_seeds=5).eval_seeds == 5
    assert arguments.resolve(Args, QUICK, quick=True).eval_seeds == 2


def test_bad_values_are_refused(capsys):
    with pytest.raises(ConfigError, match="iterations must be >= 1, got 0"):
        arguments.parse(Args, ["--iterations", "0"], prog="auctionsim toy")
    with pytest.raises(SystemExit) as stop:
        arguments.parse(Args, ["--iterations", "abc"], prog="auctionsim toy")
    assert stop.value.code == 2 and "usage: auctionsim toy" in capsys.readouterr().err


def test_help_names_the_subcommand_and_shows_defaults_and_quick_values(capsys):
    with pytest.raises(SystemExit) as stop:
        arguments.parse(Args, ["--help"], quick=QUICK, prog="auctionsim toy")
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: auctionsim toy")
    assert "training iterations (default: 100; quick: 5)" in out
    assert "market sizes (default: 10 48; quick: 10)" in out
    assert "a rate (in %) (default: 0.5)" in out
    assert "--tensorboard, --no-tensorboard" in out
