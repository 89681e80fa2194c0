"""Classifying digits in ordinary image files with a trained checkpoint, and explaining how the
model read them (or test images).

Each picture is first brought into MNIST's form by `images.read_digit`.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from lstm_mnist.checkpoints import load_trained, restore
from lstm_mnist.data import load_mnist
from lstm_mnist.errors import UserError
from lstm_mnist.explain import (Explanation, Input, Tracer, check_picture_paths, file_inputs,
                                split_inputs, write_pictures)
from lstm_mnist.files import json_floats
from lstm_mnist.images import ImageError, read_digit
from lstm_mnist.memory import check_memory
from lstm_mnist.model import Model
from lstm_mnist.passes import EVAL_BATCH_SIZE
from lstm_mnist.runs import check_writable
from lstm_mnist.tf1 import session_config, tf


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
                "probabilities": json_floats(self.probabilities)}


class Classifier:
    """A trained model restored from its checkpoint folder, in its own graph and session.

    Use it as a context manager, or call `close()`, to release the session.
    """

    def __init__(self, checkpoint: str, trace: bool = False, lstm: Optional[str] = None):
        """Rebuilds the model from the checkpoint's config.json and restores its weights.

        Args:
          checkpoint: a run's checkpoint folder (its best checkpoint is used) or one prefix.
          trace: also build the per-step values that `explain` fetches.
          lstm: the LSTM implementation to run (`Config.lstm`); None: the one that trained it.

        Raises:
          CheckpointError, ConfigError: the checkpoint or its config is missing or does not match.
        """
        self.prefix, self.config = load_trained(checkpoint, lstm)
        check_memory(self.config, EVAL_BATCH_SIZE, training=False)
        graph = tf.Graph()
        with graph.as_default():
            self._model = Model(self.config)
            self._tracer = Tracer(self._model) if trace else None
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
          images: float32 `[N, 28, 28]`, MNIST-like (see `images.to_mnist`).

        Returns:
          float32 `[N, 10]`, each row summing to 1.
        """
        return self._model.predict(self._session, images)

    def explain(self, inputs: Sequence[Input]) -> List[Explanation]:
        """`explain.Tracer.explain` of the inputs; needs a Classifier made with `trace=True`."""
        if self._tracer is None:
            raise ValueError("this Classifier was made without trace=True")
        return self._tracer.explain(self._session, inputs)

    def close(self):
        self._session.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc_info):
        self.close()


def predict_files(classifier: Classifier,
                  paths: Sequence[str]) -> List[Union[Prediction, ImageError]]:
    """Classifies image files; a bad file does not stop the others.

    Returns:
      One answer per path, in the given order: its Prediction, or the ImageError saying why the
      file could not be read.
    """
    answers, readable, digits = [], [], []
    for path in paths:
        try:
            digits.append(read_digit(path))
            readable.append(len(answers))
            answers.append(None)  # filled in below, once the readable images are classified
        except ImageError as error:
            answers.append(error)
    if readable:
        for index, p in zip(readable, classifier.probabilities(np.stack(digits))):
            answers[index] = Prediction(paths[index], int(p.argmax()), p)
    return answers


def explain_images(classifier: Classifier, folder: str, paths: Sequence[str] = (),
                   test_indices: Sequence[int] = (), crop_seed: Optional[int] = None,
                   data_dir: Optional[str] = None
                   ) -> List[Union[Tuple[Explanation, str], ImageError]]:
    """Explains test images and image files, one picture each in `folder`; a bad file does not
    stop the others.

    Args:
      classifier: made with `trace=True`.
      folder: where the pictures go (`explain.picture_path`), created if missing.
      paths: image files.
      test_indices: test images (from `data_dir`, default the shipped MNIST).
      crop_seed: read crops (`explain.split_inputs`) instead of full images.

    Returns:
      The test images', then the files' answers in the given order: `(Explanation, picture
      path)`, or the ImageError saying why a file could not be read.

    Raises:
      UserError: a test index is out of range, `folder` is not writable, or a picture would
        replace an input image or another picture of this call.
    """
    check_writable(folder)
    inputs = (split_inputs(load_mnist(data_dir).test, test_indices, classifier.config, crop_seed)
              if test_indices else [])
    answers = inputs + file_inputs(paths, classifier.config, crop_seed)
    readable = [answer for answer in answers if isinstance(answer, Input)]
    check_picture_paths(folder, readable, protected=paths)
    if readable:
        explanations = classifier.explain(readable)
        explained = iter(zip(explanations, write_pictures(folder, explanations)))
        answers = [next(explained) if isinstance(answer, Input) else answer
                   for answer in answers]
    return answers
