"""What the command-line scripts share: one-line errors and the flags that make a Config.

Nothing here imports TensorFlow: a script parses and checks its flags first, then imports the
modules that build graphs, so `--help` and a mistyped flag answer at once.
"""

import argparse
import dataclasses
import os
import signal
import sys
from typing import Callable, List, Optional, Tuple

from lstm_mnist.config import LSTM_IMPLEMENTATIONS, Config, ModelConfig
from lstm_mnist.errors import VERBOSE_VARIABLE, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with `--verbose` on every script that loads TensorFlow; a bad flag is one line on
    stderr and exit 2."""

    def __init__(self, *args, uses_tensorflow: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if uses_tensorflow:
            self.add_argument("--verbose", action="store_true",
                              help="also show TensorFlow's own start-up and deprecation messages "
                                   f"(as {VERBOSE_VARIABLE}=1 does)")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "verbose", False):
            os.environ[VERBOSE_VARIABLE] = "1"  # read by lstm_mnist.tf1 when TensorFlow loads
        return parsed

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def print_error(prog: str, error: UserError):
    """Prints `error` as the scripts' one line on stderr: `<prog>: <kind>: <message>`, with any
    control character of a file name in it escaped, so that a name can neither break the line
    nor drive the terminal."""
    print(f"{prog}: {error.kind}: {printable(str(error))}", file=sys.stderr)


def printable(text: str) -> str:
    """`text` with every non-printable character as its Python escape (`\\n`, `\\x1b`)."""
    return "".join(character if character.isprintable() else repr(character)[1:-1]
                   for character in text)


def run(main: Callable[[List[str]], Optional[int]], prog: str):
    """Runs `main(argv)`; a UserError becomes one line on stderr and its exit status, and so
    does a SIGTERM or SIGHUP."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _stop_on_signal)
    try:
        status = main(sys.argv[1:])
    except UserError as error:
        print_error(prog, error)
        status = error.exit_status
    except KeyboardInterrupt:  # outside the training loop, which handles it itself
        print(f"{prog}: interrupted", file=sys.stderr)
        status = 130
    except OSError as error:  # what the system refused where no caller could say more
        print(f"{prog}: error: {printable(str(error.filename))}: {error.strerror}",
              file=sys.stderr)
        status = 1
    sys.exit(status or 0)


class Stopped(UserError):
    """SIGTERM or SIGHUP outside the training loop (which stops at a safe point itself)."""

    kind = "stopped"


def _stop_on_signal(number, frame):
    stopped = Stopped(f"by {signal.Signals(number).name}; nothing half-written was left")
    stopped.exit_status = 128 + number  # the shell's convention for "ended by signal N"
    raise stopped


def add_checkpoint_argument(parser: argparse.ArgumentParser):
    """`--checkpoint`, required: what eval.py, predict.py and explain.py restore."""
    parser.add_argument("--checkpoint", required=True,
                        help="a run's checkpoint folder (uses its best checkpoint) or one "
                             "checkpoint prefix such as checkpoints/part1/best/model-30")


def add_lstm_argument(parser: argparse.ArgumentParser):
    """`--lstm`: which implementation runs a restored model (both read the same checkpoint)."""
    parser.add_argument("--lstm", choices=LSTM_IMPLEMENTATIONS,
                        help="run the model on this LSTM implementation (default: the one it was "
                             "trained with); both compute the same numbers from one checkpoint")


def add_data_dir_argument(parser: argparse.ArgumentParser):
    """`--data-dir`, where MNIST is read from (default: the copy shipped with the package)."""
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files "
                                           "(default: the copy shipped with the package)")


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
    """Adds one flag per Config field (`--head-hidden` for `head_hidden`), with the field's help
    text, in the field's group. Flags not given parse as None (see `config_changes`)."""
    defaults = Config()
    groups = {}
    for field in dataclasses.fields(Config):
        options = dict(field.metadata)
        group = options.pop("group")
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        default = getattr(defaults, field.name)
        if field.type is bool:
            options.update(action="store_true", default=None)
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            options.update(type=parse_sizes if field.type == Tuple[int, ...] else field.type,
                           help=f"{options['help']} (default {shown})")
        groups[group].add_argument("--" + field.name.replace("_", "-"), **options)


def config_changes(args: argparse.Namespace) -> dict:
    """The Config fields given on the command line, as `{field: value}`."""
    names = [field.name for field in dataclasses.fields(Config)]
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if "layers" in changes and "hidden" in changes:
        # Spread as the config will, so that `--resume` compares like with like.
        changes["hidden"] = ModelConfig(layers=changes["layers"], hidden=changes["hidden"]).hidden
    return changes


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config that the flags describe (defaults for the rest); raises ConfigError."""
    return Config(**config_changes(args))
