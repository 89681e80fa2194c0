"""A run's life around its epoch loop: how a signal stops it and how a failure is told.

A signal (Ctrl-C, SIGTERM, SIGHUP when the terminal closes) never kills a run in the middle of a
write: it asks the loop to stop at the next safe point, where the latest checkpoint is saved.
What the system refuses while a run trains (a full disk, memory, a TensorFlow error) becomes one
line that names the run's last good checkpoint and the command that continues it.
"""

import contextlib
import errno
import os
import signal
from typing import Optional

from lstm_mnist import checkpoints
from lstm_mnist.errors import UserError
from lstm_mnist.runs import RunFolders
from lstm_mnist.tf1 import tf

# The signals that stop a run at its next safe point: Ctrl-C, `kill`, and the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class TrainingInterrupted(UserError):
    """A stop signal: the latest checkpoint was saved and the run can be resumed."""

    kind = "stopped"
    exit_status = 130  # the shell's convention for "ended by a signal"


class StopRequest:
    """While active, the STOP_SIGNALS only ask the run to stop at the next safe point; inside
    `at_once` (where nothing is being written) they stop it immediately."""

    def __init__(self):
        self.requested: Optional[str] = None  # the signal's name, once one arrived
        self.previous, self.immediately = {}, None

    def __enter__(self):
        for number in STOP_SIGNALS:
            self.previous[number] = signal.signal(number, self._on_signal)
        return self

    def _on_signal(self, number, frame):
        self.requested = signal.Signals(number).name
        if self.immediately:
            raise TrainingInterrupted(f"{self.requested} {self.immediately}")

    @contextlib.contextmanager
    def at_once(self, where: str):
        if self.requested:
            raise TrainingInterrupted(f"{self.requested} {where}")
        self.immediately = where
        try:
            yield
        finally:
            self.immediately = None

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def one_line_errors(folders: RunFolders):
    """Turns what the system refuses while a run trains (a full disk, memory, a TensorFlow error)
    into one line naming the run's last good checkpoint."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise UserError(failure(folders, f"{error.filename}: no space left on device",
                                    "free some space, then")) from None
        raise UserError(failure(folders, f"{error.filename}: {error.strerror}")) from None
    except tf.errors.OpError as error:
        problem = checkpoints.first_line(error)
        if "No space left" in problem:
            raise UserError(failure(folders, problem, "free some space, then")) from None
        raise UserError(failure(folders, problem)) from None


def failure(folders: RunFolders, problem: str, advice: str = "") -> str:
    """`problem`, with the run's last good checkpoint and, given `advice`, how to continue."""
    try:
        latest = checkpoints.latest_in(folders.latest) if os.path.isdir(folders.latest) else None
    except (UserError, OSError):
        latest = None
    if not latest:
        return problem
    return (f"{problem}; the last good checkpoint is {latest}"
            + (f"; {advice} continue with: {folders.resume_command()}" if advice else ""))
