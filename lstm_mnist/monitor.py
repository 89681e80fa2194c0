"""What a run shows and records while it trains: log lines, TensorBoard scalars, a progress bar,
and the check that stops a diverging run."""

import contextlib
import errno
import logging
import math
import os
import sys
import threading
import uuid
from typing import Dict, Iterable, Iterator, Optional, Tuple

from tqdm import tqdm

from lstm_mnist import dashboard
from lstm_mnist.errors import UserError
from lstm_mnist.passes import PassResult, PassSums
from lstm_mnist.runs import RunFolders
from lstm_mnist.tf1 import tf

PROGRESS_EVERY = 20  # steps between refreshes of the progress bar's running loss and accuracy
EPOCH_TAGS = ("loss", "error", "accuracy")  # the same in every stream, so the curves overlay
# The run's own folder: its HParams session (`dashboard`), pictures, histograms and results.
RUN_STREAM = ""


class TrainingDiverged(UserError):
    """The loss, the gradients or the weights stopped being finite."""


class RunLog:
    """The run's train.log, each line timestamped, echoed to stdout above any progress bar."""

    def __init__(self, path: str, echo: bool):
        self._log = logging.getLogger(f"lstm_mnist.run.{os.path.abspath(path)}")
        self._log.setLevel(logging.INFO)
        self._log.propagate = False
        formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
        handlers = [_FileHandler(path, encoding="utf-8")]
        if echo:
            handlers.append(_EchoHandler(sys.stdout))
        for handler in handlers:
            handler.setFormatter(formatter)
            self._log.addHandler(handler)

    def __call__(self, message: str, *args):
        self._log.info(message, *args)

    def file_only(self, message: str, *args):
        """A line for train.log alone, not echoed: one the script prints anyway (its error)."""
        self._log.info(message, *args, extra={"file_only": True})

    def close(self):
        for handler in list(self._log.handlers):
            handler.close()
            self._log.removeHandler(handler)


class Summaries:
    """The run's TensorBoard streams: `train`, `validation` (and `validation_cropped` in crop mode)
    with the same epoch tags, `steps` with per-step diagnostics, and RUN_STREAM.

    TensorFlow's FileWriter flushes from a thread of its own, so a write error there (a full disk)
    would only print a traceback and lose events. While open, such errors are caught and raised in
    the training loop instead, at the next step or epoch.
    """

    def __init__(self, folders: RunFolders, crop: bool, graph: Optional[tf.Graph],
                 restart_step: Optional[int]):
        """Opens the streams. `graph` is drawn in TensorBoard (new runs); `restart_step` tells
        TensorBoard to drop what an interrupted process logged after that step (resumed runs)."""
        self.failure: Optional[BaseException] = None
        self._previous_hook = threading.excepthook
        threading.excepthook = self._catch_writer_error
        tf.get_logger().addFilter(self._drop_writer_error)
        streams = [RUN_STREAM, "train", "validation", "steps"] + (
            ["validation_cropped"] if crop else [])
        # TensorFlow names an event file by the second it was opened and truncates a file of that
        # name: a run resumed within the second it started would lose its first events.
        suffix = "." + uuid.uuid4().hex[:8]
        self.writers = {name: tf.summary.FileWriter(folders.events(name),
                                                    graph if name == "train" else None,
                                                    filename_suffix=suffix)
                        for name in streams}
        if restart_step is not None:
            # TensorBoard drops the events at and after a START's step: one step on, so that the
            # summaries of the restored checkpoint's own step stay.
            for writer in self.writers.values():
                writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START),
                                       restart_step + 1)

    def step(self, step: int, values: Dict[str, float]):
        self._write("steps", step, {"step/" + key: value for key, value in values.items()
                                    if key not in ("examples", "global_step")})

    def epoch(self, step: int, trained: PassResult, validated: Dict[str, float]):
        self._write("train", step, {tag: getattr(trained, tag) for tag in EPOCH_TAGS})
        for suffix in ("", "_cropped"):
            if "loss" + suffix in validated:
                self._write("validation" + suffix, step,
                            {tag: validated[tag + suffix] for tag in EPOCH_TAGS})

    def results(self, step: int, values: Dict[str, float]):
        """The run's results so far (the HParams dashboard's metrics), into RUN_STREAM."""
        self._write(RUN_STREAM, step, values)

    def add(self, step: int, summaries: Iterable[bytes]):
        """Serialized summaries (`dashboard`'s) into RUN_STREAM."""
        self.raise_failure()
        for summary in summaries:
            self.writers[RUN_STREAM].add_summary(summary, step)

    def _write(self, stream: str, step: int, values: Dict[str, float]):
        self.raise_failure()
        self.writers[stream].add_summary(dashboard.scalars(values), step)

    def raise_failure(self):
        """Raises the writer thread's error, if one happened, as the OSError it stands for."""
        if self.failure is not None:
            message = str(self.failure).splitlines()[0]
            path, _, reason = message.partition("; ")
            number = errno.ENOSPC if "No space left" in reason else errno.EIO
            raise OSError(number, reason or message, path)

    def close(self, quiet: bool = False):
        """Closes every stream, then raises the first write error unless `quiet` (another error
        is already on its way)."""
        errors = []
        for writer in self.writers.values():
            try:
                writer.close()
            except (RuntimeError, OSError) as error:
                errors.append(error)
        threading.excepthook = self._previous_hook
        tf.get_logger().removeFilter(self._drop_writer_error)
        self.failure = self.failure or (errors[0] if errors else None)
        if not quiet:
            self.raise_failure()

    def _catch_writer_error(self, hook_args):
        if hook_args.thread is not None and hook_args.thread.name == "EventLoggerThread":
            self.failure = self.failure or hook_args.exc_value
        else:
            self._previous_hook(hook_args)

    @staticmethod
    def _drop_writer_error(record: logging.LogRecord) -> bool:
        return "EventFileWriter writer thread error" not in record.getMessage()


