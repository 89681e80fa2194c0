"""Classifying digits in ordinary image files with a trained checkpoint.

Each picture is first brought into MNIST's form by `images.read_digit`.
"""

from typing import List, NamedTuple, Sequence, Union

import numpy as np

from lstm_mnist.checkpoints import resolve_checkpoint, restore
from lstm_mnist.config import load_config
from lstm_mnist.errors import UserError
from lstm_mnist.evaluate import session_config
from lstm_mnist.images import ImageError, read_digit
from lstm_mnist.model import Model
from lstm_mnist.tf1 import tf


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
        # str() of a float32 is its shortest round-trip form (0.9999784, not 0.9999784231185913).
        return {"file": self.file, "digit": self.digit,
                "probabilities": [float(str(np.float32(p))) for p in self.probabilities]}


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
          images: float32 `[N, 28, 28]`, MNIST-like (see `images.to_mnist`).

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
