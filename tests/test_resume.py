"""Interrupting and resuming training: nothing duplicated, nothing lost, same result."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, run_script
from lstm_mnist.config import tiny_config
from lstm_mnist.trainer import TrainingDiverged, resume, train

# Small enough to run in seconds, big enough that an epoch takes several steps.
TINY = ["--hidden", "8", "--head-hidden", "16", "--train-subset", "640", "--batch-size", "32",
        "--dropout", "0"]


def _start_training(tmp_path, *args):
    command = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *TINY,
               "--logdir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_logged(tmp_path, run):
    path = tmp_path / "logs" / run / "metrics.csv"
    return [row["epoch"] for row in csv.DictReader(open(path))] if path.exists() else []


def _wait_for_epochs(tmp_path, run, count, process, timeout=300):
    deadline = time.time() + timeout
    while len(_epochs_logged(tmp_path, run)) < count:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "training did not reach the expected epoch"
        time.sleep(0.05)


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
    # Uninterrupted reference: 3 epochs.
    reference = run_script("train.py", *TINY, "--epochs", "3", "--run-name", "whole",
                           "--logdir", str(tmp_path / "logs"), "--checkpoint-dir",
                           str(tmp_path / "ck"))
    assert reference.returncode == 0, reference.stderr

    # The same run, stopped by SIGTERM once epoch 2 is logged, in the middle of epoch 3.
    process = _start_training(tmp_path, "--epochs", "3", "--run-name", "cut")
    _wait_for_epochs(tmp_path, "cut", 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    message = [line for line in stderr.splitlines() if line.startswith("train.py:")]
    assert len(message) == 1 and "SIGTERM" in message[0]
    assert f"--resume {tmp_path / 'ck' / 'cut'}" in message[0]
    assert "Traceback" not in stderr
    assert _epochs_logged(tmp_path, "cut") in (["1", "2"], ["1", "2", "3"])

    resumed = run_script("train.py", "--resume", str(tmp_path / "ck" / "cut"),
                         "--logdir", str(tmp_path / "logs"))
    assert resumed.returncode == 0, resumed.stderr
    assert _epochs_logged(tmp_path, "cut") == ["1", "2", "3"]

    # Same seed, same batches, no dropout: the resumed run ends where the uninterrupted one
    # does, up to floating-point reassociation across processes.
    whole = list(csv.DictReader(open(tmp_path / "logs" / "whole" / "metrics.csv")))
    cut = list(csv.DictReader(open(tmp_path / "logs" / "cut" / "metrics.csv")))
    for a, b in zip(whole, cut):
        for key in ("train_loss", "validation_loss", "validation_error"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), key
    results = [json.loads((tmp_path / "logs" / run / "results.json").read_text())
               for run in ("whole", "cut")]
    assert results[0]["test_loss"] == pytest.approx(results[1]["test_loss"], abs=1e-4)
    log = (tmp_path / "logs" / "cut" / "train.log").read_text()
    assert "resumed from" in log and "SIGTERM" in log
    # TensorBoard steps go on from the checkpoint: the last epoch's summary sits at step 60.
    steps = set()
    for name in os.listdir(tmp_path / "logs" / "cut" / "validation"):
        for event in tf.train.summary_iterator(str(tmp_path / "logs" / "cut" / "validation" / name)):
            if any(v.tag == "loss" for v in event.summary.value):
                steps.add(event.step)
    assert steps == {20, 40, 60}


def test_resume_refuses_a_contradicting_flag(tmp_path):
    result = run_script("train.py", *TINY, "--epochs", "1", "--run-name", "r", "--logdir",
                        str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.returncode == 0, result.stderr
    before = (tmp_path / "logs" / "r" / "metrics.csv").read_text()
    again = run_script("train.py", "--resume", str(tmp_path / "ck" / "r"), "--lr", "0.5",
                       "--logdir", str(tmp_path / "logs"))
    assert again.returncode == 2
    assert "lr = 0.5 contradicts the run's saved config" in again.stderr
    assert (tmp_path / "logs" / "r" / "metrics.csv").read_text() == before


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
        process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--resume",
             str(tmp_path / "ck" / "k"), "--logdir", str(tmp_path / "logs")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_epochs(tmp_path, "k", len(epochs) + 1, process)
    process.kill()
    process.wait()
    epochs = _epochs_logged(tmp_path, "k")
    assert epochs == [str(e) for e in range(1, len(epochs) + 1)]


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
