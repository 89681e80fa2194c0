"""The training loop: epochs of shuffled minibatches, validation, checkpoints, and the final test.

A run named R writes `logs/R/` (metrics.csv, train.log, config.json, results.json, curves.png and
TensorBoard streams) and `checkpoints/R/` (config.json, latest/, best/); `runs.py` names the files
and guards the folders.

Interruptions are safe. Every file is replaced atomically (written aside, then renamed), and the
latest checkpoint's global step says exactly where training stands: epoch `step // steps_per_epoch`,
batch `step % steps_per_epoch`. Each epoch's shuffle and crops come from a generator seeded with
(seed, epoch), so a resumed run sees the very batches an uninterrupted run would have seen. A stop
signal (lifecycle.STOP_SIGNALS) finishes the current step, saves the latest checkpoint and stops.
"""

import dataclasses
import math
import os
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

import numpy as np

from lstm_mnist import checkpoints, dashboard
from lstm_mnist.cell import DIRECTIONS
from lstm_mnist.config import Config, ConfigError, load_config, save_config
from lstm_mnist.data import MNIST, load_mnist
from lstm_mnist.errors import UserError
from lstm_mnist.explain import Tracer, split_inputs
from lstm_mnist.figures import figure_png
from lstm_mnist.files import write_csv, write_json
from lstm_mnist.lifecycle import StopRequest, TrainingInterrupted, one_line_errors
from lstm_mnist.memory import check_memory
from lstm_mnist.model import Model
from lstm_mnist.monitor import RunLog, StepMonitor, Summaries, TrainingDiverged, records
from lstm_mnist.passes import PassResult, PassSums, measure, run_pass
from lstm_mnist.plots import plot_runs
from lstm_mnist.report import confusion_figure, confusion_matrix
from lstm_mnist.run_records import DONE, read_epoch_progress, read_history, run_ended
from lstm_mnist.runs import RunFolders, RunLock, code_version, new_run_id
from lstm_mnist.sequences import batches, draw_crops
from lstm_mnist.tf1 import session_config, tf

__all__ = ["train", "resume", "TrainingInterrupted", "TrainingDiverged", "RunFinished"]




class RunFinished(UserError):
    """--resume of a run that has trained all its epochs and measured its best checkpoint."""

    kind = "nothing to do"
    exit_status = 0


def train(config: Config, run_name: Optional[str] = None, logdir: str = "logs",
          checkpoint_dir: str = "checkpoints", data_dir: Optional[str] = None,
          overwrite: bool = False, echo: bool = True, progress: bool = False,
          pictures: bool = True) -> Dict[str, object]:
    """Trains a new model, validating every epoch, and tests the best checkpoint at the end.

    Every check (names, config, memory, data, folders) runs before the first folder is created
    or, with `overwrite`, the old run deleted; the graph is built before the run's name is claimed
    (`RunFolders.claim`). A run that fails before saving its first checkpoint removes the folders
    it created, so its name is free again.

    Args:
      config: the hyperparameters.
      run_name: folder name under `logdir` and `checkpoint_dir` (default: a timestamp, with a
        suffix if another run took it in the same second).
      logdir, checkpoint_dir: parent folders of the run's logs and checkpoints.
      data_dir: MNIST folder (default: the copy shipped with the package).
      overwrite: replace an existing run of the same name (only a run folder, never another).
      echo: also print the log lines to stdout.
      progress: show a progress bar during each epoch.
      pictures: also show in TensorBoard, every epoch, how the model reads a handful of
        validation digits and histograms of its weights and gates, and at the end the test
        confusion matrix.

    Returns:
      The contents of `results.json`: best epoch, validation and test metrics, checkpoint prefix.

    Raises:
      TrainingInterrupted: on a stop signal, after saving the latest checkpoint.
      TrainingDiverged: when the loss, gradients or weights stop being finite.
      UserError: for anything else the user can fix, in one line.
    """
    folders = RunFolders.for_new_run(run_name, logdir, checkpoint_dir)
    mnist = load_mnist(data_dir)
    folders.check_new(overwrite, unique=run_name is None)
    with one_line_errors(folders), Trainer(config, folders, mnist, pictures) as trainer:
        trainer.session.run(trainer.initialize)
        with folders.claim(overwrite, unique=run_name is None):
            try:
                identity = {"run_id": new_run_id(), "data_sha256": mnist.sha256,
                            "tensorflow_version": tf.__version__, "code_version": code_version()}
                for path in (folders.log_config, folders.checkpoint_config):
                    save_config(path, config, identity)
                return trainer.run(resumed_from=None, echo=echo, progress=progress)
            except BaseException:
                if not trainer.saved_any:
                    folders.remove()  # all of it was written by this run, and nothing worth keeping
                raise


