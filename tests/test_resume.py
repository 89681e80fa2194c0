"""Interrupting and resuming training: nothing duplicated, nothing lost, same result."""

import csv
import json
import os
import signal
import time

import numpy as np
import pytest

from helpers import TINY_FLAGS, run_script, start_script
from lstm_mnist.config import tiny_config
from lstm_mnist.tf1 import tf
from lstm_mnist.trainer import TrainingDiverged, resume, train

STEPS_PER_EPOCH = 20  # TINY_FLAGS: 640 examples in batches of 32


def _start_training(tmp_path, *args):
    return start_script("train.py", *TINY_FLAGS, "--logdir", str(tmp_path / "logs"),
                        "--checkpoint-dir", str(tmp_path / "ck"), *args)


def _epochs_logged(tmp_path, run):
    path = tmp_path / "logs" / run / "metrics.csv"
    return [row["epoch"] for row in csv.DictReader(open(path))] if path.exists() else []


def _wait_for_epochs(tmp_path, run, count, process, timeout=300):
    deadline = time.time() + timeout
    while len(_epochs_logged(tmp_path, run)) < count:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "training did not reach the expected epoch"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
    # Enough epochs that SIGTERM, sent once epoch 2 is logged, lands well before the run's end
    # even on a loaded machine (with 3, the run sometimes finished first).
    epochs = 6
    reference = run_script("train.py", *TINY_FLAGS, "--epochs", str(epochs), "--run-name",
                           "whole", "--logdir", str(tmp_path / "logs"), "--checkpoint-dir",
                           str(tmp_path / "ck"))
    assert reference.returncode == 0, reference.stderr

    # The same run, stopped by SIGTERM once epoch 2 is logged, in the middle of epoch 3.
    process = _start_training(tmp_path, "--epochs", str(epochs), "--run-name", "cut")
    _wait_for_epochs(tmp_path, "cut", 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    message = [line for line in stderr.splitlines() if line.startswith("train.py:")]
    assert len(message) == 1 and "SIGTERM" in message[0]
    assert f"--resume {tmp_path / 'ck' / 'cut'}" in message[0]
    assert "Traceback" not in stderr
    stopped_after = _epochs_logged(tmp_path, "cut")
    assert stopped_after == [str(e) for e in range(1, len(stopped_after) + 1)]
    assert 2 <= len(stopped_after) < epochs, stopped_after

    resumed = run_script("train.py", "--resume", str(tmp_path / "ck" / "cut"),
                         "--logdir", str(tmp_path / "logs"))
    assert resumed.returncode == 0, resumed.stderr
    assert _epochs_logged(tmp_path, "cut") == [str(e) for e in range(1, epochs + 1)]

    # Same seed, same batches, no dropout: the resumed run ends where the uninterrupted one
    # does, epoch by epoch, up to floating-point reassociation across processes.
    whole = list(csv.DictReader(open(tmp_path / "logs" / "whole" / "metrics.csv")))
    cut = list(csv.DictReader(open(tmp_path / "logs" / "cut" / "metrics.csv")))
    assert len(whole) == len(cut) == epochs
    for a, b in zip(whole, cut):
        for key in ("train_loss", "validation_loss", "validation_error"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), (a["epoch"], key)
    results = [json.loads((tmp_path / "logs" / run / "results.json").read_text())
               for run in ("whole", "cut")]
    assert results[0]["test_loss"] == pytest.approx(results[1]["test_loss"], abs=1e-4)
    log = (tmp_path / "logs" / "cut" / "train.log").read_text()
    assert "resumed from" in log and "SIGTERM" in log
    # TensorBoard steps go on from the checkpoint: each epoch's summary sits at its last step.
    for stream in ("train", "validation"):
        steps = set()
        for name in os.listdir(tmp_path / "logs" / "cut" / stream):
            for event in tf.train.summary_iterator(str(tmp_path / "logs" / "cut" / stream / name)):
                if any(v.tag == "loss" for v in event.summary.value):
                    steps.add(event.step)
        assert steps == {STEPS_PER_EPOCH * e for e in range(1, epochs + 1)}, stream


@pytest.mark.slow
def test_resume_refuses_a_contradicting_flag(tmp_path):
    result = run_script("train.py", *TINY_FLAGS, "--epochs", "1", "--run-name", "r", "--logdir",
                        str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.returncode == 0, result.stderr
    before = (tmp_path / "logs" / "r" / "metrics.csv").read_text()
    again = run_script("train.py", "--resume", str(tmp_path / "ck" / "r"), "--lr", "0.5",
                       "--logdir", str(tmp_path / "logs"))
    assert again.returncode == 2
    assert "lr = 0.5 contradicts the run's saved config" in again.stderr
    assert (tmp_path / "logs" / "r" / "metrics.csv").read_text() == before


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_a_loadable_latest_checkpoint(tmp_path):
    process = _start_training(tmp_path, "--epochs", "50", "--run-name", "k")
    _wait_for_epochs(tmp_path, "k", 1, process)
    rng = np.random.default_rng(0)
    for _ in range(3):  # a few kills at random moments, resuming in between
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.wait()
        latest = tf.train.latest_checkpoint(str(tmp_path / "ck" / "k" / "latest"))
        reader = tf.train.load_checkpoint(latest)  # raises if the checkpoint is unreadable
        assert reader.get_tensor("lstm/layer_0/fw/w_h").shape == (8, 32)
        epochs = _epochs_logged(tmp_path, "k")  # parses: never a half-written row
        assert epochs == [str(e) for e in range(1, len(epochs) + 1)]
        process = start_script("train.py", "--resume", str(tmp_path / "ck" / "k"), "--logdir",
                               str(tmp_path / "logs"))
        _wait_for_epochs(tmp_path, "k", len(epochs) + 1, process)
    process.kill()
    process.wait()
    epochs = _epochs_logged(tmp_path, "k")
    assert epochs == [str(e) for e in range(1, len(epochs) + 1)]


@pytest.mark.slow
def test_a_diverging_loss_stops_with_the_last_good_checkpoint_as_latest(tmp_path):
    folders = dict(logdir=str(tmp_path / "logs"))
    train(tiny_config(epochs=1), run_name="boom", checkpoint_dir=str(tmp_path / "ck"), echo=False,
          **folders)
    good = tf.train.latest_checkpoint(str(tmp_path / "ck" / "boom" / "latest"))
    # Continue with an absurd learning rate: the weights overflow and the loss becomes NaN.
    config_path = tmp_path / "ck" / "boom" / "config.json"
    document = json.loads(config_path.read_text())
    document["config"].update(epochs=3, lr=1e30, lr_schedule="constant")
    config_path.write_text(json.dumps(document))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step \d+ \(epoch 2\)"):
        resume(str(tmp_path / "ck" / "boom"), echo=False, **folders)
    assert tf.train.latest_checkpoint(str(tmp_path / "ck" / "boom" / "latest")) == good
    reader = tf.train.load_checkpoint(good)
    assert np.all(np.isfinite(reader.get_tensor("lstm/layer_0/fw/w_h")))
    assert _epochs_logged(tmp_path, "boom") == ["1"]
    assert "The last good checkpoint stays the latest" in (
        tmp_path / "logs" / "boom" / "train.log").read_text()
