"""What a run shows in TensorBoard, read back by TensorBoard's own reader: the HParams session,
pictures and histograms every epoch, the config as text; none of the pictures when asked."""

import json
import os

import numpy as np
import pytest

from helpers import assert_one_line_error, run_script
from lstm_mnist import dashboard
from lstm_mnist.config import tiny_config
from lstm_mnist.errors import UserError
from lstm_mnist.lifecycle import TrainingInterrupted
from lstm_mnist.tf1 import tf
from lstm_mnist.trainer import Trainer, resume, train

STEPS_PER_EPOCH = 4  # tiny_config: 256 examples in batches of 64
GATE_TAGS = {f"gates/layer_{k}/{d}/{gate}" for k in range(2) for d in ("fw", "bw")
             for gate in ("input_gate", "forget_gate", "output_gate")}


def _read(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0,
                                                          "scalars": 0})
    events.Reload()
    return events


def _train(tmp_path, config, **options):
    return train(config, run_name="run", logdir=str(tmp_path / "logs"),
                 checkpoint_dir=str(tmp_path / "ck"), echo=False, **options)


def _session(events):
    from tensorboard.plugins.hparams import metadata
    tags = events.Tags()["tensors"]
    start = metadata.parse_session_start_info_plugin_data(
        events.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content)
    end = (metadata.parse_session_end_info_plugin_data(
        events.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content)
        if metadata.SESSION_END_INFO_TAG in tags else None)
    return start, end


def test_a_run_shows_its_session_pictures_histograms_and_config(tmp_path):
    from tensorboard.plugins.hparams import api_pb2
    config = tiny_config(epochs=2, layers=2, bidirectional=True, crop=True, crop_min=20)
    results = _train(tmp_path, config)
    events = _read(tmp_path / "logs" / "run")

    start, end = _session(events)
    recorded = {name: getattr(value, value.WhichOneof("kind"))
                for name, value in start.hparams.items()}
    assert recorded == dashboard.hparams_values(config)
    assert recorded["hidden"] == "8,8" and recorded["lstm"] == "fast"
    assert end.status == api_pb2.STATUS_SUCCESS

    # Results for the table: the best validation errors every epoch, the test at the end.
    last_step = 2 * STEPS_PER_EPOCH
    assert [e.step for e in events.Scalars("best_validation_error")] == [STEPS_PER_EPOCH,
                                                                         last_step]
    assert events.Scalars("best_validation_error")[-1].value == pytest.approx(
        results["validation_error"])
    assert events.Scalars("best_validation_error_cropped")[-1].value == pytest.approx(
        results["validation_error_cropped"])
    assert events.Scalars("test_accuracy")[-1].value == pytest.approx(results["test_accuracy"])

    # One reading picture per epoch (ten digits, one row each), the confusion matrix at the end.
    readings = events.Images(dashboard.READING_TAG)
    assert [image.step for image in readings] == [STEPS_PER_EPOCH, last_step]
    assert readings[0].height > 10 * 28 and readings[0].encoded_image_string[:4] == b"\x89PNG"
    assert [image.step for image in events.Images(dashboard.CONFUSION_TAG)] == [last_step]

    histograms = {tag for tag in events.Tags()["tensors"]
                  if events.SummaryMetadata(tag).plugin_data.plugin_name == "histograms"}
    assert GATE_TAGS <= histograms
    assert "weights/lstm/layer_1/bw/w_h" in histograms and "weights/head/logits/w" in histograms
    assert [e.step for e in events.Tensors("gates/layer_0/fw/forget_gate")] == [STEPS_PER_EPOCH,
                                                                               last_step]
    # A gate is a sigmoid: its histogram lies in [0, 1].
    buckets = tf.make_ndarray(events.Tensors("gates/layer_1/bw/input_gate")[-1].tensor_proto)
    assert 0.0 <= buckets[:, 0].min() and buckets[:, 1].max() <= 1.0 and buckets[:, 2].sum() > 0

    text = tf.make_ndarray(events.Tensors("config")[0].tensor_proto).item().decode()
    assert json.loads(text) == config.to_dict()


def test_without_pictures_a_run_writes_its_session_but_no_images_or_histograms(tmp_path):
    _train(tmp_path, tiny_config(epochs=1), pictures=False)
    events = _read(tmp_path / "logs" / "run")
    assert events.Tags()["images"] == []
    assert [tag for tag in events.Tags()["tensors"] if tag.startswith(("gates/", "weights/"))] == []
    start, end = _session(events)
    assert start.hparams["epochs"].number_value == 1 and end is not None


