"""Whether a model fits in this machine's memory, judged from its config before anything is built.

A config read from a file or typed on the command line can ask for a model of any size; TensorFlow
would spend minutes and all the memory there is building it before failing. The estimate here
needs only the config, so training, evaluation, prediction and explanation refuse an impossible
model at once, in one line.
"""

import os

from lstm_mnist.config import ConfigError, ModelConfig
from lstm_mnist.sequences import IMAGE_SIZE, PIXELS_PER_STEP

NUM_CLASSES = 10
GATES = 4  # input, forget, output, candidate: each LSTM matrix has 4 * hidden columns
# What the training loops keep per unit of an LSTM, per example and step: the forward loop pushes
# the 4 gate activations and tanh of the cell onto stacks and writes h and c into TensorArrays,
# all for the backward loop; that loop writes each step's gradient of the 4 pre-activation gates.
TRAINING_VALUES_PER_UNIT_AND_STEP = 5 + 2 + GATES
# Evaluation keeps only the states (h and c) of every step.
INFERENCE_VALUES_PER_UNIT_AND_STEP = 2
FLOAT_BYTES = 4
# Weights, their gradients and Adam's two moments: four copies of every weight while training.
TRAINING_COPIES_OF_WEIGHTS = 4


def weight_count(config: ModelConfig) -> int:
    """The number of weights the model of `config` has: LSTM layers and the classifier head."""
    directions = 2 if config.bidirectional else 1
    count, inputs = 0, PIXELS_PER_STEP
    for hidden in config.hidden:
        count += directions * GATES * hidden * (inputs + hidden + 1)
        inputs = directions * hidden
    return (count + config.head_hidden * (inputs + 1)
            + NUM_CLASSES * (config.head_hidden + 1))


def check_memory(config: ModelConfig, batch_size: int, training: bool):
    """Raises ConfigError if the model of `config` cannot fit in this machine's memory.

    Args:
      config: the model's hyperparameters.
      batch_size: the examples one step runs on.
      training: whether gradients and Adam's moments are kept too.
    """
    weights = weight_count(config)
    directions = 2 if config.bidirectional else 1
    per_unit = (TRAINING_VALUES_PER_UNIT_AND_STEP if training
                else INFERENCE_VALUES_PER_UNIT_AND_STEP)
    activations = batch_size * IMAGE_SIZE * directions * per_unit * sum(config.hidden)
    copies = TRAINING_COPIES_OF_WEIGHTS if training else 1
    needed = FLOAT_BYTES * (copies * weights + activations)
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > available:
        what = "with gradients and Adam's moments" if training else "and its activations"
        raise ConfigError(f"the model needs about {needed / 2 ** 30:.1f} GiB ({weights:,} weights "
                          f"{what}), more than this machine's {available / 2 ** 30:.1f} GiB; "
                          "choose smaller --hidden, --head-hidden or --batch-size")
