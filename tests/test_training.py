"""Short real trainings: the model learns, and the run writes everything it promises."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

from lstm_mnist.config import Config, tiny_config
from lstm_mnist.model import Model
from lstm_mnist.passes import PassSums, run_pass
from lstm_mnist.sequences import batches
from lstm_mnist.tf1 import tf


def _run(session, model, minibatches, train=False):
    """One pass through `passes.run_pass`; returns its PassResult."""
    sums = PassSums()
    for _ in run_pass(session, model, minibatches, sums, train=train):
        pass
    return sums.result()


def test_a_short_training_drives_the_loss_down_and_beats_chance(mnist):
    config = Config(hidden=(32,), head_hidden=64, dropout=0.0, batch_size=64, lr=5e-3,
                    lr_schedule="constant")
    train = mnist.train.head(3000)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        model = Model(config, config.optimizer(steps_per_epoch=47))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            evaluate = lambda: _run(session, model, batches(mnist.validation.images[:1000],
                                                            mnist.validation.labels[:1000], 500))
            before = evaluate()
            rng = np.random.default_rng(0)
            for _ in range(2):
                _run(session, model, batches(train.images, train.labels, 64,
                                             rng.permutation(len(train))), train=True)
            after = evaluate()
    assert before.error > 0.75  # an untrained model is near chance (90% error)
    assert after.loss < 0.6 * before.loss
    assert after.error < 0.35, f"validation error {after.error:.3f} after 2 epochs on 3000 images"


def test_training_run_writes_logs_summaries_and_checkpoints(tmp_path):
    from lstm_mnist.trainer import train
    results = train(tiny_config(epochs=2), run_name="tiny", logdir=str(tmp_path / "logs"),
                    checkpoint_dir=str(tmp_path / "checkpoints"), echo=False)
    logs, checkpoints = tmp_path / "logs" / "tiny", tmp_path / "checkpoints" / "tiny"
    rows = list(csv.DictReader(open(logs / "metrics.csv")))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert list(rows[0])[:8] == ["epoch", "timestamp", "elapsed_s", "train_loss", "train_error",
                                 "validation_loss", "validation_error", "grad_norm_mean"]
    log_lines = (logs / "train.log").read_text().splitlines()
    assert any("epoch 2/2" in line for line in log_lines)
    assert "test error" in log_lines[-1]
    assert all(line[:4].isdigit() for line in log_lines)  # every line starts with its timestamp
    saved = json.loads((logs / "config.json").read_text())
    assert saved["config"] == tiny_config(epochs=2).to_dict()
    assert set(saved["data_sha256"]) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert (checkpoints / "config.json").read_text() == (logs / "config.json").read_text()
    # Latest checkpoints are numbered by global step: 2 epochs of 256 examples in batches of 64.
    assert tf.train.latest_checkpoint(str(checkpoints / "latest")).endswith("model-8")
    best = tf.train.latest_checkpoint(str(checkpoints / "best"))
    assert best == results["checkpoint"]
    best_epoch = int(best.rsplit("-", 1)[1])
    best_row = min(rows, key=lambda row: float(row["validation_error"]))
    assert float(rows[best_epoch - 1]["validation_error"]) == float(best_row["validation_error"])
    assert abs(results["validation_error"] - float(best_row["validation_error"])) < 1e-6

    tags = {}
    for stream in ("train", "validation", "steps"):
        for event_file in os.listdir(logs / stream):
            for event in tf.train.summary_iterator(str(logs / stream / event_file)):
                for value in event.summary.value:
                    tags.setdefault(stream, set()).add(value.tag)
    # The same epoch tags in both streams, so TensorBoard overlays every curve.
    assert tags["train"] == tags["validation"] == {"loss", "error", "accuracy"}
    assert {"step/loss", "step/grad_norm", "step/learning_rate"} <= tags["steps"]
    assert any(tag.startswith("step/grad_norm/lstm/layer_0/fw/w_h") for tag in tags["steps"])
    assert (logs / "curves.png").stat().st_size > 0


def test_pass_sums_weight_each_batch_by_its_size_and_survive_json():
    sums = PassSums()
    sums.add(mean_loss=1.0, correct=3, examples=4, grad_norm=0.5)
    saved = json.loads(json.dumps(dataclasses.asdict(sums)))  # what an interrupted epoch keeps
    resumed = PassSums(**saved)
    resumed.add(mean_loss=0.25, correct=0, examples=1, grad_norm=2.0)
    result = resumed.result()
    assert result.loss == pytest.approx((4 * 1.0 + 0.25) / 5)
    assert result.error == pytest.approx(1 - 3 / 5) and result.accuracy == pytest.approx(3 / 5)
    assert result.examples == 5 and list(result.grad_norms) == [0.5, 2.0]


@pytest.mark.parametrize("lstm", ["fast", "textbook"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_deep_cropped_model_builds_and_takes_a_training_step(mnist, bidirectional, lstm):
    from lstm_mnist.sequences import draw_crops
    config = Config(layers=3, hidden=(64, 32, 16), bidirectional=bidirectional, crop=True,
                    dropout=0.3, batch_size=16, lstm=lstm)
    images, labels = mnist.train.images[:16], mnist.train.labels[:16]
    crops = draw_crops(np.random.default_rng(0), 16, config.crop_min, config.crop_max)
    with tf.Graph().as_default():
        model = Model(config, config.optimizer(steps_per_epoch=1))
        shapes = {v.op.name: v.shape.as_list() for v in model.model_variables}
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            before = session.run(model.model_variables)
            result = _run(session, model, batches(images, labels, 16, crops=crops), train=True)
            after = session.run(model.model_variables)
    width = 2 if bidirectional else 1
    assert shapes["lstm/layer_1/fw/w_x"] == [64 * width, 4 * 32]
    assert shapes["lstm/layer_2/fw/w_h"] == [16, 4 * 16]
    assert shapes["head/hidden/w"] == [16 * width, config.head_hidden]
    assert ("lstm/layer_2/bw/w_x" in shapes) == bidirectional
    assert np.isfinite(result.loss) and len(result.grad_norms) == 1
    assert all(np.any(b != a) for b, a in zip(before, after)), "every variable must be trained"


def test_evaluation_is_deterministic_with_dropout_configured(mnist):
    config = Config(hidden=(16,), head_hidden=16, dropout=0.5)
    data = list(batches(mnist.validation.images[:200], mnist.validation.labels[:200], 200))
    inputs, lengths, _ = data[0]
    with tf.Graph().as_default():
        model = Model(config, config.optimizer(steps_per_epoch=1))
        feed = {model.inputs: inputs, model.lengths: lengths}
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            first, second = (session.run(model.logits, feed) for _ in range(2))
            feed[model.dropout_rate] = 0.5
            dropped = session.run(model.logits, feed)
            measured = [_run(session, model, data).loss for _ in range(2)]
    np.testing.assert_array_equal(first, second)
    assert np.abs(dropped - first).max() > 1e-3
    assert measured[0] == measured[1]


def test_progress_bar_goes_to_the_terminal_not_into_the_log(tmp_path, capsys):
    from lstm_mnist.trainer import train
    train(tiny_config(epochs=2), run_name="bar", logdir=str(tmp_path / "logs"),
          checkpoint_dir=str(tmp_path / "checkpoints"), progress=True)
    captured = capsys.readouterr()
    assert "ex/s" in captured.err and "epoch 2/2" in captured.err  # the bar, on stderr
    assert "epoch 2/2" in captured.out  # the epoch lines, on stdout above the bar
    log = (tmp_path / "logs" / "bar" / "train.log").read_text()
    assert "\r" not in log and "ex/s" not in log
    assert all(line[:4].isdigit() for line in log.splitlines())


def test_a_stopped_run_says_why_once_on_the_terminal_and_in_its_log(tmp_path, capsys,
                                                                     monkeypatch):
    from lstm_mnist.lifecycle import TrainingInterrupted
    from lstm_mnist.trainer import Trainer, train
    end_epoch = Trainer._end_epoch

    def stop_after_the_epoch(self, epoch, *args):
        end_epoch(self, epoch, *args)
        self.stop.requested = "SIGTERM"

    monkeypatch.setattr(Trainer, "_end_epoch", stop_after_the_epoch)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny_config(epochs=2), run_name="run", logdir=str(tmp_path / "logs"),
              checkpoint_dir=str(tmp_path / "ck"), pictures=False)
    printed = capsys.readouterr().out
    # The script prints the stop as its error line; the echoed log must not say it again.
    assert "epoch 1/2" in printed and "SIGTERM" not in printed
    assert str(stopped.value) in (tmp_path / "logs" / "run" / "train.log").read_text()

