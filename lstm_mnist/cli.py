"""What the command-line scripts share: one-line errors and the flags that make a Config.

Nothing here imports TensorFlow: a script parses and checks its flags first, then imports the
modules that build graphs, so `--help` and a mistyped flag answer at once.
"""

import argparse
import dataclasses
import os
import sys
from typing import Callable, List, Optional

from lstm_mnist.config import LR_SCHEDULES, Config, ConfigError
from lstm_mnist.errors import VERBOSE_VARIABLE, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with `--verbose` on every script; a bad flag is one line on stderr and exit 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true",
                          help="also show TensorFlow's own start-up and deprecation messages "
                               f"(as {VERBOSE_VARIABLE}=1 does)")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if parsed.verbose:
            os.environ[VERBOSE_VARIABLE] = "1"  # read by lstm_mnist.tf1 when TensorFlow loads
        return parsed

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def print_error(prog: str, error: UserError):
    """Prints `error` as the scripts' one line on stderr: `<prog>: <kind>: <message>`."""
    print(f"{prog}: {error.kind}: {error}", file=sys.stderr)


def run(main: Callable[[List[str]], Optional[int]], prog: str):
    """Runs `main(argv)`; a UserError becomes one line on stderr and its exit status."""
    try:
        status = main(sys.argv[1:])
    except UserError as error:
        print_error(prog, error)
        status = error.exit_status
    except KeyboardInterrupt:  # outside the training loop, which handles it itself
        print(f"{prog}: interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)


def parse_sizes(text: str) -> tuple:
    """'128,64' -> (128, 64); every size must be a positive integer."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 128 or 128,64, got {text!r}")
    return sizes


def add_config_arguments(parser: argparse.ArgumentParser):
    """Adds one flag per Config field. Flags not given parse as None (see `config_changes`)."""
    d = Config()
    model = parser.add_argument_group("model")
    model.add_argument("--layers", type=int, help=f"number of stacked LSTM layers (default {d.layers})")
    model.add_argument("--hidden", type=parse_sizes,
                       help="units per layer, comma-separated; one value is used for every layer "
                            f"(default {d.hidden[0]})")
    model.add_argument("--bidirectional", action="store_true", default=None,
                       help="give every layer a backward LSTM too")
    model.add_argument("--head-hidden", type=int,
                       help=f"units of the classifier's hidden ReLU layer (default {d.head_hidden})")
    model.add_argument("--dropout", type=float,
                       help="drop probability on non-recurrent connections: the input of every "
                            f"LSTM layer and of the classifier head (default {d.dropout})")
    data = parser.add_argument_group("data")
    data.add_argument("--crop", action="store_true", default=None,
                      help="train on random crops, i.e. variable-length sequences (Part 2); "
                           "validation and test are then measured on full and cropped images")
    data.add_argument("--crop-min", type=int,
                      help=f"smallest crop height and width in pixels (default {d.crop_min})")
    data.add_argument("--crop-max", type=int,
                      help=f"largest crop height and width in pixels (default {d.crop_max})")
    data.add_argument("--crop-seed", type=int,
                      help=f"seed of the fixed crops for evaluation (default {d.crop_seed})")
    data.add_argument("--train-subset", type=int,
                      help="train on the first N training images only, for a quick try "
                           "(default: all 55000)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int,
                              help=f"passes over the training set (default {d.epochs})")
    optimisation.add_argument("--batch-size", type=int,
                              help=f"examples per minibatch (default {d.batch_size})")
    optimisation.add_argument("--lr", type=float,
                              help=f"Adam learning rate (peak of the schedule; default {d.lr})")
    optimisation.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                              help="constant, or cosine decay to zero over all epochs "
                                   f"(default {d.lr_schedule})")
    optimisation.add_argument("--clip", type=float,
                              help="clip gradients to this global norm; 0 turns clipping off "
                                   f"(default {d.clip})")
    optimisation.add_argument("--seed", type=int,
                              help=f"seed for weights, shuffling, crops and dropout (default {d.seed})")


def config_changes(args: argparse.Namespace) -> dict:
    """The Config fields given on the command line, as `{field: value}`."""
    names = [field.name for field in dataclasses.fields(Config)]
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if "hidden" in changes:
        layers = changes.get("layers", Config().layers)
        if len(changes["hidden"]) == 1:
            changes["hidden"] = changes["hidden"] * max(layers, 1)
        elif len(changes["hidden"]) != layers:
            raise ConfigError(f"--hidden gives {len(changes['hidden'])} sizes for --layers "
                              f"{layers}: give one size, or one per layer")
    elif "layers" in changes:
        changes["hidden"] = Config().hidden[:1] * max(changes["layers"], 1)
    return changes


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config that the flags describe (defaults for the rest); raises ConfigError."""
    return Config(**config_changes(args))
