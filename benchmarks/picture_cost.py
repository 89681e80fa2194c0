"""What TensorBoard's pictures and histograms (`train.py` without `--no-pictures`) cost a training
run, measured in parts, each the median of repeats in one process:

- building the graph with and without the trace the pictures read (`explain.Tracer`);
- one epoch's pictures and histograms (`Trainer._reading_summaries`);
- the end's confusion matrix: drawing it and encoding it (its predictions come from the test pass
  the run makes anyway).

    python -m benchmarks.picture_cost [--repeats 5]   # the default Part 1 model
"""

import argparse
import json
import statistics
import time

import numpy as np

from lstm_mnist import dashboard
from lstm_mnist.config import Config
from lstm_mnist.data import load_mnist
from lstm_mnist.figures import figure_png
from lstm_mnist.report import confusion_figure, confusion_matrix
from lstm_mnist.runs import RunFolders
from lstm_mnist.trainer import Trainer


def _seconds(action, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config, mnist = Config(), load_mnist()
    folders = RunFolders("unused-logs", "unused-checkpoints")  # nothing is written

    def build(pictures):
        Trainer(config, folders, mnist, pictures).session.close()

    build(True)  # the first build pays for TensorFlow's one-time start-up
    results = {"build_without_s": _seconds(lambda: build(False), args.repeats),
               "build_with_s": _seconds(lambda: build(True), args.repeats)}
    trainer = Trainer(config, folders, mnist, pictures=True)
    trainer.session.run(trainer.initialize)
    trainer._reading_summaries()  # the first run pays for graph optimisation
    results["epoch_pictures_s"] = _seconds(trainer._reading_summaries, args.repeats)
    labels = mnist.test.labels
    predictions = np.random.default_rng(0).integers(0, 10, len(labels))
    results["confusion_s"] = _seconds(lambda: dashboard.png_image(
        dashboard.CONFUSION_TAG, figure_png(confusion_figure(confusion_matrix(labels,
                                                                              predictions)))),
        args.repeats)
    results["run_total_s"] = (results["build_with_s"] - results["build_without_s"]
                              + config.epochs * results["epoch_pictures_s"]
                              + results["confusion_s"])
    print(json.dumps({key: round(value, 4) for key, value in results.items()}))


if __name__ == "__main__":
    main()
