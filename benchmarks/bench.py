"""Training and inference throughput of our LSTM vs TensorFlow's fused BlockLSTM, the textbook LSTM
(`--lstm textbook`) and PyTorch's nn.LSTM.

The TensorFlow implementations run in this process, PyTorch's mirror of the classifier in a
process of its own (`benchmarks/torch_process.py`), and all take turns (the order rotating every
repeat), so the noise of a shared machine hits all of them alike; the reported numbers are medians
over repeats. A training step is what `train.py` does for one minibatch: prepare the batch (crop,
pad, feed), forward, loss, backward, clipping and the Adam update.
"""

import os
import resource
import statistics
from typing import Dict, List, Optional


from benchmarks.configs import CONFIGS
from benchmarks.references import BlockLSTMStack
from benchmarks.timing import RandomBatches, measure
from benchmarks.torch_process import TorchCandidate, torch_missing
from lstm_mnist.config import Config
from lstm_mnist.data import load_mnist
from lstm_mnist.lstm import LSTMStack
from lstm_mnist.model import Model
from lstm_mnist.tf1 import session_config, tf

# Each candidate in TensorFlow: the stack class and the config change it trains with.
IMPLEMENTATIONS = {"ours": (LSTMStack, {}), "blocklstm": (BlockLSTMStack, {}),
                   "textbook": (LSTMStack, {"lstm": "textbook"})}
STEPS_PER_EPOCH = 1000  # for the learning-rate schedule: the benchmark never reaches its end


class Candidate:
    """One implementation's training graph in its own session, and a timer for it."""

    def __init__(self, config: Config, lstm_class, batches: RandomBatches):
        self.config = config
        self.batches = batches
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(config.seed)
            self.model = Model(config, config.optimizer(STEPS_PER_EPOCH), lstm_class=lstm_class)
            initialize = tf.global_variables_initializer()
        self.session = tf.Session(graph=self.graph, config=session_config())
        self.session.run(initialize)

    def measure(self, seconds: float, train: bool) -> Dict[str, float]:
        """Runs steps for about `seconds`; returns examples/s and the batch-preparation share."""
        model = self.model
        fetches = [model.train_op, model.grad_norm, model.loss] if train else model.loss

        def run_step(inputs, lengths, labels):
            feed = {model.inputs: inputs, model.lengths: lengths, model.labels: labels,
                    **(model.training_feed() if train else {})}
            self.session.run(fetches, feed)

        return measure(run_step, self.batches, seconds)

    def close(self):
        self.session.close()


def tensorflow_threads() -> int:
    """The cores TensorFlow runs ops on: its inter-op threads (one per op, see session_config)."""
    return session_config().inter_op_parallelism_threads or len(os.sched_getaffinity(0))


def benchmark(names: List[str], seconds: float, repeats: int, with_torch: bool = True) -> dict:
    """Returns `{"configs": [one result object per config name], ...}` (see scripts/bench.py).

    With `with_torch` and torch installed, PyTorch's mirror of each classifier
    (`benchmarks.torch_mirror`) takes its turns too, in its own process, with as many threads as
    TensorFlow uses cores; otherwise `"torch_skipped"` says why it did not.
    """
    mnist = load_mnist()
    images, labels = mnist.train.images, mnist.train.labels
    skipped = torch_missing() if with_torch else "left out on request (--no-torch)"
    report = {"configs": [], "tensorflow_version": tf.__version__}
    pytorch = None if skipped else TorchCandidate(tensorflow_threads(), STEPS_PER_EPOCH)
    try:
        for name in names:
            report["configs"].append(_benchmark_config(name, images, labels, seconds, repeats,
                                                       pytorch))
    finally:
        if pytorch is not None:
            pytorch.close()
    if pytorch is None:
        report["torch_skipped"] = skipped
    else:
        report["torch"] = pytorch.info
    return report


def _benchmark_config(name: str, images, labels, seconds: float, repeats: int,
                      pytorch: Optional[TorchCandidate]) -> dict:
    config = CONFIGS[name]
    batches = RandomBatches(config, images, labels)
    candidates = {impl: Candidate(config.replace(**changes), cls, batches)
                  for impl, (cls, changes) in IMPLEMENTATIONS.items()}
    try:
        if pytorch is not None:
            pytorch.load(config)
            candidates["torch"] = pytorch
        samples, shares = _take_turns(candidates, seconds, repeats)
    finally:
        for impl in IMPLEMENTATIONS:
            candidates[impl].close()
    median = {key: statistics.median(values) for key, values in samples.items()}
    result = {
        "name": name,
        "config": config.to_dict(),
        "ours_examples_per_s": median["ours", "train"],
        "blocklstm_examples_per_s": median["blocklstm", "train"],
        "textbook_examples_per_s": median["textbook", "train"],
        "ratio_vs_blocklstm": median["ours", "train"] / median["blocklstm", "train"],
        "ratio_vs_textbook": median["ours", "train"] / median["textbook", "train"],
        "inference": {impl: median[impl, "infer"] for impl in candidates},
        "inference_ratio_vs_blocklstm": median["ours", "infer"] / median["blocklstm", "infer"],
        "input_share": statistics.median(shares),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "repeats": repeats,
        "seconds_per_measurement": seconds,
    }
    if pytorch is not None:
        result["torch_examples_per_s"] = median["torch", "train"]
        result["ratio_vs_torch"] = median["ours", "train"] / median["torch", "train"]
    return result


def _take_turns(candidates: dict, seconds: float, repeats: int):
    """Measures every candidate `repeats` times per mode, the order rotating every repeat.

    Returns `{(candidate, "train" or "infer"): [examples/s per repeat]}` and ours' input shares.
    """
    samples = {(impl, mode): [] for impl in candidates for mode in ("train", "infer")}
    shares = []
    for candidate in candidates.values():  # first runs pay for graph optimisation
        for train in (True, False):
            candidate.measure(0.0, train)
    order = list(candidates)
    for repeat in range(repeats):
        for impl in order[repeat % len(order):] + order[:repeat % len(order)]:
            for mode in ("train", "infer"):
                measured = candidates[impl].measure(seconds, mode == "train")
                samples[impl, mode].append(measured["examples_per_s"])
                if impl == "ours" and mode == "train":
                    shares.append(measured["input_share"])
    return samples, shares
