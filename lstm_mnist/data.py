"""MNIST from IDX files: reading, verifying and splitting like TensorFlow's classic `read_data_sets`.

A verified copy of the four files ships inside the package (`lstm_mnist/mnist/`, with its licence),
so a fresh clone or an installed package trains with no network.
"""

import dataclasses
import gzip
import hashlib
import math
import os
import stat
import zlib
from typing import Dict, Optional, Tuple

import numpy as np

from lstm_mnist.errors import UserError

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist")
VALIDATION_SIZE = 5000

# SHA-256 of the decompressed IDX files: the canonical MNIST bytes, whatever mirror or compression
# they came from.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_IDX_MAGIC = {1: 2049, 3: 2051}  # labels (1-d) and images (3-d) of unsigned bytes
_GZIP_MAGIC = b"\x1f\x8b"
# Far above MNIST's largest file (47 MB of training images): what a header may declare.
MAX_IDX_BYTES = 2 ** 30


class DataError(UserError):
    """An MNIST file is missing, truncated, malformed or not the expected content."""


@dataclasses.dataclass(frozen=True)
class Split:
    """One part of the data set.

    Attributes:
      images: float32 `[examples, 28, 28]`, pixels scaled to [0, 1].
      labels: int64 `[examples]`, digits 0..9.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def head(self, count: int) -> "Split":
        """The first `count` examples (all of them if `count` is 0)."""
        return self if count == 0 else Split(self.images[:count], self.labels[:count])


@dataclasses.dataclass(frozen=True)
class MNIST:
    train: Split
    validation: Split
    test: Split
    sha256: Dict[str, str]  # of the decompressed files that were read


def read_idx(path: str, ndim: int, expected_sha256: Optional[str] = None) -> np.ndarray:
    """Reads one IDX file of unsigned bytes, gzipped or raw.

    Args:
      path: the file.
      ndim: 1 for a label file, 3 for an image file.
      expected_sha256: hex SHA-256 of the decompressed bytes, or None to skip the check.

    Returns:
      uint8 array of the shape the header declares.

    Raises:
      DataError: naming the file and what is wrong with it.
    """
    name = os.path.basename(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DataError(f"{path}: not a regular file (a folder, FIFO or device); give the "
                            "MNIST files themselves")
        with open(path, "rb") as stream:
            gzipped = stream.read(2) == _GZIP_MAGIC
            stream.seek(0)
            idx = gzip.GzipFile(fileobj=stream) if gzipped else stream
            header, shape = _read_header(path, idx, ndim)
            declared = math.prod(shape)
            # Read in bounded pieces: a file never makes this process hold more than its header
            # declares (plus one byte, to notice trailing data), whatever it decompresses to.
            body = idx.read(declared + 1)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    except (EOFError, zlib.error) as error:
        raise DataError(f"{path}: truncated or corrupt gzip data ({error})") from None
    if len(body) != declared:
        problem = "truncated" if len(body) < declared else "has trailing bytes"
        raise DataError(f"{path}: {problem}: header declares shape {shape} = {declared} "
                        f"bytes of data, found {len(body) if len(body) < declared else 'more'}")
    if expected_sha256 is not None:
        digest = hashlib.sha256(header + body).hexdigest()
        if digest != expected_sha256:
            raise DataError(f"{path}: checksum mismatch: SHA-256 of the decompressed {name} is "
                            f"{digest}, expected {expected_sha256}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _read_header(path: str, stream, ndim: int) -> Tuple[bytes, Tuple[int, ...]]:
    """The IDX header of `stream` and the shape it declares; raises DataError unless it is the
    header of an MNIST-sized file of unsigned bytes with `ndim` dimensions."""
    header = stream.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated: {len(header)} bytes is shorter than the IDX header")
    magic = int.from_bytes(header[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(f"{path}: wrong magic number {magic}, expected {_IDX_MAGIC[ndim]} "
                        f"for a {ndim}-d IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if math.prod(shape) > MAX_IDX_BYTES:
        raise DataError(f"{path}: header declares shape {shape} = {math.prod(shape)} bytes, more "
                        f"than the {MAX_IDX_BYTES} an MNIST-like file may hold")
    return header, shape


def load_mnist(data_dir: Optional[str] = None,
               checksums: Optional[Dict[str, str]] = MNIST_SHA256,
               validation_size: int = VALIDATION_SIZE) -> MNIST:
    """Loads and verifies MNIST and splits it as `read_data_sets(validation_size=5000)` did.

    Args:
      data_dir: folder holding the four IDX files, each gzipped (`NAME.gz`) or raw (`NAME`);
        None for the copy shipped with the package.
      checksums: expected SHA-256 of each decompressed file by base name, or None to skip checks
        (for generated test files).
      validation_size: the first this many training images become the validation split.

    Returns:
      An MNIST whose validation split is the first `validation_size` training examples, whose train
      split is the rest, and whose test split is the t10k files.
    """
    data_dir = DEFAULT_DATA_DIR if data_dir is None else data_dir
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data directory does not exist")
    arrays, digests = {}, {}
    for name in MNIST_SHA256:
        path = _find_file(data_dir, name)
        ndim = 3 if "images" in name else 1
        expected = None if checksums is None else checksums[name]
        arrays[name] = read_idx(path, ndim, expected)
        digests[name] = expected or "unchecked"

    def split(prefix: str) -> Split:
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        if len(images) != len(labels):
            raise DataError(f"{data_dir}: {prefix} has {len(images)} images but {len(labels)} labels")
        if images.shape[1:] != (28, 28):
            raise DataError(f"{data_dir}: {prefix} images are {images.shape[1:]}, expected 28x28")
        if labels.max(initial=0) > 9:
            raise DataError(f"{data_dir}: {prefix} labels go up to {labels.max()}, expected 0..9")
        return Split(images.astype(np.float32) / 255.0, labels.astype(np.int64))

    train, test = split("train"), split("t10k")
    if not 0 < validation_size < len(train):
        raise DataError(f"{data_dir}: cannot hold out {validation_size} of {len(train)} training "
                        "images for validation")
    return MNIST(train=Split(train.images[validation_size:], train.labels[validation_size:]),
                 validation=Split(train.images[:validation_size], train.labels[:validation_size]),
                 test=test, sha256=digests)


def _find_file(data_dir: str, name: str) -> str:
    for candidate in (name + ".gz", name):
        path = os.path.join(data_dir, candidate)
        if os.path.exists(path):
            return path
    raise DataError(f"{os.path.join(data_dir, name)}[.gz]: missing MNIST file")