def resume(checkpoint_dir: str, logdir: Optional[str] = None, data_dir: Optional[str] = None,
           changes: Optional[dict] = None, echo: bool = True, progress: bool = False,
           pictures: bool = True) -> Dict[str, object]:
    """Continues a run from its latest checkpoint, with its saved config.

    Args:
      checkpoint_dir: the run's checkpoint folder (`checkpoints/<run>`).
      logdir: parent folder of the run's logs (default: `logs`); its config.json must be the
        checkpoint folder's, or the run is refused.
      data_dir, echo, progress, pictures: as for `train`.
      changes: hyperparameters given again on the command line; any that differs from the saved
        config is an error.

    Returns:
      As `train`.

    Raises:
      RunFinished: the run had trained every epoch and written its results; nothing changes.
      As `train` otherwise.
    """
    checkpoint_dir = os.path.normpath(checkpoint_dir)
    folders = RunFolders(os.path.join(logdir or "logs", os.path.basename(checkpoint_dir)),
                         checkpoint_dir)
    if not os.path.isdir(checkpoint_dir):
        raise UserError(f"{checkpoint_dir}: no such run checkpoint folder (checkpoints/<run>)")
    folders.check_paths()
    config = load_config(folders.checkpoint_config)
    for key, value in (changes or {}).items():
        saved = getattr(config, key)
        if (tuple(value) if isinstance(value, (list, tuple)) else value) != saved:
            raise ConfigError(f"--resume: {key} = {value!r} contradicts the run's saved config "
                              f"({saved!r}); drop the flag to continue the run as it was")
    folders.check_resumable()
    mnist = load_mnist(data_dir)
    with one_line_errors(folders), RunLock(folders.both, folders.name), \
            Trainer(config, folders, mnist, pictures) as trainer:
        latest = checkpoints.latest_in(folders.latest)
        if latest:
            trainer.restore(latest)
        else:  # killed before its first checkpoint: the run starts again from the beginning
            trainer.session.run(trainer.initialize)
        if trainer.step >= trainer.total_steps and run_ended(folders):
            raise RunFinished(f"run {folders.name!r} has trained all {config.epochs} epochs and "
                              f"was tested ({folders.results}); nothing changed")
        folders.remove_temporaries()
        folders.unshare_log()
        return trainer.run(resumed_from=latest, echo=echo, progress=progress)


