"""Train the hand-written LSTM on row-by-row MNIST.

    python scripts/train.py                                   # Part 1: the default 1-layer model
    python scripts/train.py --layers 2 --hidden 128,128 --crop  # Part 2: deep, variable length
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from lstm_mnist.errors import UserError  # noqa: E402
from lstm_mnist.runs import RunFolders  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="train.py", description="Train a hand-written TF1 LSTM classifier on MNIST rows. "
        "Every epoch validates on the 5000 held-out images and writes logs/<run>/ (metrics.csv, "
        "train.log, TensorBoard events) and checkpoints/<run>/ (latest and best).")
    cli.add_config_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--run-name", help="name of the run's folders (default: a timestamp)")
    run.add_argument("--logdir", default="logs", help="parent folder of run logs (default %(default)s)")
    run.add_argument("--checkpoint-dir", default="checkpoints",
                     help="parent folder of run checkpoints (default %(default)s)")
    run.add_argument("--data-dir", help="folder with the four MNIST IDX files, gzipped or raw "
                                        "(default: the copy shipped with the package)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing run of the same name")
    run.add_argument("--resume", metavar="CHECKPOINT_DIR",
                     help="continue the run in this checkpoint folder (checkpoints/<run>) from its "
                          "latest checkpoint, with its saved config; logs go on in --logdir/<run>")
    run.add_argument("--no-pictures", action="store_true",
                     help="leave out TensorBoard's pictures and histograms: each epoch's reading of "
                          "ten validation digits, the weights' and gates' histograms, and the test "
                          "confusion matrix at the end")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar, only one line per epoch (also when not on a terminal)")
    args = parser.parse_args(argv)
    progress = sys.stdout.isatty() and not args.quiet
    if args.resume:
        if args.run_name or args.overwrite:
            raise UserError("--resume continues an existing run: drop --run-name and --overwrite")
        changes = cli.config_changes(args)
        from lstm_mnist.trainer import resume  # imports TensorFlow: flags first
        resume(args.resume, logdir=args.logdir, data_dir=args.data_dir, changes=changes,
               progress=progress, pictures=not args.no_pictures)
        return
    config = cli.config_from_args(args)
    RunFolders.for_new_run(args.run_name, args.logdir, args.checkpoint_dir)  # names at once too
    from lstm_mnist.trainer import train  # imports TensorFlow: flags first
    train(config, run_name=args.run_name, logdir=args.logdir,
          checkpoint_dir=args.checkpoint_dir, data_dir=args.data_dir, overwrite=args.overwrite,
          progress=progress, pictures=not args.no_pictures)


if __name__ == "__main__":
    cli.run(main, "train.py")
