"""The benchmark's minibatches and timer, shared by every candidate (TensorFlow's and PyTorch's)."""

import time
from typing import Callable, Dict, Tuple

import numpy as np

from lstm_mnist.config import Config
from lstm_mnist.sequences import draw_crops, to_sequences

Batch = Tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs [time, batch, 28], lengths, labels


class RandomBatches:
    """Random training minibatches prepared as `train.py` prepares them (Part 2: random crops)."""

    def __init__(self, config: Config, images: np.ndarray, labels: np.ndarray, seed: int = 0):
        self.config = config
        self.images, self.labels = images, labels
        self.rng = np.random.default_rng(seed)

    def draw(self) -> Batch:
        """Returns `(inputs [time, batch, 28], lengths [batch], labels [batch])`."""
        config = self.config
        chosen = self.rng.integers(0, len(self.labels), config.batch_size)
        crops = (draw_crops(self.rng, len(chosen), config.crop_min, config.crop_max)
                 if config.crop else None)
        inputs, lengths = to_sequences(self.images[chosen], crops)
        return inputs, lengths, self.labels[chosen]


def measure(run_step: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
            batches: RandomBatches, seconds: float) -> Dict[str, float]:
    """Prepares batches and runs `run_step(inputs, lengths, labels)` on each for about `seconds`
    (at least once).

    Returns:
      `{"examples_per_s": ..., "input_share": ...}`, the share of the time spent preparing batches.
    """
    prepare_time = run_time = 0.0
    examples = 0
    while prepare_time + run_time < seconds or examples == 0:
        started = time.perf_counter()
        inputs, lengths, labels = batches.draw()
        prepared = time.perf_counter()
        run_step(inputs, lengths, labels)
        prepare_time += prepared - started
        run_time += time.perf_counter() - prepared
        examples += len(labels)
    return {"examples_per_s": examples / (prepare_time + run_time),
            "input_share": prepare_time / (prepare_time + run_time)}
