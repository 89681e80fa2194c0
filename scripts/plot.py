"""Plot learning curves (error and loss per epoch) of one or more runs from their metrics.csv.

    python scripts/plot.py logs/part1                                   # -> logs/part1/curves.png
    python scripts/plot.py logs/part2 logs/part2-bidir --output part2.png  # runs overlaid
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lstm_mnist import cli  # noqa: E402
from lstm_mnist.plots import default_output, plot_runs  # noqa: E402


def main(argv):
    parser = cli.ArgumentParser(
        prog="plot.py", uses_tensorflow=False, description="Draw the train and validation error and loss per epoch of "
        "one or more runs (and the cropped validation curve of --crop runs), read from each run's "
        "metrics.csv, overlaid in one PNG with a legend naming each run.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="a run's log folder holding metrics.csv, such as logs/part1")
    parser.add_argument("--output", help="the PNG to write (default: RUN_DIR/curves.png of the "
                                         "first run)")
    args = parser.parse_args(argv)
    output = args.output or default_output(args.runs)
    plot_runs(args.runs, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    cli.run(main, "plot.py")
