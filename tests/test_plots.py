"""Learning-curve plots (lstm_mnist.plots, scripts/plot.py): every curve from metrics.csv,
readable log axes, one-line errors for a bad metrics file."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, run_script
from lstm_mnist.plots import MetricsError, curves_figure, log_ticks, plot_runs, read_metrics


def _write_metrics(folder, epochs, cropped, seed):
    """Writes a metrics.csv like the trainer's; returns its numeric columns as float arrays."""
    rng = np.random.default_rng(seed)
    columns = ["train_loss", "train_error", "validation_loss", "validation_error"]
    columns += ["validation_loss_cropped", "validation_error_cropped"] if cropped else []
    values = {name: np.round(rng.uniform(0.01, 0.5, epochs), 6) for name in columns}
    values["epoch"] = np.arange(1, epochs + 1, dtype=float)
    os.makedirs(folder)
    with open(os.path.join(folder, "metrics.csv"), "w", newline="") as stream:
        writer = csv.writer(stream)
        header = ["epoch", "timestamp", "elapsed_s", *columns, "grad_norm_mean", "grad_norm_max"]
        writer.writerow(header)
        for e in range(epochs):
            writer.writerow([e + 1, "2026-01-01T00:00:00+00:00", 10.0 * e,
                             *(values[c][e] for c in columns), 1.0, 2.0])
    return values


def test_plot_draws_every_curve_of_every_run_from_its_metrics(tmp_path):
    runs = {"full": _write_metrics(tmp_path / "full", 3, cropped=False, seed=0),
            "crops": _write_metrics(tmp_path / "crops", 5, cropped=True, seed=1)}
    output = tmp_path / "out" / "curves.png"
    figure = plot_runs([str(tmp_path / name) for name in runs], str(output))

    with Image.open(output) as png:
        assert png.format == "PNG"
        assert png.size == tuple(np.round(figure.get_size_inches() * figure.dpi).astype(int))
    error_axes, loss_axes = figure.axes
    for axes, metric, scale in ((error_axes, "error", 100), (loss_axes, "loss", 1)):
        lines = {line.get_label(): line for line in axes.lines}
        expected = {"full train": "train_", "full validation": "validation_",
                    "crops train": "train_", "crops validation": "validation_",
                    "crops validation (cropped)": "validation_"}
        assert set(lines) == set(expected)
        for label, prefix in expected.items():
            run = runs[label.split()[0]]
            column = prefix + metric + ("_cropped" if "cropped" in label else "")
            np.testing.assert_allclose(lines[label].get_xdata(), run["epoch"])
            np.testing.assert_allclose(lines[label].get_ydata(), scale * run[column])
        # Each run has one colour across its curves, different from the other run's.
        assert lines["full train"].get_color() == lines["full validation"].get_color()
        assert lines["full train"].get_color() != lines["crops train"].get_color()
    legend = [text.get_text() for text in error_axes.get_legend().get_texts()]
    assert sorted(legend) == sorted(expected)


def test_log_axes_are_labelled_in_plain_percent_and_numbers(tmp_path):
    errors = np.array([0.25, 0.1, 0.04, 0.015, 0.008, 0.004])  # 25% down to 0.4%
    runs = {"run": {"epoch": np.arange(1.0, 7.0), "train_error": errors, "validation_error": errors,
                    "train_loss": 4 * errors, "validation_loss": 4 * errors}}
    figure = curves_figure(runs)
    figure.canvas.draw()
    error_axes, loss_axes = figure.axes
    labels = [label.get_text() for label in error_axes.get_yticklabels() if label.get_visible()]
    low, high = error_axes.get_ylim()
    assert labels == [f"{tick:g}%" for tick in log_ticks(low, high)]
    assert {"0.5%", "1%", "2%", "5%", "10%", "20%"} <= set(labels)
    assert {"0.02", "0.05", "0.1", "0.2", "0.5", "1"} <= {
        label.get_text() for label in loss_axes.get_yticklabels()}


