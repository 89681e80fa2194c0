"""Issue 5: learning-curve plots, predicting image files, and the evaluation report."""

import csv
import json
import os
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import ROOT, run_script
from lstm_mnist.config import tiny_config
from lstm_mnist.plots import MetricsError, plot_runs, read_metrics
from lstm_mnist.predict import INK_THRESHOLD, Classifier, ImageError, predict_files, to_mnist
from lstm_mnist.report import worst_errors, write_report
from test_cli import _assert_one_line_error

PART1 = os.path.join(ROOT, "checkpoints", "part1")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A one-epoch tiny model's checkpoint folder: for mechanics, not for accuracy."""
    from lstm_mnist.trainer import train
    folder = tmp_path_factory.mktemp("tiny")
    train(tiny_config(epochs=1), run_name="tiny", logdir=str(folder / "logs"),
          checkpoint_dir=str(folder / "checkpoints"), echo=False)
    return str(folder / "checkpoints" / "tiny")


def _grey(digit):
    """An MNIST image float32 [28, 28] as an 8-bit greyscale PIL image."""
    return Image.fromarray(np.round(255 * digit).astype(np.uint8))


def _save(image, path):
    image.save(path)
    return str(path)


_ONE_PIXEL_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


# ---------------------------------------------------------------------------------------------
# predict


def _forms(digit):
    """One MNIST digit [28, 28] drawn five ways, as the PIL images a user might have."""
    grey = _grey(digit)
    # Dark blue ink on yellowish paper.
    ink = digit[..., None]
    rgb = (1 - ink) * np.array([250, 240, 190]) + ink * np.array([20, 30, 120])
    canvas = Image.new("L", (120, 90))
    canvas.paste(grey, (80, 6))
    return {"plain": grey, "inverted": ImageOps.invert(grey),
            "upscaled": grey.resize((112, 112), Image.BICUBIC),
            "rgb": Image.fromarray(np.round(rgb).astype(np.uint8)), "off-centre": canvas}


def test_part1_checkpoint_predicts_real_digits_in_every_form(mnist, tmp_path):
    if not os.path.isdir(os.path.join(PART1, "best")):
        pytest.skip("checkpoints/part1 is not trained yet")
    with Classifier(PART1) as classifier:
        # Digits the model gets right as they are, so that a miss below is the image handling's.
        plain = classifier.probabilities(mnist.test.images[:20]).argmax(axis=1)
        chosen = np.flatnonzero(plain == mnist.test.labels[:20])[:10]
        assert len(chosen) == 10
        paths, expected = [], []
        for index in chosen:
            for form, image in _forms(mnist.test.images[index]).items():
                paths.append(_save(image, tmp_path / f"{index}-{form}.png"))
                expected.append(mnist.test.labels[index])
        predictions, errors = predict_files(classifier, paths)
    assert not errors
    assert [p.file for p in predictions] == paths
    wrong = [f"{p.file}: {p.digit}" for p, label in zip(predictions, expected) if p.digit != label]
    assert not wrong


def test_to_mnist_leaves_an_mnist_digit_almost_unchanged(mnist):
    shifts = []
    for digit in mnist.test.images[:100]:
        converted = to_mnist(_grey(digit))
        assert converted.shape == (28, 28) and converted.dtype == np.float32
        assert converted.min() >= 0 and converted.max() == pytest.approx(1.0)
        # A whole-pixel shift rounds the centre of mass to within half a pixel of the centre.
        np.testing.assert_allclose(_centre_of_mass(converted), (14, 14), atol=0.5 + 1e-6)
        # MNIST was made this way, so the digit comes back as it was, up to the faint rim below
        # the ink threshold and a one-pixel shift where its centre of mass rounds the other way.
        difference, shift = min((np.abs(np.roll(converted, offset, (0, 1)) - digit).max(), offset)
                                for offset in _ONE_PIXEL_SHIFTS)
        assert difference <= INK_THRESHOLD + 1e-6
        shifts.append(shift)
    assert shifts.count((0, 0)) > 90


def test_to_mnist_inverts_crops_scales_and_centres_a_dark_stroke():
    paper = np.full((200, 150), 230, dtype=np.uint8)  # light grey, not white
    paper[20:120, 100:125] = 10  # a dark bar, 100 x 25 pixels, far from the centre
    converted = to_mnist(Image.fromarray(paper))
    rows, cols = np.nonzero(converted > 0.5)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 5
    np.testing.assert_allclose(_centre_of_mass(converted), (14, 14), atol=0.5 + 1e-6)
    assert converted[0, 0] == 0 and converted.max() == pytest.approx(1.0)


@pytest.mark.parametrize("colour", [0, 128, 255, (255, 0, 0)])
def test_to_mnist_rejects_an_image_without_ink(colour):
    with pytest.raises(ImageError, match=r"is empty \(no digit found\)"):
        to_mnist(Image.new("L" if isinstance(colour, int) else "RGB", (40, 30), colour))


