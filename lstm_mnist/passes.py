"""One pass of a model over minibatches, the same loop for a training epoch and for measuring a split.

As in TensorFlow's PTB example (`run_epoch`), training differs from evaluation only in what is
fetched: the train op, the global step and the gradient norms. The loop yields after every batch,
so the trainer watches each step in its own epoch loop instead of through a callback.
"""

import dataclasses
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import numpy as np

from lstm_mnist.data import Split
from lstm_mnist.model import Model
from lstm_mnist.sequences import batches, evaluation_crops
from lstm_mnist.tf1 import tf

EVAL_BATCH_SIZE = 1000  # evaluation keeps no gradients, so it can take bigger batches
LOSS_DECIMALS = 6  # a mean cross-entropy over thousands of examples, in float32 sums


class PassResult(NamedTuple):
    """Means over the examples of one pass; `grad_norms` has one entry per training step."""

    loss: float
    error: float
    accuracy: float
    examples: int
    grad_norms: np.ndarray


@dataclasses.dataclass
class PassSums:
    """Running sums over the minibatches of one pass (plain numbers, so they can be saved as JSON:
    an interrupted epoch's sums are, and the resumed epoch reports over all its batches)."""

    loss: float = 0.0  # sum of per-example losses
    correct: int = 0
    examples: int = 0
    grad_norms: List[float] = dataclasses.field(default_factory=list)  # one per training step

    def add(self, mean_loss: float, correct: int, examples: int, grad_norm: Optional[float]):
        self.loss += mean_loss * examples
        self.correct += correct
        self.examples += examples
        if grad_norm is not None:
            self.grad_norms.append(grad_norm)

    def result(self) -> PassResult:
        # Error and accuracy are counts over the examples: dividing the counts (not 1 - the other)
        # gives the shortest exact decimal, e.g. 81 / 10000 = 0.0081.
        return PassResult(loss=round(self.loss / self.examples, LOSS_DECIMALS),
                          error=(self.examples - self.correct) / self.examples,
                          accuracy=self.correct / self.examples, examples=self.examples,
                          grad_norms=np.asarray(self.grad_norms))


def run_pass(session: tf.Session, model: Model, minibatches: Iterable, sums: PassSums,
             train: bool = False, step_details: bool = False) -> Iterator[Dict[str, float]]:
    """Runs the model over `minibatches`, adding every batch to `sums` and yielding its values.

    Args:
      session: a session holding the model's variables.
      model: a built Model (with `train_op` if `train`).
      minibatches: `(inputs, lengths, labels)` tuples, as `sequences.batches` yields them.
      sums: the sums to add to (e.g. those of an interrupted epoch's first batches).
      train: update the weights, with dropout on, instead of only measuring.
      step_details: with `train`, also fetch each variable's gradient norm.

    Yields:
      After each batch (once `sums` has counted it), `{"loss", "accuracy", "examples"}` and, when
      training, `"global_step", "grad_norm", "learning_rate"` and `"grad_norm/<variable>"`, else
      `"predictions"` (the batch's predicted digits).
    """
    fetches = {"loss": model.loss, "num_correct": model.num_correct}
    feed_dropout = model.training_feed() if train else {}
    if train:
        fetches.update(train_op=model.train_op, global_step=model.global_step,
                       grad_norm=model.grad_norm, learning_rate=model.learning_rate)
        if step_details:
            fetches.update({"grad_norm/" + name: norm for name, norm in model.grad_norms.items()})
    else:
        fetches["predictions"] = model.predictions
    for inputs, lengths, labels in minibatches:
        values = session.run(fetches, {model.inputs: inputs, model.lengths: lengths,
                                       model.labels: labels, **feed_dropout})
        values.pop("train_op", None)
        correct = int(values.pop("num_correct"))
        sums.add(float(values["loss"]), correct, len(labels),
                 float(values["grad_norm"]) if train else None)
        step = {key: value if key == "predictions" else float(value)
                for key, value in values.items()}
        step.update(accuracy=correct / len(labels), examples=len(labels))
        if train:
            step["global_step"] = int(values["global_step"])
        yield step


def measure(session: tf.Session, model: Model, split: Split, crop_seed: Optional[int] = None,
            predictions: Optional[List[np.ndarray]] = None) -> Dict[str, float]:
    """Loss, error and accuracy over every example of `split`, with dropout off.

    In crop mode the split is measured twice: on full images (keys `loss`, `error`, `accuracy`) and
    on crops drawn from `crop_seed` (default: the config's), the same crops at every call (keys
    with the suffix `_cropped`). A list given as `predictions` gets the predicted digits of the
    full images, batch by batch, in order.
    """
    config = model.config
    variants = [("", None)]
    if config.crop:
        seed = config.crop_seed if crop_seed is None else crop_seed
        variants.append(("_cropped", evaluation_crops(seed, len(split), config.crop_min,
                                                      config.crop_max)))
    results = {}
    for suffix, crops in variants:
        sums = PassSums()
        for step in run_pass(session, model, batches(split.images, split.labels, EVAL_BATCH_SIZE,
                                                     crops=crops), sums):
            if predictions is not None and crops is None:
                predictions.append(step["predictions"])
        result = sums.result()
        results.update({"loss" + suffix: result.loss, "error" + suffix: result.error,
                        "accuracy" + suffix: result.accuracy})
    return results
