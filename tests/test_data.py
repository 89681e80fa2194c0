"""Reading, verifying and splitting MNIST."""

import gzip
import hashlib
import os
import shutil
import tracemalloc

import numpy as np
import pytest

from helpers import idx_bytes, write_mnist
from lstm_mnist.data import DEFAULT_DATA_DIR, MNIST_SHA256, DataError, load_mnist, read_idx


@pytest.mark.parametrize("gzipped", [True, False])
def test_parses_generated_idx_files_and_splits_validation_first(tmp_path, gzipped):
    arrays = write_mnist(tmp_path, train_count=12, test_count=4, gzipped=gzipped)
    data = load_mnist(str(tmp_path), checksums=None, validation_size=5)
    images, labels = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    assert (len(data.train), len(data.validation), len(data.test)) == (7, 5, 4)
    np.testing.assert_array_equal(data.validation.labels, labels[:5])
    np.testing.assert_array_equal(data.train.labels, labels[5:])
    np.testing.assert_allclose(data.validation.images, images[:5] / 255.0, atol=1e-7)
    np.testing.assert_allclose(data.train.images, images[5:] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(data.test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert data.train.images.dtype == np.float32
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0


def test_checksums_of_generated_files_are_verified(tmp_path):
    arrays = write_mnist(tmp_path, gzipped=False)
    sums = {name: hashlib.sha256(idx_bytes(a)).hexdigest() for name, a in arrays.items()}
    load_mnist(str(tmp_path), checksums=sums, validation_size=5)
    sums["t10k-labels-idx1-ubyte"] = "0" * 64
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: checksum mismatch"):
        load_mnist(str(tmp_path), checksums=sums, validation_size=5)


def test_shipped_copy_is_verified_and_split_like_read_data_sets(mnist):
    assert (len(mnist.train), len(mnist.validation), len(mnist.test)) == (55000, 5000, 10000)
    assert mnist.sha256 == MNIST_SHA256
    # The first training labels of MNIST are 5 0 4 1 9 2 1 3 1 4: they open the validation split.
    np.testing.assert_array_equal(mnist.validation.labels[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    train_counts = np.bincount(np.concatenate([mnist.validation.labels, mnist.train.labels]))
    np.testing.assert_array_equal(train_counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                                 5851, 5949])
    np.testing.assert_array_equal(np.bincount(mnist.test.labels),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    pixels = np.concatenate([mnist.validation.images, mnist.train.images])
    assert abs(pixels.mean() - 0.1307) < 1e-3 and abs(pixels.std() - 0.3081) < 1e-3


def test_shipped_copy_carries_licence_and_sums():
    readme = open(os.path.join(DEFAULT_DATA_DIR, "README.md"), encoding="utf-8").read()
    assert "CC BY-SA 3.0" in readme
    sums = open(os.path.join(DEFAULT_DATA_DIR, "SHA256SUMS-idx"), encoding="utf-8").read()
    for name, digest in MNIST_SHA256.items():
        assert f"{digest}  {name}" in sums


def _copy_real_data(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(DEFAULT_DATA_DIR, folder)
    return folder


def _corrupt(path, how):
    data = gzip.decompress(path.read_bytes())
    if how == "truncated-gzip":
        path.write_bytes(path.read_bytes()[:-1000])
        return
    if how == "truncated-idx":
        data = data[:-28]
    elif how == "magic":
        data = (1234).to_bytes(4, "big") + data[4:]
    elif how == "checksum":
        data = data[:-1] + bytes([(data[-1] + 1) % 256])
    path.write_bytes(gzip.compress(data))


@pytest.mark.parametrize("how,message", [
    ("missing", r"t10k-labels-idx1-ubyte\[\.gz\]: missing MNIST file"),
    ("truncated-gzip", r"t10k-labels-idx1-ubyte\.gz: truncated or corrupt gzip"),
    ("truncated-idx", r"t10k-labels-idx1-ubyte\.gz: truncated: header declares"),
    ("magic", r"t10k-labels-idx1-ubyte\.gz: wrong magic number 1234, expected 2049"),
    ("checksum", r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"),
])
def test_each_kind_of_bad_file_names_the_file_and_the_problem(tmp_path, how, message):
    folder = _copy_real_data(tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.chmod(0o644)
    if how == "missing":
        path.unlink()
    else:
        _corrupt(path, how)
    with pytest.raises(DataError, match=message) as raised:
        load_mnist(str(folder))
    assert "\n" not in str(raised.value)


def test_missing_data_directory(tmp_path):
    with pytest.raises(DataError, match="data directory does not exist"):
        load_mnist(str(tmp_path / "nowhere"))


def test_read_idx_rejects_a_file_shorter_than_its_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="shorter than the IDX header"):
        read_idx(str(path), ndim=1)


def test_a_gzip_bomb_is_refused_without_decompressing_it_whole(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(idx_bytes(np.zeros(10, np.uint8)))
        for _ in range(32):
            stream.write(bytes(2 ** 23))  # 256 MiB of zeros behind a 10-byte header
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="has trailing bytes"):
            read_idx(str(path), 1)
        assert tracemalloc.get_traced_memory()[1] < 2 ** 24  # the peak: far below 256 MiB
    finally:
        tracemalloc.stop()


def test_a_header_declaring_an_enormous_shape_is_refused_with_its_true_size(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3)
    with pytest.raises(DataError, match=f"= {(2 ** 32 - 1) ** 3} bytes, more than"):
        read_idx(str(path), 3)


def test_a_fifo_or_a_folder_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for name in ("fifo", "folder"):
        with pytest.raises(DataError, match="not a regular file"):
            read_idx(str(tmp_path / name), 1)
