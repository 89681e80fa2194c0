"""Learning-curve plots, predicting image files, and the evaluation report."""

import csv
import json
import os
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import ROOT, run_script
from lstm_mnist.config import tiny_config
from lstm_mnist.images import INK_THRESHOLD, MAX_PIXELS, ImageError, read_digit, to_mnist
from lstm_mnist.plots import MetricsError, curves_figure, log_ticks, plot_runs, read_metrics
from lstm_mnist.predict import Classifier, Prediction, predict_files
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


@pytest.fixture(scope="module")
def part1():
    """The committed Part 1 model and 10 test digits it gets right as they are (so that a miss on
    another form of them is the image handling's): `(classifier, indices)`."""
    if not os.path.isdir(os.path.join(PART1, "best")):
        pytest.skip("checkpoints/part1 is not trained yet")
    from lstm_mnist.data import load_mnist
    test = load_mnist().test
    with Classifier(PART1) as classifier:
        plain = classifier.probabilities(test.images[:20]).argmax(axis=1)
        chosen = np.flatnonzero(plain == test.labels[:20])[:10]
        assert len(chosen) == 10
        yield classifier, chosen


def _predict_forms(classifier, mnist, indices, forms, folder, suffix=".png", **save_args):
    """Saves `forms(digit)` of each test digit, predicts the files; returns the wrong ones."""
    paths, expected = [], []
    for index in indices:
        for form, image in forms(mnist.test.images[index]).items():
            path = os.path.join(folder, f"{index}-{form}{suffix}")
            image.save(path, **save_args.get(form, {}))
            paths.append(path)
            expected.append(mnist.test.labels[index])
    answers = predict_files(classifier, paths)
    assert [answer.file for answer in answers] == paths
    assert all(isinstance(answer, Prediction) for answer in answers), answers
    return [f"{p.file}: {p.digit}" for p, label in zip(answers, expected) if p.digit != label]


def test_part1_checkpoint_predicts_real_digits_in_every_form(part1, mnist, tmp_path):
    classifier, chosen = part1
    assert not _predict_forms(classifier, mnist, chosen, _forms, tmp_path)


def _transparent_forms(digit):
    """One digit as drawing apps export it: strokes in the alpha channel of a transparent canvas,
    over invisible pixels of some colour."""
    alpha = np.pad(np.round(255 * digit).astype(np.uint8), 6)
    shape = alpha.shape + (3,)

    def canvas(strokes, invisible):
        rgb = np.where(alpha[..., None] > 0, strokes, invisible) * np.ones(shape)
        return Image.fromarray(np.dstack([rgb.astype(np.uint8), alpha]), "RGBA")

    black = np.zeros_like(alpha)
    return {"black-strokes": canvas((0, 0, 0), (0, 0, 0)),
            "blue-strokes-on-white": canvas((20, 30, 120), (255, 255, 255)),
            "white-strokes": canvas((255, 255, 255), (255, 255, 255)),
            "grey-alpha": Image.fromarray(np.dstack([black, alpha]), "LA")}


def test_part1_checkpoint_predicts_digits_drawn_on_a_transparent_canvas(part1, mnist, tmp_path):
    classifier, chosen = part1
    assert not _predict_forms(classifier, mnist, chosen, _transparent_forms, tmp_path)
    # Without the alpha channel, canvases with strokes the colour of the invisible pixels are
    # one flat colour: nothing to read.
    forms = _transparent_forms(mnist.test.images[chosen[0]])
    for name in ("black-strokes", "white-strokes", "grey-alpha"):
        with pytest.raises(ImageError, match="image is empty"):
            to_mnist(forms[name].convert("RGBA").convert("RGB"))


# EXIF orientation tag -> how the camera stored the pixels of an upright picture: turned so that
# the tag's turn (6: 90 degrees clockwise, 8: counter-clockwise, 3: half a turn) makes it upright.
STORED_TURN = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
               3: Image.Transpose.ROTATE_180}


def _phone_photos(digit):
    """One digit as phone photos store it: dark ink on white paper, sideways or upside down."""
    upright = ImageOps.invert(_grey(digit)).resize((112, 112), Image.BICUBIC).convert("RGB")
    return {f"orientation-{tag}": upright.transpose(turn) for tag, turn in STORED_TURN.items()}


def _exif(tag):
    exif = Image.Exif()
    exif[0x0112] = tag  # Orientation
    return {"exif": exif.tobytes(), "quality": 95}


def test_part1_checkpoint_predicts_exif_rotated_jpegs_upright(part1, mnist, tmp_path):
    classifier, chosen = part1
    tags = {f"orientation-{tag}": _exif(tag) for tag in STORED_TURN}
    assert not _predict_forms(classifier, mnist, chosen, _phone_photos, tmp_path, ".jpg", **tags)
    # The same pixels without the tag are read sideways or upside down, and many go wrong.
    (tmp_path / "untagged").mkdir()
    wrong = _predict_forms(classifier, mnist, chosen, _phone_photos, tmp_path / "untagged", ".jpg")
    assert len(wrong) >= 10, wrong


def test_read_digit_refuses_an_image_over_the_size_limit_in_one_line(tmp_path):
    large = str(tmp_path / "large.png")
    Image.new("1", (8000, MAX_PIXELS // 8000 + 1)).save(large)  # bilevel: a small file
    with pytest.raises(ImageError) as caught:
        read_digit(large)
    assert str(caught.value) == (f"{large}: image too large (8000 x {MAX_PIXELS // 8000 + 1} "
                                 "pixels): the limit is 50 megapixels; scale it down or crop it "
                                 "to the digit")
    # Pillow refuses images over twice its own limit as it opens them: the same message.
    huge = str(tmp_path / "huge.png")
    Image.new("1", (2 * Image.MAX_IMAGE_PIXELS // 10000 + 1, 10000)).save(huge)
    with pytest.raises(ImageError, match=r"huge.png: image too large \(more than \d+ megapixels"
                                         r"\): the limit is 50 megapixels"):
        read_digit(huge)


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


def _bad_files(folder):
    """An empty image and a file that is no image at all."""
    blank = _save(Image.new("L", (40, 40), 255), folder / "blank.png")
    not_image = folder / "notes.png"
    not_image.write_text("not an image\n")
    return blank, str(not_image)


def test_predict_script_reports_bad_files_in_one_line_each_and_predicts_the_others(
        tiny_checkpoint, mnist, tmp_path):
    good = [_save(_grey(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(2)]
    blank, not_image = _bad_files(tmp_path)
    result = run_script("predict.py", "--checkpoint", tiny_checkpoint, good[0], blank,
                        not_image, good[1])
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


def test_predict_script_json_has_one_object_per_image_in_order(tiny_checkpoint, mnist, tmp_path):
    paths = [_save(_grey(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(3)]
    blank, not_image = _bad_files(tmp_path)
    paths[1:1] = [blank, not_image]
    result = run_script("predict.py", "--checkpoint", tiny_checkpoint, "--json", *paths)
    assert result.returncode == 1 and result.stderr == ""
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["file"] for o in objects] == paths
    assert objects[1:3] == [
        {"file": blank, "error": "image is empty (no digit found)"},
        {"file": not_image, "error": "cannot read image (not an image format Pillow knows)"}]
    for obj in objects[:1] + objects[3:]:
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
    output.write_bytes(b"an older plot")
    plot_runs([str(tmp_path / "run")])
    with Image.open(output) as png:
        assert png.format == "PNG" and png.size == (1100, 450)
    assert sorted(os.listdir(tmp_path / "run")) == ["curves.png", "metrics.csv"]  # no temp file

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
