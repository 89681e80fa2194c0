"""What a trained model gets wrong: a confusion matrix and a gallery of its most confident errors.

`write_report` writes into one folder:

    confusion_matrix.csv   10x10 counts, rows = true digit, columns = predicted digit
    confusion_matrix.png   the same counts as an annotated heatmap
    worst_errors.png       the misclassified images with the highest confidence in the wrong class
"""

import csv
import io
import math
import os
from typing import List

import numpy as np

from lstm_mnist.data import Split
from lstm_mnist.errors import UserError
from lstm_mnist.figures import new_figure, save_figure
from lstm_mnist.files import write_atomic
from lstm_mnist.model import NUM_CLASSES, Model
from lstm_mnist.tf1 import tf

CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
WORST_ERRORS_PNG = "worst_errors.png"
WORST_COUNT = 36  # images in the gallery: a 6x6 grid
GRID_COLUMNS = 6


def split_probabilities(session: tf.Session, model: Model, split: Split,
                        batch_size: int) -> np.ndarray:
    """Runs a restored model over every example of `split`, in order, with dropout off.

    Returns:
      float32 `[examples, 10]`, the class probabilities.
    """
    return np.concatenate([model.predict(session, split.images[start:start + batch_size])
                           for start in range(0, len(split), batch_size)])


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts of (true digit, predicted digit) pairs.

    Args:
      labels, predictions: int `[examples]`, digits 0..9.

    Returns:
      int64 `[10, 10]`; entry `[t, p]` counts the examples of digit t predicted as p.
    """
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def worst_errors(labels: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """The misclassified examples the model was most sure about.

    Args:
      labels: int `[examples]`.
      probabilities: float `[examples, 10]`.
      count: at most this many are returned.

    Returns:
      int64 `[min(count, errors)]`, indices of misclassified examples by decreasing probability of
      the predicted (wrong) class.
    """
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def write_report(folder: str, images: np.ndarray, labels: np.ndarray,
                 probabilities: np.ndarray) -> List[str]:
    """Writes the confusion matrix (CSV and PNG) and the worst-errors gallery into `folder`.

    Args:
      folder: created if missing; existing report files are replaced.
      images: float32 `[examples, 28, 28]` in [0, 1].
      labels: int `[examples]`, the true digits.
      probabilities: float `[examples, 10]`, the model's class probabilities.

    Returns:
      The paths written.
    """
    if not len(images) == len(labels) == len(probabilities):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(probabilities)} "
                         "rows of probabilities: expected one of each per example")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create ({error.strerror})") from None
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1))
    paths = [os.path.join(folder, name) for name in (CONFUSION_CSV, CONFUSION_PNG,
                                                     WORST_ERRORS_PNG)]
    write_atomic(paths[0], _confusion_csv(matrix))
    save_figure(confusion_figure(matrix), paths[1])
    save_figure(_worst_errors_figure(images, labels, probabilities,
                                     worst_errors(labels, probabilities, WORST_COUNT)), paths[2])
    return paths


def _confusion_csv(matrix: np.ndarray) -> str:
    """A header row of predicted digits, then one row per true digit led by that digit."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *range(NUM_CLASSES)])
    for digit, row in enumerate(matrix):
        writer.writerow([digit, *row])
    return buffer.getvalue()


def confusion_figure(matrix: np.ndarray):
    """A heatmap of `matrix` [10, 10] with every count written in its cell."""
    figure = new_figure(6.5, 6)
    axes = figure.subplots()
    # Shade by log count: next to ~1000 correct images per digit, a handful of errors would
    # otherwise be as pale as zero.
    shade = np.log1p(matrix)
    axes.imshow(shade, cmap="Blues")
    for (true, predicted), count in np.ndenumerate(matrix):
        axes.text(predicted, true, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shade[true, predicted] > shade.max() / 2 else "black")
    total, correct = matrix.sum(), np.trace(matrix)
    axes.set(xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES), xlabel="predicted digit",
             ylabel="true digit", title=f"{total} images, {total - correct} errors "
                                        f"({100 * (total - correct) / max(total, 1):.2f}%)")
    return figure


def _worst_errors_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                         indices: np.ndarray):
    """A grid of `images[indices]`, each titled with its true and predicted digit."""
    rows = max(1, math.ceil(len(indices) / GRID_COLUMNS))
    figure = new_figure(1.5 * GRID_COLUMNS, 1.6 * rows + 0.4)
    grid = figure.subplots(rows, GRID_COLUMNS, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, index in zip(grid.flat, indices):
        predicted = probabilities[index].argmax()
        axes.imshow(images[index], cmap="gray_r", vmin=0.0, vmax=1.0)
        axes.set_title(f"true {labels[index]} / pred {predicted} "
                       f"(p={probabilities[index, predicted]:.2f})", fontsize=8)
    figure.suptitle(f"the {len(indices)} misclassified images with the most confident predictions"
                    if len(indices) else "no misclassified images")
    return figure
