"""TensorFlow's TF1 API, imported in one place, with its start-up chatter kept off the terminal.

Every module that builds or runs graphs does `from lstm_mnist.tf1 import tf`, which gives
`tensorflow.compat.v1` in graph mode with TF1 semantics (placeholders, sessions and v1 while loops,
whose iterations the executor can overlap, see packed_loops.py). Importing this module imports
TensorFlow, so the scripts import TF-using modules only after their flags are checked.

TensorFlow 2.21 prints a dozen lines while it loads (absl's "before InitializeLog" notice, oneDNN
and CPU-feature notices, a CUDA probe on GPU builds) whatever TF_CPP_MIN_LOG_LEVEL says, and
`disable_v2_behavior()` logs a deprecation warning. These go to a temporary file instead of the
terminal; if the import fails, they are shown after all. Later C++ messages below ERROR and
TensorFlow's Python warnings are turned off too, so TensorFlow's errors still reach the user.
`--verbose` on any script, or LSTM_MNIST_VERBOSE=1, leaves TensorFlow's logging as it is.
"""

import contextlib
import logging
import os
import sys
import tempfile
from importlib import metadata

from lstm_mnist.errors import VERBOSE_VARIABLE, UserError

CPU_INSTALL, GPU_INSTALL = 'pip install -e ".[cpu]"', 'pip install -e ".[gpu]"'
# Both wheels install the same `tensorflow` package: in one environment they overwrite each other.
RIVAL_WHEELS = ("tensorflow", "tensorflow-cpu")


class TensorFlowMissing(UserError):
    """TensorFlow is not installed in the Python environment running the script."""


def verbose() -> bool:
    """Whether TensorFlow may log as it likes (LSTM_MNIST_VERBOSE set to anything but '' or '0')."""
    return os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def _stderr_into(stream):
    """Points file descriptor 2, where TensorFlow's C++ code logs, at `stream` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(stream.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _import_tf1():
    try:
        import tensorflow.compat.v1 as tf
    except ModuleNotFoundError as error:
        if error.name != "tensorflow":
            raise
        raise TensorFlowMissing(f"TensorFlow is not installed for {sys.executable}: {CPU_INSTALL} "
                                f"(or {GPU_INSTALL} on Linux with an NVIDIA GPU), see README.md") \
            from None
    tf.disable_v2_behavior()
    return tf


def _import_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ errors only, once TF has loaded
    with tempfile.TemporaryFile() as chatter:
        try:
            with _stderr_into(chatter):
                tf = _import_tf1()
                # A GPU build probes CUDA when it first lists devices, and on a machine without a
                # GPU logs "failed call to cuInit" as an error: let that happen here, quietly.
                gpus = tf.config.list_physical_devices("GPU")
        except TensorFlowMissing:
            raise
        except BaseException:
            chatter.seek(0)  # a failed import is the user's business: show what TensorFlow said
            sys.stderr.write(chatter.read().decode("utf-8", "replace"))
            raise
    tf.get_logger().setLevel(logging.ERROR)  # TF1-API deprecation notices
    if tf.test.is_built_with_cuda() and not gpus:
        print("lstm_mnist: note: TensorFlow's GPU build finds no GPU and runs on the CPU (--verbose "
              f"shows why; a CPU-only machine needs just {CPU_INSTALL}, in a fresh environment)",
              file=sys.stderr)
    return tf


def _warn_about_rival_wheels():
    installed = []
    for name in RIVAL_WHEELS:
        try:
            installed.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        print(f"lstm_mnist: warning: {' and '.join(installed)} are both installed and overwrite "
              f"each other's files: make a fresh environment with one ({CPU_INSTALL} or "
              f"{GPU_INSTALL})", file=sys.stderr)


# TensorFlow's default CPU allocator takes every tensor from malloc and gives it back when the op
# that used it is done: thousands of small tensors per training step. Its BFC allocator (the one it
# uses on GPUs) keeps freed blocks for reuse, which trains faster (docs/performance.md). Read when
# TensorFlow creates its CPU device, so set before the import; a value the user set stays.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
tf = _import_tf1() if verbose() else _import_quietly()
_warn_about_rival_wheels()


def session_config() -> tf.ConfigProto:
    """Session settings shared by training, evaluation and benchmarks.

    One thread per op, as many ops at once as there are cores: the graph is thousands of small ops
    (128 x 512 matrices), and splitting each over threads costs more in synchronisation than it
    gains (docs/performance.md compares it with TensorFlow's default of splitting every op over
    all cores). The two directions of a bidirectional layer and the layers of a deep stack already
    keep the cores busy side by side.
    """
    return tf.ConfigProto(intra_op_parallelism_threads=1)
