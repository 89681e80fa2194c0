"""Learning curves from runs' metrics.csv: error and loss per epoch, several runs overlaid."""

import csv
import os
from typing import Dict, Sequence

import numpy as np

from lstm_mnist.errors import UserError
from lstm_mnist.runs import METRICS_FILE
from lstm_mnist.figures import new_figure, save_figure

CURVES_FILE = "curves.png"
REQUIRED_COLUMNS = ("epoch", "train_loss", "train_error", "validation_loss", "validation_error")
# (column of metric {}, legend text, line style) of the curves in each panel; the cropped curve is
# drawn only for runs whose metrics.csv has it (crop mode).
CURVES = (("train_{}", "train", "--"), ("validation_{}", "validation", "-"),
          ("validation_{}_cropped", "validation (cropped)", ":"))


class MetricsError(UserError):
    """A run's metrics.csv is missing, unreadable or empty."""


def read_metrics(run_dir: str) -> Dict[str, np.ndarray]:
    """Reads the numeric columns of `<run_dir>/metrics.csv`.

    Returns:
      `{column: float64 [epochs]}` for every column but the timestamp.

    Raises:
      MetricsError: naming the file, if it is missing, unreadable, empty or lacks a column.
    """
    path = os.path.join(run_dir, METRICS_FILE)
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            rows = list(reader)
            columns = reader.fieldnames or []
    except OSError as error:
        raise MetricsError(f"{path}: cannot read ({error.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise MetricsError(f"{path}: not a CSV file ({error})") from None
    if not columns:
        raise MetricsError(f"{path}: is empty")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise MetricsError(f"{path}: not a metrics file: missing column {', '.join(missing)}")
    if not rows:
        raise MetricsError(f"{path}: has no epochs yet")
    return {name: _column(path, rows, name) for name in columns if name != "timestamp"}


def default_output(run_dirs: Sequence[str]) -> str:
    """Where `plot_runs` writes by default: curves.png in the first run's folder."""
    return os.path.join(run_dirs[0], CURVES_FILE)


def plot_runs(run_dirs: Sequence[str], output: str):
    """Writes a PNG of the learning curves of one or more runs, overlaid.

    Args:
      run_dirs: run log folders, each holding a metrics.csv; the folder name labels the run (the
        whole path if two runs share a folder name).
      output: the PNG to write.

    Returns:
      The matplotlib Figure that was saved.
    """
    paths = [os.path.normpath(run_dir) for run_dir in run_dirs]
    names = [os.path.basename(path) for path in paths]
    if len(set(names)) < len(names):
        names = paths
    runs = {name: read_metrics(path) for name, path in zip(names, paths)}
    figure = curves_figure(runs)
    save_figure(figure, output)
    return figure


def curves_figure(runs: Dict[str, Dict[str, np.ndarray]]):
    """Two panels, error (%) and loss per epoch, with every run's train and validation curves.

    Args:
      runs: `{run name: read_metrics(...)}`; each run gets its own colour.

    Returns:
      A matplotlib Figure whose lines are labelled `<run> <curve>` (e.g. `part1 validation`).
    """
    from matplotlib.ticker import MaxNLocator
    figure = new_figure(11, 4.5)
    error_axes, loss_axes = figure.subplots(1, 2)
    for axes, metric, scale, label in ((error_axes, "error", 100.0, "error (%)"),
                                       (loss_axes, "loss", 1.0, "loss")):
        for index, (name, metrics) in enumerate(runs.items()):
            for template, curve, style in CURVES:
                column = template.format(metric)
                if column in metrics:
                    axes.plot(metrics["epoch"], scale * metrics[column], style, marker=".",
                              color=f"C{index % 10}", label=f"{name} {curve}")
        # Errors and losses shrink by orders of magnitude; a log axis keeps late epochs readable.
        axes.set_yscale("log", nonpositive="mask")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(xlabel="epoch", ylabel=label, title=f"{metric} per epoch")
        axes.grid(True, which="both", alpha=0.3)
    error_axes.legend(fontsize="small")
    return figure


def _column(path: str, rows, name: str) -> np.ndarray:
    try:
        return np.array([float(row[name]) for row in rows])
    except (TypeError, ValueError):
        raise MetricsError(f"{path}: column {name} holds a value that is not a number") from None