class Trainer:
    """One run's graph and session, and its epoch loop."""

    def __init__(self, config: Config, folders: RunFolders, mnist: MNIST, pictures: bool = True):
        """Builds the graph and its session; raises UserError, before anything is written, if the
        config does not fit the data or the model cannot fit in memory. With `pictures`, the graph
        also traces how the model reads a digit (`explain.Tracer`) for TensorBoard."""
        self.config, self.folders, self.mnist = config, folders, mnist
        if config.train_subset > len(mnist.train):
            raise ConfigError(f"--train-subset {config.train_subset} is larger than the training "
                              f"split ({len(mnist.train)} images)")
        self.train_split = mnist.train.head(config.train_subset)
        self.steps_per_epoch = math.ceil(len(self.train_split) / config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        check_memory(config, config.batch_size, training=True)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(config.seed)
            self.model = Model(config, config.optimizer(self.steps_per_epoch))
            self.latest_saver = checkpoints.saver()
            self.best_saver = checkpoints.saver(self.model.model_variables)
            self.weights_finite = tf.reduce_all([tf.reduce_all(tf.is_finite(v))
                                                 for v in self.model.model_variables])
            self.tracer = Tracer(self.model) if pictures else None
            self.initialize = tf.global_variables_initializer()
            self.graph.finalize()  # an op added by mistake inside the epoch loop would fail loudly
        # The digits the pictures show every epoch: the first validation image of each.
        labels = mnist.validation.labels
        self.handful = split_inputs(mnist.validation, [int(np.flatnonzero(labels == digit)[0])
                                                       for digit in np.unique(labels)],
                                    config, split_name="validation") if pictures else None
        self.session = tf.Session(graph=self.graph, config=session_config())
        self.stop = StopRequest()
        self.step = 0  # the global step, as of the last step run or checkpoint restored
        self.saved_any = False  # whether this process saved a checkpoint

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc_info):
        self.session.close()

    def restore(self, prefix: str):
        checkpoints.restore(self.session, prefix,
                            self.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES),
                            self.latest_saver)
        # Let the savers delete the checkpoints they would have superseded in the interrupted
        # process (resolved inside this run's folders, never another's).
        self.latest_saver.recover_last_checkpoints(checkpoints.saved_in(self.folders.latest))
        self.best_saver.recover_last_checkpoints(checkpoints.saved_in(self.folders.best))
        self.step = int(self.session.run(self.model.global_step))

    def run(self, resumed_from: Optional[str], echo: bool, progress: bool) -> Dict[str, object]:
        """Trains from the current step to the last epoch, then tests the best checkpoint."""
        config, folders = self.config, self.folders
        first_epoch = self.step // self.steps_per_epoch + 1
        # Rows of epochs after the checkpoint were never saved with it: they are redone.
        history = [row for row in read_history(folders.metrics) if row["epoch"] < first_epoch]
        if resumed_from:
            self._reconcile_best(history)
        with self.stop, records(folders, config.crop, echo, graph=None if resumed_from else
                                self.graph, restart_step=self.step if resumed_from else None) \
                as (log, summaries):
            if resumed_from:
                log("run %s: resumed from %s at step %d", folders.name, resumed_from, self.step)
            else:
                log("run %s: training %d examples, validating on %d; config %s", folders.name,
                    len(self.train_split), len(self.mnist.validation), config.to_dict())
                summaries.add(0, dashboard.session_start(config) + [dashboard.config_text(config)])
            started = time.time() - (history[-1]["elapsed_s"] if history else 0.0)
            try:
                for epoch in range(first_epoch, config.epochs + 1):
                    trained = self._train_epoch(epoch, summaries, progress)
                    validated = measure(self.session, self.model, self.mnist.validation)
                    self._end_epoch(epoch, trained, validated, history, time.time() - started,
                                    log, summaries)
                    if self.stop.requested and epoch < config.epochs:
                        raise self._interrupted(f"at step {self.step} (epoch {epoch})")
            except TrainingDiverged as diverged:
                latest = checkpoints.latest_in(folders.latest)
                raise TrainingDiverged(f"{diverged}. " + (
                    f"The last good checkpoint stays the latest: {latest}" if latest
                    else "No checkpoint had been saved yet")) from None
            return self._final_test(history, time.time() - started, log, summaries)

    def _train_epoch(self, epoch: int, summaries: Summaries, progress: bool) -> PassResult:
        """One pass over the shuffled training split, from where an interrupted run stopped."""
        config, split, folders = self.config, self.train_split, self.folders
        done = self.step - (epoch - 1) * self.steps_per_epoch  # batches of this epoch already run
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(split))[done * config.batch_size:]
        crops = draw_crops(rng, len(split), config.crop_min, config.crop_max) if config.crop else None
        # An interrupted epoch's sums are saved beside its checkpoint, so the resumed epoch
        # reports over all its batches, not only the last ones.
        sums = (read_epoch_progress(folders.epoch_progress, self.step) if done else None) \
            or PassSums()
        monitor = StepMonitor(summaries, epoch, config.epochs, len(split),
                              min(done * config.batch_size, len(split)), progress)
        try:
            for values in run_pass(self.session, self.model,
                                   batches(split.images, split.labels, config.batch_size, order,
                                           crops), sums, train=True, step_details=True):
                self.step = values["global_step"]
                monitor.after_step(values, sums)
                # The epoch's last step goes on to validation and the epoch's checkpoint.
                if self.stop.requested and self.step % self.steps_per_epoch != 0:
                    self._save_latest()
                    write_json(folders.epoch_progress, dict(dataclasses.asdict(sums),
                                                            step=self.step))
                    raise self._interrupted(f"at step {self.step} (epoch {epoch})")
        finally:
            monitor.close()
        return sums.result()

    def _end_epoch(self, epoch: int, trained: PassResult, validated: Dict[str, float],
                   history: List[dict], elapsed: float, log: RunLog, summaries: Summaries):
        """Records an epoch: its metrics row, summaries, checkpoints and log line."""
        config = self.config
        row = {"epoch": epoch,
               "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "elapsed_s": round(elapsed, 2), "train_loss": trained.loss,
               "train_error": trained.error}
        row.update({"validation_" + k: v for k, v in validated.items()
                    if not k.startswith("accuracy")})
        row.update(grad_norm_mean=float(trained.grad_norms.mean()),
                   grad_norm_max=float(trained.grad_norms.max()))
        improved = validated["error"] < min((r["validation_error"] for r in history),
                                            default=math.inf)
        history.append(row)
        best = min(history, key=lambda r: r["validation_error"])
        self._check_weights(f"at the end of epoch {epoch}")
        # Metrics first, then latest, then best: a crash in between leaves a row the resumed run
        # drops and redoes, or a best behind latest that it catches up (`_reconcile_best`),
        # never a checkpoint without its row nor a best ahead of latest.
        write_csv(self.folders.metrics, history)
        summaries.epoch(self.step, trained, validated)
        summaries.results(self.step, dashboard.best_results(best))
        if self.tracer:
            summaries.add(self.step, self._reading_summaries())
        self._save_latest()
        if improved:
            self._save_best(epoch)
        log("epoch %d/%d  %.1fs  train loss %.4f error %.2f%%  validation loss %.4f error %.2f%%%s"
            "  grad norm mean %.3f max %.3f%s", epoch, config.epochs, row["elapsed_s"],
            trained.loss, 100 * trained.error, validated["loss"], 100 * validated["error"],
            f" (cropped {100 * validated['error_cropped']:.2f}%)" if config.crop else "",
            row["grad_norm_mean"], row["grad_norm_max"], "  *best*" if improved else "")

    def _reading_summaries(self) -> List[bytes]:
        """How the model reads the handful of validation digits, and its weights."""
        directions = DIRECTIONS if self.config.bidirectional else DIRECTIONS[:1]
        names = [f"layer_{k}/{d}" for k in range(self.config.layers) for d in directions]
        weights = self.session.run({v.op.name: v for v in self.model.model_variables})
        return dashboard.reading_summaries(self.tracer.explain(self.session, self.handful), names,
                                           weights)

    def _final_test(self, history: List[dict], elapsed: float, log: RunLog,
                    summaries: Summaries) -> Dict[str, object]:
        """Measures the best checkpoint on validation and, once per run, on test."""
        folders = self.folders
        if not history:
            raise UserError(f"{folders.metrics}: records no epoch, so the best one is unknown; "
                            "train the run again with --overwrite")
        best_row = min(history, key=lambda r: r["validation_error"])
        best_prefix = checkpoints.latest_in(folders.best)
        if not best_prefix:
            raise UserError(f"{folders.best}: holds no checkpoint to test; train the run again "
                            "with --overwrite")
        self.best_saver.restore(self.session, best_prefix)
        results = {"run": folders.name, "best_epoch": int(best_row["epoch"]),
                   "checkpoint": best_prefix, "train_seconds": round(elapsed, 1)}
        with self.stop.at_once("during the final test: training is complete; measure the best "
                               f"checkpoint with python scripts/eval.py --checkpoint "
                               f"{os.path.abspath(folders.checkpoints)}, or rerun the test"):
            predictions = []
            for split_name in ("validation", "test"):
                measured = measure(self.session, self.model, getattr(self.mnist, split_name),
                                   predictions=predictions if split_name == "test" else None)
                results.update({f"{split_name}_{k}": v for k, v in measured.items()})
        summaries.results(self.step, dashboard.test_results(results))
        if self.tracer:
            matrix = confusion_matrix(self.mnist.test.labels, np.concatenate(predictions))
            summaries.add(self.step, [dashboard.png_image(dashboard.CONFUSION_TAG,
                                                          figure_png(confusion_figure(matrix)))])
        summaries.add(self.step, [dashboard.session_end()])
        # The picture, then the results, then the line that ends the log: `run_ended` knows a run
        # whose end was cut short, and --resume finishes it.
        plot_runs([folders.logs], folders.curves)
        write_json(folders.results, results)
        log(DONE + " in %.1fs: best epoch %d (%s): validation error %.2f%%, test error %.2f%% "
            "(test accuracy %.2f%%)%s", results["train_seconds"], results["best_epoch"],
            best_prefix, 100 * results["validation_error"], 100 * results["test_error"],
            100 * results["test_accuracy"],
            f"; cropped test error {100 * results['test_error_cropped']:.2f}%"
            if self.config.crop else "")
        return results

    def _reconcile_best(self, history: List[dict]):
        """Saves the restored latest checkpoint as best if the epoch it ends was the best and a
        crash came between its latest and best saves."""
        epoch, within = divmod(self.step, self.steps_per_epoch)
        best_row = min(history, key=lambda r: r["validation_error"], default=None)
        best_prefix = checkpoints.latest_in(self.folders.best)
        if within == 0 and best_row and best_row["epoch"] == epoch and \
                best_prefix != os.path.join(self.folders.best, f"model-{epoch}"):
            self._save_best(epoch)

    def _save_best(self, epoch: int):
        self._save(self.best_saver, self.folders.best, epoch)

    def _save_latest(self):
        self._check_weights(f"at step {self.step}")
        self._save(self.latest_saver, self.folders.latest, self.step)
        self.saved_any = True

    def _save(self, saver: tf.train.Saver, folder: str, number: int):
        try:
            saver.save(self.session, os.path.join(folder, "model"), global_step=number,
                       write_meta_graph=False)
        except ValueError:  # the Saver's word for a folder that vanished (moved or deleted)
            raise UserError(f"{folder}: the run's checkpoint folder was moved or deleted while "
                            "the run trained; nothing more was saved") from None

    def _check_weights(self, when: str):
        """Refuses to save non-finite weights: the last good checkpoint stays the latest."""
        if not self.session.run(self.weights_finite):
            raise TrainingDiverged(f"the weights became NaN or infinite {when}; stopped")

    def _interrupted(self, where: str) -> TrainingInterrupted:
        return TrainingInterrupted(
            f"{self.stop.requested} {where}: the latest checkpoint is saved; "
            f"continue with: {self.folders.resume_command()}")
