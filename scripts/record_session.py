"""Give finished runs that predate TensorBoard's HParams sessions (trained before runs recorded
one) their session, from their own config.json, metrics.csv and results.json.

    python scripts/record_session.py logs/part2 logs/part2-bidir
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="record_session.py", description="Write the TensorBoard HParams session of each "
        "finished run that has none (its hyperparameters, best validation and test results, "
        "start and end), read from the run's own files, so `tensorboard --logdir logs` lists it "
        "in the HParams table. Runs trained by this version record their session themselves; a "
        "run that has one is refused and left as it is.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="a finished run's log folder, such as logs/part2")
    args = parser.parse_args(argv)
    from lstm_mnist.dashboard import record_session  # imports TensorFlow: flags first
    for run in args.runs:
        record_session(run)
        print(f"{cli.printable(run)}: session written")


if __name__ == "__main__":
    cli.run(main, "record_session.py")
