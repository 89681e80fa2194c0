"""What several test files share: the checkout's root, scripts run as a user runs them, small
MNIST files, the tiny training flags, the one-line error check and the LSTM recomputed in numpy
(fixtures are in conftest.py)."""

import gzip
import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A training small enough to run in seconds, big enough that an epoch takes several steps
# (640 examples in batches of 32: 20 steps per epoch).
TINY_FLAGS = ["--hidden", "8", "--head-hidden", "16", "--train-subset", "640", "--batch-size", "32",
              "--dropout", "0"]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes a uint8 array as an IDX file (magic: 0, 0, 0x08 = unsigned byte, ndim)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, train_count=12, test_count=4, gzipped=True, seed=0):
    """Writes four small, valid MNIST-format files; returns {file name: uint8 array}."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train_count, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, train_count, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test_count, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, test_count, dtype=np.uint8),
    }
    os.makedirs(folder, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gzipped:
            with open(os.path.join(folder, name + ".gz"), "wb") as stream:
                stream.write(gzip.compress(data))
        else:
            with open(os.path.join(folder, name), "wb") as stream:
                stream.write(data)
    return arrays


def numpy_lstm(inputs, w_x, w_h, b):
    """The cell of lstm_mnist/cell.py recomputed in float64 numpy, from the zero state: gate
    columns input | forget | output | candidate, the forget bias inside `b`.

    Args:
      inputs: `[time, batch, input]`, time-major.
      w_x, w_h, b: the LSTM's weights, as stored.

    Returns:
      `{"input_gate", "forget_gate", "output_gate", "cell", "output"}: [time, batch, hidden]`.
    """
    hidden = w_h.shape[0]
    h = c = np.zeros((inputs.shape[1], hidden))
    values = {"input_gate": [], "forget_gate": [], "output_gate": [], "cell": [], "output": []}
    for x in inputs.astype(np.float64):
        i, f, o, g = np.split(x @ w_x + h @ w_h + b, 4, axis=1)
        i, f, o = (1.0 / (1.0 + np.exp(-gate)) for gate in (i, f, o))
        c = f * c + i * np.tanh(g)
        h = o * np.tanh(c)
        for field, value in zip(values, (i, f, o, c, h)):
            values[field].append(value)
    return {field: np.stack(steps) for field, steps in values.items()}


def grey_image(digit):
    """An MNIST image float32 [28, 28] as an 8-bit greyscale PIL image."""
    return Image.fromarray(np.round(255 * digit).astype(np.uint8))


def user_environment(**changes):
    """os.environ as a user's shell has it: without TF_* variables, PYTHONWARNINGS or
    LSTM_MNIST_VERBOSE, which would hide or show TensorFlow's own messages; plus `changes`."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("TF_")
                   and name not in ("PYTHONWARNINGS", "LSTM_MNIST_VERBOSE")}
    environment.update(changes)
    return environment


def run_script(script, *args, cwd=None, env=None):
    """Runs scripts/<script> in a subprocess as a user would (`user_environment()` unless `env`);
    returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=user_environment() if env is None else env)


def start_script(script, *args):
    """Starts scripts/<script> in the background as a user would; returns the Popen (text pipes)."""
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=user_environment())


def assert_one_line_error(result, *fragments):
    """The script failed and its whole stderr is one line holding every fragment."""
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
