"""The training loop: epochs of shuffled minibatches, validation, logs, summaries and checkpoints.

A run named R writes:

    logs/R/metrics.csv     one row per epoch
    logs/R/train.log       the same in words, each line timestamped, plus start, end and test result
    logs/R/config.json     every hyperparameter and the data checksums
    logs/R/results.json    the best checkpoint's validation and test numbers
    logs/R/train/, logs/R/validation/   TensorBoard event files with the same tags, so
                           `tensorboard --logdir logs` overlays training and validation curves
    checkpoints/R/config.json, checkpoints/R/latest/, checkpoints/R/best/

Interruptions are safe. Every file is replaced atomically (written aside, then renamed), and the
latest checkpoint's global step says exactly where training stands: epoch `step // steps_per_epoch`,
batch `step % steps_per_epoch`. Each epoch's shuffle and crops come from a generator seeded with
(seed, epoch), so a resumed run sees the very batches an uninterrupted run would have seen. Ctrl-C
or SIGTERM finishes the current step, saves the latest checkpoint and stops.
"""

import csv
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from lstm_mnist.config import Config, ConfigError, load_config, save_config
from lstm_mnist.data import load_mnist
from lstm_mnist.errors import UserError
from lstm_mnist.evaluate import measure, session_config
from lstm_mnist.model import Model, PassSums
from lstm_mnist.runs import BEST, CONFIG_FILE, LATEST, METRICS_FILE, RESULTS_FILE
from lstm_mnist.sequences import batches, draw_crops
from lstm_mnist.tf1 import tf
from lstm_mnist.files import write_atomic

PROGRESS_FILE = "epoch_progress.json"  # beside a mid-epoch latest checkpoint
PROGRESS_EVERY = 20  # steps between progress-bar refreshes


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM: the latest checkpoint was saved and the run can be resumed."""

    kind = "stopped"
    exit_status = 130  # the shell's convention for "ended by a signal"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint stays the latest."""


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
            raise UserError(f"run {self.name!r} already exists ({existing[0]}); choose another "
                            "--run-name, continue it with --resume, or pass --overwrite")
        for folder in (self.logs, self.checkpoints):
            _check_writable(os.path.dirname(os.path.abspath(folder)))
        for folder in (self.logs, self.checkpoints):
            if overwrite and os.path.isdir(folder):
                shutil.rmtree(folder)
            try:
                os.makedirs(folder)
            except OSError as error:
                raise UserError(f"{folder}: cannot create folder ({error.strerror})") from None


