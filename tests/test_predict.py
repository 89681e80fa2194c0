"""Classifying image files (lstm_mnist.predict, scripts/predict.py): the committed Part 1 model
reads real digits in the forms users have them; the script's output and one-line errors."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import ROOT, assert_one_line_error, grey_image, run_script
from lstm_mnist.images import ImageError, to_mnist
from lstm_mnist.predict import Classifier, Prediction, predict_files

PART1 = os.path.join(ROOT, "checkpoints", "part1")


def _save(image, path):
    image.save(path)
    return str(path)


def _forms(digit):
    """One MNIST digit [28, 28] drawn five ways, as the PIL images a user might have."""
    grey = grey_image(digit)
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
    upright = ImageOps.invert(grey_image(digit)).resize((112, 112), Image.BICUBIC).convert("RGB")
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


def _bad_files(folder):
    """An empty image and a file that is no image at all."""
    blank = _save(Image.new("L", (40, 40), 255), folder / "blank.png")
    not_image = folder / "notes.png"
    not_image.write_text("not an image\n")
    return blank, str(not_image)


@pytest.mark.slow
def test_predict_script_reports_bad_files_in_one_line_each_and_predicts_the_others(
        tiny_checkpoint, mnist, tmp_path):
    good = [_save(grey_image(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(2)]
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


@pytest.mark.slow
def test_predict_script_json_has_one_object_per_image_in_order(tiny_checkpoint, mnist, tmp_path):
    paths = [_save(grey_image(mnist.test.images[i]), tmp_path / f"digit{i}.png") for i in range(3)]
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


@pytest.mark.slow
def test_predict_script_rejects_a_missing_checkpoint_in_one_line(tmp_path):
    image = _save(Image.new("L", (28, 28)), tmp_path / "digit.png")
    result = run_script("predict.py", "--checkpoint", str(tmp_path / "nowhere"), image)
    assert_one_line_error(result, "no such checkpoint or folder")
    assert result.returncode == 2