@pytest.mark.parametrize("low,high,ticks", [
    (0.3, 30, [0.5, 1, 2, 5, 10, 20]),
    (2.2, 18, [3, 5, 10]),  # 5 and 10 alone are too few
    (0.004, 0.3, [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]),
    (0.6, 2.5, [0.6, 0.7, 0.8, 0.9, 1, 2]),  # 1-2-5 would leave two labels
    (0.62, 0.93, [0.7, 0.8, 0.9]),
    (0.71, 0.84, [0.72, 0.74, 0.76, 0.78, 0.8, 0.82, 0.84]),  # none of 0.75, 0.8 is enough
    (2.3013, 2.3089, [2.302, 2.304, 2.306, 2.308]),  # one epoch of a tiny model: a flat loss
])
def test_log_ticks_are_round_and_at_least_three_when_possible(low, high, ticks):
    assert log_ticks(low, high) == ticks


@pytest.mark.parametrize("content,fragment", [
    ("", "is empty"),
    ("epoch,timestamp,train_loss,train_error,validation_loss,validation_error\n", "no epochs yet"),
    ("epoch,train_loss\n1,0.5\n", "missing column train_error, validation_loss, validation_error"),
    ("epoch,train_loss,train_error,validation_loss,validation_error\n1,0.5,x,0.5,0.1\n",
     "column train_error holds a value that is not a number"),
    (b"\xff\xfe\x00binary", "not a CSV file"),
])
def test_read_metrics_names_the_file_and_the_problem(tmp_path, content, fragment):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(MetricsError) as caught:
        read_metrics(str(tmp_path))
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_plot_script_writes_curves_png_by_default_and_rejects_a_run_without_metrics(tmp_path):
    _write_metrics(tmp_path / "run", 2, cropped=False, seed=0)
    result = run_script("plot.py", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    output = tmp_path / "run" / "curves.png"
    assert result.stdout.strip() == f"wrote {output}"
    with Image.open(output) as png:
        assert png.format == "PNG" and png.size == (1100, 450)
    # What the trainer calls at the end of a run: the same file, replaced in place.
    output.write_bytes(output.read_bytes()[:200])  # an older picture, cut short by a crash
    plot_runs([str(tmp_path / "run")])
    with Image.open(output) as png:
        assert png.format == "PNG" and png.size == (1100, 450)
    assert sorted(os.listdir(tmp_path / "run")) == ["curves.png", "metrics.csv"]  # no temp file

    (tmp_path / "empty-run").mkdir()
    missing = run_script("plot.py", str(tmp_path / "run"), str(tmp_path / "empty-run"))
    assert_one_line_error(missing, str(tmp_path / "empty-run" / "metrics.csv"),
                           "No such file or directory")
    assert missing.returncode == 2


@pytest.mark.parametrize("target", ["run/metrics.csv", "notes.txt", "photo.png", "folder"])
def test_plot_never_draws_over_a_file_it_did_not_draw(tmp_path, target):
    _write_metrics(tmp_path / "run", 2, cropped=False, seed=0)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    result = run_script("plot.py", str(tmp_path / "run"), "--output", str(tmp_path / target))
    assert_one_line_error(result, str(tmp_path / target), "not a picture this project drew")
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_run_names_that_matplotlib_would_read_as_markup_are_drawn_as_they_are(tmp_path):
    errors = np.array([0.25, 0.1])
    metrics = {"epoch": np.arange(1.0, 3.0), "train_error": errors, "validation_error": errors,
               "train_loss": errors, "validation_loss": errors}
    figure = curves_figure({"_hidden": metrics, "p$\\foo$": metrics})
    figure.canvas.draw()  # mathtext would fail here on \foo
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["_hidden train", "_hidden validation", "p\\$\\foo\\$ train",
                      "p\\$\\foo\\$ validation"]
