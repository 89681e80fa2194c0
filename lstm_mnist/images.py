"""Bringing ordinary image files of a digit into the form MNIST was made in.

MNIST's form: a light digit on a black background, its bounding box scaled so that the longer side
is 20 pixels, placed in a 28x28 field so that the centre of mass of the pixel intensities falls on
the field's centre. Before that, a picture is turned upright as its EXIF orientation tag says
(phone photos), and a transparent canvas is laid on a background that contrasts with the strokes
(drawing apps export a digit as strokes in the alpha channel over invisible, often black, pixels).
"""

import os
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lstm_mnist.errors import UserError
from lstm_mnist.sequences import IMAGE_SIZE

DIGIT_SIZE = 20  # MNIST scaled every digit's bounding box to fit 20x20 pixels
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (of full scale)
INK_THRESHOLD = 0.1  # a pixel belongs to the bounding box above this fraction of the strongest ink
# Larger images are refused before their pixels are decoded: 50 megapixels holds an 8000 x 6000
# phone photo, and below Pillow's own decompression-bomb limit (89 megapixels) Pillow stays quiet.
MAX_PIXELS = 50_000_000


class ImageError(UserError):
    """An image file is unreadable, too large, or holds no digit.

    Attributes:
      file: the path as given, or None for an image that did not come from a file.
      reason: what is wrong, without the path.
    """

    def __init__(self, reason: str, file: Optional[str] = None):
        super().__init__(reason if file is None else f"{file}: {reason}")
        self.file, self.reason = file, reason

    def to_dict(self) -> dict:
        return {"file": self.file, "error": self.reason}


def read_digit(path: str) -> np.ndarray:
    """Reads an image file and returns `to_mnist` of it, float32 `[28, 28]`.

    Raises:
      ImageError: naming the file, if it cannot be read as an image, has more than MAX_PIXELS
        pixels or holds no digit.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        raise ImageError("not a regular file (a folder, FIFO or device)", path)
    try:
        with warnings.catch_warnings():
            # Pillow warns about images above its own limit; ours is lower and says it in one line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(_too_large(f"{image.width} x {image.height} pixels"), path)
                image.load()  # reads the pixels now, so a truncated file fails here
    except UnidentifiedImageError:
        raise ImageError("cannot read image (not an image format Pillow knows)", path) from None
    except Image.DecompressionBombError:  # over twice Pillow's limit: refused as it is opened
        pillow_limit = 2 * Image.MAX_IMAGE_PIXELS // 10 ** 6
        raise ImageError(_too_large(f"more than {pillow_limit} megapixels"), path) from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ImageError(f"cannot read image ({reason})", path) from None
    try:
        return to_mnist(image)
    except ImageError as error:
        raise ImageError(error.reason, path) from None


def to_mnist(image: Image.Image) -> np.ndarray:
    """Brings a picture of one digit into MNIST's form.

    Args:
      image: any size and mode; dark ink on a light background or light ink on a dark one, or
        strokes on a transparent canvas; turned upright first if it has an EXIF orientation.

    Returns:
      float32 `[28, 28]` in [0, 1]: the digit light on black, its longer side 20 pixels, its
      centre of mass at (14, 14) to the nearest pixel.

    Raises:
      ImageError: the image holds no ink.
    """
    ink = _ink(_grey(ImageOps.exif_transpose(image)))
    rows, cols = np.nonzero(ink > INK_THRESHOLD)
    if rows.size == 0:
        raise ImageError("image is empty (no digit found)")
    box = _fit(ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1], DIGIT_SIZE)
    return _centre(box, IMAGE_SIZE)


def _too_large(size: str) -> str:
    return (f"image too large ({size}): the limit is {MAX_PIXELS // 10 ** 6} megapixels; "
            "scale it down or crop it to the digit")


def _grey(image: Image.Image) -> np.ndarray:
    """The image's luminance, float32 `[height, width]` in [0, 1], transparency composited.

    A transparent canvas is laid on white if its visible strokes are dark, on black if they are
    light, so that the strokes stand out whatever colour the invisible pixels happen to have.
    """
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    grey_alpha = np.asarray(image.convert("RGBA").convert("LA"), dtype=np.float32) / 255.0
    grey, alpha = grey_alpha[..., 0], grey_alpha[..., 1]
    visible = alpha.sum()
    strokes = (grey * alpha).sum() / visible if visible > 0 else 0.0
    background = 1.0 if strokes < 0.5 else 0.0
    return alpha * grey + (1.0 - alpha) * background


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
