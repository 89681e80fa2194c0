"""Training and inference throughput of our LSTM vs TensorFlow's fused BlockLSTM and a naive loop.

Everything runs in one process and the implementations take turns (the order rotating every
repeat), so the noise of a shared machine hits all of them alike; the reported numbers are medians
over repeats. A training step is what `train.py` does for one minibatch: prepare the batch (crop,
pad, feed), forward, loss, backward, clipping and the Adam update.
"""

import resource
import statistics
import time
from typing import Dict, List

import numpy as np
import tensorflow.compat.v1 as tf

from benchmarks.references import BlockLSTMStack, NaiveLoopStack
from lstm_mnist.config import Config
from lstm_mnist.data import load_mnist
from lstm_mnist.evaluate import session_config
from lstm_mnist.lstm import LSTMStack
from lstm_mnist.model import Model
from lstm_mnist.sequences import draw_crops, to_sequences

CONFIGS = {
    "part1": Config(),
    "part2": Config(layers=2, hidden=(128, 128), crop=True),
    "part2-bidir": Config(layers=2, hidden=(128, 128), crop=True, bidirectional=True),
}
IMPLEMENTATIONS = {"ours": LSTMStack, "blocklstm": BlockLSTMStack, "naive": NaiveLoopStack}


class Candidate:
    """One implementation's training graph in its own session, and a timer for it."""

    def __init__(self, config: Config, lstm_class):
        self.config = config
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(config.seed)
            self.model = Model(config, config.optimizer(1000), lstm_class=lstm_class)
            initialize = tf.global_variables_initializer()
        self.session = tf.Session(graph=self.graph, config=session_config())
        self.session.run(initialize)

    def measure(self, images, labels, rng, seconds: float, train: bool) -> Dict[str, float]:
        """Runs steps for about `seconds`; returns examples/s and the batch-preparation share."""
        model, config = self.model, self.config
        fetches = [model.train_op, model.grad_norm, model.loss] if train else model.loss
        prepare_time = run_time = 0.0
        examples = 0
        while prepare_time + run_time < seconds or examples == 0:
            started = time.perf_counter()
            chosen = rng.integers(0, len(labels), config.batch_size)
            crops = (draw_crops(rng, len(chosen), config.crop_min, config.crop_max)
                     if config.crop else None)
            inputs, lengths = to_sequences(images[chosen], crops)
            feed = {model.inputs: inputs, model.lengths: lengths, model.labels: labels[chosen]}
            if train and config.dropout > 0:
                feed[model.dropout_rate] = config.dropout
            prepared = time.perf_counter()
            self.session.run(fetches, feed)
            prepare_time += prepared - started
            run_time += time.perf_counter() - prepared
            examples += len(chosen)
        return {"examples_per_s": examples / (prepare_time + run_time),
                "input_share": prepare_time / (prepare_time + run_time)}

    def close(self):
        self.session.close()


def benchmark(names: List[str], seconds: float, repeats: int, warmup_steps: int = 3) -> dict:
    """Returns `{"configs": [one result object per config name]}` (see scripts/bench.py)."""
    mnist = load_mnist()
    images, labels = mnist.train.images, mnist.train.labels
    rng = np.random.default_rng(0)
    results = []
    for name in names:
        config = CONFIGS[name]
        candidates = {impl: Candidate(config, cls) for impl, cls in IMPLEMENTATIONS.items()}
        samples = {(impl, mode): [] for impl in candidates for mode in ("train", "infer")}
        shares = []
        for candidate in candidates.values():  # first runs pay for graph optimisation
            for train in (True, False):
                candidate.measure(images, labels, rng, 0.0, train)
        order = list(candidates)
        for repeat in range(repeats):
            for impl in order[repeat % len(order):] + order[:repeat % len(order)]:
                for mode in ("train", "infer"):
                    measured = candidates[impl].measure(images, labels, rng, seconds,
                                                        mode == "train")
                    samples[impl, mode].append(measured["examples_per_s"])
                    if impl == "ours" and mode == "train":
                        shares.append(measured["input_share"])
        for candidate in candidates.values():
            candidate.close()
        median = {key: statistics.median(values) for key, values in samples.items()}
        results.append({
            "name": name,
            "config": config.to_dict(),
            "ours_examples_per_s": median["ours", "train"],
            "blocklstm_examples_per_s": median["blocklstm", "train"],
            "naive_examples_per_s": median["naive", "train"],
            "ratio_vs_blocklstm": median["ours", "train"] / median["blocklstm", "train"],
            "ratio_vs_naive": median["ours", "train"] / median["naive", "train"],
            "inference": {impl: median[impl, "infer"] for impl in candidates},
            "inference_ratio_vs_blocklstm": median["ours", "infer"] / median["blocklstm", "infer"],
            "input_share": statistics.median(shares),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "repeats": repeats,
            "seconds_per_measurement": seconds,
        })
    return {"configs": results, "tensorflow_version": tf.__version__}