@contextlib.contextmanager
def records(folders: RunFolders, crop: bool, echo: bool, graph: Optional[tf.Graph],
            restart_step: Optional[int]) -> Iterator[Tuple[RunLog, Summaries]]:
    """Opens the run's train.log and TensorBoard streams (see `Summaries`) and closes them; a run
    that stops with a UserError says why in its log."""
    log = RunLog(folders.train_log, echo)
    try:
        summaries = Summaries(folders, crop, graph, restart_step)
    except BaseException:
        log.close()
        raise
    try:
        yield log, summaries
    except BaseException as error:
        summaries.close(quiet=True)
        if isinstance(error, UserError):
            with contextlib.suppress(OSError):  # e.g. a full disk: the terminal says it anyway
                log.file_only("%s", error)
        log.close()
        raise
    summaries.close()
    log.close()


class StepMonitor:
    """Watches each training step of an epoch: stops a diverging run, records the step's
    summaries and moves the progress bar."""

    def __init__(self, summaries: Summaries, epoch: int, epochs: int, examples: int, done: int,
                 show_progress: bool):
        self.summaries, self.epoch = summaries, epoch
        self.bar = tqdm(total=examples, initial=done, unit="ex", desc=f"epoch {epoch}/{epochs}",
                        leave=False, dynamic_ncols=True, disable=not show_progress)

    def after_step(self, values: Dict[str, float], sums: PassSums):
        step = values["global_step"]
        for name in ("loss", "grad_norm"):
            # With clipping off, weights can overflow while the loss still looks finite: the
            # gradient norm shows it first. The weights themselves are checked before every save.
            if not math.isfinite(values[name]):
                raise TrainingDiverged(f"{name.replace('_', ' ')} became {values[name]} at step "
                                       f"{step} (epoch {self.epoch}); stopped")
        self.summaries.step(step, values)  # raises a write error of the summaries' thread
        self.bar.update(values["examples"])
        if len(sums.grad_norms) % PROGRESS_EVERY == 0:
            self.bar.set_postfix(loss=f"{sums.loss / sums.examples:.4f}",
                                 accuracy=f"{sums.correct / sums.examples:.4f}", refresh=False)

    def close(self):
        self.bar.close()


class _FileHandler(logging.FileHandler):
    """A log file whose write errors (a full disk) stop the run instead of printing a traceback."""

    def handleError(self, record):
        raise  # the exception being handled in emit()


class _EchoHandler(logging.StreamHandler):
    """Prints log lines above a progress bar, if one is showing, instead of through it."""

    def emit(self, record):
        if not getattr(record, "file_only", False):
            tqdm.write(self.format(record), file=self.stream)
