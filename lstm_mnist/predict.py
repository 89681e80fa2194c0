"""Classifying digits from ordinary image files with a trained checkpoint.

An arbitrary picture of a digit is first brought into the form MNIST was made in: a light digit on
a black background, its bounding box scaled so that the longer side is 20 pixels, placed in a 28x28
field so that the centre of mass of the pixel intensities falls on the field's centre.
"""

from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from lstm_mnist.config import IMAGE_SIZE, load_config
from lstm_mnist.errors import UserError
from lstm_mnist.evaluate import resolve_checkpoint, restore, session_config
from lstm_mnist.model import Model
from lstm_mnist.tf1 import tf

DIGIT_SIZE = 20  # MNIST scaled every digit's bounding box to fit 20x20 pixels
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (of full scale)
INK_THRESHOLD = 0.1  # a pixel belongs to the bounding box above this fraction of the strongest ink


class ImageError(UserError):
    """An image file is unreadable, or holds no digit."""


class Prediction(NamedTuple):
    """The classifier's answer for one image file.

    Attributes:
      file: the path as given.
      digit: the most probable class.
      probabilities: float32 `[10]`, the softmax output.
    """

    file: str
    digit: int
    probabilities: np.ndarray

    def describe(self) -> str:
        """`file: digit D (p=0.997)` followed by all 10 probabilities, on one line."""
        confidence = self.probabilities[self.digit]
        classes = " ".join(f"{digit}:{p:.3f}" for digit, p in enumerate(self.probabilities))
        return f"{self.file}: digit {self.digit} (p={confidence:.3f})  {classes}"

    def to_dict(self) -> dict:
        return {"file": self.file, "digit": self.digit,
                "probabilities": [float(p) for p in self.probabilities]}


def to_mnist(image: Image.Image) -> np.ndarray:
    """Brings a picture of one digit into MNIST's form.

    Args:
      image: any size and mode; dark ink on a light background or light ink on a dark one.

    Returns:
      float32 `[28, 28]` in [0, 1]: the digit light on black, its longer side 20 pixels, its
      centre of mass at (14, 14) to the nearest pixel.

    Raises:
      ImageError: the image holds no ink.
    """
    ink = _ink(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    rows, cols = np.nonzero(ink > INK_THRESHOLD)
    if rows.size == 0:
        raise ImageError("image is empty (no digit found)")
    box = _fit(ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1], DIGIT_SIZE)
    return _centre(box, IMAGE_SIZE)


def read_digit(path: str) -> np.ndarray:
    """Reads an image file and returns `to_mnist` of it, float32 `[28, 28]`.

    Raises:
      ImageError: naming the file, if it cannot be read as an image or holds no digit.
    """
    try:
        with Image.open(path) as image:
            image.load()  # reads the pixels now, so a truncated file fails here
    except UnidentifiedImageError:
        raise ImageError(f"{path}: cannot read image (not an image format Pillow knows)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ImageError(f"{path}: cannot read image ({reason})") from None
    try:
        return to_mnist(image)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


class Classifier:
    """A trained model restored from its checkpoint folder, in its own graph and session.

    Use it as a context manager, or call `close()`, to release the session.
    """

    def __init__(self, checkpoint: str):
        """Rebuilds the model from the checkpoint's config.json and restores its weights.

        Args:
          checkpoint: a run's checkpoint folder (its best checkpoint is used) or one prefix.

        Raises:
          CheckpointError, ConfigError: the checkpoint or its config is missing or does not match.
        """
        self.prefix, config_path = resolve_checkpoint(checkpoint)
        config = load_config(config_path)
        graph = tf.Graph()
        with graph.as_default():
            self._model = Model(config)
            self._session = tf.Session(graph=graph, config=session_config())
            try:
                restore(self._session, self.prefix, self._model.model_variables)
            except UserError:
                self._session.close()
                raise
        graph.finalize()

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of images.

        Args:
          images: float32 `[N, 28, 28]`, MNIST-like (see `to_mnist`).

        Returns:
          float32 `[N, 10]`, each row summing to 1.
        """
        return self._model.predict(self._session, images)

    def close(self):
        self._session.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc_info):
        self.close()


def predict_files(classifier: Classifier,
                  paths: Sequence[str]) -> Tuple[List[Prediction], List[ImageError]]:
    """Classifies image files; a bad file does not stop the others.

    Returns:
      `(predictions of the readable files in the given order, one ImageError per bad file)`.
    """
    readable, digits, errors = [], [], []
    for path in paths:
        try:
            digits.append(read_digit(path))
            readable.append(path)
        except ImageError as error:
            errors.append(error)
    if not readable:
        return [], errors
    probabilities = classifier.probabilities(np.stack(digits))
    predictions = [Prediction(path, int(p.argmax()), p) for path, p in zip(readable, probabilities)]
    return predictions, errors


def _ink(grey: np.ndarray) -> np.ndarray:
    """Light-on-dark ink over a zero background, scaled so the strongest ink is 1.

    Args:
      grey: float32 `[height, width]` in [0, 1].

    Returns:
      float32 `[height, width]` in [0, 1]; all zero if the image has no contrast.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = np.median(border)
    # The border is mostly background; if it is lighter than the picture as a whole, the ink is
    # dark on a light ground and must be inverted to match MNIST's light-on-black digits.
    if background > grey.mean():
        grey, background = 1.0 - grey, 1.0 - background
    # Subtracting the background level also removes a grey (rather than black) ground.
    ink = np.clip(grey - background, 0.0, None)
    contrast = ink.max()
    return ink / contrast if contrast >= MIN_CONTRAST else np.zeros_like(ink)


def _fit(box: np.ndarray, size: int) -> np.ndarray:
    """Resizes `box` [h, w] so that its longer side is `size`, keeping the aspect ratio."""
    height, width = box.shape
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL wants (w, h)
    # Lanczos on a float image: sharp, anti-aliased and without 8-bit rounding.
    resized = np.asarray(Image.fromarray(box.astype(np.float32)).resize(shape, Image.LANCZOS))
    resized = np.clip(resized, 0.0, None)  # Lanczos rings slightly below zero next to edges
    return resized / resized.max()  # strongest ink = 1, as in MNIST, even after thin strokes blur


def _centre(box: np.ndarray, size: int) -> np.ndarray:
    """Places `box` in a black `size` x `size` field with its centre of mass at the middle.

    The shift is rounded to whole pixels and limited so that no ink falls off the field.

    Returns:
      float32 `[size, size]`.
    """
    height, width = box.shape
    rows, cols = np.indices(box.shape)
    total = box.sum()
    top = _place((rows * box).sum() / total, height, size)
    left = _place((cols * box).sum() / total, width, size)
    field = np.zeros((size, size), dtype=np.float32)
    field[top:top + height, left:left + width] = box
    return field


def _place(centre_of_mass: float, extent: int, size: int) -> int:
    """Offset putting `centre_of_mass` (in box pixels) at `size / 2`, keeping the box inside."""
    return int(np.clip(round(size / 2 - centre_of_mass), 0, size - extent))
