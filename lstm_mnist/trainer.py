"""The training loop: epochs of shuffled minibatches, validation, logs, summaries and checkpoints.

A run named R writes:

    logs/R/metrics.csv     one row per epoch
    logs/R/train.log       the same in words, each line timestamped, plus start, end and test result
    logs/R/config.json     every hyperparameter and the data checksums
    logs/R/results.json    the best checkpoint's validation and test numbers
    logs/R/train/, logs/R/validation/   TensorBoard event files with the same tags, so
                           `tensorboard --logdir logs` overlays training and validation curves
    checkpoints/R/config.json, checkpoints/R/latest/, checkpoints/R/best/
"""

import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

import numpy as np
import tensorflow.compat.v1 as tf

from lstm_mnist.config import Config, save_config
from lstm_mnist.data import load_mnist
from lstm_mnist.errors import UserError
from lstm_mnist.evaluate import BEST, CONFIG_FILE, LATEST, measure, session_config
from lstm_mnist.model import Model
from lstm_mnist.sequences import batches, draw_crops
from lstm_mnist.utils import write_atomic

METRICS_FILE = "metrics.csv"


class RunDirs:
    """The log and checkpoint folders of one run."""

    def __init__(self, run_name: str, logdir: str, checkpoint_dir: str):
        if not run_name or os.sep in run_name or run_name in (".", ".."):
            raise UserError(f"run name {run_name!r} must be a plain folder name")
        self.name = run_name
        self.logs = os.path.join(logdir, run_name)
        self.checkpoints = os.path.join(checkpoint_dir, run_name)

    def create(self, overwrite: bool):
        """Creates both folders; an existing run is an error unless `overwrite`."""
        existing = [d for d in (self.logs, self.checkpoints) if os.path.exists(d)]
        if existing and not overwrite:
            raise UserError(f"run {self.name!r} already exists ({existing[0]}); "
                            "choose another --run-name or pass --overwrite")
        for folder in (self.logs, self.checkpoints):
            if overwrite and os.path.isdir(folder):
                shutil.rmtree(folder)
            try:
                os.makedirs(folder)
            except OSError as error:
                raise UserError(f"{folder}: cannot create ({error.strerror})") from None


