import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes a uint8 array as an IDX file (magic: 0, 0, 0x08 = unsigned byte, ndim)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, train_count=12, test_count=4, gzipped=True, seed=0):
    """Writes four small, valid MNIST-format files; returns (train_images, train_labels)."""
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


@pytest.fixture(scope="session")
def mnist():
    from lstm_mnist.data import load_mnist
    return load_mnist()
