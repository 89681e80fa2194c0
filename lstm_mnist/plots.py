"""Learning curves from runs' metrics.csv: error and loss per epoch, several runs overlaid."""

import csv
import math
import os
from typing import Dict, List, Optional, Sequence

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
# The labelled ticks of a log axis are 1, 2 and 5 times a power of ten, or 1, 2, 3 and 5; where
# fewer than MIN_TICKS of those fall in the drawn range, every multiple of the first of these steps
# (times the power of ten) that puts MIN_TICKS there.
ROUND_MANTISSAS = ((1, 2, 5), (1, 2, 3, 5))
MANTISSA_STEPS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
MIN_TICKS = 3


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


def plot_runs(run_dirs: Sequence[str], output: Optional[str] = None):
    """Writes a PNG of the learning curves of one or more runs, overlaid.

    Args:
      run_dirs: run log folders, each holding a metrics.csv; the folder name labels the run (the
        whole path if two runs share a folder name).
      output: the PNG to write (default: `default_output(run_dirs)`, i.e. `<first run>/curves.png`);
        it is written aside and renamed into place.

    Returns:
      The matplotlib Figure that was saved.

    Raises:
      MetricsError: a run's metrics.csv is missing, unreadable or empty.
      UserError: the PNG cannot be written.
    """
    paths = [os.path.normpath(run_dir) for run_dir in run_dirs]
    names = [os.path.basename(path) for path in paths]
    if len(set(names)) < len(names):
        names = paths
    runs = {name: read_metrics(path) for name, path in zip(names, paths)}
    figure = curves_figure(runs)
    save_figure(figure, output or default_output(run_dirs))
    return figure


def curves_figure(runs: Dict[str, Dict[str, np.ndarray]]):
    """Two panels, error (%) and loss per epoch, with every run's train and validation curves.

    Args:
      runs: `{run name: read_metrics(...)}`; each run gets its own colour.

    Returns:
      A matplotlib Figure whose lines are labelled `<run> <curve>` (e.g. `part1 validation`), on
      log axes labelled as plain numbers (0.5%, 1%, 2%, 5%; 0.02, 0.05, 0.1).
    """
    from matplotlib.ticker import MaxNLocator
    figure = new_figure(11, 4.5)
    error_axes, loss_axes = figure.subplots(1, 2)
    for axes, metric, scale, unit in ((error_axes, "error", 100.0, "%"),
                                      (loss_axes, "loss", 1.0, "")):
        for index, (name, metrics) in enumerate(runs.items()):
            for template, curve, style in CURVES:
                column = template.format(metric)
                if column in metrics:
                    axes.plot(metrics["epoch"], scale * metrics[column], style, marker=".",
                              color=f"C{index % 10}", label=_literal(f"{name} {curve}"))
        # Errors and losses shrink by orders of magnitude; a log axis keeps late epochs readable.
        axes.set_yscale("log", nonpositive="mask")
        _label_log_axis(axes.yaxis, *axes.get_ylim(), unit)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set(xlabel="epoch", ylabel=f"{metric} (log scale)", title=f"{metric} per epoch")
        axes.grid(True, which="major", alpha=0.4)
        axes.grid(True, which="minor", alpha=0.15)
    # Lines and labels given explicitly: matplotlib drops the labels that start with "_".
    lines = error_axes.get_lines()
    error_axes.legend(lines, [line.get_label() for line in lines], fontsize="small")
    return figure


def _literal(text: str) -> str:
    """`text` as matplotlib shows it literally: a run name's `$` would start mathtext."""
    return text.replace("$", r"\$")


def log_ticks(low: float, high: float) -> List[float]:
    """Round values to label a log axis from `low` to `high` (both > 0), as coarse as leaves
    MIN_TICKS of them in the range (see ROUND_MANTISSAS and MANTISSA_STEPS); fewer only if the
    range is narrower than about 0.2% of its values."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    levels = [*ROUND_MANTISSAS, *([k * step for k in range(round(1 / step), round(10 / step))]
                                  for step in MANTISSA_STEPS)]
    for mantissas in levels:
        ticks = [float(f"{mantissa * 10.0 ** decade:.12g}")
                 for decade in decades for mantissa in mantissas]
        ticks = [tick for tick in ticks if low <= tick <= high]
        if len(ticks) >= MIN_TICKS:
            break
    return ticks


def _label_log_axis(axis, low: float, high: float, unit: str):
    """Labels `axis` at `log_ticks(low, high)` as plain numbers followed by `unit`."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    axis.set_major_locator(FixedLocator(log_ticks(low, high)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}{unit}"))
    axis.set_minor_formatter(NullFormatter())


def _column(path: str, rows, name: str) -> np.ndarray:
    try:
        return np.array([float(row[name]) for row in rows])
    except (TypeError, ValueError):
        raise MetricsError(f"{path}: column {name} holds a value that is not a number") from None