@pytest.mark.slow
def test_a_resumed_run_stays_one_session_and_its_pictures_go_on(tmp_path, monkeypatch):
    end_epoch = Trainer._end_epoch

    def stop_after_the_first_epoch(self, epoch, *args):
        end_epoch(self, epoch, *args)
        if epoch == 1:
            self.stop.requested = "SIGTERM"

    monkeypatch.setattr(Trainer, "_end_epoch", stop_after_the_first_epoch)
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path, tiny_config(epochs=3))
    monkeypatch.undo()
    resume(str(tmp_path / "ck" / "run"), logdir=str(tmp_path / "logs"), echo=False)

    events = _read(tmp_path / "logs" / "run")
    from tensorboard.plugins.hparams import metadata
    assert len(events.Tensors(metadata.SESSION_START_INFO_TAG)) == 1
    assert len(events.Tensors(metadata.SESSION_END_INFO_TAG)) == 1
    every_epoch = [STEPS_PER_EPOCH * epoch for epoch in (1, 2, 3)]
    assert [image.step for image in events.Images(dashboard.READING_TAG)] == every_epoch
    # TensorBoard drops what the stopped process logged after its checkpoint, but not the
    # epoch the checkpoint ends.
    validation = _read(tmp_path / "logs" / "run" / "validation")
    assert [event.step for event in validation.Scalars("error")] == every_epoch
    # Each process writes event files of its own, even within the same second.
    assert len(os.listdir(tmp_path / "logs" / "run" / "validation")) == 2


def test_the_reading_picture_has_a_row_per_digit_and_bars_as_high_as_the_probabilities():
    from lstm_mnist.explain import Explanation
    from lstm_mnist.explain_figure import READING_SCALE, reading_picture
    probabilities = np.eye(10)[3] * 0.5 + 0.05
    explanation = Explanation(None, np.zeros((28, 28), np.float32), probabilities,
                              np.tile(probabilities, (28, 1)), {})
    picture = reading_picture([explanation, explanation._replace(step_probabilities=None)])
    assert picture.dtype == np.uint8 and picture.shape[0] == (2 * 28 + 1) * READING_SCALE
    bars = picture[:28 * READING_SCALE, -30 * READING_SCALE:]  # the last panel: ten bars
    column = bars[:, (3 * 3 + 1) * READING_SCALE]  # digit 3's bar, p = 0.55
    filled = (column != 255).any(axis=1).sum() / READING_SCALE
    assert filled == pytest.approx(0.55 * 28, abs=1)


@pytest.mark.slow
def test_record_session_gives_an_older_finished_run_its_session_once(tmp_path):
    from tensorboard.plugins.hparams import api_pb2

    config = tiny_config(epochs=2, crop=True, crop_min=20)
    results = _train(tmp_path, config, pictures=False)
    run = tmp_path / "logs" / "run"
    for name in os.listdir(run):  # as a run trained before runs recorded their session
        if name.startswith("events.out.tfevents."):
            os.remove(run / name)
    recorded = run_script("record_session.py", str(run))
    assert recorded.returncode == 0 and recorded.stderr == "", recorded.stderr
    events = _read(run)
    start, end = _session(events)
    assert start.hparams["crop"].bool_value and start.hparams["hidden"].string_value == "8"
    assert end.status == api_pb2.STATUS_SUCCESS
    for tag, key in (("best_validation_error_cropped", "validation_error_cropped"),
                     ("test_error", "test_error"), ("test_accuracy", "test_accuracy")):
        (scalar,) = events.Scalars(tag)
        assert scalar.value == pytest.approx(results[key]) and scalar.step == 2 * STEPS_PER_EPOCH
    assert json.loads(tf.make_ndarray(events.Tensors("config")[0].tensor_proto).item()) == \
        config.to_dict()

    files = sorted(os.listdir(run))
    again = run_script("record_session.py", str(run))
    assert_one_line_error(again, "has TensorBoard events of its own already")
    assert sorted(os.listdir(run)) == files
    with pytest.raises(UserError, match="cannot read config"):
        dashboard.record_session(str(tmp_path / "logs"))


@pytest.mark.slow
def test_pictures_change_nothing_a_run_computes(tmp_path):
    # With dropout, the masks come from stateful random ops: drawing the pictures between epochs
    # must not run them, or the run with pictures would train on other masks.
    config = tiny_config(epochs=3, dropout=0.3)
    metrics = []
    for pictures in (True, False):
        results = train(config, run_name=f"pictures-{pictures}", logdir=str(tmp_path / "logs"),
                        checkpoint_dir=str(tmp_path / "ck"), echo=False, pictures=pictures)
        rows = (tmp_path / "logs" / f"pictures-{pictures}" / "metrics.csv").read_text()
        metrics.append(([line.split(",")[3:] for line in rows.splitlines()],
                        results["test_loss"]))
    assert metrics[0] == metrics[1]
