"""Image files to MNIST's form (lstm_mnist.images): inverting, cropping, scaling, centring,
refusing what holds no digit or is too large."""

import os

import numpy as np
import pytest
from PIL import Image

from helpers import grey_image
from lstm_mnist.images import INK_THRESHOLD, MAX_PIXELS, ImageError, read_digit, to_mnist

_ONE_PIXEL_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


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
        converted = to_mnist(grey_image(digit))
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


def test_read_digit_refuses_a_fifo_or_a_folder_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder.png").mkdir()
    for name in ("fifo.png", "folder.png"):
        with pytest.raises(ImageError, match="not a regular file"):
            read_digit(str(tmp_path / name))