def _check_writable(folder: str):
    """Raises UserError unless `folder` is, or could be created as, a writable folder.

    Creates nothing, so that a run refused for one folder leaves no trace in the other.
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{folder}: cannot create folder ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: cannot create folder ({existing} is not writable)")


def default_run_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def train(config: Config, run_name: Optional[str] = None, logdir: str = "logs",
          checkpoint_dir: str = "checkpoints", data_dir: Optional[str] = None,
          overwrite: bool = False, echo: bool = True, progress: bool = False) -> Dict[str, object]:
    """Trains a new model, validating every epoch, and tests the best checkpoint at the end.

    Args:
      config: the hyperparameters.
      run_name: folder name under `logdir` and `checkpoint_dir` (default: a timestamp).
      logdir, checkpoint_dir: parent folders of the run's logs and checkpoints.
      data_dir: MNIST folder (default: the copy shipped with the package).
      overwrite: replace an existing run of the same name.
      echo: also print the log lines to stdout.
      progress: show a progress bar during each epoch.

    Returns:
      The contents of `results.json`: best epoch, validation and test metrics, checkpoint prefix.

    Raises:
      TrainingInterrupted: on Ctrl-C or SIGTERM, after saving the latest checkpoint.
      TrainingDiverged: when the loss stops being finite.
    """
    dirs = RunDirs(run_name or default_run_name(), logdir, checkpoint_dir)
    mnist = load_mnist(data_dir)  # before touching any folder: bad data leaves nothing behind
    dirs.create(overwrite)
    extra = {"data_sha256": mnist.sha256, "tensorflow_version": tf.__version__}
    save_config(os.path.join(dirs.logs, CONFIG_FILE), config, extra)
    save_config(os.path.join(dirs.checkpoints, CONFIG_FILE), config, extra)
    return _Run(config, dirs, mnist, echo, progress).train(resume_from=None)


def resume(checkpoint_dir: str, logdir: Optional[str] = None, data_dir: Optional[str] = None,
           changes: Optional[dict] = None, echo: bool = True,
           progress: bool = False) -> Dict[str, object]:
    """Continues a run from its latest checkpoint, with its saved config.

    Args:
      checkpoint_dir: the run's checkpoint folder (`checkpoints/<run>`).
      logdir: parent folder of the run's logs (default: `logs`).
      data_dir, echo, progress: as for `train`.
      changes: hyperparameters given again on the command line; any that differs from the saved
        config is an error.

    Returns:
      As `train`.
    """
    checkpoint_dir = os.path.normpath(checkpoint_dir)
    config = load_config(os.path.join(checkpoint_dir, CONFIG_FILE))
    for key, value in (changes or {}).items():
        saved = getattr(config, key)
        if (tuple(value) if isinstance(value, (list, tuple)) else value) != saved:
            raise ConfigError(f"--resume: {key} = {value!r} contradicts the run's saved config "
                              f"({saved!r}); drop the flag to continue the run as it was")
    latest = tf.train.latest_checkpoint(os.path.join(checkpoint_dir, LATEST))
    if latest is None:
        raise UserError(f"{checkpoint_dir}: no latest checkpoint to resume from")
    name = os.path.basename(checkpoint_dir)
    dirs = RunDirs(name, logdir or "logs", os.path.dirname(checkpoint_dir) or ".")
    if not os.path.isdir(dirs.logs):
        raise UserError(f"{dirs.logs}: the run's log folder is missing (pass --logdir)")
    _check_writable(dirs.logs)
    mnist = load_mnist(data_dir)
    return _Run(config, dirs, mnist, echo, progress).train(resume_from=latest)


class _Run:
    """One training run's graph, session, writers and bookkeeping."""

    def __init__(self, config: Config, dirs: RunDirs, mnist, echo: bool, progress: bool):
        self.config, self.dirs, self.mnist, self.progress = config, dirs, mnist, progress
        self.train_split = mnist.train.head(config.train_subset)
        self.steps_per_epoch = math.ceil(len(self.train_split) / config.batch_size)
        self.log = _make_logger(os.path.join(dirs.logs, "train.log"), echo)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(config.seed)
            self.model = Model(config, training=True, steps_per_epoch=self.steps_per_epoch)
            self.latest_saver = tf.train.Saver(max_to_keep=1)
            self.best_saver = tf.train.Saver(var_list=self.model.model_variables, max_to_keep=1)
            self.initialize = tf.global_variables_initializer()
            self.graph.finalize()  # an op added by mistake inside the epoch loop would fail loudly
        self.stop_signal = None

    def train(self, resume_from: Optional[str]) -> Dict[str, object]:
        config, dirs, log = self.config, self.dirs, self.log
        metrics_path = os.path.join(dirs.logs, METRICS_FILE)
        with tf.Session(graph=self.graph, config=session_config()) as session, \
                _StopOnSignals(self):
            if resume_from:
                self.latest_saver.restore(session, resume_from)
                # Let the savers delete the checkpoints of the interrupted process when they are
                # superseded, as they would have.
                for saver, kind in ((self.latest_saver, LATEST), (self.best_saver, BEST)):
                    state = tf.train.get_checkpoint_state(os.path.join(dirs.checkpoints, kind))
                    if state is not None:
                        saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
                step = int(session.run(self.model.global_step))
                # Rows of epochs after the checkpoint were never saved with it: they are redone.
                metrics = [r for r in _read_metrics(metrics_path)
                           if int(r["epoch"]) <= step // self.steps_per_epoch]
                log.info("run %s: resumed from %s at step %d", dirs.name, resume_from, step)
            else:
                session.run(self.initialize)
                step, metrics = 0, []
                log.info("run %s: training %d examples, validating on %d; config %s", dirs.name,
                         len(self.train_split), len(self.mnist.validation),
                         json.dumps(config.to_dict()))
            writers = {name: tf.summary.FileWriter(os.path.join(dirs.logs, name),
                                                   self.graph if not resume_from else None)
                       for name in ("train", "validation")}
            if resume_from:
                # TensorBoard drops events logged after this step by the interrupted process.
                for writer in writers.values():
                    writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step)
            try:
                return self._epochs(session, writers, metrics, metrics_path, step)
            except (TrainingInterrupted, TrainingDiverged) as stop:
                log.info("%s", stop)
                raise
            finally:
                for writer in writers.values():
                    writer.close()
                _close_logger(log)

    def _epochs(self, session, writers, metrics, metrics_path, step):
        config, dirs, log, model = self.config, self.dirs, self.log, self.model
        best_error = min((float(r["validation_error"]) for r in metrics), default=math.inf)
        started = time.time() - (float(metrics[-1]["elapsed_s"]) if metrics else 0.0)
        first_epoch, skip = divmod(step, self.steps_per_epoch)
        for epoch in range(first_epoch + 1, config.epochs + 1):
            trained = self._train_epoch(session, writers["train"], epoch, skip)
            skip = 0
            validated = measure(session, model, self.mnist.validation)
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
            # Metrics first, then the checkpoint: a crash in between leaves a row the resumed
            # run drops and redoes, never a checkpoint without its row.
            _write_metrics(metrics_path, metrics)
            _write_scalars(writers["train"], step, {"loss": trained.loss,
                                                    "accuracy": 1.0 - trained.error})
            _write_scalars(writers["validation"], step, validated)
            improved = validated["error"] < best_error
            if improved:
                best_error = validated["error"]
                self.best_saver.save(session, os.path.join(dirs.checkpoints, BEST, "model"),
                                     global_step=epoch, write_meta_graph=False)
            self._save_latest(session, step)
            log.info("epoch %d/%d  %.1fs  train loss %.4f error %.2f%%  validation loss %.4f "
                     "error %.2f%%%s  grad norm mean %.3f max %.3f%s", epoch, config.epochs,
                     row["elapsed_s"], trained.loss, 100 * trained.error, validated["loss"],
                     100 * validated["error"],
                     (f" (cropped {100 * validated['error_cropped']:.2f}%)" if config.crop else ""),
                     row["grad_norm_mean"], row["grad_norm_max"], "  *best*" if improved else "")
            if self.stop_signal is not None and epoch < config.epochs:
                raise self._interrupted(step, epoch)
        return self._test(session, metrics, started)

    def _interrupted(self, step: int, epoch: int) -> TrainingInterrupted:
        return TrainingInterrupted(
            f"{self.stop_signal} at step {step} (epoch {epoch}): the latest checkpoint is saved; "
            f"continue with: python scripts/train.py --resume {self.dirs.checkpoints}")

    def _train_epoch(self, session, writer, epoch: int, skip: int):
        """One pass over the training split, starting after its first `skip` batches."""
        config, split = self.config, self.train_split
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(split))
        crops = draw_crops(rng, len(split), config.crop_min, config.crop_max) if config.crop else None
        epoch_batches = batches(split.images, split.labels, config.batch_size,
                                order[skip * config.batch_size:], crops)
        bar = tqdm(total=len(split), initial=min(skip * config.batch_size, len(split)), unit="ex",
                   desc=f"epoch {epoch}/{config.epochs}", leave=False, dynamic_ncols=True,
                   disable=not self.progress)
        # An interrupted epoch's sums are saved beside its checkpoint, so the resumed epoch reports
        # over all its batches, not only the last ones.
        progress_path = os.path.join(self.dirs.checkpoints, LATEST, PROGRESS_FILE)
        resumed_at = (epoch - 1) * self.steps_per_epoch + skip
        sums = (_read_progress(progress_path, resumed_at) if skip else None) or PassSums()

        def on_step(step, values):
            if not math.isfinite(values["loss"]):
                latest = tf.train.latest_checkpoint(os.path.join(self.dirs.checkpoints, LATEST))
                raise TrainingDiverged(
                    f"loss became {values['loss']} at step {step} (epoch {epoch}); stopped. "
                    + (f"The last good checkpoint stays the latest: {latest}" if latest else
                       "No checkpoint had been saved yet"))
            _write_scalars(writer, step, {"step/" + k: v for k, v in values.items()
                                          if k != "examples"})
            bar.update(values["examples"])
            if len(sums.grad_norms) % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{sums.loss / sums.examples:.4f}",
                                accuracy=f"{sums.correct / sums.examples:.4f}", refresh=False)
            # The last step of an epoch goes on to validation and the epoch's checkpoint.
            if self.stop_signal is not None and step % self.steps_per_epoch != 0:
                self._save_latest(session, step)
                write_atomic(progress_path, json.dumps(dict(dataclasses.asdict(sums), step=step)))
                raise self._interrupted(step, epoch)

        try:
            return self.model.run(session, epoch_batches, train=True, on_step=on_step, sums=sums)
        finally:
            bar.close()

    def _save_latest(self, session, step: int):
        self.latest_saver.save(session, os.path.join(self.dirs.checkpoints, LATEST, "model"),
                               global_step=step, write_meta_graph=False)

    def _test(self, session, metrics, started) -> Dict[str, object]:
        """Measures the best checkpoint on validation and, once per run, on test."""
        dirs, log = self.dirs, self.log
        best_row = min(metrics, key=lambda r: float(r["validation_error"]))
        best_prefix = tf.train.latest_checkpoint(os.path.join(dirs.checkpoints, BEST))
        self.best_saver.restore(session, best_prefix)
        results = {"run": dirs.name, "best_epoch": int(best_row["epoch"]),
                   "checkpoint": best_prefix, "train_seconds": round(time.time() - started, 1)}
        for split_name in ("validation", "test"):
            measured = measure(session, self.model, getattr(self.mnist, split_name))
            results.update({f"{split_name}_{k}": v for k, v in measured.items()})
        write_atomic(os.path.join(dirs.logs, RESULTS_FILE),
                     json.dumps(results, indent=2, sort_keys=True) + "\n")
        log.info("done in %.1fs: best epoch %d (%s): validation error %.2f%%, test error %.2f%% "
                 "(test accuracy %.2f%%)%s", results["train_seconds"], results["best_epoch"],
                 best_prefix, 100 * results["validation_error"], 100 * results["test_error"],
                 100 * results["test_accuracy"],
                 (f"; cropped test error {100 * results['test_error_cropped']:.2f}%"
                  if self.config.crop else ""))
        return results


class _StopOnSignals:
    """While active, SIGINT and SIGTERM only ask the run to stop after the current step."""

    def __init__(self, run: _Run):
        self.run, self.previous = run, {}

    def __enter__(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            self.previous[number] = signal.signal(number, self._request_stop)
        return self

    def _request_stop(self, number, frame):
        self.run.stop_signal = signal.Signals(number).name

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _write_scalars(writer: tf.summary.FileWriter, step: int, values: Dict[str, float]):
    summary = tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                                for tag, value in values.items()])
    writer.add_summary(summary, step)


def _read_progress(path: str, step: int) -> Optional[PassSums]:
    """The saved sums of an interrupted epoch, if they belong to the checkpoint at `step`."""
    try:
        with open(path, encoding="utf-8") as stream:
            saved = json.load(stream)
        return PassSums(**saved) if saved.pop("step", None) == step else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _read_metrics(path: str) -> List[Dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return list(csv.DictReader(stream))
    except OSError:
        return []


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
        handlers.append(_EchoHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    return log


class _EchoHandler(logging.StreamHandler):
    """Prints log lines above a progress bar, if one is showing, instead of through it."""

    def emit(self, record):
        tqdm.write(self.format(record), file=self.stream)


def _close_logger(log: logging.Logger):
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