def default_run_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def train(config: Config, run_name: Optional[str] = None, logdir: str = "logs",
          checkpoint_dir: str = "checkpoints", data_dir: Optional[str] = None,
          overwrite: bool = False, echo: bool = True) -> Dict[str, object]:
    """Trains a model, validating every epoch, and tests the best checkpoint at the end.

    Args:
      config: the hyperparameters.
      run_name: folder name under `logdir` and `checkpoint_dir` (default: a timestamp).
      logdir, checkpoint_dir: parent folders of the run's logs and checkpoints.
      data_dir: MNIST folder (default: the copy shipped with the package).
      overwrite: replace an existing run of the same name.
      echo: also print the log lines to stdout.

    Returns:
      The contents of `results.json`: best epoch, validation and test metrics, checkpoint prefix.
    """
    dirs = RunDirs(run_name or default_run_name(), logdir, checkpoint_dir)
    mnist = load_mnist(data_dir)  # before touching any folder: bad data leaves nothing behind
    train_split = mnist.train.head(config.train_subset)
    dirs.create(overwrite)
    log = _make_logger(os.path.join(dirs.logs, "train.log"), echo)
    extra = {"data_sha256": mnist.sha256, "tensorflow_version": tf.__version__}
    save_config(os.path.join(dirs.logs, CONFIG_FILE), config, extra)
    save_config(os.path.join(dirs.checkpoints, CONFIG_FILE), config, extra)
    log.info("run %s: training %d examples, validating on %d; config %s", dirs.name,
             len(train_split), len(mnist.validation), json.dumps(config.to_dict()))

    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(config.seed)
        model = Model(config, training=True, steps_per_epoch=steps_per_epoch)
        latest_saver = tf.train.Saver(max_to_keep=1)
        best_saver = tf.train.Saver(var_list=model.model_variables, max_to_keep=1)
        initialize = tf.global_variables_initializer()
        graph.finalize()  # an op added by mistake inside the epoch loop would fail loudly

    rng = np.random.default_rng(config.seed)
    writers = {name: tf.summary.FileWriter(os.path.join(dirs.logs, name),
                                           graph if name == "train" else None)
               for name in ("train", "validation")}
    metrics: List[Dict[str, object]] = []
    best_error, best_epoch = math.inf, 0
    started = time.time()
    with tf.Session(graph=graph, config=session_config()) as session:
        session.run(initialize)
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(train_split))
            crops = (draw_crops(rng, len(train_split), config.crop_min, config.crop_max)
                     if config.crop else None)
            epoch_batches = batches(train_split.images, train_split.labels, config.batch_size,
                                    order, crops)
            trained = model.run(session, epoch_batches, train=True,
                                on_step=lambda step, values: _write_scalars(
                                    writers["train"], step, {"step/" + k: v
                                                             for k, v in values.items()}))
            validated = measure(session, model, mnist.validation)
            step = int(session.run(model.global_step))

            row = {"epoch": epoch,
                   "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "elapsed_s": round(time.time() - started, 2),
                   "train_loss": trained.loss, "train_error": trained.error}
            row.update({"validation_" + k: v for k, v in validated.items()
                        if not k.startswith("accuracy")})
            row.update(grad_norm_mean=float(trained.grad_norms.mean()),
                       grad_norm_max=float(trained.grad_norms.max()))
            metrics.append(row)
            _write_metrics(os.path.join(dirs.logs, METRICS_FILE), metrics)
            _write_scalars(writers["train"], step, {"loss": trained.loss,
                                                    "accuracy": 1.0 - trained.error})
            _write_scalars(writers["validation"], step, validated)

            latest_saver.save(session, os.path.join(dirs.checkpoints, LATEST, "model"),
                              global_step=epoch, write_meta_graph=False)
            improved = validated["error"] < best_error
            if improved:
                best_error, best_epoch = validated["error"], epoch
                best_saver.save(session, os.path.join(dirs.checkpoints, BEST, "model"),
                                global_step=epoch, write_meta_graph=False)
            log.info("epoch %d/%d  %.1fs  train loss %.4f error %.2f%%  validation loss %.4f "
                     "error %.2f%%%s  grad norm mean %.3f max %.3f%s", epoch, config.epochs,
                     row["elapsed_s"], trained.loss, 100 * trained.error, validated["loss"],
                     100 * validated["error"],
                     (f" (cropped {100 * validated['error_cropped']:.2f}%)" if config.crop else ""),
                     row["grad_norm_mean"], row["grad_norm_max"], "  *best*" if improved else "")

        # The test set is read exactly once per run, with the checkpoint chosen on validation.
        best_prefix = tf.train.latest_checkpoint(os.path.join(dirs.checkpoints, BEST))
        best_saver.restore(session, best_prefix)
        results = {"run": dirs.name, "best_epoch": best_epoch, "checkpoint": best_prefix,
                   "train_seconds": round(time.time() - started, 1)}
        for split_name in ("validation", "test"):
            measured = measure(session, model, getattr(mnist, split_name))
            results.update({f"{split_name}_{k}": v for k, v in measured.items()})
    for writer in writers.values():
        writer.close()
    write_atomic(os.path.join(dirs.logs, "results.json"),
                 json.dumps(results, indent=2, sort_keys=True) + "\n")
    log.info("done in %.1fs: best epoch %d (%s): validation error %.2f%%, test error %.2f%% "
             "(test accuracy %.2f%%)%s", results["train_seconds"], best_epoch, best_prefix,
             100 * results["validation_error"], 100 * results["test_error"],
             100 * results["test_accuracy"],
             (f"; cropped test error {100 * results['test_error_cropped']:.2f}%"
              if config.crop else ""))
    _close_logger(log)
    return results


def _write_scalars(writer: tf.summary.FileWriter, step: int, values: Dict[str, float]):
    summary = tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                                for tag, value in values.items()])
    writer.add_summary(summary, step)


def _write_metrics(path: str, rows: List[Dict[str, object]]):
    """Rewrites the whole CSV atomically, so a crash never leaves a half-written row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(path, buffer.getvalue())


def _make_logger(path: str, echo: bool) -> logging.Logger:
    log = logging.getLogger(f"lstm_mnist.run.{path}")
    log.setLevel(logging.INFO)
    log.propagate = False
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
    handlers = [logging.FileHandler(path, encoding="utf-8")]
    if echo:
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    return log


def _close_logger(log: logging.Logger):
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
