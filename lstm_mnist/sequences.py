"""Turning images into padded, time-major pixel sequences, optionally from random crops.

A full image is read row by row: 28 steps of 28 pixels. A crop of h x w pixels (Part 2) is flattened
row-major and cut into steps of 28 pixels, the last step zero-padded: ceil(h*w / 28) steps, so
sequences differ in length. A batch is padded to its longest sequence and `lengths` carries each
example's true number of steps.
"""

from typing import Iterator, NamedTuple, Optional, Tuple

import numpy as np

IMAGE_SIZE = 28  # MNIST images are IMAGE_SIZE x IMAGE_SIZE pixels
PIXELS_PER_STEP = 28  # one image row: the LSTM reads 28 pixels per time step


class Crops(NamedTuple):
    """One crop rectangle per example; every field is int64 `[examples]`."""

    height: np.ndarray
    width: np.ndarray
    top: np.ndarray
    left: np.ndarray

    def take(self, indices: np.ndarray) -> "Crops":
        return Crops(*(field[indices] for field in self))


def draw_crops(rng: np.random.Generator, count: int, crop_min: int, crop_max: int) -> Crops:
    """Draws `count` crops: height and width uniform in [crop_min, crop_max], position uniform."""
    height = rng.integers(crop_min, crop_max + 1, size=count)
    width = rng.integers(crop_min, crop_max + 1, size=count)
    top = rng.integers(0, IMAGE_SIZE - height + 1)
    left = rng.integers(0, IMAGE_SIZE - width + 1)
    return Crops(height, width, top, left)


def evaluation_crops(seed: int, count: int, crop_min: int, crop_max: int) -> Crops:
    """The fixed crops a model is measured (and explained) on: `draw_crops` from a generator seeded
    with `seed` alone, so example k gets the same crop at every call."""
    return draw_crops(np.random.default_rng(seed), count, crop_min, crop_max)


def to_sequences(images: np.ndarray, crops: Optional[Crops] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Cuts images (or crops of them) into time-major sequences of 28-pixel steps.

    Args:
      images: float32 `[batch, 28, 28]`.
      crops: one crop per image, or None to read the full images row by row.

    Returns:
      inputs: float32 `[time, batch, 28]`, zero after each sequence's end; `time` is the longest
        sequence of the batch.
      lengths: int32 `[batch]`, valid steps per example.
    """
    batch = len(images)
    if crops is None:
        return (np.ascontiguousarray(images.transpose(1, 0, 2)),
                np.full(batch, IMAGE_SIZE, dtype=np.int32))
    pixels = crops.height * crops.width
    lengths = -(-pixels // PIXELS_PER_STEP)  # ceil division
    steps = int(lengths.max())
    # Position p of the flattened crop is pixel (p // w, p % w) of the crop rectangle.
    position = np.arange(steps * PIXELS_PER_STEP)[None, :]
    valid = position < pixels[:, None]
    rows = np.where(valid, crops.top[:, None] + position // crops.width[:, None], 0)
    cols = np.where(valid, crops.left[:, None] + position % crops.width[:, None], 0)
    flat = images[np.arange(batch)[:, None], rows, cols] * valid
    inputs = flat.reshape(batch, steps, PIXELS_PER_STEP).transpose(1, 0, 2)
    return np.ascontiguousarray(inputs, dtype=np.float32), lengths.astype(np.int32)


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
            order: Optional[np.ndarray] = None,
            crops: Optional[Crops] = None) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields `(inputs [time, batch, 28], lengths [batch], labels [batch])` covering every example once.

    Args:
      images: float32 `[examples, 28, 28]`.
      labels: int `[examples]`.
      batch_size: examples per batch; the last batch holds the remainder.
      order: a permutation of the examples (e.g. a fresh shuffle each epoch), or None for file order.
      crops: one crop per example (indexed like `images`), or None for full images.
    """
    order = np.arange(len(labels)) if order is None else order
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        inputs, lengths = to_sequences(images[chosen], None if crops is None else crops.take(chosen))
        yield inputs, lengths, labels[chosen]
