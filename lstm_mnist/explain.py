"""Watching a trained model read: its gates, cells and class probabilities after every step, drawn.

The values come from the weights that classify: `Tracer` adds `LSTMStack.trace` (the textbook
loop on the stack's own variables) and the model's own head to a built Model's graph, and takes
every value, the final prediction included, from that trace. For a unidirectional model, the head
applied to the top layer's output after step t is exactly the prediction the model would make had
the sequence ended at t; the last step's is the Model's prediction. A bidirectional model's
backward LSTM has already read the whole sequence at every step, so it gets no per-step
probabilities, only its gates and its final prediction.

Steps, layers and pixels are numbered from 1, as a reader counts rows: step t has read t steps
(rows) of the input.
"""

import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from lstm_mnist.config import Config
from lstm_mnist.data import Split
from lstm_mnist.errors import UserError
from lstm_mnist.explain_figure import BACKWARD, explanation_figure
from lstm_mnist.figures import save_figure
from lstm_mnist.files import json_floats
from lstm_mnist.cell import DIRECTIONS
from lstm_mnist.lstm import LSTMTrace
from lstm_mnist.model import NUM_CLASSES, Model
from lstm_mnist.report import worst_errors
from lstm_mnist.images import ImageError, read_digit
from lstm_mnist.sequences import Crops, evaluation_crops, to_sequences
from lstm_mnist.tf1 import tf

EXPLAINED_ERRORS = 3  # an evaluation report explains its most confident mistakes
PICTURE_SUFFIX = ".explain.png"


class Input(NamedTuple):
    """One image to explain.

    Attributes:
      source: what it is, for people: `test[7]`, `test[7], crop 7 of seed 3` or a file path.
      name: the picture's file name without PICTURE_SUFFIX, e.g. `test-7`.
      image: float32 `[28, 28]` in [0, 1].
      crop: the crop the model reads (a Crops of one), or None for the full image.
      label: the true digit, if known.
    """

    source: str
    name: str
    image: np.ndarray
    crop: Optional[Crops] = None
    label: Optional[int] = None


def split_inputs(split: Split, indices: Sequence[int], config: Config,
                 crop_seed: Optional[int] = None, split_name: str = "test") -> List[Input]:
    """Images of a data split, by index.

    Args:
      split: e.g. the test set.
      indices: which images.
      config: the model's config (its crop sizes; a ConfigError for a bad `crop_seed`).
      crop_seed: read crops instead of full images: example k gets crop k of `evaluation_crops`
        with this seed over the whole split, the crop `eval.py --crop-seed` measures it on.
      split_name: how sources and picture names call the split.

    Raises:
      UserError: an index is out of range.
    """
    for index in indices:
        if not 0 <= index < len(split):
            raise UserError(f"{split_name} image {index} does not exist: the {split_name} set has "
                            f"{len(split)} images, 0 to {len(split) - 1}")
    crops = _crops(len(split), config, crop_seed)
    return [_input(f"{split_name}[{index}]", f"{split_name}-{index}", split.images[index], crops,
                   index, crop_seed, int(split.labels[index])) for index in indices]


def file_inputs(paths: Sequence[str], config: Config,
                crop_seed: Optional[int] = None) -> List[Union[Input, ImageError]]:
    """Image files brought into MNIST's form (`images.read_digit`); with `crop_seed`, file k is read
    through crop k of `evaluation_crops` with that seed. A bad file gives its ImageError, in its
    place."""
    crops = _crops(len(paths), config, crop_seed)
    answers = []
    for index, path in enumerate(paths):
        try:
            image = read_digit(path)
        except ImageError as error:
            answers.append(error)
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        answers.append(_input(path, name, image, crops, index, crop_seed))
    return answers


def _crops(count: int, config: Config, crop_seed: Optional[int]) -> Optional[Crops]:
    if crop_seed is None:
        return None
    config = config.replace(crop_seed=crop_seed)  # validates it, as for training
    return evaluation_crops(crop_seed, count, config.crop_min, config.crop_max)


