"""The classifier graph: pixel sequences -> LSTM stack -> MLP head -> 10 logits.

One graph-building function serves training and evaluation; training adds the optimizer on top.
`passes.run_pass` runs it, the one loop over minibatches for train, validation and test alike.
"""

from typing import Optional, Tuple

import numpy as np

from lstm_mnist.config import ModelConfig, OptimizerConfig
from lstm_mnist.cell import dropout
from lstm_mnist.lstm import LSTMStack
from lstm_mnist.sequences import PIXELS_PER_STEP, to_sequences
from lstm_mnist.tf1 import tf

NUM_CLASSES = 10


class Model:
    """The tensors of a built classifier graph.

    Attributes:
      inputs: placeholder float32 `[time, batch, 28]`, time-major pixel rows, zero-padded.
      lengths: placeholder int32 `[batch]`, valid steps per example.
      labels: placeholder int64 `[batch]`.
      dropout_rate: scalar, 0 unless fed (so evaluation never drops anything by accident).
      logits: `[batch, 10]`; probabilities: `[batch, 10]`; predictions: int64 `[batch]`.
      loss: mean softmax cross-entropy of the batch; num_correct: int32 scalar.
      Training graphs also have: train_op, global_step, learning_rate, grad_norm (global norm of the
      gradients before clipping) and grad_norms ({variable name: norm of its gradient}).
    """

    def __init__(self, config: ModelConfig, optimizer: Optional[OptimizerConfig] = None,
                 lstm_class=LSTMStack):
        """Builds the graph into the default graph.

        Args:
          config: the model's hyperparameters (a whole Config is one too).
          optimizer: for a training graph, the settings of its optimizer (Adam, global-norm
            clipping, learning-rate schedule): `Config.optimizer(steps_per_epoch)`.
          lstm_class: LSTMStack, or a stand-in with its interface (benchmarks swap in references).
        """
        self.config = config
        self.inputs = tf.placeholder(tf.float32, [None, None, PIXELS_PER_STEP], name="inputs")
        self.lengths = tf.placeholder(tf.int32, [None], name="lengths")
        self.labels = tf.placeholder(tf.int64, [None], name="labels")
        # A float 0.0 when the config has no dropout keeps dropout ops out of the graph entirely.
        self.dropout_rate = (tf.placeholder_with_default(0.0, [], name="dropout_rate")
                             if config.dropout > 0 else 0.0)

        self.lstm = lstm_class(PIXELS_PER_STEP, config.hidden, config.bidirectional, name="lstm",
                               implementation=config.lstm)
        features = self.lstm(self.inputs, self.lengths, self.dropout_rate).last_output
        self.head = Head(int(features.shape[-1]), config.head_hidden)
        self.logits = self.head(features, self.dropout_rate)

        self.probabilities = tf.nn.softmax(self.logits)
        self.predictions = tf.argmax(self.logits, axis=1)
        self.loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=self.labels, logits=self.logits))
        self.num_correct = tf.reduce_sum(tf.cast(tf.equal(self.predictions, self.labels), tf.int32))
        self.model_variables = tf.trainable_variables()
        if optimizer is not None:
            self._build_optimizer(optimizer)

    def _build_optimizer(self, config: OptimizerConfig):
        self.global_step = tf.train.get_or_create_global_step()
        if config.lr_schedule == "cosine":
            self.learning_rate = tf.train.cosine_decay(config.lr, self.global_step,
                                                       config.decay_steps)
        else:
            self.learning_rate = tf.constant(config.lr)
        gradients = tf.gradients(self.loss, self.model_variables)
        self.grad_norm = tf.global_norm(gradients)
        self.grad_norms = {v.op.name: tf.norm(g) for v, g in zip(self.model_variables, gradients)}
        if config.clip > 0:
            # Passing the norm computed above avoids computing it a second time.
            gradients, _ = tf.clip_by_global_norm(gradients, config.clip, use_norm=self.grad_norm)
        optimizer = tf.train.AdamOptimizer(self.learning_rate)
        self.train_op = optimizer.apply_gradients(zip(gradients, self.model_variables),
                                                  global_step=self.global_step)

    def training_feed(self) -> dict:
        """What a training step feeds besides the batch: the dropout rate, if there is dropout."""
        return {self.dropout_rate: self.config.dropout} if self.config.dropout > 0 else {}

    def predict(self, session: tf.Session, images: np.ndarray) -> np.ndarray:
        """Class probabilities of full images, with dropout off.

        Args:
          session: a session holding this model's variables.
          images: float32 `[examples, 28, 28]`.

        Returns:
          float32 `[examples, 10]`, each row summing to 1.
        """
        inputs, lengths = to_sequences(images)
        return session.run(self.probabilities, {self.inputs: inputs, self.lengths: lengths})


class Head:
    """The classifier on top of the LSTM: a ReLU layer, then the 10 logits. Its variables,
    `head/hidden/{w,b}` and `head/logits/{w,b}`, are created once, on construction, so the same
    head can also classify other features (`explain` applies it to the output of every step)."""

    def __init__(self, input_size: int, hidden_size: int):
        with tf.variable_scope("head"):
            self.hidden = _dense(input_size, hidden_size, "hidden")
            self.logits = _dense(hidden_size, NUM_CLASSES, "logits")

    def __call__(self, features: tf.Tensor, dropout_rate=0.0) -> tf.Tensor:
        """`[rows, input_size]` features -> `[rows, 10]` logits; `dropout_rate` as in `dropout`."""
        with tf.name_scope("head"):
            w, b = self.hidden
            hidden = tf.nn.relu(tf.matmul(dropout(features, dropout_rate), w) + b)
            w, b = self.logits
            return tf.matmul(hidden, w) + b


def _dense(input_size: int, units: int, name: str) -> Tuple[tf.Variable, tf.Variable]:
    """The variables `<scope>/<name>/{w,b}` of a dense layer `inputs w + b`."""
    with tf.variable_scope(name):
        w = tf.get_variable("w", [input_size, units], initializer=tf.glorot_uniform_initializer())
        b = tf.get_variable("b", [units], initializer=tf.zeros_initializer())
    return w, b
