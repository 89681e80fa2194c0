"""Fixtures shared by several test files (plain helpers are in helpers.py)."""

import pytest

from lstm_mnist.config import tiny_config


@pytest.fixture(scope="session")
def mnist():
    from lstm_mnist.data import load_mnist
    return load_mnist()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A one-epoch tiny model's checkpoint folder: for mechanics, not for accuracy."""
    from lstm_mnist.trainer import train
    folder = tmp_path_factory.mktemp("tiny")
    train(tiny_config(epochs=1), run_name="tiny", logdir=str(folder / "logs"),
          checkpoint_dir=str(folder / "checkpoints"), echo=False)
    return str(folder / "checkpoints" / "tiny")
