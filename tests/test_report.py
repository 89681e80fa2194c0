"""The evaluation report (lstm_mnist.report, eval.py --report): confusion matrix and the most
confident mistakes."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import run_script
from lstm_mnist.report import worst_errors, write_report


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


@pytest.mark.slow
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
