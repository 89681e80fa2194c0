"""What the command-line scripts share: one-line errors and the flags that make a Config."""

import argparse
import sys
from typing import Callable, List, Optional

import tensorflow.compat.v1 as tf

from lstm_mnist.config import LR_SCHEDULES, Config, ConfigError
from lstm_mnist.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main: Callable[[List[str]], Optional[int]], prog: str):
    """Runs `main(argv)`; a UserError becomes `prog: error: <message>` and exit status 2."""
    tf.get_logger().setLevel("ERROR")  # TF1-API deprecation notices are not the user's business
    try:
        status = main(sys.argv[1:])
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        status = 2
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
    """Adds one flag per Config field, defaulting to the Config defaults."""
    d = Config()
    model = parser.add_argument_group("model")
    model.add_argument("--layers", type=int, default=d.layers,
                       help="number of stacked LSTM layers (default %(default)s)")
    model.add_argument("--hidden", type=parse_sizes, default=None,
                       help="units per layer, comma-separated; one value is used for every layer "
                            f"(default {d.hidden[0]})")
    model.add_argument("--bidirectional", action="store_true",
                       help="give every layer a backward LSTM too")
    model.add_argument("--head-hidden", type=int, default=d.head_hidden,
                       help="units of the classifier's hidden ReLU layer (default %(default)s)")
    model.add_argument("--dropout", type=float, default=d.dropout,
                       help="drop probability on non-recurrent connections: the input of every "
                            "LSTM layer and of the classifier head (default %(default)s)")
    data = parser.add_argument_group("data")
    data.add_argument("--crop", action="store_true",
                      help="train on random crops, i.e. variable-length sequences (Part 2); "
                           "validation and test are then measured on full and cropped images")
    data.add_argument("--crop-min", type=int, default=d.crop_min,
                      help="smallest crop height and width in pixels (default %(default)s)")
    data.add_argument("--crop-max", type=int, default=d.crop_max,
                      help="largest crop height and width in pixels (default %(default)s)")
    data.add_argument("--crop-seed", type=int, default=d.crop_seed,
                      help="seed of the fixed crops for evaluation (default %(default)s)")
    data.add_argument("--train-subset", type=int, default=d.train_subset,
                      help="train on the first N training images only, for a quick try "
                           "(default: all 55000)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, default=d.epochs,
                              help="passes over the training set (default %(default)s)")
    optimisation.add_argument("--batch-size", type=int, default=d.batch_size,
                              help="examples per minibatch (default %(default)s)")
    optimisation.add_argument("--lr", type=float, default=d.lr,
                              help="Adam learning rate (peak of the schedule; default %(default)s)")
    optimisation.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                              help="constant, or cosine decay to zero over all epochs "
                                   "(default %(default)s)")
    optimisation.add_argument("--clip", type=float, default=d.clip,
                              help="clip gradients to this global norm; 0 turns clipping off "
                                   "(default %(default)s)")
    optimisation.add_argument("--seed", type=int, default=d.seed,
                              help="seed for weights, shuffling, crops and dropout "
                                   "(default %(default)s)")


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config that the flags describe; raises ConfigError on bad values."""
    hidden = args.hidden or Config().hidden
    if len(hidden) == 1:
        hidden = hidden * max(args.layers, 1)
    elif len(hidden) != args.layers:
        raise ConfigError(f"--hidden gives {len(hidden)} sizes for --layers {args.layers}: "
                          "give one size, or one per layer")
    return Config(layers=args.layers, hidden=hidden, bidirectional=args.bidirectional,
                  head_hidden=args.head_hidden, dropout=args.dropout, crop=args.crop,
                  crop_min=args.crop_min, crop_max=args.crop_max, crop_seed=args.crop_seed,
                  train_subset=args.train_subset, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, lr_schedule=args.lr_schedule, clip=args.clip, seed=args.seed)