def test_predict_script_reports_bad_files_in_one_line_each_and_predicts_the_others(
        tiny_checkpoint, mnist, tmp_path):
    good = [_save(_grey(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(2)]
    blank = _save(Image.new("L", (40, 40), 255), tmp_path / "blank.png")
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image\n")
    result = run_script("predict.py", "--checkpoint", tiny_checkpoint, good[0], blank,
                        str(not_image), good[1])
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"predict.py: error: {blank}: image is empty (no digit found)",
        f"predict.py: error: {not_image}: cannot read image (not an image format Pillow knows)"]
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for path, line in zip(good, lines):
        match = re.fullmatch(re.escape(path) + r": digit (\d) \(p=([01]\.\d{3})\)  "
                             r"((\d:[01]\.\d{3} ?){10})", line)
        assert match, line
        probabilities = [float(item.split(":")[1]) for item in match.group(3).split()]
        assert [int(item[0]) for item in match.group(3).split()] == list(range(10))
        assert int(match.group(1)) == int(np.argmax(probabilities))
        assert float(match.group(2)) == max(probabilities)


def test_predict_script_json_has_ten_probabilities_summing_to_one(tiny_checkpoint, mnist,
                                                                  tmp_path):
    paths = [_save(_grey(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(3)]
    result = run_script("predict.py", "--checkpoint", tiny_checkpoint, "--json", *paths)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["file"] for o in objects] == paths
    for obj in objects:
        assert set(obj) == {"file", "digit", "probabilities"}
        assert len(obj["probabilities"]) == 10
        assert sum(obj["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert obj["digit"] == int(np.argmax(obj["probabilities"]))


def test_predict_script_rejects_a_missing_checkpoint_in_one_line(tmp_path):
    image = _save(Image.new("L", (28, 28)), tmp_path / "digit.png")
    result = run_script("predict.py", "--checkpoint", str(tmp_path / "nowhere"), image)
    _assert_one_line_error(result, "no such checkpoint or folder")
    assert result.returncode == 2


# ---------------------------------------------------------------------------------------------
# plot


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

    (tmp_path / "empty-run").mkdir()
    missing = run_script("plot.py", str(tmp_path / "run"), str(tmp_path / "empty-run"))
    _assert_one_line_error(missing, str(tmp_path / "empty-run" / "metrics.csv"),
                           "No such file or directory")
    assert missing.returncode == 2


# ---------------------------------------------------------------------------------------------
# report


def _synthetic_predictions(count, seed=0):
    """Random images, labels and probabilities that are right most of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    logits = rng.normal(size=(count, 10)) + 2.5 * np.eye(10)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.random((count, 28, 28), dtype=np.float32), labels, probabilities


def test_write_report_counts_equal_numpy_and_writes_the_images(tmp_path):
    images, labels, probabilities = _synthetic_predictions(500)
    paths = write_report(str(tmp_path / "report"), images, labels, probabilities)
    assert [os.path.basename(p) for p in paths] == ["confusion_matrix.csv", "confusion_matrix.png",
                                                     "worst_errors.png"]
    with open(paths[0], newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["true\\predicted", *map(str, range(10))]
    assert [row[0] for row in rows[1:]] == list(map(str, range(10)))
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    predictions = probabilities.argmax(axis=1)
    expected, _, _ = np.histogram2d(labels, predictions, bins=10, range=[[0, 10], [0, 10]])
    np.testing.assert_array_equal(counts, expected)
    assert 0 < counts.sum() - np.trace(counts) < 250  # some errors, so the gallery is not empty
    for path in paths[1:]:
        with Image.open(path) as png:
            assert png.format == "PNG" and min(png.size) > 100


def test_worst_errors_are_the_most_confident_mistakes():
    _, labels, probabilities = _synthetic_predictions(500, seed=1)
    chosen = worst_errors(labels, probabilities, 36)
    wrong = [i for i in range(500) if probabilities[i].argmax() != labels[i]]
    by_confidence = sorted(wrong, key=lambda i: -probabilities[i].max())
    assert list(chosen) == by_confidence[:36]
    assert len(worst_errors(labels, probabilities, 10 ** 6)) == len(wrong)


def test_eval_report_writes_the_test_set_report(tiny_checkpoint, tmp_path):
    result = run_script("eval.py", "--checkpoint", tiny_checkpoint, "--json",
                        "--report", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    with open(tmp_path / "report" / "confusion_matrix.csv", newline="") as stream:
        counts = np.array([[int(v) for v in row[1:]] for row in list(csv.reader(stream))[1:]])
    assert counts.sum() == 10000
    assert np.trace(counts) / 10000 == pytest.approx(numbers["test_accuracy"], abs=1e-9)
    for name in ("confusion_matrix.png", "worst_errors.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