def _input(source: str, name: str, image: np.ndarray, crops: Optional[Crops], index: int,
           crop_seed: Optional[int], label: Optional[int] = None) -> Input:
    if crops is None:
        return Input(source, name, image, None, label)
    return Input(f"{source}, crop {index} of seed {crop_seed}", f"{name}-crop-seed-{crop_seed}",
                 image, crops.take(np.array([index])), label)


class Explanation(NamedTuple):
    """What the model did with one Input.

    Attributes:
      input: the Input.
      sequence: float32 `[steps, 28]`, the pixels the LSTM read, one row per step.
      probabilities: float32 `[10]`, the Model's prediction.
      step_probabilities: float32 `[steps, 10]`, the head applied to the top layer's output after
        each step (row t-1 after step t); None for a bidirectional model.
      lstms: `{"layer 1 (reads the pixels)", or "layer 1, forward (...)" and "layer 1, backward
        (...)": {field: [steps, hidden]}}` with the LSTMTrace fields, bottom layer first.
    """

    input: Input
    sequence: np.ndarray
    probabilities: np.ndarray
    step_probabilities: Optional[np.ndarray]
    lstms: Dict[str, Dict[str, np.ndarray]]

    @property
    def digit(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def settled_at_step(self) -> Optional[int]:
        """`settled_at_step(step_probabilities, digit)`; None for a bidirectional model."""
        if self.step_probabilities is None:
            return None
        return settled_at_step(self.step_probabilities, self.digit)

    def describe(self, picture: str) -> str:
        """One line: `test[7]: digit 9 (p=1.000, true 9), stays the answer from step 21 of 28;
        picture explain/test-7.explain.png`."""
        label = "" if self.input.label is None else f", true {self.input.label}"
        steps = len(self.sequence)
        settled = (f"stays the answer from step {self.settled_at_step} of {steps}"
                   if self.step_probabilities is not None else
                   f"read in {steps} steps (bidirectional: no per-step answer)")
        return (f"{self.input.source}: digit {self.digit} "
                f"(p={self.probabilities[self.digit]:.3f}{label}), {settled}; picture {picture}")

    def to_dict(self, picture: str) -> dict:
        """The JSON form: source, digit, probabilities, steps (unidirectional models only),
        settled_at_step, image (the picture's path), and label when known."""
        document = {"source": self.input.source, "digit": self.digit,
                    "probabilities": json_floats(self.probabilities)}
        if self.input.label is not None:
            document["label"] = self.input.label
        if self.step_probabilities is not None:
            document["steps"] = [{"step": step, "probabilities": json_floats(p)}
                                 for step, p in enumerate(self.step_probabilities, start=1)]
        document.update(settled_at_step=self.settled_at_step, image=picture)
        return document


def settled_at_step(step_probabilities: np.ndarray, digit: int) -> int:
    """The step after which `digit` is the most probable class and stays so to the end.

    Args:
      step_probabilities: `[steps, 10]`, row t-1 after step t.
      digit: the final prediction (the last row's most probable class).

    Returns:
      A step in 1..steps.
    """
    other = step_probabilities.argmax(axis=1) != digit
    return int(np.flatnonzero(other)[-1]) + 2 if other.any() else 1


class Tracer:
    """The per-step tensors of a built Model, in the Model's graph and on its variables.

    Its final probabilities come from the trace too, not from the Model's own tensors: those run
    the Model's dropout ops (rate 0 at evaluation, but they still draw their random numbers), and
    a training run that draws pictures between epochs must draw the same masks as one that does
    not."""

    def __init__(self, model: Model):
        """Builds the trace into the default graph, which must be the model's."""
        self.model = model
        self.traces, features = model.lstm.trace(model.inputs, model.lengths)
        self.probabilities = tf.nn.softmax(model.head(features))
        self.step_probabilities = None
        if not model.lstm.bidirectional:
            top = self.traces[-1][0].output  # [time, batch, hidden]
            shape = tf.shape(top)
            logits = model.head(tf.reshape(top, [shape[0] * shape[1], top.shape[2]]))
            self.step_probabilities = tf.reshape(tf.nn.softmax(logits),
                                                 [shape[0], shape[1], NUM_CLASSES])

    def explain(self, session: tf.Session, inputs: Sequence[Input]) -> List[Explanation]:
        """Runs the model on `inputs` (one batch, dropout off) and returns their Explanations."""
        images = np.stack([item.image for item in inputs])
        crops = [item.crop for item in inputs]
        # Each input on its own, so full images and crops may be mixed; then padded into one batch.
        parts = [to_sequences(images[k:k + 1], crop) for k, crop in enumerate(crops)]
        steps = max(part[0].shape[0] for part in parts)
        sequences = np.concatenate([np.pad(part, ((0, steps - part.shape[0]), (0, 0), (0, 0)))
                                    for part, _ in parts], axis=1)
        lengths = np.concatenate([length for _, length in parts])
        fetches = {"probabilities": self.probabilities, "traces": self.traces}
        if self.step_probabilities is not None:
            fetches["steps"] = self.step_probabilities
        values = session.run(fetches, {self.model.inputs: sequences,
                                       self.model.lengths: lengths})
        explanations = []
        for k, (item, length) in enumerate(zip(inputs, lengths)):
            lstms = {}
            layers = values["traces"]
            for layer, directions in enumerate(layers):
                roles = (["reads the pixels"] if layer == 0 else []) + (
                    ["feeds the classifier"] if layer == len(layers) - 1 else [])
                for direction, traced in zip(DIRECTIONS, directions):
                    name = f"layer {layer + 1}" + ("" if len(directions) == 1 else
                                               {"fw": ", forward", "bw": BACKWARD}[direction])
                    lstms[f"{name} ({', '.join(roles)})"] = {
                        field: getattr(traced, field)[:length, k] for field in LSTMTrace._fields}
            explanations.append(Explanation(
                item, sequences[:length, k], values["probabilities"][k],
                values["steps"][:length, k] if "steps" in values else None, lstms))
        return explanations


def explain_worst_errors(session: tf.Session, tracer: Tracer, folder: str, split: Split,
                         probabilities: np.ndarray, count: int = EXPLAINED_ERRORS) -> List[str]:
    """Explain pictures of the `count` misclassified images of the test `split` with the most
    confident wrong answer (`report.worst_errors`), full images, written into `folder`.

    Args:
      probabilities: float `[examples, 10]`, the model's, for every example of `split`.

    Returns:
      The paths written, most confident mistake first.
    """
    indices = worst_errors(split.labels, probabilities, count)
    if not len(indices):
        return []
    inputs = split_inputs(split, [int(index) for index in indices], tracer.model.config)
    return write_pictures(folder, tracer.explain(session, inputs))


def picture_path(folder: str, item: Input) -> str:
    return os.path.join(folder, item.name + PICTURE_SUFFIX)


def write_pictures(folder: str, explanations: Sequence[Explanation]) -> List[str]:
    """Draws each Explanation into `folder/<name>.explain.png` (replacing an older picture of that
    name); returns the paths in order."""
    paths = [picture_path(folder, explanation.input) for explanation in explanations]
    for explanation, path in zip(explanations, paths):
        save_figure(explanation_figure(explanation), path)
    return paths


def check_picture_paths(folder: str, inputs: Sequence[Input], protected: Sequence[str] = ()):
    """Raises UserError if two inputs would share a picture, or a picture would replace one of
    the `protected` files (the images being explained)."""
    seen = {os.path.realpath(path): path for path in protected}
    for item in inputs:
        path = picture_path(folder, item)
        real = os.path.realpath(path)
        if real in seen:
            raise UserError(f"{path}: would be written twice or replace the input {seen[real]}; "
                            "give the images different names or choose another --output")
        seen[real] = item.source
